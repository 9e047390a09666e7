"""The evaluation report over a whole dataset (NumPy): exact ABAW scores from the sufficient
statistics of ``affect_tf.evaluation.metrics``, which tasks were measured, the trivial
baselines of the same labels, and the blessing rule (``gate``) built on them.

``AffectEvaluator`` backs ``affect-tf evaluate``, the fit function's validation report and the
TFMA combiner of the pipeline's Evaluator, so the three agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS, NUM_EXPRESSIONS
from affect_tf.data import targets as tg
from affect_tf.evaluation.metrics import (
    CCC_STATS,
    accuracy_from_confusion,
    binary_counts,
    ccc_from_stats,
    ccc_stats,
    confusion_counts,
    f1_from_binary_counts,
    f1_from_confusion,
)

# The keys of the evaluation report (``affect-tf evaluate`` JSON; TFMA's metric names follow).
REPORT_KEYS = (
    "ccc_valence",
    "ccc_arousal",
    "va",
    "expr_f1",
    "expr_acc",
    "au_f1",
    "au_f1_per_au",
    "p_mtl",
    "n",
)

TASKS = ("va", "expression", "au")
# The report key of each task's score (what a gate, early stopping and P_MTL read).
TASK_SCORE = {"va": "va", "expression": "expr_f1", "au": "au_f1"}


def trivial_scores(confusion, au_counts, au_labelled) -> dict[str, float | None]:
    """The scores of the trivial predictors on the same labels (None where a task is unlabelled).

    - VA: a constant prediction has CCC 0.
    - Expression: always the majority class, scored as P_EXPR (macro F1 over the 8 classes).
    - AU: every AU always on; per labelled AU F1 = 2P / (2P + N), averaged over labelled AUs.
    """
    confusion = np.asarray(confusion, np.float64)
    class_counts = confusion.sum(axis=1)
    total = class_counts.sum()
    expr = None
    if total > 0:
        majority = class_counts.max()
        expr = float(2 * majority / (majority + total) / NUM_EXPRESSIONS)
    labelled = np.asarray(au_labelled, np.float64)
    au = None
    if labelled.sum() > 0:
        positives = np.asarray(au_counts, np.float64)[0] + np.asarray(au_counts, np.float64)[2]
        negatives = labelled - positives
        per_au = np.where(
            2 * positives + negatives > 0,
            2 * positives / np.maximum(2 * positives + negatives, 1),
            0,
        )
        au = float(per_au[labelled > 0].mean())
    return {"va": 0.0, "expr_f1": expr, "au_f1": au}


class AffectEvaluator:
    """Accumulates the statistics of predictions vs targets; ``result()`` gives the ABAW report.

    Used by ``affect-tf evaluate``; the same functions back the Keras metrics and TFMA.
    A task with no labelled example is *not measured*: its scores are None (``null`` in JSON),
    never 0, and P_MTL sums the measured tasks only (``tasks_measured`` says which).
    """

    def __init__(self, au_thresholds: float | Sequence[float] = 0.5) -> None:
        self.thresholds = np.broadcast_to(np.asarray(au_thresholds, np.float64), (NUM_AUS,))
        self.ccc = np.zeros((CCC_STATS, 2))
        self.confusion = np.zeros((NUM_EXPRESSIONS, NUM_EXPRESSIONS))
        self.au = np.zeros((3, NUM_AUS))
        # Labelled examples per AU (tp + fp + fn + tn) and examples with any AU labelled.
        self.au_labelled = np.zeros(NUM_AUS)
        self.au_examples = 0
        self.n = 0

    def update(self, va, expression_probs, au_probs, targets: dict) -> None:
        """Adds a batch: predicted VA ``(B, 2)``, expression/AU probabilities, packed targets."""
        va_true, va_mask = np.asarray(targets[tg.VA])[:, :2], np.asarray(targets[tg.VA])[:, 2]
        expr = np.asarray(targets[tg.EXPRESSION])
        au = np.asarray(targets[tg.AU])
        self.ccc += ccc_stats(va_true, va, va_mask)
        self.confusion += confusion_counts(
            expr[:, 0], np.argmax(expression_probs, axis=-1), expr[:, 1]
        )
        preds = (np.asarray(au_probs) >= self.thresholds).astype(np.float64)
        au_mask = au[:, NUM_AUS:]
        self.au += binary_counts(au[:, :NUM_AUS], preds, au_mask)
        self.au_labelled += (au_mask > 0).sum(axis=0)
        self.au_examples += int((au_mask > 0).any(axis=1).sum())
        self.n += len(va_true)

    def merge(self, other: AffectEvaluator) -> AffectEvaluator:
        """Adds another evaluator's statistics (same thresholds): the result is exact, as if
        one evaluator had seen both halves (how TFMA's Beam combiner merges workers)."""
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError(
                "Expected evaluators with the same AU thresholds. "
                f"Received: {self.thresholds.tolist()} and {other.thresholds.tolist()}"
            )
        self.ccc += other.ccc
        self.confusion += other.confusion
        self.au += other.au
        self.au_labelled += other.au_labelled
        self.au_examples += other.au_examples
        self.n += other.n
        return self

    def result(self) -> dict:
        """The report: scores (None for a task not measured), per class / per AU F1, counts,
        the trivial baselines of the same labels and each measured score's gain over them."""
        n_labelled = {
            "va": int(self.ccc[0, 0]),
            "expression": int(self.confusion.sum()),
            "au": int(self.au_examples),
        }
        measured = [task for task in TASKS if n_labelled[task] > 0]
        ccc = ccc_from_stats(self.ccc)
        f1 = f1_from_confusion(self.confusion)
        au_f1 = f1_from_binary_counts(self.au)
        au_measured = self.au_labelled > 0
        has = {task: task in measured for task in TASKS}
        out = {
            "ccc_valence": float(ccc[0]) if has["va"] else None,
            "ccc_arousal": float(ccc[1]) if has["va"] else None,
            "va": float(ccc.mean()) if has["va"] else None,
            "expr_f1": float(f1.mean()) if has["expression"] else None,
            "expr_acc": (
                float(accuracy_from_confusion(self.confusion)) if has["expression"] else None
            ),
            "expr_f1_per_class": {
                name: float(v) if has["expression"] else None
                for name, v in zip(EXPRESSIONS, f1, strict=True)
            },
            "au_f1": float(au_f1[au_measured].mean()) if has["au"] else None,
            "au_f1_per_au": {
                name: float(v) if ok else None
                for name, v, ok in zip(AUS, au_f1, au_measured, strict=True)
            },
            "n": int(self.n),
            "n_labelled": n_labelled,
            "tasks_measured": measured,
        }
        trivial = trivial_scores(self.confusion, self.au, self.au_labelled)
        out["trivial"] = {TASK_SCORE[t]: trivial[TASK_SCORE[t]] for t in measured}
        out["gain"] = {k: out[k] - v for k, v in out["trivial"].items()}
        out["p_mtl"] = float(sum(out[TASK_SCORE[t]] for t in measured)) if measured else None
        return out


def format_report(m: dict) -> str:
    """One line of a report: ``P_MTL ... = VA ... + EXPR F1 ... + AU F1 ...``, ``n/a`` for a
    task not measured and the labelled count of each task."""

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    counts = m.get("n_labelled") or {}
    tasks = m.get("tasks_measured")
    over = "" if tasks is None or len(tasks) == 3 else f" (over {', '.join(tasks) or 'nothing'})"
    return (
        f"P_MTL {fmt(m.get('p_mtl'))}{over} = VA {fmt(m.get('va'))} (CCC V "
        f"{fmt(m.get('ccc_valence'))}, A {fmt(m.get('ccc_arousal'))}; n={counts.get('va', '?')})"
        f" + EXPR F1 {fmt(m.get('expr_f1'))} (acc {fmt(m.get('expr_acc'))}; "
        f"n={counts.get('expression', '?')}) + AU F1 {fmt(m.get('au_f1'))} "
        f"(n={counts.get('au', '?')})"
    )


# Value-threshold names (``PipelineConfig.thresholds``, ``affect-tf evaluate --threshold``) and
# the task each one needs labels of (``p_mtl``: whichever tasks are measured).
THRESHOLD_TASK = {
    "ccc_valence": "va",
    "ccc_arousal": "va",
    "expr_f1": "expression",
    "au_f1": "au",
    "p_mtl": None,
}
# The default gate: every measured task's score at least this much above its trivial baseline.
DEFAULT_MIN_GAIN = 0.02


def gate(
    report: dict, thresholds: dict[str, float] | None = None, min_gain: float = DEFAULT_MIN_GAIN
) -> tuple[list[str], list[str]]:
    """The blessing rule on one report, on the tasks it measured: ``(failures, notes)``.

    - Relative (the default): each measured task's score must be at least ``min_gain`` above
      the trivial predictor's on the same labels (``report["trivial"]``); ``min_gain=-1``
      turns it off (no CCC or F1 gain is below -1).
    - Absolute: each value threshold applies when its task is measured; a threshold on a task
      the split does not label is ignored, and a note says so.
    - Nothing measured at all is a failure.

    Used by ``affect-tf evaluate``, the TFMA metric of the pipeline's Evaluator (as the
    ``gate_failures`` count) and the pipeline summary, so all three apply the same rule.
    """
    failures: list[str] = []
    notes: list[str] = []
    measured = report.get("tasks_measured") or []
    counts = report.get("n_labelled") or {}
    if not measured:
        return ["no task is measured: the split has no labelled example of any task"], notes
    for score, trivial in (report.get("trivial") or {}).items():
        value = report[score]
        if value < trivial + min_gain:
            failures.append(
                f"{score} = {value:.4f} < trivial baseline {trivial:.4f} + {min_gain:.4f}"
            )
    for name, bound in (thresholds or {}).items():
        if name not in THRESHOLD_TASK:
            raise ValueError(
                f"Expected threshold names from {sorted(THRESHOLD_TASK)}. Received: {name!r}"
            )
        task = THRESHOLD_TASK[name]
        if task is not None and task not in measured:
            notes.append(
                f"threshold {name} >= {bound} ignored: the split has no {task} labels "
                f"(n={counts.get(task, 0)}), so {name} is not measured"
            )
            continue
        value = report[name]
        if value < bound:
            over = "" if task else f" (over {', '.join(measured)})"
            failures.append(f"{name} = {value:.4f} < threshold {bound:.4f}{over}")
    return failures, notes


def tune_au_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    grid: Sequence[float] = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2)),
) -> np.ndarray:
    """Per-AU thresholds maximising each AU's F1 on a validation set (ties: closest to 0.5).

    Args:
        probs, labels, mask: ``(N, 12)`` probabilities, 0/1 occurrences, validity flags.
        grid: Candidate thresholds.

    Returns:
        ``(12,)`` thresholds (0.5 for an AU with no labelled example).
    """
    probs, labels, mask = (np.asarray(a, np.float64) for a in (probs, labels, mask))
    best = np.full(probs.shape[1], 0.5)
    for k in range(probs.shape[1]):
        if mask[:, k].sum() == 0:
            continue
        scores = []
        for t in grid:
            counts = binary_counts(
                labels[:, k : k + 1], probs[:, k : k + 1] >= t, mask[:, k : k + 1]
            )
            scores.append((f1_from_binary_counts(counts)[0], -abs(t - 0.5), t))
        best[k] = max(scores)[2]
    return best


def evaluate_run(run: dict, au_thresholds: float | Sequence[float] = 0.5) -> dict:
    """The report of predictions and packed targets (``run``: ``va``, ``expression``, ``au``
    probabilities and ``t_va``, ``t_expression``, ``t_au`` targets, as NumPy arrays)."""
    evaluator = AffectEvaluator(au_thresholds)
    targets = {tg.VA: run["t_va"], tg.EXPRESSION: run["t_expression"], tg.AU: run["t_au"]}
    evaluator.update(run[tg.VA], run[tg.EXPRESSION], run[tg.AU], targets)
    result = evaluator.result()
    result["au_thresholds"] = np.broadcast_to(np.asarray(au_thresholds, float), (NUM_AUS,)).tolist()
    return result


def tuned_au_thresholds(run: dict) -> list[float]:
    """Per-AU thresholds that maximise each AU's F1 on a (validation) run."""
    labels, masks = run["t_au"][:, :NUM_AUS], run["t_au"][:, NUM_AUS:]
    return tune_au_thresholds(run[tg.AU], labels, masks).tolist()
