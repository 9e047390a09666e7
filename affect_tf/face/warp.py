"""Face alignment in NumPy and OpenCV: ``affect_tf.face.align``'s warp, at detector speed.

The TensorFlow alignment (``align.align_face``) is what the Transform graph, training and the
serving signatures run; local inference (``AffectRecognizer``, ``predict``, ``video``) runs
this copy of it instead, one face in well under a millisecond and without TensorFlow. The steps
are the same, in the same float32 arithmetic:

1. the least-squares similarity from the 5 landmarks to the template's points;
2. where the face is large (more than ``MAX_SAMPLING_STEP`` input pixels per output pixel),
   an area-averaging shrink first (OpenCV's ``INTER_AREA`` on float pixels: the exact area
   average TensorFlow's ``resize(method="area")`` computes) with the points moved with it;
3. bilinear sampling of each output pixel at the inverse-mapped input location, pixel centres
   at integers, black outside the image (``ImageProjectiveTransformV3``, ``CONSTANT`` fill),
   written out in NumPy rather than ``cv2.warpAffine``, whose sub-pixel weights are rounded
   to 1/32 pixel.

``tests/face/test_warp.py`` pins the two implementations together (``MAX_DIFFERENCE``).
"""

from __future__ import annotations

import numpy as np

# The canonical 5-point template of a 112x112 aligned face (the ArcFace / InsightFace template,
# also what Aff-Wild2's cropped_aligned frames approximately follow); ``align`` uses it too.
TEMPLATE_SIZE = 112
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
# Below this many input pixels per output pixel, bilinear sampling is fine; above it the image
# is first shrunk with area averaging so that small outputs of large faces don't alias.
MAX_SAMPLING_STEP = 1.5
# Measured largest difference from ``preprocess_array`` in grey levels (0-255) over the tests'
# faces; float32 rounding in a different order, far below one grey level.
MAX_DIFFERENCE = 0.05


def template_points(size: int = TEMPLATE_SIZE, margin: float = 0.0) -> np.ndarray:
    """The template's 5 points ``(5, 2)`` for a ``size`` x ``size`` crop (``align``'s)."""
    unit = (TEMPLATE_112 + 0.5) / TEMPLATE_SIZE
    unit = (unit - 0.5) / (1.0 + margin) + 0.5
    return (unit * size - 0.5).astype(np.float32)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` least-squares similarity mapping ``src`` ``(N, 2)`` onto ``dst``."""
    src = np.asarray(src, np.float32)
    dst = np.asarray(dst, np.float32)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    denom = max(float(np.sum(s * s, dtype=np.float32)), 1e-12)
    a = np.float32(np.sum(s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]) / denom)
    b = np.float32(np.sum(s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]) / denom)
    tx = dst_mean[0] - (a * src_mean[0] - b * src_mean[1])
    ty = dst_mean[1] - (b * src_mean[0] + a * src_mean[1])
    return np.array([[a, -b, tx], [b, a, ty]], np.float32)


def _bilinear(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Samples ``image`` (float32 ``(H, W, C)``) at each output pixel's inverse-mapped
    location: bilinear, black outside (``ImageProjectiveTransformV3`` ``CONSTANT``)."""
    a, b = float(matrix[0, 0]), float(matrix[1, 0])
    tx, ty = float(matrix[0, 2]), float(matrix[1, 2])
    k = a * a + b * b
    grid = np.arange(size, dtype=np.float32)
    xs, ys = np.meshgrid(grid, grid)
    # The inverse similarity, as ``align._inverse_projective`` writes it.
    in_x = np.float32(a / k) * xs + np.float32(b / k) * ys + np.float32(-(a * tx + b * ty) / k)
    in_y = np.float32(-b / k) * xs + np.float32(a / k) * ys + np.float32((b * tx - a * ty) / k)
    height, width = image.shape[:2]
    # One row and column of black around the image: a neighbour outside reads 0.
    padded = np.zeros((height + 2, width + 2, image.shape[2]), np.float32)
    padded[1:-1, 1:-1] = image
    x0, y0 = np.floor(in_x), np.floor(in_y)
    fx, fy = (in_x - x0)[..., None], (in_y - y0)[..., None]
    # Indices into the padded image, clipped so far-away samples read the black border.
    ix0 = np.clip(x0.astype(np.int64) + 1, 0, width + 1)
    iy0 = np.clip(y0.astype(np.int64) + 1, 0, height + 1)
    ix1 = np.clip(x0.astype(np.int64) + 2, 0, width + 1)
    iy1 = np.clip(y0.astype(np.int64) + 2, 0, height + 1)
    top = (1 - fx) * padded[iy0, ix0] + fx * padded[iy0, ix1]
    bottom = (1 - fx) * padded[iy1, ix0] + fx * padded[iy1, ix1]
    return (1 - fy) * top + fy * bottom


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int = TEMPLATE_SIZE, margin: float = 0.0
) -> np.ndarray:
    """One face aligned as ``affect_tf.data.preprocess.preprocess_array`` aligns it.

    Args:
        image: RGB ``(H, W, 3)`` (any numeric dtype; uint8 from the decoders).
        landmarks: ``(5, 2)`` or ``(10,)`` landmarks in pixels of ``image``.
        size: Output side in pixels.
        margin: Extra context around the face (``align.template_points``).

    Returns:
        ``(size, size, 3)`` float32 in [0, 255].
    """
    import cv2

    points = np.asarray(landmarks, np.float32).reshape(5, 2)
    if not np.isfinite(points).all():
        raise ValueError(f"Expected finite landmarks. Received: landmarks={points.tolist()}")
    dst = template_points(size, margin)
    matrix = estimate_similarity(points, dst)
    step = 1.0 / np.sqrt(np.float32(matrix[0, 0] ** 2 + matrix[1, 0] ** 2))
    factor = max(float(step) / MAX_SAMPLING_STEP, 1.0)
    pixels = np.asarray(image, np.float32)
    if factor > 1.0:
        height, width = pixels.shape[:2]
        new_h = max(int(np.round(np.float32(height) / np.float32(factor))), 1)
        new_w = max(int(np.round(np.float32(width) / np.float32(factor))), 1)
        pixels = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_AREA)
        if pixels.ndim == 2:  # OpenCV drops a single channel's axis
            pixels = pixels[..., None]
        scale = np.array([new_w / width, new_h / height], np.float32)
        points = (points + 0.5) * scale - 0.5
        matrix = estimate_similarity(points, dst)
    return np.clip(_bilinear(pixels, matrix, size), 0.0, 255.0)
