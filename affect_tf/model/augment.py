"""Augmentation for real faces: Keras preprocessing layers inside the model, active only in
training, so export, TFLite and serving trace exactly the inference graph.

Every transform keeps the labels valid: the crop is already aligned on the 5 landmarks, so
geometry jitters *around* the aligned face (small rotation, zoom, shift); horizontal flips
keep every label because the 12 ABAW AUs are bilateral (no left/right AU) and expression and
valence/arousal do not depend on the side; colour, blur and random erasing (occlusion by hands,
glasses, masks) leave the face's expression in place.
"""

from __future__ import annotations

import keras
from keras import layers

# Ranges, as fractions (Keras conventions): 10 degrees, +-10 % zoom, 5 % shift.
ROTATION = 10.0 / 360.0
ZOOM = 0.10
SHIFT = 0.05


def build_augmenter(seed: int | None = None, name: str = "augment") -> keras.Sequential:
    """The augmentation block: ``(N, S, S, 3)`` pixels in [0, 255] -> the same, jittered.

    Args:
        seed: Seed of the layers' random generators (None: nondeterministic).
        name: Layer name inside ``AffectModel``.
    """
    value_range = (0, 255)
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(ROTATION, fill_mode="reflect", seed=seed),
            layers.RandomZoom((-ZOOM, ZOOM), fill_mode="reflect", seed=seed),
            layers.RandomTranslation(SHIFT, SHIFT, fill_mode="reflect", seed=seed),
            layers.RandomBrightness(0.1, value_range=value_range, seed=seed),
            layers.RandomContrast(0.15, value_range=value_range, seed=seed),
            # Every image gets some blur (Keras has no probability for it): keep it light, the
            # AU cues of a 48-64 px crop (brows, lids, lip corners) are a few pixels wide.
            layers.RandomGaussianBlur(
                factor=0.5, kernel_size=3, sigma=(0.1, 0.6), value_range=value_range, seed=seed
            ),
            layers.RandomErasing(factor=0.2, scale=(0.02, 0.1), value_range=value_range, seed=seed),
        ],
        name=name,
    )
