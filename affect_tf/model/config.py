"""Model and training configuration: a frozen dataclass and named presets."""

from __future__ import annotations

import dataclasses
from typing import Any

from affect_tf.core.presets import FrozenConfig, get_from

# The backbone names (``affect_tf.model.backbones.BACKBONES`` maps each to its builder). Kept
# here, free of Keras, so that configuration and the CLI's argument parsing stay import-light.
BACKBONE_NAMES: tuple[str, ...] = (
    "efficientnet_b0",
    "mobilenet_v3_small",
    "small_cnn",
    "vgg_small",
)
# Backbones Keras Applications has ImageNet weights for (``weights="imagenet"``).
IMAGENET_BACKBONES: tuple[str, ...] = ("efficientnet_b0", "mobilenet_v3_small")
# How a pretrained backbone is trained (``affect_tf.training.fit``).
SCHEDULES: tuple[str, ...] = ("scratch", "frozen", "finetune")
# How the expression loss copes with class imbalance (``AffectModel.compute_loss``,
# ``affect_tf.data.dataset.balance_expressions``).
IMBALANCE: tuple[str, ...] = ("none", "class_weights", "logit_adjustment", "sampling")
# What the MLP AU/VA heads read (``affect_tf.model.heads.mlp_heads``) and where the GCN's label
# graph comes from (``GCNHeads``).
HEAD_FEATURES: tuple[str, ...] = ("embedding", "scores", "both")
GCN_ADJACENCIES: tuple[str, ...] = ("data", "learned")


