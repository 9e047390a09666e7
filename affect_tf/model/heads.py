"""Task heads: per-task MLPs, or Emotion-GCN label-graph heads over ``data.label_graph``.

The GCN head follows Emotion-GCN (Antoniadis et al.): a 2-layer GCN over one node per label —
the 8 expressions, valence, arousal and the 12 AUs (``LABEL_NODES``) — turns learned node
embeddings into one weight vector per label; each label's output is the dot product of that
vector with the shared face embedding. The graph's adjacency comes from the label correlations of
the training data (``label_adjacency``), binarised at τ and re-weighted with p as in ML-GCN /
Emotion-GCN. Word vectors for the node inputs cannot be downloaded here, so node embeddings are
learned. ``adjacency="learned"`` lets the network learn the graph instead (from no edges): the
data-derived vs learned adjacency question of the ablations.

The MLP heads' ``features`` is Savchenko's question of what the per-task heads read: the shared
embedding, the expression head's scores (its softmax, gradients stopped: features, not a second
path into the expression head), or both concatenated. The expression head always reads the
embedding (it makes the scores).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from affect_tf.core.labels import NUM_AUS, NUM_EXPRESSIONS
from affect_tf.data.label_graph import (
    AU_NODES,
    LABEL_NODES,
    NUM_NODES,
    VA_NODES,
    identity_adjacency,
)
from affect_tf.model.config import HEAD_FEATURES


@keras.saving.register_keras_serializable(package="affect_tf")
class ExpressionScores(layers.Layer):
    """Expression logits -> their softmax with gradients stopped: scores as features for the
    AU and VA heads (Savchenko), which must not train the expression head through them."""

    def call(self, logits):
        return ops.stop_gradient(ops.softmax(logits, axis=-1))

    def compute_output_shape(self, input_shape):
        return input_shape


def mlp_heads(embedding, hidden: int, dropout: float, features: str = "embedding") -> dict:
    """Per-task MLP heads: expression logits on the shared embedding; AU logits and tanh VA on
    ``features`` (``HEAD_FEATURES``: the embedding, the expression scores, or both)."""
    if features not in HEAD_FEATURES:
        raise ValueError(f"Expected features in {HEAD_FEATURES}. Received: features={features!r}")

    def head(x, task: str, units: int):
        x = layers.Dense(hidden, activation="relu", name=f"{task}_hidden")(x)
        x = layers.Dropout(dropout, name=f"{task}_dropout")(x)
        activation = "tanh" if task == "va" else None
        return layers.Dense(units, activation=activation, name=task)(x)

    outputs = {"expression": head(embedding, "expression", NUM_EXPRESSIONS)}
    inputs = embedding
    if features != "embedding":
        scores = ExpressionScores(name="expression_scores")(outputs["expression"])
        inputs = scores if features == "scores" else layers.Concatenate(
            name="head_features")([embedding, scores])  # fmt: skip
    outputs["au"] = head(inputs, "au", NUM_AUS)
    outputs["va"] = head(inputs, "va", 2)
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
        learn_adjacency: Learn the graph instead of using ``adjacency``: ``I + softplus(W)``
            with ``W`` symmetric and trainable, starting near no edges (softplus(-4) = 0.018),
            normalised the same way at every step.

    Call: ``(B, D)`` embedding -> ``(expression logits (B, 8), au logits (B, 12), va (B, 2))``.
    """

    def __init__(
        self,
        adjacency: Sequence[Sequence[float]] | np.ndarray | None = None,
        node_dim: int = 64,
        hidden_dim: int = 128,
        negative_slope: float = 0.2,
        learn_adjacency: bool = False,
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
        self.learn_adjacency = bool(learn_adjacency)

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
        if self.learn_adjacency:
            self.edge_logits = self.add_weight(
                shape=(NUM_NODES, NUM_NODES),
                initializer=keras.initializers.Constant(-4.0),
                name="edge_logits",
            )

    def normalised_adjacency(self):
        """``D^-1/2 A D^-1/2`` of the fixed adjacency, or of the learned one."""
        if not self.learn_adjacency:
            return ops.convert_to_tensor(self._normalised, dtype=self.compute_dtype)
        w = ops.cast(self.edge_logits, self.compute_dtype)
        a = ops.eye(NUM_NODES, dtype=self.compute_dtype) + ops.softplus((w + ops.transpose(w)) / 2)
        inv_sqrt = ops.rsqrt(ops.sum(a, axis=1))
        return a * inv_sqrt[:, None] * inv_sqrt[None, :]

    def label_weights(self):
        """The ``(22, D)`` per-label weight vectors the GCN produces."""
        a = self.normalised_adjacency()
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
            "learn_adjacency": self.learn_adjacency,
        }
