"""Face alignment in pure TensorFlow ops: 5 landmarks -> similarity transform -> aligned crop.

Everything here is a TF graph op (no NumPy, no OpenCV), so the same code runs eagerly, inside
``tf.data``, in a TFX Transform ``preprocessing_fn`` and in a serving signature: the aligned face
the model sees in production is computed exactly as in training.

Conventions: coordinates are ``(x, y)`` in pixels with pixel centres at integers (as
``ImageProjectiveTransformV3`` samples); the 5 points are left eye, right eye, nose, mouth left,
mouth right, "left" meaning the image's left.
"""

from __future__ import annotations

import tensorflow as tf

# The template and the shrink threshold are ``warp``'s (the NumPy copy of this alignment), so
# the two implementations cannot drift apart on them.
from affect_tf.face.warp import MAX_SAMPLING_STEP, TEMPLATE_112, TEMPLATE_SIZE


def template_points(size: int = TEMPLATE_SIZE, margin: float = 0.0) -> tf.Tensor:
    """Returns the template's 5 points ``(5, 2)`` for a ``size`` x ``size`` crop.

    Args:
        size: Output side in pixels.
        margin: Extra context around the face as a fraction of the template crop: 0.0 is the
            ArcFace crop, 0.25 shows 25 % more on each axis (the face appears smaller).
    """
    unit = (TEMPLATE_112 + 0.5) / TEMPLATE_SIZE  # pixel centres -> [0, 1] crop coordinates
    unit = (unit - 0.5) / (1.0 + margin) + 0.5
    return tf.constant(unit * size - 0.5, dtype=tf.float32)


def landmarks_from_box(bbox: tf.Tensor) -> tf.Tensor:
    """Box-only fallback: places the template's points inside a face box.

    Args:
        bbox: ``(..., 4)`` boxes ``(x, y, w, h)`` in pixels.

    Returns:
        ``(..., 5, 2)`` landmarks, where the template would put them if the box were its crop.
    """
    bbox = tf.convert_to_tensor(bbox, dtype=tf.float32)
    unit = tf.constant((TEMPLATE_112 + 0.5) / TEMPLATE_SIZE, dtype=tf.float32)  # (5, 2)
    origin = bbox[..., tf.newaxis, 0:2]
    extent = bbox[..., tf.newaxis, 2:4]
    return origin + unit * extent - 0.5


def estimate_similarity(src: tf.Tensor, dst: tf.Tensor) -> tf.Tensor:
    """Least-squares similarity transform (rotation, uniform scale, translation) from src to dst.

    The closed form of Umeyama's method restricted to 2-D similarities without reflection:
    with centred points, ``a = Σ(s·d) / Σ|s|²`` and ``b = Σ(s × d) / Σ|s|²``.

    Args:
        src: ``(..., N, 2)`` source points.
        dst: ``(..., N, 2)`` destination points; leading dimensions broadcast with ``src``.

    Returns:
        ``(..., 2, 3)`` matrices ``[[a, -b, tx], [b, a, ty]]`` mapping src onto dst.
    """
    src = tf.convert_to_tensor(src, dtype=tf.float32)
    dst = tf.convert_to_tensor(dst, dtype=tf.float32)
    shape = tf.broadcast_dynamic_shape(tf.shape(src), tf.shape(dst))
    src, dst = tf.broadcast_to(src, shape), tf.broadcast_to(dst, shape)
    src_mean = tf.reduce_mean(src, axis=-2, keepdims=True)
    dst_mean = tf.reduce_mean(dst, axis=-2, keepdims=True)
    s = src - src_mean
    d = dst - dst_mean
    denom = tf.maximum(tf.reduce_sum(tf.square(s), axis=[-2, -1]), 1e-12)
    a = tf.reduce_sum(s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1], axis=-1) / denom
    b = tf.reduce_sum(s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0], axis=-1) / denom
    mx, my = src_mean[..., 0, 0], src_mean[..., 0, 1]
    tx = dst_mean[..., 0, 0] - (a * mx - b * my)
    ty = dst_mean[..., 0, 1] - (b * mx + a * my)
    row0 = tf.stack([a, -b, tx], axis=-1)
    row1 = tf.stack([b, a, ty], axis=-1)
    return tf.stack([row0, row1], axis=-2)


