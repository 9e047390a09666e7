import keras
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from affect_tf.core.labels import NUM_AUS
from affect_tf.evaluation import metrics as m
from affect_tf.evaluation import report as R


def numpy_ccc(x, y):
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    return 2 * cov / (x.var() + y.var() + (mx - my) ** 2)


def test_ccc_hand_checked():
    x = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    assert m.ccc_from_stats(m.ccc_stats(x, x, np.ones(3))) == pytest.approx([1.0, 1.0])
    # mean 2 vs -2, variances 2/3, covariance -2/3: CCC = -(4/3) / (4/3 + 16) = -1/13.
    assert m.ccc_from_stats(m.ccc_stats(x, -x, np.ones(3)))[0] == pytest.approx(-1 / 13)
    # Constant prediction: no covariance -> 0; no data -> 0, not NaN.
    assert m.ccc_from_stats(m.ccc_stats(x, np.zeros_like(x), np.ones(3)))[0] == 0.0
    assert m.ccc_from_stats(m.ccc_stats(x, x, np.zeros(3))).tolist() == [0.0, 0.0]
    # Shifted by one: 2·(2/3) / (2/3 + 2/3 + 1) = 4/7.
    assert m.ccc_from_stats(m.ccc_stats(x, x + 1, np.ones(3)))[0] == pytest.approx(4 / 7)


def test_ccc_streaming_equals_whole_dataset_with_masks_and_uneven_batches():
    rng = np.random.default_rng(0)
    n = 157
    truth = rng.uniform(-1, 1, (n, 2))
    pred = np.clip(truth * 0.6 + rng.normal(0, 0.3, (n, 2)), -1, 1)
    mask = (rng.random(n) > 0.3).astype(float)
    truth_nan = np.where(mask[:, None] > 0, truth, np.nan)  # masked values may be garbage
    metric_v = m.ConcordanceCorrelation(0)
    metric_mean = m.ConcordanceCorrelation(None)
    stats = np.zeros((6, 2))
    for lo, hi in [(0, 1), (1, 40), (40, 41), (41, 120), (120, n)]:
        y = np.concatenate([truth[lo:hi], mask[lo:hi, None]], axis=1).astype("float32")
        metric_v.update_state(y, pred[lo:hi].astype("float32"))
        metric_mean.update_state(y, pred[lo:hi].astype("float32"))
        stats = stats + m.ccc_stats(truth_nan[lo:hi], pred[lo:hi], mask[lo:hi])
    keep = mask > 0
    expected = [numpy_ccc(truth[keep, d], pred[keep, d]) for d in range(2)]
    np.testing.assert_allclose(m.ccc_from_stats(stats), expected, atol=1e-10)
    assert float(metric_v.result()) == pytest.approx(expected[0], abs=1e-5)
    assert float(metric_mean.result()) == pytest.approx(np.mean(expected), abs=1e-5)
    metric_v.reset_state()
    assert float(metric_v.result()) == 0.0


def test_expression_f1_and_accuracy_match_sklearn():
    rng = np.random.default_rng(1)
    n = 211
    labels = rng.integers(0, 7, n)  # class 7 never labelled
    logits = rng.normal(size=(n, 8)) + 2.0 * np.eye(8)[labels] * (rng.random(n) > 0.4)[:, None]
    mask = (rng.random(n) > 0.2).astype(float)
    f1 = m.ExpressionF1("macro")
    acc = m.ExpressionF1("accuracy")
    for lo, hi in [(0, 17), (17, 100), (100, n)]:
        y = np.stack([labels[lo:hi], mask[lo:hi]], axis=1).astype("float32")
        f1.update_state(y, logits[lo:hi].astype("float32"))
        acc.update_state(y, logits[lo:hi].astype("float32"))
    keep = mask > 0
    preds = logits.argmax(axis=1)
    expected = f1_score(
        labels[keep], preds[keep], labels=list(range(8)), average="macro", zero_division=0
    )
    assert float(f1.result()) == pytest.approx(expected, abs=1e-6)
    assert float(acc.result()) == pytest.approx(accuracy_score(labels[keep], preds[keep]), abs=1e-6)


def test_au_f1_matches_sklearn_per_au_with_thresholds():
    rng = np.random.default_rng(2)
    n = 180
    labels = (rng.random((n, NUM_AUS)) < 0.3).astype(float)
    probs = np.clip(labels * 0.5 + rng.random((n, NUM_AUS)) * 0.6, 0, 1)
    mask = (rng.random((n, NUM_AUS)) > 0.25).astype(float)
    thresholds = np.linspace(0.3, 0.7, NUM_AUS)
    metric = m.AUMeanF1(thresholds, from_logits=False)
    for lo, hi in [(0, 50), (50, 51), (51, n)]:
        y = np.concatenate([labels[lo:hi], mask[lo:hi]], axis=1).astype("float32")
        metric.update_state(y, probs[lo:hi].astype("float32"))
    per_au = []
    for k in range(NUM_AUS):
        keep = mask[:, k] > 0
        per_au.append(f1_score(labels[keep, k], probs[keep, k] >= thresholds[k], zero_division=0))
    assert float(metric.result()) == pytest.approx(np.mean(per_au), abs=1e-6)
    counts = m.binary_counts(labels, probs >= thresholds, mask)
    np.testing.assert_allclose(m.f1_from_binary_counts(counts), per_au, atol=1e-12)


