"""``affect-tf train --workers N``: N worker processes on loopback, the development form of a
multi-worker cluster.

Each worker is ``affect-tf train`` with the same arguments and its own ``TF_CONFIG`` (ports
picked free on 127.0.0.1); worker 0 is the chief and its output is this command's; the others
log to a temporary folder shown at the start. When a worker ends badly the others are killed
(TensorFlow catches SIGTERM in a multi-worker process, so SIGKILL) and the message says which
worker, how it ended and how to resume; at the end every worker's weights digest must agree.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DIGEST_ENV = "AFFECT_DIGEST_FILE"


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 (held open together while picking)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def worker_argv(argv: list[str]) -> list[str]:
    """``argv`` of ``affect-tf train`` without ``--workers N`` (each worker is one process)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def _ended(code: int) -> str:
    if code < 0:
        return f"was killed by signal {-code} ({signal.Signals(-code).name})"
    return f"exited with status {code}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {line}" for line in text[-lines:])


def resume_hint(out: Path) -> str:
    """Where a stopped run can resume from (the chief's ``state.json``, ``ResumeState``'s)."""
    from affect_tf.training.callbacks import STATE_FILE

    state = out / STATE_FILE
    try:
        epoch = json.loads(state.read_text())["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no epoch had finished: running the same command again starts over"
    return f"{state} keeps epoch {epoch}: run the same command again to resume from it"


def _kill(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait()


def _watch(procs: list[subprocess.Popen], logs: Path, out: Path) -> int:
    """Waits for every worker; on the first that ends badly, kills the others and says so."""
    while True:
        codes = [proc.poll() for proc in procs]
        failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            i, code = failed[0]
            _kill(procs)
            log = logs / f"worker-{i}.log"
            detail = f"; its last lines ({log}):\n{_tail(log)}" if i else ""
            print(
                f"affect-tf train: error: worker {i} of {len(procs)} (pid {procs[i].pid}) "
                f"{_ended(code)}; stopped the other workers. {resume_hint(out)}{detail}",
                file=sys.stderr,
            )
            return 1
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.2)


def launch(n: int, argv: list[str], out: Path) -> int:
    """Runs ``affect-tf train`` as ``n`` workers on loopback; the exit status.

    Args:
        n: Number of worker processes (each a replica; worker 0 is the chief).
        argv: The ``affect-tf train`` arguments (``--workers`` is removed).
        out: The run's folder (for the resume hint).
    """
    from affect_tf.training.distribute import local_tf_configs

    ports = free_ports(n)
    logs = Path(tempfile.mkdtemp(prefix="affect-workers-"))
    command = [sys.executable, "-m", "affect_tf.cli", *worker_argv(argv)]
    print(
        f"starting {n} workers on 127.0.0.1 ports {', '.join(map(str, ports))}: worker 0 is the"
        f" chief (its output follows), the others log to {logs}",
        flush=True,
    )
    procs: list[subprocess.Popen] = []
    files = []
    try:
        for i, tf_config in enumerate(local_tf_configs(ports)):
            env = {**os.environ, "TF_CONFIG": tf_config, DIGEST_ENV: str(logs / f"digest-{i}")}
            stream = None
            if i:
                stream = open(logs / f"worker-{i}.log", "w")  # noqa: SIM115 (closed below)
                files.append(stream)
            procs.append(
                subprocess.Popen(
                    command, env=env, stdout=stream, stderr=subprocess.STDOUT if i else None
                )
            )
        status = _watch(procs, logs, out)
        if status:
            return status
    except KeyboardInterrupt:
        _kill(procs)
        raise
    finally:
        for stream in files:
            stream.close()
    digests = [(logs / f"digest-{i}").read_text().strip() for i in range(n)]
    if len(set(digests)) != 1:
        print(
            "affect-tf train: error: Expected the workers to end with identical weights. "
            f"Received: sha256 {', '.join(d[:12] for d in digests)} (worker order; logs in {logs})",
            file=sys.stderr,
        )
        return 1
    print(f"{n} workers ended with identical weights (sha256 {digests[0][:16]})")
    shutil.rmtree(logs, ignore_errors=True)
    return 0
