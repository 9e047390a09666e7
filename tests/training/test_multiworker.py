"""Multi-worker training for real: ``affect-tf train --workers 2`` runs two processes with
MultiWorkerMirroredStrategy on loopback through the one fit function; the workers end with
identical weights, only the chief's outputs exist, the model loads and predicts; a worker killed
mid-run stops the run with a message naming it and the re-run resumes; bad cluster settings fail
clearly and in bounded time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from affect_tf import cli
from affect_tf.cli.workers import free_ports, worker_argv
from affect_tf.training import distribute
from tests.conftest import synth_corpus

TRAIN = ["train", "--preset", "tiny", "--steps-per-epoch", "4", "--patience", "9"]


def _run(argv: list[str], tmp: Path, env: dict | None = None, timeout: float = 420):
    """``affect-tf ARGV`` as a process; TMPDIR in ``tmp`` shows what the workers left."""
    clean = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "affect_tf.cli", *argv],
        env={**clean, "TMPDIR": str(tmp), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synth_corpus(tmp_path_factory.mktemp("mw") / "corpus", n=160, seed=5)


@pytest.mark.slow
def test_two_workers_train_identical_weights_and_only_the_chief_writes(corpus, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "run"
    done = _run(
        [*TRAIN, "--data", str(corpus), "--epochs", "2", "--workers", "2", "--out", str(out)], tmp
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The launcher compares every worker's weights digest at the end.
    assert "2 workers ended with identical weights" in done.stdout
    assert "2 replicas in sync" in done.stdout + done.stderr
    # The chief's outputs, once; the other worker's temporary folder and the logs are gone.
    for name in ("model.keras", "last.keras", "state.json", "history.json", "validation.json"):
        assert (out / name).is_file(), name
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("affect-")]
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2
    # The logged loss is the sum of the task losses (weights 1): the loss is scaled per replica
    # (unscaled, two replicas logged and stepped twice the loss).
    for epoch in range(2):
        tasks = sum(history[f"{t}_loss"][epoch] for t in ("va", "expression", "au"))
        assert history["loss"][epoch] == pytest.approx(tasks, rel=2e-3)
    import affect_tf

    model = affect_tf.load_model(out)
    faces = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    outputs = model.predict(faces)
    assert outputs["expression"].shape == (3, 8) and outputs["au"].shape == (3, 12)
    assert np.all(np.isfinite(outputs["va"]))


def _children(pid: int) -> dict[int, int]:
    """``{worker index: pid}`` of the launcher's worker processes (Linux ``/proc``)."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for entry in environ:
            if entry.startswith(b"TF_CONFIG="):
                found[json.loads(entry[len(b"TF_CONFIG=") :])["task"]["index"]] = int(child)
    return found


@pytest.mark.slow
@pytest.mark.chaos
def test_a_killed_worker_stops_the_run_and_the_rerun_resumes(corpus, tmp_path):
    out = tmp_path / "run"
    argv = [*TRAIN, "--data", str(corpus), "--epochs", "3", "--workers", "2", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TMPDIR"] = str(tmp_path)  # the killed worker's folder and the kept logs stay in here
    launcher = subprocess.Popen(
        [sys.executable, "-m", "affect_tf.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    state = out / "state.json"
    while not (state.is_file() and json.loads(state.read_text())["epoch"] >= 1):
        assert launcher.poll() is None, launcher.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no epoch finished in 300 s"
        time.sleep(0.2)
    os.kill(_children(launcher.pid)[1], signal.SIGKILL)  # the non-chief worker, mid-epoch 2
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 1
    assert "worker 1 of 2" in stderr and "killed by signal 9 (SIGKILL)" in stderr
    assert "run the same command again to resume" in stderr
    epoch = json.loads(state.read_text())["epoch"]
    assert 1 <= epoch < 3
    again = _run(argv, tmp_path, env={})
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from epoch {epoch}" in again.stdout + again.stderr
    assert "2 workers ended with identical weights" in again.stdout
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 3 - epoch
    assert json.loads(state.read_text())["epoch"] == 3


def test_workers_zero_and_both_launchers_are_usage_errors(corpus, tmp_path, capsys):
    assert cli.main([*TRAIN, "--data", str(corpus), "--workers", "0", "--out", str(tmp_path)]) == 2
    assert "Expected --workers N >= 1" in capsys.readouterr().err
    tf_config = distribute.local_tf_configs([1111, 2222])[0]
    os.environ["TF_CONFIG"] = tf_config
    try:
        argv = [*TRAIN, "--data", str(corpus), "--workers", "2", "--out", str(tmp_path)]
        assert cli.main(argv) == 2
    finally:
        del os.environ["TF_CONFIG"]
    assert "Received: both (--workers 2, TF_CONFIG of 2 tasks)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "with a 'cluster' object"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}', "host:port"),
        ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker"}}', "non-empty list"),
        ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps"}}', "'chief' and 'worker' jobs"),
        ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "chief"}}', "type is one of"),
        (
            '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
            "[0, 2)",
        ),
    ],
)
def test_malformed_tf_config_is_named(raw, expected):
    with pytest.raises(distribute.ClusterError, match="Expected TF_CONFIG") as e:
        distribute.parse_tf_config(raw)
    assert expected in str(e.value) and "Received: TF_CONFIG=" in str(e.value)


