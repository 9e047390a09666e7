"""Pretrained backbones, schedules, the backbone learning-rate scale and augmentation inside
the model: offline, with weights files the tests make themselves."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from affect_tf.model import AffectModel, get_preset
from affect_tf.model.augment import build_augmenter
from affect_tf.model.optim import BackboneScaledAdamW
from affect_tf.model.pretrained import PretrainedWeightsError, load_backbone_weights
from tests.model.test_affect_model import batch


def _backbone_weights(model):
    return [w.copy() for w in model.get_layer("backbone").get_weights()]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 'pretrained' model (a few steps on random faces) saved as .keras and .weights.h5."""
    keras.utils.set_random_seed(1)
    model = AffectModel(get_preset("tiny"))
    x, y = batch(16)
    model.compile_for_training(1, 3)
    model.fit(x, y, epochs=3, verbose=0)
    folder = tmp_path_factory.mktemp("pretrained")
    model.save(folder / "source.keras")
    model.get_layer("backbone").save_weights(folder / "backbone.weights.h5")
    return model, folder


@pytest.mark.parametrize("kind", ["keras", "weights.h5"])
def test_backbone_from_a_file_is_used(source, kind):
    model, folder = source
    path = folder / ("source.keras" if kind == "keras" else "backbone.weights.h5")
    keras.utils.set_random_seed(2)
    target = AffectModel(get_preset("tiny", weights=str(path), schedule="finetune"))
    x, _ = batch(4)
    random_out = target.embedding_model().predict(x, verbose=0)
    load_backbone_weights(target, str(path))
    assert _same(_backbone_weights(target), _backbone_weights(model))
    # Used: the backbone's features equal the source's and differ from the random init's.
    src_features = model.get_layer("backbone").predict(x, verbose=0)
    np.testing.assert_allclose(
        target.get_layer("backbone").predict(x, verbose=0), src_features, rtol=1e-5, atol=1e-5
    )
    assert not np.allclose(target.embedding_model().predict(x, verbose=0), random_out)


def test_weights_that_do_not_fit_are_clear_errors(source, tmp_path):
    model, folder = source
    other = AffectModel(get_preset("tiny", backbone="mobilenet_v3_small", image_size=64))
    with pytest.raises(PretrainedWeightsError, match=r"'mobilenet_v3_small'.*'small_cnn' at 48"):
        load_backbone_weights(other, str(folder / "source.keras"))
    with pytest.raises(PretrainedWeightsError, match="backbone 'mobilenet_v3_small' at 64x64"):
        load_backbone_weights(other, str(folder / "backbone.weights.h5"))
    with pytest.raises(PretrainedWeightsError, match="no such file"):
        load_backbone_weights(other, str(tmp_path / "missing.keras"))
    # A convolutional backbone transfers across input sizes (same weight shapes).
    larger = AffectModel(get_preset("tiny", image_size=64))
    load_backbone_weights(larger, str(folder / "source.keras"))
    assert _same(_backbone_weights(larger), _backbone_weights(model))
    with pytest.raises(ValueError, match="ImageNet weights"):
        get_preset("tiny", weights="imagenet")
    with pytest.raises(ValueError, match="schedule"):
        get_preset("tiny", schedule="gradual")
    with pytest.raises(ValueError, match="pretrained weights for schedule='frozen'"):
        get_preset("tiny", schedule="frozen")


def test_imagenet_offline_names_the_local_file_alternative(monkeypatch, tmp_path):
    from keras.src.applications import mobilenet_v3

    def offline(*args, **kwargs):  # what Keras' get_file raises without a network
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(mobilenet_v3.file_utils, "get_file", offline)
    model = AffectModel(get_preset("mobile", image_size=64))  # building downloads nothing
    with pytest.raises(PretrainedWeightsError) as error:
        load_backbone_weights(model, "imagenet")
    message = str(error.value)
    assert "URL fetch failure" in message and ".weights.h5" in message
    assert str(tmp_path / "models") in message and "--weights" in message


