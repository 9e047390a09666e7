"""Files that are either complete or absent: the one write-then-rename helper."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced_atomically(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write; renames it into place when the block
    ends without error (else removes it), so a kill or a failure never leaves a half-written
    file under ``path`` -- the previous one stays until the new one is complete.

    The suffixes stay last (``x.csv.gz`` -> ``.x.<pid>.partial.csv.gz``), so writers that read
    them (pandas' compression, ``keras.Model.save``, ``save_weights``) behave the same.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Every suffix stays last: ``backbone.weights.h5`` -> ``.backbone.<pid>.partial.weights.h5``
    # (Keras' ``save_weights`` insists on the ``.weights.h5`` ending).
    stem, dot, suffixes = path.name.lstrip(".").partition(".")
    partial = path.with_name(f".{stem}.{os.getpid()}.partial{dot}{suffixes}")
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Writes ``text`` to ``path`` through ``replaced_atomically`` (complete or absent)."""
    with replaced_atomically(path) as partial:
        partial.write_text(text)
    return Path(path)
