"""Chaos from a careless user's side: thin images in a folder, a killed job's partial file
beside the data, a full disk under `convert` and `train`, colliding and non-UTF-8 overlay
names, and frame numbers no tf.Example can hold. Each used to end in a traceback, a crash or
a lost output; each now gets one line or a counted skip, and the rest of the job is done."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect_tf import cli
from tests.conftest import synth_corpus

pytestmark = [pytest.mark.slow, pytest.mark.chaos]


def test_thin_images_are_skipped_and_the_folder_is_read(exported, astronaut, tmp_path, capsys):
    """Before: a 1 x 20000 image in a folder gave a cv2.error traceback and no CSV."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "a.jpg")
    Image.new("RGB", (20000, 1), (90, 90, 90)).save(folder / "line.png")
    Image.new("RGB", (2, 20000), (90, 90, 90)).save(folder / "column.png")
    Image.new("RGB", (7, 300), (90, 90, 90)).save(folder / "narrow.png")
    csv = tmp_path / "p.csv"
    args = ["predict", str(folder), "--model", str(exported["base"]), "--quiet"]
    assert cli.main([*args, "--csv", str(csv)]) == 0
    err = capsys.readouterr().err
    for name, size in (("line.png", "20000x1"), ("column.png", "2x20000"), ("narrow", "7x300")):
        assert name in err and "at least 8 px on each side" in err and size in err, err
    assert len(pd.read_csv(csv)) == 1
    from affect_tf.face.detect import shrunk

    assert shrunk(np.zeros((1, 20000, 3), np.uint8), 640)[0].shape == (1, 640, 3)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_jobs_partial_is_no_input_and_is_cleaned_up(tmp_path, caplog):
    """Before: a killed `convert` left `.out.<pid>.partial.tfrecord.gz`; `train --data <folder>`
    globbed it and failed with DataLossError. Now hidden files are never inputs, and the next
    run of the same output removes the orphan with a log line."""
    from affect_tf.data.convert import convert_corpus
    from affect_tf.data.dataset import resolve_files
    from affect_tf.inference.images import expand_inputs

    corpus = synth_corpus(tmp_path / "synth", n=8, seed=0)
    data = tmp_path / "data"
    out = data / "train.tfrecord.gz"
    convert_corpus("manifest", corpus, out, progress=False, workers=1)
    orphan = data / f".train.{_dead_pid()}.partial.tfrecord.gz"
    orphan.write_bytes(out.read_bytes()[:100])  # truncated, as a kill leaves it
    (data / ".hidden.tfrecord").write_bytes(b"junk")
    assert resolve_files(data) == [str(out)]
    assert resolve_files(str(data / "*.gz")) == [str(out)]
    images = tmp_path / "images"
    images.mkdir()
    (images / ".a.1234.partial.jpg").write_bytes(b"\xff\xd8\xff")
    Image.new("RGB", (16, 16)).save(images / "b.jpg")
    assert [p.name for p in expand_inputs(images)] == ["b.jpg"]

    import tensorflow as tf

    assert sum(1 for _ in tf.data.TFRecordDataset(resolve_files(data), "GZIP")) == 8
    with caplog.at_level("WARNING", logger="affect_tf.core.files"):
        convert_corpus("manifest", corpus, out, progress=False, workers=1)
    assert not orphan.exists() and "did not finish" in caplog.text


