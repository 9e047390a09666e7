"""Training throughput, 1 worker vs 2 workers on this machine (MultiWorkerMirroredStrategy on
loopback, each worker limited to one core's worth of TensorFlow threads), side by side.

    python -m benchmarks.multiworker [--seeds 2] [--epochs 4] [--out benchmarks/results/multiworker.json]

Each row is ``affect-tf train`` as the user runs it (``--workers 2`` for the pair), on the same
SynthAffect corpus, the same global batch and steps; examples/s counts the training examples of
every epoch over the fit's wall time (tracing, validation and checkpoints included, as a user
waits for them). Mean ± std over seeds; the ratio is 2 workers / 1 worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _train(corpus: Path, out: Path, workers: int, args, seed: int) -> dict:
    argv = [
        sys.executable, "-m", "affect_tf.cli", "train", "--data", str(corpus),
        "--preset", "tiny", "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps),
        "--batch-size", str(args.batch), "--patience", "99", "--seed", str(seed),
        "--out", str(out),
    ]  # fmt: skip
    if workers > 1:
        argv += ["--workers", str(workers)]
    # One core's worth of TensorFlow threads per worker (the machine has 2 cores).
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    env.pop("TF_CONFIG", None)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"train --workers {workers} failed:\n{done.stderr[-3000:]}")
    history = json.loads((out / "history.json").read_text())
    examples = args.epochs * args.steps * args.batch
    return {
        "workers": workers,
        "seed": seed,
        "fit_seconds": history["seconds"],
        "command_seconds": wall,
        "examples_per_s": examples / history["seconds"],
        "val_p_mtl_last": history["val_p_mtl"][-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multiworker")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/multiworker.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-mw-"))
    corpus = work / "corpus"
    subprocess.run(
        [sys.executable, "-m", "affect_tf.cli", "synth", "--out", str(corpus), "--n", "480",
         "--size", "64", "--workers", "1", "--quiet", "--seed", "11"],
        check=True,
    )  # fmt: skip
    rows = []
    for seed in range(args.seeds):
        for workers in (1, 2):  # interleaved: drift of the machine hits both alike
            row = _train(corpus, work / f"w{workers}-s{seed}", workers, args, seed)
            print(
                f"workers {workers} seed {seed}: {row['examples_per_s']:.1f} examples/s "
                f"(fit {row['fit_seconds']:.1f} s, command {row['command_seconds']:.1f} s)",
                flush=True,
            )
            rows.append(row)
    summary = {}
    for workers in (1, 2):
        rates = [r["examples_per_s"] for r in rows if r["workers"] == workers]
        summary[str(workers)] = {
            "examples_per_s_mean": statistics.mean(rates),
            "examples_per_s_std": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        }
    summary["ratio_2_over_1"] = (
        summary["2"]["examples_per_s_mean"] / summary["1"]["examples_per_s_mean"]
    )
    result = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor()},
        "settings": {
            "preset": "tiny",
            "epochs": args.epochs,
            "steps_per_epoch": args.steps,
            "global_batch": args.batch,
            "threads_per_worker": 1,
        },
        "rows": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
