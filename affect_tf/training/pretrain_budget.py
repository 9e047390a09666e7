"""How much SynthAffect ``affect-tf pretrain`` renders and trains on: a frozen dataclass and
named budgets (TensorFlow-free, so the CLI lists them without loading it)."""

from __future__ import annotations

import dataclasses

from affect_tf.core.presets import FrozenConfig, get_from
from affect_tf.data.synth.labels import SynthConfig

# Seed offsets of the held-out sets: their videos never appear in the training stream.
VAL_SEED, TEST_SEED = 100_003, 200_003


@dataclasses.dataclass(frozen=True)
class PretrainBudget(FrozenConfig):
    """How much SynthAffect a pretraining run renders and trains on, and how.

    Attributes:
        name: Budget name (informational).
        epochs, steps_per_epoch: Each epoch is ``steps_per_epoch`` batches of new faces.
        frames_per_video: Faces per rendered video (identities and scenes change per video).
        val_n, test_n: Held-out faces for early stopping and for the card's metrics.
        prior_n: Training faces the label statistics (priors) are measured on.
        patience: Early stopping on the validation P_MTL.
        scene_size: Side of the rendered frames (0: ``max(128, 2 x image_size)``; the face is
            32-60 % of the frame width).
        backgrounds, yaw_range, jpeg_min_quality, noise_max, occlusion_rate, accessory_rate,
            pitch_range, fringe_rate, mask_rate, low_res_rate, intensity_min: The generator's
            nuisance settings (``SynthConfig``).
    """

    name: str = "custom"
    epochs: int = 16
    steps_per_epoch: int = 200
    frames_per_video: int = 2
    val_n: int = 512
    test_n: int = 1024
    prior_n: int = 1024
    patience: int = 5
    scene_size: int = 0
    # The generator's own defaults (one source: the corpus everything else was measured on).
    backgrounds: str = SynthConfig.backgrounds
    yaw_range: float = SynthConfig.yaw_range
    jpeg_min_quality: int = SynthConfig.jpeg_min_quality
    noise_max: float = SynthConfig.noise_max
    occlusion_rate: float = SynthConfig.occlusion_rate
    accessory_rate: float = SynthConfig.accessory_rate
    pitch_range: float = SynthConfig.pitch_range
    fringe_rate: float = SynthConfig.fringe_rate
    mask_rate: float = SynthConfig.mask_rate
    low_res_rate: float = SynthConfig.low_res_rate
    intensity_min: float = SynthConfig.intensity_min

    def __post_init__(self) -> None:
        for field in ("epochs", "steps_per_epoch", "frames_per_video", "val_n", "test_n"):
            if getattr(self, field) < 1:
                raise ValueError(f"Expected {field} >= 1. Received: {field}={getattr(self, field)}")
        if self.scene_size and self.scene_size < 32:
            raise ValueError(
                f"Expected scene_size 0 (auto) or >= 32. Received: scene_size={self.scene_size}"
            )
        self.synth(64, 0, 1)  # the generator settings are valid

    def synth(self, image_size: int, seed: int, n: int) -> SynthConfig:
        """The generator settings of one part (train stream, validation, test): every task
        labelled, and this budget's ``frames_per_video`` and nuisance settings."""
        shared = {name: getattr(self, name) for name in _SHARED_WITH_SYNTH}
        return SynthConfig(
            n=n,
            size=self.scene_size or max(128, 2 * image_size),
            seed=seed,
            va_rate=1.0,
            expr_rate=1.0,
            au_rate=1.0,
            frame_dropout=0.0,
            **shared,
        )


# The budget's fields that are the generator's own (frames_per_video and the nuisances).
_SHARED_WITH_SYNTH = tuple(
    f.name
    for f in dataclasses.fields(PretrainBudget)
    if f.name in {g.name for g in dataclasses.fields(SynthConfig)}
)

BUDGETS: dict[str, PretrainBudget] = {
    # Seconds: what the tests run.
    "quick": PretrainBudget(
        name="quick", epochs=2, steps_per_epoch=3, val_n=64, test_n=64, prior_n=64, patience=2
    ),
    # What the shipped small_cnn weights were made with (docs/results.md has the time).
    "shipped": PretrainBudget(name="shipped", epochs=12, steps_per_epoch=256),
}


def get_budget(name: str, **overrides) -> PretrainBudget:
    """A budget by name, optionally with fields overridden (``ValueError`` for unknown ones)."""
    return get_from(BUDGETS, name, "budget", **overrides)
