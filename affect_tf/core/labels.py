"""The label space: 8 ABAW expressions, 12 AUs, valence/arousal, and each corpus's code map.

This module is the one source of truth for label names and their order. Everything else
(readers, the tf.Example contract, model heads, metrics, exports) imports from here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

# ABAW3 order; index = class id everywhere in the project.
EXPRESSIONS: Final[tuple[str, ...]] = (
    "Neutral",
    "Anger",
    "Disgust",
    "Fear",
    "Happiness",
    "Sadness",
    "Surprise",
    "Other",
)
NUM_EXPRESSIONS: Final[int] = len(EXPRESSIONS)

# The 12 AUs of the ABAW AU challenge, in its column order.
AUS: Final[tuple[str, ...]] = (
    "AU1",
    "AU2",
    "AU4",
    "AU6",
    "AU7",
    "AU10",
    "AU12",
    "AU15",
    "AU23",
    "AU24",
    "AU25",
    "AU26",
)
NUM_AUS: Final[int] = len(AUS)

# FACS names, for plots and reports.
AU_DESCRIPTIONS: Final[dict[str, str]] = {
    "AU1": "inner brow raiser",
    "AU2": "outer brow raiser",
    "AU4": "brow lowerer",
    "AU6": "cheek raiser",
    "AU7": "lid tightener",
    "AU10": "upper lip raiser",
    "AU12": "lip corner puller",
    "AU15": "lip corner depressor",
    "AU23": "lip tightener",
    "AU24": "lip pressor",
    "AU25": "lips part",
    "AU26": "jaw drop",
}

VA_DIMENSIONS: Final[tuple[str, ...]] = ("valence", "arousal")
VA_RANGE: Final[tuple[float, float]] = (-1.0, 1.0)

# Alternative spellings users and corpora write for the expression names (lower case).
_EXPRESSION_ALIASES: Final[dict[str, str]] = {
    "neutral": "Neutral",
    "anger": "Anger",
    "angry": "Anger",
    "disgust": "Disgust",
    "disgusted": "Disgust",
    "fear": "Fear",
    "afraid": "Fear",
    "fearful": "Fear",
    "happiness": "Happiness",
    "happy": "Happiness",
    "joy": "Happiness",
    "sadness": "Sadness",
    "sad": "Sadness",
    "surprise": "Surprise",
    "surprised": "Surprise",
    "other": "Other",
    "contempt": "Other",
}

# A frame index is an int64 in the tf.Example; negative indices mean nothing.
MAX_FRAME: Final[int] = 2**63 - 1


def unique_top(values) -> int | None:
    """The index of the largest value, or None when several share it (a tie decides nothing)."""
    top = max(values)
    winners = [i for i, v in enumerate(values) if v == top]
    return winners[0] if len(winners) == 1 else None


def check_expression_dist(values, field: str = "expression_dist") -> list[float]:
    """A soft expression label normalised to sum 1.

    Raises:
        ValueError: Not 8 finite numbers >= 0 with a positive sum (the message names
            ``field``).
    """
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        numbers = []
    total = sum(numbers)
    if (
        len(numbers) != NUM_EXPRESSIONS
        or not all(math.isfinite(v) and v >= 0 for v in numbers)
        or not total > 0
    ):
        raise ValueError(
            f"Expected {field} as {NUM_EXPRESSIONS} non-negative numbers (one per class, "
            f"{', '.join(EXPRESSIONS)}) with a positive sum. Received: {field}={values!r}"
        )
    return [v / total for v in numbers]


# --- AffectNet -----------------------------------------------------------------------------
# AffectNet codes: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger,
# 7 Contempt, 8 None, 9 Uncertain, 10 Non-Face. Contempt has no ABAW class of its own -> Other.
AFFECTNET_TO_ABAW: Final[dict[int, int]] = {
    0: EXPRESSIONS.index("Neutral"),
    1: EXPRESSIONS.index("Happiness"),
    2: EXPRESSIONS.index("Sadness"),
    3: EXPRESSIONS.index("Surprise"),
    4: EXPRESSIONS.index("Fear"),
    5: EXPRESSIONS.index("Disgust"),
    6: EXPRESSIONS.index("Anger"),
    7: EXPRESSIONS.index("Other"),
}
# Codes whose rows are dropped, with the reason name used in skip reports.
AFFECTNET_DROPPED: Final[dict[int, str]] = {8: "none", 9: "uncertain", 10: "non_face"}
AFFECTNET_VA_NOT_ANNOTATED: Final[float] = -2.0

# --- FER+ ---------------------------------------------------------------------------------
# FER+ vote columns (Microsoft's label.csv after the file name and box): 8 emotions, then
# "unknown" and "NF" (not a face). Contempt has no ABAW class of its own -> Other.
FERPLUS_VOTES: Final[tuple[str, ...]] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
FERPLUS_TO_ABAW: Final[dict[int, int]] = {
    0: EXPRESSIONS.index("Neutral"),
    1: EXPRESSIONS.index("Happiness"),
    2: EXPRESSIONS.index("Surprise"),
    3: EXPRESSIONS.index("Sadness"),
    4: EXPRESSIONS.index("Anger"),
    5: EXPRESSIONS.index("Disgust"),
    6: EXPRESSIONS.index("Fear"),
    7: EXPRESSIONS.index("Other"),
}

# --- Aff-Wild2 (ABAW) ----------------------------------------------------------------------
# Aff-Wild2 uses the ABAW order directly; these are its "no label" markers.
AFFWILD2_VA_INVALID: Final[float] = -5.0
AFFWILD2_EXPR_INVALID: Final[int] = -1
AFFWILD2_AU_INVALID: Final[int] = -1


@dataclasses.dataclass(kw_only=True)
class FaceLabels:
    """The labels and grouping fields one face carries; shared by ``FaceRecord`` and the
    readers' ``Sample`` so that the label fields are declared once.

    Attributes:
        valence, arousal: In [-1, 1]; meaningful only where ``va_mask`` is 1.
        va_mask: 1 when valence and arousal are annotated.
        expression: ABAW class index 0-7; meaningful only where ``expr_mask`` is 1.
        expr_mask: 1 when the expression is annotated.
        au: 12 occurrences (0/1) in ``labels.AUS`` order.
        au_mask: 12 flags, 1 where that AU is annotated.
        video_id: Video or subject id; the pipeline splits by it, never by frame.
        frame: Frame number within the video (0 for still images; Aff-Wild2: the 1-based
            image number).
        source: Corpus name, e.g. ``"affectnet"``; evaluation slices by it.
        expression_dist: The annotators' distribution over the 8 classes (a soft label, e.g.
            FER+'s 10 votes), summing to 1, or None; only with ``expr_mask``. The expression
            loss trains on it where present; metrics use ``expression`` (the majority).
    """

    valence: float = 0.0
    arousal: float = 0.0
    va_mask: int = 0
    expression: int = 0
    expr_mask: int = 0
    au: list[int] = dataclasses.field(default_factory=lambda: [0] * NUM_AUS)
    au_mask: list[int] = dataclasses.field(default_factory=lambda: [0] * NUM_AUS)
    video_id: str = ""
    frame: int = 0
    source: str = ""
    expression_dist: list[float] | None = None

    @property
    def has_any_label(self) -> bool:
        """True when at least one task is annotated."""
        return bool(self.va_mask or self.expr_mask or any(self.au_mask))

    def labels(self) -> dict:
        """The ``FaceLabels`` fields as keyword arguments (lists copied)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), list | tuple) else v
            for f in dataclasses.fields(FaceLabels)
        }