def apply_similarity(matrix: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
    """Applies ``(..., 2, 3)`` matrices to ``(..., N, 2)`` points."""
    matrix = tf.convert_to_tensor(matrix, dtype=tf.float32)
    points = tf.convert_to_tensor(points, dtype=tf.float32)
    linear = matrix[..., :2]
    return tf.linalg.matmul(points, linear, transpose_b=True) + matrix[..., tf.newaxis, :, 2]


def _inverse_projective(matrix: tf.Tensor) -> tf.Tensor:
    """Turns forward similarities (input -> output) into ImageProjectiveTransformV3's
    8-vectors, which map each *output* pixel to the *input* location it samples."""
    a, b = matrix[..., 0, 0], matrix[..., 1, 0]
    tx, ty = matrix[..., 0, 2], matrix[..., 1, 2]
    k = a * a + b * b
    zeros = tf.zeros_like(a)
    return tf.stack(
        [a / k, b / k, -(a * tx + b * ty) / k, -b / k, a / k, (b * tx - a * ty) / k, zeros, zeros],
        axis=-1,
    )


def _as_points(landmarks: tf.Tensor) -> tf.Tensor:
    """Accepts ``(..., 10)`` flat landmarks (the tf.Example layout) or ``(..., 5, 2)`` points."""
    landmarks = tf.convert_to_tensor(landmarks, dtype=tf.float32)
    if landmarks.shape[-1] == 10:
        return tf.reshape(landmarks, tf.concat([tf.shape(landmarks)[:-1], [5, 2]], axis=0))
    return landmarks


def _usable_landmarks(points: tf.Tensor, bbox: tf.Tensor | None) -> tf.Tensor:
    """Uses the box fallback where landmarks are all zero or not finite (and a box is given)."""
    if bbox is None:
        return points
    missing = tf.logical_or(
        tf.reduce_all(tf.equal(points, 0.0), axis=[-2, -1]),
        tf.logical_not(tf.reduce_all(tf.math.is_finite(points), axis=[-2, -1])),
    )
    return tf.where(missing[..., tf.newaxis, tf.newaxis], landmarks_from_box(bbox), points)


def align_face(
    image: tf.Tensor,
    landmarks: tf.Tensor,
    size: int = TEMPLATE_SIZE,
    margin: float = 0.0,
    bbox: tf.Tensor | None = None,
    fill_mode: str = "CONSTANT",
) -> tf.Tensor:
    """Aligns one face: warps ``image`` so its 5 landmarks land on the template points.

    Args:
        image: ``(H, W, C)`` image, any numeric dtype (returned as float32, same value range).
        landmarks: ``(5, 2)`` or ``(10,)`` landmarks in pixels of ``image``.
        size: Output side in pixels.
        margin: Extra context, see ``template_points``.
        bbox: Optional ``(4,)`` face box; used instead of the landmarks when they are all zero
            or not finite (the box-only fallback).
        fill_mode: What lies outside the image: ``"CONSTANT"`` (black), ``"NEAREST"``,
            ``"REFLECT"`` or ``"WRAP"``.

    Returns:
        ``(size, size, C)`` float32 aligned face.
    """
    image = tf.convert_to_tensor(image)
    image = tf.cast(image, tf.float32)
    points = _usable_landmarks(_as_points(landmarks), bbox)
    dst = template_points(size, margin)
    matrix = estimate_similarity(points, dst)
    # Input pixels per output pixel; above the threshold shrink first, with antialiasing.
    step = 1.0 / tf.sqrt(matrix[0, 0] ** 2 + matrix[1, 0] ** 2)
    factor = tf.maximum(step / MAX_SAMPLING_STEP, 1.0)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    new_shape = tf.maximum(tf.cast(tf.round(shape / factor), tf.int32), 1)

    def shrink() -> tuple[tf.Tensor, tf.Tensor]:
        small = tf.image.resize(image, new_shape, method="area", antialias=True)
        scale = tf.cast(new_shape, tf.float32)[::-1] / shape[::-1]  # (sx, sy)
        # Pixel centres: x_small + 0.5 = (x + 0.5) * s.
        return small, (points + 0.5) * scale - 0.5

    image, points = tf.cond(factor > 1.0, shrink, lambda: (image, points))
    matrix = estimate_similarity(points, dst)
    transform = _inverse_projective(matrix)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=tf.constant([size, size], tf.int32),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR",
        fill_mode=fill_mode,
    )
    return warped[0]


def align_faces(
    images: tf.Tensor,
    landmarks: tf.Tensor,
    size: int = TEMPLATE_SIZE,
    margin: float = 0.0,
    bbox: tf.Tensor | None = None,
    fill_mode: str = "CONSTANT",
) -> tf.Tensor:
    """Batched ``align_face``: ``(B, H, W, C)`` images and ``(B, 5, 2)``/``(B, 10)`` landmarks."""
    elems = (tf.convert_to_tensor(images), _as_points(landmarks))
    if bbox is not None:
        elems += (tf.convert_to_tensor(bbox, tf.float32),)
    return tf.map_fn(
        lambda x: align_face(
            x[0], x[1], size, margin, x[2] if bbox is not None else None, fill_mode
        ),
        elems,
        fn_output_signature=tf.TensorSpec([size, size, None], tf.float32),
    )


def box_from_landmarks(landmarks: tf.Tensor) -> tf.Tensor:
    """The face box implied by 5 landmarks: the template crop mapped into the image.

    The inverse of ``landmarks_from_box`` for an upright face; for a rotated face it is the
    axis-aligned box around the rotated crop.

    Args:
        landmarks: ``(..., 5, 2)`` or ``(..., 10)`` landmarks.

    Returns:
        ``(..., 4)`` boxes ``(x, y, w, h)``.
    """
    matrix = estimate_similarity(tf.constant(TEMPLATE_112), _as_points(landmarks))
    # Crop corners in template pixel coordinates (pixel centres at integers).
    corners = tf.constant([[-0.5, -0.5], [111.5, -0.5], [-0.5, 111.5], [111.5, 111.5]], tf.float32)
    mapped = apply_similarity(matrix, corners)
    low = tf.reduce_min(mapped, axis=-2) + 0.5
    high = tf.reduce_max(mapped, axis=-2) + 0.5
    return tf.concat([low, high - low], axis=-1)
