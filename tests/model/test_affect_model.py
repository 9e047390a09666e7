import keras
import numpy as np
import pytest

from affect_tf.core.labels import NUM_AUS
from affect_tf.data import label_graph as H
from affect_tf.model import AffectModel, GCNHeads, build_backbone, get_preset
from affect_tf.model.config import AffectConfig


def batch(n=8, size=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    y = {
        "va": np.concatenate([rng.uniform(-1, 1, (n, 2)), (rng.random((n, 1)) > 0.3)], 1).astype(
            "float32"
        ),
        "expression": np.stack([rng.integers(0, 8, n), rng.random(n) > 0.2], 1).astype("float32"),
        "au": np.concatenate(
            [rng.integers(0, 2, (n, NUM_AUS)), rng.random((n, NUM_AUS)) > 0.3], 1
        ).astype("float32"),
    }
    return x, y


@pytest.fixture(scope="module")
def adjacency():
    rng = np.random.default_rng(0)
    corr = np.corrcoef(rng.normal(size=(50, H.NUM_NODES)), rowvar=False)
    return H.label_adjacency(corr, tau=0.15)


@pytest.mark.parametrize("heads", ["mlp", "gcn"])
def test_predict_save_load_round_trip(tmp_path, heads, adjacency):
    config = get_preset("tiny", heads=heads)
    model = AffectModel(
        config,
        adjacency=adjacency if heads == "gcn" else None,
        class_weights=np.ones(8),
        pos_weights=np.full(12, 2.0),
    )
    x, _ = batch()
    out = model.predict(x, verbose=0)
    assert (
        out["expression"].shape == (8, 8)
        and out["au"].shape == (8, 12)
        and out["va"].shape == (8, 2)
    )
    # VA is the tanh of its head: atanh recovers finite pre-activations, not saturated ones.
    assert np.isfinite(np.arctanh(out["va"])).all() and out["va"].std() > 0
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, AffectModel) and loaded.affect_config == config
    again = loaded.predict(x, verbose=0)
    for key in out:
        np.testing.assert_allclose(again[key], out[key], atol=1e-5)
    assert loaded.pos_weights == [2.0] * 12
    if heads == "gcn":
        np.testing.assert_allclose(loaded.get_layer("gcn_heads").adjacency, adjacency)
    import affect_tf

    np.testing.assert_allclose(
        affect_tf.load_model(path).predict(x, verbose=0)["va"], out["va"], atol=1e-5
    )
    emb = loaded.embedding_model().predict(x, verbose=0)
    assert emb.shape == (8, config.embedding_dim)


@pytest.mark.parametrize("heads", ["mlp", "gcn"])
def test_a_few_training_steps_decrease_the_loss(heads):
    keras.utils.set_random_seed(0)
    config = get_preset("tiny", heads=heads, augment=False, dropout=0.0, label_smoothing=0.0)
    model = AffectModel(config)
    x, y = batch(16)
    model.compile_for_training(steps_per_epoch=1, epochs=25)
    history = model.fit(x, y, epochs=25, batch_size=16, verbose=0).history
    # Training-mode losses: BatchNorm's moving averages lag far behind after 25 steps.
    assert history["loss"][-1] < history["loss"][0] * 0.7
    for task in ("va", "expression", "au"):
        assert history[f"{task}_loss"][-1] < history[f"{task}_loss"][0]


def test_uncertainty_weights_train_and_survive_save(tmp_path):
    config = get_preset("tiny", uncertainty=True)
    model = AffectModel(config)
    x, y = batch(16)
    model.compile_for_training(steps_per_epoch=1, epochs=3)
    model.fit(x, y, epochs=3, verbose=0)
    log_vars = model.task_log_vars.numpy()
    assert np.any(log_vars != 0)
    model.save(tmp_path / "u.keras")
    np.testing.assert_allclose(
        keras.models.load_model(tmp_path / "u.keras").task_log_vars.numpy(), log_vars
    )


def test_mse_and_focal_losses_train_and_survive_save(tmp_path):
    """The loss pairs of Kollias et al. are config choices: the logged task losses are the
    chosen ones (the VA loss equals ``masked_mse`` of the model's own outputs) and the choice
    round-trips through a saved model."""
    from affect_tf.model import losses as L

    config = get_preset("tiny", va_loss="mse", focal_gamma=2.0, augment=False)
    model = AffectModel(config)
    model.compile(optimizer="adam")
    x, y = batch()
    model.fit(x, y, epochs=1, verbose=0, batch_size=8)
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    va = L.masked_mse(y["va"], model.predict(x, verbose=0)["va"])
    assert logs["va_loss"] == pytest.approx(float(va), rel=1e-4)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert (loaded.affect_config.va_loss, loaded.affect_config.focal_gamma) == ("mse", 2.0)
    with pytest.raises(ValueError, match="va_loss 'ccc' or 'mse'. Received: va_loss='mae'"):
        get_preset("tiny", va_loss="mae")
    with pytest.raises(ValueError, match="focal_gamma in"):
        get_preset("tiny", focal_gamma=-1.0)