def _full_disk(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Runs ``script`` (bash) with ``$FULL`` a 1 MB tmpfs, in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    full = tmp_path / "full"
    full.mkdir(exist_ok=True)
    body = f"mount -t tmpfs -o size=1m tmpfs {full} && export FULL={full} && {script}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        ["unshare", "-rm", "bash", "-c", body],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """Before: `convert` to a full disk gave a ResourceExhaustedError traceback and `train` an
    OSError ENOSPC traceback from callbacks.py. Now: one line naming the path and the space
    needed, exit 2, and no file under the output's name."""
    corpus = synth_corpus(tmp_path / "synth", n=24, seed=0, size=96)
    data = tmp_path / "train.tfrecord.gz"
    assert cli.main(["convert", "--format", "manifest", "--root", str(corpus), "--out",
                     str(data), "--quiet"]) == 0  # fmt: skip
    filler = "{ head -c 2000000 /dev/zero > $FULL/filler 2>/dev/null; true; }"  # fills it
    result = _full_disk(
        f"{filler} && affect-tf convert --format manifest --root {corpus} "
        f"--out $FULL/out.tfrecord.gz --quiet; echo rc=$?; ls -A $FULL",
        tmp_path,
    )
    assert "rc=2" in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "Expected free space to write" in error[0], result.stderr
    assert "out.tfrecord.gz" in error[0] and "MB free" in error[0]
    assert result.stdout.split("rc=2")[1].split() == ["filler"]  # nothing else left

    result = _full_disk(
        f"{filler} && affect-tf train --data {data} --val-data {data} --preset tiny "
        "--epochs 1 --out $FULL/run --steps-per-epoch 2 --batch-size 8; echo rc=$?",
        tmp_path,
    )
    assert "rc=2" in result.stdout, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Expected free space to write" in result.stderr


def test_overlay_names_cannot_collide_or_crash(exported, astronaut, tmp_path, capsys):
    """Before: `same.jpg` and `same.png` both went to `same.jpg` (4 faces, 3 files), and a
    non-UTF-8 file name made `--overlay` segfault inside cv2.imwrite."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("same.jpg", "same.png", "other.jpg"):
        Image.fromarray(astronaut).save(folder / name)
    odd = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not UTF-8
    Image.fromarray(astronaut).save(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"))
    out = tmp_path / "overlays"
    args = ["predict", str(folder), "--model", str(exported["base"]), "--quiet"]
    assert cli.main([*args, "--overlay", str(out)]) == 0
    written = sorted(os.listdir(os.fsencode(out)))
    assert written == sorted([b"caf\xe9.jpg", b"other.jpg", b"same.jpg", b"same.png.jpg"])
    for name in written:
        assert Image.open(os.path.join(os.fsencode(out), name)).size == astronaut.shape[1::-1]
    assert odd.encode("utf-8", "surrogateescape") == b"caf\xe9.jpg"
    from affect_tf.inference.visualize import overlay_paths

    paths = overlay_paths(["d/x.jpg", "d/x.JPG", "d/x.jpg.jpg", "d/y"], Path("d"), Path("o"))
    assert [p.name for p in paths.values()] == ["x.jpg", "x.JPG", "x.jpg.jpg", "y.jpg"]
    paths = overlay_paths(["a/x.jpg", "b/x.jpg"], None, Path("o"))
    assert [p.name for p in paths.values()] == ["x.jpg", "x-2.jpg"]


def test_frames_no_tf_example_can_hold_are_counted_skips(tmp_path, capsys):
    """Before: `frame=99999999999999999999999` gave a ValueError traceback and no output;
    -3 and 2.5 were taken silently. Now each is a `frame_invalid` skip naming the value."""
    Image.new("RGB", (64, 64), (128, 100, 90)).save(tmp_path / "a.png")
    rows = ["path,expression,box_x,box_y,box_w,box_h,frame"]
    frames = ["99999999999999999999999", "-3", "2.5", "nan", "7", "4.0"]
    rows += [f"a.png,Happiness,4,4,56,56,{f}" for f in frames]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.tfrecord.gz"
    args = ["convert", "--format", "manifest", "--root", str(tmp_path), "--out", str(out)]
    assert cli.main([*args, "--quiet"]) == 0
    report = json.loads(Path(str(out) + ".report.json").read_text())
    assert report["written"] == 2, report
    assert report["skipped"]["frame_invalid"] == 4, report
    from affect_tf.data.examples import read_tfrecord

    assert sorted(r.frame for r in read_tfrecord(str(out))) == [4, 7]


def test_out_of_space_is_said_once_by_the_outermost_writer(tmp_path):
    """ENOSPC (and TensorFlow's ResourceExhaustedError) inside nested atomic writes: one
    OutOfSpaceError naming the inner output, what it had written, and no file left."""
    import errno

    import tensorflow as tf

    from affect_tf.core.files import OutOfSpaceError, replaced_atomically

    with pytest.raises(OutOfSpaceError, match=r"write .*data\.bin\. .*filled after 0\.2 MB"):
        with replaced_atomically(tmp_path / "data.bin.report.json"):
            with replaced_atomically(tmp_path / "data.bin") as partial:
                partial.write_bytes(b"x" * 200_000)
                raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OutOfSpaceError, match="the disk is full"):
        with replaced_atomically(tmp_path / "x.tfrecord"):
            raise tf.errors.ResourceExhaustedError(None, None, "x; No space left on device")
    with pytest.raises(tf.errors.ResourceExhaustedError):  # out of memory is not out of space
        with replaced_atomically(tmp_path / "y.tfrecord"):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    assert list(tmp_path.iterdir()) == []
