"""The condition vector: parsing, validation, priors measured from labels, targets."""

import numpy as np
import pytest
import tensorflow as tf

from affect_tf.core.labels import AUS, EXPRESSIONS
from affect_tf.data import examples as ex
from affect_tf.gan.conditions import (
    AU_SLICE,
    CONDITION_DIM,
    VA_SLICE,
    ConditionPriors,
    check_va,
    condition_targets,
    expression_index,
    parse_au_assignments,
)


def test_layout_is_the_label_space():
    assert CONDITION_DIM == len(EXPRESSIONS) + len(AUS) + 2 == 22
    assert (AU_SLICE.start, AU_SLICE.stop, VA_SLICE.start, VA_SLICE.stop) == (8, 20, 20, 22)


def test_expression_index_any_case_and_errors():
    assert expression_index("happiness") == EXPRESSIONS.index("Happiness")
    assert expression_index(" FEAR ") == 3
    assert expression_index(7) == 7
    with pytest.raises(ValueError, match=r"Expected an expression in .*Received: expression='joy'"):
        expression_index("joy")
    with pytest.raises(ValueError, match="Received: expression=8"):
        expression_index(8)


def test_parse_au_assignments():
    assert parse_au_assignments(["AU12=1", "au4=0.5"]) == {"AU12": 1.0, "AU4": 0.5}
    with pytest.raises(ValueError, match=r"Expected an AU in .*Received: au='AU9'"):
        parse_au_assignments(["AU9=1"])
    with pytest.raises(ValueError, match=r"Expected AU=VALUE"):
        parse_au_assignments(["AU12"])
    with pytest.raises(ValueError, match=r"in \[0, 1\]. Received: AU12=1.5"):
        parse_au_assignments(["AU12=1.5"])
    with pytest.raises(ValueError, match="Expected a number"):
        parse_au_assignments(["AU12=high"])


def test_check_va():
    assert check_va("valence", -1.0) == -1.0 and check_va("arousal", None) is None
    with pytest.raises(ValueError, match=r"Expected valence in \[-1, 1\]. Received: valence=1.2"):
        check_va("valence", 1.2)
    with pytest.raises(ValueError, match="arousal"):
        check_va("arousal", float("nan"))


def _labels():
    # Four faces: two Happiness (one with AUs, one without), one Fear, one unlabelled.
    au = np.zeros((4, 12), np.int64)
    au[0, AUS.index("AU12")] = 1
    au_mask = np.zeros((4, 12), np.int64)
    au_mask[[0, 2]] = 1
    au[2, AUS.index("AU1")] = 1
    return {
        ex.EXPRESSION: np.array([4, 4, 3, 0]),
        ex.EXPR_MASK: np.array([1, 1, 1, 0]),
        ex.AU: au,
        ex.AU_MASK: au_mask,
        ex.VALENCE: np.array([0.8, 0.6, -0.5, 0.0], np.float32),
        ex.AROUSAL: np.array([0.4, 0.2, 0.7, 0.0], np.float32),
        ex.VA_MASK: np.array([1, 1, 0, 0]),
    }


def test_priors_from_labels_hand_checked():
    p = ConditionPriors.from_labels(_labels())
    assert p.counts.tolist() == [0, 0, 0, 1, 2, 0, 0, 0]
    assert list(p.present) == [3, 4]
    happy = EXPRESSIONS.index("Happiness")
    # Happiness: one AU-labelled face with AU12 -> rate 1 for AU12, 0 elsewhere.
    assert p.au_mean[happy, AUS.index("AU12")] == 1.0 and p.au_mean[happy].sum() == 1.0
    np.testing.assert_allclose(p.va_mean[happy], [0.7, 0.3], atol=1e-6)
    np.testing.assert_allclose(p.va_std[happy], [0.1, 0.1], atol=1e-6)
    # Fear has no VA label -> its mean VA is 0; its AU1 was labelled.
    np.testing.assert_allclose(p.va_mean[3], [0.0, 0.0])
    assert p.au_mean[3, AUS.index("AU1")] == 1.0
    # Rows: the 3 expression-labelled faces; the unlabelled AU row filled from its class rate.
    assert p.rows.shape == (3, CONDITION_DIM)
    np.testing.assert_allclose(p.rows[1, AU_SLICE], p.au_mean[happy])
    np.testing.assert_allclose(p.rows[2, VA_SLICE], [0.0, 0.0])


def test_priors_need_an_expression_label():
    labels = _labels()
    labels[ex.EXPR_MASK] = np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="none with an expression label"):
        ConditionPriors.from_labels(labels)


def test_condition_defaults_and_overrides():
    p = ConditionPriors.from_labels(_labels())
    c = p.condition("happiness", {"AU6": 0.75}, valence=-0.2)
    assert c.shape == (CONDITION_DIM,) and c[4] == 1.0 and c[:8].sum() == 1.0
    assert c[8 + AUS.index("AU6")] == 0.75 and c[8 + AUS.index("AU12")] == 1.0
    np.testing.assert_allclose(c[VA_SLICE], [-0.2, 0.3], atol=1e-6)
    with pytest.raises(ValueError, match="arousal"):
        p.condition("Fear", arousal=-3)
    restored = ConditionPriors.from_dict(p.to_dict())
    np.testing.assert_allclose(restored.condition("Fear"), p.condition("Fear"))


def test_sampling_is_balanced_and_seeded():
    p = ConditionPriors.from_labels(_labels())
    a = p.sample(400, np.random.default_rng(0))
    b = p.sample(400, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    classes = np.argmax(a[:, :8], axis=-1)
    # Balanced over the two present classes although Happiness has twice the faces.
    assert set(classes) == {3, 4} and abs((classes == 3).mean() - 0.5) < 0.1
    batch = next(iter(p.dataset(16, seed=0)))
    assert batch.shape == (16, CONDITION_DIM)


def test_condition_targets_eager_and_in_graph():
    p = ConditionPriors.from_labels(_labels())
    c = np.stack([p.condition("Fear"), p.condition("Happiness", valence=0.5)])
    t = {k: np.asarray(v) for k, v in condition_targets(c).items()}
    np.testing.assert_allclose(t["expression"], [[3, 1], [4, 1]])
    np.testing.assert_allclose(t["va"][1], [0.5, 0.3, 1.0], atol=1e-6)
    assert t["au"].shape == (2, 24) and (t["au"][:, 12:] == 1).all()
    graph = tf.function(condition_targets)(tf.constant(c))
    np.testing.assert_allclose(np.asarray(graph["au"]), t["au"])
