"""Training, checkpointing, loading and sampling of the affect GAN.

A GAN folder (``affect-tf gan train --out DIR``) holds:

- ``gan.json``: what makes the folder a GAN checkpoint — the ``GANConfig``, the condition
  priors (per-expression AU rates and VA) used to fill in unspecified conditions when sampling,
  the label priors, the training data, the epoch reached and whether training finished;
- ``generator.keras``, ``discriminator.keras`` (real/fake + task heads) and ``recognizer.keras``
  (the discriminator as a plain ``AffectModel``: evaluate, export and serve it like any model);
- ``state/``: weights and optimizer state after the last finished epoch (for resuming);
- ``history.json``, ``training_curves.png`` and ``samples/epoch_NNN.png`` (one row per
  expression, the same noise every epoch, so progress is visible at a glance).
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

from affect_tf.data import targets as tg
from affect_tf.data.dataset import LabelPriors, label_batches, make_dataset
from affect_tf.errors import UserError
from affect_tf.gan.conditions import CONDITION_DIM, ConditionPriors
from affect_tf.gan.config import GANConfig
from affect_tf.gan.model import LOSS_NAMES, AffectGAN, check_condition_width
from affect_tf.gan.networks import CONDITION, NOISE, AffectDiscriminator, build_generator
from affect_tf.labels import AUS, EXPRESSIONS

KIND = "affect_tf.gan"
GAN_FILE = "gan.json"
GENERATOR_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"
RECOGNIZER_FILE = "recognizer.keras"
STATE_DIR = "state"


class NotAGANError(UserError):
    """A folder that is not (or not yet) a GAN written by ``affect-tf gan train``."""


@dataclasses.dataclass
class GANResult:
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


def generate(
    generator: keras.Model, conditions: np.ndarray, seed: int = 0, batch_size: int = 64
) -> np.ndarray:
    """Faces ``(N, S, S, 3)`` uint8 for conditions ``(N, 22)``; the same seed gives the same
    faces (the noise is drawn from ``numpy.random.default_rng(seed)``)."""
    conditions = np.asarray(conditions, np.float32)
    check_condition_width(conditions)
    noise_dim = generator.input[NOISE].shape[-1]
    noise = np.random.default_rng(seed).standard_normal((len(conditions), noise_dim))
    noise = noise.astype(np.float32)
    out = []
    for start in range(0, len(conditions), batch_size):
        part = slice(start, start + batch_size)
        images = generator({NOISE: noise[part], CONDITION: conditions[part]}, training=False)
        out.append(np.asarray(images))
    images = np.concatenate(out) if out else np.zeros((0, 1, 1, 3))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def grid_image(rows: Sequence[np.ndarray], labels: Sequence[str], gap: int = 2) -> np.ndarray:
    """One RGB image: each row of faces ``(k, S, S, 3)`` behind its label."""
    import cv2

    size = rows[0].shape[1]
    label_width = max(60, int(size * 1.6))
    lines = []
    for faces, label in zip(rows, labels, strict=True):
        tiles = []
        for face in faces:
            tiles += [face, np.full((size, gap, 3), 255, np.uint8)]
        tag = np.full((size, label_width, 3), 255, np.uint8)
        cv2.putText(
            tag, label, (3, size // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
        lines += [np.concatenate([tag, *tiles], axis=1), np.full((gap, 1, 3), 255, np.uint8)]
    width = max(line.shape[1] for line in lines)
    lines = [
        np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines
    ]
    return np.concatenate(lines, axis=0)


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Writes an RGB uint8 image (PNG, JPEG, ... by the extension)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"Expected a writable image path. Received: path={str(path)!r}")
    return path


def expression_grid(
    generator: keras.Model, priors: ConditionPriors, per_expression: int = 8, seed: int = 0
) -> np.ndarray:
    """One row per expression: its typical condition (``priors.condition``), different noise."""
    conditions = np.concatenate(
        [np.tile(priors.condition(e), (per_expression, 1)) for e in range(len(EXPRESSIONS))]
    )
    faces = generate(generator, conditions, seed=seed)
    rows = np.split(faces, len(EXPRESSIONS))
    labels = [
        f"{name}" + ("" if priors.counts[i] > 0 else " (unseen)")
        for i, name in enumerate(EXPRESSIONS)
    ]
    return grid_image(rows, labels)


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
        print(
            f"[gan] epoch {epoch + 1}/{self.epochs}  "
            + "  ".join(f"{k} {logs[k]:.3f}" for k in LOSS_NAMES if k in logs)
            + f"  ({seconds:.0f} s)",
            flush=True,
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


def recalibrate_batch_norm(model: keras.Model, images: tf.data.Dataset, batches: int = 50) -> int:
    """Re-estimates every batch-norm layer's moving statistics from ``images`` batches.

    The discriminator trains on batches that are half generated faces, so its moving
    statistics describe that mixture; as a recognizer (and for ``discriminator.keras``) it
    sees real faces only. Each layer's momentum is set so that the moving mean and variance
    become the plain average over the batches (momentum k / (k + 1) at batch k), then restored.
    Returns the number of batches used.
    """
    norms = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
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


def save_state(gan: AffectGAN, folder: Path) -> None:
    """Weights of both players and both optimizers' variables (resuming)."""
    folder.mkdir(parents=True, exist_ok=True)
    gan.generator.save_weights(folder / "generator.weights.h5")
    gan.discriminator.save_weights(folder / "discriminator.weights.h5")
    for name, optimizer in (("g", gan.g_optimizer), ("d", gan.d_optimizer)):
        store: dict = {}
        optimizer.save_own_variables(store)
        np.savez(folder / f"{name}_optimizer.npz", **store)


