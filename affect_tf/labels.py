"""The label space: 8 ABAW expressions, 12 AUs, valence/arousal, and each corpus's code map.

This module is the one source of truth for label names and their order. Everything else
(readers, the tf.Example contract, model heads, metrics, exports) imports from here.
"""

from __future__ import annotations

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

# --- Aff-Wild2 (ABAW) ----------------------------------------------------------------------
# Aff-Wild2 uses the ABAW order directly; these are its "no label" markers.
AFFWILD2_VA_INVALID: Final[float] = -5.0
AFFWILD2_EXPR_INVALID: Final[int] = -1
AFFWILD2_AU_INVALID: Final[int] = -1


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
