"""Several corpora in one training run, each labelling what it has, mixed by weight.

``--data ferplus.tfrecord.gz:0.7 --data synth/:0.3``: each corpus is its own aligned stream
(repeated, shuffled, class-balanced on its own class statistics when ``imbalance=sampling``),
and each training draw picks a corpus with probability ``weight / sum(weights)``. Labels a
corpus lacks are masked in its tf.Examples already (``va_mask``, ``expr_mask``, ``au_mask``),
so each task learns from the corpora that label it. Without weights, the corpora's files are
read as one (their natural proportions). Parsing is TensorFlow-free (the pipeline's settings
check it); the streams import TensorFlow when built.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from affect_tf.data.corpus import CorpusError

if TYPE_CHECKING:
    import tensorflow as tf

    from affect_tf.data.dataset import LabelPriors

# A trailing ":<number>" is a mixing weight; anything else after a colon is part of the path
# (gs://bucket/..., a Windows drive), so "corpus:abc" names a file called that.
_WEIGHT = re.compile(
    r"^(?P<path>.+):(?P<weight>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(nan|inf))$", re.I
)


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """One ``--data`` argument: what it names, and its mixing weight (None: not given)."""

    data: str
    weight: float | None = None


def parse_corpus(text: str) -> CorpusSpec:
    """``"path"`` or ``"path:weight"`` -> ``CorpusSpec``.

    Raises:
        CorpusError: A weight that is negative or not finite.
    """
    match = _WEIGHT.match(text.strip())
    if match is None:
        return CorpusSpec(text.strip())
    weight = float(match.group("weight"))
    if not math.isfinite(weight) or weight < 0:
        raise CorpusError(
            f"Expected a mixing weight >= 0 after the corpus (--data PATH:WEIGHT). Received: "
            f"--data {text!r} (weight={match.group('weight')})"
        )
    return CorpusSpec(match.group("path"), weight)


def mixing_weights(specs: Sequence[CorpusSpec]) -> list[float] | None:
    """The corpora's normalised weights, or None when no weight was given.

    Raises:
        CorpusError: Weights given for some corpora only, or summing to 0.
    """
    given = [s.weight is not None for s in specs]
    if not any(given):
        return None
    if not all(given):
        missing = [s.data for s in specs if s.weight is None]
        raise CorpusError(
            "Expected a mixing weight on every --data when any has one (--data PATH:WEIGHT). "
            f"Received: no weight for {missing}"
        )
    total = sum(s.weight for s in specs)
    if total <= 0:
        raise CorpusError(
            "Expected mixing weights that sum to more than 0. Received: "
            + ", ".join(f"{s.data}:{s.weight:g}" for s in specs)
        )
    return [s.weight / total for s in specs]


def check_contract(files: Sequence[str], corpus: str) -> None:
    """Checks that a corpus' first tf.Example has every feature this version's contract needs.

    An older file (written before a feature was added) would otherwise fail deep inside
    tf.data, mid-training, without saying which corpus.

    Raises:
        CorpusError: Naming the corpus, its file and the missing features.
    """
    import tensorflow as tf

    from affect_tf.data import examples as ex

    for path in files:
        compression = "GZIP" if str(path).endswith(".gz") else None
        try:
            first = next(iter(tf.data.TFRecordDataset([path], compression_type=compression)), None)
        except tf.errors.OpError as e:
            raise CorpusError(
                f"Expected TFRecords of tf.Examples. Received: corpus {corpus!r}, file {path} "
                f"({e.message.splitlines()[0][:200]})"
            ) from None
        if first is None:
            continue
        try:
            features = tf.train.Example.FromString(first.numpy()).features.feature
        except Exception:  # noqa: BLE001 (protobuf's DecodeError; not a tf.Example at all)
            raise CorpusError(
                f"Expected tf.Examples. Received: corpus {corpus!r}, file {path} (the first "
                "record is not a tf.Example)"
            ) from None
        missing = sorted(k for k in ex.FEATURE_SPEC if k not in features)
        if missing:
            raise CorpusError(
                f"Expected tf.Examples of this version's contract (affect_tf.data.examples). "
                f"Received: corpus {corpus!r}, file {path}, without {missing} (an older file? "
                "convert the corpus again with `affect-tf convert`)"
            )
        return


def mix_streams(
    streams: Sequence[tf.data.Dataset],
    weights: Sequence[float],
    size: int,
    seed: int | None,
    shuffle_buffer: int = 4096,
) -> tf.data.Dataset:
    """``size`` elements drawn from ``streams`` (each shuffled and repeated), each with
    probability ``weights``; stream ``i`` shuffles with ``seed + 1000 * i``."""
    import tensorflow as tf

    weights = np.asarray(weights, np.float64)
    present = [i for i, w in enumerate(weights) if w > 0]
    repeated = [
        streams[i]
        .shuffle(shuffle_buffer, seed=None if seed is None else seed + 1000 * i,
                 reshuffle_each_iteration=True)
        .repeat()
        for i in present
    ]  # fmt: skip
    chosen = (weights[present] / weights[present].sum()).tolist()
    return tf.data.Dataset.sample_from_datasets(repeated, chosen, seed=seed).take(size)


def make_mixed_dataset(
    corpora: Sequence[Sequence[str]],
    weights: Sequence[float],
    image_size: int,
    margin: float,
    batch_size: int,
    size: int,
    split: str | None = None,
    eval_percent: int = 10,
    shuffle_buffer: int = 4096,
    seed: int | None = None,
    with_meta: bool = False,
    balances: Sequence[tuple[Sequence[float], int, int] | None] | None = None,
) -> tf.data.Dataset:
    """Training batches drawn from several corpora by weight (``affect_tf.data.mixing``).

    Args:
        corpora: Each corpus' tf.Example files.
        weights: Each corpus' probability of supplying a draw (normalised here).
        size: Elements per epoch (draws).
        balances: Per corpus, ``make_dataset``'s ``balance`` (its own class statistics) or
            None.
        Others: as ``make_dataset`` with ``training=True``.
    """
    from affect_tf.data.dataset import aligned_stream, batched

    balances = balances or [None] * len(corpora)
    streams = [
        aligned_stream(files, image_size, margin, True, split, eval_percent,
                       None if seed is None else seed + 1000 * i, True, balance)
        for i, (files, balance) in enumerate(zip(corpora, balances, strict=True))
    ]  # fmt: skip
    mixed = mix_streams(streams, weights, size, seed, shuffle_buffer)
    return batched(mixed, batch_size, with_meta)


def mixture_priors(parts: Sequence[LabelPriors], weights: Sequence[float]) -> LabelPriors:
    """The label statistics of a stream mixing ``parts`` by ``weights``: each corpus' counts
    scaled so that it makes ``weight`` of the examples, the total kept (what class weights,
    logit adjustment and the label graph should see)."""
    from affect_tf.data.dataset import LabelPriors

    total = sum(p.n for p in parts)
    out = LabelPriors()
    for part, weight in zip(parts, weights, strict=True):
        if part.n == 0 or weight == 0:
            continue
        scale = weight * total / part.n
        out.n += int(round(part.n * scale))
        out.expression_counts = out.expression_counts + part.expression_counts * scale
        out.au_positive = out.au_positive + part.au_positive * scale
        out.au_labelled = out.au_labelled + part.au_labelled * scale
        out.va_labelled += int(round(part.va_labelled * scale))
        if part.pair_stats is not None:
            scaled = part.pair_stats * scale
            out.pair_stats = scaled if out.pair_stats is None else out.pair_stats + scaled
    return out
