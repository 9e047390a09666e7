"""TFMA AffectMetrics: the same exact numbers as affect-tf evaluate, and TFMA config wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score
from tensorflow_model_analysis.metrics import metric_types

from affect_tf.core.labels import NUM_AUS
from affect_tf.data import examples as ex
from affect_tf.data import targets as tg
from affect_tf.evaluation.report import AffectEvaluator, gate
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
    report = reference.result()
    expected = ev.report_values(report, len(gate(report)[0]))
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
    config = ev.eval_config(
        {"p_mtl": 1.0, "au_f1": 0.2}, max_p_mtl_drop=0.05, au_threshold=0.4, min_gain=0.1
    )
    assert config.model_specs[0].signature_name == "serving_examples"
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["source"]]
    thresholds = config.metrics_specs[0].thresholds
    # The value rule is one metric that counts failed checks; P_MTL keeps TFMA's change check.
    assert set(thresholds) == {"gate_failures", "p_mtl"}
    assert thresholds["gate_failures"].value_threshold.upper_bound.value == 0.0
    assert thresholds["p_mtl"].change_threshold.absolute.value == pytest.approx(-0.05)
    metric = json.loads(config.metrics_specs[0].metrics[0].config)
    assert metric == {
        "au_threshold": 0.4,
        "thresholds": {"p_mtl": 1.0, "au_f1": 0.2},
        "min_gain": 0.1,
    }
    # The config TFMA stores builds the same metric back.
    assert ev.AffectMetrics(**metric).computations()[0].combiner._min_gain == 0.1


def _expression_only(n: int, seed: int, accuracy: float):
    """Expression labels only (no VA, no AU): 60 % Neutral; predictions right ``accuracy``."""
    rng = np.random.default_rng(seed)
    features, predictions = _batch(n, seed)
    labels = np.where(rng.random(n) < 0.6, 0, rng.integers(1, 7, n))
    features[ex.EXPRESSION], features[ex.EXPR_MASK] = labels, np.ones(n, int)
    features[ex.VA_MASK] = np.zeros(n, int)
    features[ex.AU_MASK] = np.zeros((n, NUM_AUS), int)
    right = rng.random(n) < accuracy
    guess = np.where(right, labels, (labels + 1) % 8)
    predictions[tg.EXPRESSION_PROBS] = np.eye(8)[guess]
    return features, predictions


def _values(features, predictions, **kwargs):
    combiner = ev.AffectMetrics(**kwargs).computations()[0].combiner
    result = combiner.extract_output(_combine(combiner, _elements(features, predictions)))
    return {key.name: value for key, value in result.items()}


def test_tasks_without_labels_are_not_measured_and_do_not_fail_the_gate():
    features, predictions = _expression_only(300, seed=3, accuracy=0.8)
    values = _values(features, predictions, thresholds={"au_f1": 0.3, "ccc_valence": 0.3})
    # No VA / AU key at all (TFMA has no null), their counts say why.
    assert not {"ccc_valence", "ccc_arousal", "va", "au_f1", "au_f1/AU12"} & set(values)
    assert values["n_labelled/va"] == 0 and values["n_labelled/au"] == 0
    assert values["n_labelled/expression"] == 300
    # P_MTL is the expression F1 alone; the gate passes (thresholds on absent tasks ignored).
    assert values["p_mtl"] == pytest.approx(values["expr_f1"])
    assert values["gate_failures"] == 0
    # Trivial baseline by hand: always the majority class (Neutral, n0 of 300) -> F1 = 2 n0 /
    # (n0 + 300) for Neutral, 0 for the 7 others, macro over 8.
    n0 = int((features[ex.EXPRESSION] == 0).sum())
    assert values["trivial/expr_f1"] == pytest.approx(2 * n0 / (n0 + 300) / 8)
    report = ev.report_from_values(values)
    assert report["va"] is None and report["au_f1"] is None
    assert report["tasks_measured"] == ["expression"]
    failures, notes = gate(report, {"au_f1": 0.3, "ccc_valence": 0.3})
    assert failures == [] and len(notes) == 2 and "no au labels" in notes[0] + notes[1]


def test_gate_fails_a_model_no_better_than_the_majority_class():
    features, _ = _expression_only(300, seed=4, accuracy=1.0)
    predictions = _batch(300, seed=4)[1]
    predictions[tg.EXPRESSION_PROBS] = np.eye(8)[np.zeros(300, int)]  # always Neutral
    values = _values(features, predictions)
    assert values["expr_f1"] == pytest.approx(values["trivial/expr_f1"])
    assert values["gate_failures"] == 1
    failures, _ = gate(ev.report_from_values(values))
    assert failures[0].startswith("expr_f1 = ") and "trivial baseline" in failures[0]
    # An absolute threshold on a measured task still applies; -1 turns the relative rule off.
    assert _values(features, predictions, min_gain=-1.0)["gate_failures"] == 0
    assert (
        _values(features, predictions, min_gain=-1.0, thresholds={"expr_f1": 0.5})["gate_failures"]
        == 1
    )
