"""Core: the label space, user errors, atomic files, presets and the export layout (no TF).

Modules: ``labels`` (expressions, AUs, per-corpus code maps), ``errors`` (``UserError``),
``files`` (``replaced_atomically``), ``presets`` (``FrozenConfig``, ``lazy_attributes``),
``outputs`` (the serving outputs' names and the result table), ``layout`` (signature names and
SavedModel version folders), ``_env`` (the process environment set before TensorFlow loads).
Every other layer may import this one; it imports nothing of the package.
"""

from __future__ import annotations

from affect_tf.core.presets import lazy_attributes

_LAZY = {
    **dict.fromkeys(("AUS", "EXPRESSIONS", "NUM_AUS", "NUM_EXPRESSIONS"), "affect_tf.core.labels"),
    "UserError": "affect_tf.core.errors",
    "replaced_atomically": "affect_tf.core.files",
    "FrozenConfig": "affect_tf.core.presets",
    **dict.fromkeys(("latest_version", "numeric_versions"), "affect_tf.core.layout"),
    "outputs_frame": "affect_tf.core.outputs",
}
# ``lazy_attributes`` is imported above (this package's own hook uses it).
__all__ = sorted([*_LAZY, "lazy_attributes"])

__getattr__ = lazy_attributes("affect_tf.core", _LAZY)
