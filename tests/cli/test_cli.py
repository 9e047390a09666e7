import csv
import subprocess
import sys

import numpy as np
import pytest

from affect_tf import cli
from affect_tf.core.labels import AUS, EXPRESSIONS
from affect_tf.data.examples import read_tfrecord


def test_synth_then_convert_round_trips_every_label_and_mask(tmp_path, capsys):
    corpus, out = tmp_path / "corpus", tmp_path / "x.tfrecord.gz"
    assert (
        cli.main(
            [
                "synth",
                "--out",
                str(corpus),
                "--n",
                "40",
                "--size",
                "64",
                "--seed",
                "3",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert "40 images" in capsys.readouterr().out
    assert (
        cli.main(
            ["convert", "--format", "manifest", "--root", str(corpus), "--out", str(out), "--quiet"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "wrote 40 examples" in printed and "skipped: 0" in printed

    rows = list(csv.DictReader((corpus / "manifest.csv").open()))
    records = list(read_tfrecord(out))
    assert len(records) == len(rows) == 40
    for row, rec in zip(rows, records, strict=True):
        assert (rec.video_id, rec.frame, rec.source) == (
            row["video_id"],
            int(row["frame"]),
            "synthaffect",
        )
        assert rec.expr_mask == (row["expression"] != "")
        if rec.expr_mask:
            assert EXPRESSIONS[rec.expression] == row["expression"]
        assert rec.va_mask == (row["valence"] != "")
        if rec.va_mask:
            assert rec.valence == pytest.approx(float(row["valence"]), abs=1e-6)
            assert rec.arousal == pytest.approx(float(row["arousal"]), abs=1e-6)
        for i, au in enumerate(AUS):
            assert rec.au_mask[i] == (row[au] != "")
            assert rec.au[i] == (int(row[au]) if row[au] else 0)
        np.testing.assert_allclose(
            rec.bbox, [float(row[k]) for k in ("box_x", "box_y", "box_w", "box_h")], atol=1e-4
        )
        np.testing.assert_allclose(
            rec.landmarks.reshape(-1), [float(v) for v in row["landmarks"].split(";")], atol=1e-4
        )
        assert rec.image == (corpus / row["path"]).read_bytes()


def test_grid_image(tmp_path):
    grid = tmp_path / "grid.png"
    assert (
        cli.main(
            [
                "synth",
                "--out",
                str(tmp_path / "c"),
                "--n",
                "2",
                "--size",
                "48",
                "--workers",
                "1",
                "--quiet",
                "--grid",
                str(grid),
            ]
        )
        == 0
    )
    from PIL import Image

    width, height = Image.open(grid).size
    assert height == 8 * 48 and width > 6 * 48


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "affect_tf.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_missing_root_is_a_clear_error_not_a_traceback(tmp_path):
    result = run_cli(
        "convert",
        "--format",
        "affwild2",
        "--root",
        str(tmp_path / "nope"),
        "--out",
        str(tmp_path / "o.tfrecord.gz"),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        "Expected the Aff-Wild2 root to be a directory" in result.stderr and "nope" in result.stderr
    )


def test_unknown_format_and_bad_synth_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["convert", "--format", "fer2013", "--root", str(tmp_path), "--out", "x"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert cli.main(["synth", "--out", str(tmp_path), "--size", "4"]) == 2
    assert "Expected size >= 32" in capsys.readouterr().err


def test_corpus_with_nothing_usable_exits_non_zero(tmp_path, capsys):
    (tmp_path / "manifest.csv").write_text("path,expression\nmissing.jpg,1\n")
    assert (
        cli.main(
            [
                "convert",
                "--format",
                "manifest",
                "--root",
                str(tmp_path),
                "--out",
                str(tmp_path / "o.tfrecord.gz"),
                "--quiet",
            ]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert "missing_file" in captured.out and "no usable example" in captured.err


def test_convert_affectnet_and_affwild2_fixtures(tmp_path, capsys):
    from tests.data.test_affectnet import write_affectnet
    from tests.data.test_affwild2 import AU_HEADER, VA_HEADER, frames, write_task

    affectnet = tmp_path / "affectnet"
    write_affectnet(
        affectnet,
        [("1/a.jpg", 1, 0.5, 0.1), ("1/b.jpg", 9, 0, 0), ("2/c.jpg", 6, -2, -2)],
        name="validation.csv",
    )
    out = tmp_path / "an.tfrecord.gz"
    assert (
        cli.main(
            [
                "convert",
                "--format",
                "affectnet",
                "--root",
                str(affectnet),
                "--split",
                "validation",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "wrote 2 examples" in printed and "dropped_uncertain" in printed
    records = list(read_tfrecord(out))
    assert [r.expression for r in records] == [4, 1] and [r.va_mask for r in records] == [1, 0]

    affwild = tmp_path / "affwild2"
    frames(affwild, "v1", 3)
    write_task(
        affwild,
        "VA_Estimation_Challenge",
        "v1",
        VA_HEADER,
        ["0.1,0.2", "-5,-5", "0.3,0.4", "0.5,0.5"],
    )
    write_task(
        affwild,
        "AU_Detection_Challenge",
        "v1",
        AU_HEADER,
        [",".join(["1"] * 12), ",".join(["-1"] * 12), ",".join(["0"] * 12)],
    )
    out = tmp_path / "aw.tfrecord.gz"
    assert (
        cli.main(
            [
                "convert",
                "--format",
                "affwild2",
                "--root",
                str(affwild),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    # Frame 2 has no valid label, frame 4 has VA but no image.
    assert (
        "wrote 2 examples" in printed and "no_valid_label" in printed and "missing_file" in printed
    )
    records = list(read_tfrecord(out))
    assert [(r.frame, r.va_mask, sum(r.au_mask)) for r in records] == [(1, 1, 12), (3, 1, 12)]
    assert list(records[0].bbox) == [0.0, 0.0, 112.0, 112.0]
