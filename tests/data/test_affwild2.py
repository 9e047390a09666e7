import pytest

from affect_tf.core.labels import AUS, EXPRESSIONS
from affect_tf.data.affwild2 import read_affwild2
from affect_tf.data.corpus import CorpusError, SkipReport
from tests.conftest import write_image

VA_HEADER = "valence,arousal"
EXPR_HEADER = ",".join(EXPRESSIONS)
AU_HEADER = ",".join(AUS)


def write_task(root, folder, video, header, lines, split="Train_Set"):
    path = root / folder / split / f"{video}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def frames(root, video, count):
    for i in range(1, count + 1):
        write_image(root / "cropped_aligned" / video / f"{i:05d}.jpg", size=(112, 112), seed=i)


@pytest.fixture
def corpus(tmp_path):
    frames(tmp_path, "vid1", 4)
    write_task(
        tmp_path,
        "VA_Estimation_Challenge",
        "vid1",
        VA_HEADER,
        ["0.5,0.25", "-5,-5", "0.1,0.2", "-5,-5"],
    )
    write_task(tmp_path, "EXPR_Recognition_Challenge", "vid1", EXPR_HEADER, ["4", "-1", "2", "-1"])
    write_task(
        tmp_path,
        "AU_Detection_Challenge",
        "vid1",
        AU_HEADER,
        [
            ",".join(["1"] + ["0"] * 11),
            ",".join(["0"] * 11 + ["1"]),
            ",".join(["-1"] * 12),
            ",".join(["-1"] * 12),
        ],
    )
    return tmp_path


def test_tasks_joined_per_frame_with_markers_as_masks(corpus):
    report = SkipReport()
    samples = list(read_affwild2(corpus, "train", report))
    assert [s.frame for s in samples] == [1, 2, 3]
    one, two, three = samples
    assert (one.va_mask, one.valence, one.arousal, one.expr_mask, one.expression) == (
        1,
        0.5,
        0.25,
        1,
        4,
    )
    assert one.au_mask == [1] * 12 and one.au[0] == 1
    assert (two.va_mask, two.expr_mask, two.au[11], sum(two.au_mask)) == (0, 0, 1, 12)
    assert (three.va_mask, three.expr_mask, sum(three.au_mask)) == (1, 1, 0)
    assert one.aligned and one.bbox is None and one.source == "affwild2" and one.video_id == "vid1"
    assert one.path.name == "00001.jpg"
    # Frame 4 has -5 / -1 / all -1: no valid label at all -> skipped and counted.
    assert report.skipped == {"no_valid_label": 1}


def test_missing_image_bad_values_and_partial_aus(tmp_path):
    frames(tmp_path, "v", 2)
    write_task(
        tmp_path, "VA_Estimation_Challenge", "v", VA_HEADER, ["1.5,0.1", "0.1,0.1", "0.2,0.2"]
    )
    write_task(
        tmp_path,
        "AU_Detection_Challenge",
        "v",
        AU_HEADER,
        [",".join(["1", "-1", "3"] + ["0"] * 9), "x", ""],
    )
    report = SkipReport()
    samples = list(read_affwild2(tmp_path, "train", report))
    first, second = samples
    # valence 1.5 masks VA for frame 1 (noted); its AUs stay, except -1 (masked) and 3 (invalid).
    assert first.va_mask == 0 and first.au_mask[:3] == [1, 0, 0] and sum(first.au_mask) == 10
    assert second.va_mask == 1 and sum(second.au_mask) == 0
    assert report.notes["valence_out_of_range"] == 1
    assert report.notes["au_invalid"] == 1
    assert report.notes["au_malformed"] == 2
    # Frame 3 has VA but no image on disk.
    assert report.skipped == {"missing_file": 1}


def test_bad_header_and_empty_file_are_skipped_per_file(tmp_path):
    frames(tmp_path, "a", 2)
    frames(tmp_path, "b", 1)
    write_task(tmp_path, "VA_Estimation_Challenge", "a", "val,aro", ["0.1,0.1", "0.2,0.2"])
    write_task(tmp_path, "EXPR_Recognition_Challenge", "a", EXPR_HEADER, ["3", "5"])
    path = tmp_path / "VA_Estimation_Challenge" / "Train_Set" / "b.txt"
    path.write_text("")
    report = SkipReport()
    samples = list(read_affwild2(tmp_path, "train", report))
    assert [(s.video_id, s.frame, s.va_mask, s.expression) for s in samples] == [
        ("a", 1, 0, 3),
        ("a", 2, 0, 5),
    ]
    assert report.skipped == {"bad_header": 2, "empty_file": 1}
    assert "a.txt" in report.examples["bad_header"][0]


def test_mtl_set_fills_and_joins(tmp_path):
    frames(tmp_path, "m", 2)
    write_task(
        tmp_path,
        "EXPR_Recognition_Challenge",
        "m",
        EXPR_HEADER,
        ["1", "-1"],
        split="Validation_Set",
    )
    mtl = tmp_path / "MTL_Challenge" / "validation_set.txt"
    mtl.parent.mkdir(parents=True)
    header = "image,valence,arousal,expression," + ",".join(AUS)
    mtl.write_text(
        header
        + "\n"
        + "m/00001.jpg,0.3,0.4,6,"
        + ",".join(["0"] * 12)
        + "\n"
        + "m/00002.jpg,-5,-5,-1,"
        + ",".join(["-1"] * 12)
        + "\n"
        + "m/00003.jpg,0.1,0.1,2\n"
    )
    report = SkipReport()
    samples = list(read_affwild2(tmp_path, "validation", report))
    assert len(samples) == 1
    (s,) = samples
    # The per-task file's expression wins; the MTL row adds VA and AUs.
    assert (s.expression, s.va_mask, s.valence, sum(s.au_mask)) == (1, 1, 0.3, 12)
    assert report.skipped == {"no_valid_label": 2, "malformed_line": 1}


def test_corpus_errors(tmp_path):
    with pytest.raises(CorpusError, match="at least one of"):
        list(read_affwild2(tmp_path))
    with pytest.raises(CorpusError, match="directory"):
        list(read_affwild2(tmp_path / "nope"))
    with pytest.raises(CorpusError, match="split"):
        list(read_affwild2(tmp_path, "test"))
