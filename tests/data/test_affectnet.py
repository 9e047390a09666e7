import numpy as np
import pytest

from affect_tf.data.affectnet import COLUMNS, landmarks68_to_5, read_affectnet
from affect_tf.data.corpus import CorpusError, SkipReport
from tests.conftest import write_image


def landmarks68(offset: float = 0.0) -> str:
    points = np.stack([np.arange(68) + offset, np.arange(68) * 2 + offset], axis=1)
    return ";".join(f"{v:.1f}" for v in points.reshape(-1))


def write_affectnet(root, rows, name="training.csv"):
    lines = [",".join(COLUMNS)]
    for rel, expression, valence, arousal in rows:
        write_image(root / "Manually_Annotated_Images" / rel, size=(160, 160))
        lines.append(f"{rel},2,3,40,36,{landmarks68()},{expression},{valence},{arousal}")
    (root / name).write_text("\n".join(lines) + "\n")


def test_landmarks68_to_5():
    points = np.stack([np.arange(68), np.arange(68) * 2], axis=1).astype(np.float32)
    five = landmarks68_to_5(points)
    np.testing.assert_allclose(five[0], [38.5, 77.0])  # mean of 36..41
    np.testing.assert_allclose(five[1], [44.5, 89.0])  # mean of 42..47
    np.testing.assert_allclose(five[2:], [[30, 60], [48, 96], [54, 108]])


def test_codes_mapped_dropped_and_va_not_annotated(tmp_path):
    write_affectnet(
        tmp_path,
        [
            ("1/a.jpg", 1, 0.7, 0.2),  # Happy -> Happiness
            ("1/b.jpg", 7, -0.3, 0.1),  # Contempt -> Other
            ("2/c.jpg", 6, -2, -2),  # Anger, VA not annotated
            ("2/d.jpg", 8, 0.0, 0.0),  # None: dropped
            ("2/e.jpg", 9, 0.0, 0.0),  # Uncertain: dropped
            ("3/f.jpg", 10, -2, -2),  # Non-Face: dropped
            ("3/g.jpg", 2, 1.4, 0.0),  # valence out of range
            ("3/h.jpg", 12, 0.0, 0.0),  # unknown code
        ],
    )
    report = SkipReport()
    samples = list(read_affectnet(tmp_path, "train", report))
    assert [s.path.name for s in samples] == ["a.jpg", "b.jpg", "c.jpg"]
    a, b, c = samples
    assert (a.expression, a.valence, a.arousal, a.va_mask) == (4, 0.7, 0.2, 1)
    assert b.expression == 7
    assert (c.expression, c.va_mask, c.valence) == (1, 0, 0.0)
    assert a.bbox == (2.0, 3.0, 40.0, 36.0) and a.landmarks.shape == (5, 2)
    assert a.au_mask == [0] * 12 and a.source == "affectnet" and a.video_id == "1/a.jpg"
    assert a.path == tmp_path / "Manually_Annotated_Images" / "1" / "a.jpg"
    assert report.skipped == {
        "dropped_none": 1,
        "dropped_uncertain": 1,
        "dropped_non_face": 1,
        "valence_out_of_range": 1,
        "expression_invalid": 1,
    }


def test_bad_landmarks_and_short_lines(tmp_path):
    header = ",".join(COLUMNS)
    (tmp_path / "validation.csv").write_text(f"{header}\nx.jpg,0,0,10,10,1;2;3,0,0,0\ny.jpg,0,0\n")
    report = SkipReport()
    assert list(read_affectnet(tmp_path, "validation", report)) == []
    assert report.skipped == {"landmarks_invalid": 1, "malformed_line": 1}
    assert "136 numbers" in report.examples["landmarks_invalid"][0]


def test_wrong_header_missing_csv_and_split(tmp_path):
    (tmp_path / "training.csv").write_text("image,label\nx.jpg,1\n")
    with pytest.raises(CorpusError, match="facial_landmarks"):
        list(read_affectnet(tmp_path))
    with pytest.raises(CorpusError, match="validation.csv"):
        list(read_affectnet(tmp_path, "validation"))
    with pytest.raises(CorpusError, match="split"):
        list(read_affectnet(tmp_path, "test"))
    (tmp_path / "training.csv").write_text("")
    with pytest.raises(CorpusError, match="empty"):
        list(read_affectnet(tmp_path))
