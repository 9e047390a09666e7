"""The backbone weights affect-tf ships: ``weights="synthaffect"``, made from nothing licensed.

Each shipped file is ``weights/synthaffect_<backbone>_<size>.weights.h5`` inside this package,
with its card ``...card.json`` beside it: how ``affect-tf pretrain`` made it (corpus settings,
steps, time, held-out SynthAffect metrics, git revision) and the file's SHA-256. Keras-free, so
the CLI can check a ``--weights synthaffect`` request before TensorFlow starts.

Any weights file with a card next to it (what ``affect-tf pretrain`` writes) is checked against
the card: the backbone and size it was made for, and its digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from affect_tf.core.errors import UserError

SYNTHAFFECT = "synthaffect"
WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_SUFFIX = ".weights.h5"
CARD_SUFFIX = ".card.json"
CARD_FORMAT = "affect-tf backbone card 1"
# Size budget of the shipped files, checked by the tests. Float32, as `affect-tf pretrain` wrote
# them (the card's digest is the file's): small_cnn at 64 px is 5.8 MB, MobileNetV3-Small 4.0 MB,
# EfficientNet-B0 16.0 MB (4.0 M parameters; Keras' own ImageNet file for it is 16 MB).
MAX_FILE_MB = 17.0
MAX_TOTAL_MB = 32.0


class WeightsCardError(UserError):
    """Pretrained weights whose card is missing, unreadable or describes something else."""


@dataclasses.dataclass(frozen=True)
class ShippedWeights:
    """One shipped backbone: its file and its card."""

    backbone: str
    image_size: int
    path: Path
    card: dict

    @property
    def label(self) -> str:
        return f"{self.backbone} at {self.image_size}px"


def card_path(weights_path: str | Path) -> Path:
    """Where the card of a weights file lives: ``X.weights.h5`` -> ``X.card.json``."""
    path = Path(weights_path)
    stem = path.name[: -len(WEIGHTS_SUFFIX)] if path.name.endswith(WEIGHTS_SUFFIX) else path.stem
    return path.with_name(stem + CARD_SUFFIX)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(
    path: str | Path,
    card_format: str = CARD_FORMAT,
    error: type[UserError] = WeightsCardError,
    hint: str = "",
    what: str = "weights",
) -> dict:
    """A card (JSON beside a shipped file) as a dict.

    Args:
        card_format: The ``format`` the card must declare.
        error: What to raise; ``hint`` ends its message (e.g. how to reinstall).
        what: What the card describes, for the message.

    Raises:
        WeightsCardError: (or ``error``) Missing, not JSON, or not a card of this format.
    """
    after = f"; {hint}" if hint else ""
    try:
        card = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise error(
            f"Expected a {what} card (JSON) of format {card_format!r}. Received: {path} "
            f"({type(e).__name__}: {e}{after})"
        ) from None
    if not isinstance(card, dict) or card.get("format") != card_format:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise error(
            f"Expected a {what} card of format {card_format!r}. Received: {path} "
            f"(format={found!r}{after})"
        )
    return card


def check_card(weights_path: str | Path, backbone: str, image_size: int) -> dict | None:
    """Checks the card beside a weights file, if there is one; the card (or None).

    Raises:
        WeightsCardError: The card names another backbone or size, or another file's digest.
    """
    path = Path(weights_path)
    card_file = card_path(path)
    if not card_file.is_file():
        return None
    card = read_card(card_file)
    made_for = (card.get("backbone"), card.get("image_size"))
    if made_for != (backbone, image_size):
        raise WeightsCardError(
            f"Expected weights made for backbone {backbone!r} at {image_size}px. Received: "
            f"weights={str(path)!r}, whose card {card_file.name} says backbone "
            f"{made_for[0]!r} at {made_for[1]}px (pick the preset the card names, "
            f"{card.get('preset')!r}, or other weights)"
        )
    expected = card.get("weights_sha256")
    if expected and file_sha256(path) != expected:
        raise WeightsCardError(
            f"Expected the file that {card_file.name} describes (sha256 {expected[:12]}…). "
            f"Received: weights={str(path)!r} with sha256 {file_sha256(path)[:12]}… (the file "
            "was replaced or damaged after its card was written)"
        )
    return card


def shipped(directory: Path = WEIGHTS_DIR) -> list[ShippedWeights]:
    """Every shipped backbone, from the cards in ``directory``."""
    found = []
    for card_file in sorted(directory.glob(f"*{CARD_SUFFIX}")):
        card = read_card(card_file)
        weights = card_file.with_name(card_file.name[: -len(CARD_SUFFIX)] + WEIGHTS_SUFFIX)
        if weights.is_file():
            found.append(ShippedWeights(card["backbone"], int(card["image_size"]), weights, card))
    return found


def find_shipped(backbone: str, image_size: int, directory: Path = WEIGHTS_DIR) -> ShippedWeights:
    """The shipped SynthAffect weights of ``backbone`` at ``image_size``.

    Raises:
        WeightsCardError: None shipped for that pair; the message lists what exists.
    """
    available = shipped(directory)
    for item in available:
        if (item.backbone, item.image_size) == (backbone, image_size):
            return item
    listing = ", ".join(f"{w.label} (preset {w.card.get('preset')!r})" for w in available)
    raise WeightsCardError(
        f"Expected a backbone and size with shipped SynthAffect weights: {listing or 'none'}. "
        f"Received: weights='synthaffect' for backbone {backbone!r} at {image_size}px (make "
        f"your own with `affect-tf pretrain --preset PRESET --out DIR` and pass "
        f"DIR/backbone{WEIGHTS_SUFFIX} as weights, or use weights='imagenet')"
    )
