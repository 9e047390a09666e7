"""The multi-task model: backbones, heads, configuration presets and ``AffectModel``."""

from affect_tf.model.affect_model import AffectModel, probabilities
from affect_tf.model.backbones import BACKBONES, build_backbone
from affect_tf.model.config import PRESETS, AffectConfig, get_preset
from affect_tf.model.heads import GCNHeads, label_adjacency

__all__ = [
    "BACKBONES",
    "PRESETS",
    "AffectConfig",
    "AffectModel",
    "GCNHeads",
    "build_backbone",
    "get_preset",
    "label_adjacency",
    "probabilities",
]
