"""The tf.Example contract: one place for the feature keys, their types and shapes.

Every corpus reader produces ``FaceRecord`` objects; ``encode_example`` turns them into
``tf.train.Example`` protos and ``parse_examples`` / ``parse_example`` read them back inside
``tf.data`` or a serving signature. Landmarks are the 5 points (left eye, right eye, nose,
mouth left, mouth right) as x, y pixel coordinates, where "left" is the image's left (the
MTCNN / ArcFace convention), not the subject's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import tensorflow as tf

from affect_tf.core.errors import UserError
from affect_tf.core.labels import (
    MAX_FRAME,
    NUM_AUS,
    NUM_EXPRESSIONS,
    VA_RANGE,
    FaceLabels,
    check_expression_dist,
)

# --- feature keys (the one source of truth) --------------------------------------------------
IMAGE: Final[str] = "image"
BBOX: Final[str] = "bbox"
LANDMARKS: Final[str] = "landmarks"
VALENCE: Final[str] = "valence"
AROUSAL: Final[str] = "arousal"
VA_MASK: Final[str] = "va_mask"
EXPRESSION: Final[str] = "expression"
EXPR_MASK: Final[str] = "expr_mask"
# The annotators' distribution over the 8 classes (a soft label); all zeros: none.
EXPRESSION_DIST: Final[str] = "expression_dist"
AU: Final[str] = "au"
AU_MASK: Final[str] = "au_mask"
VIDEO_ID: Final[str] = "video_id"
FRAME: Final[str] = "frame"
SOURCE: Final[str] = "source"

# Features the TFX Transform graph emits (``affect_tf.pipeline.transform``): the aligned face
# (float32 RGB in [0, 255], the preset's size) under ``image_xf`` (TFX's ``_xf`` convention: a
# transformed feature never shares the raw feature's key), the labels passed through, and the
# training split's label statistics (``LabelPriors.to_vector``).
TRANSFORMED_IMAGE: Final[str] = "image_xf"
LABEL_PRIORS: Final[str] = "label_priors"

NUM_LANDMARKS: Final[int] = 5
LANDMARK_NAMES: Final[tuple[str, ...]] = (
    "left_eye",
    "right_eye",
    "nose",
    "mouth_left",
    "mouth_right",
)

# Fixed-length features: every example carries all of them, masks say which labels are real.
FEATURE_SPEC: Final[dict[str, tf.io.FixedLenFeature]] = {
    IMAGE: tf.io.FixedLenFeature([], tf.string),
    BBOX: tf.io.FixedLenFeature([4], tf.float32),
    LANDMARKS: tf.io.FixedLenFeature([2 * NUM_LANDMARKS], tf.float32),
    VALENCE: tf.io.FixedLenFeature([], tf.float32),
    AROUSAL: tf.io.FixedLenFeature([], tf.float32),
    VA_MASK: tf.io.FixedLenFeature([], tf.int64),
    EXPRESSION: tf.io.FixedLenFeature([], tf.int64),
    EXPR_MASK: tf.io.FixedLenFeature([], tf.int64),
    # Written on every example since it exists; files from before read as "no distribution".
    EXPRESSION_DIST: tf.io.FixedLenFeature(
        [NUM_EXPRESSIONS], tf.float32, default_value=[0.0] * NUM_EXPRESSIONS
    ),
    AU: tf.io.FixedLenFeature([NUM_AUS], tf.int64),
    AU_MASK: tf.io.FixedLenFeature([NUM_AUS], tf.int64),
    VIDEO_ID: tf.io.FixedLenFeature([], tf.string),
    FRAME: tf.io.FixedLenFeature([], tf.int64),
    SOURCE: tf.io.FixedLenFeature([], tf.string),
}
# Features an example may lack (written by older versions): they parse to their default.
OPTIONAL_KEYS: Final[tuple[str, ...]] = (EXPRESSION_DIST,)
LABEL_KEYS: Final[tuple[str, ...]] = (
    VALENCE,
    AROUSAL,
    VA_MASK,
    EXPRESSION,
    EXPR_MASK,
    EXPRESSION_DIST,
    AU,
    AU_MASK,
)


class LabelError(UserError):
    """A label value outside its documented range; the message names the field."""


@dataclasses.dataclass(kw_only=True)
class FaceRecord(FaceLabels):
    """One face with every label it has; the Python twin of the tf.Example contract.

    Attributes:
        image: Encoded image bytes (JPEG/PNG/BMP), the whole frame, not a crop.
        bbox: Face box ``(x, y, w, h)`` in pixels of ``image``.
        landmarks: ``(5, 2)`` pixel coordinates: left eye, right eye, nose, mouth left,
            mouth right.
        Plus the ``FaceLabels`` fields.
    """

    image: bytes
    bbox: Sequence[float]
    landmarks: np.ndarray

    def validate(self) -> None:
        """Checks every field against the contract.

        Raises:
            LabelError: Naming the first field that is out of range or has the wrong shape.
        """
        if not isinstance(self.image, bytes | bytearray) or not self.image:
            raise LabelError("Expected non-empty encoded image bytes. Received: field=image")
        if not isinstance(self.frame, int) or not 0 <= self.frame <= MAX_FRAME:
            raise LabelError(
                f"Expected frame as an integer in [0, {MAX_FRAME}]. Received: frame={self.frame!r}"
            )
        bbox = np.asarray(self.bbox, dtype=np.float64)
        if bbox.shape != (4,) or not np.all(np.isfinite(bbox)) or bbox[2] <= 0 or bbox[3] <= 0:
            raise LabelError(
                f"Expected bbox as 4 finite floats (x, y, w, h) with w, h > 0. "
                f"Received: bbox={self.bbox!r}"
            )
        landmarks = np.asarray(self.landmarks, dtype=np.float64)
        if landmarks.size != 2 * NUM_LANDMARKS or not np.all(np.isfinite(landmarks)):
            raise LabelError(
                f"Expected 5 landmarks as 10 finite floats. Received: landmarks={self.landmarks!r}"
            )
        _check_flag("va_mask", self.va_mask)
        _check_flag("expr_mask", self.expr_mask)
        if self.va_mask:
            for name in ("valence", "arousal"):
                value = getattr(self, name)
                if not (math.isfinite(value) and VA_RANGE[0] <= value <= VA_RANGE[1]):
                    raise LabelError(
                        f"Expected {name} in [{VA_RANGE[0]}, {VA_RANGE[1]}]. "
                        f"Received: {name}={value!r}"
                    )
        if self.expr_mask and not 0 <= int(self.expression) < NUM_EXPRESSIONS:
            raise LabelError(
                f"Expected expression in [0, {NUM_EXPRESSIONS - 1}]. "
                f"Received: expression={self.expression!r}"
            )
        if self.expression_dist is not None:
            if not self.expr_mask:
                raise LabelError(
                    "Expected expression_dist only with an expression label. Received: "
                    "expression_dist with expr_mask=0"
                )
            try:
                check_expression_dist(self.expression_dist)
            except ValueError as e:
                raise LabelError(str(e)) from None
        for name in ("au", "au_mask"):
            values = list(getattr(self, name))
            if len(values) != NUM_AUS or any(v not in (0, 1) for v in values):
                raise LabelError(
                    f"Expected {name} as {NUM_AUS} values in {{0, 1}}. Received: {name}={values!r}"
                )


def _check_flag(name: str, value: int) -> None:
    if value not in (0, 1):
        raise LabelError(f"Expected {name} in {{0, 1}}. Received: {name}={value!r}")


def _floats(values: Iterable[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def _ints(values: Iterable[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _bytes(value: bytes | str) -> tf.train.Feature:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def encode_example(record: FaceRecord) -> tf.train.Example:
    """Encodes a validated ``FaceRecord`` as a ``tf.train.Example``.

    Masked-out labels are written as zeros so that every feature is fixed-length.

    Raises:
        LabelError: If the record breaks the contract (see ``FaceRecord.validate``).
    """
    record.validate()
    va = (record.valence, record.arousal) if record.va_mask else (0.0, 0.0)
    au = [a if m else 0 for a, m in zip(record.au, record.au_mask, strict=True)]
    features = {
        IMAGE: _bytes(bytes(record.image)),
        BBOX: _floats(record.bbox),
        LANDMARKS: _floats(np.asarray(record.landmarks, dtype=np.float32).reshape(-1)),
        VALENCE: _floats([va[0]]),
        AROUSAL: _floats([va[1]]),
        VA_MASK: _ints([record.va_mask]),
        EXPRESSION: _ints([record.expression if record.expr_mask else 0]),
        EXPR_MASK: _ints([record.expr_mask]),
        EXPRESSION_DIST: _floats(
            check_expression_dist(record.expression_dist)
            if record.expression_dist is not None
            else [0.0] * NUM_EXPRESSIONS
        ),
        AU: _ints(au),
        AU_MASK: _ints(record.au_mask),
        VIDEO_ID: _bytes(record.video_id),
        FRAME: _ints([record.frame]),
        SOURCE: _bytes(record.source),
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def serialize_example(record: FaceRecord) -> bytes:
    """Returns the serialized ``tf.train.Example`` of a record."""
    return encode_example(record).SerializeToString()


def _spec(keys: Iterable[str] | None, spec: dict | None) -> dict:
    spec = FEATURE_SPEC if spec is None else spec
    return spec if keys is None else {k: spec[k] for k in keys}


def parse_example(
    serialized: tf.Tensor, keys: Iterable[str] | None = None, spec: dict | None = None
) -> dict[str, tf.Tensor]:
    """Parses one serialized example into the contract's tensors (usable in ``tf.data``).

    Args:
        serialized: Scalar string tensor.
        keys: Only these features (default all of ``FEATURE_SPEC``).
        spec: Another spec of the same features (the Transform graph's raw feature spec).
    """
    return tf.io.parse_single_example(serialized, _spec(keys, spec))


def parse_examples(
    serialized: tf.Tensor, keys: Iterable[str] | None = None, spec: dict | None = None
) -> dict[str, tf.Tensor]:
    """Parses a batch (1-D string tensor) of serialized examples; the serving-signature form.
    ``keys`` and ``spec`` as in ``parse_example``."""
    return tf.io.parse_example(serialized, _spec(keys, spec))


def decode_example(serialized: bytes) -> FaceRecord:
    """Decodes serialized example bytes back into a ``FaceRecord`` (eager, for tools and tests)."""
    example = tf.train.Example.FromString(serialized)
    f = example.features.feature

    def floats(key: str) -> list[float]:
        return list(f[key].float_list.value)

    def ints(key: str) -> list[int]:
        return [int(v) for v in f[key].int64_list.value]

    missing = [key for key in FEATURE_SPEC if key not in f and key not in OPTIONAL_KEYS]
    if missing:
        raise LabelError(f"Expected every contract feature. Received: missing keys={missing}")
    dist = floats(EXPRESSION_DIST)
    return FaceRecord(
        image=f[IMAGE].bytes_list.value[0],
        bbox=floats(BBOX),
        landmarks=np.asarray(floats(LANDMARKS), dtype=np.float32).reshape(NUM_LANDMARKS, 2),
        valence=floats(VALENCE)[0],
        arousal=floats(AROUSAL)[0],
        va_mask=ints(VA_MASK)[0],
        expression=ints(EXPRESSION)[0],
        expr_mask=ints(EXPR_MASK)[0],
        expression_dist=dist if any(dist) else None,  # all zeros (or absent): none
        au=ints(AU),
        au_mask=ints(AU_MASK),
        video_id=f[VIDEO_ID].bytes_list.value[0].decode("utf-8"),
        frame=ints(FRAME)[0],
        source=f[SOURCE].bytes_list.value[0].decode("utf-8"),
    )


def read_tfrecord(path: str, compression: str | None = "auto") -> Iterable[FaceRecord]:
    """Yields the ``FaceRecord`` objects of a TFRecord file (GZIP when the name ends in .gz)."""
    if compression == "auto":
        compression = "GZIP" if str(path).endswith(".gz") else None
    for raw in tf.data.TFRecordDataset(str(path), compression_type=compression or ""):
        yield decode_example(raw.numpy())
