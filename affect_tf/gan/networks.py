"""The two players: a conditional generator and a discriminator that is an ``AffectModel``.

The discriminator *is* the multi-task recognizer (Kollias et al.): an ``AffectModel`` (backbone,
shared embedding, expression / AU / VA heads) plus one real/fake logit read from the same
embedding. Its ``recognizer`` attribute is a plain ``AffectModel`` sharing every weight, so the
discriminator, once trained, exports, serves and evaluates like any other model.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from affect_tf.data import targets as tg
from affect_tf.gan.conditions import CONDITION_DIM
from affect_tf.gan.config import GANConfig
from affect_tf.model.affect_model import AffectModel
from affect_tf.model.config import AffectConfig

REAL_FAKE = "real_fake"
NOISE = "noise"
CONDITION = "condition"


def build_generator(config: GANConfig) -> keras.Model:
    """Noise ``(N, noise_dim)`` + condition ``(N, 22)`` -> faces ``(N, S, S, 3)`` in [0, 255].

    A DCGAN-style upsampling stack from 4x4: each block doubles the resolution (nearest
    upsampling + 3x3 convolution(s), batch norm, ReLU), and a learned embedding of the condition is
    tiled onto each block's input so that expression, AUs and VA steer every scale. The output
    follows ``AffectModel``'s input contract (RGB floats in [0, 255]), so generated faces go
    straight into the discriminator, the recognizer, PNG files or tf.Examples.
    """
    size = config.image_size
    blocks = int(np.log2(size // 4))
    noise = keras.Input((config.noise_dim,), name=NOISE)
    condition = keras.Input((CONDITION_DIM,), name=CONDITION)
    c = layers.Dense(config.condition_embedding * 2, activation="relu", name="cond_embed")(
        condition
    )
    c = layers.Dense(config.condition_embedding, name="cond_embed_out")(c)
    top = config.gen_filters * 2 ** min(blocks - 1, 3)
    x = layers.Concatenate(name="noise_cond")([noise, c])
    x = layers.Dense(4 * 4 * top, use_bias=False, name="project")(x)
    x = layers.Reshape((4, 4, top), name="to_4x4")(x)
    # Momentum 0.9 (not Keras' 0.99): sampling uses the moving statistics, which must catch up
    # with a generator that changes quickly over a few thousand steps.
    x = layers.BatchNormalization(momentum=0.9, name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    side = 4
    for i in range(blocks):
        filters = config.gen_filters * 2 ** min(blocks - 1 - i, 3)
        tiled = layers.RepeatVector(side * side, name=f"cond_tile{i}")(c)
        tiled = layers.Reshape((side, side, config.condition_embedding), name=f"cond_map{i}")(tiled)
        x = layers.Concatenate(name=f"cond_concat{i}")([x, tiled])
        x = layers.UpSampling2D(name=f"up{i}")(x)
        side *= 2
        # A second convolution only where it is cheap (<= 16 px): the generator's cost grows
        # with the resolution and must stay near the discriminator's on 2 CPU cores.
        for j in ("a", "b") if side <= 16 else ("a",):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}{j}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}{j}")(x)
            x = layers.ReLU(name=f"relu{i}{j}")(x)
    x = layers.Conv2D(3, 3, padding="same", activation="tanh", name="to_rgb")(x)
    image = layers.Rescaling(127.5, offset=127.5, name="image")(x)
    return keras.Model({NOISE: noise, CONDITION: condition}, image, name="generator")


@keras.saving.register_keras_serializable(package="affect_tf")
class AffectDiscriminator(keras.Model):
    """An ``AffectModel`` with a real/fake head on its shared embedding.

    ``call(images)`` returns the recognizer's outputs (``expression`` logits, ``au`` logits,
    ``va``) plus ``real_fake`` logits ``(N, 1)``; ``recognizer`` is the ``AffectModel`` itself
    (same weights) for evaluation, export and serving.

    Args:
        config: The recognizer's ``AffectConfig`` (or its dict).
        adjacency, class_weights, pos_weights: As for ``AffectModel`` (measured from the
            labelled training faces).
    """

    def __init__(
        self,
        config: AffectConfig | dict,
        adjacency: Sequence[Sequence[float]] | np.ndarray | None = None,
        class_weights: Sequence[float] | None = None,
        pos_weights: Sequence[float] | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "discriminator")
        super().__init__(**kwargs)
        self.recognizer = AffectModel(config, adjacency, class_weights, pos_weights)
        embedding = self.recognizer.get_layer(tg.EMBEDDING).output
        self.trunk = keras.Model(
            self.recognizer.input,
            {**self.recognizer.output, tg.EMBEDDING: embedding},
            name="trunk",
        )
        self.real_fake = layers.Dense(1, name=REAL_FAKE)
        size = self.recognizer.image_size
        self.build((None, size, size, 3))

    def build(self, input_shape):
        self.real_fake.build((None, self.recognizer.affect_config.embedding_dim))
        self.built = True

    def call(self, images, training=None):
        outputs = dict(self.trunk(images, training=training))
        embedding = outputs.pop(tg.EMBEDDING)
        outputs[REAL_FAKE] = self.real_fake(embedding)
        return outputs

    @property
    def affect_config(self) -> AffectConfig:
        return self.recognizer.affect_config

    def get_config(self):
        inner = self.recognizer.get_config()
        return {
            "config": inner["config"],
            "adjacency": inner["adjacency"],
            "class_weights": inner["class_weights"],
            "pos_weights": inner["pos_weights"],
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def real_fake_logits(outputs: dict):
    """``(N,)`` real/fake logits of a discriminator output dict."""
    return ops.reshape(outputs[REAL_FAKE], (-1,))
