"""Ablation tables and plots: mean ± std per arm and metric over seeds, which arms differ
from the reference by more than the seed spread, bars with error bars, smoothing curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

METRICS = ("p_mtl", "va", "expr_f1", "expr_acc", "au_f1")
SMOOTHING_WINDOWS = (1, 3, 5, 9, 15, 21, 31)


def summarise(results: dict[str, list[dict]]) -> dict:
    """Mean ± std per arm and metric over seeds, and which arms differ from the reference (the
    first) by more than the seed spread (the larger of the two stds)."""
    arms = list(results)
    table: dict = {}
    for arm in arms:
        table[arm] = {}
        for metric in METRICS:
            values = [r[metric] for r in results[arm] if r.get(metric) is not None]
            if values:
                table[arm][metric] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                    "n": len(values),
                }
    reference = table[arms[0]]
    for arm in arms[1:]:
        for metric, cell in table[arm].items():
            if metric in reference:
                ref = reference[metric]
                spread = max(cell["std"], ref["std"])
                cell["diff"] = cell["mean"] - ref["mean"]
                cell["beyond_spread"] = bool(abs(cell["diff"]) > spread and cell["n"] > 1)
    return table


def markdown(study: str, table: dict) -> str:
    """The study's table: mean ± std per metric, ``*`` where an arm differs from the reference
    by more than the seed spread."""
    metrics = [m for m in METRICS if any(m in row for row in table.values())]
    lines = [
        f"| {study} arm | " + " | ".join(metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for arm, row in table.items():
        cells = []
        for m in metrics:
            c = row.get(m)
            cells.append(
                "-"
                if c is None
                else f"{c['mean']:.3f} ± {c['std']:.3f}" + (" *" if c.get("beyond_spread") else "")
            )
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Mean ± std over seeds; `*`: differs from `{next(iter(table))}` by more than the larger "
        "of the two seed spreads."
    )
    return "\n".join(lines)


def smoothing_markdown(curves: dict) -> str:
    """The smoothing study's table: each task's metric per window k, mean and median."""
    metrics = list(curves["mean"])
    lines = ["| window | " + " | ".join(f"{m} mean / median" for m in metrics) + " |"]
    lines.append("|---:|" + "---|" * len(metrics))
    for i, k in enumerate(SMOOTHING_WINDOWS):
        cells = []
        for m in metrics:
            a, b = curves["mean"][m][i], curves["median"][m][i]
            cells.append(f"{a['mean']:.3f} ± {a['std']:.3f} / {b['mean']:.3f} ± {b['std']:.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(study: str, table: dict, path: Path) -> Path:
    """Bars with error bars, one group per metric, one bar per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(m in row for row in table.values())]
    arms = list(table)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(metrics), 3.6))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        means = [table[arm].get(m, {}).get("mean", np.nan) for m in metrics]
        stds = [table[arm].get(m, {}).get("std", 0.0) for m in metrics]
        ax.bar(np.arange(len(metrics)) + i * width, means, width, yerr=stds, capsize=3, label=arm)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(arms) - 1) / 2, metrics)
    ax.set_title(f"ablation: {study} (mean ± std over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_smoothing(curves: dict, path: Path) -> Path:
    """Metric vs window k per task, mean and median."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("va", "expr_f1", "au_f1") if m in curves["mean"]]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4 * max(len(metrics), 1), 3.2))
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=False):
        for method, style in (("mean", "-o"), ("median", "--s")):
            rows = curves[method][metric]
            k = [r["k"] for r in rows]
            ax.errorbar(k, [r["mean"] for r in rows], [r["std"] for r in rows], fmt=style,
                        capsize=3, label=method)  # fmt: skip
        ax.set_xlabel("window k (frames)")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
