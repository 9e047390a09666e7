import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from affect_tf.face import align


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = scale * math.cos(math.radians(angle_deg))
    b = scale * math.sin(math.radians(angle_deg))
    return np.array([[a, -b, tx], [b, a, ty]], np.float32)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def dots_image(points: np.ndarray, shape=(256, 256), sigma=1.6) -> np.ndarray:
    """A dark image with one Gaussian blob at each point (the 'face' to align)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    image = np.zeros(shape, np.float32)
    for x, y in points:
        image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return (np.clip(image, 0, 1) * 255)[..., None].repeat(3, axis=-1)


def blob_centres(image: np.ndarray) -> np.ndarray:
    gray = image[..., 0]
    labels, count = ndimage.label(gray > 0.3 * gray.max())
    centres = ndimage.center_of_mass(gray, labels, range(1, count + 1))
    return np.array([[c[1], c[0]] for c in centres], np.float32)


def match(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Distance from each expected point to the nearest found one."""
    return np.min(np.linalg.norm(found[None] - expected[:, None], axis=-1), axis=1)


def test_estimate_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2)).astype(np.float32)
    m = similarity(-37.0, 1.8, 12.0, -4.0)
    got = align.estimate_similarity(src, apply(m, src)).numpy()
    np.testing.assert_allclose(got, m, atol=1e-4)
    # Batched, with the destination broadcast.
    batch = np.stack([src, src * 2])
    got = align.estimate_similarity(batch, align.TEMPLATE_112).numpy()
    assert got.shape == (2, 2, 3)
    np.testing.assert_allclose(
        align.apply_similarity(got, batch).numpy()[0], apply(got[0], src), atol=1e-4
    )


def test_template_points_size_and_margin():
    np.testing.assert_allclose(align.template_points(112).numpy(), align.TEMPLATE_112, atol=1e-5)
    big = align.template_points(224).numpy()
    np.testing.assert_allclose((big + 0.5) / 2 - 0.5, align.TEMPLATE_112, atol=1e-4)
    loose = align.template_points(112, margin=0.25).numpy()
    centre = 55.5
    np.testing.assert_allclose(loose - centre, (align.TEMPLATE_112 - centre) / 1.25, atol=1e-4)


@pytest.mark.parametrize(
    "angle, scale, shift, shape",
    [
        (30.0, 1.7, (40.0, 20.0), (256, 256)),  # rotated, larger, shifted
        (-75.0, 0.8, (90.0, 110.0), (256, 300)),  # strongly rotated, smaller than the output
        (10.0, 7.0, (-120.0, -90.0), (900, 900)),  # very large face: the antialiased shrink path
    ],
)
def test_rotated_shifted_face_lands_upright_on_the_template(angle, scale, shift, shape):
    m = similarity(angle, scale, *shift)
    points = apply(m, align.TEMPLATE_112)
    image = dots_image(points, shape, sigma=1.2 * scale)
    aligned = align.align_face(image, points, size=112).numpy()
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.float32
    dist = match(blob_centres(aligned), align.TEMPLATE_112)
    assert dist.max() < 0.75, dist
    # Upright: the eyes are level and left of right, the mouth below the nose.
    found = blob_centres(aligned)
    assert len(found) == 5


def test_flat_landmarks_and_output_size():
    points = apply(similarity(0, 1.0, 10, 10), align.TEMPLATE_112)
    image = dots_image(points, (140, 140))
    aligned = align.align_face(image, points.reshape(-1), size=224).numpy()
    assert aligned.shape == (224, 224, 3)
    dist = match(blob_centres(aligned), align.template_points(224).numpy())
    assert dist.max() < 1.0


def test_same_result_eagerly_batched_and_in_tf_data():
    rng = np.random.default_rng(1)
    images, landmarks = [], []
    for i in range(3):
        m = similarity(rng.uniform(-40, 40), rng.uniform(0.8, 1.6), *rng.uniform(0, 60, 2))
        pts = apply(m, align.TEMPLATE_112)
        landmarks.append(pts.reshape(-1))
        images.append(dots_image(pts, (200, 200)) + i)
    images, landmarks = np.stack(images), np.stack(landmarks).astype(np.float32)
    eager = np.stack(
        [align.align_face(im, lm, 64).numpy() for im, lm in zip(images, landmarks, strict=True)]
    )
    batched = align.align_faces(images, landmarks, 64).numpy()
    ds = tf.data.Dataset.from_tensor_slices((images, landmarks)).map(
        lambda im, lm: align.align_face(im, lm, 64)
    )
    in_graph = np.stack(list(ds.as_numpy_iterator()))
    np.testing.assert_allclose(batched, eager, atol=1e-3)
    np.testing.assert_allclose(in_graph, eager, atol=1e-3)


def test_uint8_input_and_tf_function():
    points = apply(similarity(5, 1.0, 20, 20), align.TEMPLATE_112)
    image = dots_image(points, (160, 160)).astype(np.uint8)
    fn = tf.function(
        lambda im, lm: align.align_face(im, lm, 112),
        input_signature=[tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([10], tf.float32)],
    )
    out = fn(image, points.reshape(-1).astype(np.float32)).numpy()
    assert match(blob_centres(out), align.TEMPLATE_112).max() < 0.75


def test_box_only_fallback():
    bbox = np.array([30.0, 40.0, 90.0, 90.0], np.float32)
    lm = align.landmarks_from_box(bbox).numpy()
    # The template placed in the box: its points scale with the box.
    np.testing.assert_allclose(
        lm, 30 + (align.TEMPLATE_112 + 0.5) * 90 / 112 - 0.5 + [0, 10], atol=1e-4
    )
    image = dots_image(lm, (200, 200))
    with_box = align.align_face(image, np.zeros(10, np.float32), 112, bbox=bbox).numpy()
    with_lm = align.align_face(image, lm, 112).numpy()
    np.testing.assert_allclose(with_box, with_lm, atol=1e-3)
    # NaN landmarks fall back too; real landmarks are kept even when a box is given.
    nan = align.align_face(image, np.full(10, np.nan, np.float32), 112, bbox=bbox).numpy()
    np.testing.assert_allclose(nan, with_lm, atol=1e-3)
    np.testing.assert_allclose(align.box_from_landmarks(lm).numpy(), bbox, atol=1e-3)


def test_batched_box_fallback():
    boxes = np.array([[10, 10, 50, 50], [0, 0, 80, 80]], np.float32)
    lms = np.zeros((2, 10), np.float32)
    images = np.zeros((2, 100, 100, 3), np.float32)
    out = align.align_faces(images, lms, 32, bbox=boxes)
    assert out.shape == (2, 32, 32, 3)
