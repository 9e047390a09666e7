"""The label graph: one node per label and its correlation statistics, from the labels alone.

Emotion-GCN heads (``affect_tf.model.heads``) read their adjacency from these statistics; the
tf.data pipeline (``LabelPriors``) and the TFX Transform graph measure them, so they live in the
data layer, below the model.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_EXPRESSIONS

LABEL_NODES: tuple[str, ...] = (*EXPRESSIONS, "valence", "arousal", *AUS)
NUM_NODES = len(LABEL_NODES)
VA_NODES = slice(NUM_EXPRESSIONS, NUM_EXPRESSIONS + 2)
AU_NODES = slice(NUM_EXPRESSIONS + 2, NUM_NODES)
PAIR_STATS = 6  # n, Σa, Σb, Σa², Σb², Σab over examples where both labels are valid


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
