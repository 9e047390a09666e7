"""TFMA evaluation with the project's own metrics: exact ABAW numbers, masks respected.

A task the eval split does not label is *not measured*: its keys are absent from TFMA's output
(the summary shows ``n/a``), ``p_mtl`` sums the measured tasks, and the blessing rule
(``affect_tf.evaluation.report.gate``: every measured task above its trivial baseline, plus any
value thresholds the user set on measured tasks) is one metric, ``gate_failures``, that must be 0.


``AffectMetrics`` is a ``tfma.metrics.Metric`` whose Beam combiner accumulates the same
sufficient statistics as ``affect-tf evaluate`` (``affect_tf.evaluation.report.AffectEvaluator``:
CCC moments, the expression confusion matrix, AU tp/fp/fn), merges them by addition across
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

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS
from affect_tf.core.layout import SERVING_EXAMPLES
from affect_tf.data import examples as ex
from affect_tf.data import targets as tg
from affect_tf.evaluation.report import (
    DEFAULT_MIN_GAIN,
    REPORT_KEYS,
    TASK_SCORE,
    TASKS,
    AffectEvaluator,
    gate,
)

METRIC_NAME = "affect"
GATE_FAILURES = "gate_failures"
# The component id of the Evaluator that reports on a corpus' own Test split (FER+).
TEST_EVALUATOR = "TestEvaluator"
# The scalar keys of the evaluation report (the per-AU dict becomes ``au_f1/<AU>`` below).
SCALAR_KEYS = tuple(key for key in REPORT_KEYS if not key.endswith("_per_au"))
PER_CLASS_KEYS = tuple(f"expr_f1/{name}" for name in EXPRESSIONS) + tuple(
    f"au_f1/{au}" for au in AUS
)
COUNT_KEYS = tuple(f"n_labelled/{task}" for task in TASKS)
TRIVIAL_KEYS = tuple(f"trivial/{TASK_SCORE[task]}" for task in TASKS)
METRIC_KEYS = SCALAR_KEYS + PER_CLASS_KEYS + COUNT_KEYS + TRIVIAL_KEYS + (GATE_FAILURES,)
SLICE_FEATURE = ex.SOURCE


def report_values(result: dict, failures: int | None = None) -> dict[str, float]:
    """An ``AffectEvaluator.result()`` flattened to the TFMA metric names; the scores of a task
    not measured are left out (TFMA has no null), ``n_labelled/<task>`` says why."""
    out = {key: float(result[key]) for key in SCALAR_KEYS if result[key] is not None}
    # The change threshold compares P_MTL with the baseline's on the same split; with nothing
    # measured both are 0 and ``gate_failures`` already fails the candidate.
    out.setdefault("p_mtl", 0.0)
    out.update(
        {f"expr_f1/{k}": float(v) for k, v in result["expr_f1_per_class"].items() if v is not None}
    )
    out.update({f"au_f1/{k}": float(v) for k, v in result["au_f1_per_au"].items() if v is not None})
    out.update({f"n_labelled/{k}": float(v) for k, v in result["n_labelled"].items()})
    out.update({f"trivial/{k}": float(v) for k, v in result["trivial"].items()})
    if failures is not None:
        out[GATE_FAILURES] = float(failures)
    return out


def report_from_values(values: dict) -> dict:
    """TFMA's flat metric values back to the report layout (None for what was not measured)."""
    if not values:
        return {}
    out = {k: values.get(k) for k in SCALAR_KEYS if k != "n"}
    out["n"] = int(values["n"]) if "n" in values else None
    out["expr_f1_per_class"] = {e: values.get(f"expr_f1/{e}") for e in EXPRESSIONS}
    out["au_f1_per_au"] = {a: values.get(f"au_f1/{a}") for a in AUS}
    out["n_labelled"] = {t: int(values.get(f"n_labelled/{t}", 0)) for t in TASKS}
    out["tasks_measured"] = [t for t in TASKS if out["n_labelled"][t] > 0]
    out["trivial"] = {
        TASK_SCORE[t]: values[f"trivial/{TASK_SCORE[t]}"]
        for t in out["tasks_measured"]
        if f"trivial/{TASK_SCORE[t]}" in values
    }
    out["gain"] = {k: out[k] - v for k, v in out["trivial"].items() if out.get(k) is not None}
    if GATE_FAILURES in values:
        out[GATE_FAILURES] = int(values[GATE_FAILURES])
    return out


