"""The FER+ reader on a tiny layout written here (Microsoft's ``FER2013*/label.csv``): the
majority-vote rules with each drop counted by reason, contempt -> Other, the given splits,
ready-cropped faces converted without a detector, and bad rows and files as counted skips."""

from __future__ import annotations

import numpy as np
import pytest

from affect_tf.core.labels import EXPRESSIONS
from affect_tf.data import CorpusError, SkipReport, read_corpus
from affect_tf.data.ferplus import majority_label, parse_votes
from tests.conftest import FERPLUS_ROWS as ROWS
from tests.conftest import write_ferplus


@pytest.fixture
def ferplus(tmp_path):
    return write_ferplus(tmp_path / "ferplus")


def test_majority_vote_rules_by_hand():
    assert majority_label(ROWS["fer0.png"]) == (EXPRESSIONS.index("Neutral"), None)
    assert majority_label(ROWS["fer1.png"]) == (EXPRESSIONS.index("Other"), None)
    assert majority_label(ROWS["fer2.png"]) == (None, "top_vote_unknown")
    assert majority_label(ROWS["fer3.png"]) == (None, "top_vote_not_a_face")
    assert majority_label(ROWS["fer4.png"]) == (None, "tied_votes")
    assert majority_label([0] * 10) == (None, "no_votes")
    assert parse_votes(["1"] * 9 + ["2.0"]) == [1] * 9 + [2]
    for bad, match in (([1] * 9, "10 vote counts"), (["1"] * 9 + ["-1"], "field=NF"),
                       (["x"] + ["1"] * 9, "field=neutral")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            parse_votes([str(v) for v in bad])


def test_reader_keeps_the_given_splits_and_counts_every_drop(ferplus):
    report = SkipReport()
    train = list(read_corpus("ferplus", ferplus, "train", report))
    assert [s.path.name for s in train] == ["fer0.png", "fer1.png", "fer5.png"]
    assert [EXPRESSIONS[s.expression] for s in train] == ["Neutral", "Other", "Fear"]
    # The soft label: the 8 emotions' votes in ABAW order, normalised (unknown, NF left out).
    assert train[0].expression_dist == [8 / 9, 0, 0, 0, 1 / 9, 0, 0, 0]
    assert train[2].expression_dist == [0.1, 0, 0, 0.9, 0, 0, 0, 0]
    assert all(s.aligned and s.expr_mask == 1 and s.va_mask == 0 for s in train)
    assert not any(any(s.au_mask) for s in train) and {s.source for s in train} == {"ferplus"}
    assert report.skipped == {
        "top_vote_unknown": 1,
        "top_vote_not_a_face": 1,
        "tied_votes": 1,
        "votes_invalid": 1,
    }
    assert "label.csv:7" in report.examples["votes_invalid"][0]
    (valid,) = read_corpus("ferplus", ferplus, "validation")
    (test,) = read_corpus("ferplus", ferplus, "test")
    assert EXPRESSIONS[valid.expression] == "Sadness" and EXPRESSIONS[test.expression] == "Disgust"


def test_missing_layout_is_one_clear_error(ferplus, tmp_path):
    (ferplus / "FER2013Valid" / "label.csv").unlink()
    with pytest.raises(CorpusError, match=r"FER2013Valid/label.csv.*not found"):
        list(read_corpus("ferplus", ferplus, "validation"))
    with pytest.raises(CorpusError, match="Expected split in"):
        list(read_corpus("ferplus", ferplus, "dev"))
    with pytest.raises(CorpusError, match="FER\\+ root to be a directory"):
        list(read_corpus("ferplus", tmp_path / "nowhere", "train"))


def test_convert_takes_the_whole_crop_as_the_face_without_a_detector(ferplus, tmp_path):
    """48 px crops: no detector runs (a factory that fails proves it), the box is the whole
    image, and an undecodable PNG is a counted skip naming the file."""
    from affect_tf.data.convert import Converter, convert_corpus
    from affect_tf.data.examples import read_tfrecord

    (ferplus / "FER2013Train" / "fer5.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")

    def no_detector():
        raise AssertionError("a detector was built for ready-cropped faces")

    out = tmp_path / "train.tfrecord.gz"
    result = convert_corpus(
        "ferplus", ferplus, out, converter=Converter(no_detector), progress=False, workers=1
    )
    records = list(read_tfrecord(str(out)))
    assert [EXPRESSIONS[r.expression] for r in records] == ["Neutral", "Other"]
    assert all(tuple(r.bbox) == (0.0, 0.0, 48.0, 48.0) for r in records)
    np.testing.assert_allclose(records[1].expression_dist, [0, 0, 0, 0, 0, 0, 0, 1.0])
    assert result.report.skipped["corrupt_image"] == 1
    assert "fer5.png" in result.report.examples["corrupt_image"][0]