@dataclasses.dataclass(frozen=True)
class AffectConfig(FrozenConfig):
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
        gcn_adjacency: ``data`` (the label graph of the training data's correlations,
            Emotion-GCN) or ``learned`` (the GCN learns its graph, starting from no edges).
        head_features: What the MLP AU and VA heads read (Savchenko): ``embedding`` (the
            shared embedding), ``scores`` (the expression head's softmax, gradients stopped)
            or ``both`` concatenated. The expression head reads the embedding.
        dropout: Dropout on the embedding and in the heads.
        tasks: Which tasks to train (a single-task model leaves the others' loss out).
        loss_weights: λ per task (va, expression, au).
        uncertainty: Learn the task weights (Kendall et al.) instead of fixed λ.
        label_smoothing: For the expression cross-entropy.
        va_loss: ``ccc`` (1 − CCC, Kollias et al.'s choice) or ``mse`` for valence/arousal.
        focal_gamma: > 0: the expression loss is the focal loss with this gamma (0:
            cross-entropy). The AU loss is BCE, its positives weighted by
            ``class_weighting``: the three loss pairs Kollias et al. compare.
        soft_labels: Train the expression head on an example's annotator distribution
            (``expression_dist``, e.g. FER+'s votes) where it has one; False: on its majority
            class only. Examples without a distribution train on their class either way. On
            FER+ (docs/results.md) macro F1 0.306 +- 0.004 against 0.258 +- 0.005.
        class_weighting: Weight AU positives by negatives/positives in the training labels.
        imbalance: Expression class imbalance: ``none``; ``class_weights`` (inverse-frequency
            weighted cross-entropy); ``logit_adjustment`` (Menon et al.: ``log prior`` added to
            the logits inside the loss); ``sampling`` (class-balanced batches; the default).
            Chosen on real faces (docs/results.md, ferplus_defaults): on FER+ Train -> Valid
            the rebalancing options tie within noise at the top (macro F1 ``sampling`` 0.298
            +- 0.001, logit adjustment 0.296 +- 0.006, class weights 0.290 +- 0.005; none
            0.262) and on FER+ skewed as the held-out real corpus was ``sampling`` leads
            (0.232; class weights 0.217, none 0.193, logit adjustment 0.164 with an accuracy
            under the majority baseline's).
            ``none`` keeps the highest accuracy (0.566 against 0.476) at the rare classes'
            cost. (On SynthAffect logit adjustment had led: the choice that failed real faces.)
        logit_prior_floor: ``logit_adjustment`` clips each class prior to at least this before
            taking its log (0: the smallest prior seen): unclipped, a class at 0.07 % made the
            model predict it for almost every face of a real corpus.
        learning_rate, weight_decay, batch_size, epochs: Optimisation (AdamW, cosine decay).
        grayscale: Read every face as grey (its BT.601 luminance in all three channels) inside
            the model (``affect_tf.model.colour``): for models whose expressions learned from
            grey faces (FER+), so that colour photos look like what training saw.
        augment: Augmentation layers inside the model, active only while training
            (``affect_tf.model.augment``: flip, rotation/zoom/shift, colour jitter, blur,
            random erasing); export and serving see the same graph. Off in the SynthAffect
            presets (``tiny``, ``demo``): the corpus already varies pose, lighting, identity
            and occlusion (measured in docs/results.md).
        weights: Backbone initialisation: ``""`` (random), ``"synthaffect"`` (the weights this
            package ships, made by ``affect-tf pretrain``; ``affect_tf.model.shipped``),
            ``"imagenet"`` (Keras Applications' own download), a local ``.weights.h5`` of this
            backbone at this size (checked against its card when it has one), or an earlier
            ``.keras`` model of this project whose backbone (same name) is copied.
        schedule: ``scratch`` (everything trains from the start), ``frozen`` (the pretrained
            backbone stays fixed, the heads train), ``finetune`` (``warmup_epochs`` frozen, then
            the whole network with the backbone at ``backbone_lr_scale`` x the learning rate).
            Pretrained backbones run their BatchNorm in inference mode, as Keras recommends.
        warmup_epochs, backbone_lr_scale: The ``finetune`` schedule's settings.
        cache_embeddings: With ``frozen``: run the backbone once over the data and train the
            heads on its features (Savchenko's set-up; very fast; no augmentation).
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
    gcn_adjacency: str = "data"
    head_features: str = "embedding"
    dropout: float = 0.2
    TUPLE_FIELDS = ("tasks", "loss_weights")  # JSON gives lists

    tasks: tuple[str, ...] = ("va", "expression", "au")
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    uncertainty: bool = False
    label_smoothing: float = 0.05
    va_loss: str = "ccc"
    focal_gamma: float = 0.0
    soft_labels: bool = True
    class_weighting: bool = True
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 10
    augment: bool = True
    grayscale: bool = False
    imbalance: str = "sampling"
    logit_prior_floor: float = 0.05
    weights: str = ""
    schedule: str = "scratch"
    warmup_epochs: int = 2
    backbone_lr_scale: float = 0.1
    cache_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_NAMES:
            raise ValueError(
                f"Expected a backbone in {sorted(BACKBONE_NAMES)}. "
                f"Received: backbone={self.backbone!r}"
            )
        if self.va_loss not in ("ccc", "mse"):
            raise ValueError(f"Expected va_loss 'ccc' or 'mse'. Received: va_loss={self.va_loss!r}")
        if not 0.0 <= self.focal_gamma <= 10.0:
            raise ValueError(
                f"Expected focal_gamma in [0, 10]. Received: focal_gamma={self.focal_gamma}"
            )
        if self.heads not in ("mlp", "gcn"):
            raise ValueError(f"Expected heads 'mlp' or 'gcn'. Received: heads={self.heads!r}")
        if self.gcn_adjacency not in GCN_ADJACENCIES:
            raise ValueError(
                f"Expected gcn_adjacency in {GCN_ADJACENCIES}. "
                f"Received: gcn_adjacency={self.gcn_adjacency!r}"
            )
        if self.head_features not in HEAD_FEATURES:
            raise ValueError(
                f"Expected head_features in {HEAD_FEATURES}. "
                f"Received: head_features={self.head_features!r}"
            )
        if self.head_features != "embedding" and self.heads != "mlp":
            raise ValueError(
                "Expected heads='mlp' with head_features (GCN heads read the embedding). "
                f"Received: heads={self.heads!r}, head_features={self.head_features!r}"
            )
        unknown = set(self.tasks) - {"va", "expression", "au"}
        if unknown or not self.tasks:
            raise ValueError(
                f"Expected tasks from ('va', 'expression', 'au'). Received: tasks={self.tasks!r}"
            )
        if self.imbalance not in IMBALANCE:
            raise ValueError(
                f"Expected imbalance in {IMBALANCE}. Received: imbalance={self.imbalance!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"Expected schedule in {SCHEDULES}. Received: schedule={self.schedule!r}"
            )
        if self.schedule != "scratch" and not self.weights:
            raise ValueError(
                f"Expected pretrained weights for schedule={self.schedule!r} (synthaffect, "
                "imagenet, a local .weights.h5 or an earlier .keras model). Received: weights=''"
            )
        if self.weights == "imagenet" and self.backbone not in IMAGENET_BACKBONES:
            raise ValueError(
                f"Expected a backbone with ImageNet weights in Keras Applications "
                f"{IMAGENET_BACKBONES} for weights='imagenet'. Received: backbone="
                f"{self.backbone!r}"
            )
        if self.cache_embeddings and self.schedule != "frozen":
            raise ValueError(
                "Expected schedule='frozen' with cache_embeddings (the backbone must not change)."
                f" Received: schedule={self.schedule!r}"
            )
        if self.warmup_epochs < 0 or not 0.0 <= self.backbone_lr_scale <= 1.0:
            raise ValueError(
                "Expected warmup_epochs >= 0 and backbone_lr_scale in [0, 1]. Received: "
                f"warmup_epochs={self.warmup_epochs}, backbone_lr_scale={self.backbone_lr_scale}"
            )
        if not 0.0 <= self.logit_prior_floor < 1.0 / 8:
            raise ValueError(
                "Expected logit_prior_floor in [0, 1/8) (a class prior's floor). Received: "
                f"logit_prior_floor={self.logit_prior_floor}"
            )
        if self.image_size < 32:
            raise ValueError(f"Expected image_size >= 32. Received: image_size={self.image_size}")


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
    # What `make demo` trains inside the TFX pipeline in a few minutes on CPU, from the shipped
    # SynthAffect backbone, fine-tuned at once at the full rate: on FER+ (Train -> Valid,
    # docs/results.md "recipe") that beat 2 frozen warm-up epochs then 0.1x by 0.10 macro F1
    # (0.406 +- 0.015 vs 0.302 +- 0.001, 3 seeds).
    "demo": AffectConfig(
        name="demo",
        backbone="small_cnn",
        image_size=64,
        embedding_dim=128,
        heads="gcn",
        batch_size=32,
        epochs=12,
        augment=False,
        weights="synthaffect",
        schedule="finetune",
        warmup_epochs=0,
        backbone_lr_scale=1.0,
    ),
    # The model the package ships (``affect_tf.model.default``, docs/results.md "shipped model"):
    # a VGG-13-style backbone trained from random weights on FER+ (expressions, soft labels)
    # mixed with SynthAffect (valence/arousal, AUs), natural class frequencies (the accuracy a
    # user of a photo reader expects), in-model augmentation; faces read as grey, as FER+'s are.
    "shipped": AffectConfig(
        name="shipped",
        backbone="vgg_small",
        image_size=64,
        embedding_dim=128,
        heads="gcn",
        batch_size=128,
        epochs=60,
        augment=True,
        imbalance="none",
        grayscale=True,
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
        weights="imagenet",
        schedule="finetune",
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
        weights="imagenet",
        schedule="finetune",
    ),
}


def get_preset(name: str, **overrides: Any) -> AffectConfig:
    """A preset by name, optionally with fields overridden.

    Raises:
        ValueError: For an unknown preset name or field.
    """
    return get_from(PRESETS, name, "preset", **overrides)
