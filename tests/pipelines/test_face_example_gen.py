"""FaceExampleGen's executor on a partly invalid manifest corpus: splits by video, skips with
reasons (file and field), and fails early when nothing is usable."""

from __future__ import annotations

import csv
import json

import pytest
import tensorflow as tf
from google.protobuf import json_format
from tfx.types import standard_artifacts

from affect_tf.data import examples as ex
from affect_tf.data.corpus import CorpusError
from affect_tf.data.synth import SynthConfig, write_corpus
from affect_tf.pipeline.components.face_example_gen import Executor, FaceExampleGen


def _run(root, out, fmt="manifest", synth=None):
    component = FaceExampleGen(
        corpus_format=fmt, input_base=str(root), eval_percent=30, synth=synth
    )
    props = {
        k: json_format.MessageToJson(v) if hasattr(v, "DESCRIPTOR") else v
        for k, v in component.exec_properties.items()
        if v is not None
    }
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    Executor().Do({}, {"examples": [examples]}, props)
    return examples


def _videos(path_glob):
    ds = tf.data.TFRecordDataset(tf.io.gfile.glob(path_glob), compression_type="GZIP")
    return [ex.parse_example(s)[ex.VIDEO_ID].numpy().decode() for s in ds]


def test_partly_invalid_corpus_is_split_by_video_and_skips_are_counted(tmp_path):
    root = tmp_path / "corpus"
    write_corpus(
        SynthConfig(n=48, size=64, frames_per_video=4, seed=3), root, workers=1, progress=False
    )
    rows = list(csv.DictReader((root / "manifest.csv").open()))
    (root / rows[0]["path"]).write_bytes(b"not an image")  # unreadable file
    rows[1]["valence"], rows[1]["arousal"] = "7", "0.1"  # out of range: the reader skips it
    with (root / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    examples = _run(root, tmp_path / "out")
    train = _videos(str(tmp_path / "out" / "Split-train" / "*"))
    evals = _videos(str(tmp_path / "out" / "Split-eval" / "*"))
    assert len(train) + len(evals) == 46
    assert evals and set(train).isdisjoint(evals)  # never a video on both sides
    report = json.loads((tmp_path / "out" / "skip_report.json").read_text())
    # One skip found by the reader (with file:line and field), one inside Beam (the image).
    assert report["skipped"] == {"corrupt_image": 1, "valence_out_of_range": 1}
    assert rows[0]["path"] in report["examples"]["corrupt_image"][0]
    assert "manifest.csv:3: field=valence" in report["examples"]["valence_out_of_range"][0]
    assert examples.get_int_custom_property("skipped") == 2
    assert examples.get_int_custom_property("written") == 46


def test_every_record_invalid_fails_early(tmp_path):
    root = tmp_path / "corpus"
    write_corpus(
        SynthConfig(n=8, size=64, frames_per_video=4, seed=4), root, workers=1, progress=False
    )
    for image in (root / "images").rglob("*.jpg"):
        image.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(CorpusError, match="at least one usable face.*skip_report.json"):
        _run(root, tmp_path / "out")


def test_synth_corpus_is_rendered_inside_beam(tmp_path):
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / "synth.json").write_text("{}")
    synth = {"n": 24, "size": 48, "frames_per_video": 4, "seed": 1}
    _run(tmp_path / "synth", tmp_path / "out", fmt="synth", synth=synth)
    videos = _videos(str(tmp_path / "out" / "Split-*" / "*"))
    assert len(videos) == 24 and len(set(videos)) == 6


def test_conversion_workers_log_progress_with_skips(tmp_path, caplog, monkeypatch):
    """Each DoFn instance says N/total converted and its skips by reason (every 20 s; here at
    every sample), and counts them as Beam metrics."""
    import logging
    from pathlib import Path

    from affect_tf.data.corpus import Sample
    from affect_tf.pipeline import example_gen as eg

    write_corpus(SynthConfig(n=2, size=64, frames_per_video=1, seed=3), tmp_path, progress=False)
    image = next(Path(tmp_path).rglob("*.jpg"))
    labels = {"expression": 4, "expr_mask": 1, "video_id": "v", "source": "unit"}
    samples = [
        Sample(path=image, aligned=True, **labels),
        Sample(path=tmp_path / "missing.jpg", aligned=True, **labels),
    ]
    monkeypatch.setattr(eg, "PROGRESS_EVERY", 0.0)
    dofn = eg._SampleToExample(total=2, detector="mtcnn")
    dofn.setup()
    with caplog.at_level(logging.INFO, logger="affect_tf"):
        outputs = [list(dofn.process(s)) for s in samples]
        next(dofn.process(samples[0]))  # the third call reports the skip of the second
    assert len(outputs[0]) == 1 and "missing_file" in str(outputs[1][0].value)
    assert "FaceExampleGen: 1/2 samples converted" in caplog.text
    assert "3/2" in caplog.text and "'missing_file': 1" in caplog.text


def test_ferplus_keeps_its_own_splits(tmp_path):
    """FER+ Train -> train, Valid -> eval, Test -> test (not a hash split of one), read without
    a detector, the skips of both splits in one report, the vote distributions on board."""
    from tests.conftest import write_ferplus

    root = write_ferplus(tmp_path / "ferplus")
    examples = _run(root, tmp_path / "out", fmt="ferplus")
    assert sorted(_videos(str(tmp_path / "out" / "Split-train" / "*"))) == [
        "FER2013Train/fer0.png",
        "FER2013Train/fer1.png",
        "FER2013Train/fer5.png",
    ]
    assert _videos(str(tmp_path / "out" / "Split-eval" / "*")) == ["FER2013Valid/fer9.png"]
    # Test -> test, for the TestEvaluator's report only.
    assert _videos(str(tmp_path / "out" / "Split-test" / "*")) == ["FER2013Test/fer8.png"]
    report = json.loads((tmp_path / "out" / "skip_report.json").read_text())
    assert report["samples"] == 5 and report["written"] == 5
    assert report["skipped"] == {
        "top_vote_unknown": 1,
        "top_vote_not_a_face": 1,
        "tied_votes": 1,
        "votes_invalid": 1,
    }
    assert examples.get_int_custom_property("skipped") == 4
    ds = tf.data.TFRecordDataset(
        tf.io.gfile.glob(str(tmp_path / "out" / "Split-eval" / "*")), compression_type="GZIP"
    )
    (parsed,) = [ex.parse_example(s) for s in ds]
    dist = parsed[ex.EXPRESSION_DIST].numpy()
    assert abs(dist - [0, 0.3, 0, 0, 0, 0.7, 0, 0]).max() < 1e-6  # anger 3, sadness 7


def test_ferplus_without_test_folder_has_no_test_split(tmp_path):
    """The Test split is optional (a user's subset of FER+ may have only Train and Valid)."""
    import shutil

    from affect_tf.pipeline.example_gen import given_splits
    from tests.conftest import write_ferplus

    root = write_ferplus(tmp_path / "ferplus")
    assert sorted(given_splits("ferplus", str(root))) == ["eval", "test", "train"]
    shutil.rmtree(root / "FER2013Test")
    assert sorted(given_splits("ferplus", str(root))) == ["eval", "train"]
    _run(root, tmp_path / "out", fmt="ferplus")
    assert sorted(p.name for p in (tmp_path / "out").glob("Split-*")) == [
        "Split-eval",
        "Split-train",
    ]
