"""GAN configuration: a frozen dataclass and named presets (Keras-free, for the CLI)."""

from __future__ import annotations

import dataclasses
from typing import Any

from affect_tf.core.presets import FrozenConfig, get_from
from affect_tf.model.config import PRESETS as AFFECT_PRESETS
from affect_tf.model.config import AffectConfig


@dataclasses.dataclass(frozen=True)
class GANConfig(FrozenConfig):
    """Everything that defines the conditional GAN and how it is trained.

    Attributes:
        name: Preset name (informational).
        recognizer: The ``AffectConfig`` preset whose trunk and heads the discriminator is; its
            ``image_size`` is replaced by ``image_size``.
        image_size: Side of the generated (and discriminated) aligned faces.
        noise_dim: Length of the generator's noise vector z.
        gen_filters: Channels of the generator's last (highest-resolution) block; each coarser
            block doubles them, up to ``8 * gen_filters``.
        condition_embedding: Channels of the condition embedding tiled onto every generator
            block (the condition reaches every scale, not only the input).
        g_learning_rate, d_learning_rate, beta_1, beta_2: Adam settings of the two players.
        adversarial_weight: Weight of the hinge adversarial terms.
        real_affect_weight: Weight of the composite affect loss of labelled real faces (D).
        fake_affect_weight: Weight of the affect loss of generated faces w.r.t. their
            conditions (G): what makes the generator draw the asked-for affect.
        fake_affect_warmup: Steps over which that weight ramps up linearly from 0: the
            discriminator's task heads are still guessing at first, and a generator chasing
            them draws adversarial noise instead of faces.
        mode_seeking_weight: Weight of the mode-seeking term (Mao et al. 2019, MSGAN): pairs of
            generated faces share a condition, and the generator minimises the inverse of
            their pixel distance over their noise distance, so the noise keeps varying the face
            instead of each condition collapsing onto one face. 0: off.
        mode_seeking_cap: The distance ratio beyond which more diversity earns nothing (as in
            DSGAN, Yang et al. 2019). Two random real SynthAffect faces give 0.43 (mean absolute
            pixel difference in [-1, 1], 0.48, over the mean noise distance, 1.13); pairs of one
            condition should differ somewhat less. Uncapped (weight 1), the term pushed pixels
            to saturated extremes (black, white, green blobs) in a trial run.
        r1_weight: γ of the R1 gradient penalty on real faces (Mescheder et al. 2018), applied
            every ``r1_every`` steps and scaled by it ("lazy" regularisation, StyleGAN2).
        batch_size: Real faces per step (the generator makes as many).
        steps: Training steps; ``steps_per_epoch`` of them make an epoch (a checkpoint, a
            progress line and a sample grid).
        balance_conditions: Draw the generator's expression conditions uniformly over the 8
            classes instead of by their frequency, so that rare classes get as much of the
            generator's practice as frequent ones.
        labelled_share: At least this share of each batch's real faces is drawn from the
            labelled ones (the rest from all faces), as semi-supervised GANs feed a labelled
            batch every step (Salimans et al. 2016); 0 keeps the data's own mix. With 10 % of
            the labels, the natural mix gives the task heads ~4 labelled faces a step. Off in
            the presets: 0.5 did not make a better recognizer of the discriminator on held-out
            faces (P_MTL 0.880 vs 0.836) and made the generator's faces less realistic
            (Fréchet distance 10.65 vs 8.63; docs/results.md).
    """

    name: str = "custom"
    recognizer: str = "tiny"
    image_size: int = 64
    noise_dim: int = 64
    gen_filters: int = 32
    condition_embedding: int = 16
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    adversarial_weight: float = 1.0
    real_affect_weight: float = 1.0
    fake_affect_weight: float = 1.0
    fake_affect_warmup: int = 500
    mode_seeking_weight: float = 0.0
    mode_seeking_cap: float = 0.25
    r1_weight: float = 1.0
    r1_every: int = 4
    batch_size: int = 32
    steps: int = 3000
    steps_per_epoch: int = 200
    balance_conditions: bool = True
    labelled_share: float = 0.0

    def __post_init__(self) -> None:
        if self.recognizer not in AFFECT_PRESETS:
            raise ValueError(
                f"Expected a recognizer preset in {sorted(AFFECT_PRESETS)}. "
                f"Received: recognizer={self.recognizer!r}"
            )
        if self.image_size < 32 or self.image_size % 16:
            raise ValueError(
                "Expected image_size >= 32 and a multiple of 16 (the generator doubles 4x4 "
                f"four or more times). Received: image_size={self.image_size}"
            )
        for field in ("noise_dim", "gen_filters", "batch_size", "steps", "steps_per_epoch"):
            if getattr(self, field) < 1:
                raise ValueError(f"Expected {field} >= 1. Received: {field}={getattr(self, field)}")
        if not 0.0 <= self.labelled_share < 1.0:
            raise ValueError(
                f"Expected labelled_share in [0, 1). Received: labelled_share={self.labelled_share}"
            )
        if self.r1_every < 1:
            raise ValueError(f"Expected r1_every >= 1. Received: r1_every={self.r1_every}")

    @property
    def affect_config(self) -> AffectConfig:
        """The discriminator's ``AffectConfig``: the recognizer preset at the GAN's image size.

        Its real faces' expression loss stays class-weighted: the GAN was tuned and measured
        that way (docs/results.md); logit adjustment, the recognizers' default, is not
        measured for it.
        """
        return AFFECT_PRESETS[self.recognizer].replace(
            image_size=self.image_size, batch_size=self.batch_size, imbalance="class_weights"
        )

    @property
    def epochs(self) -> int:
        return -(-self.steps // self.steps_per_epoch)


GAN_PRESETS: dict[str, GANConfig] = {
    # Seconds on 2 CPU cores: tests and smoke runs.
    "tiny": GANConfig(
        name="tiny",
        recognizer="tiny",
        image_size=64,
        noise_dim=32,
        gen_filters=16,
        batch_size=16,
        fake_affect_warmup=20,
        mode_seeking_weight=0.2,
        steps=200,
        steps_per_epoch=50,
    ),
    # The measured run of docs/results.md: 64x64 faces, the demo recognizer (GCN heads).
    "demo": GANConfig(
        name="demo",
        recognizer="demo",
        image_size=64,
        noise_dim=64,
        gen_filters=16,
        batch_size=32,
        mode_seeking_weight=0.2,
        steps=3000,
        steps_per_epoch=250,
    ),
}


def get_gan_preset(name: str, **overrides: Any) -> GANConfig:
    """A GAN preset by name, optionally with fields overridden.

    Raises:
        ValueError: For an unknown preset name or field.
    """
    return get_from(GAN_PRESETS, name, "GAN preset", **overrides)
