"""The TFX Trainer's ``run_fn``: AffectModel on the Transform graph's output, exported for
TF Serving, TFMA and TFLite.

- Inputs: ExampleGen's raw examples through the Transform layer (``make_transformed_dataset``),
  the ``label_priors`` the Transform analyzers computed on the train split (class weights, AU
  positive weights, the GCN adjacency).
- Early stopping and the kept weights use a by-video hold-out *of the train split*
  (``VALIDATION_PERCENT`` of its videos), so the Evaluator's eval split stays unseen.
- ``tf.distribute``: MirroredStrategy over the visible GPUs (mixed float16 on GPU), the
  default strategy on CPU; ``strategy`` in the custom config forces one (``multiworker``
  for ``MultiWorkerMirroredStrategy`` with ``TF_CONFIG`` set by the cluster: the Vertex AI
  Trainer's worker pools, ``pipelines/affect.py``); only the chief writes the Model and the
  ModelRun.
- Training is ``affect_tf.training.fit.fit``, the same function as ``affect-tf train``: augmentation
  inside the model, pretrained weights and schedules, class imbalance, early stopping on the
  measured tasks, seed, AU thresholds tuned on the hold-out, warm start from the latest Model
  (TFX ``base_model``, when ``warm_start`` is set).
- Writes TensorBoard logs, ``history.json``, ``training_curves.png`` and ``priors.json`` to the
  ModelRun artifact; the SavedModel (+ ``assets.extra/affect_model.keras``) to the Model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras
import tensorflow as tf

from affect_tf.data import examples as ex
from affect_tf.data.dataset import (
    LabelPriors,
    count_examples,
    make_transformed_dataset,
    measure_priors,
    resolve_files,
    serialized_examples,
    transformed_stream,
)
from affect_tf.data.mixing import mix_streams, mixture_priors
from affect_tf.export.saved_model import export_saved_model
from affect_tf.model.config import AffectConfig, get_preset
from affect_tf.pipeline.config import STRATEGIES
from affect_tf.training import distribute
from affect_tf.training.fit import FitData, fit

log = logging.getLogger(__name__)

VALIDATION_PERCENT = 10


def model_config(custom_config: dict) -> AffectConfig:
    """The preset named in the Trainer's custom config, with its overrides."""
    overrides = {k: v for k, v in (custom_config.get("overrides") or {}).items() if v is not None}
    return get_preset(custom_config["preset"], **overrides)


def choose_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The distribution strategy for this hardware.

    Args:
        kind: ``auto`` (MirroredStrategy when GPUs are visible, else the default strategy),
            ``mirrored``, ``multiworker`` or ``default``.
    """
    if kind == "multiworker":
        cluster = distribute.cluster_from_env()
        if cluster is None:
            raise distribute.ClusterError(
                "Expected TF_CONFIG naming a cluster of two or more tasks for strategy="
                f"'multiworker' (set by Vertex AI / Kubeflow worker pools). Received: "
                f"TF_CONFIG={os.environ.get('TF_CONFIG', '')!r}"
            )
        return distribute.connect(cluster)
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "mirrored" or (kind == "auto" and gpus):
        return tf.distribute.MirroredStrategy()
    if kind not in STRATEGIES:
        raise ValueError(f"Expected a strategy in {STRATEGIES}. Received: strategy={kind!r}")
    return tf.distribute.get_strategy()


def read_priors(files: list[str], tft_layer, raw_feature_spec: dict) -> LabelPriors:
    """The analyzers' ``label_priors`` (a constant of the Transform graph) via one example."""
    serialized = next(iter(serialized_examples(files).take(1)))
    features = ex.parse_examples(serialized[tf.newaxis], spec=raw_feature_spec)
    return LabelPriors.from_vector(tft_layer(features)[ex.LABEL_PRIORS][0].numpy())


def _warm_start_file(base_model: str | None) -> str | None:
    """The ``.keras`` file inside TFX's ``base_model`` (the latest trained Model), if any."""
    if not base_model:
        return None
    from affect_tf.core.layout import KERAS_FILE

    for candidate in (
        Path(base_model) / KERAS_FILE,
        Path(base_model) / "Format-Serving" / KERAS_FILE,
    ):
        if candidate.is_file():
            return str(candidate)
    log.warning("no %s in the base model %s; not warm-starting", KERAS_FILE, base_model)
    return None


