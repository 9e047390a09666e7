"""The NumPy alignment (``affect_tf.face.warp``) against the TensorFlow one training runs."""

from __future__ import annotations

import numpy as np
import pytest

from affect_tf.data.preprocess import preprocess_array
from affect_tf.face import align, warp


def test_template_and_similarity_match_the_tensorflow_ones():
    for size, margin in ((112, 0.0), (64, 0.25), (48, 0.5)):
        np.testing.assert_allclose(
            warp.template_points(size, margin), align.template_points(size, margin).numpy()
        )
    rng = np.random.default_rng(0)
    src, dst = rng.uniform(0, 300, (5, 2)), rng.uniform(0, 64, (5, 2))
    np.testing.assert_allclose(
        warp.estimate_similarity(src, dst),
        align.estimate_similarity(src, dst).numpy(),
        rtol=1e-5,
        atol=1e-4,
    )


def test_landmarks_on_the_template_copy_the_pixels():
    """Hand-checked: landmarks already on the template's points of a 20 px crop map every
    output pixel onto the same input pixel (identity, no shrink, no interpolation)."""
    image = np.arange(30 * 40 * 3, dtype=np.float32).reshape(30, 40, 3) % 251
    points = warp.template_points(20, 0.0)
    np.testing.assert_allclose(warp.align_face(image, points, 20), image[:20, :20], atol=1e-3)
    # Moved one pixel right: the crop starts one column later.
    np.testing.assert_allclose(
        warp.align_face(image, points + [1.0, 0.0], 20), image[:20, 1:21], atol=1e-3
    )


def test_outside_the_image_is_black():
    """Hand-checked: the crop starts 9.5 px left of the image, so output column x samples
    input column x - 9.5: columns 0-8 lie wholly outside (black), column 9 halfway (the mean
    of black and 200, as bilinear sampling mixes them), the rest inside."""
    image = np.full((40, 40, 3), 200, np.uint8)
    points = warp.template_points(20, 0.0) - [9.5, 0.0]
    face = warp.align_face(image, points, 20)
    np.testing.assert_allclose(face[:, :9], 0.0, atol=1e-3)
    np.testing.assert_allclose(face[:, 9], 100.0, atol=1e-3)
    np.testing.assert_allclose(face[:, 10:], 200.0, atol=1e-3)


@pytest.mark.parametrize("size,margin", [(64, 0.25), (112, 0.0), (48, 0.5)])
def test_equal_to_the_tensorflow_alignment_within_the_stated_tolerance(astronaut, size, margin):
    """Faces at scales that shrink first (area average) and that do not, turned, shifted and
    half outside the image: the crop the model sees locally is the training graph's."""
    import cv2

    from affect_tf.face.registry import make_detector

    face = make_detector("blazeface").detect_one(astronaut)
    rng = np.random.default_rng(size)
    worst = 0.0
    for trial in range(12):
        scale = float(rng.uniform(0.15, 2.5))
        image = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        landmarks = face.landmarks * scale + rng.normal(0, 2 * scale, (5, 2))
        if trial % 4 == 0:  # half the face beyond the right edge
            landmarks = landmarks + [image.shape[1] * 0.45, 0.0]
        if trial % 3 == 0:  # a 90-degree turn: landmarks rotated about their mean
            centre = landmarks.mean(0)
            landmarks = (landmarks - centre) @ np.array([[0.0, 1.0], [-1.0, 0.0]]) + centre
        expected = preprocess_array(image, landmarks.astype(np.float32), size, margin).numpy()
        got = warp.align_face(image, landmarks, size, margin)
        assert got.shape == (size, size, 3) and got.dtype == np.float32
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst <= warp.MAX_DIFFERENCE, worst


def test_grey_and_non_finite_inputs():
    grey = np.random.default_rng(1).integers(0, 255, (50, 60, 1)).astype(np.uint8)
    points = warp.template_points(32, 0.25) + 5.0
    np.testing.assert_allclose(
        warp.align_face(grey, points, 32, 0.25),
        preprocess_array(grey, points, 32, 0.25).numpy(),
        atol=warp.MAX_DIFFERENCE,
    )
    with pytest.raises(ValueError, match="Expected finite landmarks"):
        warp.align_face(grey, np.full((5, 2), np.nan), 32)
