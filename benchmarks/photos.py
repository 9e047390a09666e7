"""Real photos, fast: faces found, photos/s end to end and the cold start, on tight portraits.

One run, side by side (``benchmarks.portraits``: 100 astronaut crops and 100 SynthAffect renders
at 250-400 px with the face 40-70 % of the side, and lfw_subset's 100 faces at 25 px):

- faces found by the default detector and by ``--detector mtcnn`` (and, for the default, how
  many each of its detectors found: BlazeFace, or MTCNN where BlazeFace found nothing), and
  BlazeFace looks per photo;
- photos/s end to end (``AffectRecognizer.predict_images`` over the photos as JPEG files:
  decode, detect, align, model; the largest face), steady state after a warm-up, with the
  shipped TFLite model, and the share of each stage;
- time from process start to the first result for one photo (``python -m affect_tf.cli predict
  PHOTO``, the median of 3 runs) with the shipped TFLite model (the default), its ``.keras`` file
  and a SavedModel; and whether TensorFlow was imported.

    python -m benchmarks.photos [--json OUT] [--quick] [--skip-cold-start] [--model M]

Run with another checkout first on ``PYTHONPATH`` to measure its "before" (the script uses only
public APIs that checkout has too: ``AffectRecognizer``, ``make_detector``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DETECTORS = ("blazeface", "mtcnn")


def write_photos(sets: dict[str, list[np.ndarray]], folder: Path) -> dict[str, list[Path]]:
    """The portraits as JPEG files (quality 92), one folder per set."""
    from PIL import Image

    files: dict[str, list[Path]] = {}
    for name, images in sets.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        files[name] = []
        for i, image in enumerate(images):
            path = folder / name / f"{i:03d}.jpg"
            Image.fromarray(image).save(path, quality=92)
            files[name].append(path)
    return files


def _looks_counter(detector) -> list[int]:
    """Counts BlazeFace invocations (``_detect_square`` calls) on ``detector``."""
    calls: list[int] = []
    inner = getattr(detector, "_detect_square", None)
    if inner is not None:

        def counted(*args, **kwargs):
            calls.append(1)
            return inner(*args, **kwargs)

        detector._detect_square = counted
    return calls


def faces_found(sets: dict[str, list[np.ndarray]]) -> dict:
    """Per detector and set: photos with a face, and which detector found each face."""
    from affect_tf.face.registry import make_detector

    result: dict = {}
    for name in DETECTORS:
        detector = make_detector(name)
        calls = _looks_counter(detector)
        result[name] = {}
        for set_name, images in sets.items():
            calls.clear()
            found = [detector.detect(image) for image in images]
            by: dict[str, int] = {}
            for faces in found:
                for face in faces:
                    key = getattr(face, "detector", "") or name
                    by[key] = by.get(key, 0) + 1
            result[name][set_name] = {
                "photos": len(images),
                "with_face": sum(bool(f) for f in found),
                "found_by": by,
                **({"blazeface_looks_per_photo": len(calls) / len(images)} if calls else {}),
            }
    return result


def photos_per_s(files: list[Path], model: str | None, repeats: int) -> dict:
    """``predict_images`` over ``files`` per detector: photos/s (best of ``repeats`` after a
    warm-up pass) and the share of each stage."""
    from affect_tf.face.registry import make_detector
    from affect_tf.inference import AffectRecognizer

    result = {}
    for name in DETECTORS:
        recognizer = AffectRecognizer.load(model, detector=make_detector(name))
        # Warm-up: one whole pass builds everything a photo may need (the interpreters, MTCNN
        # behind BlazeFace's fallback, MTCNN's traced graphs): steady state after it.
        recognizer.predict_images(files, faces="largest")
        best, table = None, None
        for _ in range(repeats):
            start = time.perf_counter()
            table = recognizer.predict_images(files, faces="largest")
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
        stages = table.attrs["stage_seconds"]
        total = sum(stages.values()) or 1.0
        result[name] = {
            "photos": len(files),
            "faces": len(table),
            "seconds": best,
            "photos_per_s": len(files) / best,
            "stage_ms_per_photo": {k: 1000 * v / len(files) for k, v in stages.items()},
            "stage_share": {k: v / total for k, v in stages.items()},
            "model": str(recognizer.path),
            "model_kind": recognizer.kind,
        }
    result["default_over_mtcnn"] = (
        result["blazeface"]["photos_per_s"] / (result["mtcnn"]["photos_per_s"])
    )
    return result


_PROBE = (
    "import runpy, sys, time; t = time.perf_counter(); sys.argv = ['affect-tf', *sys.argv[1:]]; "
    "code = 0\ntry:\n    runpy.run_module('affect_tf.cli', run_name='__main__')\n"
    "except SystemExit as e:\n    code = e.code\n"
    "print('TF_LOADED', 'tensorflow' in sys.modules, file=sys.stderr); sys.exit(code)"
)


def cold_start(photo: Path, models: dict[str, str | None], repeats: int = 3) -> dict:
    """Seconds from process start to the printed result of ``affect-tf predict PHOTO``."""
    result = {}
    for name, model in models.items():
        command = [sys.executable, "-c", _PROBE, "predict", str(photo), "--quiet"]
        if model:
            command += ["--model", model]
        times, tf_loaded = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            run = subprocess.run(command, capture_output=True, text=True, timeout=600)
            times.append(time.perf_counter() - start)
            if run.returncode != 0:
                raise RuntimeError(f"Expected predict to succeed. Received: {run.stderr[-2000:]}")
            tf_loaded = "TF_LOADED True" in run.stderr
        result[name] = {
            "seconds_median": statistics.median(times),
            "seconds": times,
            "tensorflow_imported": tf_loaded,
        }
    return result


def cold_start_models(work: Path) -> dict[str, str | None]:
    """The shipped model three ways: TFLite (the default: no ``--model``), ``.keras`` and a
    SavedModel (exported once into ``work``)."""
    from affect_tf.export.saved_model import default_serving_base
    from affect_tf.model.default import default_model_path

    return {
        "shipped_tflite (default)": None,
        "shipped_keras": str(default_model_path()),
        "shipped_saved_model": str(default_serving_base(work / "cache")),
    }


def measure(quick: bool, cold: bool, work: Path, model: str | None = None) -> dict:
    from benchmarks.portraits import tight_portraits

    sets = tight_portraits(30 if quick else 100)
    files = write_photos(sets, work / "photos")
    all_files = [p for paths in files.values() for p in paths]
    result = {
        "set": {name: len(images) for name, images in sets.items()},
        "found": faces_found(sets),
        "end_to_end": photos_per_s(all_files, model, 1 if quick else 3),
        "end_to_end_portraits_only": photos_per_s(
            files["astronaut"] + files["synthaffect"], model, 1 if quick else 3
        ),
    }
    if cold:
        result["cold_start"] = cold_start(files["astronaut"][0], cold_start_models(work))
    return result


def markdown(result: dict) -> str:
    """The tables of ``docs/faces.md``'s tight-portrait section."""
    lines = ["| detector | " + " | ".join(result["set"]) + " | BlazeFace looks/photo |"]
    lines.append("|---|" + "---:|" * (len(result["set"]) + 1))
    for name, per in result["found"].items():
        cells = [f"{v['with_face']}/{v['photos']} ({v['found_by']})" for v in per.values()]
        looks = [v.get("blazeface_looks_per_photo") for v in per.values()]
        shown = " / ".join(f"{x:.2f}" for x in looks if x is not None) or "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {shown} |")
    for key in ("end_to_end", "end_to_end_portraits_only"):
        lines += [
            "",
            f"{key}:",
            "",
            "| detector | photos/s | ms/photo: decode / detect / align / model |",
        ]
        lines.append("|---|---:|---|")
        for name in DETECTORS:
            r = result[key][name]
            ms = r["stage_ms_per_photo"]
            lines.append(
                f"| {name} | {r['photos_per_s']:.1f} | "
                + " / ".join(f"{ms.get(k, 0):.2f}" for k in ("decode", "detect", "align", "model"))
                + " |"
            )
        lines.append(f"| default / mtcnn | {result[key]['default_over_mtcnn']:.2f}x | |")
    if "cold_start" in result:
        lines += ["", "| model | process start -> first result (s) | TensorFlow imported |"]
        lines.append("|---|---:|---|")
        for name, r in result["cold_start"].items():
            lines.append(f"| {name} | {r['seconds_median']:.2f} | {r['tensorflow_imported']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "photos.json"))
    parser.add_argument("--quick", action="store_true", help="30 portraits a set, one timing")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument(
        "--model", default=None, help="end to end with this model (default: shipped)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="affect-photos-") as work:
        result = measure(args.quick, not args.skip_cold_start, Path(work), args.model)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"JSON -> {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