def _datasets(config: AffectConfig, fn_args, custom: dict, tft_layer, raw_spec, seed: int):
    """``FitData`` from ExampleGen's splits through the Transform graph."""
    train_files = resolve_files(list(fn_args.train_files))
    eval_files = resolve_files(list(fn_args.eval_files))
    priors = read_priors(train_files, tft_layer, raw_spec)  # the analyzers': whole train split
    val_files, val_split = train_files, "eval"
    train_priors = measure_priors(train_files, "train", VALIDATION_PERCENT)
    val_priors = measure_priors(train_files, "eval", VALIDATION_PERCENT)
    if val_priors.n == 0 or train_priors.n == 0:
        # Too few videos for a hold-out: validate on ExampleGen's eval split (then the
        # Evaluator's numbers are no longer on unseen data -- say so).
        log.warning("the train split is too small for a validation hold-out; using eval")
        val_files, val_split = eval_files, None
        val_priors = measure_priors(eval_files, None)
        train_priors = priors
    # Optional: generated faces (``affect-tf gan examples``) join the training stream only.
    gan_files = resolve_files(custom["gan_examples"]) if custom.get("gan_examples") else []
    n_gan = count_examples(gan_files) if gan_files else 0
    if gan_files:
        log.info("adding %d generated faces from %s to the training stream", n_gan, gan_files)
    corpora = [resolve_files(p) for p in custom.get("corpora") or []]
    weights = custom.get("corpus_weights")
    if corpora and not weights:  # unweighted: the files join the stream whole, as gan_examples
        extra = [f for files in corpora for f in files]
        gan_files, n_gan = gan_files + extra, n_gan + count_examples(extra)
    parts = [measure_priors(files, None) for files in corpora] if weights else []
    n_train = train_priors.n + n_gan + sum(p.n for p in parts)
    steps = max(1, -(-n_train // config.batch_size))
    sampling = config.imbalance == "sampling"
    split = "train" if val_split else None
    if weights:
        # Each corpus its own stream, balanced on its own statistics; draws by weight.
        streams = [
            transformed_stream(files, tft_layer, raw_spec, split if i == 0 else None,
                               VALIDATION_PERCENT, seed, True, gan_files if i == 0 else (),
                               priors_i.balance_spec() if sampling else None)
            for i, (files, priors_i) in enumerate(
                [(train_files, train_priors), *zip(corpora, parts, strict=True)]
            )
        ]  # fmt: skip
        mixed = mix_streams(streams, weights, steps * config.batch_size, seed)
        train_ds = mixed.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)
        log.info("mixing %d corpora into training by weight %s", len(streams), weights)
        priors = mixture_priors([priors, *parts], weights)
    else:
        balance = train_priors.balance_spec(steps * config.batch_size) if sampling else None
        train_ds = make_transformed_dataset(
            train_files,
            tft_layer,
            raw_spec,
            config.batch_size,
            training=True,
            split=split,
            eval_percent=VALIDATION_PERCENT,
            seed=seed,
            extra_files=gan_files,
            balance=balance,
        )
    train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps))
    val_steps = max(1, -(-val_priors.n // config.batch_size))
    val_ds = make_transformed_dataset(
        val_files,
        tft_layer,
        raw_spec,
        config.batch_size,
        split=val_split,
        eval_percent=VALIDATION_PERCENT,
    ).apply(tf.data.experimental.assert_cardinality(val_steps))
    # The model's label graph and loss weights: the Transform analyzers' (the whole train split).
    return FitData(train_ds, val_ds, steps, val_steps, priors, val_priors)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (``fn_args``: ``tfx.components.FnArgs``): ``training.fit.fit`` on the
    Transform graph's output, then the SavedModel for TF Serving, TFMA and TFLite."""
    import tensorflow_transform as tft

    custom = dict(fn_args.custom_config or {})
    # Built before any other TF op of this process: MultiWorkerMirroredStrategy needs that.
    strategy = choose_strategy(custom.get("strategy", "auto"))
    config = model_config(custom)
    seed = int(custom.get("seed", 0))
    keras.utils.set_random_seed(seed)
    run_dir = Path(fn_args.model_run_dir)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    data = _datasets(config, fn_args, custom, tft_layer, raw_spec, seed)
    epochs = int(custom.get("epochs") or config.epochs)
    if fn_args.train_steps:
        # TrainArgs(num_steps) caps the total optimizer steps.
        epochs = max(1, min(epochs, -(-int(fn_args.train_steps) // data.steps)))
    if tf.config.list_logical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    warm_start = (
        _warm_start_file(getattr(fn_args, "base_model", None)) if custom.get("warm_start") else None
    )
    log.info(
        f"training {config.name} ({config.backbone}, {config.heads} heads, {config.image_size}px;"
        f" weights {config.weights or 'random'}, schedule {config.schedule}, imbalance "
        f"{config.imbalance}, augment {config.augment}) on {data.steps} batches of "
        f"{config.batch_size} faces, validating on "
        f"{data.val_priors.n}, {epochs} epochs of {data.steps} steps "
        f"({strategy.__class__.__name__}, {strategy.num_replicas_in_sync} replica(s))"
        + (f", warm start from {warm_start}" if warm_start else "")
    )
    result = fit(
        config,
        data,
        run_dir,
        epochs=epochs,
        patience=int(custom.get("patience", 5)),
        seed=seed,
        resume=False,
        warm_start=warm_start,
        strategy=strategy,
    )
    best = max(result.history.get("val_p_mtl", [float("nan")]))
    log.info(
        "best validation P_MTL %.4f over %s; %.1f s",
        best,
        ", ".join(result.tasks_measured),
        result.seconds,
    )
    # The export traces a copy of the model outside the strategy (no collective op), so only
    # the chief writes the Model; the other workers end here.
    if distribute.is_chief(strategy):
        export_saved_model(result.model, tft_layer, raw_spec, fn_args.serving_model_dir)
