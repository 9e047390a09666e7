"""Training: the one fit function, runs over tf.Example files, multi-worker, pretraining, ablations.

Modules: ``fit`` (``fit``, ``FitData``: behind ``affect-tf train``, the TFX Trainer and
``affect-tf pretrain``), ``tfrecords`` (``train`` / ``evaluate`` / ``predict_table`` over
tf.Example files), ``callbacks`` (P_MTL, curves, the resume point), ``distribute``
(TF_CONFIG, the strategy, data sharding), ``pretrain`` and ``pretrain_budget`` (a backbone on
SynthAffect streamed), ``ablation`` and ``ablation_report`` (the papers' studies over seeds).
Imports ``core``, ``data``, ``evaluation`` and ``model``.
"""

from __future__ import annotations

from affect_tf.core.presets import lazy_attributes

# ``fit`` is a module here, so the function is not re-exported under the same name.
_LAZY = {
    **dict.fromkeys(("FitData", "FitResult"), "affect_tf.training.fit"),
    **dict.fromkeys(("evaluate", "predict_table", "train"), "affect_tf.training.tfrecords"),
    **dict.fromkeys(("run_studies", "study_names"), "affect_tf.training.ablation"),
    "pretrain": "affect_tf.training.pretrain",
}
__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes("affect_tf.training", _LAZY)
