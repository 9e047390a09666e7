"""Training the affect GAN: data streams, the fit, checkpoints per epoch, the finished folder.

What the GAN folder holds and how it is read back: ``affect_tf.gan.folder``; sampling from it:
``affect_tf.gan.sampling``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from affect_tf.core.labels import AUS
from affect_tf.data import targets as tg
from affect_tf.data.dataset import LabelPriors, label_batches, make_dataset
from affect_tf.gan.conditions import ConditionPriors
from affect_tf.gan.config import GANConfig
from affect_tf.gan.folder import (
    DISCRIMINATOR_FILE,
    GAN_FILE,
    GENERATOR_FILE,
    KIND,
    RECOGNIZER_FILE,
    STATE_DIR,
    load_state,
    read_meta,
    save_state,
    write_meta,
)
from affect_tf.gan.model import LOSS_NAMES, AffectGAN
from affect_tf.gan.networks import AffectDiscriminator, build_generator
from affect_tf.gan.sampling import expression_grid, write_png

log = logging.getLogger(__name__)


@dataclasses.dataclass
class GANResult:
    """What ``train_gan`` returns: the trained GAN, its folder, history, seconds, priors."""

    gan: AffectGAN
    out_dir: Path
    history: dict
    seconds: float
    priors: ConditionPriors


def build_gan(config: GANConfig, label_priors, seed: int = 0) -> AffectGAN:
    """An untrained, compiled ``AffectGAN``; the discriminator's class / AU weights and label
    graph come from ``label_priors`` (``data.dataset.LabelPriors`` of the labelled faces)."""
    affect = config.affect_config
    discriminator = AffectDiscriminator(
        affect,
        adjacency=(
            label_priors.adjacency(affect.gcn_tau, affect.gcn_p) if affect.heads == "gcn" else None
        ),
        class_weights=label_priors.class_weights(),
        pos_weights=label_priors.pos_weights(),
    )
    gan = AffectGAN(build_generator(config), discriminator, config, seed=seed)
    gan.compile()
    return gan


class _Checkpoint(keras.callbacks.Callback):
    """After each epoch: state for resuming, ``gan.json``, a sample grid and a progress line."""

    def __init__(self, out: Path, meta: dict, priors: ConditionPriors, history: dict, epochs: int):
        super().__init__()
        self.out, self.meta, self.priors, self.history = out, meta, priors, history
        self.epochs = epochs
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        gan: AffectGAN = self.model
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        save_state(gan, self.out / STATE_DIR)
        self.meta.update(epoch=epoch + 1, history=self.history)
        write_meta(self.out, self.meta)
        grid = expression_grid(gan.generator, self.priors, per_expression=6, seed=0)
        write_png(grid, self.out / "samples" / f"epoch_{epoch + 1:03d}.png")
        seconds = time.perf_counter() - self.start
        log.info(
            "[gan] epoch %d/%d  %s  (%.0f s)",
            epoch + 1,
            self.epochs,
            "  ".join(f"{k} {logs[k]:.3f}" for k in LOSS_NAMES if k in logs),
            seconds,
        )


def _has_label(images, targets):
    """Whether a face has any label (``affect_tf.data.targets`` layout)."""
    masks = [
        targets[tg.VA][2:3],
        targets[tg.EXPRESSION][1:2],
        targets[tg.AU][len(AUS) :],
    ]
    return tf.reduce_max(tf.concat(masks, axis=0)) > 0


def _images_only(images, targets):
    return images


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer inside ``model``, nested models' layers included (public ``.layers`` only)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(all_layers(layer))
    return found


def recalibrate_batch_norm(model: keras.Model, images: tf.data.Dataset, batches: int = 50) -> int:
    """Re-estimates every batch-norm layer's moving statistics from ``images`` batches.

    The discriminator trains on batches that are half generated faces, so its moving
    statistics describe that mixture; as a recognizer (and for ``discriminator.keras``) it
    sees real faces only. Each layer's momentum is set so that the moving mean and variance
    become the plain average over the batches (momentum k / (k + 1) at batch k), then restored.
    Returns the number of batches used.
    """
    norms = [
        layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    ]
    momenta = [layer.momentum for layer in norms]
    used = 0
    try:
        for k, batch in enumerate(images.take(batches)):
            for layer in norms:
                layer.momentum = k / (k + 1)
            model(batch, training=True)
            used += 1
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum
    return used


def train_gan(
    config: GANConfig,
    files: Sequence[str],
    out_dir: str | Path,
    steps: int | None = None,
    resume: bool = True,
    seed: int = 0,
    verbose: int = 2,
) -> GANResult:
    """Trains the affect GAN on tf.Example files (labelled and unlabelled faces together).

    Faces without any label (all masks 0) train only the adversarial game; labelled ones also
    teach the discriminator's task heads. The generator's conditions are drawn from the
    expression-labelled faces, balanced over expressions (``config.balance_conditions``).

    Args:
        config: A ``GANConfig`` (preset).
        files: tf.Example files (every example is used; evaluate on other data).
        out_dir: The GAN folder (``affect_tf.gan.folder``).
        steps: Overrides ``config.steps``.
        resume: Continue from ``state/`` when ``gan.json`` says training did not finish.
        verbose: Keras progress (1 bar, 2 one line per epoch, 0 none) besides the
            ``[gan] epoch`` log lines.

    Raises:
        ValueError: When the files hold no face with an expression label.
    """
    if steps is not None:
        config = config.replace(steps=steps)
    keras.utils.set_random_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [str(f) for f in files]
    label_priors, priors = _priors(files)
    gan = build_gan(config, label_priors, seed=seed)
    meta = _new_meta(config, label_priors, priors, files, seed)
    initial_epoch, history = _resume_point(gan, out, meta, resume) if resume else (0, {})
    meta.update(epoch=initial_epoch, history=history)
    write_meta(out, meta)
    data = tf.data.Dataset.zip(
        (
            _real_faces(config, files, seed),
            priors.dataset(config.batch_size, config.balance_conditions, seed=seed),
        )
    ).prefetch(tf.data.AUTOTUNE)
    log.info(
        "[gan] %d faces (%d with an expression label), %d steps of %d at %dpx%s -> %s",
        label_priors.n,
        int(priors.counts.sum()),
        config.steps,
        config.batch_size,
        config.image_size,
        f", >= {config.labelled_share:.0%} labelled faces a batch" if config.labelled_share else "",
        out,
    )
    start = time.perf_counter()
    if initial_epoch < config.epochs:
        gan.fit(
            data,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=config.steps_per_epoch,
            callbacks=[_Checkpoint(out, meta, priors, history, config.epochs)],
            verbose=verbose,
            shuffle=False,  # the tf.data stream shuffles itself
        )
    seconds = time.perf_counter() - start
    _finish(gan, config, files, seed, out, priors, history)
    meta.update(finished=True, seconds=seconds, history=history)
    write_meta(out, meta)
    return GANResult(gan, out, history, seconds, priors)


def _new_meta(
    config: GANConfig, label_priors: LabelPriors, priors: ConditionPriors, files: list, seed: int
) -> dict:
    """``gan.json`` of a run about to start (``affect_tf.gan.folder``)."""
    return {
        "kind": KIND,
        "version": 1,
        "config": config.to_dict(),
        "condition_priors": priors.to_dict(),
        "label_priors": label_priors.to_dict(),
        "data": files,
        "faces": label_priors.n,
        "epoch": 0,
        "finished": False,
        "seed": seed,
        "history": {},
    }


def _priors(files: list[str]) -> tuple[LabelPriors, ConditionPriors]:
    """One label pass serves both the discriminator's priors and the generator's conditions."""
    batches = list(label_batches(files, split=None))
    label_priors = LabelPriors()
    for batch in batches:
        label_priors.update(batch)
    if label_priors.n == 0:
        raise ValueError(f"Expected faces to train on. Received: none in {files}")
    return label_priors, ConditionPriors.from_label_batches(batches, files)


def _resume_point(gan: AffectGAN, out: Path, meta: dict, resume: bool) -> tuple[int, dict]:
    """``(epoch, history)`` to continue from: the unfinished run of the same config in ``out``
    (its state loaded into ``gan``), else ``(0, {})``."""
    if not (resume and (out / GAN_FILE).is_file() and (out / STATE_DIR).is_dir()):
        return 0, {}
    old = read_meta(out)
    if old.get("finished") or old.get("config") != meta["config"] or not old.get("epoch"):
        return 0, {}
    load_state(gan, out / STATE_DIR)
    epoch = int(old["epoch"])
    log.info(
        "[gan] resuming %s at epoch %d/%d", out, epoch, GANConfig.from_dict(old["config"]).epochs
    )
    return epoch, dict(old.get("history", {}))


def _faces(config: GANConfig, files: list[str], seed: int, batch_size: int, cache: bool = True):
    """Shuffled, aligned real faces and their targets (every file, no split)."""
    return make_dataset(
        files,
        config.image_size,
        config.affect_config.margin,
        batch_size,
        training=True,
        seed=seed,
        cache=cache,
    )


def _real_faces(config: GANConfig, files: list[str], seed: int) -> tf.data.Dataset:
    """Batches of real faces; with ``labelled_share`` each face comes from the labelled faces
    with that probability, otherwise from all faces."""
    real = _faces(config, files, seed, 256).unbatch().repeat()
    share = config.labelled_share
    if share:
        labelled = _faces(config, files, seed, 256).unbatch().filter(_has_label).repeat()
        real = tf.data.Dataset.sample_from_datasets(
            [labelled, real], weights=[share, 1.0 - share], seed=seed
        )
    return real.batch(config.batch_size, drop_remainder=True)


def _finish(
    gan: AffectGAN,
    config: GANConfig,
    files: list[str],
    seed: int,
    out: Path,
    priors: ConditionPriors,
    history: dict,
) -> None:
    """Batch norm re-estimated on real faces, then the three models, samples and curves."""
    images = _faces(config, files, seed, 64, cache=False).map(_images_only)
    recalibrate_batch_norm(gan.discriminator.recognizer, images)
    gan.generator.save(out / GENERATOR_FILE)
    gan.discriminator.save(out / DISCRIMINATOR_FILE)
    gan.discriminator.recognizer.save(out / RECOGNIZER_FILE)
    write_png(expression_grid(gan.generator, priors, seed=0), out / "samples.png")
    (out / "history.json").write_text(json.dumps(history, indent=2))
    if history:
        from affect_tf.training.callbacks import plot_history

        plot_history(history, out / "training_curves.png")
