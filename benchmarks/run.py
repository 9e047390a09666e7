"""One run, one machine: model speed per preset and runtime, the machine's peak, a peer,
end to end, training and memory; JSON plus ``docs/benchmarks.md``.

    python -m benchmarks.run [--quick] [--json OUT] [--markdown OUT] [--presets mobile,demo,full]

``--quick`` (under 3 minutes): the demo preset only, shorter timings, fewer images, no
pipeline run. The full run (about 10 minutes on 2 cores) also runs the demo TFX pipeline for
its peak memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import affect_tf.core._env  # noqa: F401  (TensorFlow's environment, before TensorFlow loads)

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("mobile", "demo", "full")


def _log(start: float, message: str) -> None:
    print(f"[bench {time.perf_counter() - start:6.0f} s] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="demo preset, short timings, no pipeline"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/benchmarks.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs/benchmarks.md")
    parser.add_argument(
        "--presets", default=None, help="comma-separated (default: all; --quick: demo)"
    )
    parser.add_argument("--no-pipeline", action="store_true", help="skip the pipeline's memory run")
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    names = args.presets.split(",") if args.presets else (["demo"] if args.quick else list(PRESETS))
    unknown = sorted(set(names) - set(PRESETS))
    if unknown or "demo" not in names:
        parser.error(
            f"Expected presets from {PRESETS} including 'demo' (the end-to-end model). "
            f"Received: --presets={args.presets}"
        )
    args.preset_list = [p for p in PRESETS if p in names]
    return args


def run(args: argparse.Namespace) -> dict:
    import keras
    import tensorflow as tf

    from benchmarks import common, e2e, memory, models, peer
    from benchmarks import faces as detectors
    from benchmarks import photos as tight

    start = time.perf_counter()
    quick = args.quick
    seconds = 0.4 if quick else 1.5  # minimum timed seconds per measurement
    work = args.work or Path(tempfile.mkdtemp(prefix="affect-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "command": " ".join(["python -m benchmarks.run", shlex.join(sys.argv[1:])]).strip(),
        "date": datetime.date.today().isoformat(),
        "quick": quick,
        "machine": common.describe_machine(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }
    _log(start, f"machine: {results['machine']['cpu']}, {results['machine']['usable_cpus']} cores")
    results["peak"] = common.peak_matmul(seconds=2.0 if quick else 5.0)
    _log(start, f"peak float32 matmul: {results['peak']['gflops']:.0f} GFLOP/s")

    results["presets"] = {}
    for preset in args.preset_list:
        model = models.build(preset)
        config = model.affect_config
        faces = models.aligned_faces(config.image_size, config.margin)
        exported = models.export(model, work / preset, faces)
        _log(start, f"{preset}: exported SavedModel + TFLite fp32/fp16/int8")
        entry = {
            "backbone": config.backbone,
            "image_size": config.image_size,
            "params": int(model.count_params()),
            "flops_per_face": models.flops_per_face(model),
            "bytes": exported["bytes"],
            "files": exported["files"],
            "inference": models.measure_inference(model, exported["files"], faces, seconds),
        }
        results["presets"][preset] = entry
        best = max(r["b32"]["per_s"] for r in entry["inference"].values())
        _log(start, f"{preset}: inference measured (best {best:.0f} faces/s at batch 32)")
        keras.backend.clear_session()

    try:
        results["peer"] = peer.measure(seconds)
        _log(start, f"peer: {results['peer']['name']}")
    except peer.PeerUnavailable as error:
        results["peer"] = {"error": str(error)}
        _log(start, f"peer not measured: {error}")

    inputs = e2e.write_inputs(
        work / "inputs", n_images=24 if quick else 64, n_frames=90 if quick else 300
    )
    demo_model = results["presets"]["demo"]["files"]["saved_model"]
    results["e2e"] = e2e.measure(demo_model, inputs)
    video = {m: results["e2e"][m]["video"]["items_per_s"] for m in e2e.MODES}
    _log(
        start, "end to end, video frames/s: " + ", ".join(f"{m} {v:.1f}" for m, v in video.items())
    )

    results["faces"] = detectors.measure(demo_model, quick, work / "faces")
    photos = {k: v["photos_per_s"] for k, v in results["faces"]["photos"].items()}
    _log(
        start,
        "detectors, astronaut photos/s: " + ", ".join(f"{k} {v:.1f}" for k, v in photos.items()),
    )
    (work / "photos").mkdir(parents=True, exist_ok=True)
    results["photos"] = tight.measure(quick, cold=True, work=work / "photos")
    fast = results["photos"]["end_to_end_portraits_only"]
    _log(
        start,
        f"tight portraits: {fast['blazeface']['photos_per_s']:.1f} photos/s "
        f"({fast['default_over_mtcnn']:.2f}x MTCNN), first result "
        f"{results['photos']['cold_start']['shipped_tflite (default)']['seconds_median']:.2f} s",
    )

    results["training"] = {}
    for preset in args.preset_list:
        results["training"][preset] = models.measure_training(preset, seconds)
        _log(start, f"{preset}: training {results['training'][preset]['per_s']:.1f} examples/s")

    results["memory"] = memory.measure(
        Path(demo_model),
        inputs["synth_images"],
        work / "memory",
        pipeline=not (quick or args.no_pipeline),
    )
    _log(
        start,
        "memory: "
        + ", ".join(f"{k} {v['peak_rss_mib']:.0f} MiB" for k, v in results["memory"].items()),
    )
    results["work"] = str(work)
    results["seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import render

    args = parse_args(argv)
    results = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(render(results))
    print(f"[bench] {results['seconds'] / 60:.1f} min; wrote {args.json} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