def test_frozen_backbone_does_not_change_while_heads_train(source):
    _, folder = source
    config = get_preset("tiny", weights=str(folder / "source.keras"), schedule="frozen")
    model = AffectModel(config)
    load_backbone_weights(model, config.weights)
    before, heads_before = _backbone_weights(model), model.get_layer("va").get_weights()
    model.compile_for_training(1, 2)
    x, y = batch(16)
    model.fit(x, y, epochs=2, verbose=0)
    assert _same(_backbone_weights(model), before)  # BatchNorm statistics included
    assert not _same(model.get_layer("va").get_weights(), heads_before)


def test_backbone_learning_rate_scale():
    keras.utils.set_random_seed(3)
    model = AffectModel(get_preset("tiny"))
    x, y = batch(16)
    model.compile_for_training(1, 1, backbone_lr_scale=0.0)
    assert isinstance(model.optimizer, BackboneScaledAdamW)
    kernel = model.get_layer("backbone").get_layer("conv0").kernel
    before, head = kernel.numpy().copy(), model.get_layer("va").kernel.numpy().copy()
    model.fit(x, y, epochs=1, verbose=0)
    # Scale 0: no gradient step on the backbone, only AdamW's decoupled decay (w -= w·wd·lr).
    np.testing.assert_allclose(kernel.numpy(), before, rtol=1e-6, atol=0)
    assert not np.array_equal(model.get_layer("va").kernel.numpy(), head)
    config = model.optimizer.get_config()
    clone = BackboneScaledAdamW.from_config(config)
    assert clone.backbone_lr_scale == 0.0 and clone.scaled_paths == config["scaled_paths"]
    assert "conv0/kernel" in clone.scaled_paths and "va/kernel" not in clone.scaled_paths


def test_augmentation_only_in_training_and_in_tf_data():
    keras.utils.set_random_seed(4)
    model = AffectModel(get_preset("tiny", augment=True))
    x, _ = batch(4)
    first, again = model(x, training=False), model(x, training=False)
    np.testing.assert_array_equal(first["va"], again["va"])
    augmenter = build_augmenter(seed=5)
    np.testing.assert_array_equal(augmenter(x, training=False), x)
    jittered = augmenter(x, training=True).numpy()
    assert jittered.shape == x.shape and not np.allclose(jittered, x)
    assert jittered.min() >= 0 and jittered.max() <= 255
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2).map(lambda b: augmenter(b, training=True))
    assert [tuple(b.shape) for b in ds] == [(2, 48, 48, 3)] * 2


def test_new_fields_round_trip_through_save(tmp_path):
    config = get_preset("tiny", augment=True, imbalance="logit_adjustment")
    priors = np.array([0.5, 0.1, 0.05, 0.05, 0.2, 0.05, 0.05, 0.0])
    model = AffectModel(config, class_priors=priors, au_thresholds=np.full(12, 0.3))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.affect_config == config
    assert loaded.au_thresholds == [0.3] * 12
    np.testing.assert_allclose(loaded.class_priors, priors)
    offsets = np.array(loaded.logit_offsets())
    # log prior; the unseen class gets the smallest prior seen, not log 0.
    np.testing.assert_allclose(offsets[:7], np.log(priors[:7]), rtol=1e-6)
    assert offsets[7] == pytest.approx(np.log(0.05))


def test_application_backbones_batchnorm_momentum_survives_save(tmp_path):
    """Keras Applications' BatchNorm momentum 0.999 leaves the moving statistics near 0/1 after a
    CPU-length run from random weights; the backbone trains them at 0.9, and a saved model
    keeps it."""
    from affect_tf.model.backbones import APPLICATION_BN_MOMENTUM

    config = get_preset("tiny", backbone="mobilenet_v3_small", image_size=32)
    model = AffectModel(config)
    norms = lambda m: [  # noqa: E731
        layer
        for layer in m.get_layer("backbone").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms(model) and {n.momentum for n in norms(model)} == {APPLICATION_BN_MOMENTUM}
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert {n.momentum for n in norms(loaded)} == {APPLICATION_BN_MOMENTUM}
    # small_cnn's own BatchNorm keeps Keras' default.
    assert {n.momentum for n in norms(AffectModel(get_preset("tiny")))} == {0.99}
