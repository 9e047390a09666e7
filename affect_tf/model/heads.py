"""Task heads: per-task MLPs, or Emotion-GCN label-graph heads, and the label graph itself.

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
import tensorflow as tf
from keras import layers, ops

from affect_tf.labels import AUS, EXPRESSIONS, NUM_AUS, NUM_EXPRESSIONS

LABEL_NODES: tuple[str, ...] = (*EXPRESSIONS, "valence", "arousal", *AUS)
NUM_NODES = len(LABEL_NODES)
_VA_SLICE = slice(NUM_EXPRESSIONS, NUM_EXPRESSIONS + 2)
_AU_SLICE = slice(NUM_EXPRESSIONS + 2, NUM_NODES)
PAIR_STATS = 6  # n, Σa, Σb, Σa², Σb², Σab over examples where both labels are valid


# --- the label graph -----------------------------------------------------------------------------


def label_vectors(expression, expr_mask, valence, arousal, va_mask, au, au_mask, xp=np):
    """Label vectors ``(B, 22)`` in ``LABEL_NODES`` order and their validity ``(B, 22)``.

    ``xp`` is ``np`` (float64 NumPy) or ``tf`` (float32 tensors, inside the TFX Transform graph).
    """
    if xp is np:
        expression = np.asarray(expression, np.int64).reshape(-1)
        onehot = np.eye(NUM_EXPRESSIONS)[np.clip(expression, 0, NUM_EXPRESSIONS - 1)]
        cast = lambda x: np.asarray(x, np.float64)  # noqa: E731
        concat = np.concatenate
    else:
        expression = tf.reshape(tf.cast(expression, tf.int64), [-1])
        onehot = tf.one_hot(tf.clip_by_value(expression, 0, NUM_EXPRESSIONS - 1), NUM_EXPRESSIONS)
        cast = lambda x: tf.cast(x, tf.float32)  # noqa: E731
        concat = tf.concat
    ones = lambda k: cast(np.ones((1, k)))  # noqa: E731
    values = concat([onehot, cast(valence)[:, None], cast(arousal)[:, None], cast(au)], axis=1)
    valid = concat(
        [
            cast(expr_mask)[:, None] * ones(NUM_EXPRESSIONS),
            cast(va_mask)[:, None] * ones(2),
            cast(au_mask),
        ],
        axis=1,
    )
    return values, valid


def pair_stats(values, valid, xp=np, per_example: bool = False):
    """Pairwise correlation sufficient statistics ``(6, N, N)`` of a batch; they merge by adding.

    With ``per_example`` the ``(B, 6, N, N)`` terms are returned unsummed (what a TFT
    ``tft.sum(..., reduce_instance_dims=False)`` analyzer adds up over the training split).
    """
    where, einsum, stack = (
        (np.where, np.einsum, np.stack) if xp is np else (tf.where, tf.einsum, tf.stack)
    )
    z = where(valid > 0, values, tf.zeros_like(values) if xp is not np else 0.0) * valid
    spec = "bi,bj->bij" if per_example else "bi,bj->ij"
    terms = [(valid, valid), (z, valid), (valid, z), (z * z, valid), (valid, z * z), (z, z)]
    return stack([einsum(spec, a, b) for a, b in terms], axis=1 if per_example else 0)


def label_correlation(stats: np.ndarray) -> np.ndarray:
    """Pearson correlation ``(N, N)`` from pair statistics (0 where undefined)."""
    n, sa, sb, saa, sbb, sab = stats
    safe = np.maximum(n, 1.0)
    cov = sab / safe - (sa / safe) * (sb / safe)
    va = np.maximum(saa / safe - (sa / safe) ** 2, 0.0)
    vb = np.maximum(sbb / safe - (sb / safe) ** 2, 0.0)
    denom = np.sqrt(va * vb)
    corr = np.where((n > 1) & (denom > 1e-12), cov / np.maximum(denom, 1e-12), 0.0)
    np.fill_diagonal(corr, 1.0)
    return corr


def label_adjacency(correlation: np.ndarray, tau: float = 0.3, p: float = 0.25) -> np.ndarray:
    """Binarise |correlation| at τ and re-weight (ML-GCN / Emotion-GCN) into the GCN adjacency.

    Each node keeps weight ``1 − p`` on itself and spreads ``p`` evenly over its neighbours, so
    the features of a node are not drowned by its neighbours' (over-smoothing).
    """
    corr = np.asarray(correlation, np.float64)
    binary = (np.abs(corr) >= tau).astype(np.float64)
    np.fill_diagonal(binary, 0.0)
    degree = binary.sum(axis=1, keepdims=True)
    adjacency = np.where(degree > 0, binary * p / np.maximum(degree, 1.0), 0.0)
    adjacency[np.arange(len(corr)), np.arange(len(corr))] = np.where(degree[:, 0] > 0, 1.0 - p, 1.0)
    return adjacency


def identity_adjacency() -> np.ndarray:
    """The graph without edges (what a GCN head uses before label statistics are known)."""
    return np.eye(NUM_NODES)


# --- heads ---------------------------------------------------------------------------------------


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
        return logits[:, :NUM_EXPRESSIONS], logits[:, _AU_SLICE], ops.tanh(logits[:, _VA_SLICE])

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
