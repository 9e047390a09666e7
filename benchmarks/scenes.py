"""Test scenes composed from the real photos scikit-image ships: a group photo of faces of many
sizes and a video of a moving face, for the detector benchmark and tests.

The faces are crops of ``skimage.data.astronaut()`` (a real photo, public domain: NASA); the
backgrounds are other skimage photos. Deterministic: the same call gives the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Eileen Collins' head in astronaut(): 170 x 200 px with hair and chin.
HEAD = (slice(30, 230), slice(140, 310))
# Where the group photo puts heads: (x, y, scale of the 170 x 200 head) on a 1280 x 720 canvas.
GROUP = (
    (40, 300, 0.5),
    (250, 250, 0.7),
    (480, 200, 1.0),
    (760, 260, 0.8),
    (1000, 320, 0.6),
    (1150, 100, 0.4),
    (600, 560, 0.45),
)


def head() -> np.ndarray:
    """The astronaut's head, RGB uint8 (200, 170, 3)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[HEAD])


def _background(width: int, height: int) -> np.ndarray:
    import cv2
    from skimage import data

    return (cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_AREA) // 2).astype(
        np.uint8
    )


def group_photo(width: int = 1280, height: int = 720) -> tuple[np.ndarray, list[tuple]]:
    """``(RGB image, head boxes (x, y, w, h))``: 7 heads from 68 x 80 to 170 x 200 px (faces
    of ~35 to ~90 px) on a darkened photo of a coffee cup, scaled to ``width x height``."""
    import cv2

    canvas = _background(width, height)
    face, sx, sy = head(), width / 1280, height / 720
    boxes = []
    for x, y, scale in GROUP:
        f = cv2.resize(face, None, fx=scale * sx, fy=scale * sy, interpolation=cv2.INTER_AREA)
        x, y = round(x * sx), round(y * sy)
        h, w = min(f.shape[0], height - y), min(f.shape[1], width - x)
        canvas[y : y + h, x : x + w] = f[:h, :w]
        boxes.append((x, y, w, h))
    return canvas, boxes


def moving_face_frames(width: int, height: int, frames: int = 150):
    """Frames (RGB) of the astronaut's head panning across a photo while zooming in and out,
    half hidden by a bar for frames 40-59, and a second, smaller head entering from the right
    in the last third; yields ``(frame, main head box)``."""
    import cv2

    background = _background(width, height)
    face = head()
    for i in range(frames):
        t = i / max(frames - 1, 1)
        scale = (0.45 + 0.25 * np.sin(2 * np.pi * t)) * height / 480
        f = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = f.shape[:2]
        x = round(0.1 * width + t * (0.5 * width - w / 2))
        y = round(0.5 * height - h / 2 + 0.1 * height * np.sin(4 * np.pi * t))
        frame = background.copy()
        frame[y : y + h, x : x + w] = f
        if 40 <= i < 60:  # partial occlusion: the lower half of the face
            frame[y + h // 2 : y + h, x : x + w] = 60
        if t > 2 / 3:
            g = cv2.resize(face, None, fx=scale * 0.6, fy=scale * 0.6)
            gx = round(width - (t - 2 / 3) * 3 * 0.35 * width)
            gy = round(0.2 * height)
            gw = min(g.shape[1], width - gx)
            if gw > 0:
                frame[gy : gy + g.shape[0], gx : gx + gw] = g[:, :gw]
        yield frame, (x, y, w, h)


def write_moving_face_video(path: str | Path, width: int, height: int, frames: int = 150) -> Path:
    """``moving_face_frames`` as an mp4 (25 frames/s) at ``path``."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"Expected OpenCV to write an mp4. Received: cannot open {path}")
    for frame, _ in moving_face_frames(width, height, frames):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path
