"""Generation: a conditional GAN whose discriminator is the multi-task affect model.

``GANConfig`` / ``GAN_PRESETS`` (import-light) configure it; ``train_gan`` trains and
checkpoints it; ``load_gan`` and ``generate`` sample faces for expression / AU / VA conditions;
``write_generated_examples`` turns generated faces into labelled tf.Examples (augmentation).
"""

from __future__ import annotations

from affect_tf.core.presets import lazy_attributes

_LAZY = {
    "GANConfig": "affect_tf.gan.config",
    "GAN_PRESETS": "affect_tf.gan.config",
    "get_gan_preset": "affect_tf.gan.config",
    "CONDITION_DIM": "affect_tf.gan.conditions",
    "ConditionPriors": "affect_tf.gan.conditions",
    "AffectDiscriminator": "affect_tf.gan.networks",
    "build_generator": "affect_tf.gan.networks",
    "AffectGAN": "affect_tf.gan.model",
    "train_gan": "affect_tf.gan.train",
    "load_gan": "affect_tf.gan.folder",
    "generate": "affect_tf.gan.sampling",
    "write_generated_examples": "affect_tf.gan.sampling",
}
__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes("affect_tf.gan", _LAZY)
