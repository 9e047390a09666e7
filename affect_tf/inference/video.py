"""Video: the main face followed frame to frame, read by the model, smoothed over time.

The main face is the largest in the first frame with a face, then in every later frame the
detection overlapping most with its last box (the largest when none overlaps), so a passer-by
does not take over. With tracking (the default) the face is followed by MTCNN's O-Net alone
(``FaceDetector.refine`` on its last box, 4x cheaper than detecting), with a full detection on the
first frame, every ``redetect_every`` sampled frames and whenever O-Net loses the face.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from affect_tf.data import targets as tg
from affect_tf.face.detect import Detection, box_iou
from affect_tf.inference.clock import StageClock
from affect_tf.inference.errors import InferenceError
from affect_tf.smoothing import parse_smooth, smooth_by_video

BOX_COLUMNS = ("x", "y", "w", "h")
# A detection continues the main face when it overlaps the last box by more than this IoU.
CONTINUE_IOU = 0.1


class MainFaceTracker:
    """Chooses the main face of each frame (see the module docstring).

    Args:
        detector: An ``affect_tf.face.FaceDetector`` (``detect`` and ``refine``).
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


def open_video(path: str | Path):
    """``(capture, fps, frame count or None)`` of a video file OpenCV can decode.

    Raises:
        InferenceError: The file is missing or cannot be opened.
    """
    import cv2

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
    return capture, fps, total


def sampled_frames(
    capture, every: int, max_frames: int | None, clock: StageClock, bar=None
) -> Iterator[tuple[int, np.ndarray | None]]:
    """``(index, RGB frame)`` for every ``every``-th frame, ``(index, None)`` for the others (so
    the caller counts every decoded frame); releases the capture at the end."""
    import cv2

    index = 0
    try:
        while max_frames is None or index < max_frames:
            with clock("decode"):
                ok, frame = capture.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if index % every == 0 else None
            yield index, rgb
            index += 1
            if bar is not None:
                bar.update(1)
    finally:
        capture.release()
        if bar is not None:
            bar.close()


def predict_video(
    recognizer,
    path: str | Path,
    every: int = 1,
    smooth: str | None = "mean:15",
    progress: bool = True,
    max_frames: int | None = None,
    track: bool = True,
    redetect_every: int = 30,
) -> pd.DataFrame:
    """Reads the main face through a video with an ``AffectRecognizer``; one row per sampled frame.

    Frames are batched through the model, then ``smooth`` (``"mean:15"``, ``"median:9"`` or
    None) filters the sequence (``affect_tf.smoothing``; frames without a face are interpolated
    over).

    Returns:
        Columns ``frame``, ``time_s``, ``face_found``, ``x, y, w, h``, ``score``, then
        ``outputs_frame``'s columns (smoothed) and ``valence_raw``, ``arousal_raw``,
        ``expression_raw`` (before smoothing). ``attrs``: ``fps``, ``frames`` (in the file),
        ``frames_with_face``, ``frames_tracked`` (found by O-Net tracking rather than a full
        detection), ``smooth``, ``seconds``, ``stage_seconds`` (decode, detect, align, model,
        smooth).

    Raises:
        InferenceError: The file is missing or OpenCV cannot decode it.
    """
    if every < 1:
        raise ValueError(f"Expected every >= 1. Received: every={every}")
    tracker = MainFaceTracker(recognizer.detector, track, redetect_every)
    smoothing = parse_smooth(smooth)
    capture, fps, total = open_video(path)
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=Path(path).name, unit="frame")
    rows: list[dict] = []
    crops: list[np.ndarray] = []
    frames = 0
    clock = StageClock("decode", "detect", "align", "model", "smooth")
    start = time.perf_counter()
    for index, rgb in sampled_frames(capture, every, max_frames, clock, bar):
        frames = index + 1
        if rgb is None:
            continue
        with clock("detect"):
            chosen = tracker(rgb)
        if chosen is not None:
            with clock("align"):
                crops.append(recognizer.align(rgb, chosen.landmarks))
        row = {"frame": index, "time_s": index / fps, "face_found": chosen is not None}
        row |= dict(zip(BOX_COLUMNS, chosen.box if chosen else [np.nan] * 4, strict=True))
        rows.append(row | {"score": chosen.score if chosen else np.nan})
    if frames == 0:
        raise InferenceError(
            f"Expected a video with frames. Received: path={str(path)!r} (no frame decoded)"
        )
    with clock("model"):
        outputs = recognizer.predict_faces(crops)
    table = _frames_table(pd.DataFrame(rows), outputs, smoothing, clock)
    table.attrs.update(
        {
            "fps": fps,
            "frames": frames,
            "frames_with_face": int(table["face_found"].sum()),
            "frames_tracked": tracker.tracked,
            "smooth": smooth if smoothing else None,
            "seconds": time.perf_counter() - start,
            "stage_seconds": clock.seconds,
            "source": str(path),
        }
    )
    return table


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
