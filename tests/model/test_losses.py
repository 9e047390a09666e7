import keras
import numpy as np
import pytest
import tensorflow as tf

from affect_tf.core.labels import NUM_AUS
from affect_tf.model import losses as L


def va_target(values, mask):
    return np.concatenate(
        [np.asarray(values, float), np.asarray(mask, float)[:, None]], axis=1
    ).astype("float32")


def test_ccc_loss_hand_checked():
    v = np.array([[1.0, -1.0], [2.0, 0.0], [3.0, 1.0]], np.float32)
    assert float(L.ccc_loss(va_target(v, [1, 1, 1]), v)) == pytest.approx(0.0, abs=1e-5)
    # Valence [1, 2, 3] vs its negation: CCC -1/13; arousal [-1, 0, 1] vs its negation: CCC -1.
    assert float(L.ccc_loss(va_target(v, [1, 1, 1]), -v)) == pytest.approx(
        ((1 + 1 / 13) + 2) / 2, abs=1e-5
    )
    # Masked rows are ignored even when they hold garbage.
    garbage = np.vstack([v, [[np.nan, 99.0]]]).astype(np.float32)
    pred = np.vstack([v, [[5.0, 5.0]]]).astype(np.float32)
    assert float(L.ccc_loss(va_target(garbage, [1, 1, 1, 0]), pred)) == pytest.approx(0.0, abs=1e-5)


def test_fully_masked_batch_gives_zero_loss_and_finite_gradients():
    pred = tf.Variable(np.random.default_rng(0).normal(size=(4, 2)).astype("float32"))
    expr_logits = tf.Variable(np.zeros((4, 8), "float32"))
    au_logits = tf.Variable(np.zeros((4, NUM_AUS), "float32"))
    with tf.GradientTape() as tape:
        a = L.ccc_loss(va_target(np.full((4, 2), np.nan), np.zeros(4)), pred)
        b = L.masked_cross_entropy(np.zeros((4, 2), "float32"), expr_logits)
        c = L.masked_binary_cross_entropy(np.zeros((4, 2 * NUM_AUS), "float32"), au_logits)
        total = a + b + c
    assert float(a) == 0.0 and float(b) == 0.0 and float(c) == 0.0
    for g in tape.gradient(total, [pred, expr_logits, au_logits]):
        assert g is None or np.all(np.isfinite(g.numpy()))


def test_masked_cross_entropy_against_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 8)).astype("float32")
    labels = np.array([0, 3, 3, 7, 1, 2])
    mask = np.array([1, 1, 0, 1, 1, 0])
    weights = np.arange(1, 9, dtype=float)
    y = np.stack([labels, mask], axis=1).astype("float32")
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    smooth = 0.1
    target = np.eye(8)[labels] * (1 - smooth) + smooth / 8
    per = -(target * log_p).sum(axis=1)
    w = mask * weights[labels]
    expected = (per * w).sum() / w.sum()
    got = L.masked_cross_entropy(y, logits, class_weights=weights, label_smoothing=smooth)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # Without weights and smoothing it is the plain mean cross-entropy of the valid rows.
    keep = mask > 0
    plain = keras.losses.sparse_categorical_crossentropy(
        labels[keep], logits[keep], from_logits=True
    )
    assert float(L.masked_cross_entropy(y, logits)) == pytest.approx(
        float(np.mean(plain)), rel=1e-5
    )


def test_masked_bce_against_numpy_with_pos_weights():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, NUM_AUS)).astype("float32")
    labels = (rng.random((5, NUM_AUS)) < 0.4).astype("float32")
    mask = (rng.random((5, NUM_AUS)) < 0.7).astype("float32")
    pw = np.linspace(1, 4, NUM_AUS)
    p = 1 / (1 + np.exp(-logits.astype(float)))
    per = -(pw * labels * np.log(p) + (1 - labels) * np.log(1 - p))
    expected = (per * mask).sum() / mask.sum()
    y = np.concatenate([labels, mask], axis=1)
    assert float(L.masked_binary_cross_entropy(y, logits, pos_weights=pw)) == pytest.approx(
        expected, rel=1e-5
    )
    # Extreme logits stay finite (stable log-sigmoid).
    assert np.isfinite(float(L.masked_binary_cross_entropy(y, logits * 1e4)))


