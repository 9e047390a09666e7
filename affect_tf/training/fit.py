"""The one fit function: ``affect-tf train`` and the TFX Trainer's ``run_fn`` both call ``fit``.

They differ only in where batches come from (raw tf.Examples aligned by ``make_dataset``, or
the Transform graph by ``make_transformed_dataset``) and where the model goes afterwards; the
rest is here, once: the checks on the labels (a corpus labelling none of the trained tasks is
an error before training), the model from the label priors, pretrained backbones
(``AffectConfig.weights``) and the warm start from an earlier model, the ``scratch`` /
``frozen`` / ``finetune`` schedules, early stopping and checkpoints on the validation P_MTL of
the tasks the validation data labels, seeds, resuming, AU thresholds tuned on the validation
data (saved with the model), history, curves and TensorBoard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from affect_tf.core.files import replaced_atomically, write_text_atomically
from affect_tf.core.labels import AUS
from affect_tf.data import targets as tg
from affect_tf.data.dataset import LabelPriors
from affect_tf.evaluation.metrics import training_metrics
from affect_tf.evaluation.report import TASKS, evaluate_run, tuned_au_thresholds
from affect_tf.model.affect_model import AffectModel, probabilities
from affect_tf.model.config import AffectConfig
from affect_tf.model.loading import MODEL_FILE, load_model
from affect_tf.model.pretrained import load_backbone_weights
from affect_tf.training import distribute
from affect_tf.training.callbacks import (
    STATE_FILE,
    PMTLCallback,
    ResumeState,
    plot_history,
    resume_point,
)
from affect_tf.training.embeddings import HeadsOnEmbeddings, embedded_dataset

log = logging.getLogger(__name__)


def model_from_priors(config: AffectConfig, priors: LabelPriors) -> AffectModel:
    """An untrained AffectModel with what the training labels say: the GCN label graph (for
    ``gcn`` heads), expression class weights and priors, AU positive weights."""
    counts = np.asarray(priors.expression_counts, np.float64)
    return AffectModel(
        config,
        adjacency=priors.adjacency(config.gcn_tau, config.gcn_p) if config.heads == "gcn" else None,
        class_weights=priors.class_weights(),
        pos_weights=priors.pos_weights(),
        class_priors=(counts / counts.sum()).tolist() if counts.sum() > 0 else None,
    )


def labelled_tasks(priors: LabelPriors) -> list[str]:
    """The tasks with at least one labelled example among the priors' examples."""
    counts = {
        "va": priors.va_labelled,
        "expression": float(np.sum(priors.expression_counts)),
        "au": float(np.sum(priors.au_labelled)),
    }
    return [task for task in TASKS if counts[task] > 0]


def check_tasks(config: AffectConfig, train: LabelPriors, val: LabelPriors) -> list[str]:
    """The trained tasks the validation data measures (what early stopping monitors).

    Raises:
        ValueError: When the training data labels none of the trained tasks, or the
            validation data measures none of them.
    """
    in_train, in_val = labelled_tasks(train), labelled_tasks(val)
    trained = [t for t in config.tasks if t in in_train]
    if not trained:
        raise ValueError(
            f"Expected labels for at least one trained task {tuple(config.tasks)}. Received: "
            f"none of the {train.n} training examples has a label of any of them (every mask is"
            " 0: check the corpus' label columns and the readers' invalid markers)"
        )
    unlabelled = [t for t in config.tasks if t not in trained]
    if unlabelled:
        log.warning(
            "the training data has no %s labels: those heads get no gradient and are not measured",
            ", ".join(unlabelled),
        )
    measured = [t for t in trained if t in in_val]
    if not measured:
        raise ValueError(
            f"Expected validation examples labelled for one of {trained}. Received: "
            f"{val.n} validation examples without any of those labels"
        )
    return measured


