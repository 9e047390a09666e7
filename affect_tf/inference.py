"""AffectRecognizer: images and videos in, one row per face out, from any exported model.

One object wraps a SavedModel (a version folder, or a TF Serving base folder -> its newest
version), a ``.keras`` file or a TFLite file. Faces are found with MTCNN and aligned with the
same pure-TF code as training (``affect_tf.preprocess``), batched, and read by the model; results
come back as a pandas DataFrame whose columns are named by ``affect_tf.labels``.

>>> rec = AffectRecognizer.load("runs/demo/serving/affect")
>>> table = rec.predict_images(["a.jpg", "photos/"])      # one row per face
>>> video = rec.predict_video("clip.mp4", smooth="mean:15")  # one row per frame
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affect_tf import targets as tg
from affect_tf.labels import AUS, EXPRESSIONS
from affect_tf.model.config import AffectConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
BOX_COLUMNS = ("x", "y", "w", "h")
# AffectConfig's default margin (every preset's); used when a TFLite file is all there is.
DEFAULT_MARGIN = AffectConfig.margin


class InferenceError(ValueError):
    """A user-facing problem with an input (unreadable image, no face, bad video, bad model)."""


class StageClock:
    """Wall seconds per stage of a batch job (``with clock("detect"): ...``), so a run can
    say where its time went (``table.attrs["stage_seconds"]``; ``benchmarks.run``)."""

    def __init__(self, *stages: str) -> None:
        self.seconds = dict.fromkeys(stages, 0.0)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


# --- named outputs ---------------------------------------------------------------------------


def outputs_frame(outputs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Serving outputs (``affect_tf.targets.SERVING_OUTPUTS``) -> one row per face.

    Columns: the 8 expression probabilities by name, ``expression`` (the most likely one),
    the 12 AU probabilities by AU, ``valence``, ``arousal``.
    """
    expr = np.asarray(outputs[tg.EXPRESSION_PROBS], np.float64).reshape(-1, len(EXPRESSIONS))
    au = np.asarray(outputs[tg.AU_PROBS], np.float64).reshape(-1, len(AUS))
    table = pd.DataFrame(expr, columns=list(EXPRESSIONS))
    table["expression"] = [EXPRESSIONS[i] for i in np.argmax(expr, axis=-1)] if len(expr) else []
    table[list(AUS)] = au
    table[tg.VALENCE] = np.asarray(outputs[tg.VALENCE], np.float64).reshape(-1)
    table[tg.AROUSAL] = np.asarray(outputs[tg.AROUSAL], np.float64).reshape(-1)
    return table


def active_aus(row: pd.Series | dict, threshold: float = 0.5) -> list[str]:
    """The AUs of a result row whose probability reaches ``threshold``."""
    return [au for au in AUS if float(row[au]) >= threshold]


# --- model backends --------------------------------------------------------------------------


