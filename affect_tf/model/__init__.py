"""The multi-task model: backbones, heads, configuration presets and ``AffectModel``.

Attributes load lazily, so that ``affect_tf.model.config`` (presets) is usable without importing
Keras and TensorFlow (the CLI's argument parsing stays fast).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AffectModel": "affect_tf.model.affect_model",
    "probabilities": "affect_tf.model.affect_model",
    "BACKBONES": "affect_tf.model.backbones",
    "build_backbone": "affect_tf.model.backbones",
    "PRESETS": "affect_tf.model.config",
    "AffectConfig": "affect_tf.model.config",
    "get_preset": "affect_tf.model.config",
    "GCNHeads": "affect_tf.model.heads",
    "label_adjacency": "affect_tf.model.heads",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'affect_tf.model' has no attribute {name!r}")
