import json

import numpy as np
import pytest

from affect_tf.data.corpus import CorpusError, SkipReport
from affect_tf.data.manifest import read_manifest
from tests.conftest import write_image


def write_csv(root, text):
    (root / "manifest.csv").write_text(text)
    return root


def test_csv_names_indices_and_subsets(tmp_path):
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "b.png")
    write_csv(
        tmp_path,
        "path,expression,valence,arousal,AU12,AU25,video_id,frame,box_x,box_y,box_w,box_h\n"
        "a.jpg,happy,0.5,-0.25,1,,v1,3,1,2,30,31\n"
        "b.png,6,,,,0,,,,,,\n",
    )
    report = SkipReport()
    a, b = list(read_manifest(tmp_path, report))
    assert report.total_skipped == 0
    assert (a.expression, a.expr_mask, a.valence, a.arousal, a.va_mask) == (4, 1, 0.5, -0.25, 1)
    assert a.au[6] == 1 and a.au_mask[6] == 1 and a.au_mask[10] == 0
    assert sum(a.au_mask) == 1
    assert (a.video_id, a.frame, a.bbox, a.source) == ("v1", 3, (1.0, 2.0, 30.0, 31.0), "manifest")
    assert a.path == tmp_path / "a.jpg"
    assert (b.expression, b.expr_mask, b.va_mask) == (6, 1, 0)
    assert b.au_mask[10] == 1 and b.au[10] == 0
    assert b.video_id == "b.png" and b.bbox is None and b.landmarks is None


def test_jsonl_with_landmark_pairs_and_nested_aus(tmp_path):
    rows = [
        {
            "path": "x.jpg",
            "expression": "Surprise",
            "landmarks": [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]],
        },
        {"path": "y.jpg", "au": {"AU1": 1, "AU2": 0}, "valence": None},
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    x, y = list(read_manifest(tmp_path))
    np.testing.assert_array_equal(x.landmarks, np.arange(1, 11).reshape(5, 2))
    assert x.expression == 6
    assert y.au_mask[:2] == [1, 1] and y.au[:2] == [1, 0] and y.va_mask == 0


@pytest.mark.parametrize(
    "row, reason",
    [
        ("a.jpg,joyful,,,", "expression_invalid"),
        ("a.jpg,9,,,", "expression_invalid"),
        ("a.jpg,,1.5,0,", "valence_out_of_range"),
        ("a.jpg,,0,-1.01,", "arousal_out_of_range"),
        ("a.jpg,,0.2,,", "va_incomplete"),
        ("a.jpg,,abc,0.1,", "va_invalid"),
        ("a.jpg,,,,2", "au_invalid"),
        ("a.jpg,,,,", "no_labels"),
        (",1,,,", "missing_path"),
        ("a.jpg,1,,,,extra", "malformed_line"),
    ],
)
def test_invalid_rows_are_skipped_and_counted(tmp_path, row, reason):
    write_csv(tmp_path, "path,expression,valence,arousal,AU4\n" + row + "\nok.jpg,0,,,\n")
    report = SkipReport()
    samples = list(read_manifest(tmp_path, report))
    assert [s.path.name for s in samples] == ["ok.jpg"]
    assert report.skipped == {reason: 1}
    assert "manifest.csv:2" in report.examples[reason][0]


def test_unknown_columns_and_aus_are_reported(tmp_path):
    write_csv(tmp_path, "path,AU9,mood\na.jpg,1,x\nb.jpg,0,y\n")
    report = SkipReport()
    assert list(read_manifest(tmp_path, report)) == []
    assert report.notes["unknown_column_ignored"] == 1  # reported once, not per row
    assert report.skipped["no_labels"] == 2  # AU9 is not an ABAW AU


