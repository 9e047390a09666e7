"""Ships the shipped model as TFLite too: ``affect_tf/model/default_model/affect.tflite``.

What ``predict``, ``video`` and ``AffectRecognizer()`` read faces with by default: LiteRT,
OpenCV and NumPy alone start in under a second, where loading TensorFlow for the ``.keras``
file takes seconds. fp32 (the same answers as the ``.keras`` file; fp16 is no faster on a CPU and
int8 changes answers, ``docs/results.md``). Converted from the SavedModel of the ``.keras`` file
(``affect_tf.export.tflite.convert``), then checked against it through the whole local reader
(detector, NumPy alignment, model): FER+ Test read end to end by both (when FER+ is here),
SynthAffect renders and the astronaut. The card gains a ``tflite`` entry (file, SHA-256, size,
the agreement measured).

    python -m benchmarks.shipped_tflite [--ferplus ../shared/data/ferplus] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.ferplus_defaults import FERPLUS

COLUMNS_VA = ("valence", "arousal")


def _images(root: Path, limit: int | None) -> tuple[list, list, str]:
    """FER+ Test images and their majority labels, or SynthAffect renders (no labels)."""
    if (root / "FER2013Test" / "label.csv").is_file():
        from affect_tf.core.labels import EXPRESSIONS
        from affect_tf.data import read_corpus

        samples = list(read_corpus("ferplus", root, "test"))[:limit]
        labels = [EXPRESSIONS[s.expression] if s.expression is not None else None for s in samples]
        return [str(s.path) for s in samples], labels, "FER+ Test"
    from affect_tf.data.synth import SynthConfig, iter_frames

    config = SynthConfig(n=limit or 256, size=128, frames_per_video=1, seed=11)
    return [f.image for _, _, f in iter_frames(config)], [], "SynthAffect renders (FER+ absent)"


def compare(keras_path: Path, tflite_path: Path, images: list, detector: str) -> dict:
    """Both models through ``AffectRecognizer.predict_images`` on the same images."""
    from affect_tf.core.labels import AUS, EXPRESSIONS
    from affect_tf.inference import AffectRecognizer

    tables = {}
    for name, path in (("keras", keras_path), ("tflite", tflite_path)):
        recognizer = AffectRecognizer.load(path, detector=detector)
        start = time.perf_counter()
        tables[name] = recognizer.predict_images(images, faces="largest")
        tables[name].attrs["seconds"] = time.perf_counter() - start
    a, b = tables["keras"], tables["tflite"]
    if list(a["source"]) != list(b["source"]):
        raise SystemExit("Expected the same faces from both models. Received: different rows")
    return {
        "faces": len(a),
        "expression_agreement": float(np.mean(a["expression"] == b["expression"])),
        "au_decision_agreement": float(
            np.mean((a[list(AUS)].to_numpy() >= 0.5) == (b[list(AUS)].to_numpy() >= 0.5))
        ),
        "max_abs_va_diff": float(np.abs(a[list(COLUMNS_VA)] - b[list(COLUMNS_VA)]).max().max()),
        "max_abs_prob_diff": float(np.abs(a[list(EXPRESSIONS)] - b[list(EXPRESSIONS)]).max().max()),
        "seconds": {k: round(t.attrs["seconds"], 2) for k, t in tables.items()},
        "tables": tables,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ferplus", default=str(FERPLUS), help="FER+ folder (for the check)")
    parser.add_argument("--work", default="", help="scratch folder (default: a temporary one)")
    parser.add_argument("--limit", type=int, default=None, help="check on this many images")
    args = parser.parse_args(argv)
    from skimage import data as skdata

    from affect_tf.core.layout import latest_version
    from affect_tf.export.saved_model import default_serving_base
    from affect_tf.export.tflite import convert
    from affect_tf.model import default as shipped

    work = Path(args.work or tempfile.mkdtemp(prefix="affect-shipped-tflite-"))
    keras_path = shipped.default_model_path()
    saved_model = latest_version(default_serving_base(work / "cache"))
    tflite_path = shipped.MODEL_DIR / shipped.TFLITE_FILE
    tflite_path.write_bytes(convert(saved_model, "fp32"))
    images, labels, what = _images(Path(args.ferplus), args.limit)
    detector = "none" if labels else "blazeface"
    check = compare(keras_path, tflite_path, images, detector)
    tables = check.pop("tables")
    astronaut = compare(keras_path, tflite_path, [skdata.astronaut()], "blazeface")
    astronaut.pop("tables")
    accuracy = {}
    if labels:
        truth = dict(zip(images, labels, strict=True))
        for name, table in tables.items():
            pairs = [
                (truth[s], e)
                for s, e in zip(table["source"], table["expression"], strict=True)
                if truth[s]
            ]
            accuracy[name] = float(np.mean([t == e for t, e in pairs]))
    card = shipped.read_card()
    card["tflite"] = {
        "file": shipped.TFLITE_FILE,
        "sha256": shipped.file_sha256(tflite_path),
        "size_mb": round(tflite_path.stat().st_size / 2**20, 2),
        "variant": "fp32",
        "checked_on": what,
        "agreement_with_keras": check,
        "expression_accuracy": accuracy,
        "astronaut_agreement": astronaut,
    }
    (shipped.MODEL_DIR / shipped.CARD_FILE).write_text(json.dumps(card, indent=1, default=float))
    print(json.dumps(card["tflite"], indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