def expression_index(value: str | int) -> int:
    """Returns the ABAW class index of an expression given by name, alias or index.

    Args:
        value: A name such as ``"Happiness"``/``"happy"`` (case-insensitive), or an index
            0-7 as an int or a string of digits.

    Returns:
        The class index in ``EXPRESSIONS``.

    Raises:
        ValueError: If the value names no expression or the index is out of range.
    """
    if isinstance(value, bool):
        raise ValueError(f"Expected an expression name or index 0-7. Received: value={value!r}")
    if isinstance(value, int):
        index = value
    else:
        text = str(value).strip()
        if text.lstrip("+-").isdigit():
            index = int(text)
        else:
            name = _EXPRESSION_ALIASES.get(text.lower())
            if name is None:
                raise ValueError(
                    f"Expected an expression name in {list(EXPRESSIONS)} (or an index 0-7). "
                    f"Received: value={value!r}"
                )
            return EXPRESSIONS.index(name)
    if not 0 <= index < NUM_EXPRESSIONS:
        raise ValueError(
            f"Expected an expression index in [0, {NUM_EXPRESSIONS - 1}]. Received: value={value!r}"
        )
    return index


def au_index(name: str) -> int:
    """Returns the position of an AU (``"AU12"``, ``"au12"`` or ``"12"``) in ``AUS``.

    Raises:
        ValueError: If the AU is not one of the 12 ABAW AUs.
    """
    text = str(name).strip().upper()
    if not text.startswith("AU"):
        text = "AU" + text
    # "AU06" and "AU6" are the same unit.
    digits = text[2:].lstrip("0") or "0"
    text = "AU" + digits
    if text not in AUS:
        raise ValueError(f"Expected one of the 12 ABAW AUs {list(AUS)}. Received: name={name!r}")
    return AUS.index(text)
