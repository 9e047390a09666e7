"""The inference commands end to end: predict (folder with bad files, one bad file), video
(CSV, plot, overlay, ABAW), explain, export -> a servable version."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image

from affect_tf import cli

pytestmark = pytest.mark.slow


def test_predict_folder_and_single_bad_image(exported, astronaut, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "a.jpg")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    model = str(exported["base"])
    args = ["predict", str(folder), "--model", model, "--quiet"]
    args += ["--csv", str(tmp_path / "p.csv"), "--json", str(tmp_path / "p.json")]
    args += ["--overlay", str(tmp_path / "overlays")]
    assert cli.main(args) == 0
    out = capsys.readouterr()
    assert "1 faces in 1 images (1 skipped)" in out.out and "b.png" in out.err
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 1 and table["source"][0].endswith("a.jpg")
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["skipped"][0]["source"].endswith("b.png")
    assert (tmp_path / "overlays" / "a.jpg").is_file()

    assert cli.main(["predict", str(folder / "b.png"), "--model", model]) == 2
    assert "b.png" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "missing.jpg"), "--model", model]) == 2
    assert cli.main(["predict", str(folder), "--model", str(tmp_path / "nomodel")]) == 2
    assert "Expected a SavedModel folder" in capsys.readouterr().err


def test_video_command_writes_everything(exported, face_video, tmp_path, capsys):
    args = ["video", str(face_video), "--model", str(exported["tflite"]), "--quiet"]
    args += ["--out", str(tmp_path / "v.csv"), "--plot", str(tmp_path / "va.png")]
    args += ["--overlay", str(tmp_path / "o.mp4"), "--abaw", str(tmp_path / "abaw")]
    args += ["--smooth", "median:5"]
    assert cli.main(args) == 0
    assert "24 frames" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "v.csv")) == 24
    for path in ("va.png", "o.mp4", "abaw/VA/clip.txt", "abaw/EXPR/clip.txt", "abaw/AU/clip.txt"):
        assert (tmp_path / path).is_file(), path
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    model = ["--model", str(exported["tflite"])]
    assert cli.main(["video", str(bad), *model, "--out", str(tmp_path / "x.csv")]) == 2
    assert "cannot be opened" in capsys.readouterr().err


def test_explain_and_export(exported, astronaut, tiny_model, tmp_path, capsys):
    Image.fromarray(astronaut).save(tmp_path / "a.jpg")
    args = ["explain", str(tmp_path / "a.jpg"), "--model", str(exported["version"])]
    assert (
        cli.main([*args, "--head", "va", "--target", "arousal", "--out", str(tmp_path / "e.png")])
        == 0
    )
    assert (tmp_path / "e.png").is_file() and "va -> arousal" in capsys.readouterr().out
    assert (
        cli.main([*args, "--head", "au", "--target", "AU99", "--out", str(tmp_path / "f.png")]) == 2
    )
    assert "AU99" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "explain",
                str(tmp_path / "a.jpg"),
                "--model",
                str(exported["tflite"]),
                "--out",
                str(tmp_path / "g.png"),
            ]
        )
        == 2
    )

    tiny_model.save(tmp_path / "model.keras")
    assert (
        cli.main(
            ["export", "--model", str(tmp_path / "model.keras"), "--out", str(tmp_path / "base")]
        )
        == 0
    )
    assert (
        cli.main(
            ["export", "--model", str(tmp_path / "model.keras"), "--out", str(tmp_path / "base")]
        )
        == 0
    )
    versions = sorted(p.name for p in (tmp_path / "base").iterdir())
    assert versions == ["1", "2"]
    assert (tmp_path / "base" / "2" / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_predict_outputs_never_overwrite_each_other(exported, astronaut, tmp_path, capsys):
    """Frames of two clips with the same file name (the layout `affect-tf synth` writes) get
    one overlay each, at their relative paths; the CSV is complete (written, then renamed)."""
    folder = tmp_path / "frames"
    for clip in ("clip1", "clip2"):
        (folder / clip).mkdir(parents=True)
        Image.fromarray(astronaut).save(folder / clip / "00000.jpg")
    args = ["predict", str(folder), "--model", str(exported["base"]), "--quiet"]
    args += ["--overlay", str(tmp_path / "overlays"), "--csv", str(tmp_path / "p.csv.gz")]
    assert cli.main(args) == 0
    assert "2 faces in 2 images" in capsys.readouterr().out
    for clip in ("clip1", "clip2"):
        assert (tmp_path / "overlays" / clip / "00000.jpg").is_file()
    assert len(pd.read_csv(tmp_path / "p.csv.gz")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "overlays", "p.csv.gz"]


def test_predict_a_file_name_that_is_not_utf8(exported, astronaut, tmp_path, capsys):
    """A Latin-1 file name crashed the CSV writer after all the work; now the CSV holds the
    name's own bytes and the table on screen shows it escaped."""
    import os

    folder = tmp_path / "photos"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")
    Image.fromarray(astronaut).save(folder / name)
    csv_path = tmp_path / "p.csv"
    args = ["predict", str(folder), "--model", str(exported["base"]), "--quiet"]
    assert cli.main([*args, "--csv", str(csv_path), "--json", str(tmp_path / "p.json")]) == 0
    assert b"caf\xe9.jpg" in csv_path.read_bytes()
    assert "caf\\udce9.jpg" in capsys.readouterr().out
    assert json.loads((tmp_path / "p.json").read_text())["faces"][0]["source"].endswith(name)
