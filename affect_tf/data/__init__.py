"""Data: the tf.Example contract, corpus readers, SynthAffect and conversion to TFRecords."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from affect_tf.data.affectnet import read_affectnet
from affect_tf.data.affwild2 import read_affwild2
from affect_tf.data.corpus import CorpusError, Sample, SkipReport
from affect_tf.data.ferplus import read_ferplus
from affect_tf.data.manifest import read_manifest

Reader = Callable[[str | Path, str, SkipReport], Iterator[Sample]]

# Corpus format name -> reader(root, split, report). Manifests have no splits of their own.
READERS: dict[str, Reader] = {
    "affectnet": read_affectnet,
    "affwild2": read_affwild2,
    "ferplus": read_ferplus,
    "manifest": lambda root, split, report: read_manifest(root, report),
}
# Which splits exist is each reader's own (``test``: FER+ only); an absent one is a CorpusError.
SPLITS: tuple[str, ...] = ("train", "validation", "test")


def read_corpus(
    format: str, root: str | Path, split: str = "train", report: SkipReport | None = None
) -> Iterator[Sample]:
    """Yields the samples of a corpus in one of the ``READERS`` formats.

    Raises:
        CorpusError: For an unknown format or a corpus that cannot be read as a whole.
    """
    if format not in READERS:
        raise CorpusError(f"Expected format in {sorted(READERS)}. Received: format={format!r}")
    return READERS[format](root, split, report if report is not None else SkipReport())


__all__ = ["READERS", "SPLITS", "CorpusError", "Sample", "SkipReport", "read_corpus"]
