"""AffectRecognizer: images and videos in, one row per face out, from any exported model.

Faces are found with the face detector and aligned as in training (``affect_tf.face.warp``,
the NumPy copy of the Transform graph's alignment), batched, and read by the model backend
(``affect_tf.inference.backends``); results come back as a pandas DataFrame whose columns are
named by ``affect_tf.core.labels``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from affect_tf.core import outputs as tg
from affect_tf.face.detect import no_face_reason, too_thin
from affect_tf.face.warp import align_face
from affect_tf.inference.backends import _KerasBackend, load_backend
from affect_tf.inference.clock import StageClock
from affect_tf.inference.errors import InferenceError
from affect_tf.inference.images import expand_inputs, read_image, source_name
from affect_tf.inference.video import BOX_COLUMNS, FaceBatches, predict_video


class AffectRecognizer:
    """Faces in images and videos -> expression, AU and valence/arousal predictions.

    ``AffectRecognizer()`` reads faces with the model the package ships
    (``affect_tf.model.default``: FER+ expressions, SynthAffect valence/arousal and AUs), as
    TFLite on LiteRT (no TensorFlow import), offline; ``AffectRecognizer.load(path)`` with one
    of your own (a ``.tflite`` file runs without TensorFlow too).

    Args:
        backend: What runs aligned faces; None: the shipped model. Use
            ``AffectRecognizer.load`` or ``AffectRecognizer.from_keras`` for others.
        detector: A face detector (``affect_tf.face.make_detector``) or its name
            (``affect_tf.face.DETECTORS``); the default detector, built on first use, when
            None.
        batch_size: Faces per model call.
        kind: ``"saved_model"``, ``"keras"`` or ``"tflite"`` (for reports).
    """

    def __init__(self, backend=None, detector=None, batch_size: int = 32, kind: str = "") -> None:
        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1. Received: batch_size={batch_size}")
        if backend is None:
            kind, self.path, backend = _shipped_backend()
        self._backend = backend
        self._detector = detector
        self.batch_size = batch_size
        self.kind = kind
        self.image_size = backend.image_size
        self.margin = backend.margin

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        detector=None,
        batch_size: int = 32,
        margin: float | None = None,
    ) -> AffectRecognizer:
        """Loads a SavedModel (folder or TF Serving base folder), a ``.keras`` or a ``.tflite``.

        Args:
            path: The model; None: the shipped one (``affect_tf.model.default``).
            margin: Alignment margin; only needed for a TFLite file of a model trained with a
                margin other than the default 0.25 (SavedModels and .keras files carry theirs).
        """
        if path is None:
            kind, resolved, backend = _shipped_backend()
        else:
            kind, resolved, backend = load_backend(path, margin)
        recognizer = cls(backend, detector=detector, batch_size=batch_size, kind=kind)
        recognizer.path = resolved
        return recognizer

    @classmethod
    def from_keras(cls, model, detector=None, batch_size: int = 32) -> AffectRecognizer:
        """Wraps an in-memory ``AffectModel``."""
        return cls(_KerasBackend(model), detector=detector, batch_size=batch_size, kind="keras")

    @property
    def detector(self):
        if self._detector is None or isinstance(self._detector, str):
            from affect_tf.face.registry import DEFAULT_DETECTOR, make_detector

            self._detector = make_detector(self._detector or DEFAULT_DETECTOR)
        return self._detector

    # --- faces ---------------------------------------------------------------------------

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """One RGB image + 5 landmarks -> the aligned ``(S, S, 3)`` float32 face: training's
        alignment in NumPy (``affect_tf.face.warp``; equal to the TensorFlow graph's within
        ``warp.MAX_DIFFERENCE`` grey levels), without TensorFlow."""
        return align_face(image, landmarks, self.image_size, self.margin)

    def predict_faces(self, faces: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
        """Aligned faces ``(N, S, S, 3)`` (or a list of ``(S, S, 3)``) in [0, 255] -> serving
        outputs, in batches."""
        if isinstance(faces, list) and not faces:
            faces = np.zeros((0, self.image_size, self.image_size, 3))
        faces = np.asarray(faces, np.float32)
        expected = (self.image_size, self.image_size, 3)
        if faces.ndim != 4 or faces.shape[1:] != expected:
            raise InferenceError(
                f"Expected aligned faces of shape (N, {expected[0]}, {expected[1]}, 3). "
                f"Received: shape={faces.shape}"
            )
        parts = [
            self._backend(faces[i : i + self.batch_size])
            for i in range(0, len(faces), self.batch_size)
        ]
        if not parts:
            return tg.empty_serving_outputs()
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in tg.SERVING_OUTPUTS}

    def predict_images(
        self,
        inputs,
        faces: str = "all",
        on_error: str = "skip",
        progress: bool = False,
    ) -> pd.DataFrame:
        """Detects, aligns and reads every face in the inputs.

        Args:
            inputs: A path, a folder (its images, recursively), encoded bytes, an RGB array, or
                a list of these.
            faces: ``"all"`` faces of each image, or only the ``"largest"``.
            on_error: ``"skip"`` an unreadable image or one without a face (listed in
                ``table.attrs["skipped"]`` as ``{"source", "reason"}``), or ``"raise"``
                ``InferenceError``.
            progress: Show a progress bar over the images.

        Returns:
            One row per face: ``source``, ``face`` (index within the image), ``x, y, w, h``,
            ``score``, ``detector`` (which found the face: ``blazeface``, ``mtcnn`` behind
            BlazeFace's fallback, ...), then ``outputs_frame``'s columns.
            ``attrs["skipped"]`` lists the skips, ``attrs["stage_seconds"]`` the seconds spent
            to decode, detect, align and model.
        """
        if faces not in ("all", "largest"):
            raise ValueError(f"Expected faces in ('all', 'largest'). Received: faces={faces!r}")
        if on_error not in ("skip", "raise"):
            raise ValueError(f"Expected on_error in ('skip', 'raise'). Received: {on_error!r}")
        items = expand_inputs(inputs)
        rows: list[dict] = []
        skipped: list[dict] = []
        clock = StageClock("decode", "detect", "align", "model")
        faces_out = FaceBatches(self, clock)
        iterator: Iterable = enumerate(_decoded_ahead(items))
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(items), desc="images", unit="img")
        for index, (item, decoded) in iterator:
            source = source_name(item, index)
            try:
                with clock("decode"):  # the wait for the decoding thread
                    image = decoded.result()
                thin = too_thin(image)
                if thin:
                    raise InferenceError(f"{thin} ({source})")
                with clock("detect"):
                    detections = self.detector.detect(image)
                if not detections:
                    raise InferenceError(
                        "Expected a face in the image. Received: "
                        f"{source} ({no_face_reason(self.detector)})"
                    )
            except InferenceError as e:
                if on_error == "raise":
                    raise
                skipped.append({"source": source, "reason": str(e)})
                continue
            if faces == "largest":
                detections = [max(detections, key=lambda d: d.area)]
            else:  # left to right, so face indices are stable and readable
                detections = sorted(detections, key=lambda d: d.box[0])
            for k, det in enumerate(detections):
                with clock("align"):
                    face = self.align(image, det.landmarks)
                faces_out.add(face)
                rows.append(
                    {"source": source, "face": k, **dict(zip(BOX_COLUMNS, det.box, strict=True))}
                    | {"score": det.score, "detector": det.detector}
                )
        outputs = faces_out.outputs()
        table = pd.concat([pd.DataFrame(rows), tg.outputs_frame(outputs)], axis=1)
        if not rows:
            table = pd.DataFrame(
                columns=["source", "face", *BOX_COLUMNS, "score", "detector", *table.columns]
            )
        table.attrs["skipped"] = skipped
        table.attrs["stage_seconds"] = clock.seconds
        return table

    def predict_video(self, source: str | Path | int, **options) -> pd.DataFrame:
        """Reads the main face through a video file, stream or camera; one row per sampled
        frame.

        See ``affect_tf.inference.video.predict_video`` for the options and the columns.
        """
        return predict_video(self, source, **options)


def _shipped_backend():
    """``load_backend``'s answer for the shipped model's TFLite file (LiteRT, no TensorFlow),
    with the margin its card records."""
    from affect_tf.model.default import default_margin, default_model_path

    return load_backend(default_model_path(kind="tflite"), margin=default_margin())


def _decoded_ahead(items: list, ahead: int = 4):
    """``(item, future of its RGB pixels)`` in order, decoded by one background thread up to
    ``ahead`` images ahead (Pillow and TensorFlow release the GIL while decoding, so decoding
    overlaps with detection on the other core). A decode error surfaces at ``result()``."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="decode") as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(read_image, item)))
            if len(pending) > ahead:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
