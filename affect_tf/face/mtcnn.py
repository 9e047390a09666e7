"""Face detection with MTCNN (the ``mtcnn`` package; its weights ship in the wheel).

P-Net over an image pyramid, R-Net and O-Net on the proposals; ``refine`` (video tracking) runs
O-Net alone on the previous box.
"""

from __future__ import annotations

import numpy as np

from affect_tf.face.detect import (
    POLICIES,
    Detection,
    Policy,
    check_rgb,
    select_face,
    shrunk,
    too_thin,
)

_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class MTCNNDetector:
    """MTCNN face detector returning ``Detection`` objects (``FaceDetector``'s interface).

    Args:
        min_face_size: Smallest face side in pixels to look for.
        min_score: Detections below this confidence are dropped.
        policy: Default policy of ``detect_one``.
        device: TensorFlow device string for MTCNN.
        compiled: Run MTCNN's three networks as ``tf.function`` graphs (one trace each, any
            image size) instead of the package's eager Keras calls. Same boxes and landmarks,
            4-5x faster: eager execution pays Python per layer call, and P-Net runs once per
            pyramid scale (``docs/benchmarks.md``).
        max_side: ``detect`` finds faces on a copy shrunk to this longest side (boxes and
            landmarks are mapped back): an 8000 x 8000 photo's image pyramid took 8.5 GB and
            minutes; faces smaller than ``min_face_size`` at the shrunk scale are not sought.
    """

    name = "mtcnn"

    def __init__(
        self,
        min_face_size: int = 20,
        min_score: float = 0.9,
        policy: Policy = "largest",
        device: str = "CPU:0",
        compiled: bool = True,
        max_side: int = 1600,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"Expected policy in {POLICIES}. Received: policy={policy!r}")
        # Imported lazily: building MTCNN loads three networks (~1 s), not needed by readers.
        from mtcnn import MTCNN

        self._mtcnn = MTCNN(device=device)
        if compiled:
            _compile_stages(self._mtcnn)
        self.compiled = compiled
        # Tracking: the same O-Net, fed the previous box instead of P-Net/R-Net proposals.
        self._previous = _GivenBoxes()
        self._tracker = MTCNN(stages=[self._previous, self._mtcnn.stages[-1]], device=device)
        self.min_face_size = min_face_size
        self.min_score = min_score
        self.policy = policy
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detects every face in an RGB ``(H, W, 3)`` uint8 image (large ones at ``max_side``)."""
        image = check_rgb(image)
        if too_thin(image):
            return []  # callers that report skips say why (``too_thin``)
        image, factor = shrunk(image, self.max_side)
        results = self._mtcnn.detect_faces(image, min_face_size=self.min_face_size)
        detections = _to_detections(results, self.min_score)
        return [d.scaled(factor) for d in detections] if factor > 1 else detections

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Detects faces in several RGB images at once (MTCNN pads them into one batch)."""
        if not images:
            return []
        checked = [check_rgb(im) for im in images]
        if any(max(im.shape[:2]) > self.max_side for im in checked):
            return [self.detect(im) for im in checked]  # each at its own shrunk scale
        results = self._mtcnn.detect_faces(checked, min_face_size=self.min_face_size)
        return [_to_detections(r, self.min_score) for r in results]

    def detect_one(self, image: np.ndarray, policy: Policy | None = None) -> Detection | None:
        """The face chosen by ``policy`` (default: the detector's), or None."""
        return select_face(self.detect(image), policy or self.policy)

    def refine(self, image: np.ndarray, box: tuple[float, ...]) -> Detection | None:
        """The face near ``box`` (``x, y, w, h``, e.g. from the previous video frame), found by
        MTCNN's last network alone: O-Net reads the square around the box and regresses the
        new box, landmarks and score. The tracking step of ``predict_video``: it skips the
        image pyramid (P-Net) and the proposals (R-Net), where ``detect`` spends its time.

        Returns:
            The refined face, or None when O-Net's score there is below ``min_score`` (the
            face moved too far, turned away or left: call ``detect``).
        """
        image = check_rgb(image)
        x, y, w, h = (float(v) for v in box)
        side, cx, cy = max(w, h), x + w / 2, y + h / 2
        self._previous.boxes = np.array(
            [[0.0, cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, 1.0]]
        )
        detections = _to_detections(self._tracker.detect_faces(image), self.min_score)
        return max(detections, key=lambda d: d.score) if detections else None


class _GivenBoxes:
    """An MTCNN stage that proposes the boxes it is given (in place of P-Net and R-Net)."""

    id = 0
    name = "given boxes"

    def __init__(self) -> None:
        self.boxes = np.zeros((0, 6))

    def __call__(self, bboxes_batch=None, images_normalized=None, images_oshapes=None, **kwargs):
        # MTCNN's box rows: image index, x1, y1, x2, y2, score.
        return self.boxes


def _compile_stages(mtcnn) -> None:
    """Swaps each MTCNN stage's Keras network for a ``tf.function`` over it."""
    import tensorflow as tf

    # One relaxed signature: P-Net sees every pyramid scale, R-Net/O-Net any number of
    # patches, so fixed shapes would retrace on nearly every call.
    signature = [tf.TensorSpec([None, None, None, 3], tf.float32)]
    for stage in mtcnn.stages:
        # The package keeps the network in ``_model`` (``stage.model`` is read-only); an
        # upgrade that moves it must fail here, by name, not deep inside a detection.
        network = getattr(stage, "_model", None)
        if not callable(network):
            raise RuntimeError(
                f"Expected mtcnn's stage {type(stage).__name__} to hold its network in _model "
                "(mtcnn 1.0's layout). Received: none; pin mtcnn or update "
                "affect_tf.face.detect._compile_stages"
            )
        stage._model = tf.function(network, input_signature=signature)


def _to_detections(results: list[dict], min_score: float) -> list[Detection]:
    detections = []
    for r in results:
        score = float(r["confidence"])
        if score < min_score:
            continue
        box = tuple(float(v) for v in r["box"])
        points = np.array([r["keypoints"][k] for k in _KEYPOINTS], dtype=np.float32)
        detections.append(Detection(box, score, points, detector="mtcnn"))  # type: ignore[arg-type]
    return detections