def load_state(gan: AffectGAN, folder: Path) -> None:
    gan.generator.load_weights(folder / "generator.weights.h5")
    gan.discriminator.load_weights(folder / "discriminator.weights.h5")
    for name, optimizer in (("g", gan.g_optimizer), ("d", gan.d_optimizer)):
        with np.load(folder / f"{name}_optimizer.npz") as store:
            optimizer.load_own_variables({k: store[k] for k in store.files})


def write_meta(out: Path, meta: dict) -> None:
    tmp = out / (GAN_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=float))
    tmp.replace(out / GAN_FILE)


def read_meta(folder: str | Path) -> dict:
    """``gan.json`` of a GAN folder.

    Raises:
        NotAGANError: When the folder has no (valid) ``gan.json``.
    """
    path = Path(folder)
    meta_path = path / GAN_FILE
    if not path.is_dir() or not meta_path.is_file():
        raise NotAGANError(
            "Expected a GAN folder written by `affect-tf gan train` (with gan.json, "
            f"generator.keras, discriminator.keras). Received: model={str(path)!r} "
            + ("(not a folder)" if not path.is_dir() else "(no gan.json)")
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NotAGANError(f"Expected a JSON gan.json. Received: {meta_path} ({e})") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise NotAGANError(
            f"Expected gan.json with kind {KIND!r}. Received: {meta_path} "
            f"(kind={meta.get('kind') if isinstance(meta, dict) else None!r})"
        )
    return meta


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
        out_dir: The GAN folder (module docstring).
        steps: Overrides ``config.steps``.
        resume: Continue from ``state/`` when ``gan.json`` says training did not finish.
        verbose: Keras progress (1 bar, 2 one line per epoch, 0 none) besides the
            ``[gan] epoch`` lines.

    Raises:
        ValueError: When the files hold no face with an expression label.
    """
    if steps is not None:
        config = config.replace(steps=steps)
    keras.utils.set_random_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [str(f) for f in files]
    # One label pass serves both the discriminator's priors and the generator's conditions.
    batches = list(label_batches(files, split=None))
    label_priors = LabelPriors()
    for batch in batches:
        label_priors.update(batch)
    if label_priors.n == 0:
        raise ValueError(f"Expected faces to train on. Received: none in {files}")
    priors = ConditionPriors.from_label_batches(batches, files)
    gan = build_gan(config, label_priors, seed=seed)

    meta = {
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
    initial_epoch, history = 0, {}
    if resume and (out / GAN_FILE).is_file() and (out / STATE_DIR).is_dir():
        old = read_meta(out)
        if not old.get("finished") and old.get("config") == meta["config"] and old.get("epoch"):
            load_state(gan, out / STATE_DIR)
            initial_epoch, history = int(old["epoch"]), dict(old.get("history", {}))
            print(f"[gan] resuming {out} at epoch {initial_epoch}/{config.epochs}", flush=True)
    meta.update(epoch=initial_epoch, history=history)
    write_meta(out, meta)

    def faces(batch_size: int, cache: bool = True) -> tf.data.Dataset:
        """Shuffled, aligned real faces and their targets (every file, no split)."""
        margin = config.affect_config.margin
        return make_dataset(
            files,
            config.image_size,
            margin,
            batch_size,
            training=True,
            seed=seed,
            cache=cache,
        )

    real = faces(256).unbatch().repeat()
    labelled_share = config.labelled_share
    if labelled_share:
        # A second stream of the labelled faces only; each real face of a batch comes from it
        # with probability labelled_share, otherwise from all faces.
        labelled = faces(256).unbatch().filter(_has_label).repeat()
        real = tf.data.Dataset.sample_from_datasets(
            [labelled, real], weights=[labelled_share, 1.0 - labelled_share], seed=seed
        )
    real = real.batch(config.batch_size, drop_remainder=True)
    conditions = priors.dataset(config.batch_size, config.balance_conditions, seed=seed)
    data = tf.data.Dataset.zip((real, conditions)).prefetch(tf.data.AUTOTUNE)
    print(
        f"[gan] {label_priors.n} faces ({int(priors.counts.sum())} with an expression label), "
        f"{config.steps} steps of {config.batch_size} at {config.image_size}px"
        + (f", >= {config.labelled_share:.0%} labelled faces a batch" if labelled_share else "")
        + f" -> {out}",
        flush=True,
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
    recalibrate_batch_norm(gan.discriminator.recognizer, faces(64, cache=False).map(_images_only))
    gan.generator.save(out / GENERATOR_FILE)
    gan.discriminator.save(out / DISCRIMINATOR_FILE)
    gan.discriminator.recognizer.save(out / RECOGNIZER_FILE)
    write_png(expression_grid(gan.generator, priors, seed=0), out / "samples.png")
    (out / "history.json").write_text(json.dumps(history, indent=2))
    if history:
        from affect_tf.fitting import plot_history

        plot_history(history, out / "training_curves.png")
    meta.update(finished=True, seconds=seconds, history=history)
    write_meta(out, meta)
    return GANResult(gan, out, history, seconds, priors)


@dataclasses.dataclass
class LoadedGAN:
    generator: keras.Model
    discriminator: AffectDiscriminator | None
    config: GANConfig
    priors: ConditionPriors
    meta: dict


def load_gan(folder: str | Path, discriminator: bool = False) -> LoadedGAN:
    """A trained GAN folder -> generator (and discriminator), config and condition priors.

    Raises:
        NotAGANError: When the folder is not a finished GAN (the message says what is missing).
    """
    path = Path(folder)
    meta = read_meta(path)
    if not (path / GENERATOR_FILE).is_file():
        raise NotAGANError(
            f"Expected {GENERATOR_FILE} in the GAN folder. Received: model={str(path)!r} "
            f"(training reached epoch {meta.get('epoch')} and has not finished; resume it "
            "with `affect-tf gan train` and the same --out)"
        )
    generator = keras.models.load_model(path / GENERATOR_FILE)
    disc = keras.models.load_model(path / DISCRIMINATOR_FILE) if discriminator else None
    return LoadedGAN(
        generator,
        disc,
        GANConfig.from_dict(meta["config"]),
        ConditionPriors.from_dict(meta["condition_priors"]),
        meta,
    )


def generated_examples(
    generator: keras.Model,
    conditions: np.ndarray,
    seed: int = 0,
    margin: float = 0.25,
    video_prefix: str = "gan",
) -> list:
    """Generated faces as ``FaceRecord``s with the conditions as labels (AU ≥ 0.5 occurs), so
    they join any training set as tf.Examples. Each face is its own "video" (no leakage across
    a by-video split); landmarks are the alignment template, so the pipeline's alignment leaves
    the generated crop as it is."""
    import cv2

    from affect_tf.data.examples import FaceRecord
    from affect_tf.face.align import template_points
    from affect_tf.gan.conditions import AU_SLICE, EXPR_SLICE, VA_SLICE

    faces = generate(generator, conditions, seed=seed)
    size = faces.shape[1]
    points = np.asarray(template_points(size, margin)).reshape(5, 2)
    records = []
    for i, (face, cond) in enumerate(zip(faces, conditions, strict=True)):
        ok, png = cv2.imencode(".png", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError("Expected PNG encoding of a generated face to succeed")
        va = np.clip(cond[VA_SLICE], -1, 1)
        records.append(
            FaceRecord(
                image=png.tobytes(),
                bbox=[0.0, 0.0, float(size), float(size)],
                landmarks=points,
                valence=float(va[0]),
                arousal=float(va[1]),
                va_mask=1,
                expression=int(np.argmax(cond[EXPR_SLICE])),
                expr_mask=1,
                au=[int(v >= 0.5) for v in cond[AU_SLICE]],
                au_mask=[1] * (AU_SLICE.stop - AU_SLICE.start),
                video_id=f"{video_prefix}{seed}_{i:06d}",
                frame=0,
                source="gan",
            )
        )
    return records


def write_generated_examples(
    folder: str | Path,
    counts: dict[str | int, int],
    out_file: str | Path,
    seed: int = 0,
    margin: float = 0.25,
) -> Path:
    """Writes ``counts[expression]`` generated faces per expression to a GZIP TFRecord.

    Conditions are drawn around each expression's typical condition: its AU rates decide each
    AU's occurrence at random and VA is drawn from its measured spread, so the faces vary.
    """
    from affect_tf.data.examples import serialize_example
    from affect_tf.gan.conditions import AU_SLICE, VA_SLICE, expression_index

    loaded = load_gan(folder)
    rng = np.random.default_rng(seed)
    rows = []
    for expression, n in counts.items():
        c = expression_index(expression)
        base = loaded.priors.condition(c)
        cond = np.tile(base, (int(n), 1))
        cond[:, AU_SLICE] = rng.random((int(n), AU_SLICE.stop - AU_SLICE.start)) < base[AU_SLICE]
        cond[:, VA_SLICE] = np.clip(
            base[VA_SLICE] + rng.normal(0, 1, (int(n), 2)) * loaded.priors.va_std[c], -1, 1
        )
        rows.append(cond.astype(np.float32))
    conditions = np.concatenate(rows) if rows else np.zeros((0, CONDITION_DIM), np.float32)
    records = generated_examples(loaded.generator, conditions, seed=seed, margin=margin)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(out), options="GZIP" if out.name.endswith(".gz") else None) as w:
        for record in records:
            w.write(serialize_example(record))
    return out
