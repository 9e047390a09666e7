"""Aff-Wild2 (ABAW) reader: the three challenge folders and the MTL set, joined per frame.

Layout under the root::

    VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>.txt    valence,arousal; -5 invalid
    EXPR_Recognition_Challenge/{Train_Set,Validation_Set}/<video>.txt class names; -1 invalid
    AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt     AU1..AU26; -1 invalid
    MTL_Challenge/{train_set,validation_set}.{txt,csv}   image,valence,arousal,expression,AU1..AU26
    cropped_aligned/<video>/00001.jpg ...                aligned 112x112 faces

Line i after a header is frame image ``cropped_aligned/<video>/%05d.jpg`` % i. Labels of the same
(video, frame) from different files are joined into one sample; a frame with no valid label at
all is skipped and counted. The frames are already aligned crops: no detection is needed, the
box is the whole image and the landmarks are the alignment template's.
"""

from __future__ import annotations

import collections
import csv
from collections.abc import Iterator
from pathlib import Path

from affect_tf.core.labels import (
    AFFWILD2_AU_INVALID,
    AFFWILD2_EXPR_INVALID,
    AFFWILD2_VA_INVALID,
    AUS,
    EXPRESSIONS,
    NUM_AUS,
    NUM_EXPRESSIONS,
)
from affect_tf.data.corpus import CorpusError, Sample, SkipReport, require_dir, va_in_range

TASK_DIRS = {
    "va": "VA_Estimation_Challenge",
    "expr": "EXPR_Recognition_Challenge",
    "au": "AU_Detection_Challenge",
}
SPLIT_DIRS = {"train": "Train_Set", "validation": "Validation_Set"}
MTL_DIR = "MTL_Challenge"
MTL_FILES = {"train": "train_set", "validation": "validation_set"}
IMAGES_DIR = "cropped_aligned"
HEADERS = {
    "va": ("valence", "arousal"),
    "expr": tuple(name.lower() for name in EXPRESSIONS),
    "au": tuple(a.lower() for a in AUS),
}
# Values per line: the EXPR files name all 8 classes in the header but hold one index per line.
WIDTHS = {"va": 2, "expr": 1, "au": NUM_AUS}
MTL_HEADER = ("image", "valence", "arousal", "expression", *(a.lower() for a in AUS))

# Per frame, the labels found so far: "va" -> (v, a), "expr" -> int, "au" -> (values, mask).
FrameLabels = dict


def frame_image(root: Path, video: str, frame: int) -> Path:
    """The cropped_aligned image of a (1-based) frame number."""
    return root / IMAGES_DIR / video / f"{frame:05d}.jpg"


def _parse_va(cells: list[str], where: str, report: SkipReport) -> tuple[float, float] | None:
    try:
        valence, arousal = (float(c) for c in cells)
    except ValueError:
        report.note("va_malformed", where, f"expected 'valence,arousal', got {','.join(cells)!r}")
        return None
    if valence == AFFWILD2_VA_INVALID or arousal == AFFWILD2_VA_INVALID:
        return None
    for name, value in (("valence", valence), ("arousal", arousal)):
        if not va_in_range(value):
            report.note(
                f"{name}_out_of_range", where, f"field={name}: expected [-1, 1] or -5, got {value}"
            )
            return None
    return valence, arousal


def _parse_expr(cell: str, where: str, report: SkipReport) -> int | None:
    try:
        value = int(float(cell))
    except ValueError:
        report.note("expression_malformed", where, f"field=expression: got {cell!r}")
        return None
    if value == AFFWILD2_EXPR_INVALID:
        return None
    if not 0 <= value < NUM_EXPRESSIONS:
        report.note(
            "expression_out_of_range", where, f"field=expression: expected 0-7 or -1, got {value}"
        )
        return None
    return value


def _parse_au(
    cells: list[str], where: str, report: SkipReport
) -> tuple[list[int], list[int]] | None:
    values, mask = [0] * NUM_AUS, [0] * NUM_AUS
    for i, cell in enumerate(cells):
        try:
            value = int(float(cell))
        except ValueError:
            report.note("au_malformed", where, f"field={AUS[i]}: got {cell!r}")
            continue
        if value == AFFWILD2_AU_INVALID:
            continue
        if value not in (0, 1):
            report.note("au_invalid", where, f"field={AUS[i]}: expected 0, 1 or -1, got {value}")
            continue
        values[i], mask[i] = value, 1
    return (values, mask) if any(mask) else None


def _read_task_file(path: Path, task: str, report: SkipReport) -> tuple[dict[int, object], int]:
    """Reads one per-video annotation file.

    Returns:
        ({1-based frame: parsed value} for the valid lines, number of frames the file covers).
    """
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if not lines or not any(line.strip() for line in lines):
        report.skip("empty_file", str(path), f"no header and no frames ({task})")
        return {}, 0
    header = tuple(h.strip().lower() for h in lines[0].split(","))
    if header != HEADERS[task]:
        report.skip(
            "bad_header",
            str(path),
            f"expected {','.join(HEADERS[task])}, got {lines[0].strip()!r} "
            f"({len(lines) - 1} frames skipped)",
            count=max(len(lines) - 1, 1),
        )
        return {}, 0
    width = WIDTHS[task]
    out: dict[int, object] = {}
    for frame, line in enumerate(lines[1:], start=1):
        where = f"{path}:{frame + 1}"
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != width:
            report.note(f"{task}_malformed", where, f"expected {width} values, got {len(cells)}")
            continue
        if task == "va":
            value = _parse_va(cells, where, report)
        elif task == "expr":
            value = _parse_expr(cells[0], where, report)
        else:
            value = _parse_au(cells, where, report)
        if value is not None:
            out[frame] = value
    return out, len(lines) - 1


