"""ABAW metrics, exact over a whole dataset, in three layers.

1. **Sufficient statistics** of a batch (plain functions, NumPy or ``keras.ops``): for CCC the
   sums ``n, Σx, Σy, Σx², Σy², Σxy`` per dimension; for expressions the 8x8 confusion counts; for
   AUs the per-AU ``tp, fp, fn``. Statistics of two parts of a dataset **merge by addition**.
2. **Statistics -> metric** (plain functions): CCC, macro F1 and accuracy, mean AU F1, P_MTL.
3. **Keras 3 metrics** (``add_variable`` / ``update_state`` / ``result`` / ``reset_state``) that
   accumulate (1) in float64 variables and report (2). ``affect_tf.evaluation.report`` (the
   whole-dataset report: ``affect-tf evaluate``, the TFMA combiners of the TFX pipeline) calls
   the same (1) and (2) with NumPy, so training, ``affect-tf evaluate`` and TFMA agree.

Masks are respected everywhere: a masked-out target adds nothing to any statistic.
Definitions (ABAW): CCC = 2ρσxσy / (σx² + σy² + (μx − μy)²); P_EXPR = macro F1 over the 8
classes (a class never labelled nor predicted scores 0, as sklearn with ``labels=range(8)`` and
``zero_division=0``); P_AU = mean binary F1 over the 12 AUs; P_VA = (CCC_V + CCC_A) / 2;
P_MTL = P_VA + P_EXPR + P_AU.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from affect_tf.core.labels import NUM_AUS, NUM_EXPRESSIONS
from affect_tf.data import targets as tg

CCC_STATS = 6  # n, Σx, Σy, Σx², Σy², Σxy


# --- (1) sufficient statistics ---------------------------------------------------------------


def _f64(value, xp):
    """``value`` as float64 in the namespace's own array type."""
    return np.asarray(value, dtype="float64") if xp is np else ops.cast(value, "float64")


def ccc_stats(y_true, y_pred, mask, xp=np):
    """Per-dimension CCC sufficient statistics of a batch.

    Args:
        y_true, y_pred: ``(B, D)`` values.
        mask: ``(B,)`` or ``(B, D)``, 1 where the target is valid.
        xp: ``numpy`` or ``keras.ops``.

    Returns:
        ``(6, D)``: n, Σx, Σy, Σx², Σy², Σxy (x = truth, y = prediction).
    """
    y_true, y_pred, mask = _f64(y_true, xp), _f64(y_pred, xp), _f64(mask, xp)
    if len(mask.shape) == 1:
        mask = mask[:, None] * xp.ones_like(y_true)
    # Zero the masked values first: a masked NaN must not poison the sums.
    x = xp.where(mask > 0, y_true, 0.0)
    y = xp.where(mask > 0, y_pred, 0.0)
    return xp.stack(
        [
            xp.sum(mask, axis=0),
            xp.sum(x * mask, axis=0),
            xp.sum(y * mask, axis=0),
            xp.sum(x * x * mask, axis=0),
            xp.sum(y * y * mask, axis=0),
            xp.sum(x * y * mask, axis=0),
        ]
    )


def _one_hot(indices, depth: int, xp):
    if xp is np:
        return np.eye(depth, dtype="float64")[np.asarray(indices, dtype=np.int64)]
    return ops.one_hot(ops.cast(indices, "int32"), depth, dtype="float64")


def confusion_counts(labels, preds, mask, num_classes: int = NUM_EXPRESSIONS, xp=np):
    """``(C, C)`` confusion counts (rows = truth, columns = prediction) of the valid examples."""
    mask = _f64(mask, xp)
    # A masked label may hold anything (0 by contract); clip it into range, the mask zeroes it.
    if xp is np:
        labels = np.clip(np.asarray(labels, np.int64), 0, num_classes - 1)
    else:
        labels = ops.clip(ops.cast(labels, "int32"), 0, num_classes - 1)
    truth = _one_hot(labels, num_classes, xp) * mask[:, None]
    guess = _one_hot(preds, num_classes, xp)
    return xp.matmul(xp.transpose(truth), guess)


