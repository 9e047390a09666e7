"""Training, evaluation and batch prediction without TFX (the pipeline's Trainer reuses these).

``train`` measures the label priors on the training split, builds ``AffectModel``, fits with the
composite loss, validates on a by-video split, early-stops and checkpoints on P_MTL, resumes an
interrupted run, and writes the model, its history and a plot of the curves. ``evaluate`` and
``predict_table`` run a model over tf.Examples and give the exact ABAW metrics or a per-example
table from which anyone can recompute them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from affect_tf import targets as tg
from affect_tf.data import examples as ex
from affect_tf.data.dataset import LabelPriors, make_dataset, measure_priors
from affect_tf.labels import AUS, EXPRESSIONS, NUM_AUS
from affect_tf.metrics import AffectEvaluator, tune_au_thresholds
from affect_tf.model.affect_model import AffectModel, probabilities
from affect_tf.model.config import AffectConfig
from affect_tf.smoothing import parse_smooth, smooth_by_video

MODEL_FILE = "model.keras"
LAST_FILE = "last.keras"
STATE_FILE = "state.json"


def p_mtl_from_logs(logs: dict, prefix: str = "val_") -> float:
    """P_MTL from Keras log keys (tasks a model does not train count 0)."""
    get = lambda k: float(logs.get(prefix + k, 0.0))  # noqa: E731
    va = (get("va_ccc_valence") + get("va_ccc_arousal")) / 2
    return va + get("expression_f1") + get("au_f1")


class PMTLCallback(keras.callbacks.Callback):
    """Adds ``p_mtl`` and ``val_p_mtl`` to the epoch logs (put it before checkpoints/early stop)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["p_mtl"] = p_mtl_from_logs(logs, "")
            if any(k.startswith("val_") for k in logs):
                logs["val_p_mtl"] = p_mtl_from_logs(logs, "val_")


class ResumeState(keras.callbacks.Callback):
    """Saves the model, the epoch reached and the best validation P_MTL after each epoch, so a
    killed run can resume (and its best checkpoint is only replaced by a better one)."""

    def __init__(self, out_dir: Path, best: float = -np.inf):
        super().__init__()
        self.out_dir = out_dir
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.best = max(self.best, float(logs.get("val_p_mtl", -np.inf)))
        self.model.save(self.out_dir / LAST_FILE)
        state = {
            "epoch": epoch + 1,
            "best_val_p_mtl": self.best,
            "logs": {k: float(v) for k, v in logs.items()},
        }
        (self.out_dir / STATE_FILE).write_text(json.dumps(state, indent=2))


@dataclasses.dataclass
class TrainResult:
    model: AffectModel
    out_dir: Path
    history: dict
    validation: dict
    seconds: float


