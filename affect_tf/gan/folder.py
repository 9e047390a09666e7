"""The GAN folder: what makes a folder a GAN checkpoint, saving state, loading it back.

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
from pathlib import Path

import keras
import numpy as np

from affect_tf.core.errors import UserError
from affect_tf.core.files import replaced_atomically
from affect_tf.gan.conditions import ConditionPriors
from affect_tf.gan.config import GANConfig
from affect_tf.gan.model import AffectGAN
from affect_tf.gan.networks import AffectDiscriminator

KIND = "affect_tf.gan"
GAN_FILE = "gan.json"
GENERATOR_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"
RECOGNIZER_FILE = "recognizer.keras"
STATE_DIR = "state"


class NotAGANError(UserError):
    """A folder that is not (or not yet) a GAN written by ``affect-tf gan train``."""


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
    """Restores what ``save_state`` wrote."""
    gan.generator.load_weights(folder / "generator.weights.h5")
    gan.discriminator.load_weights(folder / "discriminator.weights.h5")
    for name, optimizer in (("g", gan.g_optimizer), ("d", gan.d_optimizer)):
        with np.load(folder / f"{name}_optimizer.npz") as store:
            optimizer.load_own_variables({k: store[k] for k in store.files})


def write_meta(out: Path, meta: dict) -> None:
    """Writes ``gan.json`` atomically (a kill never leaves half a file)."""
    with replaced_atomically(out / GAN_FILE) as partial:
        partial.write_text(json.dumps(meta, indent=2, default=float))


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


@dataclasses.dataclass
class LoadedGAN:
    """A trained GAN read back from its folder."""

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