def binary_counts(labels, preds, mask, xp=np):
    """``(3, K)`` tp, fp, fn per label of multi-label 0/1 ``labels``/``preds`` ``(B, K)``."""
    labels, preds, mask = _f64(labels, xp), _f64(preds, xp), _f64(mask, xp)
    tp = xp.sum(labels * preds * mask, axis=0)
    fp = xp.sum((1.0 - labels) * preds * mask, axis=0)
    fn = xp.sum(labels * (1.0 - preds) * mask, axis=0)
    return xp.stack([tp, fp, fn])


# --- (2) statistics -> metric ----------------------------------------------------------------


def ccc_from_stats(stats, xp=np):
    """CCC per dimension from ``(6, D)`` statistics; 0 where there is no data or no variance."""
    n, sx, sy, sxx, syy, sxy = (stats[i] for i in range(CCC_STATS))
    safe_n = xp.maximum(n, 1.0)
    mx, my = sx / safe_n, sy / safe_n
    vx = xp.maximum(sxx / safe_n - mx * mx, 0.0)
    vy = xp.maximum(syy / safe_n - my * my, 0.0)
    cov = sxy / safe_n - mx * my
    denom = vx + vy + (mx - my) ** 2
    ok = (n > 0) & (denom > 1e-12)
    return xp.where(ok, 2.0 * cov / xp.where(ok, denom, 1.0), 0.0)


def f1_from_confusion(confusion, xp=np):
    """Per-class F1 ``(C,)`` from confusion counts (0 for a class never labelled nor predicted)."""
    tp = xp.diagonal(confusion) if xp is np else ops.diagonal(confusion)
    fp = xp.sum(confusion, axis=0) - tp
    fn = xp.sum(confusion, axis=1) - tp
    denom = 2 * tp + fp + fn
    return xp.where(denom > 0, 2 * tp / xp.maximum(denom, 1e-12), 0.0)


def accuracy_from_confusion(confusion, xp=np):
    """Accuracy from confusion counts (0 when empty)."""
    tp = xp.diagonal(confusion) if xp is np else ops.diagonal(confusion)
    total = xp.sum(confusion)
    return xp.where(total > 0, xp.sum(tp) / xp.maximum(total, 1e-12), 0.0)


def f1_from_binary_counts(counts, xp=np):
    """Per-label F1 ``(K,)`` from ``(3, K)`` tp, fp, fn (0 where tp + fp + fn = 0)."""
    tp, fp, fn = counts[0], counts[1], counts[2]
    denom = 2 * tp + fp + fn
    return xp.where(denom > 0, 2 * tp / xp.maximum(denom, 1e-12), 0.0)


def p_mtl(ccc_valence: float, ccc_arousal: float, expr_f1: float, au_f1: float) -> float:
    """ABAW multi-task score: (CCC_V + CCC_A)/2 + macro F1 + mean AU F1."""
    return (ccc_valence + ccc_arousal) / 2.0 + expr_f1 + au_f1


