"""Manifest corpora: the generic CSV / JSONL format users write for their own labelled faces.

Columns (CSV header or JSONL keys); only ``path`` is required, every label is optional:

- ``path``: the image, relative to the manifest's folder or absolute.
- ``expression``: a name (``Happiness``, ``happy``, ...) or an index 0-7.
- ``valence``, ``arousal``: floats in [-1, 1], both or neither.
- ``AU1`` ... ``AU26``: 0/1 for any subset of the 12 ABAW AUs.
- ``box_x, box_y, box_w, box_h`` (or AffectNet's ``face_x, face_y, face_width, face_height``).
- ``landmarks``: 10 numbers ``x;y;...`` (JSONL: a list of 10 or of 5 pairs), in the order
  left eye, right eye, nose, mouth left, mouth right (image left/right).
- ``video_id``, ``frame``, ``source``.

An empty cell (JSONL: a missing key or null) means "not labelled"; so does ``-1`` for an AU or
the expression. Anything else outside its range skips the row, with the reason counted.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from affect_tf.data.corpus import (
    CorpusError,
    Sample,
    SkipReport,
    parse_points,
    parse_va,
    require_dir,
    va_in_range,
)
from affect_tf.labels import AUS, au_index, expression_index

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
BOX_COLUMNS = (
    ("box_x", "box_y", "box_w", "box_h"),
    ("face_x", "face_y", "face_width", "face_height"),
)
_AU_COLUMN = re.compile(r"^au\d+$", re.IGNORECASE)
# The columns this format defines; anything else is ignored (and reported once).
KNOWN_COLUMNS = {
    "path",
    "expression",
    "valence",
    "arousal",
    "landmarks",
    "video_id",
    "frame",
    "source",
    *BOX_COLUMNS[0],
    *BOX_COLUMNS[1],
}


def find_manifest(root: str | Path) -> Path:
    """Returns the ``manifest.csv`` / ``manifest.jsonl`` of a corpus folder (or the file itself).

    Raises:
        CorpusError: If the folder is missing or holds no manifest.
    """
    path = Path(root)
    if path.is_file():
        return path
    folder = require_dir(path, "manifest corpus")
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise CorpusError(
        f"Expected {' or '.join(MANIFEST_NAMES)} in the manifest corpus folder. "
        f"Received: root={str(folder)!r} without either"
    )


def _rows(manifest: Path, report: SkipReport) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields (line number, row) from a CSV or JSONL manifest."""
    if manifest.stat().st_size == 0:
        raise CorpusError(f"Expected a header and rows. Received: an empty file {str(manifest)!r}")
    if manifest.suffix.lower() == ".jsonl":
        with manifest.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    report.skip("malformed_line", f"{manifest}:{number}", f"invalid JSON ({e.msg})")
                    continue
                if not isinstance(row, dict):
                    report.skip("malformed_line", f"{manifest}:{number}", "expected a JSON object")
                    continue
                yield number, row
        return
    with manifest.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "path" not in header:
            raise CorpusError(
                f"Expected a 'path' column in the manifest header. "
                f"Received: columns={header} in {str(manifest)!r}"
            )
        reader.fieldnames = header
        for number, row in enumerate(reader, start=2):
            if None in row:  # more cells than header columns
                report.skip("malformed_line", f"{manifest}:{number}", "more cells than columns")
                continue
            yield number, {k: v for k, v in row.items() if v is not None and v.strip() != ""}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _parse_au(value: Any) -> int | None:
    """0/1 -> int, -1 or empty -> None (not labelled); raises ValueError otherwise."""
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return int(text == "true")
    number = float(text)
    if number == -1:
        return None
    if number not in (0.0, 1.0):
        raise ValueError(f"{value!r}")
    return int(number)


