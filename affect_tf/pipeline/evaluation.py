"""TFMA evaluation with the project's own metrics: exact ABAW numbers, masks respected.

``AffectMetrics`` is a ``tfma.metrics.Metric`` whose Beam combiner accumulates the same
sufficient statistics as ``affect-tf evaluate`` (``affect_tf.metrics.AffectEvaluator``: CCC
moments, the expression confusion matrix, AU tp/fp/fn), merges them by addition across
workers, and reports every key of the evaluation report: ``ccc_valence``, ``ccc_arousal``,
``va``, ``expr_f1``, ``expr_acc``, ``au_f1``, ``p_mtl``, ``n`` and per class / per AU F1
(``expr_f1/<Name>``, ``au_f1/<AU>``). Labels and masks are read from the raw features of the
eval examples; predictions are the ``serving_examples`` signature's named outputs.

``eval_config`` builds the Evaluator's config: slices overall and by ``source``, a value
threshold per configured metric and a change threshold on P_MTL against the baseline (the
latest blessed model), so a worse model is not blessed and not pushed.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2

from affect_tf import targets as tg
from affect_tf.data import examples as ex
from affect_tf.export import SERVING_EXAMPLES
from affect_tf.labels import AUS, EXPRESSIONS, NUM_AUS
from affect_tf.metrics import REPORT_KEYS, AffectEvaluator

METRIC_NAME = "affect"
# The scalar keys of the evaluation report (the per-AU dict becomes ``au_f1/<AU>`` below).
SCALAR_KEYS = tuple(key for key in REPORT_KEYS if not key.endswith("_per_au"))
PER_CLASS_KEYS = tuple(f"expr_f1/{name}" for name in EXPRESSIONS) + tuple(
    f"au_f1/{au}" for au in AUS
)
METRIC_KEYS = SCALAR_KEYS + PER_CLASS_KEYS
SLICE_FEATURE = ex.SOURCE


def report_values(result: dict) -> dict[str, float]:
    """An ``AffectEvaluator.result()`` flattened to the TFMA metric names."""
    out = {key: float(result[key]) for key in SCALAR_KEYS}
    out.update({f"expr_f1/{k}": float(v) for k, v in result["expr_f1_per_class"].items()})
    out.update({f"au_f1/{k}": float(v) for k, v in result["au_f1_per_au"].items()})
    return out


def _targets(features: dict) -> dict[str, np.ndarray]:
    """Raw label features of one example (or a batch) -> packed targets (``affect_tf.targets``)."""
    batch = {
        key: np.asarray(features[key]).reshape(-1, ex.FEATURE_SPEC[key].shape[0])
        if ex.FEATURE_SPEC[key].shape
        else np.asarray(features[key]).reshape(-1)
        for key in ex.LABEL_KEYS
    }
    return {k: np.asarray(v, np.float64) for k, v in tg.targets_from_features(batch).items()}


class _AffectCombiner(beam.CombineFn):
    """Accumulates ``AffectEvaluator`` statistics; exact over the whole slice."""

    def __init__(self, keys: dict[str, metric_types.MetricKey], model_name: str, au_threshold):
        self._keys = keys
        self._model_name = model_name
        self._au_threshold = au_threshold

    def create_accumulator(self) -> AffectEvaluator:
        return AffectEvaluator(self._au_threshold)

    def add_input(self, accumulator: AffectEvaluator, element) -> AffectEvaluator:
        predictions = element.get_predictions(model_name=self._model_name)
        features = element.features
        expression = np.asarray(predictions[tg.EXPRESSION_PROBS], np.float64).reshape(-1, 8)
        au = np.asarray(predictions[tg.AU_PROBS], np.float64).reshape(-1, NUM_AUS)
        va = np.stack(
            [
                np.asarray(predictions[tg.VALENCE], np.float64).reshape(-1),
                np.asarray(predictions[tg.AROUSAL], np.float64).reshape(-1),
            ],
            axis=1,
        )
        accumulator.update(va, expression, au, _targets(features))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[AffectEvaluator]) -> AffectEvaluator:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for other in accumulators:
            result.merge(other)
        return result

    def extract_output(self, accumulator: AffectEvaluator) -> dict:
        values = report_values(accumulator.result())
        return {key: values[name] for name, key in self._keys.items()}


def _affect_computations(
    name: str = METRIC_NAME,
    au_threshold: float = 0.5,
    eval_config: config_pb2.EvalConfig | None = None,
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or [""]:
        keys = {
            # Unweighted and without an example_weighted flag: the keys TFMA derives for the
            # thresholds in ``MetricsSpec.thresholds`` (example_weighted=None) must match.
            metric: metric_types.MetricKey(
                name=metric, model_name=model_name, example_weighted=None
            )
            for metric in METRIC_KEYS
        }
        computations.append(
            metric_types.MetricComputation(
                keys=list(keys.values()),
                preprocessors=[
                    metric_types.FeaturePreprocessor(
                        feature_keys=list(ex.LABEL_KEYS),
                        model_names=[model_name] if model_name else None,
                    )
                ],
                combiner=_AffectCombiner(keys, model_name, au_threshold),
            )
        )
    return computations


class AffectMetrics(tfma.metrics.Metric):
    """The ABAW report (CCC V/A, expression macro F1, AU mean F1, P_MTL, per class) in TFMA.

    Args:
        name: Metric name (informational; the reported keys are ``METRIC_KEYS``).
        au_threshold: Probability threshold of the AU decisions.
    """

    def __init__(self, name: str = METRIC_NAME, au_threshold: float = 0.5):
        super().__init__(_affect_computations, name=name, au_threshold=au_threshold)


metric_types.register_metric(AffectMetrics)


def eval_config(
    thresholds: dict[str, float], max_p_mtl_drop: float, au_threshold: float = 0.5
) -> config_pb2.EvalConfig:
    """The Evaluator's config: our metrics, slices overall and by source, thresholds.

    Args:
        thresholds: Lower bounds by metric name (``affect_tf.pipeline.config.THRESHOLD_METRICS``).
        max_p_mtl_drop: The candidate's P_MTL may be at most this much below the baseline's.
        au_threshold: AU decision threshold.
    """
    import json

    metric_thresholds = {
        name: config_pb2.MetricThreshold(
            value_threshold=config_pb2.GenericValueThreshold(lower_bound={"value": bound})
        )
        for name, bound in thresholds.items()
    }
    p_mtl = metric_thresholds.setdefault("p_mtl", config_pb2.MetricThreshold())
    p_mtl.change_threshold.CopyFrom(
        config_pb2.GenericChangeThreshold(
            direction=config_pb2.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -float(max_p_mtl_drop)},
        )
    )
    return config_pb2.EvalConfig(
        model_specs=[config_pb2.ModelSpec(signature_name=SERVING_EXAMPLES)],
        slicing_specs=[
            config_pb2.SlicingSpec(),
            config_pb2.SlicingSpec(feature_keys=[SLICE_FEATURE]),
        ],
        metrics_specs=[
            config_pb2.MetricsSpec(
                metrics=[
                    config_pb2.MetricConfig(
                        class_name=AffectMetrics.__name__,
                        module=__name__,
                        config=json.dumps({"au_threshold": au_threshold}),
                    ),
                    config_pb2.MetricConfig(class_name="ExampleCount"),
                ],
                thresholds=metric_thresholds,
            )
        ],
    )
