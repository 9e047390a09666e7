"""Export: SavedModels with raw-image signatures for TF Serving, and TFLite variants for phones.

Modules: ``saved_model`` (``export_saved_model``: the Transform graph or ``FacePreprocessor``
in front of the model, ``activate`` after it, warm-up requests), ``tflite`` (float32 / float16
/ int8 variants, their agreement checks and the ``Runner``). Imports the layers below.
"""

from __future__ import annotations

from affect_tf.core.presets import lazy_attributes

_LAZY = {
    **dict.fromkeys(
        ("export_saved_model", "serving_outputs", "default_serving_base"),
        "affect_tf.export.saved_model",
    ),
    **dict.fromkeys(("export_variants", "Runner"), "affect_tf.export.tflite"),
}
__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes("affect_tf.export", _LAZY)