def test_statistics_merge_by_addition():
    rng = np.random.default_rng(3)
    labels, preds, mask = rng.integers(0, 8, 50), rng.integers(0, 8, 50), rng.random(50) > 0.3
    whole = m.confusion_counts(labels, preds, mask)
    halves = m.confusion_counts(labels[:20], preds[:20], mask[:20]) + m.confusion_counts(
        labels[20:], preds[20:], mask[20:]
    )
    np.testing.assert_array_equal(whole, halves)
    assert whole.sum() == mask.sum()


def test_p_mtl_and_evaluator():
    assert m.p_mtl(0.5, 0.3, 0.4, 0.6) == pytest.approx(1.4)
    ev = R.AffectEvaluator()
    va = np.array([[0.1, 0.2], [0.3, 0.1], [-0.2, 0.0]])
    targets = {
        "va": np.array([[0.1, 0.2, 1], [0.3, 0.1, 1], [-0.2, 0.0, 1]]),
        "expression": np.array([[4, 1], [1, 1], [0, 0]]),
        "au": np.concatenate([np.eye(3, NUM_AUS), np.ones((3, NUM_AUS))], axis=1),
    }
    expr = np.eye(8)[[4, 1, 3]]
    au = np.eye(3, NUM_AUS)
    ev.update(va, expr, au, targets)
    result = ev.result()
    assert result["ccc_valence"] == pytest.approx(1.0) and result["ccc_arousal"] == pytest.approx(
        1.0
    )
    assert result["expr_acc"] == 1.0 and result["expr_f1"] == pytest.approx(2 / 8)
    # AUs 1-3 perfect (F1 1), the other 9 never positive nor predicted (F1 0).
    assert result["au_f1"] == pytest.approx(3 / 12)
    assert result["p_mtl"] == pytest.approx(1.0 + 0.25 + 0.25)
    assert set(result) >= set(R.REPORT_KEYS)
    # The report contract of issue "multi-task model", pinned.
    assert R.REPORT_KEYS == (
        "ccc_valence",
        "ccc_arousal",
        "va",
        "expr_f1",
        "expr_acc",
        "au_f1",
        "au_f1_per_au",
        "p_mtl",
        "n",
    )


def test_tune_au_thresholds_brute_force():
    rng = np.random.default_rng(4)
    labels = (rng.random((300, NUM_AUS)) < 0.2).astype(float)
    probs = np.clip(labels * 0.3 + rng.random((300, NUM_AUS)) * 0.5, 0, 1)
    mask = np.ones_like(labels)
    mask[:, 0] = 0
    grid = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    best = R.tune_au_thresholds(probs, labels, mask, grid)
    assert best[0] == 0.5  # no labels: default
    for k in range(1, NUM_AUS):
        scores = [f1_score(labels[:, k], probs[:, k] >= t, zero_division=0) for t in grid]
        assert f1_score(labels[:, k], probs[:, k] >= best[k], zero_division=0) == pytest.approx(
            max(scores)
        )


@pytest.mark.parametrize(
    "metric",
    [
        m.ConcordanceCorrelation(1, name="ccc_a"),
        m.ExpressionF1("accuracy", name="acc"),
        m.AUMeanF1(0.4, name="auf1"),
    ],
)
def test_metric_config_round_trip(metric):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(clone) is type(metric) and clone.get_config() == metric.get_config()


def test_metric_arguments_are_checked():
    with pytest.raises(ValueError, match="dimension"):
        m.ConcordanceCorrelation(2)
    with pytest.raises(ValueError, match="thresholds"):
        m.AUMeanF1([0.5, 0.5])


def test_unmeasured_tasks_are_none_and_trivial_baselines_by_hand():
    # Two examples, AUs only: AU1 labelled on both (one positive), AU2 on one (negative).
    au_labels = np.zeros((2, NUM_AUS))
    au_labels[0, 0] = 1
    au_mask = np.zeros((2, NUM_AUS))
    au_mask[:, 0] = 1
    au_mask[1, 1] = 1
    targets = {
        "va": np.zeros((2, 3)),
        "expression": np.zeros((2, 2)),
        "au": np.concatenate([au_labels, au_mask], axis=1),
    }
    ev = R.AffectEvaluator()
    ev.update(np.zeros((2, 2)), np.full((2, 8), 1 / 8), au_labels, targets)
    result = ev.result()
    assert result["tasks_measured"] == ["au"]
    assert result["va"] is None and result["ccc_valence"] is None and result["expr_f1"] is None
    assert set(result["expr_f1_per_class"].values()) == {None}
    assert result["n_labelled"] == {"va": 0, "expression": 0, "au": 2}
    # Mean over the labelled AUs only: AU1 perfect (1), AU2 labelled, never positive (0).
    assert result["au_f1"] == pytest.approx(0.5)
    assert result["au_f1_per_au"]["AU1"] == 1.0 and result["au_f1_per_au"]["AU4"] is None
    # All AUs on: AU1 2*1/(2*1+1) = 2/3, AU2 0 -> 1/3.
    assert result["trivial"] == {"au_f1": pytest.approx(1 / 3)}
    assert result["gain"]["au_f1"] == pytest.approx(0.5 - 1 / 3)
    assert result["p_mtl"] == pytest.approx(0.5)
    assert "n/a" in R.format_report(result) and "over au" in R.format_report(result)


def test_nothing_measured_fails_the_gate():
    ev = R.AffectEvaluator()
    targets = {"va": np.zeros((1, 3)), "expression": np.zeros((1, 2)), "au": np.zeros((1, 24))}
    ev.update(np.zeros((1, 2)), np.full((1, 8), 1 / 8), np.zeros((1, 12)), targets)
    result = ev.result()
    assert result["p_mtl"] is None and result["tasks_measured"] == []
    failures, _ = R.gate(result)
    assert failures and "no task is measured" in failures[0]
