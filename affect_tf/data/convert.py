"""Samples -> tf.Examples: decode and check each image, find the face where the corpus gives
none, and write a GZIP TFRecord with a JSON report of what was written and what was skipped.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import io
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from affect_tf.core.files import replaced_atomically
from affect_tf.data.corpus import Sample, SkipReport
from affect_tf.data.coverage import ConvertResult, LabelStats
from affect_tf.data.examples import FaceRecord, LabelError, serialize_example
from affect_tf.data.images import ImageDecodeError, decode_rgb
from affect_tf.face.registry import DEFAULT_DETECTOR, check_detector

# Encodings TensorFlow's decode_image reads into a single (H, W, C) uint8 frame; anything
# else (WebP, TIFF, GIF, 16-bit or CMYK) is re-encoded as PNG so the Transform graph can read it.
# A landmark this far outside the image (fraction of its size) is a label error, not a face
# partly out of frame.
_OUTSIDE_TOLERANCE = 0.5
# A detection must overlap the given box this much to lend it its landmarks.
_MIN_IOU = 0.3


class SkipSample(Exception):
    """Raised while converting one sample: the reason (a short name) and a detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass
class DecodedImage:
    """An image file's bytes, ready for the tf.Example, and its RGB pixels."""

    data: bytes
    rgb: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def load_image(path: Path, exif_orientation: bool = False) -> DecodedImage:
    """Reads and fully decodes an image, re-encoding it as PNG if TF could not decode it.

    Raises:
        SkipSample: ``missing_file``, ``unreadable_file``, ``corrupt_image`` (incl. truncated)
            or ``image_too_large`` (``affect_tf.data.images.MAX_IMAGE_PIXELS``).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SkipSample("missing_file", "no such file") from None
    except OSError as e:
        raise SkipSample("unreadable_file", f"{type(e).__name__}: {e.strerror or e}") from None
    try:
        # Corpus landmarks and boxes refer to the stored pixels, so EXIF orientation is applied
        # only where the face will be detected on the decoded pixels.
        decoded = decode_rgb(data, exif_orientation=exif_orientation)
    except ImageDecodeError as e:
        raise SkipSample(e.reason, str(e)) from None
    rgb = decoded.rgb
    if not decoded.tf_ready:  # what training and serving decode (tf.io) must be these pixels
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG")
        data = buffer.getvalue()
    return DecodedImage(data=data, rgb=rgb)


def _check_inside(points: np.ndarray, size: tuple[int, int], what: str) -> None:
    w, h = size
    low = -_OUTSIDE_TOLERANCE * np.array([w, h])
    high = (1 + _OUTSIDE_TOLERANCE) * np.array([w, h])
    if np.any(points < low) or np.any(points > high):
        raise SkipSample(
            f"{what}_outside_image",
            f"field={what}: {np.round(points, 1).tolist()} for an image of {w}x{h}",
        )


@functools.lru_cache(maxsize=32)
def _template_in_frame(width: int, height: int) -> np.ndarray:
    """The template's landmarks in a whole aligned frame (one TF call per frame size, cached:
    an aligned corpus such as Aff-Wild2 has millions of frames of one size)."""
    from affect_tf.face.align import landmarks_from_box

    landmarks = landmarks_from_box(np.array([0.0, 0.0, width, height], np.float32)).numpy()
    landmarks.setflags(write=False)
    return landmarks


class Converter:
    """Turns ``Sample`` objects into ``FaceRecord`` objects, detecting faces only when needed.

    Args:
        detector_factory: Builds the face detector on first use (default: ``detector`` by
            name), so corpora with boxes and landmarks never pay for it.
        policy: Which face to keep when several are found (``largest`` or ``confident``).
        detector: The detector's name (``affect_tf.face.DETECTORS``) when no factory is given.
        min_face: Its smallest face side in pixels (None: the detector's default).
    """

    def __init__(
        self,
        detector_factory: Callable[[], object] | None = None,
        policy: str = "largest",
        detector: str = DEFAULT_DETECTOR,
        min_face: int | None = None,
    ) -> None:
        check_detector(detector, min_face)
        self._factory = detector_factory
        self._detector = None
        self.policy = policy
        self.detector_name = detector
        self.min_face = min_face
        # Where the last converted sample's face came from: the detector that found it
        # (``blazeface``, ``mtcnn`` behind BlazeFace's fallback, ``none``), or ``given``
        # landmarks, an ``aligned`` crop, a ``box`` without a matching detection.
        self.found_by = ""

    @property
    def detector(self):
        if self._detector is None:
            if self._factory is None:
                from affect_tf.face.registry import make_detector

                self._detector = make_detector(self.detector_name, self.policy, self.min_face)
            else:
                self._detector = self._factory()
        return self._detector

    def to_record(self, sample: Sample, report: SkipReport | None = None) -> FaceRecord:
        """Converts one sample.

        Raises:
            SkipSample: With the reason the sample cannot be used.
        """
        # Imported here: the TF graph code is only needed once a sample really is converted.
        from affect_tf.face.align import box_from_landmarks, landmarks_from_box
        from affect_tf.face.detect import box_iou, no_face_reason, select_face, too_thin

        detect = not sample.aligned and sample.landmarks is None and sample.bbox is None
        image = load_image(sample.path, exif_orientation=detect)
        w, h = image.size
        self.found_by = "given"
        if sample.aligned:
            self.found_by = "aligned"
            bbox = (0.0, 0.0, float(w), float(h))
            landmarks = _template_in_frame(w, h)
        elif sample.landmarks is not None:
            landmarks = np.asarray(sample.landmarks, np.float32).reshape(5, 2)
            _check_inside(landmarks, image.size, "landmarks")
            bbox = sample.bbox or tuple(float(v) for v in box_from_landmarks(landmarks).numpy())
        elif sample.bbox is not None:
            bbox = tuple(float(v) for v in sample.bbox)
            corners = np.array([[bbox[0], bbox[1]], [bbox[0] + bbox[2], bbox[1] + bbox[3]]])
            _check_inside(corners, image.size, "bbox")
            # Landmarks from the detection that matches the given box, else from the box itself.
            candidates = [
                d for d in self.detector.detect(image.rgb) if box_iou(d.box, bbox) >= _MIN_IOU
            ]
            if candidates:
                best = max(candidates, key=lambda d: box_iou(d.box, bbox))
                landmarks = best.landmarks
                self.found_by = best.detector or self.detector_name
            else:
                self.found_by = "box"
                landmarks = landmarks_from_box(np.array(bbox, np.float32)).numpy()
                if report is not None:
                    report.note(
                        "landmarks_from_box", str(sample.path), "no detection matched the box"
                    )
        else:
            thin = too_thin(image.rgb)
            if thin:
                raise SkipSample("image_too_thin", thin)
            face = select_face(self.detector.detect(image.rgb), self.policy)  # type: ignore[arg-type]
            if face is None:
                raise SkipSample("no_face", f"{no_face_reason(self.detector)} ({w}x{h})")
            bbox, landmarks = face.box, face.landmarks
            self.found_by = face.detector or self.detector_name
        record = FaceRecord(image=image.data, bbox=bbox, landmarks=landmarks, **sample.labels())
        try:
            record.validate()
        except LabelError as e:
            raise SkipSample("label_invalid", str(e)) from None
        return record


_WORKER: Converter | None = None
# ``convert(workers=0)`` starts a process pool from this many samples that need detection:
# measured on 2 cores (docs/results.md), 160 photos took 2.2x longer with two workers (each
# loads TensorFlow and MTCNN first) and 600 photos 1.17x shorter.
AUTO_POOL_MIN = 500


def _init_worker(policy: str, detector: str, min_face: int | None) -> None:
    """A conversion worker process: one TF thread and one LiteRT thread per interpreter (the
    processes share the cores), own detector."""
    import os

    import tensorflow as tf

    from affect_tf.face.detect import LITERT_THREADS_ENV

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    os.environ[LITERT_THREADS_ENV] = "1"
    global _WORKER
    _WORKER = Converter(policy=policy, detector=detector, min_face=min_face)


def _convert_one(converter: Converter, sample: Sample):
    """``(record, None, notes, found_by)`` or ``(None, (reason, detail), notes, None)`` for one
    sample; ``found_by`` says where its face came from (a detector's name, ``given``,
    ``aligned``, ``box``)."""
    report = SkipReport()
    try:
        record = converter.to_record(sample, report)
    except SkipSample as e:
        return None, (e.reason, e.detail), {}, None
    notes = {r: list(ex) for r, ex in report.examples.items()}
    return record, None, notes, converter.found_by


def _convert_in_worker(sample: Sample):
    return _convert_one(_WORKER, sample)  # type: ignore[arg-type]


def _records(samples: Iterable[Sample], converter: Converter, workers: int):
    """``(sample, record | None, skip | None, notes, found_by)`` in the samples' order.

    With ``workers > 1`` a pool of spawned processes converts (MTCNN in each); with a custom
    detector factory (which may not pickle) or one worker, this process does.
    """
    if workers <= 1 or converter._factory is not None:
        for sample in samples:
            yield sample, *_convert_one(converter, sample)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(converter.policy, converter.detector_name, converter.min_face),
    ) as pool:
        samples = list(samples)
        results = pool.map(_convert_in_worker, samples, chunksize=8)
        for sample, (record, skip, notes, found_by) in zip(samples, results, strict=True):
            yield sample, record, skip, notes, found_by


def default_workers() -> int:
    """Conversion processes by default: every core (``face.detect.available_cores``)."""
    from affect_tf.face.detect import available_cores

    return available_cores()


def convert(
    samples: Iterable[Sample],
    out_path: str | Path,
    report: SkipReport | None = None,
    converter: Converter | None = None,
    progress: bool = True,
    total: int | None = None,
    workers: int = 1,
) -> ConvertResult:
    """Writes the usable samples as GZIP-compressed tf.Examples and reports the rest.

    The file is written under a temporary name and renamed when complete, so an interrupted
    conversion never leaves a file that looks finished.

    Args:
        samples: From a corpus reader (which may already have recorded skips in ``report``).
        out_path: The ``.tfrecord.gz`` file to write; its folder is created.
        report: The reader's skip report; conversion skips are added to it.
        converter: Face finding policy and detector; a default one when None.
        progress: Show a progress bar on stderr.
        total: Number of samples, for the progress bar, when known.
        workers: Processes that decode and detect faces; 0: every core when at least
            ``AUTO_POOL_MIN`` samples need face detection, else 1. The output order is the
            samples' order either way.

    Returns:
        A ``ConvertResult``; ``<out_path>.report.json`` holds its counts.
    """
    import tensorflow as tf
    from tqdm import tqdm

    report = report if report is not None else SkipReport()
    converter = converter or Converter()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    compression = "GZIP" if out_path.name.endswith(".gz") else ""
    stats = LabelStats()
    if workers != 1:
        samples = list(samples)
        total = len(samples)
        if workers == 0:
            # Auto: the pool pays off where faces must be found (MTCNN); decoding alone is
            # faster here than starting processes that each load TensorFlow.
            detect = sum(1 for s in samples if s.landmarks is None and not s.aligned)
            workers = default_workers() if detect >= AUTO_POOL_MIN else 1
    results = _records(samples, converter, workers)
    bar = tqdm(results, total=total, disable=not progress, unit="img", desc="convert", leave=False)
    # The report names the size of the file it describes and lands last (the inner block renames
    # the examples first): a cached conversion is reused only when the two agree
    # (``affect_tf.data.sources``), so a kill between the renames, or a truncated file, is
    # rebuilt rather than read.
    report_path = out_path.with_name(out_path.name + ".report.json")
    found_by: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    with replaced_atomically(report_path) as report_partial:
        with replaced_atomically(out_path) as partial:
            with tf.io.TFRecordWriter(str(partial), options=compression or None) as writer:
                for sample, record, skip, notes, source in bar:
                    for reason, examples in notes.items():
                        for example in examples:
                            report.note(reason, example)
                    if skip is not None:
                        report.skip(skip[0], str(sample.path), skip[1])
                        continue
                    writer.write(serialize_example(record))
                    stats.add(record)
                    found_by[source] += 1
                    bar.set_postfix(
                        written=stats.written, skipped=report.total_skipped, refresh=False
                    )
            result = ConvertResult(
                out_path, report_path, stats, report, dict(found_by.most_common()),
                time.perf_counter() - start,
            )  # fmt: skip
            report_partial.write_text(json.dumps(result.summary(partial), indent=2))
    return result


def convert_corpus(
    format: str,
    root: str | Path,
    out_path: str | Path,
    split: str = "train",
    converter: Converter | None = None,
    progress: bool = True,
    workers: int = 0,
) -> ConvertResult:
    """Reads a corpus in one of the ``affect_tf.data.READERS`` formats and converts it.

    The reader's skips and the conversion's skips go into one report.

    Raises:
        CorpusError: When the corpus cannot be read as a whole.
    """
    from affect_tf.data import read_corpus

    report = SkipReport()
    samples = read_corpus(format, root, split, report)
    return convert(
        samples, out_path, report=report, converter=converter, progress=progress, workers=workers
    )
