"""Pictures of predictions: face overlays (box, top expression, active AUs, a VA point), overlay
videos, and valence/arousal over time (raw and smoothed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affect_tf.core import outputs as tg
from affect_tf.core.files import replaced_atomically
from affect_tf.core.outputs import active_aus

_GREEN = (60, 200, 90)
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    import cv2

    thickness = max(1, int(round(scale * 2)))
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, _BLACK, thickness + 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, _WHITE, thickness)


def draw_face(image: np.ndarray, row: pd.Series | dict, au_threshold: float = 0.5) -> np.ndarray:
    """Draws one result row onto an RGB uint8 image (in place; also returned).

    Box, ``"<expression> <p>"`` above it, the active AUs below it, and a valence/arousal
    inset (the circumplex: valence right, arousal up) at the box's top right.
    """
    import cv2

    height, width = image.shape[:2]
    x, y, w, h = (int(round(float(row[k]))) for k in ("x", "y", "w", "h"))
    scale = max(0.35, min(1.2, w / 220))
    line = max(1, int(round(w / 80)))
    cv2.rectangle(image, (x, y), (x + w, y + h), _GREEN, line)
    top = str(row["expression"])
    _text(image, f"{top} {float(row[top]):.2f}", (x, max(12, y - 6)), scale)
    aus = active_aus(row, au_threshold)
    if aus:
        _text(image, " ".join(aus), (x, min(height - 4, y + h + int(18 * scale) + 2)), scale * 0.8)
    # VA inset: a square with axes; the point is (valence, arousal) in [-1, 1]^2.
    side = max(24, int(h * 0.35))
    x0 = min(width - side - 1, x + w + 4)
    y0 = max(0, y)
    cv2.rectangle(image, (x0, y0), (x0 + side, y0 + side), _WHITE, 1)
    cx, cy = x0 + side // 2, y0 + side // 2
    cv2.line(image, (x0, cy), (x0 + side, cy), _WHITE, 1)
    cv2.line(image, (cx, y0), (cx, y0 + side), _WHITE, 1)
    v, a = float(row[tg.VALENCE]), float(row[tg.AROUSAL])
    point = (int(cx + v * side / 2), int(cy - a * side / 2))
    cv2.circle(image, point, max(2, side // 10), (230, 60, 60), -1)
    return image


def overlay_image(image: np.ndarray, rows: pd.DataFrame, au_threshold: float = 0.5) -> np.ndarray:
    """A copy of ``image`` with every face of ``rows`` drawn."""
    out = np.ascontiguousarray(image.copy())
    for _, row in rows.iterrows():
        draw_face(out, row, au_threshold)
    return out


def write_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 92) -> Path:
    """Encodes RGB pixels with OpenCV and writes them with Python's file I/O, complete or
    absent (``replaced_atomically``): any file name Python can hold works (a non-UTF-8 name
    passed to ``cv2.imwrite`` as a surrogate-escaped string crashed the process).

    Raises:
        OSError: The file cannot be written.
        affect_tf.core.files.OutOfSpaceError: The disk is full.
    """
    import cv2

    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"Expected an image OpenCV can encode. Received: shape={rgb.shape}")
    with replaced_atomically(path) as partial:
        partial.write_bytes(encoded.tobytes())
    return Path(path)


def overlay_paths(sources: list[str], root: Path | None, out_dir: Path) -> dict[str, Path]:
    """Where each input's overlay goes: its path relative to ``root`` (the input folder; None:
    its name) with ``.jpg`` added unless it already ends so, numbered ``-2``, ``-3`` where two
    would still meet (``same.jpg`` and ``same.png`` used to be written to one file)."""
    paths: dict[str, Path] = {}
    used: set[Path] = set()
    for source in sources:
        relative = Path(source).relative_to(root) if root is not None else Path(Path(source).name)
        name = relative.name if relative.suffix.lower() == ".jpg" else relative.name + ".jpg"
        path = out_dir / relative.parent / name
        stem, number = path.name[: -len(".jpg")], 2
        while path in used:
            path = path.with_name(f"{stem}-{number}.jpg")
            number += 1
        used.add(path)
        paths[source] = path
    return paths


def write_overlay_video(
    video: str | Path, table: pd.DataFrame, out: str | Path, au_threshold: float = 0.5
) -> Path:
    """Re-reads ``video`` and writes it with the (smoothed) predictions drawn on each frame
    (mp4v); a frame that was not sampled shows the last sampled frame's face."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 30.0
    rows = table[table["face_found"].astype(bool)].set_index("frame")
    sampled = set(table["frame"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    index, current = 0, None
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(str(out), fourcc, fps, (frame.shape[1], frame.shape[0]))
            if index in rows.index:
                current = rows.loc[index]
            elif index in sampled:
                current = None  # sampled, no face
            if current is not None:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                frame = cv2.cvtColor(draw_face(rgb, current, au_threshold), cv2.COLOR_RGB2BGR)
            writer.write(frame)
            index += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return out


def plot_va(table: pd.DataFrame, out: str | Path, title: str | None = None) -> Path:
    """Valence and arousal over time: raw per-frame predictions (thin) and smoothed (thick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = table[table["face_found"].astype(bool)]
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.8), sharex=True)
    for ax, name in zip(axes, (tg.VALENCE, tg.AROUSAL), strict=True):
        t = found["time_s"].to_numpy()
        if f"{name}_raw" in found:
            ax.plot(t, found[f"{name}_raw"], lw=0.8, alpha=0.5, color="tab:gray", label="raw")
        label = f"smoothed ({table.attrs['smooth']})" if table.attrs.get("smooth") else name
        ax.plot(t, found[name], lw=2.0, color="tab:blue", label=label)
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or str(table.attrs.get("source", "")))
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
