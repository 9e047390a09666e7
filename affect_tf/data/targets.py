"""Training targets: how labels and their masks travel next to the model outputs.

Keras hands a loss or metric only ``(y_true, y_pred)`` per output, so each task's mask rides in
its ``y_true`` tensor. The layout is fixed here, once:

- ``va``: ``(B, 3)`` = valence, arousal, va_mask
- ``expression``: ``(B, 10)`` = class index, expr_mask, then the 8-class distribution (a soft
  label; all zeros where the example has none)
- ``au``: ``(B, 24)`` = 12 occurrences, then 12 masks
"""

from __future__ import annotations

from typing import Final

from keras import ops

from affect_tf.core.labels import NUM_AUS, NUM_EXPRESSIONS

# The serving outputs live below ``data`` (``affect_tf.core.outputs``) so the TensorFlow-free
# inference path reads them without importing Keras; re-exported here for the training code.
from affect_tf.core.outputs import (  # noqa: F401
    AROUSAL,
    AU_PROBS,
    EXPRESSION_PROBS,
    SERVING_OUTPUT_SHAPES,
    SERVING_OUTPUTS,
    VALENCE,
    active_aus,
    empty_serving_outputs,
    outputs_frame,
)
from affect_tf.data import examples as ex

# Model output names (the one source of truth; serving signatures reuse them).
VA: Final[str] = "va"
EXPRESSION: Final[str] = "expression"
AU: Final[str] = "au"
EMBEDDING: Final[str] = "embedding"
OUTPUTS: Final[tuple[str, ...]] = (EXPRESSION, AU, VA)
TARGET_WIDTHS: Final[dict[str, int]] = {VA: 3, EXPRESSION: 2 + NUM_EXPRESSIONS, AU: 2 * NUM_AUS}
TARGET_LAYOUT: Final[dict[str, str]] = {
    VA: "valence, arousal, va_mask",
    EXPRESSION: "class index, expr_mask, 8-class distribution (zeros: none)",
    AU: "12 occurrences, then 12 masks",
}


def targets_from_features(features: dict) -> dict:
    """Packs parsed tf.Example label features (one example or a batch) into the per-output
    target tensors (float32)."""
    f32 = "float32"
    va = ops.stack(
        [
            ops.cast(features[ex.VALENCE], f32),
            ops.cast(features[ex.AROUSAL], f32),
            ops.cast(features[ex.VA_MASK], f32),
        ],
        axis=-1,
    )
    expression = ops.stack(
        [ops.cast(features[ex.EXPRESSION], f32), ops.cast(features[ex.EXPR_MASK], f32)], axis=-1
    )
    if ex.EXPRESSION_DIST in features:
        dist = ops.cast(features[ex.EXPRESSION_DIST], f32)
    else:  # label-only callers that parsed no distribution
        dist = ops.zeros((*ops.shape(expression)[:-1], NUM_EXPRESSIONS), f32)
    expression = ops.concatenate([expression, dist], axis=-1)
    au = ops.concatenate(
        [ops.cast(features[ex.AU], f32), ops.cast(features[ex.AU_MASK], f32)], axis=-1
    )
    return {VA: va, EXPRESSION: expression, AU: au}


def split_va(y_true):
    """``(B, 3)`` -> values ``(B, 2)``, mask ``(B,)``."""
    return y_true[..., :2], y_true[..., 2]


def split_expression(y_true):
    """``(B, 10)`` -> class indices ``(B,)`` int32, mask ``(B,)`` (the majority label)."""
    return ops.cast(y_true[..., 0], "int32"), y_true[..., 1]


def expression_distribution(y_true):
    """``(B, 10)`` -> the soft labels ``(B, 8)`` (rows of zeros: none)."""
    return y_true[..., 2 : 2 + NUM_EXPRESSIONS]


def split_au(y_true):
    """``(B, 24)`` -> occurrences ``(B, 12)``, masks ``(B, 12)``."""
    return y_true[..., :NUM_AUS], y_true[..., NUM_AUS:]