def plot_history(history: dict, path: Path) -> Path:
    """Loss and metric curves, train vs validation, one panel per quantity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    cols = 4
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        ax.plot(history[key], label="train")
        if "val_" + key in history:
            ax.plot(history["val_" + key], label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def model_from_priors(config: AffectConfig, priors: LabelPriors) -> AffectModel:
    """An untrained AffectModel with what the training labels say: the GCN label graph (for
    ``gcn`` heads), expression class weights and AU positive weights (used when
    ``config.class_weighting``)."""
    return AffectModel(
        config,
        adjacency=priors.adjacency(config.gcn_tau, config.gcn_p) if config.heads == "gcn" else None,
        class_weights=priors.class_weights(),
        pos_weights=priors.pos_weights(),
    )


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
) -> TrainResult:
    """Trains an AffectModel.

    Args:
        config: Model and optimisation settings (a preset, possibly overridden).
        train_files: tf.Example files. Without ``val_files`` they are split by video
            (``eval_percent`` % of videos validate, never frames of a training video).
        out_dir: Where ``model.keras`` (best on validation P_MTL), ``last.keras`` and
            ``state.json`` (for resuming), ``history.json/csv``, ``training_curves.png``,
            ``priors.json`` and ``config.json`` go.
        val_files: Separate validation files.
        epochs: Overrides ``config.epochs``.
        patience: Early stopping on validation P_MTL.
        steps_per_epoch: Limit the steps per epoch (None: the whole split).
        resume: Continue from ``last.keras`` when ``state.json`` says the run is unfinished.
        verbose: Keras progress (1 bar, 2 one line per epoch).
    """
    keras.utils.set_random_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    epochs = epochs or config.epochs
    train_split, val_split = (None, None) if val_files else ("train", "eval")
    val_files = list(val_files or train_files)

    priors = measure_priors(train_files, split=train_split, eval_percent=eval_percent)
    if priors.n == 0:
        raise ValueError(
            "Expected training examples. "
            f"Received: none in {list(train_files)} (split={train_split})"
        )
    val_n = measure_priors(val_files, split=val_split, eval_percent=eval_percent).n
    if val_n == 0:
        raise ValueError(
            f"Expected validation examples. Received: none in {list(val_files)} "
            f"(split={val_split}, {eval_percent} % of the videos); pass separate validation "
            "data or more videos"
        )
    (out / "priors.json").write_text(json.dumps(priors.to_dict(), indent=2))
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    train_ds = make_dataset(
        train_files,
        config.image_size,
        config.margin,
        config.batch_size,
        training=True,
        augment=config.augment,
        split=train_split,
        eval_percent=eval_percent,
        seed=seed,
    )
    val_ds = make_dataset(
        val_files,
        config.image_size,
        config.margin,
        config.batch_size,
        split=val_split,
        eval_percent=eval_percent,
    )
    steps = steps_per_epoch or max(1, -(-priors.n // config.batch_size))
    if steps_per_epoch:
        train_ds = train_ds.repeat()
    else:
        # The by-video filter hides the size from tf.data; tell it (and Keras) the real one.
        train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps))
    val_ds = val_ds.apply(
        tf.data.experimental.assert_cardinality(max(1, -(-val_n // config.batch_size)))
    )

    state_path = out / STATE_FILE
    initial_epoch, best = 0, -np.inf
    if resume and state_path.is_file() and (out / LAST_FILE).is_file():
        state = json.loads(state_path.read_text())
        if state["epoch"] < epochs:
            model = keras.models.load_model(out / LAST_FILE)
            initial_epoch = state["epoch"]
            best = float(state.get("best_val_p_mtl", -np.inf))
            print(f"resuming from epoch {initial_epoch} ({out / LAST_FILE})")
        else:
            print(f"the run in {out} already finished {state['epoch']} epochs: training anew")
    if initial_epoch == 0:
        model = model_from_priors(config, priors)
        model.compile_for_training(steps, epochs)

    callbacks = [
        PMTLCallback(),
        keras.callbacks.ModelCheckpoint(
            out / MODEL_FILE,
            monitor="val_p_mtl",
            mode="max",
            save_best_only=True,
            initial_value_threshold=best if initial_epoch else None,
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_p_mtl", mode="max", patience=patience, restore_best_weights=True
        ),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=initial_epoch > 0),
        ResumeState(out, best),
    ]
    start = time.perf_counter()
    fit = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps if steps_per_epoch else None,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles
    )
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    if not (out / MODEL_FILE).exists():
        model.save(out / MODEL_FILE)
    best = keras.models.load_model(out / MODEL_FILE)
    # One pass over the validation split: the report at 0.5 and per-AU thresholds tuned on it
    # (saved for `affect-tf evaluate --au-thresholds OUT/au_thresholds.json`).
    val_run = run_model(best, val_files, split=val_split, eval_percent=eval_percent)
    validation = evaluate_run(val_run)
    thresholds = tuned_au_thresholds(val_run)
    validation["au_f1_tuned_on_validation"] = evaluate_run(val_run, thresholds)["au_f1"]
    (out / "au_thresholds.json").write_text(
        json.dumps(dict(zip(AUS, thresholds, strict=True)), indent=2)
    )
    (out / "history.json").write_text(json.dumps(history, indent=2))
    (out / "validation.json").write_text(json.dumps(validation, indent=2))
    if history:
        plot_history(history, out / "training_curves.png")
    return TrainResult(
        model=best, out_dir=out, history=history, validation=validation, seconds=seconds
    )


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


def evaluate_run(run: dict, au_thresholds: float | Sequence[float] = 0.5) -> dict:
    """The ABAW report of a ``run_model`` result."""
    evaluator = AffectEvaluator(au_thresholds)
    targets = {tg.VA: run["t_va"], tg.EXPRESSION: run["t_expression"], tg.AU: run["t_au"]}
    evaluator.update(run[tg.VA], run[tg.EXPRESSION], run[tg.AU], targets)
    result = evaluator.result()
    result["au_thresholds"] = np.broadcast_to(np.asarray(au_thresholds, float), (NUM_AUS,)).tolist()
    return result


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


def tuned_au_thresholds(run: dict) -> list[float]:
    """Per-AU thresholds that maximise each AU's F1 on a (validation) run."""
    labels, masks = run["t_au"][:, :NUM_AUS], run["t_au"][:, NUM_AUS:]
    return tune_au_thresholds(run[tg.AU], labels, masks).tolist()


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
