import numpy as np
import pytest

from affect_tf.face import align
from affect_tf.face.detect import Detection, box_iou, select_face


def test_each_detector_finds_the_astronaut(any_detector, astronaut):
    faces = any_detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.9
    x, y, w, h = face.box
    # Eileen Collins' face in skimage's astronaut(): roughly x 180-265, y 60-175.
    assert 160 < x < 200 and 40 < y < 90 and 60 < w < 110 and 80 < h < 130
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    for px, py in face.landmarks:
        assert x <= px <= x + w and y <= py <= y + h


def test_aligned_astronaut_has_landmarks_on_the_template(any_detector, astronaut):
    detector = any_detector
    face = detector.detect_one(astronaut)
    aligned = align.align_face(astronaut, face.landmarks, size=224, margin=0.4).numpy()
    again = detector.detect_one(aligned.astype(np.uint8))
    assert again is not None
    # Where the similarity sends the original landmarks (a least-squares fit: a real face does not
    # match the template exactly) is where a second detection on the aligned crop finds them.
    template = align.template_points(224, 0.4)
    matrix = align.estimate_similarity(face.landmarks, template)
    expected = align.apply_similarity(matrix, face.landmarks).numpy()
    error = np.linalg.norm(again.landmarks - expected, axis=1)
    assert error.max() < 4.0, error
    # ...and the eyes land within a few pixels of the template's eyes.
    assert np.linalg.norm(again.landmarks[:2] - template.numpy()[:2], axis=1).max() < 6.0


def test_no_face_in_a_flat_image(any_detector):
    assert any_detector.detect(np.full((120, 160, 3), 128, np.uint8)) == []
    assert any_detector.detect_one(np.zeros((64, 64, 3), np.uint8)) is None
    assert any_detector.detect(np.zeros((1, 1, 3), np.uint8)) == []  # a 1x1 image


def test_batch_detection_and_grayscale(any_detector, astronaut):
    gray = astronaut.mean(axis=-1).astype(np.uint8)
    results = any_detector.detect_batch([astronaut, gray])
    assert [len(r) for r in results] == [1, 1]
    with pytest.raises(ValueError, match="RGB"):
        any_detector.detect(np.zeros((4, 4, 5), np.uint8))


def test_select_face_policies():
    small_sure = Detection((0, 0, 10, 10), 0.99, np.zeros((5, 2)))
    big_unsure = Detection((0, 0, 50, 50), 0.91, np.zeros((5, 2)))
    assert select_face([small_sure, big_unsure], "largest") is big_unsure
    assert select_face([small_sure, big_unsure], "confident") is small_sure
    assert select_face([], "largest") is None
    with pytest.raises(ValueError, match="policy"):
        select_face([small_sure], "first")


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_compiled_mtcnn_equals_the_eager_package(detector, astronaut):
    """The tf.function networks (the default) give the package's eager answer, on a face, on
    several image sizes (one trace serves all) and on an image without a face."""
    from affect_tf.face.mtcnn import MTCNNDetector

    eager = MTCNNDetector(compiled=False)
    assert detector.compiled and not eager.compiled
    rng = np.random.default_rng(0)
    images = [
        astronaut,
        astronaut[::2, ::2].copy(),
        astronaut[40:300, 100:420].copy(),
        rng.integers(0, 255, (90, 130, 3), dtype=np.uint8),
    ]
    for image in images:
        want, got = eager.detect(image), detector.detect(image)
        assert len(want) == len(got)
        for a, b in zip(want, got, strict=True):
            np.testing.assert_allclose(a.box, b.box, atol=1e-2)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
            assert abs(a.score - b.score) < 1e-4
    assert len(detector.detect(images[1])) == 1


def test_the_mtcnn_internals_we_patch_are_where_we_expect(detector):
    """``_compile_stages`` swaps each stage's private ``_model`` for a tf.function: an mtcnn
    upgrade that moves it fails this test and ``MTCNNDetector()`` by name, not a detection."""
    import types

    import tensorflow as tf

    from affect_tf.face.mtcnn import _compile_stages

    stages = detector._mtcnn.stages
    assert len(stages) == 3
    assert all(isinstance(s._model, tf.types.experimental.GenericFunction) for s in stages)
    moved = types.SimpleNamespace(stages=[types.SimpleNamespace(model=lambda x: x)])
    with pytest.raises(RuntimeError, match="_model"):
        _compile_stages(moved)


def test_large_photos_are_searched_shrunk_and_mapped_back(any_detector, astronaut):
    """The astronaut scaled 4x (2048 px) is searched at 1600 px; the box and landmarks come
    back in the large image's pixels, where the 512 px ones scaled 4x put them."""
    import cv2

    detector = any_detector
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    small_face = detector.detect_one(astronaut)
    big_face = detector.detect_one(big)
    assert detector.max_side == 1600 and big_face is not None
    np.testing.assert_allclose(big_face.box, np.asarray(small_face.box) * 4, rtol=0.08, atol=12)
    np.testing.assert_allclose(big_face.landmarks, small_face.landmarks * 4, atol=16)