def resolve_model(path: str | Path) -> tuple[str, Path]:
    """Which kind of model ``path`` is: ``("saved_model" | "keras" | "tflite", path)``.

    A folder of numeric versions (what the Pusher and TF Serving use) resolves to its newest
    version holding a ``saved_model.pb``.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        return "keras", path
    if path.is_file() and path.suffix == ".tflite":
        return "tflite", path
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model", path
    if path.is_dir():
        versions = sorted(
            (int(p.name), p)
            for p in path.iterdir()
            if p.name.isdigit() and (p / "saved_model.pb").is_file()
        )
        if versions:
            return "saved_model", versions[-1][1]
    raise InferenceError(
        "Expected a SavedModel folder, a folder of numeric SavedModel versions (TF Serving "
        "layout, e.g. runs/demo/serving/affect), a .keras file or a .tflite file. "
        f"Received: model={str(path)!r}" + ("" if path.exists() else " (does not exist)")
    )


def keras_config(keras_file: str | Path | zipfile.ZipFile) -> dict:
    """The ``AffectConfig`` dict inside a ``.keras`` file, read without building the model."""
    with zipfile.ZipFile(keras_file) as archive:
        config = json.loads(archive.read("config.json"))
    return config["config"]["config"]


class _KerasBackend:
    def __init__(self, model) -> None:
        self.model = model
        self.image_size = int(model.affect_config.image_size)
        self.margin = float(model.affect_config.margin)

    def __call__(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        from affect_tf.export import serving_outputs

        out = serving_outputs(self.model.predict_on_batch(faces))
        return {k: np.asarray(v) for k, v in out.items()}


class _SavedModelBackend:
    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        from affect_tf.export import KERAS_FILE, SERVING_ALIGNED

        self._tf = tf
        loaded = tf.saved_model.load(str(path))
        if SERVING_ALIGNED not in loaded.signatures:
            raise InferenceError(
                f"Expected a SavedModel with the {SERVING_ALIGNED!r} signature (exported by "
                f"affect-tf). Received: model={str(path)!r} with {sorted(loaded.signatures)}"
            )
        self._loaded = loaded  # keeps the variables alive
        self._fn = loaded.signatures[SERVING_ALIGNED]
        self.image_size = int(self._fn.structured_input_signature[1]["image"].shape[1])
        keras_file = path / KERAS_FILE
        self.margin = (
            float(keras_config(keras_file).get("margin", DEFAULT_MARGIN))
            if keras_file.is_file()
            else DEFAULT_MARGIN
        )

    def __call__(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        out = self._fn(image=self._tf.constant(faces, self._tf.float32))
        return {k: v.numpy() for k, v in out.items()}


class _TFLiteBackend:
    def __init__(self, path: Path, margin: float) -> None:
        from affect_tf.tflite import Runner

        self._runner = Runner(path)
        self.image_size = self._runner.image_size
        self.margin = margin

    def __call__(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        return self._runner(faces)


# --- images ----------------------------------------------------------------------------------


def read_image(source) -> np.ndarray:
    """A path, encoded bytes or an array -> RGB uint8 ``(H, W, 3)``.

    Raises:
        InferenceError: Naming the file and what was expected, for a missing, unreadable,
            truncated or non-image file.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, np.ndarray):
        array = source
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise InferenceError(
                f"Expected an RGB image array (H, W, 3). Received: shape={array.shape}"
            )
        return np.ascontiguousarray(np.clip(array[..., :3], 0, 255).astype(np.uint8))
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise InferenceError(f"Expected an image file. Received: path={name!r} (not found)")
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes fully: a truncated file fails here, not later
            return np.asarray(image.convert("RGB"))
    except UnidentifiedImageError:
        raise InferenceError(
            "Expected a readable image (JPEG, PNG, BMP, GIF, WebP, TIFF). Received: "
            f"path={name!r} (not an image format Pillow knows)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise InferenceError(
            f"Expected a readable image (JPEG, PNG, BMP, GIF, WebP, TIFF). Received: "
            f"path={name!r} ({e})"
        ) from None


def expand_inputs(inputs) -> list:
    """Paths, folders (their images, sorted), bytes and arrays -> a flat list of items."""
    if isinstance(inputs, (str, Path, bytes, np.ndarray)):
        inputs = [inputs]
    items: list = []
    for item in inputs:
        if isinstance(item, (str, Path)) and Path(item).is_dir():
            items.extend(
                sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            )
        else:
            items.append(item)
    return items


def _source_name(item, index: int) -> str:
    return str(item) if isinstance(item, (str, Path)) else f"<input {index}>"


# --- the recognizer --------------------------------------------------------------------------