def test_single_task_model_trains_only_its_task():
    config = get_preset("tiny", tasks=("va",))
    model = AffectModel(config)
    x, y = batch(8)
    model.compile_for_training(steps_per_epoch=1, epochs=1)
    logs = model.fit(x, y, epochs=1, verbose=0).history
    assert "va_ccc_valence" in logs and "expression_f1" not in logs


def test_predict_of_one_batch_equals_keras_own_predict():
    """The one-batch shortcut (no tf.data set-up per call) answers as Keras' path does, for
    float and uint8 arrays and tensors; more than a batch still goes through Keras."""
    import tensorflow as tf

    model = AffectModel(get_preset("tiny"))
    x, _ = batch(n=40)
    for inputs in (x[:1], x[:32], x[:5].astype("uint8"), tf.constant(x[:3])):
        want = keras.Model.predict(model, inputs, verbose=0)
        got = model.predict(inputs, verbose=0)
        assert set(got) == set(want)
        for key in want:
            assert isinstance(got[key], np.ndarray)
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5)
    full = model.predict(x, verbose=0)  # 40 > 32: Keras' batched path
    assert full["au"].shape == (40, 12)
    np.testing.assert_allclose(full["va"][:1], model.predict(x[:1])["va"], atol=1e-5)
    np.testing.assert_allclose(model.predict(x, batch_size=64)["va"], full["va"], atol=1e-5)


def test_wrong_input_is_a_clear_error():
    model = AffectModel(get_preset("tiny"))
    with pytest.raises(ValueError, match=r"\(None, 48, 48, 3\).*\(2, 32, 32, 3\)"):
        model.predict(np.zeros((2, 32, 32, 3)), verbose=0)
    with pytest.raises(
        ValueError, match=r"Expected aligned RGB face crops of shape \(N, 48, 48, 3\)"
    ):
        model.predict(np.zeros((2, 48, 48, 1)), verbose=0)


def test_wrong_targets_are_a_clear_error():
    model = AffectModel(get_preset("tiny"))
    model.compile_for_training(steps_per_epoch=1, epochs=1)
    x, y = batch(4)
    bad = {**y, "au": y["au"][:, :12]}  # labels without their masks
    with pytest.raises(
        ValueError, match=r"targets\['au'\] of shape \(B, 24\).*Received: shape=\((None|4), 12\)"
    ):
        model.fit(x, bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="trained task 'va'"):
        model.fit(x, {k: v for k, v in y.items() if k != "va"}, epochs=1, verbose=0)


def test_bad_names_and_weights(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        get_preset("huge")
    with pytest.raises(ValueError, match="backbone"):
        AffectConfig(backbone="resnet50")
    with pytest.raises(ValueError, match="tasks"):
        get_preset("tiny", tasks=("pose",))
    other = build_backbone("small_cnn", 64)
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(ValueError, match="Expected weights of backbone 'mobilenet_v3_small'"):
        build_backbone("mobilenet_v3_small", 64, weights=path)
    with pytest.raises(ValueError, match="not found"):
        build_backbone("small_cnn", 64, weights=tmp_path / "missing.weights.h5")
    # The right file loads.
    same = build_backbone("small_cnn", 64, weights=path)
    np.testing.assert_allclose(same.get_weights()[0], other.get_weights()[0])


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_small"])
def test_real_backbones_build_without_downloads(name):
    model = build_backbone(name, 64)
    # The pooled feature width of each architecture (Keras applications, include_top=False).
    assert model.output_shape == (None, {"efficientnet_b0": 1280, "mobilenet_v3_small": 576}[name])
    assert model.predict(np.zeros((1, 64, 64, 3)), verbose=0).shape[0] == 1


def test_label_graph():
    rng = np.random.default_rng(0)
    n = 400
    values = rng.normal(size=(n, H.NUM_NODES))
    values[:, 1] = values[:, 0] * 0.9 + rng.normal(0, 0.3, n)  # two correlated labels
    valid = np.ones_like(values)
    corr = H.label_correlation(H.pair_stats(values, valid))
    np.testing.assert_allclose(corr, np.corrcoef(values, rowvar=False), atol=1e-8)
    # Stats of two halves add up to the whole.
    halves = H.pair_stats(values[:150], valid[:150]) + H.pair_stats(values[150:], valid[150:])
    np.testing.assert_allclose(halves, H.pair_stats(values, valid))
    adj = H.label_adjacency(corr, tau=0.5, p=0.25)
    assert adj[0, 1] == pytest.approx(0.25) and adj[0, 0] == pytest.approx(0.75)
    assert adj[2, 2] == 1.0 and adj[2].sum() == 1.0  # a node without neighbours keeps itself


def test_label_correlation_respects_masks():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(300, H.NUM_NODES))
    valid = (rng.random((300, H.NUM_NODES)) > 0.4).astype(float)
    corr = H.label_correlation(H.pair_stats(values, valid))
    both = (valid[:, 3] > 0) & (valid[:, 5] > 0)
    assert corr[3, 5] == pytest.approx(
        np.corrcoef(values[both, 3], values[both, 5])[0, 1], abs=1e-8
    )


