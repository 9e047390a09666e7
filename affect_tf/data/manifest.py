"""Manifest corpora: the generic CSV / JSONL format users write for their own labelled faces.

Columns (CSV header or JSONL keys); only ``path`` is required, every label is optional:

- ``path``: the image, relative to the manifest's folder or absolute.
- ``expression``: a name (``Happiness``, ``happy``, ...) or an index 0-7.
- ``expression_dist``: a soft label, 8 numbers >= 0 in the ABAW class order (CSV ``p;p;...``,
  JSONL a list), normalised; without ``expression`` its most-voted class is the label.
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
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from affect_tf.core.labels import (
    AUS,
    MAX_FRAME,
    au_index,
    check_expression_dist,
    expression_index,
    unique_top,
)
from affect_tf.data.corpus import (
    CorpusError,
    Sample,
    SkipReport,
    parse_points,
    parse_va,
    require_dir,
    va_in_range,
)

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
    "expression_dist",
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
    text = _decode(manifest)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "path" not in header:
        raise CorpusError(
            f"Expected a 'path' column in the manifest header. "
            f"Received: columns={header} in {str(manifest)!r}"
        )
    reader.fieldnames = header
    last_line = reader.line_num
    for row in reader:
        first, last_line = last_line + 1, reader.line_num
        if None in row:  # more cells than header columns
            report.skip("malformed_line", f"{manifest}:{first}", "more cells than columns")
            continue
        if last_line > first and any("\n" in str(v) for v in row.values()):
            report.skip(
                "unclosed_quote",
                f"{manifest}:{first}",
                f"a quote opened on line {first} runs to line {last_line}; "
                f"{last_line - first + 1} lines read as one row",
            )
            continue
        yield first, {k: v for k, v in row.items() if v is not None and v.strip() != ""}


def _decode(manifest: Path) -> str:
    """The manifest's text (UTF-8, BOM allowed); another encoding is named, not guessed."""
    data = manifest.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        latin = data.decode("latin-1", errors="replace").splitlines()[line - 1][:80]
        raise CorpusError(
            f"Expected a UTF-8 manifest. Received: byte 0x{data[e.start]:02x} on line {line} of "
            f"{str(manifest)!r} (the line reads {latin!r} as Latin-1/Windows-1252; re-save the "
            "file as UTF-8)"
        ) from None


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


