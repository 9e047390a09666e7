"""AffectNet reader: ``training.csv`` / ``validation.csv`` with boxes and 68-point landmarks.

Layout under the root: the two CSVs and the image folder they point into (by default
``Manually_Annotated_Images/<subDirectory_filePath>``; the path is also tried relative to the
root). Columns: ``subDirectory_filePath, face_x, face_y, face_width, face_height,
facial_landmarks, expression, valence, arousal``; landmarks are 68 points ``x;y;x;y...``.
Codes are mapped to ABAW (``labels.AFFECTNET_TO_ABAW``), codes 8-10 (None, Uncertain,
Non-Face) are dropped and counted, and valence/arousal -2 means "not annotated".
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from affect_tf.core.labels import AFFECTNET_DROPPED, AFFECTNET_TO_ABAW, AFFECTNET_VA_NOT_ANNOTATED
from affect_tf.data.corpus import (
    CorpusError,
    Sample,
    SkipReport,
    parse_points,
    require_dir,
    va_in_range,
)

SPLIT_FILES = {"train": "training.csv", "validation": "validation.csv"}
IMAGE_DIRS = ("Manually_Annotated_Images", "Automatically_Annotated_Images", "")
COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)

# 68-point (iBUG) indices: 36-41 is the eye on the image's left, 42-47 the one on its right,
# 30 the nose tip, 48 and 54 the mouth corners.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT = 48
_MOUTH_RIGHT = 54


def landmarks68_to_5(points: np.ndarray) -> np.ndarray:
    """Reduces 68 iBUG landmarks ``(68, 2)`` to the contract's 5 points ``(5, 2)``."""
    points = np.asarray(points, dtype=np.float32).reshape(68, 2)
    return np.stack(
        [
            points[_LEFT_EYE].mean(axis=0),
            points[_RIGHT_EYE].mean(axis=0),
            points[_NOSE_TIP],
            points[_MOUTH_LEFT],
            points[_MOUTH_RIGHT],
        ]
    ).astype(np.float32)


def _resolve(root: Path, relative: str) -> Path:
    for folder in IMAGE_DIRS:
        candidate = root / folder / relative if folder else root / relative
        if candidate.exists():
            return candidate
    return root / IMAGE_DIRS[0] / relative


def read_affectnet(
    root: str | Path, split: str = "train", report: SkipReport | None = None
) -> Iterator[Sample]:
    """Yields the samples of one AffectNet split.

    Args:
        root: Folder holding ``training.csv``/``validation.csv`` and the image folders.
        split: ``"train"`` or ``"validation"``.
        report: Collects skipped rows by reason.

    Raises:
        CorpusError: If the root or the split's CSV is missing or its header is wrong.
    """
    report = report if report is not None else SkipReport()
    root = require_dir(root, "AffectNet")
    if split not in SPLIT_FILES:
        raise CorpusError(f"Expected split in {sorted(SPLIT_FILES)}. Received: split={split!r}")
    csv_path = root / SPLIT_FILES[split]
    if not csv_path.is_file():
        raise CorpusError(
            f"Expected {SPLIT_FILES[split]} in the AffectNet root. Received: root={str(root)!r}"
        )
    if csv_path.stat().st_size == 0:
        raise CorpusError(f"Expected a header and rows. Received: an empty file {str(csv_path)!r}")
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise CorpusError(
                f"Expected the AffectNet columns {list(COLUMNS)}. "
                f"Received: header={header} in {str(csv_path)!r} (missing {missing})"
            )
        col = {name: header.index(name) for name in COLUMNS}
        for number, cells in enumerate(reader, start=2):
            where = f"{csv_path}:{number}"
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) < len(header):
                report.skip(
                    "malformed_line", where, f"expected {len(header)} cells, got {len(cells)}"
                )
                continue
            sample = _row_to_sample(cells, col, where, root, report)
            if sample is not None:
                yield sample


def _row_to_sample(
    cells: list[str], col: dict[str, int], where: str, root: Path, report: SkipReport
) -> Sample | None:
    relative = cells[col["subDirectory_filePath"]].strip()
    try:
        code = int(float(cells[col["expression"]]))
    except ValueError:
        report.skip("expression_invalid", where, f"field=expression: {cells[col['expression']]!r}")
        return None
    if code in AFFECTNET_DROPPED:
        report.skip(f"dropped_{AFFECTNET_DROPPED[code]}", where, f"field=expression: code {code}")
        return None
    if code not in AFFECTNET_TO_ABAW:
        report.skip("expression_invalid", where, f"field=expression: expected 0-10, got {code}")
        return None
    try:
        valence = float(cells[col["valence"]])
        arousal = float(cells[col["arousal"]])
    except ValueError:
        report.skip("va_invalid", where, "field=valence/arousal: expected floats")
        return None
    va_mask = 1
    if valence == AFFECTNET_VA_NOT_ANNOTATED or arousal == AFFECTNET_VA_NOT_ANNOTATED:
        va_mask, valence, arousal = 0, 0.0, 0.0
    else:
        for name, value in (("valence", valence), ("arousal", arousal)):
            if not va_in_range(value):
                report.skip(
                    f"{name}_out_of_range",
                    where,
                    f"field={name}: expected [-1, 1] or -2, got {value}",
                )
                return None
    try:
        box = tuple(float(cells[col[c]]) for c in ("face_x", "face_y", "face_width", "face_height"))
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError("width and height must be > 0")
    except ValueError as e:
        report.skip("bbox_invalid", where, f"field=face_*: {e}")
        return None
    try:
        points68 = parse_points(cells[col["facial_landmarks"]], 68, "field=facial_landmarks")
    except ValueError as e:
        report.skip("landmarks_invalid", where, str(e))
        return None
    return Sample(
        path=_resolve(root, relative),
        bbox=box,  # type: ignore[arg-type]
        landmarks=landmarks68_to_5(points68),
        expression=AFFECTNET_TO_ABAW[code],
        expr_mask=1,
        valence=valence,
        arousal=arousal,
        va_mask=va_mask,
        # AffectNet has no subject ids: every image is its own split unit.
        video_id=relative,
        frame=0,
        source="affectnet",
    )