def test_affect_loss_weights_and_uncertainty():
    rng = np.random.default_rng(3)
    y_true = {
        "va": va_target(rng.uniform(-1, 1, (8, 2)), np.ones(8)),
        "expression": np.stack([rng.integers(0, 8, 8), np.ones(8)], 1).astype("float32"),
        "au": np.concatenate([rng.integers(0, 2, (8, NUM_AUS)), np.ones((8, NUM_AUS))], 1).astype(
            "float32"
        ),
    }
    y_pred = {
        "va": rng.uniform(-1, 1, (8, 2)).astype("float32"),
        "expression": rng.normal(size=(8, 8)).astype("float32"),
        "au": rng.normal(size=(8, NUM_AUS)).astype("float32"),
    }
    total, terms = L.affect_loss(y_true, y_pred, weights={"va": 2.0, "expression": 0.5, "au": 0.0})
    assert float(total) == pytest.approx(
        2 * float(terms["va"]) + 0.5 * float(terms["expression"]), rel=1e-6
    )
    s = np.array([0.5, -0.2, 0.1], "float32")
    total_u, terms_u = L.affect_loss(y_true, y_pred, log_vars=s)
    expected = sum(
        np.exp(-s[i]) * float(terms_u[t]) + s[i] for i, t in enumerate(("va", "expression", "au"))
    )
    assert float(total_u) == pytest.approx(expected, rel=1e-5)
    # A single task: the others are simply absent.
    only_va, terms_va = L.affect_loss({"va": y_true["va"]}, y_pred)
    assert set(terms_va) == {"va"} and float(only_va) == pytest.approx(float(terms["va"]))


def test_loss_argument_checks():
    y_expr = np.array([[1.0, 1.0]], "float32")
    y_au = np.ones((1, 24), "float32")
    with pytest.raises(ValueError, match="8 class weights"):
        L.masked_cross_entropy(y_expr, np.zeros((1, 8), "float32"), class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="12 positive weights"):
        L.masked_binary_cross_entropy(y_au, np.zeros((1, 12), "float32"), pos_weights=[1.0])


def test_losses_are_not_keras_loss_classes():
    """Batch statistics cannot honour ``keras.losses.Loss`` (per-example values): the module
    offers functions only, and nothing registers a Loss under affect_tf."""
    assert not [
        v for v in vars(L).values() if isinstance(v, type) and issubclass(v, keras.losses.Loss)
    ]
    registered = keras.saving.get_custom_objects()
    assert not [k for k in registered if k.startswith("affect_tf>") and "Loss" in k]


def test_logit_adjustment_by_hand():
    from affect_tf.model.losses import masked_cross_entropy

    # Logits 0 everywhere, offsets log(priors): the loss is -log softmax(offsets)[label].
    priors = np.array([0.5, 0.3, 0.1, 0.05, 0.02, 0.01, 0.01, 0.01])
    offsets = np.log(priors)
    y_true = np.array([[0, 1], [2, 1], [5, 0]], np.float32)
    loss = float(masked_cross_entropy(y_true, np.zeros((3, 8), np.float32), logit_offsets=offsets))
    expected = -(np.log(priors[0] / priors.sum()) + np.log(priors[2] / priors.sum())) / 2
    assert loss == pytest.approx(expected, rel=1e-5)
    # No offsets: uniform logits give log 8 for every valid example.
    assert float(masked_cross_entropy(y_true, np.zeros((3, 8), np.float32))) == pytest.approx(
        np.log(8), rel=1e-5
    )


