"""Peak resident memory of inference and of the demo pipeline, each in a process of its own.

A wrapper process runs the workload as its child and reads ``RUSAGE_CHILDREN.ru_maxrss``: the
largest peak RSS of any descendant it waited for (the LocalDagRunner runs every component in
its one process, so that is the pipeline's peak). Workloads:

- ``baseline``: ``import tensorflow`` and nothing else (what every TF process pays);
- ``inference``: load the SavedModel, read a folder of images (MTCNN + alignment + model);
- ``pipeline``: the demo TFX pipeline (``pipelines/affect.py`` through ``LocalDagRunner``)
  into a fresh output root.

    python -m benchmarks.memory inference MODEL_DIR IMAGES_DIR   (the child of ``peak_rss``)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.time()\n"
    "done = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'w'), stderr=subprocess.STDOUT)\n"
    "print(json.dumps({'returncode': done.returncode, 'seconds': time.time() - start,\n"
    "    'max_rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def peak_rss(command: list[str], log: Path, env: dict | None = None) -> dict:
    """Runs ``command`` under the wrapper; ``{"peak_rss_mib", "seconds", "returncode", "log"}``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(log), *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "peak_rss_mib": report["max_rss_kib"] / 1024.0,
        "seconds": report["seconds"],
        "returncode": report["returncode"],
        "log": str(log),
    }


def measure(model_dir: Path, images_dir: Path, work: Path, pipeline: bool) -> dict:
    """Peak RSS of the baseline, inference and (when ``pipeline``) the demo pipeline."""
    python = sys.executable
    env = {"PYTHONPATH": str(ROOT)}
    results = {
        "baseline": peak_rss(
            [python, "-c", "import affect_tf.core._env, tensorflow"], work / "baseline.log", env
        ),
        "inference": peak_rss(
            [python, "-m", "benchmarks.memory", "inference", str(model_dir), str(images_dir)],
            work / "inference.log",
            env,
        ),
    }
    if pipeline:
        root = work / "pipeline_run"
        results["pipeline"] = peak_rss(
            [python, str(ROOT / "pipelines" / "affect.py")],
            work / "pipeline.log",
            {**env, "AFFECT_OUTPUT_ROOT": str(root), "AFFECT_ENABLE_CACHE": "false"},
        )
    return results


def _inference(model_dir: str, images_dir: str) -> None:
    from affect_tf.inference import AffectRecognizer

    table = AffectRecognizer.load(model_dir).predict_images(images_dir)
    print(f"{len(table)} faces", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "inference":
        _inference(sys.argv[2], sys.argv[3])
    else:
        print("usage: python -m benchmarks.memory inference MODEL_DIR IMAGES_DIR", file=sys.stderr)
        sys.exit(2)
