"""``--detector none``: the whole image is the face (ready-cropped corpora), its landmarks the
template's as the graph places them, a uniform image no face, through predict and convert."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect_tf import cli
from affect_tf.face import make_detector


def _crop(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = rng.integers(60, 200, (size, size), dtype=np.uint8)
    return np.stack([grey] * 3, axis=-1)


def test_the_whole_image_is_the_face_with_the_graphs_landmarks():
    from affect_tf.face.align import landmarks_from_box

    detector = make_detector("none")
    (face,) = detector.detect(_crop(0, 48)[:, :40])
    assert face.box == (0.0, 0.0, 40.0, 48.0) and face.score == 1.0
    expected = landmarks_from_box(np.array([0, 0, 40, 48], np.float32)).numpy()
    np.testing.assert_allclose(face.landmarks, expected, atol=1e-5)
    assert detector.detect(np.full((48, 48, 3), 128, np.uint8)) == []
    assert detector.detect_one(np.zeros((48, 48), np.uint8)) is None  # grey, blank
    assert detector.refine(_crop(1), face.box).box == (0.0, 0.0, 48.0, 48.0)
    with pytest.raises(ValueError, match="RGB"):
        detector.detect(np.zeros((4, 4, 5), np.uint8))


def test_predict_and_convert_with_detector_none(exported, tmp_path, capsys):
    """48 px crops no detector finds: every one is read; a uniform image is a skip that says
    so; conversion stores the whole image as the box."""
    folder = tmp_path / "crops"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_crop(i)).save(folder / f"c{i}.png")
    Image.new("L", (48, 48), 90).save(folder / "blank.png")
    csv = tmp_path / "p.csv"
    args = ["predict", str(folder), "--model", str(exported["base"]), "--quiet"]
    assert cli.main([*args, "--detector", "none", "--csv", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert len(table) == 3 and (table["w"] == 48).all() and (table["x"] == 0).all()
    assert "blank.png" in capsys.readouterr().err

    rows = ["path,expression"] + [f"{p.name},Happiness" for p in sorted(folder.iterdir())]
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "c.tfrecord.gz"
    convert = ["convert", "--format", "manifest", "--root", str(folder), "--out", str(out)]
    assert cli.main([*convert, "--detector", "none", "--quiet"]) == 0
    report = json.loads((tmp_path / "c.tfrecord.gz.report.json").read_text())
    assert report["written"] == 3 and report["skipped"] == {"no_face": 1}, report
    assert "uniform" in report["examples"]["no_face"][0]
    from affect_tf.data.examples import read_tfrecord

    assert {tuple(r.bbox) for r in read_tfrecord(str(out))} == {(0.0, 0.0, 48.0, 48.0)}


def test_pipeline_config_takes_detector_none(tmp_path):
    from affect_tf.pipeline.config import PipelineConfig

    config = PipelineConfig(
        output_root=str(tmp_path), corpus_format="ferplus", corpus_root=str(tmp_path),
        detector="none",
    )  # fmt: skip
    assert config.detector == "none"
