"""The model affect-tf ships: what ``predict``, ``video``, ``serve`` and ``AffectRecognizer()``
read faces with when no model is given.

One multi-task ``AffectModel`` (preset ``shipped``): expressions learned from real faces (FER+),
valence/arousal and the 12 AUs from rendered ones (SynthAffect). The file lives in this package
(``default_model/affect.keras``) with its card (``affect.card.json``: data, recipe, metrics,
licence, the file's SHA-256), made by ``python -m benchmarks.shipped_model``; docs/results.md
("shipped model") has the numbers. Keras-free, so the CLI can check the file before TensorFlow
starts. A missing or damaged file is an error naming it, never a fallback to other weights.
"""

from __future__ import annotations

import functools
from pathlib import Path

from affect_tf.core.errors import UserError
from affect_tf.model.shipped import file_sha256
from affect_tf.model.shipped import read_card as _read_card

MODEL_DIR = Path(__file__).parent / "default_model"
MODEL_FILE = "affect.keras"
# The same model as TFLite (``python -m benchmarks.shipped_tflite``): what ``predict``,
# ``video`` and ``AffectRecognizer()`` run by default, on LiteRT without TensorFlow.
TFLITE_FILE = "affect.tflite"
KINDS = ("keras", "tflite")
CARD_FILE = "affect.card.json"
CARD_FORMAT = "affect-tf model card 1"
# Size budget of the shipped model file (checked by the tests): a photo reader that installs
# with the package and loads in a blink.
MAX_MODEL_MB = 10.0
REINSTALL = (
    "reinstall affect-tf (`pip install --force-reinstall --no-deps affect-tf`, or `make setup` "
    "in a clone) or pass a model of your own with --model"
)


class DefaultModelError(UserError):
    """The shipped model file or its card is missing, unreadable or damaged."""


def read_card(directory: Path | None = None) -> dict:
    """The shipped model's card.

    Raises:
        DefaultModelError: Missing, not JSON, or not a card of this format.
    """
    directory = MODEL_DIR if directory is None else directory  # read when called: tests move it
    return _read_card(directory / CARD_FILE, CARD_FORMAT, DefaultModelError, REINSTALL, "model")


@functools.lru_cache(maxsize=4)
def _checked(path: Path, size: int, mtime_ns: int, expected: str) -> bool:
    # Keyed on the file's size and time too: a file replaced in place is checked again.
    return file_sha256(path) == expected


def default_model_path(directory: Path | None = None, kind: str = "keras") -> Path:
    """The shipped model file, checked against its card.

    Args:
        directory: The folder holding the files and the card (default ``MODEL_DIR``).
        kind: ``"keras"`` (the ``.keras`` file: training, ``explain``, the serving export) or
            ``"tflite"`` (the fast reader: ``predict``, ``video``, ``AffectRecognizer()``).

    Raises:
        DefaultModelError: The file or its card is missing, or the file is not the one the
            card describes (damaged or replaced); the message names the file and how to
            reinstall.
    """
    if kind not in KINDS:
        raise ValueError(f"Expected kind in {KINDS}. Received: kind={kind!r}")
    directory = MODEL_DIR if directory is None else directory
    card = read_card(directory)
    if kind == "tflite":
        card = card.get("tflite") or {}
    path = directory / card.get("file", MODEL_FILE if kind == "keras" else TFLITE_FILE)
    if not path.is_file():
        raise DefaultModelError(
            f"Expected the shipped model file {path}. Received: not found ({REINSTALL})"
        )
    stat = path.stat()
    expected = str(card.get("sha256", ""))
    if not _checked(path, stat.st_size, stat.st_mtime_ns, expected):
        raise DefaultModelError(
            f"Expected the shipped model file its card describes (sha256 {expected[:12]}…). "
            f"Received: {path} with sha256 {file_sha256(path)[:12]}… (damaged or replaced; "
            f"{REINSTALL})"
        )
    return path


def default_margin(directory: Path | None = None) -> float:
    """The alignment margin the shipped model was trained with (a TFLite file cannot carry
    it; its card does)."""
    return float(read_card(directory)["config"]["margin"])