class AffectRecognizer:
    """Faces in images and videos -> expression, AU and valence/arousal predictions.

    Args:
        backend: What runs aligned faces; use ``AffectRecognizer.load`` or
            ``AffectRecognizer.from_keras``.
        detector: An ``affect_tf.face.FaceDetector`` (built on first use when None).
        batch_size: Faces per model call.
        kind: ``"saved_model"``, ``"keras"`` or ``"tflite"`` (for reports).
    """

    def __init__(self, backend, detector=None, batch_size: int = 32, kind: str = "") -> None:
        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1. Received: batch_size={batch_size}")
        self._backend = backend
        self._detector = detector
        self._align = None
        self.batch_size = batch_size
        self.kind = kind
        self.image_size = backend.image_size
        self.margin = backend.margin

    @classmethod
    def load(
        cls,
        path: str | Path,
        detector=None,
        batch_size: int = 32,
        margin: float | None = None,
    ) -> AffectRecognizer:
        """Loads a SavedModel (folder or TF Serving base folder), a ``.keras`` or a ``.tflite``.

        Args:
            margin: Alignment margin; only needed for a TFLite file of a model trained with a
                margin other than the default 0.25 (SavedModels and .keras files carry theirs).
        """
        kind, resolved = resolve_model(path)
        if kind == "keras":
            import affect_tf

            backend = _KerasBackend(affect_tf.load_model(resolved))
        elif kind == "tflite":
            backend = _TFLiteBackend(resolved, DEFAULT_MARGIN if margin is None else margin)
        else:
            backend = _SavedModelBackend(resolved)
        recognizer = cls(backend, detector=detector, batch_size=batch_size, kind=kind)
        recognizer.path = resolved
        return recognizer

    @classmethod
    def from_keras(cls, model, detector=None, batch_size: int = 32) -> AffectRecognizer:
        """Wraps an in-memory ``AffectModel``."""
        return cls(_KerasBackend(model), detector=detector, batch_size=batch_size, kind="keras")

    @property
    def detector(self):
        if self._detector is None:
            from affect_tf.face.detect import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    # --- faces ---------------------------------------------------------------------------

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """One RGB image + 5 landmarks -> the aligned ``(S, S, 3)`` float32 face (training's
        alignment, traced once for every image size)."""
        if self._align is None:
            import tensorflow as tf

            from affect_tf.preprocess import preprocess_array

            size, margin = self.image_size, self.margin
            self._align = tf.function(
                lambda im, lm: preprocess_array(im, lm, size, margin),
                input_signature=[
                    tf.TensorSpec([None, None, 3], tf.uint8),
                    tf.TensorSpec([5, 2], tf.float32),
                ],
            )
        return self._align(image, np.asarray(landmarks, np.float32).reshape(5, 2)).numpy()

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
            ``score``, then ``outputs_frame``'s columns. ``attrs["skipped"]`` lists the skips,
            ``attrs["stage_seconds"]`` the seconds spent to decode, detect, align and model.
        """
        if faces not in ("all", "largest"):
            raise ValueError(f"Expected faces in ('all', 'largest'). Received: faces={faces!r}")
        if on_error not in ("skip", "raise"):
            raise ValueError(f"Expected on_error in ('skip', 'raise'). Received: {on_error!r}")
        items = expand_inputs(inputs)
        rows: list[dict] = []
        crops: list[np.ndarray] = []
        skipped: list[dict] = []
        clock = StageClock("decode", "detect", "align", "model")
        iterator: Iterable = enumerate(items)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(items), desc="images", unit="img")
        for index, item in iterator:
            source = _source_name(item, index)
            try:
                with clock("decode"):
                    image = read_image(item)
                with clock("detect"):
                    detections = self.detector.detect(image)
                if not detections:
                    raise InferenceError(f"Expected a face in the image. Received: {source} (none)")
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
                    crops.append(self.align(image, det.landmarks))
                rows.append(
                    {"source": source, "face": k, **dict(zip(BOX_COLUMNS, det.box, strict=True))}
                    | {"score": det.score}
                )
        with clock("model"):
            outputs = self.predict_faces(crops)
        table = pd.concat([pd.DataFrame(rows), outputs_frame(outputs)], axis=1)
        if not rows:
            table = pd.DataFrame(columns=["source", "face", *BOX_COLUMNS, "score", *table.columns])
        table.attrs["skipped"] = skipped
        table.attrs["stage_seconds"] = clock.seconds
        return table

    # --- video ---------------------------------------------------------------------------

    def predict_video(
        self,
        path: str | Path,
        every: int = 1,
        smooth: str | None = "mean:15",
        progress: bool = True,
        max_frames: int | None = None,
        track: bool = True,
        redetect_every: int = 30,
    ) -> pd.DataFrame:
        """Reads the main face through a video; one row per sampled frame.

        The main face is the largest in the first frame with a face, then in every later
        frame the detection overlapping most with its last box (the largest when none
        overlaps), so a passer-by does not take over. With ``track`` (the default) the face
        is followed from frame to frame by MTCNN's O-Net alone (``FaceDetector.refine`` on
        its last box, 4x cheaper than detecting), with a full detection on the first frame,
        every ``redetect_every`` sampled frames and whenever O-Net loses the face. Frames are
        batched through the model, then ``smooth`` (``"mean:15"``, ``"median:9"`` or None)
        filters the sequence (``affect_tf.smoothing``; frames without a face are interpolated
        over).

        Returns:
            Columns ``frame``, ``time_s``, ``face_found``, ``x, y, w, h``, ``score``, then
            ``outputs_frame``'s columns (smoothed) and ``valence_raw``, ``arousal_raw``,
            ``expression_raw`` (before smoothing). ``attrs``: ``fps``, ``frames`` (in the
            file), ``frames_with_face``, ``frames_tracked`` (found by O-Net tracking rather
            than a full detection), ``smooth``, ``seconds``, ``stage_seconds`` (decode,
            detect, align, model, smooth).

        Raises:
            InferenceError: The file is missing or OpenCV cannot decode it.
        """
        import cv2

        from affect_tf.face.detect import box_iou
        from affect_tf.smoothing import parse_smooth, smooth_by_video

        if every < 1:
            raise ValueError(f"Expected every >= 1. Received: every={every}")
        if redetect_every < 1:
            raise ValueError(f"Expected redetect_every >= 1. Received: {redetect_every}")
        smoothing = parse_smooth(smooth)
        path = Path(path)
        if not path.is_file():
            raise InferenceError(f"Expected a video file. Received: path={str(path)!r} (not found)")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise InferenceError(
                "Expected a video OpenCV can decode (mp4, avi, mkv, ...). "
                f"Received: path={str(path)!r} (cannot be opened)"
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or 30.0
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        if max_frames is not None and total is not None:
            total = min(total, max_frames)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=path.name, unit="frame")
        rows: list[dict] = []
        crops: list[np.ndarray] = []
        last_box = None
        since_detection = tracked = 0
        index = 0
        clock = StageClock("decode", "detect", "align", "model", "smooth")
        start = time.perf_counter()
        try:
            while max_frames is None or index < max_frames:
                with clock("decode"):
                    ok, frame = capture.read()
                if not ok:
                    break
                if index % every == 0:
                    with clock("decode"):
                        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                    chosen = None
                    with clock("detect"):
                        if track and last_box is not None and since_detection < redetect_every:
                            chosen = self.detector.refine(rgb, last_box)
                            since_detection += 1
                            tracked += chosen is not None
                        if chosen is None:
                            since_detection = 0
                            detections = self.detector.detect(rgb)
                            if detections:
                                if last_box is not None:
                                    best = max(detections, key=lambda d: box_iou(d.box, last_box))
                                    if box_iou(best.box, last_box) > 0.1:
                                        chosen = best
                                chosen = chosen or max(detections, key=lambda d: d.area)
                    if chosen is not None:
                        last_box = chosen.box
                        with clock("align"):
                            crops.append(self.align(rgb, chosen.landmarks))
                    row = {"frame": index, "time_s": index / fps, "face_found": chosen is not None}
                    row |= dict(
                        zip(BOX_COLUMNS, chosen.box if chosen else [np.nan] * 4, strict=True)
                    )
                    row["score"] = chosen.score if chosen else np.nan
                    rows.append(row)
                index += 1
                if bar is not None:
                    bar.update(1)
        finally:
            capture.release()
            if bar is not None:
                bar.close()
        if index == 0:
            raise InferenceError(
                f"Expected a video with frames. Received: path={str(path)!r} (no frame decoded)"
            )
        table = pd.DataFrame(rows)
        found = table["face_found"].to_numpy(bool)
        with clock("model"):
            outputs = self.predict_faces(crops)
        if smoothing is not None and found.any():
            method, window = smoothing
            with clock("smooth"):
                smoothed = smooth_by_video(
                    np.zeros(int(found.sum())),
                    table.loc[found, "frame"].to_numpy(),
                    outputs,
                    method,
                    window,
                    normalise=(tg.EXPRESSION_PROBS,),
                )
        else:
            smoothed = outputs
        raw = outputs_frame(outputs)
        values = outputs_frame(smoothed)
        values["valence_raw"] = raw[tg.VALENCE].to_numpy()
        values["arousal_raw"] = raw[tg.AROUSAL].to_numpy()
        values["expression_raw"] = raw["expression"].to_numpy()
        values.index = table.index[found]
        table = table.join(values)
        table.attrs.update(
            {
                "fps": fps,
                "frames": index,
                "frames_with_face": int(found.sum()),
                "frames_tracked": tracked,
                "smooth": smooth if smoothing else None,
                "seconds": time.perf_counter() - start,
                "stage_seconds": clock.seconds,
                "source": str(path),
            }
        )
        return table


# --- ABAW layout -----------------------------------------------------------------------------


def fill_frames(table: pd.DataFrame, columns: Sequence[str], frames: int) -> np.ndarray:
    """Values of ``columns`` at every frame ``0..frames-1``: linear interpolation between the
    frames with a face, the nearest value beyond the ends (ABAW wants a line per frame)."""
    known = table[table["face_found"].astype(bool)]
    grid = np.arange(frames)
    if known.empty:
        return np.full((frames, len(columns)), np.nan)
    x = known["frame"].to_numpy(np.float64)
    return np.stack([np.interp(grid, x, known[c].to_numpy(np.float64)) for c in columns], axis=1)


def write_abaw(
    table: pd.DataFrame, out_dir: str | Path, name: str, au_threshold: float = 0.5
) -> dict[str, Path]:
    """Writes the ABAW (Aff-Wild2) per-video prediction files of a ``predict_video`` table:
    ``<out>/VA/<name>.txt`` (``valence,arousal``), ``EXPR/<name>.txt`` (class index) and
    ``AU/<name>.txt`` (12 0/1 columns), a header line then one line per video frame."""
    frames = int(table.attrs.get("frames", int(table["frame"].max()) + 1))
    out_dir = Path(out_dir)
    written = {}
    va = fill_frames(table, [tg.VALENCE, tg.AROUSAL], frames)
    expr = np.argmax(fill_frames(table, list(EXPRESSIONS), frames), axis=-1)
    au = (fill_frames(table, list(AUS), frames) >= au_threshold).astype(int)
    contents = {
        "VA": ("valence,arousal", [f"{v:.6f},{a:.6f}" for v, a in va]),
        "EXPR": (",".join(EXPRESSIONS), [str(int(e)) for e in expr]),
        "AU": (",".join(AUS), [",".join(str(int(x)) for x in row) for row in au]),
    }
    for task, (header, lines) in contents.items():
        path = out_dir / task / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header, *lines]) + "\n")
        written[task] = path
    return written
