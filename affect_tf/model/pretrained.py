"""Pretrained backbones: the shipped SynthAffect weights, ImageNet through Keras Applications,
a local weights file (checked against its card when ``affect-tf pretrain`` wrote one), or the
backbone of an earlier model of this project.

``AffectModel`` itself never loads or downloads anything (building one is offline and cheap,
and loading a saved model restores its own weights); training calls
``load_backbone_weights`` once, on a fresh model, with ``AffectConfig.weights``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras

from affect_tf.core.errors import UserError
from affect_tf.model.backbones import build_backbone
from affect_tf.model.config import IMAGENET_BACKBONES
from affect_tf.model.shipped import SYNTHAFFECT, check_card, find_shipped

log = logging.getLogger(__name__)
_APPLICATIONS = {
    "efficientnet_b0": ("EfficientNetB0", {}),
    "mobilenet_v3_small": ("MobileNetV3Small", {"include_preprocessing": True}),
}


class PretrainedWeightsError(UserError):
    """Pretrained weights that cannot be had or do not fit; the message names the setting."""


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights (``$KERAS_HOME/models``, default ~/.keras/models)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def imagenet_backbone(name: str, image_size: int) -> keras.Model:
    """The Keras Applications model with ImageNet weights (Keras' own download and cache).

    Raises:
        PretrainedWeightsError: For a backbone without ImageNet weights, or when the download
            fails (no internet access), naming the local-file alternative and the cache.
    """
    if name not in IMAGENET_BACKBONES:
        raise PretrainedWeightsError(
            f"Expected a backbone with ImageNet weights {IMAGENET_BACKBONES}. "
            f"Received: backbone={name!r}, weights='imagenet'"
        )
    cls_name, extra = _APPLICATIONS[name]
    cls = getattr(keras.applications, cls_name)
    try:
        return cls(
            include_top=False,
            weights="imagenet",
            input_shape=(image_size, image_size, 3),
            pooling="avg",
            **extra,
        )
    except Exception as e:  # Keras raises a bare Exception ("URL fetch failure ...") offline
        raise PretrainedWeightsError(
            f"Expected to download the ImageNet weights of {name} through Keras (into "
            f"{keras_cache_dir()}). Received: {type(e).__name__}: {str(e).splitlines()[0][:160]}."
            " Without internet access, on a machine that has it run `keras.applications."
            f"{cls_name}(include_top=False, weights='imagenet', pooling='avg', input_shape="
            f"({image_size}, {image_size}, 3)).save_weights('{name}_{image_size}.weights.h5')` "
            "and pass that file as weights (--weights), or copy Keras' cached file into "
            f"{keras_cache_dir()}"
        ) from None


def _backbone_of_keras_model(path: Path, name: str, image_size: int) -> keras.Model:
    from affect_tf.model.loading import ModelLoadError, load_model

    try:
        source = load_model(path, compile=False)
    except ModelLoadError as e:
        reason = (e.cause or str(e)).splitlines()[0][:160]
        raise PretrainedWeightsError(
            f"Expected an affect-tf .keras model. Received: weights={str(path)!r} ({reason})"
        ) from None
    config = getattr(source, "affect_config", None)
    if config is None:
        # A GAN discriminator or a wrapper: its recognizer is the AffectModel.
        config = getattr(getattr(source, "recognizer", None), "affect_config", None)
        source = getattr(source, "recognizer", source)
    if config is None:
        raise PretrainedWeightsError(
            f"Expected an affect-tf .keras model (an AffectModel). Received: weights={str(path)!r}"
            f" ({type(source).__name__})"
        )
    if config.backbone != name:
        raise PretrainedWeightsError(
            f"Expected a model whose backbone is {name!r}. Received: weights={str(path)!r} "
            f"(backbone {config.backbone!r} at {config.image_size}x{config.image_size})"
        )
    if config.image_size != image_size:
        # Convolutional weights do not depend on the input size; the shapes are checked below.
        log.info(
            "backbone of %s was trained at %dpx; using it at %dpx",
            path,
            config.image_size,
            image_size,
        )
    return source.get_layer("backbone")


def load_backbone_weights(model: keras.Model, weights: str) -> str:
    """Sets the backbone of ``model`` (an ``AffectModel``) from ``weights``.

    Args:
        model: The model, whose ``affect_config`` names the backbone and size.
        weights: ``synthaffect`` (the shipped weights of this backbone at this size),
            ``imagenet``, a ``.weights.h5`` file of this backbone at this size (its card, when
            it has one, must say so), or a ``.keras`` model of this project with the same
            backbone.

    Returns:
        A short description of the source (for logs and the model card).

    Raises:
        PretrainedWeightsError: Naming the setting, for weights that cannot be had or do not fit.
    """
    config = model.affect_config
    name, size = config.backbone, config.image_size
    target = model.get_layer("backbone")
    if weights == "imagenet":
        source = imagenet_backbone(name, size)
        description = f"ImageNet ({source.name}, Keras Applications)"
    else:
        path = Path(weights)
        if weights == SYNTHAFFECT:
            path = find_shipped(name, size).path  # its card is checked below, as any file's
        if not path.is_file():
            raise PretrainedWeightsError(
                "Expected weights 'synthaffect', 'imagenet', a .weights.h5 file or a .keras model. "
                f"Received: weights={weights!r} (no such file)"
            )
        if path.suffix == ".keras":
            source = _backbone_of_keras_model(path, name, size)
            description = f"backbone of {path}"
        else:
            card = check_card(path, name, size)
            try:
                source = build_backbone(name, size, path)
            except ValueError as e:
                raise PretrainedWeightsError(str(e)) from None
            description = f"weights file {path}"
            if weights == SYNTHAFFECT:
                description = f"shipped SynthAffect weights {path.name}"
            if card:
                description += f" (card: {card.get('preset')} preset, {card.get('git_revision')})"
    source_weights = source.get_weights()
    shapes = [w.shape for w in target.get_weights()]
    if [w.shape for w in source_weights] != shapes:
        raise PretrainedWeightsError(
            f"Expected weights of backbone {name!r} at {size}x{size} ({len(shapes)} arrays). "
            f"Received: weights={weights!r} with {len(source_weights)} arrays of other shapes"
        )
    target.set_weights(source_weights)
    log.info("backbone %s initialised from %s", name, description)
    return description