@dataclasses.dataclass
class FitData:
    """What ``fit`` trains on.

    Attributes:
        train: Batches ``(images, targets)`` of one epoch (shuffled; balanced when asked).
        val: Validation batches ``(images, targets)``.
        steps, val_steps: Batches per epoch of each.
        priors, val_priors: Label statistics of the training and validation examples.
        stream: ``train`` is one endless stream (``affect-tf pretrain``): every epoch takes
            the next ``steps`` batches of the same iterator instead of starting it again.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    steps: int
    val_steps: int
    priors: LabelPriors
    val_priors: LabelPriors
    stream: bool = False


@dataclasses.dataclass
class FitResult:
    model: AffectModel
    out_dir: Path
    history: dict
    validation: dict
    seconds: float
    tasks_measured: list[str]
    weights_digest: str | None = None  # multi-worker runs: every worker's must be the same


def predict_dataset(model: keras.Model, ds: tf.data.Dataset) -> dict[str, np.ndarray]:
    """Probabilities and packed targets of every batch of ``(images, targets[, meta])``."""
    parts: dict[str, list] = {k: [] for k in ("expression", "au", "va", "t_va", "t_expression")}
    parts["t_au"] = []
    for batch in ds:
        images, targets = batch[0], batch[1]
        probs = probabilities(model.predict_on_batch(images))
        for key in (tg.EXPRESSION, tg.AU, tg.VA):
            parts[key].append(probs[key])
            parts["t_" + key].append(np.asarray(targets[key]))
    if not parts["va"]:
        raise ValueError("Expected examples to run the model on. Received: an empty dataset")
    return {k: np.concatenate(v) for k, v in parts.items()}


def _phases(config: AffectConfig, epochs: int) -> list[tuple[int, int, bool, float | None]]:
    """``(first, end, backbone_trainable, backbone_lr_scale)`` per training phase."""
    if config.schedule == "frozen":
        return [(0, epochs, False, None)]
    if config.schedule == "finetune":
        warm = min(config.warmup_epochs, epochs)
        phases = [(0, warm, False, None)] if warm else []
        if warm < epochs:
            phases.append((warm, epochs, True, config.backbone_lr_scale))
        return phases
    return [(0, epochs, True, None)]


def _initial_model(
    config: AffectConfig, priors: LabelPriors, warm_start: str | None
) -> tuple[AffectModel, str]:
    """A new model with its initial weights, and where they came from (``history.json``)."""
    model = model_from_priors(config, priors)
    if warm_start:
        source = load_model(warm_start, compile=False)
        shapes = [w.shape for w in model.get_weights()]
        if [w.shape for w in source.get_weights()] != shapes:
            raise ValueError(
                f"Expected a model of the same architecture to warm-start from "
                f"({config.backbone}, {config.heads} heads, {config.image_size}px). "
                f"Received: warm_start={str(warm_start)!r}"
            )
        model.set_weights(source.get_weights())
        log.info("warm start: every weight from %s", warm_start)
        return model, f"warm start: every weight from {warm_start}"
    if config.weights:
        return model, load_backbone_weights(model, config.weights)
    return model, "random weights"


def _callbacks(out: Path, best: float, patience: int, append: bool, tensorboard: bool) -> list:
    callbacks = [
        PMTLCallback(),
        keras.callbacks.EarlyStopping(
            monitor="val_p_mtl", mode="max", patience=patience, restore_best_weights=True
        ),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=append),
        ResumeState(out, best),
    ]
    if tensorboard:
        callbacks.append(
            keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard"), update_freq="epoch")
        )
    return callbacks


def _start_run(config: AffectConfig, data: FitData, out: Path) -> list[str]:
    """Checks the labels, writes the priors and config; the tasks validation measures."""
    out.mkdir(parents=True, exist_ok=True)
    measured = check_tasks(config, data.priors, data.val_priors)
    write_text_atomically(out / "priors.json", json.dumps(data.priors.to_dict(), indent=2))
    write_text_atomically(out / "config.json", json.dumps(config.to_dict(), indent=2))
    return measured


def _enter_phase(
    model: AffectModel,
    steps: int,
    epochs: int,
    measured: list[str],
    trainable: bool,
    lr_scale: float | None,
    loaded: bool,
) -> None:
    """Sets the backbone's trainability and compiles for the phase; a run resumed inside this
    phase keeps its loaded optimizer (and schedule) state."""
    backbone = model.get_layer("backbone")
    if not (loaded and backbone.trainable == trainable and model.optimizer is not None):
        backbone.trainable = trainable
        model.compile_for_training(steps, epochs, measured, lr_scale)


def fit(
    config: AffectConfig,
    data: FitData,
    out_dir: str | Path,
    epochs: int | None = None,
    patience: int = 5,
    seed: int = 0,
    resume: bool = True,
    warm_start: str | None = None,
    verbose: int = 2,
    strategy: tf.distribute.Strategy | None = None,
    tensorboard: bool = True,
) -> FitResult:
    """Trains an AffectModel on ``data`` and writes everything about the run to ``out_dir``.

    Args:
        config: Model and optimisation settings (its ``weights``/``schedule`` included).
        data: Batches and label statistics (``FitData``).
        out_dir: Receives ``model.keras`` (best on validation P_MTL, with its tuned AU
            thresholds), ``last.keras`` + ``state.json`` (resuming), ``history.json/csv``,
            ``training_curves.png``, ``tensorboard/``, ``validation.json``,
            ``au_thresholds.json``, ``priors.json``, ``config.json``.
        epochs: Overrides ``config.epochs`` (warm-up epochs included).
        patience: Early stopping on the validation P_MTL (per phase).
        seed: Seeds Python, NumPy and TensorFlow.
        resume: Continue from ``last.keras`` when ``state.json`` says the run is unfinished.
        warm_start: An earlier ``.keras`` model of the same architecture to start from
            (every weight; TFX's ``base_model``); overrides ``config.weights``.
        verbose: Keras progress (1 bar, 2 one line per epoch).
        strategy: A ``tf.distribute`` strategy to build and compile under. Under a
            multi-worker strategy (``distribute.connect``) each global batch is split between
            the workers, only the chief writes ``out_dir`` and resuming needs ``out_dir``
            shared by all of them (``docs/pipeline.md``).

    Raises:
        ValueError: Labels that cannot train or validate any task; weights that do not fit.
    """
    keras.utils.set_random_seed(seed)
    out = Path(out_dir)
    epochs = epochs or config.epochs
    multi = distribute.is_multi_worker(strategy)
    if multi:
        data = _for_workers(config, data)
    # Workers other than the chief write to a temporary folder, deleted at the end.
    write = distribute.output_dir(strategy, out)
    measured = _start_run(config, data, write)
    # A fresh context each time: a strategy's scope cannot be entered twice.
    scope = (lambda: strategy.scope()) if strategy is not None else contextlib.nullcontext

    if config.cache_embeddings:
        with scope():
            model, init = _initial_model(config, data.priors, warm_start)
        start = time.perf_counter()
        history = _fit_cached(config, data, out, model, epochs, patience, seed, measured, verbose)
        return _finish(model, data, out, history, time.perf_counter() - start, measured, init)
    with scope():  # a resumed model's variables belong to the strategy too
        model, initial_epoch, best = resume_point(out, epochs, resume)
    if multi:
        distribute.check_same(strategy, initial_epoch, f"epoch to resume from ({out / STATE_FILE})")
    start = time.perf_counter()
    settings = _Phases(config, data, write, measured, patience, verbose, warm_start, tensorboard)
    model, history, init = _train_phases(
        settings, model, initial_epoch, best, epochs, scope, strategy if multi else None
    )
    seconds = time.perf_counter() - start
    if model is None:
        raise ValueError(f"Expected epochs to train. Received: epochs={epochs}")
    if not multi:
        return _finish(model, data, out, history, seconds, measured, init)
    digest = distribute.weights_digest(model)
    log.info("weights sha256 %s", digest)
    if write != out:  # a worker: its copies of the outputs go
        shutil.rmtree(write, ignore_errors=True)
        return FitResult(model, out, history, {}, seconds, measured, digest)
    return dataclasses.replace(
        _finish(model, data, out, history, seconds, measured, init), weights_digest=digest
    )


@dataclasses.dataclass(frozen=True)
class _Phases:
    """What every training phase of a run shares."""

    config: AffectConfig
    data: FitData
    write: Path
    measured: list
    patience: int
    verbose: int
    warm_start: str | None
    tensorboard: bool


def _train_phases(run: _Phases, model, initial_epoch: int, best: float, epochs, scope, replicas):
    """``model.fit`` over the schedule's phases from the resumed epoch; the model, the history
    and where the initial weights came from. ``replicas``: the multi-worker strategy (the
    workers' BatchNorm statistics are kept in sync), or None."""
    config, data, measured = run.config, run.data, run.measured
    loaded = model is not None
    init = f"resumed at epoch {initial_epoch} in {run.write}" if loaded else "random weights"
    history: dict[str, list[float]] = {}
    for first, end, trainable, lr_scale in _phases(config, epochs):
        if end <= initial_epoch:
            continue
        with scope():
            if model is None:
                model, init = _initial_model(config, data.priors, run.warm_start)
            _enter_phase(model, data.steps, end - first, measured, trainable, lr_scale, loaded)
            loaded = False
        append = initial_epoch > 0 or first > 0
        callbacks = _callbacks(run.write, best, run.patience, append, run.tensorboard)
        if replicas:  # before the callbacks that validate, keep or save weights
            callbacks.insert(0, distribute.SyncMovingStatistics(replicas))
        log.info(
            "epochs %d-%d: backbone %s%s",
            max(first, initial_epoch) + 1,
            end,
            "trainable" if trainable else "frozen",
            f" at {lr_scale} x the learning rate" if lr_scale else "",
        )
        fitted = model.fit(
            data.train,
            validation_data=data.val,
            epochs=end,
            initial_epoch=max(first, initial_epoch),
            steps_per_epoch=data.steps if data.stream else None,
            callbacks=callbacks,
            verbose=run.verbose,
            shuffle=False,  # the tf.data pipeline shuffles
        )
        best = next(c for c in callbacks if isinstance(c, ResumeState)).best
        for key, values in fitted.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
    return model, history, init


def _for_workers(config: AffectConfig, data: FitData) -> FitData:
    """A multi-worker run's data (each global batch split between the workers) and Keras."""
    if config.cache_embeddings:
        raise distribute.ClusterError(
            "Expected cache_embeddings off in a multi-worker run (the features are computed"
            " once, on one process). Received: cache_embeddings=True"
        )
    distribute.patch_keras()
    train, val = distribute.shard_by_data(data.train), distribute.shard_by_data(data.val)
    return dataclasses.replace(data, train=train, val=val)


def _fit_cached(config, data: FitData, out: Path, model, epochs, patience, seed, measured, verbose):
    """``frozen`` + ``cache_embeddings``: the backbone runs once over the data, the heads train
    on its features (Savchenko's set-up; no augmentation, which acts on images)."""
    if config.augment:
        log.warning("cache_embeddings: augmentation acts on images and is skipped")
    backbone = model.get_layer("backbone")
    start = time.perf_counter()
    train = embedded_dataset(backbone, data.train, config.batch_size, seed, shuffle=True)
    val = embedded_dataset(backbone, data.val, config.batch_size, seed, shuffle=False)
    log.info("embeddings computed once in %.1f s", time.perf_counter() - start)
    model.compile_for_training(data.steps, epochs, measured)  # the optimizer and its schedule
    heads = HeadsOnEmbeddings(model)
    metrics = {t: m for t, m in training_metrics().items() if t in measured}
    heads.compile(optimizer=model.optimizer, metrics=metrics)
    callbacks = _callbacks(out, -np.inf, patience, False, True)
    # The resume state would save the heads view: the AffectModel is saved below.
    callbacks = [c for c in callbacks if not isinstance(c, ResumeState)]
    run = heads.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=verbose)
    _save(model, out / MODEL_FILE)  # EarlyStopping restored the best epoch's weights
    return {k: [float(v) for v in values] for k, values in run.history.items()}


def _save(model: keras.Model, path: Path) -> None:
    """``model.save`` that a kill cannot leave half-written."""
    with replaced_atomically(path) as partial:
        model.save(partial)


def _finish(model, data: FitData, out: Path, history: dict, seconds: float, measured: list, init):
    """The best model with its AU thresholds tuned on the validation data, and the reports."""
    if not (out / MODEL_FILE).exists():
        _save(model, out / MODEL_FILE)
    best = load_model(out / MODEL_FILE, compile=False)
    val_run = predict_dataset(best, data.val)
    validation = evaluate_run(val_run)
    thresholds = tuned_au_thresholds(val_run)
    if "au" in measured:
        validation["au_f1_tuned_on_validation"] = evaluate_run(val_run, thresholds)["au_f1"]
        # Saved with the model: ``affect-tf evaluate --au-thresholds model`` and
        # ``AffectRecognizer(..., au_thresholds="model")`` use them.
        best.au_thresholds = list(thresholds)
        _save(best, out / MODEL_FILE)
    thresholds_out = dict(zip(AUS, thresholds, strict=True))
    write_text_atomically(out / "au_thresholds.json", json.dumps(thresholds_out, indent=2))
    history_out = {"seconds": seconds, "tasks_measured": measured, "init": init, **history}
    write_text_atomically(out / "history.json", json.dumps(history_out, indent=2))
    write_text_atomically(out / "validation.json", json.dumps(validation, indent=2))
    if history:
        plot_history(history, out / "training_curves.png")
    return FitResult(best, out, history, validation, seconds, measured)