def _read_mtl(root: Path, split: str, report: SkipReport) -> dict[str, dict[int, FrameLabels]]:
    """Reads the MTL set (if present) into {video: {frame: labels}}."""
    folder = root / MTL_DIR
    candidates = [folder / f"{MTL_FILES[split]}{ext}" for ext in (".txt", ".csv")]
    path = next((c for c in candidates if c.is_file()), None)
    out: dict[str, dict[int, FrameLabels]] = collections.defaultdict(dict)
    if path is None:
        return out
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if first is None:
            report.skip("empty_file", str(path), "no header and no rows (MTL)")
            return out
        header = tuple(h.strip().lower() for h in first)
        if header != MTL_HEADER:
            rows = sum(1 for _ in reader)
            report.skip(
                "bad_header",
                str(path),
                f"expected {','.join(MTL_HEADER)}, got {','.join(first)!r} ({rows} rows skipped)",
                count=max(rows, 1),
            )
            return out
        for number, cells in enumerate(reader, start=2):
            where = f"{path}:{number}"
            cells = [c.strip() for c in cells]
            if len(cells) != len(MTL_HEADER):
                report.skip(
                    "malformed_line", where, f"expected {len(MTL_HEADER)} cells, got {len(cells)}"
                )
                continue
            image = Path(cells[0])
            try:
                video, frame = image.parent.as_posix(), int(image.stem)
            except ValueError:
                report.skip(
                    "malformed_line",
                    where,
                    f"field=image: expected <video>/<frame>.jpg, got {cells[0]!r}",
                )
                continue
            labels: FrameLabels = {}
            va = _parse_va(cells[1:3], where, report)
            if va is not None:
                labels["va"] = va
            expr = _parse_expr(cells[3], where, report)
            if expr is not None:
                labels["expr"] = expr
            au = _parse_au(cells[4:], where, report)
            if au is not None:
                labels["au"] = au
            if labels:
                out[video][frame] = labels
            else:
                report.skip("no_valid_label", where, "every label of the row is invalid")
    return out


def read_affwild2(
    root: str | Path, split: str = "train", report: SkipReport | None = None
) -> Iterator[Sample]:
    """Yields the samples of one Aff-Wild2 split, one per frame with at least one valid label.

    Args:
        root: Folder holding the challenge folders and ``cropped_aligned/``.
        split: ``"train"`` or ``"validation"``.
        report: Collects skipped frames/files and masked values by reason.

    Raises:
        CorpusError: If the root is missing or holds none of the annotation folders.
    """
    report = report if report is not None else SkipReport()
    root = require_dir(root, "Aff-Wild2")
    if split not in SPLIT_DIRS:
        raise CorpusError(f"Expected split in {sorted(SPLIT_DIRS)}. Received: split={split!r}")
    task_files: dict[str, dict[str, Path]] = {}
    for task, folder in TASK_DIRS.items():
        directory = root / folder / SPLIT_DIRS[split]
        task_files[task] = (
            {p.stem: p for p in sorted(directory.glob("*.txt"))} if directory.is_dir() else {}
        )
    mtl = _read_mtl(root, split, report)
    if not any(task_files.values()) and not mtl:
        expected = [f"{d}/{SPLIT_DIRS[split]}" for d in TASK_DIRS.values()]
        expected.append(f"{MTL_DIR}/{MTL_FILES[split]}.txt")
        raise CorpusError(
            f"Expected at least one of {expected} under the Aff-Wild2 root. "
            f"Received: root={str(root)!r} without any"
        )
    videos = sorted(set().union(*(files.keys() for files in task_files.values()), mtl.keys()))
    for video in videos:
        frames: dict[int, FrameLabels] = collections.defaultdict(dict)
        covered = 0  # frames that have a line in some per-task file
        for task, files in task_files.items():
            if video in files:
                values, length = _read_task_file(files[video], task, report)
                covered = max(covered, length)
                for frame, value in values.items():
                    frames[frame][task] = value
        # The MTL set fills in tasks the per-task files left empty for the same frame.
        for frame, labels in mtl.get(video, {}).items():
            for task, value in labels.items():
                frames[frame].setdefault(task, value)
        for frame in sorted(frames):
            labels = frames[frame]
            if not labels:
                continue
            path = frame_image(root, video, frame)
            if not path.is_file():
                report.skip(
                    "missing_file", str(path), f"labels for {video} frame {frame} but no image"
                )
                continue
            sample = Sample(path=path, aligned=True, video_id=video, frame=frame, source="affwild2")
            if "va" in labels:
                sample.valence, sample.arousal = labels["va"]
                sample.va_mask = 1
            if "expr" in labels:
                sample.expression, sample.expr_mask = labels["expr"], 1
            if "au" in labels:
                sample.au, sample.au_mask = (list(x) for x in labels["au"])
            yield sample
        # Frames with a line in some file but no valid value in any: skipped, and counted.
        unlabelled = sum(1 for frame in range(1, covered + 1) if not frames.get(frame))
        if unlabelled:
            report.skip(
                "no_valid_label",
                str(root / IMAGES_DIR / video),
                f"{unlabelled} frames",
                count=unlabelled,
            )
