"""TFMA AffectMetrics: the same exact numbers as affect-tf evaluate, and TFMA config wiring."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score
from tensorflow_model_analysis.metrics import metric_types

from affect_tf import targets as tg
from affect_tf.data import examples as ex
from affect_tf.labels import NUM_AUS
from affect_tf.metrics import AffectEvaluator
from affect_tf.pipeline import evaluation as ev


def _batch(n: int, seed: int):
    rng = np.random.default_rng(seed)
    features = {
        ex.VALENCE: rng.uniform(-1, 1, n).astype(np.float32),
        ex.AROUSAL: rng.uniform(-1, 1, n).astype(np.float32),
        ex.VA_MASK: rng.integers(0, 2, n),
        ex.EXPRESSION: rng.integers(0, 8, n),
        ex.EXPR_MASK: rng.integers(0, 2, n),
        ex.AU: rng.integers(0, 2, (n, NUM_AUS)),
        ex.AU_MASK: rng.integers(0, 2, (n, NUM_AUS)),
    }
    logits = rng.normal(size=(n, 8))
    predictions = {
        tg.EXPRESSION_PROBS: np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
        tg.AU_PROBS: rng.uniform(0, 1, (n, NUM_AUS)),
        tg.VALENCE: rng.uniform(-1, 1, n),
        tg.AROUSAL: rng.uniform(-1, 1, n),
    }
    return features, predictions


def _elements(features, predictions):
    """One StandardMetricInputs per example, as TFMA hands them to a combiner."""
    n = len(features[ex.VALENCE])
    for i in range(n):
        yield metric_types.StandardMetricInputs(
            {
                "features": {k: np.asarray(v[i]).reshape(-1) for k, v in features.items()},
                "predictions": {k: np.asarray(v[i]) for k, v in predictions.items()},
                "labels": None,
            }
        )


def _combine(combiner, elements):
    acc = combiner.create_accumulator()
    for element in elements:
        acc = combiner.add_input(acc, element)
    return acc


def test_combiner_equals_affect_evaluator_and_sklearn():
    features, predictions = _batch(200, seed=0)
    computation = ev.AffectMetrics().computations()[0]
    combiner = computation.combiner
    result = combiner.extract_output(_combine(combiner, _elements(features, predictions)))
    values = {key.name: value for key, value in result.items()}
    assert set(values) == set(ev.METRIC_KEYS)

    reference = AffectEvaluator()
    va = np.stack([predictions[tg.VALENCE], predictions[tg.AROUSAL]], 1)
    reference.update(
        va, predictions[tg.EXPRESSION_PROBS], predictions[tg.AU_PROBS], ev._targets(features)
    )
    expected = ev.report_values(reference.result())
    for key in ev.METRIC_KEYS:
        assert values[key] == pytest.approx(expected[key], abs=1e-12), key

    # Masks respected: expression macro F1 over the labelled examples only (sklearn).
    keep = features[ex.EXPR_MASK] == 1
    sk = f1_score(
        features[ex.EXPRESSION][keep],
        predictions[tg.EXPRESSION_PROBS].argmax(1)[keep],
        labels=list(range(8)),
        average="macro",
        zero_division=0,
    )
    assert values["expr_f1"] == pytest.approx(sk, abs=1e-12)
    assert values["p_mtl"] == pytest.approx(
        (values["ccc_valence"] + values["ccc_arousal"]) / 2 + values["expr_f1"] + values["au_f1"]
    )


def test_merged_accumulators_are_exact():
    """Beam merges partial accumulators from workers: the merge must equal one pass."""
    features, predictions = _batch(90, seed=1)
    combiner = ev.AffectMetrics().computations()[0].combiner
    elements = list(_elements(features, predictions))
    whole = combiner.extract_output(_combine(combiner, elements))
    parts = [_combine(combiner, elements[i::3]) for i in range(3)]
    merged = combiner.extract_output(combiner.merge_accumulators(parts))
    for key, value in whole.items():
        assert merged[key] == pytest.approx(value, abs=1e-12)


def test_evaluator_merge_refuses_different_thresholds():
    with pytest.raises(ValueError, match="same AU thresholds"):
        AffectEvaluator(0.5).merge(AffectEvaluator(0.3))


def test_one_computation_per_model_with_baseline():
    computations = ev.AffectMetrics().computations(model_names=["candidate", "baseline"])
    names = {key.model_name for c in computations for key in c.keys}
    assert names == {"candidate", "baseline"}


def test_eval_config_thresholds_and_slices():
    config = ev.eval_config({"p_mtl": 1.0, "au_f1": 0.2}, max_p_mtl_drop=0.05, au_threshold=0.4)
    assert config.model_specs[0].signature_name == "serving_examples"
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["source"]]
    thresholds = config.metrics_specs[0].thresholds
    assert thresholds["p_mtl"].value_threshold.lower_bound.value == 1.0
    assert thresholds["p_mtl"].change_threshold.absolute.value == pytest.approx(-0.05)
    assert thresholds["au_f1"].value_threshold.lower_bound.value == pytest.approx(0.2)
    assert '"au_threshold": 0.4' in config.metrics_specs[0].metrics[0].config
