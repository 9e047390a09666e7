"""Does a decision rule tuned for macro F1 beat argmax on real faces? Per-class logit offsets
fitted on one half of FER+ Valid (coordinate ascent on macro F1), scored on the other half, and
the halves swapped (2-fold cross-fitting: the offsets never see the faces they are scored on),
for each model the defaults study trained (``benchmarks/ferplus_defaults.py``).

Needs FER+ and the study's models; without them, says so and exits 0.

    python -m benchmarks.ferplus_decision [--models 'runs/ferplus_defaults/recipe/preset_s*']
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np

from benchmarks.common import write_section
from benchmarks.ferplus import scores as test_scores
from benchmarks.ferplus_defaults import FERPLUS, ferplus_splits, save_results

GRID = np.linspace(-2.0, 2.0, 41)


def scores(logits: np.ndarray, labels: np.ndarray, offsets: np.ndarray) -> tuple[float, float]:
    """Macro F1 (8 classes, as ``evaluate`` reports it) and accuracy of
    ``argmax(logits + offsets)``."""
    result = test_scores(labels, np.argmax(logits + offsets, axis=1))
    return result["expr_f1"], result["expr_acc"]


def fit_offsets(logits: np.ndarray, labels: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-class additive offsets maximising macro F1 on these faces (coordinate ascent over
    ``GRID``, the first class held at 0: only differences matter)."""
    offsets = np.zeros(logits.shape[1])
    for _ in range(rounds):
        for c in range(1, logits.shape[1]):
            # Ties go to the smallest offset.
            best = max(
                GRID, key=lambda v: (scores(logits, labels, _with(offsets, c, v))[0], -abs(v))
            )
            offsets[c] = best
    return offsets


def _with(offsets: np.ndarray, c: int, value: float) -> np.ndarray:
    out = offsets.copy()
    out[c] = value
    return out


def cross_fit(logits: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Argmax vs fitted offsets, each half scored with the other half's offsets."""
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = np.array_split(order, 2)
    plain, tuned = [], []
    for fit_on, score_on in ((halves[0], halves[1]), (halves[1], halves[0])):
        offsets = fit_offsets(logits[fit_on], labels[fit_on])
        plain.append(scores(logits[score_on], labels[score_on], np.zeros(logits.shape[1])))
        tuned.append(scores(logits[score_on], labels[score_on], offsets))
    mean = lambda runs, i: float(np.mean([r[i] for r in runs]))  # noqa: E731
    return {
        "argmax": {"expr_f1": mean(plain, 0), "expr_acc": mean(plain, 1)},
        "tuned": {"expr_f1": mean(tuned, 0), "expr_acc": mean(tuned, 1)},
    }


def valid_logits(model_path: str, valid: str) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities and majority labels of the labelled Valid faces."""
    from affect_tf.model.loading import load_model
    from affect_tf.training.tfrecords import run_model

    run = run_model(load_model(model_path, compile=False), [valid])
    mask = run["t_expression"][:, 1] > 0
    labels = run["t_expression"][mask, 0].astype(int)
    return np.log(np.clip(run["expression"][mask], 1e-7, 1.0)), labels


def markdown(results: dict) -> str:
    lines = [
        "Per-class logit offsets fitted for macro F1 on one half of FER+ Valid, scored on the "
        "other (2-fold cross-fitting), `python -m benchmarks.ferplus_decision --models "
        "'runs/ferplus_defaults/imbalance/*'`; one row per model of the defaults study's "
        "imbalance arms (demo preset, 8,000 FER+ Train faces, 6 epochs; arm_seed).",
        "",
        "| model | argmax macro F1 | tuned macro F1 | argmax accuracy | tuned accuracy |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        lines.append(
            f"| {name} | {r['argmax']['expr_f1']:.3f} | {r['tuned']['expr_f1']:.3f} | "
            f"{r['argmax']['expr_acc']:.3f} | {r['tuned']['expr_acc']:.3f} |"
        )
    arms = sorted({name.rsplit("_s", 1)[0] for name in results["models"]})
    lines.append("")
    for arm in arms:
        gain = [
            r["tuned"]["expr_f1"] - r["argmax"]["expr_f1"]
            for name, r in results["models"].items()
            if name.rsplit("_s", 1)[0] == arm
        ]
        lines.append(f"- {arm}: macro F1 gain {np.mean(gain):+.3f} ± {np.std(gain):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(FERPLUS))
    parser.add_argument("--models", default="runs/ferplus_defaults/recipe/preset_s*")
    parser.add_argument("--out", default="runs/ferplus_defaults")
    parser.add_argument("--json", default="benchmarks/results/ferplus_decision.json")
    parser.add_argument("--md", default="docs/results.md")
    args = parser.parse_args(argv)
    files = ferplus_splits(args.root, Path(args.out), ("validation",))
    if files is None:
        return 0
    models = sorted(glob.glob(str(Path(args.models) / "model.keras")))
    if not models:
        print(f"no models at {args.models} (run benchmarks.ferplus_defaults first): skipped")
        return 0
    results = {"models": {}}
    for path in models:
        logits, labels = valid_logits(path, files[0])
        results["models"][Path(path).parent.name] = cross_fit(logits, labels)
        print(Path(path).parent.name, json.dumps(results["models"][Path(path).parent.name]))
    save_results(Path(args.json), results)
    write_section(args.md, "ferplus_decision", markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
