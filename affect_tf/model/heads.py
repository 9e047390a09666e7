"""Task heads: per-task MLPs, or Emotion-GCN label-graph heads over ``data.label_graph``.

The GCN head follows Emotion-GCN (Antoniadis et al.): a 2-layer GCN over one node per label —
the 8 expressions, valence, arousal and the 12 AUs (``LABEL_NODES``) — turns learned node
embeddings into one weight vector per label; each label's output is the dot product of that
vector with the shared face embedding. The graph's adjacency comes from the label correlations of
the training data (``label_adjacency``), binarised at τ and re-weighted with p as in ML-GCN /
Emotion-GCN. Word vectors for the node inputs cannot be downloaded here, so node embeddings are
learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from affect_tf.data.label_graph import (
    AU_NODES,
    LABEL_NODES,
    NUM_NODES,
    VA_NODES,
    identity_adjacency,
)
from affect_tf.labels import NUM_AUS, NUM_EXPRESSIONS


def mlp_heads(embedding, hidden: int, dropout: float) -> dict:
    """Per-task MLP heads on the shared embedding: expression logits, AU logits, tanh VA."""
    outputs = {}
    for task, units in (("expression", NUM_EXPRESSIONS), ("au", NUM_AUS), ("va", 2)):
        x = layers.Dense(hidden, activation="relu", name=f"{task}_hidden")(embedding)
        x = layers.Dropout(dropout, name=f"{task}_dropout")(x)
        activation = "tanh" if task == "va" else None
        outputs[task] = layers.Dense(units, activation=activation, name=task)(x)
    return outputs


@keras.saving.register_keras_serializable(package="affect_tf")
class GCNHeads(layers.Layer):
    """Label-graph heads: a 2-layer GCN produces every label's classifier/regressor weights.

    Args:
        adjacency: ``(22, 22)`` re-weighted adjacency (``label_adjacency``), as nested lists or
            an array; symmetrically normalised here, ``D^-1/2 (A) D^-1/2``.
        node_dim: Size of the learned node embeddings (the GCN input).
        hidden_dim: Size of the GCN's hidden layer.
        negative_slope: LeakyReLU slope between the GCN layers (Emotion-GCN uses 0.2).

    Call: ``(B, D)`` embedding -> ``(expression logits (B, 8), au logits (B, 12), va (B, 2))``.
    """

    def __init__(
        self,
        adjacency: Sequence[Sequence[float]] | np.ndarray | None = None,
        node_dim: int = 64,
        hidden_dim: int = 128,
        negative_slope: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        adjacency = identity_adjacency() if adjacency is None else np.asarray(adjacency, np.float64)
        if adjacency.shape != (NUM_NODES, NUM_NODES):
            raise ValueError(
                f"Expected a ({NUM_NODES}, {NUM_NODES}) adjacency over {list(LABEL_NODES)}. "
                f"Received: shape={adjacency.shape}"
            )
        self.adjacency = adjacency
        degree = adjacency.sum(axis=1)
        inv_sqrt = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
        self._normalised = (adjacency * inv_sqrt[:, None] * inv_sqrt[None, :]).astype("float32")
        self.node_dim = node_dim
        self.hidden_dim = hidden_dim
        self.negative_slope = negative_slope

    def build(self, input_shape):
        dim = input_shape[-1]
        self.nodes = self.add_weight(
            shape=(NUM_NODES, self.node_dim), initializer="glorot_uniform", name="nodes"
        )
        self.w1 = self.add_weight(
            shape=(self.node_dim, self.hidden_dim), initializer="glorot_uniform", name="w1"
        )
        self.w2 = self.add_weight(
            shape=(self.hidden_dim, dim), initializer="glorot_uniform", name="w2"
        )
        self.bias = self.add_weight(shape=(NUM_NODES,), initializer="zeros", name="bias")

    def label_weights(self):
        """The ``(22, D)`` per-label weight vectors the GCN produces."""
        a = ops.convert_to_tensor(self._normalised, dtype=self.compute_dtype)
        h = ops.leaky_relu(ops.matmul(a, ops.matmul(self.nodes, self.w1)), self.negative_slope)
        return ops.matmul(a, ops.matmul(h, self.w2))

    def call(self, embedding):
        logits = ops.matmul(embedding, ops.transpose(self.label_weights())) + self.bias
        return logits[:, :NUM_EXPRESSIONS], logits[:, AU_NODES], ops.tanh(logits[:, VA_NODES])

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return (batch, NUM_EXPRESSIONS), (batch, NUM_AUS), (batch, 2)

    def get_config(self):
        return {
            **super().get_config(),
            "adjacency": self.adjacency.tolist(),
            "node_dim": self.node_dim,
            "hidden_dim": self.hidden_dim,
            "negative_slope": self.negative_slope,
        }
