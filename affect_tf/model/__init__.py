"""The multi-task model: backbones, heads, losses, configuration presets and ``AffectModel``.

Modules: ``config`` (``AffectConfig``, ``PRESETS``), ``backbones``, ``heads`` (MLP and GCN),
``affect_model`` (``AffectModel``, ``activate``), ``losses`` (the masked multi-task loss),
``loading`` (the one ``.keras`` loader), ``pretrained`` and ``shipped`` (backbone weights and
their cards), ``augment``, ``colour``, ``optim``, ``default`` (the shipped model). Imports
``core``, ``data`` and ``evaluation``.

Attributes load lazily, so that ``affect_tf.model.config`` (presets) is usable without importing
Keras and TensorFlow (the CLI's argument parsing stays fast).
"""

from __future__ import annotations

from affect_tf.core.presets import lazy_attributes

_LAZY = {
    "AffectModel": "affect_tf.model.affect_model",
    "probabilities": "affect_tf.model.affect_model",
    "BACKBONES": "affect_tf.model.backbones",
    "build_backbone": "affect_tf.model.backbones",
    "PRESETS": "affect_tf.model.config",
    "AffectConfig": "affect_tf.model.config",
    "get_preset": "affect_tf.model.config",
    "GCNHeads": "affect_tf.model.heads",
    "load_model": "affect_tf.model.loading",
    "affect_loss": "affect_tf.model.losses",
}
__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes("affect_tf.model", _LAZY)