def test_gcn_heads_layer_config():
    layer = GCNHeads(np.eye(H.NUM_NODES), node_dim=8, hidden_dim=16)
    clone = GCNHeads.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="22, 22"):
        GCNHeads(np.eye(5))


def test_an_augmenting_model_exports_and_serves_its_own_function(tmp_path):
    """Keras' random layers draw from a seed generator even at inference, which a SavedModel
    cannot save: every augmenting preset (mobile, full) failed to export. The export traces a
    copy without the augmentation block, with the same weights and outputs."""
    import dataclasses

    import tensorflow as tf

    from affect_tf.export.saved_model import export_saved_model
    from affect_tf.model.config import PRESETS

    model = AffectModel(
        dataclasses.replace(PRESETS["tiny"], augment=True), au_thresholds=[0.3] * 12
    )
    faces = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    expected = model.predict(faces, verbose=0)
    version = export_saved_model(model, export_dir=tmp_path / "1")
    served = tf.saved_model.load(str(version)).signatures["serving_aligned"](
        image=tf.constant(faces)
    )
    np.testing.assert_allclose(served["valence"].numpy(), expected["va"][:, 0], atol=1e-5)
    np.testing.assert_allclose(served["arousal"].numpy(), expected["va"][:, 1], atol=1e-5)


@pytest.mark.parametrize("features", ["scores", "both"])
def test_head_features_read_the_expression_scores_and_round_trip(tmp_path, features):
    """Savchenko's features: the AU/VA heads read the expression head's softmax (gradients
    stopped) or it beside the embedding; the model saves and loads with the same outputs."""
    import dataclasses

    import keras
    import tensorflow as tf

    from affect_tf.model.config import PRESETS

    config = dataclasses.replace(PRESETS["tiny"], head_features=features)
    model = AffectModel(config)
    width = {"scores": 8, "both": config.embedding_dim + 8}[features]
    assert model.get_layer("au_hidden").input.shape[-1] == width
    faces = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    out = model.predict(faces, verbose=0)
    scores = model.get_layer("expression_scores")
    probs = keras.Model(model.input, scores.output).predict(faces, verbose=0)
    np.testing.assert_allclose(probs, tf.nn.softmax(out["expression"]).numpy(), atol=1e-5)
    # The VA loss reaches the expression head only through the embedding, never the scores.
    with tf.GradientTape() as tape:
        va = model(faces, training=False)["va"]
    grads = tape.gradient(va, model.get_layer("expression").trainable_variables)
    assert all(g is None or not np.any(g.numpy()) for g in grads)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.affect_config.head_features == features
    np.testing.assert_allclose(loaded.predict(faces, verbose=0)["va"], out["va"], atol=1e-6)


def test_head_features_and_adjacency_are_checked():
    from affect_tf.model.config import PRESETS

    with pytest.raises(ValueError, match="head_features"):
        PRESETS["tiny"].replace(head_features="logits")
    with pytest.raises(ValueError, match="heads='mlp' with head_features"):
        PRESETS["tiny"].replace(heads="gcn", head_features="both")
    with pytest.raises(ValueError, match="gcn_adjacency"):
        PRESETS["tiny"].replace(gcn_adjacency="random")


def test_learned_adjacency_starts_near_no_edges_trains_and_round_trips(tmp_path):
    """``gcn_adjacency='learned'``: the graph is I + softplus(W) normalised, W symmetric,
    starting at -4 (off-diagonal softplus(-4) = 0.01815); the edge weights get gradients; the
    layer's config round-trips and a saved model predicts the same."""
    import keras
    import tensorflow as tf

    layer = GCNHeads(np.eye(H.NUM_NODES), node_dim=8, hidden_dim=16, learn_adjacency=True)
    layer.build((None, 16))
    a = layer.normalised_adjacency().numpy()
    off = np.log1p(np.exp(-4.0))
    degree = 1 + off * H.NUM_NODES  # the diagonal 1 + softplus(-4), the 21 others softplus(-4)
    assert a[0, 0] == pytest.approx((1 + off) / degree, rel=1e-5)
    assert a[0, 1] == pytest.approx(off / degree, rel=1e-5)
    np.testing.assert_allclose(a, a.T, atol=1e-7)
    with tf.GradientTape() as tape:
        expression, _, _ = layer(tf.ones((2, 16)))
        loss = tf.reduce_sum(expression)
    assert np.any(tape.gradient(loss, layer.edge_logits).numpy())
    assert GCNHeads.from_config(layer.get_config()).learn_adjacency
    model = AffectModel(get_preset("tiny", heads="gcn", gcn_adjacency="learned"))
    faces = np.random.default_rng(1).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    model.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(
        loaded.predict(faces, verbose=0)["expression"],
        model.predict(faces, verbose=0)["expression"],
        atol=1e-5,
    )