def test_soft_labels_by_hand():
    """A row with a distribution trains on it; a row without one on its class; the mask still
    rules; ``soft_labels=False`` ignores the distributions."""
    from affect_tf.model.losses import masked_cross_entropy

    logits = np.array([[2.0, 0, 0, 0, 1.0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 3.0]] * 2, np.float32)
    dist = [0.6, 0, 0, 0, 0.4, 0, 0, 0]
    y_true = np.array(
        [
            [0, 1, *dist],  # soft: 0.6 Neutral + 0.4 Happiness
            [7, 1, *[0] * 8],  # hard: Other
            [4, 0, *dist],  # masked out
            [7, 0, *[0] * 8],  # masked out
        ],
        np.float32,
    )
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    soft = -(0.6 * log_p[0, 0] + 0.4 * log_p[0, 4])
    hard = -log_p[1, 7]
    assert float(masked_cross_entropy(y_true, logits)) == pytest.approx((soft + hard) / 2, 1e-5)
    only_classes = (-log_p[0, 0] + hard) / 2
    assert float(masked_cross_entropy(y_true, logits, soft_labels=False)) == pytest.approx(
        only_classes, 1e-5
    )
    # The two-column layout (no distributions) still works.
    assert float(masked_cross_entropy(y_true[:, :2], logits)) == pytest.approx(only_classes, 1e-5)


def test_logit_adjustment_clips_rare_priors():
    """At the held-out corpus's skew (a class at 0.07 %), the offsets span at most
    log(0.49 / floor), not 6.5 nats; floor 0 keeps the old, unclipped offsets."""
    from affect_tf.model import AffectModel, get_preset

    priors = np.array([0.49, 0.019, 0.0015, 0.016, 0.40, 0.020, 0.028, 0.0007])
    priors = priors / priors.sum()
    model = AffectModel(get_preset("tiny", imbalance="logit_adjustment"), class_priors=priors)
    offsets = np.array(model.logit_offsets())
    assert offsets.max() - offsets.min() == pytest.approx(np.log(priors[0] / 0.05), rel=1e-6)
    unclipped = np.array(model.logit_offsets(floor=0.0))
    assert unclipped.max() - unclipped.min() == pytest.approx(np.log(0.49 / 0.0007), rel=1e-6)


def test_masked_mse_hand_checked():
    """(valence, arousal) errors (1, 3) and (0, 2) on the two valid rows: squared means 5 and
    2, averaged 3.5; the masked row's garbage is ignored."""
    truth = va_target([[0.5, -0.5], [0.0, 0.0], [np.nan, 9.0]], [1, 1, 0])
    pred = np.array([[-0.5, -3.5], [0.0, 2.0], [1.0, 1.0]], np.float32)
    assert float(L.masked_mse(truth, pred)) == pytest.approx(3.5, rel=1e-6)
    assert float(L.masked_mse(va_target(np.zeros((2, 2)), [0, 0]), pred[:2])) == 0.0
    # affect_loss picks it by name; an unknown name is an error naming the choices.
    total, terms = L.affect_loss({"va": truth}, {"va": pred}, va_loss="mse")
    assert float(terms["va"]) == pytest.approx(3.5, rel=1e-6) and float(total) == float(terms["va"])
    with pytest.raises(ValueError, match=r"va_loss in \['ccc', 'mse'\]"):
        L.affect_loss({"va": truth}, {"va": pred}, va_loss="mae")


def test_focal_loss_against_numpy():
    """gamma 0 is the cross-entropy; gamma 2 scales each term by (1 - p)^2 (Lin et al.)."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 8)).astype("float32")
    labels = np.array([1, 4, 4, 0, 7])
    mask = np.array([1, 1, 1, 0, 1])
    y = np.stack([labels, mask], axis=1).astype("float32")
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p_true = p[np.arange(5), labels]
    focal = -((1 - p_true) ** 2) * np.log(p_true)
    expected = focal[mask > 0].mean()
    got = L.masked_cross_entropy(y, logits, focal_gamma=2.0)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(L.masked_cross_entropy(y, logits, focal_gamma=0.0)) == pytest.approx(
        float(L.masked_cross_entropy(y, logits)), rel=1e-7
    )
    # A confident right answer (p = e^6 / (e^6 + 7) = 0.983) costs (1 - p)^2 = 3e-4 of its
    # cross-entropy.
    sure = np.zeros((1, 8), np.float32)
    sure[0, 2] = 6.0
    one = np.array([[2, 1]], np.float32)
    ratio = float(L.masked_cross_entropy(one, sure, focal_gamma=2.0)) / float(
        L.masked_cross_entropy(one, sure)
    )
    p_sure = np.exp(6.0) / (np.exp(6.0) + 7)
    assert ratio == pytest.approx((1 - p_sure) ** 2, rel=1e-4) and ratio < 1e-3
