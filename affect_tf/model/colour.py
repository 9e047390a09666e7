"""Colour handling inside the model: a face read as grey, for models trained on grey faces.

FER+ (FER-2013) faces are grey: a model whose expressions learned from them never saw colour,
and a colour photo is off its training distribution. With ``AffectConfig.grayscale`` the model
turns every face to its luminance first (as the ``fer`` package does before its FER-2013
model), inside the graph, so ``predict``, the SavedModel signatures, TF Serving and TFLite
all see what training saw. A grey face (R = G = B) passes unchanged.
"""

from __future__ import annotations

import keras
from keras import layers, ops

# ITU-R BT.601 luma weights (what OpenCV's and PIL's RGB -> grey conversions use).
LUMA = (0.299, 0.587, 0.114)


@keras.saving.register_keras_serializable(package="affect_tf")
class Grayscale(layers.Layer):
    """``(..., 3)`` RGB -> ``(..., 3)`` with every channel the BT.601 luminance. No weights."""

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        luma = ops.sum(inputs * ops.convert_to_tensor(LUMA, self.compute_dtype), axis=-1)
        return ops.repeat(ops.expand_dims(luma, -1), 3, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)
