"""AdamW with a smaller learning rate for the pretrained backbone (fine-tuning).

Keras 3 optimizers have one learning rate; fine-tuning a pretrained backbone under new heads
wants the backbone to move less (ULMFiT's discriminative rates, the usual transfer recipe).
Adam is invariant to gradient scale, so scaling gradients would not do it: the step itself is
scaled, per variable, in ``update_step``. AdamW's decoupled weight decay (``w -= w·wd·lr``,
1e-4 x the rate here) still applies at the full rate.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="affect_tf")
class BackboneScaledAdamW(keras.optimizers.AdamW):
    """AdamW whose step for some variables (the backbone's, by Keras variable path) is scaled.

    Args:
        backbone_lr_scale: Factor on the learning rate of those variables (0 freezes them).
        scaled_paths: Their ``variable.path`` values (``AffectModel.backbone_variable_paths``);
            paths, not objects, so the optimizer saves and loads with the model.
        **kwargs: ``keras.optimizers.AdamW`` arguments.
    """

    def __init__(
        self, backbone_lr_scale: float = 0.1, scaled_paths: list[str] | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.backbone_lr_scale = float(backbone_lr_scale)
        self.scaled_paths = list(scaled_paths or [])
        self._scaled_keys: set = set()

    def build(self, var_list):
        super().build(var_list)
        paths = set(self.scaled_paths)
        self._scaled_keys = {self._var_key(v) for v in var_list if v.path in paths}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._scaled_keys:
            learning_rate = ops.multiply(
                ops.cast(learning_rate, variable.dtype), self.backbone_lr_scale
            )
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone_lr_scale": self.backbone_lr_scale,
            "scaled_paths": list(self.scaled_paths),
        }