def test_bad_box_and_landmarks(tmp_path):
    write_csv(
        tmp_path,
        "path,expression,box_x,box_y,box_w,box_h,landmarks\n"
        "a.jpg,1,0,0,,10,\n"
        "b.jpg,1,0,0,-3,10,\n"
        "c.jpg,1,,,,,1;2;3\n",
    )
    report = SkipReport()
    assert list(read_manifest(tmp_path, report)) == []
    assert report.skipped == {"bbox_invalid": 2, "landmarks_invalid": 1}


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda root: None, "manifest.csv or manifest.jsonl"),
        (lambda root: (root / "manifest.csv").write_text(""), "empty file"),
        (
            lambda root: (root / "manifest.csv").write_text("file,expression\na.jpg,1\n"),
            "'path' column",
        ),
    ],
)
def test_corpus_level_errors(tmp_path, setup, match):
    setup(tmp_path)
    with pytest.raises(CorpusError, match=match):
        list(read_manifest(tmp_path))


def test_missing_root():
    with pytest.raises(CorpusError, match="directory"):
        list(read_manifest("/nonexistent/corpus"))


def test_manifests_as_users_have_them(tmp_path):
    """A Latin-1 byte names the line and the fix; an unclosed quote is one counted skip that
    names its lines; frame=inf is a skip with its reason, not a traceback; a repeated face is
    counted and reported with the line it repeats."""
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "manifest.csv").write_bytes(
        b"path,expression\na.jpg,happy\nb\xe9.jpg,sad\n"
    )
    with pytest.raises(CorpusError, match=r"UTF-8 manifest.*0xe9 on line 3.*bé\.jpg"):
        list(read_manifest(tmp_path / "latin"))

    root = tmp_path / "csv"
    root.mkdir()
    write_csv(
        root,
        "path,expression,frame\n"
        'a.jpg,"happy,1\n'  # the quote never closes...
        "b.jpg,sad,2\n"
        "c.jpg,sad,3\n",  # ...so the csv module reads every line after it into one cell
    )
    report = SkipReport()
    assert list(read_manifest(root, report)) == []
    assert report.skipped == {"unclosed_quote": 1}
    assert "line 2 runs to line 4" in json.dumps(report.to_dict())

    write_csv(
        root, "path,expression,frame\na.jpg,happy,inf\nb.jpg,sad,1\nb.jpg,sad,1\nc.jpg,sad,2\n"
    )
    report = SkipReport()
    kept = list(read_manifest(root, report))
    assert [s.path.name for s in kept] == ["b.jpg", "b.jpg", "c.jpg"]
    assert report.skipped == {"frame_invalid": 1} and report.notes["duplicate_row"] == 1
    assert "repeats line 3" in json.dumps(report.to_dict())


def test_soft_labels_from_a_column(tmp_path):
    """``expression_dist``: 8 numbers in the ABAW order (CSV ``p;p;...``, JSONL a list),
    normalised; without ``expression`` its top class is the label; bad ones are counted skips
    naming the field."""
    write_csv(
        tmp_path,
        "path,expression,expression_dist\n"
        "a.jpg,Happiness,0;0;0;0;8;0;2;0\n"  # with its majority class
        "b.jpg,,1;0;0;0;0;0;0;3\n"  # the distribution alone: Other
        "c.jpg,0,1;2;3\n"  # wrong length
        "d.jpg,0,1;-1;0;0;0;0;0;1\n"  # negative
        "e.jpg,,1;0;0;0;1;0;0;0\n"  # tied, no expression to decide
        "f.jpg,2,\n",  # no distribution
    )
    report = SkipReport()
    a, b, f = list(read_manifest(tmp_path, report))
    assert a.expression == 4 and a.expression_dist == [0, 0, 0, 0, 0.8, 0, 0.2, 0]
    assert (b.expression, b.expr_mask) == (7, 1) and b.expression_dist[7] == 0.75
    assert f.expression_dist is None
    assert report.skipped == {"expression_dist_invalid": 3}
    assert "field=expression_dist" in " ".join(report.examples["expression_dist_invalid"])
    rows = [{"path": "g.jpg", "expression_dist": [0, 1, 0, 0, 0, 0, 0, 1]}]
    (tmp_path / "manifest.csv").unlink()
    (tmp_path / "manifest.jsonl").write_text(json.dumps(rows[0]) + "\n")
    report = SkipReport()
    assert list(read_manifest(tmp_path, report)) == [] and report.skipped == {
        "expression_dist_invalid": 1
    }