def _targets(features: dict) -> dict[str, np.ndarray]:
    """Raw label features of one example (or a batch) -> packed targets (``data.targets``)."""
    batch = {
        key: np.asarray(features[key]).reshape(-1, ex.FEATURE_SPEC[key].shape[0])
        if ex.FEATURE_SPEC[key].shape
        else np.asarray(features[key]).reshape(-1)
        for key in ex.LABEL_KEYS
        if key in features or key not in ex.OPTIONAL_KEYS  # metrics need the majority only
    }
    return {k: np.asarray(v, np.float64) for k, v in tg.targets_from_features(batch).items()}


class _AffectCombiner(beam.CombineFn):
    """Accumulates ``AffectEvaluator`` statistics; exact over the whole slice."""

    def __init__(
        self,
        keys: dict[str, metric_types.MetricKey],
        model_name: str,
        au_threshold,
        thresholds: dict[str, float] | None = None,
        min_gain: float = DEFAULT_MIN_GAIN,
    ):
        self._keys = keys
        self._model_name = model_name
        self._au_threshold = au_threshold
        self._thresholds = dict(thresholds or {})
        self._min_gain = min_gain

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
        report = accumulator.result()
        failures, _ = gate(report, self._thresholds, self._min_gain)
        values = report_values(report, len(failures))
        return {key: values[name] for name, key in self._keys.items() if name in values}


def _affect_computations(
    name: str = METRIC_NAME,
    au_threshold: float = 0.5,
    thresholds: dict[str, float] | None = None,
    min_gain: float = DEFAULT_MIN_GAIN,
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
                combiner=_AffectCombiner(keys, model_name, au_threshold, thresholds, min_gain),
            )
        )
    return computations


class AffectMetrics(tfma.metrics.Metric):
    """The ABAW report (CCC V/A, expression macro F1, AU mean F1, P_MTL, per class) in TFMA.

    Args:
        name: Metric name (informational; the reported keys are ``METRIC_KEYS``).
        au_threshold: Probability threshold of the AU decisions.
        thresholds: Absolute lower bounds by metric name, applied to measured tasks only.
        min_gain: Each measured task's required margin over its trivial baseline.
    """

    def __init__(
        self,
        name: str = METRIC_NAME,
        au_threshold: float = 0.5,
        thresholds: dict[str, float] | None = None,
        min_gain: float = DEFAULT_MIN_GAIN,
    ):
        super().__init__(
            _affect_computations,
            name=name,
            au_threshold=au_threshold,
            thresholds=dict(thresholds or {}),
            min_gain=min_gain,
        )


metric_types.register_metric(AffectMetrics)


def eval_config(
    thresholds: dict[str, float],
    max_p_mtl_drop: float,
    au_threshold: float = 0.5,
    min_gain: float = DEFAULT_MIN_GAIN,
    gated: bool = True,
) -> config_pb2.EvalConfig:
    """The Evaluator's config: our metrics, slices overall and by source, the gate.

    Args:
        thresholds: Absolute lower bounds by metric name
            (``affect_tf.pipeline.config.THRESHOLD_METRICS``), on measured tasks only.
        max_p_mtl_drop: The candidate's P_MTL may be at most this much below the baseline's
            (both over the tasks the eval split labels).
        au_threshold: AU decision threshold.
        min_gain: Each measured task at least this far above its trivial baseline.
        gated: False for a report only (the TestEvaluator: no baseline, no thresholds, its
            blessing used by nothing).
    """
    import json

    gate_threshold = config_pb2.MetricThreshold(
        value_threshold=config_pb2.GenericValueThreshold(upper_bound={"value": 0.0})
    )
    p_mtl = config_pb2.MetricThreshold(
        change_threshold=config_pb2.GenericChangeThreshold(
            direction=config_pb2.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -float(max_p_mtl_drop)},
        )
    )
    metric_config = {"au_threshold": au_threshold, "thresholds": dict(thresholds)}
    metric_config["min_gain"] = min_gain
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
                        config=json.dumps(metric_config),
                    ),
                    config_pb2.MetricConfig(class_name="ExampleCount"),
                ],
                thresholds={GATE_FAILURES: gate_threshold, "p_mtl": p_mtl} if gated else {},
            )
        ],
    )
