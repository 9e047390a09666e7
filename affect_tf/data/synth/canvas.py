"""Drawing primitives of the SynthAffect renderer: a supersampled canvas in face coordinates
(roll, yaw, pitch and perspective-free projection), ellipses, curves and the backgrounds."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from affect_tf.data.synth.labels import Pose


class Canvas:
    """A supersampled RGB canvas with a face-local -> pixel mapping (roll, yaw, pitch, scale,
    shift)."""

    def __init__(self, image: np.ndarray, pose: Pose, ss: int) -> None:
        self.image = image
        self.ss = ss
        self.pose = pose
        self._cos, self._sin = math.cos(pose.roll), math.sin(pose.roll)
        self._ycos, self._ysin = math.cos(pose.yaw), math.sin(pose.yaw)
        self._pcos, self._psin = math.cos(pose.pitch), math.sin(pose.pitch)

    def project(self, points: np.ndarray, depth: float | np.ndarray = 0.0) -> np.ndarray:
        """Face-local points (x right, y down, 1 = face half-width) -> output-pixel coordinates."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        # Yaw: compress x, shift by depth (features in front of the face plane move more).
        x = p[:, 0] * self._ycos + np.asarray(depth) * self._ysin
        # Pitch: compress y, shift by depth the same way (looking down moves the nose down).
        y = p[:, 1] * self._pcos + np.asarray(depth) * self._psin
        r = self.pose.radius
        px = self.pose.cx + r * (x * self._cos - y * self._sin)
        py = self.pose.cy + r * (x * self._sin + y * self._cos)
        return np.stack([px, py], axis=1)

    def _pix(self, points: np.ndarray, depth: float | np.ndarray = 0.0) -> np.ndarray:
        # cv2 draws with 4 fractional bits (shift=4); pixel centres are at integer coordinates.
        q = (self.project(points, depth) + 0.5) * self.ss - 0.5
        return np.round(q * 16).astype(np.int32)

    def poly(self, points, colour, depth=0.0, alpha: float = 1.0) -> None:
        self._blend(
            lambda im: cv2.fillPoly(im, [self._pix(points, depth)], pixel(colour), cv2.LINE_AA, 4),
            alpha,
        )

    def line(self, points, colour, width: float, depth=0.0, alpha: float = 1.0) -> None:
        thickness = max(1, int(round(width * self.pose.radius * self.ss)))
        self._blend(
            lambda im: cv2.polylines(
                im,
                [self._pix(points, depth)],
                False,
                pixel(colour),
                thickness,
                cv2.LINE_AA,
                4,
            ),
            alpha,
        )

    def _blend(self, draw, alpha: float) -> None:
        if alpha >= 0.999:
            draw(self.image)
            return
        if alpha <= 0.01:
            return
        layer = self.image.copy()
        draw(layer)
        cv2.addWeighted(layer, alpha, self.image, 1.0 - alpha, 0.0, dst=self.image)


def pixel(colour) -> tuple[int, int, int]:
    """A colour as the int tuple OpenCV draws with (clipped to [0, 255])."""
    return tuple(int(np.clip(v, 0, 255)) for v in colour)


def ellipse(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    n: int = 48,
    t0: float = 0.0,
    t1: float = 2 * math.pi,
) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def draw_background(image: np.ndarray, rng: np.random.Generator) -> None:
    h, w = image.shape[:2]
    base = rng.uniform(40, 220, 3)
    image[:] = base.astype(np.uint8)
    # Soft gradient plus clutter: shapes and lines of random colours, some face-coloured.
    for _ in range(int(rng.integers(4, 14))):
        colour = pixel(rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        x, y = (int(v) for v in rng.uniform(0, [w, h]))
        s = int(rng.uniform(0.05, 0.35) * w)
        if kind == 0:
            cv2.rectangle(
                image, (x, y), (x + s, y + int(s * rng.uniform(0.3, 2))), colour, -1, cv2.LINE_AA
            )
        elif kind == 1:
            cv2.circle(image, (x, y), max(1, s // 2), colour, -1, cv2.LINE_AA)
        else:
            x2, y2 = (int(v) for v in rng.uniform(0, [w, h]))
            cv2.line(
                image, (x, y), (x2, y2), colour, max(1, int(rng.uniform(1, 0.03 * w))), cv2.LINE_AA
            )


# scikit-image's bundled photographs without a face in them (astronaut and camera have one).
PHOTOS = (
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "coins",
    "moon",
    "page",
    "text",
    "horse",
    "clock",
    "brick",
    "grass",
    "gravel",
    "colorwheel",
)


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """The bundled photographs as RGB uint8 (loaded once per process, no download)."""
    import skimage.data

    photos = []
    for name in PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype != np.uint8:  # e.g. horse is boolean
            image = (image.astype(np.float32) * (255.0 / max(float(image.max()), 1.0))).astype(
                np.uint8
            )
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(image[..., :3]))
    return tuple(photos)


def draw_photo_background(image: np.ndarray, rng: np.random.Generator) -> None:
    """Fills ``image`` with a random crop (scale, position, flip) of a bundled photograph."""
    h, w = image.shape[:2]
    photo = _photos()[int(rng.integers(len(PHOTOS)))]
    ph, pw = photo.shape[:2]
    side = int(rng.uniform(0.35, 1.0) * min(ph, pw))
    y, x = int(rng.integers(0, ph - side + 1)), int(rng.integers(0, pw - side + 1))
    crop = photo[y : y + side, x : x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    image[:] = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
