"""What every corpus reader shares: the ``Sample`` it yields, the skip report, and errors.

A reader turns a corpus on disk into ``Sample`` objects: a path to an image plus the labels it
has, and a face box / landmarks where the corpus gives them. Turning samples into tf.Examples
(decoding, face detection) is ``affect_tf.data.convert``'s job, so readers stay fast and pure.
Rows that cannot be used are never dropped silently: they go into a ``SkipReport`` with the
reason, the file and the field.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from pathlib import Path

import numpy as np

from affect_tf.core.errors import UserError
from affect_tf.core.labels import VA_RANGE, FaceLabels


class CorpusError(UserError):
    """The corpus as a whole cannot be read (missing root, wrong header of its index file...)."""


@dataclasses.dataclass(kw_only=True)
class Sample(FaceLabels):
    """One image of a corpus with the labels it carries, before decoding and detection.

    Attributes:
        path: The image file.
        bbox: Face box ``(x, y, w, h)`` in pixels, or None when the corpus gives none.
        landmarks: ``(5, 2)`` landmarks in pixels, or None.
        aligned: True when the image already is an aligned face crop (Aff-Wild2
            ``cropped_aligned``): the box is the whole image and the landmarks the template's.
        Plus the ``FaceLabels`` fields.
    """

    path: Path
    bbox: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    aligned: bool = False


class SkipReport:
    """Counts skipped records by reason and keeps a few examples of each (file, field, detail).

    Also counts *notes*: values that were masked out rather than skipped (e.g. an Aff-Wild2
    line whose valence is out of range masks VA for that frame but keeps its AUs).
    """

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self.skipped: collections.Counter[str] = collections.Counter()
        self.notes: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, list[str]] = collections.defaultdict(list)

    def skip(self, reason: str, where: str, detail: str = "", count: int = 1) -> None:
        """Records that ``count`` records were skipped for ``reason`` at ``where``."""
        self.skipped[reason] += count
        self._example(reason, where, detail)

    def note(self, reason: str, where: str, detail: str = "") -> None:
        """Records a value that was masked out (kept the record, lost one label)."""
        self.notes[reason] += 1
        self._example(reason, where, detail)

    def _example(self, reason: str, where: str, detail: str) -> None:
        if len(self.examples[reason]) < self.keep:
            self.examples[reason].append(f"{where}: {detail}" if detail else where)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict:
        """A JSON-friendly summary."""
        return {
            "skipped": dict(sorted(self.skipped.items())),
            "masked": dict(sorted(self.notes.items())),
            "examples": {k: v for k, v in sorted(self.examples.items())},
        }

    def format(self) -> str:
        """Human-readable lines: each reason with its count and first examples."""
        lines = []
        for title, counter in (("skipped", self.skipped), ("masked", self.notes)):
            for reason, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {title} {count:>7d}  {reason}")
                lines.extend(f"      e.g. {e}" for e in self.examples[reason][:3])
        return "\n".join(lines)


def require_dir(root: str | Path, what: str) -> Path:
    """Returns ``root`` as a Path, or raises ``CorpusError`` if it is not a directory."""
    path = Path(root)
    if not path.is_dir():
        raise CorpusError(
            f"Expected the {what} root to be a directory. Received: root={str(path)!r}"
        )
    return path


def parse_va(text: str | float | None) -> float | None:
    """Parses a valence/arousal cell; None for an empty cell or a JSON null.

    Raises:
        ValueError: If the value is not a finite number.
    """
    if text is None:
        return None
    text = str(text).strip()
    if text == "":
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not finite: {text!r}")
    return value


def va_in_range(value: float) -> bool:
    """True when ``value`` lies in the VA range [-1, 1]."""
    return VA_RANGE[0] <= value <= VA_RANGE[1]


def parse_points(text: str, count: int, where: str) -> np.ndarray:
    """Parses ``"x;y;x;y..."`` (or comma/space separated) into a ``(count, 2)`` array.

    Raises:
        ValueError: With the expected and received number of values.
    """
    parts = [p for p in str(text).replace(",", ";").replace(" ", ";").split(";") if p != ""]
    if len(parts) != 2 * count:
        raise ValueError(
            f"Expected {2 * count} numbers ({count} points as x;y). "
            f"Received: {len(parts)} values in {where}"
        )
    points = np.asarray([float(p) for p in parts], dtype=np.float32).reshape(count, 2)
    if not np.all(np.isfinite(points)):
        raise ValueError(f"Expected finite landmark coordinates. Received: {text!r} in {where}")
    return points