class _Skip(Exception):
    """A row that cannot be used: ``reason`` (the count's key) and ``detail`` (field, value)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def row_to_sample(row: dict[str, Any], where: str, base: Path, report: SkipReport) -> Sample | None:
    """Converts one manifest row to a ``Sample``, or records why it was skipped and returns None."""
    if _is_missing(row.get("path")):
        report.skip("missing_path", where, "field=path is empty")
        return None
    path = Path(str(row["path"]).strip())
    if not path.is_absolute():
        path = base / path
    sample = Sample(path=path, source=str(row.get("source") or "manifest"))
    try:
        _read_expression(row, sample)
        _read_va(row, sample)
        _read_aus(
            row, sample, lambda column: report.note("unknown_au_column_ignored", where, column)
        )
        if not sample.has_any_label:
            raise _Skip("no_labels", "no expression, valence/arousal or AU value")
        _read_geometry(row, sample)
        _read_grouping(row, sample)
    except _Skip as skip:
        report.skip(skip.reason, where, skip.detail)
        return None
    return sample


def _read_expression(row: dict[str, Any], sample: Sample) -> None:
    value = row.get("expression")
    if not _is_missing(value) and str(value).strip() != "-1":
        try:
            sample.expression = expression_index(value)
        except ValueError as e:
            raise _Skip("expression_invalid", f"field=expression: {e}") from None
        sample.expr_mask = 1
    dist = row.get("expression_dist")
    if _is_missing(dist):
        return
    if isinstance(dist, str):  # CSV: 8 numbers "p;p;...", in the ABAW class order
        dist = [d for d in re.split(r"[;\s]+", dist.strip().strip("[]")) if d]
    try:
        sample.expression_dist = check_expression_dist(dist)
    except ValueError as e:
        raise _Skip("expression_dist_invalid", str(e)) from None
    if not sample.expr_mask:  # the distribution alone: its most-voted class is the label
        top = unique_top(sample.expression_dist)
        if top is None:
            raise _Skip(
                "expression_dist_invalid",
                "field=expression_dist: tied top classes and no expression column to decide",
            )
        sample.expression, sample.expr_mask = top, 1


def _read_va(row: dict[str, Any], sample: Sample) -> None:
    """Valence and arousal: both or neither, each in [-1, 1]."""
    try:
        valence = parse_va(row.get("valence"))
        arousal = parse_va(row.get("arousal"))
    except ValueError as e:
        raise _Skip("va_invalid", f"field=valence/arousal: expected a float ({e})") from None
    if (valence is None) != (arousal is None):
        missing = "arousal" if arousal is None else "valence"
        raise _Skip("va_incomplete", f"field={missing} is empty while its pair is set")
    if valence is None:
        return
    for name, v in (("valence", valence), ("arousal", arousal)):
        if not va_in_range(v):
            raise _Skip(f"{name}_out_of_range", f"field={name}: expected [-1, 1], got {v}")
    sample.valence, sample.arousal, sample.va_mask = valence, arousal, 1


def _read_aus(row: dict[str, Any], sample: Sample, note_unknown: Callable[[str], None]) -> None:
    """AUs: any subset of the 12, by column name; JSONL may also nest them under "au". AU-like
    columns that name no AU are ignored and passed to ``note_unknown`` (``field=COLUMN``)."""
    au_cells = {k: v for k, v in row.items() if _AU_COLUMN.match(str(k))}
    if isinstance(row.get("au"), dict):
        au_cells.update(row["au"])
    for column, value in au_cells.items():
        try:
            index = au_index(column)
        except ValueError:
            note_unknown(f"field={column}")
            continue
        try:
            occurrence = _parse_au(value)
        except ValueError:
            raise _Skip(
                "au_invalid", f"field={column}: expected 0, 1 or empty, got {value!r}"
            ) from None
        if occurrence is not None:
            sample.au[index], sample.au_mask[index] = occurrence, 1


def _read_geometry(row: dict[str, Any], sample: Sample) -> None:
    """The face box (the first complete set of ``BOX_COLUMNS``) and 5 landmarks, when given."""
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
                raise _Skip("bbox_invalid", f"fields={list(columns)}: {e}") from None
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
            raise _Skip("landmarks_invalid", f"field=landmarks: {e}") from None
        sample.landmarks = points


def _read_grouping(row: dict[str, Any], sample: Sample) -> None:
    """Images without a video id are their own "video" (the split unit)."""
    sample.video_id = str(row.get("video_id") or row["path"]).strip()
    if not _is_missing(row.get("frame")):
        frame = parse_frame(row["frame"])
        if frame is None:
            raise _Skip(
                "frame_invalid",
                f"field=frame: expected an integer in [0, {MAX_FRAME}], got {row['frame']!r}",
            )
        sample.frame = frame


def parse_frame(value: Any) -> int | None:
    """A frame index from a manifest cell (``7``, ``"7"``, ``7.0``), or None when it is not a
    whole number in [0, ``MAX_FRAME``] (``-3``, ``2.5``, ``1e30``, ``"abc"``, a 23-digit
    number that does not fit the tf.Example's int64)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        frame = value
    else:
        text = str(value).strip()
        try:
            frame = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            if not number.is_integer():  # 2.5, inf, nan
                return None
            frame = int(number)
    return frame if 0 <= frame <= MAX_FRAME else None


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
    seen: dict[tuple, int] = {}
    for number, row in _rows(manifest, report):
        for key in row:
            if key not in KNOWN_COLUMNS and key != "au" and not _AU_COLUMN.match(str(key)):
                if key not in unknown_reported:
                    unknown_reported.add(key)
                    report.note("unknown_column_ignored", str(manifest), f"column={key}")
        sample = row_to_sample(row, f"{manifest}:{number}", base, report)
        if sample is None:
            continue
        # The same face twice counts twice in training and evaluation: kept (a corpus may
        # weight faces so), but counted and reported with the line it repeats.
        face = (
            str(sample.path),
            sample.bbox,
            None if sample.landmarks is None else tuple(np.ravel(sample.landmarks).tolist()),
        )
        if face in seen:
            report.note("duplicate_row", f"{manifest}:{number}", f"repeats line {seen[face]}")
        else:
            seen[face] = number
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
