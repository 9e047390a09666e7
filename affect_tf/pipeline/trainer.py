"""The TFX Trainer's ``run_fn``: AffectModel on the Transform graph's output, exported for
TF Serving, TFMA and TFLite.

- Inputs: ExampleGen's raw examples through the Transform layer (``make_transformed_dataset``),
  the ``label_priors`` the Transform analyzers computed on the train split (class weights, AU
  positive weights, the GCN adjacency).
- Early stopping and the kept weights use a by-video hold-out *of the train split*
  (``VALIDATION_PERCENT`` of its videos), so the Evaluator's eval split stays unseen.
- ``tf.distribute``: MirroredStrategy over the visible GPUs (mixed float16 on GPU), the
  default strategy on CPU; ``strategy`` in the custom config forces one (``multiworker``
  for ``MultiWorkerMirroredStrategy`` with ``TF_CONFIG`` set by the cluster).
- Writes TensorBoard logs, ``history.json``, ``training_curves.png`` and ``priors.json`` to the
  ModelRun artifact; the SavedModel (+ ``assets.extra/affect_model.keras``) to the Model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from affect_tf.data import examples as ex
from affect_tf.data.dataset import (
    LabelPriors,
    count_examples,
    make_transformed_dataset,
    resolve_files,
    serialized_examples,
)
from affect_tf.export import export_saved_model
from affect_tf.model.config import AffectConfig, get_preset
from affect_tf.pipeline.config import STRATEGIES
from affect_tf.training import PMTLCallback, model_from_priors, plot_history

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
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored" or (kind == "auto" and gpus):
        return tf.distribute.MirroredStrategy()
    if kind not in STRATEGIES:
        raise ValueError(f"Expected a strategy in {STRATEGIES}. Received: strategy={kind!r}")
    return tf.distribute.get_strategy()


def read_priors(files: list[str], tft_layer, raw_feature_spec: dict) -> LabelPriors:
    """The analyzers' ``label_priors`` (a constant of the Transform graph) via one example."""
    serialized = next(iter(serialized_examples(files).take(1)))
    features = tf.io.parse_example(serialized[tf.newaxis], raw_feature_spec)
    return LabelPriors.from_vector(tft_layer(features)[ex.LABEL_PRIORS][0].numpy())


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (``fn_args``: ``tfx.components.FnArgs``)."""
    import tensorflow_transform as tft

    custom = dict(fn_args.custom_config or {})
    config = model_config(custom)
    seed = int(custom.get("seed", 0))
    keras.utils.set_random_seed(seed)
    run_dir = Path(fn_args.model_run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    # TFX hands file patterns (``.../Split-train/*``).
    train_files = resolve_files(list(fn_args.train_files))
    eval_files = resolve_files(list(fn_args.eval_files))
    priors = read_priors(train_files, tft_layer, raw_spec)
    (run_dir / "priors.json").write_text(json.dumps(priors.to_dict(), indent=2))
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    n_train = count_examples(train_files, "train", VALIDATION_PERCENT)
    n_val = count_examples(train_files, "eval", VALIDATION_PERCENT)
    val_files, val_split = train_files, "eval"
    if n_val == 0 or n_train == 0:
        # Too few videos for a hold-out: validate on ExampleGen's eval split (then the
        # Evaluator's numbers are no longer on unseen data -- say so).
        print("warning: the train split is too small for a validation hold-out; using eval")
        n_train, val_files, val_split = count_examples(train_files), eval_files, None
        n_val = count_examples(eval_files)
    # Optional: generated faces (``affect-tf gan examples``) join the training stream only.
    gan_files = resolve_files(custom["gan_examples"]) if custom.get("gan_examples") else []
    n_gan = count_examples(gan_files) if gan_files else 0
    if gan_files:
        print(f"adding {n_gan} generated faces from {gan_files} to the training stream")
    n_train += n_gan
    train_ds = make_transformed_dataset(
        train_files,
        tft_layer,
        raw_spec,
        config.batch_size,
        training=True,
        split="train" if val_split else None,
        eval_percent=VALIDATION_PERCENT,
        seed=seed,
        extra_files=gan_files,
    )
    val_ds = make_transformed_dataset(
        val_files,
        tft_layer,
        raw_spec,
        config.batch_size,
        split=val_split,
        eval_percent=VALIDATION_PERCENT,
    )
    steps = max(1, -(-n_train // config.batch_size))
    train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps))
    val_ds = val_ds.apply(
        tf.data.experimental.assert_cardinality(max(1, -(-n_val // config.batch_size)))
    )
    epochs = int(custom.get("epochs") or config.epochs)
    if fn_args.train_steps:
        # TrainArgs(num_steps) caps the total optimizer steps.
        epochs = max(1, min(epochs, -(-int(fn_args.train_steps) // steps)))

    strategy = choose_strategy(custom.get("strategy", "auto"))
    if tf.config.list_logical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    with strategy.scope():
        model = model_from_priors(config, priors)
        model.compile_for_training(steps, epochs)
    callbacks = [
        PMTLCallback(),
        keras.callbacks.EarlyStopping(
            monitor="val_p_mtl",
            mode="max",
            patience=int(custom.get("patience", 5)),
            restore_best_weights=True,
        ),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), update_freq="epoch"),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
    ]
    print(
        f"training {config.name} ({config.backbone}, {config.heads} heads, {config.image_size}px)"
        f" on {n_train} faces, validating on {n_val}, {epochs} epochs of {steps} steps"
        f" ({strategy.__class__.__name__}, {strategy.num_replicas_in_sync} replica(s))",
        flush=True,
    )
    start = time.perf_counter()
    fit = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        callbacks=callbacks,
        verbose=2,
        shuffle=False,  # the tf.data pipeline shuffles
    )
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    (run_dir / "history.json").write_text(
        json.dumps({"seconds": seconds, "n_train": n_train, "n_val": n_val, **history}, indent=2)
    )
    if history:
        plot_history(history, run_dir / "training_curves.png")
    best = int(np.argmax(history.get("val_p_mtl", [0.0])))
    print(
        f"best validation P_MTL {max(history.get('val_p_mtl', [float('nan')])):.4f} "
        f"at epoch {best + 1}; {seconds:.1f} s",
        flush=True,
    )
    export_saved_model(model, tft_layer, raw_spec, fn_args.serving_model_dir)
