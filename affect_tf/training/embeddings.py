"""Heads trained on backbone features computed once (the ``frozen`` schedule with
``cache_embeddings``: Savchenko's set-up), used by ``affect_tf.training.fit``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from affect_tf.model.affect_model import AffectModel


class HeadsOnEmbeddings(keras.Model):
    """The heads of an AffectModel trained on backbone features computed once (``frozen``
    schedule, ``cache_embeddings``): the same layer objects, the AffectModel's own loss."""

    def __init__(self, affect_model: AffectModel):
        super().__init__(name="heads_on_embeddings")
        # From the backbone's output to the three outputs: a view sharing the layers.
        self.heads = keras.Model(
            affect_model.get_layer("embedding_dense").input, affect_model.output
        )
        self._loss = affect_model.compute_loss  # a bound method: not tracked as a sublayer

    def call(self, features, training=None):
        return self.heads(features, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self._loss(x, y, y_pred, sample_weight, training)


def embedded_dataset(
    backbone: keras.Model, ds: tf.data.Dataset, batch_size: int, seed, shuffle: bool
):
    """One pass of the backbone over ``ds`` -> an in-memory dataset of (features, targets)."""
    features, targets = [], []
    for images, target in ds:
        features.append(backbone(images, training=False).numpy())
        targets.append({k: np.asarray(v) for k, v in target.items()})
    stacked = {k: np.concatenate([t[k] for t in targets]) for k in targets[0]}
    out = tf.data.Dataset.from_tensor_slices((np.concatenate(features), stacked))
    if shuffle:
        out = out.shuffle(len(features) * batch_size, seed=seed, reshuffle_each_iteration=True)
    return out.batch(batch_size).prefetch(tf.data.AUTOTUNE)