# --- (3) Keras 3 metrics ---------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="affect_tf")
class ConcordanceCorrelation(keras.metrics.Metric):
    """Exact dataset CCC of the ``va`` output (not a mean of per-batch CCCs).

    Args:
        dimension: ``None`` for the mean of valence and arousal, 0 for valence, 1 for arousal.
    """

    def __init__(self, dimension: int | None = None, name: str = "ccc", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if dimension not in (None, 0, 1):
            raise ValueError(f"Expected dimension None, 0 or 1. Received: dimension={dimension!r}")
        self.dimension = dimension
        self.stats = self.add_variable(
            shape=(CCC_STATS, 2), initializer="zeros", dtype="float64", name="stats"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        values, mask = tg.split_va(y_true)
        self.stats.assign_add(ccc_stats(values, y_pred, mask, xp=ops))

    def result(self):
        ccc = ccc_from_stats(self.stats, xp=ops)
        value = ops.mean(ccc) if self.dimension is None else ccc[self.dimension]
        return ops.cast(value, self.dtype)

    def reset_state(self):
        self.stats.assign(ops.zeros_like(self.stats))

    def get_config(self):
        return {**super().get_config(), "dimension": self.dimension}


@keras.saving.register_keras_serializable(package="affect_tf")
class ExpressionF1(keras.metrics.Metric):
    """Exact macro F1 over the 8 expressions (``average="macro"``) or accuracy, masked."""

    def __init__(self, average: str = "macro", name: str = "f1", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if average not in ("macro", "accuracy"):
            raise ValueError(
                f"Expected average 'macro' or 'accuracy'. Received: average={average!r}"
            )
        self.average = average
        self.confusion = self.add_variable(
            shape=(NUM_EXPRESSIONS, NUM_EXPRESSIONS),
            initializer="zeros",
            dtype="float64",
            name="confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, mask = tg.split_expression(y_true)
        preds = ops.argmax(y_pred, axis=-1)
        self.confusion.assign_add(confusion_counts(labels, preds, mask, xp=ops))

    def result(self):
        if self.average == "accuracy":
            value = accuracy_from_confusion(self.confusion, xp=ops)
        else:
            value = ops.mean(f1_from_confusion(self.confusion, xp=ops))
        return ops.cast(value, self.dtype)

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "average": self.average}


@keras.saving.register_keras_serializable(package="affect_tf")
class AUMeanF1(keras.metrics.Metric):
    """Exact mean binary F1 over the 12 AUs, with per-AU thresholds on the probabilities.

    Args:
        thresholds: 12 thresholds (or one for all); 0.5 by default.
        from_logits: Whether ``y_pred`` holds logits (the model's ``au`` output) or probabilities.
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] = 0.5,
        from_logits: bool = True,
        name: str = "au_f1",
        dtype=None,
        **kwargs,
    ):
        super().__init__(name=name, dtype=dtype, **kwargs)
        values = (
            [float(thresholds)] * NUM_AUS
            if np.isscalar(thresholds)
            else [float(t) for t in thresholds]
        )
        if len(values) != NUM_AUS:
            raise ValueError(
                f"Expected 1 or {NUM_AUS} thresholds. Received: {len(values)} thresholds"
            )
        self.thresholds = values
        self.from_logits = from_logits
        self.counts = self.add_variable(
            shape=(3, NUM_AUS), initializer="zeros", dtype="float64", name="counts"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, mask = tg.split_au(y_true)
        probs = ops.sigmoid(y_pred) if self.from_logits else y_pred
        preds = ops.cast(probs >= ops.convert_to_tensor(self.thresholds, probs.dtype), "float64")
        self.counts.assign_add(binary_counts(labels, preds, mask, xp=ops))

    def result(self):
        return ops.cast(ops.mean(f1_from_binary_counts(self.counts, xp=ops)), self.dtype)

    def reset_state(self):
        self.counts.assign(ops.zeros_like(self.counts))

    def get_config(self):
        return {
            **super().get_config(),
            "thresholds": list(self.thresholds),
            "from_logits": self.from_logits,
        }


def training_metrics() -> dict[str, list[keras.metrics.Metric]]:
    """The metrics ``AffectModel.compile`` attaches per output (names become log keys)."""
    return {
        tg.VA: [
            ConcordanceCorrelation(0, name="ccc_valence"),
            ConcordanceCorrelation(1, name="ccc_arousal"),
        ],
        tg.EXPRESSION: [ExpressionF1("macro", name="f1"), ExpressionF1("accuracy", name="acc")],
        tg.AU: [AUMeanF1(name="f1")],
    }
