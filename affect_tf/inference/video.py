"""Video: the main face followed frame to frame, read by the model, smoothed over time.

The main face is the largest in the first frame with a face, then in every later frame the
detection overlapping most with its last box (the largest when none overlaps), so a passer-by
does not take over. With tracking (the default) the face is followed by the detector's
``refine`` on its last box (BlazeFace: the face mesh alone, as MediaPipe tracks; MTCNN: O-Net
alone), with a full detection on the first frame, every ``redetect_every`` sampled frames and
whenever tracking loses the face.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from affect_tf.core import outputs as tg
from affect_tf.data.images import MAX_IMAGE_PIXELS
from affect_tf.evaluation.smoothing import parse_smooth, smooth_by_video
from affect_tf.face.detect import Detection, box_iou
from affect_tf.inference.clock import StageClock
from affect_tf.inference.errors import InferenceError

log = logging.getLogger(__name__)
BOX_COLUMNS = ("x", "y", "w", "h")
# A detection continues the main face when it overlaps the last box by more than this IoU.
CONTINUE_IOU = 0.1


class MainFaceTracker:
    """Chooses the main face of each frame (see the module docstring).

    Args:
        detector: A face detector (``affect_tf.face.FaceDetector``: ``detect``, ``refine``).
        track: Follow the face with ``refine`` between full detections.
        redetect_every: Sampled frames between forced full detections.
    """

    def __init__(self, detector, track: bool = True, redetect_every: int = 30) -> None:
        if redetect_every < 1:
            raise ValueError(f"Expected redetect_every >= 1. Received: {redetect_every}")
        self.detector = detector
        self.track = track
        self.redetect_every = redetect_every
        self.last_box = None
        self.since_detection = 0
        self.tracked = 0  # frames found by tracking rather than a full detection

    def __call__(self, rgb: np.ndarray) -> Detection | None:
        """The main face of one RGB frame, or None."""
        chosen = None
        if self.track and self.last_box is not None and self.since_detection < self.redetect_every:
            chosen = self.detector.refine(rgb, self.last_box)
            self.since_detection += 1
            self.tracked += chosen is not None
        if chosen is None:
            self.since_detection = 0
            chosen = self._detect(rgb)
        if chosen is not None:
            self.last_box = chosen.box
        return chosen

    def _detect(self, rgb: np.ndarray) -> Detection | None:
        detections = self.detector.detect(rgb)
        if not detections:
            return None
        if self.last_box is not None:
            best = max(detections, key=lambda d: box_iou(d.box, self.last_box))
            if box_iou(best.box, self.last_box) > CONTINUE_IOU:
                return best
        return max(detections, key=lambda d: d.area)


def parse_source(source: str | Path | int) -> str | int:
    """A video source as OpenCV takes it: a camera index (``0``, ``"1"``), a stream URL
    (``rtsp://``, ``http://``, ``file://`` ...) or a file path (str)."""
    if isinstance(source, int):
        return source
    text = str(source)
    if text.isdigit():
        return int(text)
    return text


def source_label(source: str | Path | int) -> str:
    """A short name of a source: the file name, ``camera0``, or the stream URL's last part."""
    parsed = parse_source(source)
    if isinstance(parsed, int):
        return f"camera{parsed}"
    return Path(parsed.split("?", 1)[0].rstrip("/")).name or parsed


def open_video(source: str | Path | int):
    """``(capture, fps, frame count or None)`` of a video file, a stream URL or a camera index.

    Raises:
        InferenceError: The file is missing, or OpenCV cannot open the file, stream or camera.
    """
    import cv2

    parsed = parse_source(source)
    if isinstance(parsed, int):
        capture = cv2.VideoCapture(parsed)
        if not capture.isOpened():
            raise InferenceError(
                f"Expected a camera at index {parsed}. Received: none can be opened (no such "
                "device, no permission, or OpenCV without camera support)"
            )
    elif "://" in parsed:
        capture = cv2.VideoCapture(parsed)
        if not capture.isOpened():
            raise InferenceError(
                f"Expected a stream OpenCV can open (rtsp, http, file URL). Received: {parsed!r} "
                "(cannot be opened)"
            )
    else:
        path = Path(parsed)
        if not path.is_file():
            raise InferenceError(f"Expected a video file. Received: path={str(path)!r} (not found)")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise InferenceError(
                "Expected a video OpenCV can decode (mp4, avi, mkv, ...). "
                f"Received: path={str(path)!r} (cannot be opened)"
            )
    width, height = (
        int(capture.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)
    )
    if width * height > MAX_IMAGE_PIXELS:  # the budget every image entry point keeps
        capture.release()
        raise InferenceError(
            f"Expected video frames of at most {MAX_IMAGE_PIXELS:,} pixels. Received: "
            f"{width}x{height} in {parsed!r}"
        )
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 30.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not isinstance(parsed, int) else 0
    return capture, fps, (total if total > 0 else None)


# Decoded frames waiting for the detector: decoding runs in its own thread (OpenCV releases
# the GIL), overlapping with detection on the other core.
READ_AHEAD = 8


def sampled_frames(
    capture, every: int, max_frames: int | None, clock: StageClock, bar=None
) -> Iterator[tuple[int, np.ndarray | None]]:
    """``(index, RGB frame)`` for every ``every``-th frame, ``(index, None)`` for the others (so
    the caller counts every decoded frame); a reader thread decodes up to ``READ_AHEAD`` frames
    ahead. Releases the capture at the end (also when the caller stops early)."""
    import queue
    import threading

    import cv2

    frames: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
    stop = threading.Event()
    end = object()

    def read() -> None:
        index = 0
        try:
            while not stop.is_set() and (max_frames is None or index < max_frames):
                ok, frame = capture.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if index % every == 0 else None
                while not stop.is_set():
                    try:
                        frames.put((index, rgb), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                index += 1
        finally:
            frames.put(end)

    reader = threading.Thread(target=read, name="video-reader", daemon=True)
    reader.start()
    try:
        while True:
            with clock("decode"):  # the wait for the reader: decoding's share of the time
                item = frames.get()
            if item is end:
                break
            yield item
            if bar is not None:
                bar.update(1)
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                frames.get(timeout=0.1)
            except queue.Empty:
                pass
        capture.release()
        if bar is not None:
            bar.close()


# Aligned faces waiting for the model: bounded, so a long video or a camera keeps its memory.
MODEL_CHUNK = 64


def predict_video(
    recognizer,
    source: str | Path | int,
    every: int = 1,
    smooth: str | None = "mean:15",
    progress: bool = True,
    max_frames: int | None = None,
    track: bool = True,
    redetect_every: int = 30,
    on_frame: Callable[[np.ndarray, dict], None] | None = None,
) -> pd.DataFrame:
    """Reads the main face through a video with an ``AffectRecognizer``; one row per sampled frame.

    Args:
        source: A video file, a stream URL (``rtsp://``, ``http://`` ...) or a camera index
            (``0``; give ``max_frames`` or stop it with Ctrl-C).
        on_frame: Called with each sampled frame (RGB) and its row (with the frame's raw
            outputs when a face was found) as soon as it is read: the model then runs frame by
            frame instead of in chunks of ``MODEL_CHUNK`` (live display). Returning False
            stops the reading (the frames read so far make the table, as after Ctrl-C).

    Frames go through the model in chunks, then ``smooth`` (``"mean:15"``, ``"median:9"`` or
    None) filters the sequence (``affect_tf.evaluation.smoothing``; frames without a face are
    interpolated over).

    Returns:
        Columns ``frame``, ``time_s``, ``face_found``, ``x, y, w, h``, ``score``, then
        ``outputs_frame``'s columns (smoothed) and ``valence_raw``, ``arousal_raw``,
        ``expression_raw`` (before smoothing). ``attrs``: ``fps``, ``frames`` (decoded),
        ``frames_expected`` (the container's count, None for streams and cameras),
        ``frames_with_face``, ``frames_tracked`` (followed by the detector's tracking rather
        than a full detection), ``smooth``, ``seconds``, ``stage_seconds`` (decode, detect,
        align, model, smooth).

    Raises:
        InferenceError: The file is missing, or OpenCV cannot open the file, stream or camera.
    """
    if every < 1:
        raise ValueError(f"Expected every >= 1. Received: every={every}")
    tracker = MainFaceTracker(recognizer.detector, track, redetect_every)
    smoothing = parse_smooth(smooth)
    capture, fps, expected = open_video(source)
    total = expected if max_frames is None or expected is None else min(expected, max_frames)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total or max_frames, desc=source_label(source), unit="frame")
    clock = StageClock("decode", "detect", "align", "model", "smooth")
    start = time.perf_counter()
    reader = _FrameReader(recognizer, tracker, fps, clock)
    frames_in = sampled_frames(capture, every, max_frames, clock, bar)
    try:
        for index, rgb in frames_in:
            row = reader.read(index, rgb)
            if row is None:
                continue
            if on_frame is not None:
                outputs = reader.faces.run() if reader.faces.waiting else {}
                if on_frame(rgb, row | {k: v[0] for k, v in outputs.items()}) is False:
                    break
    except KeyboardInterrupt:  # a camera runs until stopped: keep what was read
        log.info("stopped by the user after %d frames", reader.frames)
    finally:
        frames_in.close()
    frames = reader.frames
    _check_frames(source, frames, total)
    table = _frames_table(pd.DataFrame(reader.rows), reader.faces.outputs(), smoothing, clock)
    table.attrs.update(
        {
            "fps": fps,
            "frames": frames,
            "frames_expected": expected,
            "frames_with_face": int(table["face_found"].sum()),
            "frames_tracked": tracker.tracked,
            "smooth": smooth if smoothing else None,
            "seconds": time.perf_counter() - start,
            "stage_seconds": clock.seconds,
            "source": str(source),
        }
    )
    return table


def _check_frames(source, frames: int, total: int | None) -> None:
    """No frame is an error; fewer than the header announced (``total``, None for streams and
    cameras) is a warning (the frames read are kept)."""
    if frames == 0:
        raise InferenceError(
            f"Expected a video with frames. Received: {source_label(source)!r} (no frame "
            "decoded: empty, corrupt or an unsupported codec)"
        )
    if total is not None and frames < total:
        log.warning(
            "%s ended after %d of the %d frames its header announces (truncated or corrupt); "
            "the frames read are kept",
            source_label(source),
            frames,
            total,
        )


class FaceBatches:
    """Aligned faces on their way to the model, which runs them in chunks of ``MODEL_CHUNK``
    (bounded memory over a video, stream or folder of any length); the outputs in order."""

    def __init__(self, recognizer, clock: StageClock) -> None:
        self.recognizer, self.clock = recognizer, clock
        self.waiting: list[np.ndarray] = []
        self._parts: list[dict] = []

    def add(self, face: np.ndarray) -> None:
        self.waiting.append(face)
        if len(self.waiting) >= MODEL_CHUNK:
            self.run()

    def run(self) -> dict:
        """The waiting faces through the model; their outputs."""
        with self.clock("model"):
            outputs = self.recognizer.predict_faces(self.waiting)
        self._parts.append(outputs)
        self.waiting = []
        return outputs

    def outputs(self) -> dict:
        """Every face's outputs, in the order they were added."""
        if self.waiting or not self._parts:
            self.run()
        return {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}


class _FrameReader:
    """The frames read so far: one row each, and their faces on the way to the model."""

    def __init__(self, recognizer, tracker: MainFaceTracker, fps: float, clock: StageClock):
        self.recognizer, self.tracker, self.fps, self.clock = recognizer, tracker, fps, clock
        self.rows: list[dict] = []
        self.faces = FaceBatches(recognizer, clock)
        self.frames = 0

    def read(self, index: int, rgb: np.ndarray | None) -> dict | None:
        """Finds, tracks and aligns the main face of a sampled frame; its row (None for a
        frame that is not sampled)."""
        self.frames = index + 1
        if rgb is None:
            return None
        with self.clock("detect"):
            chosen = self.tracker(rgb)
        if chosen is not None:
            with self.clock("align"):
                face = self.recognizer.align(rgb, chosen.landmarks)
            self.faces.add(face)
        row = {"frame": index, "time_s": index / self.fps, "face_found": chosen is not None}
        row |= dict(zip(BOX_COLUMNS, chosen.box if chosen else [np.nan] * 4, strict=True))
        self.rows.append(row | {"score": chosen.score if chosen else np.nan})
        return self.rows[-1]


def _frames_table(
    table: pd.DataFrame, outputs: dict, smoothing: tuple | None, clock: StageClock
) -> pd.DataFrame:
    """Joins the (smoothed) outputs of the frames with a face to the per-frame rows."""
    found = table["face_found"].to_numpy(bool)
    smoothed = outputs
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
    raw = tg.outputs_frame(outputs)
    values = tg.outputs_frame(smoothed)
    values["valence_raw"] = raw[tg.VALENCE].to_numpy()
    values["arousal_raw"] = raw[tg.AROUSAL].to_numpy()
    values["expression_raw"] = raw["expression"].to_numpy()
    values.index = table.index[found]
    return table.join(values)
