"""Face detection: what every detector returns and offers, and which face to keep.

Detectors (``affect_tf.face.registry``: ``DETECTORS``, ``make_detector``): ``blazeface``
(MediaPipe's BlazeFace + face mesh through LiteRT, ``affect_tf.face.blazeface``; the default,
chosen by ``benchmarks/faces.py``) and ``mtcnn`` (``affect_tf.face.mtcnn``). Each returns
boxes, scores and the 5 landmarks in the contract's order, and can ``refine`` a face near a
previous box (video tracking). Which face to keep when an image has several is a policy: the
largest box (default; the subject of a portrait or a video) or the most confident one.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

import numpy as np

Policy = Literal["largest", "confident"]
POLICIES: tuple[str, ...] = ("largest", "confident")


@dataclasses.dataclass(frozen=True)
class Detection:
    """One detected face.

    Attributes:
        box: ``(x, y, w, h)`` in pixels.
        score: Detector confidence in [0, 1].
        landmarks: ``(5, 2)`` left eye, right eye, nose, mouth left, mouth right (image left/right).
        mesh: ``(468, 2)`` MediaPipe face mesh points when the detector has them, else None.
        detector: Which detector found the face (``blazeface``, ``mtcnn`` where BlazeFace's
            fallback found it, ``none``): conversion reports and result tables count them.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    mesh: np.ndarray | None = None
    detector: str = ""

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    def scaled(self, factor: float) -> Detection:
        """The same face in an image ``factor`` times larger."""
        return Detection(
            tuple(float(v) * factor for v in self.box),  # type: ignore[arg-type]
            self.score,
            np.asarray(self.landmarks, np.float32) * factor,
            None if self.mesh is None else np.asarray(self.mesh, np.float32) * factor,
            self.detector,
        )


def select_face(detections: list[Detection], policy: Policy = "largest") -> Detection | None:
    """Picks one face by policy; None when there is none."""
    if policy not in POLICIES:
        raise ValueError(f"Expected policy in {POLICIES}. Received: policy={policy!r}")
    if not detections:
        return None
    key = (lambda d: d.area) if policy == "largest" else (lambda d: d.score)
    return max(detections, key=key)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


class FaceDetector(Protocol):
    """What every detector offers (``BlazeFaceDetector``, ``MTCNNDetector``)."""

    name: str
    policy: Policy
    min_score: float

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Every face in an RGB ``(H, W, 3)`` uint8 image."""

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """``detect`` for several images."""

    def detect_one(self, image: np.ndarray, policy: Policy | None = None) -> Detection | None:
        """The face chosen by ``policy`` (default: the detector's), or None."""

    def refine(self, image: np.ndarray, box: tuple[float, ...]) -> Detection | None:
        """The face near ``box`` (the previous video frame's), or None when it is lost."""


# Threads per LiteRT interpreter, when set (conversion worker processes set 1: they share the
# cores already).
LITERT_THREADS_ENV = "AFFECT_LITERT_THREADS"


def available_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``; the CPU count elsewhere)."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def litert_threads() -> int:
    """Threads per LiteRT interpreter (BlazeFace, the face mesh, TFLite models): every core up
    to 4, or ``$AFFECT_LITERT_THREADS``. LiteRT's own default is one thread; two on 2 cores
    took BlazeFace + mesh from 6.3 to 4.5 ms a portrait and the shipped model from 6.2 to 3.6
    ms a face."""
    import os

    if os.environ.get(LITERT_THREADS_ENV, "").isdigit():
        return max(1, int(os.environ[LITERT_THREADS_ENV]))
    return min(4, available_cores())


# No detector finds a face in an image thinner than this (BlazeFace's smallest anchors are
# 8 px at its 128 px input); a 1 x 20000 image made OpenCV's resize fail on a 0-px side.
MIN_DETECT_SIDE = 8


def too_thin(image: np.ndarray) -> str | None:
    """Why no face can be sought in ``image`` (a side under ``MIN_DETECT_SIDE`` px), in the
    house form, or None when it can be."""
    height, width = np.shape(image)[:2]
    if min(height, width) < MIN_DETECT_SIDE:
        return (
            f"Expected an image at least {MIN_DETECT_SIDE} px on each side to look for a face. "
            f"Received: {width}x{height}"
        )
    return None


# Below this standard deviation (grey levels) an image is blank or uniform: no face.
MIN_CONTRAST = 2.0


def is_uniform(image: np.ndarray) -> bool:
    """Whether the image is blank or uniform: no detector can find a face there (``--detector
    none`` refuses it; BlazeFace does not wake its MTCNN fallback for it)."""
    return float(np.std(image)) < MIN_CONTRAST


def no_face_reason(detector) -> str:
    """Why ``detector`` found no face, in words: its own ``no_face`` text where it has one
    (``--detector none``: a blank or uniform image), else that its search found none."""
    return (
        getattr(detector, "no_face", None)
        or f"{getattr(detector, 'name', 'the detector')} found no face"
    )


def shrunk(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk (area interpolation) so its longest side is ``max_side``, and the factor
    its coordinates were divided by (1.0 and the image itself when it is not larger)."""
    factor = max(image.shape[:2]) / max_side
    if factor <= 1:
        return image, 1.0
    import cv2

    size = (max(1, round(image.shape[1] / factor)), max(1, round(image.shape[0] / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


def check_rgb(image: np.ndarray) -> np.ndarray:
    """An image as contiguous RGB uint8 ``(H, W, 3)`` (grey stacked, alpha dropped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"Expected an RGB image (H, W, 3). Received: shape={image.shape}")
    if image.shape[-1] == 4:
        image = image[..., :3]
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)
