"""Masked multi-task losses: CCC (or MSE) for VA, cross-entropy (or focal) for expressions,
(weighted) BCE for AUs.

Each loss is a pure function of ``(y_true, y_pred)`` in the packed target layout of
``affect_tf.data.targets``; ``AffectModel.compute_loss`` calls ``affect_loss``. They are batch
statistics, not per-example values (CCC is a correlation over the batch; a masked mean divides by
the batch's labelled count), so they are deliberately not ``keras.losses.Loss`` classes, whose
contract (per-example values that Keras reduces, ``sample_weight``) they could not honour.
Masked-out targets contribute nothing; a batch where a task is masked everywhere gives that
task a loss of exactly 0 (never NaN), so its head receives no gradient from that batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import ops

from affect_tf.core.labels import NUM_AUS, NUM_EXPRESSIONS
from affect_tf.data import targets as tg

_EPS = 1e-7


def _masked_mean(values, weights):
    """Σ w·v / Σ w, and 0 (with zero gradient) when Σ w = 0."""
    total = ops.sum(weights)
    return ops.where(total > 0, ops.sum(values * weights) / ops.maximum(total, _EPS), 0.0)


def ccc_loss(y_true, y_pred):
    """1 − CCC averaged over valence and arousal, over the valid examples of the batch.

    Args:
        y_true: ``(B, 3)`` valence, arousal, va_mask.
        y_pred: ``(B, 2)`` predicted valence, arousal.

    Returns:
        A scalar; 0 when no example of the batch has VA.
    """
    values, mask = tg.split_va(ops.cast(y_true, "float32"))
    y_pred = ops.cast(y_pred, "float32")
    w = mask[:, None]
    n = ops.sum(mask)
    safe_n = ops.maximum(n, 1.0)
    x = ops.where(w > 0, values, 0.0)
    y = ops.where(w > 0, y_pred, 0.0)
    mx = ops.sum(x * w, axis=0) / safe_n
    my = ops.sum(y * w, axis=0) / safe_n
    vx = ops.sum(((x - mx) ** 2) * w, axis=0) / safe_n
    vy = ops.sum(((y - my) ** 2) * w, axis=0) / safe_n
    cov = ops.sum((x - mx) * (y - my) * w, axis=0) / safe_n
    ccc = 2.0 * cov / (vx + vy + (mx - my) ** 2 + _EPS)
    return ops.where(n > 0, 1.0 - ops.mean(ccc), 0.0)


def masked_mse(y_true, y_pred):
    """Mean squared error of valence and arousal over the valid examples of the batch (the
    alternative to ``ccc_loss`` that Kollias et al. compare it with).

    Args:
        y_true: ``(B, 3)`` valence, arousal, va_mask.
        y_pred: ``(B, 2)`` predicted valence, arousal.

    Returns:
        A scalar; 0 when no example of the batch has VA.
    """
    values, mask = tg.split_va(ops.cast(y_true, "float32"))
    y_pred = ops.cast(y_pred, "float32")
    per_example = ops.mean(ops.square(ops.where(mask[:, None] > 0, values - y_pred, 0.0)), -1)
    return _masked_mean(per_example, mask)


def masked_cross_entropy(
    y_true,
    y_pred,
    class_weights: Sequence[float] | None = None,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
    logit_offsets: Sequence[float] | None = None,
    soft_labels: bool = True,
    focal_gamma: float = 0.0,
):
    """Softmax cross-entropy over the 8 expressions, averaged over the valid examples.

    Args:
        y_true: ``(B, 10)`` class index, expr_mask, 8-class distribution (``(B, 2)``: no
            distributions).
        y_pred: ``(B, 8)`` logits (or probabilities with ``from_logits=False``).
        class_weights: Per-class weights (e.g. inverse frequency); the mean is weighted by them.
        label_smoothing: Mass moved uniformly onto all classes.
        logit_offsets: Added to the logits inside the loss only (logit adjustment, Menon et
            al. 2021: ``τ·log π_c`` with the training class priors π), so that the raw logits
            the model outputs are balanced across classes.
        soft_labels: Train on an example's distribution (``targets.expression_distribution``:
            the annotators' votes) where it has one, on its class where not (the FER+ paper's
            cross-entropy scheme); False: always on the class.
        focal_gamma: The focal loss (Lin et al. 2017): each class term is scaled by
            ``(1 - p)^gamma``, so well-classified examples count less. 0: cross-entropy.
    """
    if class_weights is not None and len(class_weights) != NUM_EXPRESSIONS:
        raise ValueError(
            f"Expected {NUM_EXPRESSIONS} class weights. Received: {len(class_weights)} values"
        )
    labels, mask = tg.split_expression(y_true)
    y_pred = ops.cast(y_pred, "float32")
    if logit_offsets is not None and from_logits:
        y_pred = y_pred + ops.convert_to_tensor(list(logit_offsets), "float32")
    classes = y_pred.shape[-1] or NUM_EXPRESSIONS
    target = ops.one_hot(ops.clip(labels, 0, classes - 1), classes)
    if soft_labels and y_true.shape[-1] == 2 + NUM_EXPRESSIONS:
        dist = ops.cast(tg.expression_distribution(y_true), "float32")
        has = ops.sum(dist, axis=-1, keepdims=True) > 0
        target = ops.where(has, dist / ops.maximum(ops.sum(dist, -1, keepdims=True), _EPS), target)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
    log_probs = (
        ops.log_softmax(y_pred, axis=-1) if from_logits else ops.log(ops.clip(y_pred, _EPS, 1.0))
    )
    if focal_gamma:
        log_probs = log_probs * (1.0 - ops.exp(log_probs)) ** focal_gamma
    per_example = -ops.sum(target * log_probs, axis=-1)
    weights = ops.cast(mask, "float32")
    if class_weights is not None:
        cw = ops.convert_to_tensor(list(class_weights), "float32")
        weights = weights * ops.take(cw, ops.clip(labels, 0, classes - 1))
    return _masked_mean(per_example, weights)


def masked_binary_cross_entropy(
    y_true,
    y_pred,
    pos_weights: Sequence[float] | None = None,
    from_logits: bool = True,
):
    """Binary cross-entropy over the 12 AUs, positives weighted, averaged over valid entries.

    Args:
        y_true: ``(B, 24)`` 12 occurrences then 12 masks.
        y_pred: ``(B, 12)`` logits (or probabilities with ``from_logits=False``).
        pos_weights: Per-AU weight of the positive term (e.g. negatives/positives in the data).
    """
    if pos_weights is not None and len(pos_weights) != NUM_AUS:
        raise ValueError(
            f"Expected {NUM_AUS} positive weights. Received: {len(pos_weights)} values"
        )
    labels, mask = tg.split_au(ops.cast(y_true, "float32"))
    y_pred = ops.cast(y_pred, "float32")
    if from_logits:
        # log σ(z) and log(1 − σ(z)) in their stable forms.
        log_p = -ops.softplus(-y_pred)
        log_not_p = -ops.softplus(y_pred)
    else:
        p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
        log_p, log_not_p = ops.log(p), ops.log(1.0 - p)
    pw = 1.0 if pos_weights is None else ops.convert_to_tensor(list(pos_weights), "float32")
    per_entry = -(pw * labels * log_p + (1.0 - labels) * log_not_p)
    return _masked_mean(per_entry, mask)


# The valence/arousal losses by name (``AffectConfig.va_loss``).
VA_LOSSES = {"ccc": ccc_loss, "mse": masked_mse}


def affect_loss(
    y_true: dict,
    y_pred: dict,
    weights: dict[str, float] | None = None,
    class_weights: Sequence[float] | None = None,
    pos_weights: Sequence[float] | None = None,
    label_smoothing: float = 0.0,
    log_vars=None,
    logit_offsets: Sequence[float] | None = None,
    soft_labels: bool = True,
    va_loss: str = "ccc",
    focal_gamma: float = 0.0,
):
    """The composite multi-task loss: λ_va·CCC loss + λ_expr·CE + λ_au·BCE.

    Args:
        y_true, y_pred: Dicts keyed by output name (``va``, ``expression``, ``au``); a task
            missing from either is left out.
        weights: λ per task (α/β in Kollias et al.); default 1 each.
        class_weights, pos_weights, label_smoothing, logit_offsets, soft_labels: Passed to the
            task losses.
        log_vars: Optional per-task log-variances ``s`` (learned uncertainty weighting,
            Kendall et al.): each task term becomes ``exp(−s)·L + s``, in the order va,
            expression, au.
        va_loss: ``"ccc"`` (1 − CCC, the default) or ``"mse"`` (``VA_LOSSES``).
        focal_gamma: > 0: the expression term is the focal loss (``masked_cross_entropy``).

    Returns:
        (total, {task: unweighted task loss}).
    """
    weights = {tg.VA: 1.0, tg.EXPRESSION: 1.0, tg.AU: 1.0, **(weights or {})}
    terms = {}
    if tg.VA in y_true and tg.VA in y_pred:
        va = VA_LOSSES.get(va_loss)
        if va is None:
            raise ValueError(f"Expected va_loss in {sorted(VA_LOSSES)}. Received: {va_loss!r}")
        terms[tg.VA] = va(y_true[tg.VA], y_pred[tg.VA])
    if tg.EXPRESSION in y_true and tg.EXPRESSION in y_pred:
        terms[tg.EXPRESSION] = masked_cross_entropy(
            y_true[tg.EXPRESSION],
            y_pred[tg.EXPRESSION],
            class_weights,
            label_smoothing,
            logit_offsets=logit_offsets,
            soft_labels=soft_labels,
            focal_gamma=focal_gamma,
        )
    if tg.AU in y_true and tg.AU in y_pred:
        terms[tg.AU] = masked_binary_cross_entropy(y_true[tg.AU], y_pred[tg.AU], pos_weights)
    total = 0.0
    for index, task in enumerate((tg.VA, tg.EXPRESSION, tg.AU)):
        if task not in terms or weights[task] == 0:
            continue
        term = weights[task] * terms[task]
        if log_vars is not None:
            term = ops.exp(-log_vars[index]) * term + log_vars[index]
        total = total + term
    return total, terms
