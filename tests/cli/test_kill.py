"""kill -9 at the dangerous moments, for real: `affect-tf convert` while it writes its
TFRecord, `affect-tf train` while it converts its manifest and while it saves a checkpoint. A
kill leaves the previous output or none (never a half-written file at the final name), and the
re-run finishes (resuming where training stopped)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from affect_tf import cli
from affect_tf.model.loading import load_model
from tests.conftest import synth_corpus

pytestmark = [pytest.mark.slow, pytest.mark.chaos]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synth_corpus(tmp_path_factory.mktemp("kill") / "corpus", n=400, seed=3)


def _kill_when(command: list[str], seen, timeout: float = 240) -> bool:
    """Starts ``affect-tf COMMAND`` and kills it with SIGKILL the moment ``seen()`` is true;
    False when the process ended first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "affect_tf.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if seen():
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _partial(folder: Path, name: str) -> bool:
    """A non-empty partial file of ``name`` (``replaced_atomically`` keeps its suffixes last)."""
    stem = name.split(".")[0]
    return folder.is_dir() and any(
        p.stat().st_size > 0 for p in folder.glob(f".{stem}.*.partial*") if p.exists()
    )


def _records(path: Path) -> int:
    return sum(1 for _ in tf.data.TFRecordDataset(str(path), compression_type="GZIP"))


def test_convert_killed_while_writing_keeps_the_previous_output(corpus, tmp_path):
    out = tmp_path / "faces.tfrecord.gz"
    argv = ["convert", "--format", "manifest", "--root", str(corpus), "--out", str(out)]
    assert cli.main([*argv, "--quiet"]) == 0
    before = out.read_bytes()
    report = out.with_name(out.name + ".report.json")
    report_before = report.read_text()

    assert _kill_when([*argv, "--quiet"], lambda: _partial(tmp_path, "faces.tfrecord"))
    assert out.read_bytes() == before and report.read_text() == report_before
    out.unlink()  # and with no previous output: nothing at the final name after a kill
    assert _kill_when([*argv, "--quiet"], lambda: _partial(tmp_path, "faces.tfrecord"))
    assert not out.exists()
    assert cli.main([*argv, "--quiet"]) == 0
    assert _records(out) == json.loads(report.read_text())["written"] == 400


def test_train_killed_while_converting_then_while_saving_resumes(corpus, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--preset", "tiny", "--out", str(out)]
    argv += ["--steps-per-epoch", "1", "--epochs"]

    assert _kill_when([*argv, "2"], lambda: _partial(out / "data", "examples.tfrecord"))
    assert not (out / "data" / "examples.tfrecord.gz").exists()
    # Every epoch saves last.keras: kill inside one of those saves (after the first epoch's,
    # so there is a checkpoint to resume from).
    assert _kill_when(
        [*argv, "40"], lambda: (out / "state.json").exists() and _partial(out, "last")
    )
    killed_at = json.loads((out / "state.json").read_text())["epoch"]
    assert killed_at >= 1
    load_model(out / "last.keras", compile=False)  # the checkpoint the kill left is whole
    assert cli.main([*argv, str(killed_at + 1)]) == 0
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == killed_at + 1
    model = load_model(out)
    outputs = model.predict(np.zeros((1, *model.input_shape[1:]), np.float32), verbose=0)
    assert outputs["va"].shape == (1, 2) and np.isfinite(outputs["va"]).all()
