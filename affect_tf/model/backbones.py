"""Backbones by name: image ``(S, S, 3)`` float in [0, 255] -> pooled feature vector.

Every backbone takes raw 0-255 RGB, so the model's input contract does not change with the
backbone (Keras' EfficientNet and MobileNetV3 normalise internally; ``small_cnn`` rescales).
Weights are random (``weights=None``) or loaded from a local file; nothing is downloaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

from affect_tf.model.config import BACKBONE_NAMES


def _small_cnn(size: int, name: str) -> keras.Model:
    """Five conv blocks (stride 2) + global average pooling: fast on CPU, for tests and `tiny`."""
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    for i, filters in enumerate((24, 48, 96, 160, 256)):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}b")(x)
        x = layers.BatchNormalization(name=f"bn{i}b")(x)
        x = layers.Activation("relu", name=f"relu{i}b")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=name)


# (filters, convolutions) per stage: the FER+ paper's VGG-13 (Barsoum et al. 2016: 64-128-256-256,
# 2-2-3-3 convolutions, max pooling, dropout) at half width in the first stages and without its
# two 1024-unit dense layers (27 M of its 35 MB): 1.9 M parameters, 7.6 MB in float32.
VGG_SMALL_STAGES = ((32, 2), (64, 2), (128, 3), (256, 3))
VGG_SMALL_DROPOUT = 0.25


def _vgg_small(size: int, name: str) -> keras.Model:
    """A VGG-13-style stack for small faces (the shipped model's backbone): four stages of 3x3
    convolutions (BatchNorm, ReLU), each ending in 2x2 max pooling and dropout, then global
    average pooling. Keeps full resolution in the first stage, where a 48-64 px face's AU cues
    (lid, brow, lip corner) are a few pixels wide; ``small_cnn`` strides at once."""
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    for stage, (filters, convs) in enumerate(VGG_SMALL_STAGES):
        for i in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{stage}_{i}")(
                x
            )
            x = layers.BatchNormalization(name=f"bn{stage}_{i}")(x)
            x = layers.Activation("relu", name=f"relu{stage}_{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        x = layers.Dropout(VGG_SMALL_DROPOUT, name=f"drop{stage}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=name)


APPLICATION_BN_MOMENTUM = 0.9  # stats converge within ~20 steps (PyTorch's default, 0.1)


def _trainable_batchnorm(model: keras.Model) -> keras.Model:
    """A Keras Applications model whose BatchNorm layers train at ``APPLICATION_BN_MOMENTUM``.

    Keras Applications build BatchNorm with momentum 0.999, tuned for ImageNet-length runs: after
    the few hundred steps of a CPU run from random weights the moving statistics are still mostly
    their initial 0/1 and inference is noise (measured: a MobileNetV3 pretrain at train P_MTL 1.49
    scored 0.03 on validation after 384 steps). Pretrained backbones run BatchNorm in inference
    mode, so this only changes how fast training updates them.
    """
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = APPLICATION_BN_MOMENTUM
    return model


def _efficientnet_b0(size: int, name: str) -> keras.Model:
    return _trainable_batchnorm(
        keras.applications.EfficientNetB0(
            include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg", name=name
        )
    )


def _mobilenet_v3_small(size: int, name: str) -> keras.Model:
    return _trainable_batchnorm(
        keras.applications.MobileNetV3Small(
            input_shape=(size, size, 3),
            include_top=False,
            weights=None,
            pooling="avg",
            include_preprocessing=True,
            name=name,
        )
    )


BACKBONES: dict[str, Callable[[int, str], keras.Model]] = {
    "efficientnet_b0": _efficientnet_b0,
    "mobilenet_v3_small": _mobilenet_v3_small,
    "small_cnn": _small_cnn,
    "vgg_small": _vgg_small,
}
if tuple(BACKBONES) != BACKBONE_NAMES:  # config.BACKBONE_NAMES is the list users see
    raise ImportError(f"BACKBONES {tuple(BACKBONES)} != config.BACKBONE_NAMES {BACKBONE_NAMES}")
MIN_SIZE = 32


def build_backbone(name: str, image_size: int, weights: str | Path | None = None) -> keras.Model:
    """Builds a backbone by name.

    Args:
        name: One of ``BACKBONES``.
        image_size: Input side in pixels.
        weights: None (random init) or a local Keras weights file (``.weights.h5``) of this
            backbone at this size, e.g. ImageNet weights saved once with
            ``keras.applications.EfficientNetB0(include_top=False, pooling="avg").save_weights``.

    Raises:
        ValueError: Unknown name, size too small, or a weights file that does not fit.
    """
    if name not in BACKBONES:
        raise ValueError(f"Expected a backbone in {sorted(BACKBONES)}. Received: backbone={name!r}")
    if image_size < MIN_SIZE:
        raise ValueError(
            f"Expected image_size >= {MIN_SIZE} for {name}. Received: image_size={image_size}"
        )
    model = BACKBONES[name](image_size, "backbone")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(
                f"Expected a local weights file. Received: weights={str(path)!r} (not found)"
            )
        try:
            # Keras only *warns* when it skips parts of a file that do not match ("Skipping
            # nested container ..."), leaving those layers random: treat that as a mismatch.
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)
                model.load_weights(str(path))
        except Exception as e:  # Keras raises ValueError/KeyError/OSError depending on the mismatch
            raise ValueError(
                f"Expected weights of backbone {name!r} at {image_size}x{image_size} "
                f"({len(model.weights)} arrays). Received: weights={str(path)!r}, which does not "
                f"fit ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            ) from None
    return model