def row_to_sample(row: dict[str, Any], where: str, base: Path, report: SkipReport) -> Sample | None:
    """Converts one manifest row to a ``Sample``, or records why it was skipped and returns None."""
    if _is_missing(row.get("path")):
        report.skip("missing_path", where, "field=path is empty")
        return None
    path = Path(str(row["path"]).strip())
    if not path.is_absolute():
        path = base / path
    sample = Sample(path=path, source=str(row.get("source") or "manifest"))

    # Expression.
    value = row.get("expression")
    if not _is_missing(value) and str(value).strip() != "-1":
        try:
            sample.expression = expression_index(value)
            sample.expr_mask = 1
        except ValueError as e:
            report.skip("expression_invalid", where, f"field=expression: {e}")
            return None

    # Valence / arousal: both or neither.
    try:
        valence = parse_va(row.get("valence"))
        arousal = parse_va(row.get("arousal"))
    except ValueError as e:
        report.skip("va_invalid", where, f"field=valence/arousal: expected a float ({e})")
        return None
    if (valence is None) != (arousal is None):
        missing = "arousal" if arousal is None else "valence"
        report.skip("va_incomplete", where, f"field={missing} is empty while its pair is set")
        return None
    if valence is not None:
        for name, v in (("valence", valence), ("arousal", arousal)):
            if not va_in_range(v):
                report.skip(
                    f"{name}_out_of_range", where, f"field={name}: expected [-1, 1], got {v}"
                )
                return None
        sample.valence, sample.arousal, sample.va_mask = valence, arousal, 1

    # AUs: any subset of the 12, by column name; JSONL may also nest them under "au".
    au_cells = {k: v for k, v in row.items() if _AU_COLUMN.match(str(k))}
    if isinstance(row.get("au"), dict):
        au_cells.update(row["au"])
    for column, value in au_cells.items():
        try:
            index = au_index(column)
        except ValueError:
            report.note("unknown_au_column_ignored", where, f"field={column}")
            continue
        try:
            occurrence = _parse_au(value)
        except ValueError:
            report.skip(
                "au_invalid", where, f"field={column}: expected 0, 1 or empty, got {value!r}"
            )
            return None
        if occurrence is not None:
            sample.au[index], sample.au_mask[index] = occurrence, 1

    if not sample.has_any_label:
        report.skip("no_labels", where, "no expression, valence/arousal or AU value")
        return None

    # Geometry, when given.
    for columns in BOX_COLUMNS:
        present = [not _is_missing(row.get(c)) for c in columns]
        if any(present):
            try:
                if not all(present):
                    raise ValueError("all four box columns are needed")
                box = tuple(float(row[c]) for c in columns)
                if not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
                    raise ValueError("w and h must be > 0")
            except ValueError as e:
                report.skip("bbox_invalid", where, f"fields={list(columns)}: {e}")
                return None
            sample.bbox = box  # type: ignore[assignment]
            break
    value = row.get("landmarks")
    if not _is_missing(value):
        try:
            if isinstance(value, list):
                points = np.asarray(value, dtype=np.float32).reshape(5, 2)
            else:
                points = parse_points(value, 5, "field=landmarks")
        except ValueError as e:
            report.skip("landmarks_invalid", where, f"field=landmarks: {e}")
            return None
        sample.landmarks = points

    # Grouping: images without a video id are their own "video" (split unit).
    sample.video_id = str(row.get("video_id") or row["path"]).strip()
    if not _is_missing(row.get("frame")):
        try:
            sample.frame = int(float(row["frame"]))
        except ValueError:
            report.skip(
                "frame_invalid", where, f"field=frame: expected an integer, got {row['frame']!r}"
            )
            return None
    return sample


def read_manifest(root: str | Path, report: SkipReport | None = None) -> Iterator[Sample]:
    """Yields the samples of a manifest corpus (folder with manifest.csv/.jsonl, or the file).

    Args:
        root: The corpus folder, or the manifest file itself.
        report: Collects skipped rows by reason; a fresh one is used when None.

    Raises:
        CorpusError: If the root or manifest is missing, empty or lacks a ``path`` column.
    """
    report = report if report is not None else SkipReport()
    manifest = find_manifest(root)
    base = manifest.parent
    unknown_reported: set[str] = set()
    for number, row in _rows(manifest, report):
        for key in row:
            if key not in KNOWN_COLUMNS and key != "au" and not _AU_COLUMN.match(str(key)):
                if key not in unknown_reported:
                    unknown_reported.add(key)
                    report.note("unknown_column_ignored", str(manifest), f"column={key}")
        sample = row_to_sample(row, f"{manifest}:{number}", base, report)
        if sample is not None:
            yield sample


def manifest_columns() -> list[str]:
    """The CSV header ``affect-tf synth`` writes: every column this format defines."""
    return [
        "path",
        "video_id",
        "frame",
        "source",
        "expression",
        "valence",
        "arousal",
        *AUS,
        *BOX_COLUMNS[0],
        "landmarks",
    ]
