"""Training, evaluation and batch prediction over tf.Example files (``affect-tf train``,
``evaluate``, ``predict-examples``).

``train`` measures the label priors of the training and validation examples, builds the aligned
datasets (a by-video split when no validation files are given) and calls ``training.fit.fit``, the
one fit function the TFX Trainer also uses. ``evaluate`` and ``predict_table`` run a model over
tf.Examples and give the exact ABAW metrics or a per-example table from which anyone can
recompute them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS
from affect_tf.data import examples as ex
from affect_tf.data import targets as tg
from affect_tf.data.dataset import make_dataset, measure_priors
from affect_tf.data.mixing import make_mixed_dataset, mixture_priors
from affect_tf.evaluation.report import evaluate_run
from affect_tf.evaluation.smoothing import parse_smooth, smooth_by_video
from affect_tf.model.affect_model import probabilities
from affect_tf.model.config import AffectConfig
from affect_tf.training.fit import FitData, FitResult, fit

log = logging.getLogger(__name__)


def train(
    config: AffectConfig,
    train_files: Sequence[str],
    out_dir: str | Path,
    val_files: Sequence[str] | None = None,
    eval_percent: int = 10,
    epochs: int | None = None,
    patience: int = 5,
    steps_per_epoch: int | None = None,
    resume: bool = True,
    verbose: int = 2,
    seed: int = 0,
    warm_start: str | None = None,
    strategy: tf.distribute.Strategy | None = None,
    corpora: Sequence[Sequence[str]] | None = None,
    weights: Sequence[float] | None = None,
) -> FitResult:
    """Trains an AffectModel on tf.Example files (``affect-tf train``) with ``training.fit.fit``.

    Args:
        config: Model and optimisation settings (a preset, possibly overridden).
        train_files: tf.Example files. Without ``val_files`` they are split by video
            (``eval_percent`` % of videos validate, never frames of a training video).
        out_dir: Where the model and everything about the run go (``training.fit.fit``).
        val_files: Separate validation files.
        epochs: Overrides ``config.epochs``.
        patience: Early stopping on validation P_MTL (over the tasks it labels).
        steps_per_epoch: Limit the steps per epoch (None: the whole split).
        resume: Continue from ``last.keras`` when ``state.json`` says the run is unfinished.
        verbose: Keras progress (1 bar, 2 one line per epoch).
        seed: Seeds training and the data order.
        warm_start: An earlier ``.keras`` model of the same architecture to start from.
        strategy: A ``tf.distribute`` strategy (``distribute.connect`` for a multi-worker
            run: ``config.batch_size`` is then the global batch, split between the workers).
        corpora, weights: Several corpora (each one's files) mixed by weight
            (``affect_tf.data.mixing``); ``train_files`` is then ignored.
    """
    if corpora is not None:
        data = _mixed_fit_data(
            config, corpora, weights, val_files, eval_percent, steps_per_epoch, seed
        )
    else:
        data = _fit_data(config, train_files, val_files, eval_percent, steps_per_epoch, seed)
    return fit(
        config,
        data,
        out_dir,
        epochs=epochs,
        patience=patience,
        seed=seed,
        resume=resume,
        warm_start=warm_start,
        verbose=verbose,
        strategy=strategy,
    )


def _fit_data(
    config: AffectConfig,
    train_files: Sequence[str],
    val_files: Sequence[str] | None,
    eval_percent: int,
    steps_per_epoch: int | None,
    seed: int,
) -> FitData:
    """Label priors and aligned batches of the training and validation examples."""
    train_split, val_split = (None, None) if val_files else ("train", "eval")
    val_files = list(val_files or train_files)
    priors = measure_priors(train_files, split=train_split, eval_percent=eval_percent)
    if priors.n == 0:
        raise ValueError(
            "Expected training examples. "
            f"Received: none in {list(train_files)} (split={train_split})"
        )
    val_priors, val_ds, val_steps = _validation(config, val_files, val_split, eval_percent)
    steps = steps_per_epoch or max(1, -(-priors.n // config.batch_size))
    balance = (
        priors.balance_spec(steps * config.batch_size) if config.imbalance == "sampling" else None
    )
    train_ds = make_dataset(
        train_files,
        config.image_size,
        config.margin,
        config.batch_size,
        training=True,
        split=train_split,
        eval_percent=eval_percent,
        seed=seed,
        balance=balance,
    )
    if steps_per_epoch and balance is None:
        train_ds = train_ds.repeat().take(steps)
    # The by-video filter hides the size from tf.data; tell it (and Keras) the real one.
    train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps))
    return FitData(train_ds, val_ds, steps, val_steps, priors, val_priors)


def _validation(config: AffectConfig, val_files: list[str], split: str | None, percent: int):
    """``(priors, batches, steps)`` of the validation examples.

    Raises:
        ValueError: There are none.
    """
    priors = measure_priors(val_files, split=split, eval_percent=percent)
    if priors.n == 0:
        raise ValueError(
            f"Expected validation examples. Received: none in {list(val_files)} "
            f"(split={split}, {percent} % of the videos); pass separate validation "
            "data or more videos"
        )
    steps = max(1, -(-priors.n // config.batch_size))
    batches = make_dataset(
        val_files, config.image_size, config.margin, config.batch_size, split=split,
        eval_percent=percent,
    ).apply(tf.data.experimental.assert_cardinality(steps))  # fmt: skip
    return priors, batches, steps


def _mixed_fit_data(
    config: AffectConfig,
    corpora: Sequence[Sequence[str]],
    weights: Sequence[float],
    val_files: Sequence[str] | None,
    eval_percent: int,
    steps_per_epoch: int | None,
    seed: int,
) -> FitData:
    """``_fit_data`` for corpora mixed by weight: each corpus' own statistics for its
    class-balanced stream, their mixture for the model (class weights, label graph)."""
    train_split, val_split = (None, None) if val_files else ("train", "eval")
    parts = []
    for files in corpora:
        priors = measure_priors(files, split=train_split, eval_percent=eval_percent)
        if priors.n == 0:
            raise ValueError(
                f"Expected training examples in every corpus. Received: none in {list(files)} "
                f"(split={train_split})"
            )
        parts.append(priors)
    everything = [f for files in corpora for f in files]
    val_files = list(val_files or everything)
    val_priors, val_ds, val_steps = _validation(config, val_files, val_split, eval_percent)
    total = sum(p.n for p in parts)
    steps = steps_per_epoch or max(1, -(-total // config.batch_size))
    sampling = config.imbalance == "sampling"
    train_ds = make_mixed_dataset(
        corpora,
        weights,
        config.image_size,
        config.margin,
        config.batch_size,
        size=steps * config.batch_size,
        split=train_split,
        eval_percent=eval_percent,
        seed=seed,
        balances=[p.balance_spec() if sampling else None for p in parts],
    ).apply(tf.data.experimental.assert_cardinality(steps))
    priors = mixture_priors(parts, weights)
    log.info("mixing %d corpora by weight %s (%d examples per epoch)", len(parts), weights, total)
    return FitData(train_ds, val_ds, steps, val_steps, priors, val_priors)


def run_model(
    model: keras.Model,
    files: Sequence[str],
    split: str | None = None,
    eval_percent: int = 10,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Predictions, targets and metadata for every example of the files (in file order)."""
    config: AffectConfig = model.affect_config
    ds = make_dataset(
        files,
        config.image_size,
        config.margin,
        batch_size,
        split=split,
        eval_percent=eval_percent,
        with_meta=True,
        cache=False,
    )
    parts: dict[str, list] = {
        k: []
        for k in (
            "expression",
            "au",
            "va",
            "t_va",
            "t_expression",
            "t_au",
            "video_id",
            "frame",
            "source",
        )
    }
    for images, targets, meta in ds:
        probs = probabilities(model.predict_on_batch(images))
        for key in (tg.EXPRESSION, tg.AU, tg.VA):
            parts[key].append(probs[key])
            parts["t_" + key].append(targets[key].numpy())
        parts["video_id"].append(meta[ex.VIDEO_ID].numpy())
        parts["frame"].append(meta[ex.FRAME].numpy())
        parts["source"].append(meta[ex.SOURCE].numpy())
    if not parts["va"]:
        raise ValueError(
            "Expected examples to run the model on. "
            f"Received: none in {list(files)} (split={split})"
        )
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["video_id"] = np.array([v.decode("utf-8") for v in out["video_id"]])
    out["source"] = np.array([v.decode("utf-8") for v in out["source"]])
    return out


def _smoothed(run: dict, smooth: str | None) -> dict:
    spec = parse_smooth(smooth)
    if spec is None:
        return run
    smoothed = smooth_by_video(
        run["video_id"],
        run["frame"],
        {k: run[k] for k in (tg.EXPRESSION, tg.AU, tg.VA)},
        method=spec[0],
        window=spec[1],
        normalise=(tg.EXPRESSION,),
    )
    return {**run, **smoothed}


def evaluate(
    model: keras.Model,
    files: Sequence[str],
    smooth: str | None = None,
    au_thresholds: float | Sequence[float] = 0.5,
    split: str | None = None,
    eval_percent: int = 10,
) -> dict:
    """The ABAW report over every example of the files: exact CCC, F1s, P_MTL, counts."""
    run = _smoothed(run_model(model, files, split, eval_percent), smooth)
    result = evaluate_run(run, au_thresholds)
    result["smooth"] = smooth or "none"
    return result


def load_au_thresholds(value: str | float | None) -> float | list[float]:
    """``--au-thresholds``: a number, or the ``au_thresholds.json`` a training run wrote.

    Raises:
        ValueError: For anything else.
    """
    if value is None:
        return 0.5
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is not None:
        if not 0.0 < number < 1.0:
            raise ValueError(
                f"Expected an AU threshold in (0, 1). Received: au_thresholds={value!r}"
            )
        return number
    path = Path(str(value))
    if not path.is_file():
        raise ValueError(
            f"Expected a number or an au_thresholds.json file. Received: au_thresholds={value!r}"
        )
    data = json.loads(path.read_text())
    values = (
        [float(data[name]) for name in AUS] if isinstance(data, dict) else [float(v) for v in data]
    )
    if len(values) != NUM_AUS:
        raise ValueError(f"Expected {NUM_AUS} AU thresholds in {path}. Received: {len(values)}")
    return values


def predict_table(model: keras.Model, files: Sequence[str], smooth: str | None = None):
    """A pandas DataFrame, one row per example: predictions, and labels + masks where known.

    Columns: ``id, video_id, frame, source, p_<Expression> x8, p_<AU> x12, valence, arousal,
    label_valence, label_arousal, va_mask, label_expression, expr_mask, label_<AU> x12,
    au_mask_<AU> x12``.
    """
    import pandas as pd

    run = _smoothed(run_model(model, files), smooth)
    n = len(run["va"])
    table = {
        "id": np.arange(n),
        "video_id": run["video_id"],
        "frame": run["frame"],
        "source": run["source"],
    }
    for i, name in enumerate(EXPRESSIONS):
        table[f"p_{name}"] = run[tg.EXPRESSION][:, i]
    for i, name in enumerate(AUS):
        table[f"p_{name}"] = run[tg.AU][:, i]
    table["valence"], table["arousal"] = run[tg.VA][:, 0], run[tg.VA][:, 1]
    table["label_valence"], table["label_arousal"] = run["t_va"][:, 0], run["t_va"][:, 1]
    table["va_mask"] = run["t_va"][:, 2].astype(int)
    table["label_expression"] = run["t_expression"][:, 0].astype(int)
    table["expr_mask"] = run["t_expression"][:, 1].astype(int)
    for i, name in enumerate(AUS):
        table[f"label_{name}"] = run["t_au"][:, i].astype(int)
    for i, name in enumerate(AUS):
        table[f"au_mask_{name}"] = run["t_au"][:, NUM_AUS + i].astype(int)
    return pd.DataFrame(table)