def test_cluster_roles_and_local_configs():
    configs = [distribute.parse_tf_config(c) for c in distribute.local_tf_configs([5001, 5002])]
    assert [c.is_chief for c in configs] == [True, False]
    assert configs[1].peers == ["127.0.0.1:5001"] and configs[0].num_tasks == 2
    with_chief = distribute.parse_tf_config(
        '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}'
    )
    assert not with_chief.is_chief and with_chief.peers == ["a:1"]
    one = '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}'
    os.environ["TF_CONFIG"] = one
    try:
        assert distribute.cluster_from_env() is None  # one task: an ordinary run
    finally:
        del os.environ["TF_CONFIG"]
    assert worker_argv(["train", "--workers", "2", "--out", "o", "--workers=3"]) == [
        "train",
        "--out",
        "o",
    ]
    assert len(set(free_ports(4))) == 4


@pytest.mark.slow
def test_malformed_tf_config_and_unreachable_peer_fail_clearly_in_bounded_time(corpus, tmp_path):
    argv = [*TRAIN, "--data", str(corpus), "--out", str(tmp_path / "run")]
    bad = _run(argv, tmp_path, env={"TF_CONFIG": '{"cluster": {"worker": ["nohost"]}}'})
    assert bad.returncode == 2
    assert "Expected TF_CONFIG" in bad.stderr and "Traceback" not in bad.stderr
    # Two workers named, only this one started: the peer's port has nobody listening.
    ports = free_ports(2)
    tf_config = distribute.local_tf_configs(ports)[0]
    start = time.monotonic()
    lonely = _run([*argv, "--cluster-timeout", "8"], tmp_path, env={"TF_CONFIG": tf_config})
    assert lonely.returncode == -signal.SIGKILL  # by its watchdog: TF blocks, catches SIGTERM
    assert time.monotonic() - start < 120
    assert f"nothing accepts connections at 127.0.0.1:{ports[1]}" in lonely.stderr
    assert "within 8 s" in lonely.stderr and not (tmp_path / "run" / "model.keras").exists()


def test_keras_multiworker_workaround_is_still_needed():
    """keras-team/keras#20585: when Keras fixes its multi-worker log reduction this fails (and
    ``patch_keras`` stops applying itself): then delete the workaround in
    affect_tf.training.distribute."""
    assert distribute.keras_needs_patch()


_MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
import keras
from affect_tf.training import fit  # the module: its _finish is wrapped
from affect_tf.data.sources import training_files
from affect_tf.model import get_preset
from affect_tf.training.tfrecords import train
trained = []  # the model as fit leaves it (fit returns the best model reloaded)
finish = fit._finish
fit._finish = lambda model, *args: trained.append(model) or finish(model, *args)
out = sys.argv[2]
files = training_files(sys.argv[1], out)
train(get_preset("tiny"), files, out, epochs=1, steps_per_epoch=3, strategy=strategy)
spread = 0.0
for layer in trained[0]._flatten_layers():
    if isinstance(layer, keras.layers.BatchNormalization):
        copies = [c.numpy() for c in layer.moving_mean.value.values]
        spread = max(spread, float(abs(copies[0] - copies[1]).max()))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "spread": spread}))
"""


def _mirrored(corpus: Path, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _MIRRORED, str(corpus), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_replicas_on_one_machine_train_with_the_loss_scaled(corpus, tmp_path):
    """MirroredStrategy over two logical CPUs (the multi-GPU path, without GPUs): the same fit
    runs, the BatchNorm copies stay identical (Keras keeps them so here: only multi-worker runs
    need ``SyncMovingStatistics``), the logged loss is the sum of the task losses (twice it
    before the loss was scaled per replica)."""
    assert _mirrored(corpus, tmp_path / "run") == {"replicas": 2, "spread": 0.0}
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    tasks = sum(history[f"{t}_loss"][0] for t in ("va", "expression", "au"))
    assert history["loss"][0] == pytest.approx(tasks, rel=2e-3)


@pytest.mark.slow
@pytest.mark.chaos
def test_without_the_launcher_a_lost_peer_stops_the_others_with_a_message(corpus, tmp_path):
    """A real cluster's form (each worker started on its own with TF_CONFIG): kill -9 one,
    the other stops within seconds (TensorFlow's heartbeats) naming the lost task, no traceback."""
    out = tmp_path / "run"
    argv = [*TRAIN, "--data", str(corpus), "--epochs", "6", "--out", str(out)]
    clean = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "affect_tf.cli", *argv],
            env={**clean, "TMPDIR": str(tmp_path), "TF_CONFIG": tf_config},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tf_config in distribute.local_tf_configs(free_ports(2))
    ]
    deadline = time.monotonic() + 300
    while not (out / "state.json").is_file():
        assert workers[0].poll() is None, workers[0].communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no epoch finished in 300 s"
        time.sleep(0.2)
    workers[1].kill()
    workers[1].communicate()
    killed = time.monotonic()
    _, stderr = workers[0].communicate(timeout=180)
    assert workers[0].returncode == 1
    assert time.monotonic() - killed < 120
    assert "worker 0 lost /job:worker/replica:0/task:1" in stderr
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
