"""Image preprocessing in pure TF ops: encoded image + landmarks -> aligned model input.

The same function serves ``tf.data`` training pipelines, the TFX Transform graph and serving
signatures, so a face is prepared identically everywhere (no training/serving skew). The output
is float32 RGB in [0, 255]; each backbone normalises internally.
"""

from __future__ import annotations

import tensorflow as tf

from affect_tf.data.examples import NUM_LANDMARKS
from affect_tf.face.align import align_face


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG/PNG/BMP/GIF bytes to ``(H, W, 3)`` uint8 (first frame of an animation)."""
    return tf.io.decode_image(image_bytes, channels=3, expand_animations=False)


def preprocess_face(
    image_bytes: tf.Tensor,
    landmarks: tf.Tensor,
    bbox: tf.Tensor | None,
    size: int,
    margin: float,
) -> tf.Tensor:
    """Decodes, aligns on the 5 landmarks (box fallback) and crops to ``(size, size, 3)``.

    Args:
        image_bytes: Scalar string tensor, the encoded frame.
        landmarks: ``(10,)`` landmarks in pixels (all zero -> the box is used).
        bbox: ``(4,)`` face box, or None; all zero -> the whole image is the face box (a
            client that sends an already cropped face gives neither box nor landmarks).
        size: Output side.
        margin: Alignment margin (see ``affect_tf.face.align.template_points``).

    Returns:
        float32 ``(size, size, 3)`` in [0, 255].
    """
    image = decode_image(image_bytes)
    if bbox is not None:
        bbox = tf.cast(bbox, tf.float32)
        height_width = tf.cast(tf.shape(image)[:2], tf.float32)
        whole = tf.stack([0.0, 0.0, height_width[1], height_width[0]])
        bbox = tf.where(tf.reduce_all(tf.equal(bbox, 0.0)), whole, bbox)
    face = align_face(image, landmarks, size=size, margin=margin, bbox=bbox)
    face = tf.clip_by_value(face, 0.0, 255.0)
    return tf.ensure_shape(face, [size, size, 3])


def preprocess_batch(
    image_bytes: tf.Tensor,
    landmarks: tf.Tensor,
    bbox: tf.Tensor,
    size: int,
    margin: float,
) -> tf.Tensor:
    """Batched ``preprocess_face``: ``(N,)`` bytes, ``(N, 10)`` landmarks, ``(N, 4)`` boxes ->
    ``(N, size, size, 3)``; the one definition the Transform graph and serving signatures use."""
    return tf.map_fn(
        lambda x: preprocess_face(x[0], x[1], x[2], size, margin),
        (
            tf.reshape(image_bytes, [-1]),
            tf.reshape(tf.cast(landmarks, tf.float32), [-1, 2 * NUM_LANDMARKS]),
            tf.reshape(tf.cast(bbox, tf.float32), [-1, 4]),
        ),
        fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
    )


def preprocess_array(image, landmarks, size: int, margin: float) -> tf.Tensor:
    """Aligns an already decoded RGB image (e.g. from OpenCV / PIL) the same way."""
    face = align_face(tf.convert_to_tensor(image), landmarks, size=size, margin=margin)
    return tf.clip_by_value(face, 0.0, 255.0)
