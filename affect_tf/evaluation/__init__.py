"""Evaluation: the ABAW metrics, the evaluation report with its baselines and gate, smoothing.

Modules: ``metrics`` (CCC, F1 and accuracy math from sufficient statistics, and the Keras
metrics built on it), ``report`` (``AffectEvaluator``, trivial baselines, ``gate``, AU
threshold tuning), ``smoothing`` (mean/median windows over a video's frames). Imports ``core``
and ``data``; the model, training, the TFMA combiners and the CLI use it.
"""

from __future__ import annotations

from affect_tf.core.presets import lazy_attributes

_LAZY = {
    **dict.fromkeys(("p_mtl", "training_metrics"), "affect_tf.evaluation.metrics"),
    **dict.fromkeys(("AffectEvaluator", "evaluate_run", "gate"), "affect_tf.evaluation.report"),
    **dict.fromkeys(("parse_smooth", "smooth_by_video"), "affect_tf.evaluation.smoothing"),
}
__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes("affect_tf.evaluation", _LAZY)
