"""Model and training configuration: a frozen dataclass and named presets."""

from __future__ import annotations

import dataclasses
from typing import Any

# The backbone names (``affect_tf.model.backbones.BACKBONES`` maps each to its builder). Kept
# here, free of Keras, so that configuration and the CLI's argument parsing stay import-light.
BACKBONE_NAMES: tuple[str, ...] = ("efficientnet_b0", "mobilenet_v3_small", "small_cnn")


@dataclasses.dataclass(frozen=True)
class AffectConfig:
    """Everything that defines an AffectModel and how it is trained.

    Attributes:
        name: Preset name (informational).
        backbone: A name from ``affect_tf.model.backbones.BACKBONES``.
        image_size: Side of the aligned face crop the model sees.
        margin: Alignment margin (``affect_tf.face.align.template_points``).
        embedding_dim: Size of the shared face embedding.
        heads: ``"mlp"`` or ``"gcn"``.
        head_hidden: Hidden units of each MLP head.
        gcn_node_dim, gcn_hidden: GCN node-embedding and hidden sizes.
        gcn_tau, gcn_p: Adjacency binarisation threshold and re-weighting (``label_adjacency``).
        dropout: Dropout on the embedding and in the heads.
        tasks: Which tasks to train (a single-task model leaves the others' loss out).
        loss_weights: λ per task (va, expression, au).
        uncertainty: Learn the task weights (Kendall et al.) instead of fixed λ.
        label_smoothing: For the expression cross-entropy.
        class_weighting: Weight expressions by inverse frequency and AU positives by neg/pos.
        learning_rate, weight_decay, batch_size, epochs: Optimisation (AdamW, cosine decay).
        augment: Random flips, small shifts and colour jitter while training. Off in the
            SynthAffect presets (``tiny``, ``demo``): the corpus already varies pose, lighting
            and identity, and jitter slowed convergence there (val P_MTL 0.96 after 15 epochs
            with it, 1.96 after 8 without).
    """

    name: str = "custom"
    backbone: str = "small_cnn"
    image_size: int = 64
    margin: float = 0.25
    embedding_dim: int = 128
    heads: str = "mlp"
    head_hidden: int = 64
    gcn_node_dim: int = 32
    gcn_hidden: int = 64
    gcn_tau: float = 0.3
    gcn_p: float = 0.25
    dropout: float = 0.2
    tasks: tuple[str, ...] = ("va", "expression", "au")
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    uncertainty: bool = False
    label_smoothing: float = 0.05
    class_weighting: bool = True
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 10
    augment: bool = True

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_NAMES:
            raise ValueError(
                f"Expected a backbone in {sorted(BACKBONE_NAMES)}. "
                f"Received: backbone={self.backbone!r}"
            )
        if self.heads not in ("mlp", "gcn"):
            raise ValueError(f"Expected heads 'mlp' or 'gcn'. Received: heads={self.heads!r}")
        unknown = set(self.tasks) - {"va", "expression", "au"}
        if unknown or not self.tasks:
            raise ValueError(
                f"Expected tasks from ('va', 'expression', 'au'). Received: tasks={self.tasks!r}"
            )
        if self.image_size < 32:
            raise ValueError(f"Expected image_size >= 32. Received: image_size={self.image_size}")

    def replace(self, **changes: Any) -> AffectConfig:
        """A copy with some fields changed (validated)."""
        if "tasks" in changes:
            changes["tasks"] = tuple(changes["tasks"])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> AffectConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"Expected AffectConfig fields. Received: unknown keys {sorted(unknown)}"
            )
        values = dict(values)
        for key in ("tasks", "loss_weights"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


PRESETS: dict[str, AffectConfig] = {
    # Seconds per epoch on 2 CPU cores: tests and quick experiments.
    "tiny": AffectConfig(
        name="tiny",
        backbone="small_cnn",
        image_size=48,
        embedding_dim=64,
        head_hidden=32,
        batch_size=32,
        epochs=8,
        augment=False,
    ),
    # What `make demo` trains inside the TFX pipeline in a few minutes on CPU.
    "demo": AffectConfig(
        name="demo",
        backbone="small_cnn",
        image_size=64,
        embedding_dim=128,
        heads="gcn",
        batch_size=32,
        epochs=12,
        augment=False,
    ),
    # Phones: MobileNetV3-Small.
    "mobile": AffectConfig(
        name="mobile",
        backbone="mobilenet_v3_small",
        image_size=112,
        embedding_dim=256,
        head_hidden=128,
        batch_size=64,
        epochs=30,
        learning_rate=1e-3,
    ),
    # Savchenko's choice: EfficientNet-B0 at 224, GCN heads.
    "full": AffectConfig(
        name="full",
        backbone="efficientnet_b0",
        image_size=224,
        embedding_dim=512,
        heads="gcn",
        head_hidden=256,
        gcn_node_dim=128,
        gcn_hidden=256,
        batch_size=64,
        epochs=40,
        learning_rate=5e-4,
    ),
}


def get_preset(name: str, **overrides: Any) -> AffectConfig:
    """A preset by name, optionally with fields overridden.

    Raises:
        ValueError: For an unknown preset name or field.
    """
    if name not in PRESETS:
        raise ValueError(f"Expected a preset in {sorted(PRESETS)}. Received: preset={name!r}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
