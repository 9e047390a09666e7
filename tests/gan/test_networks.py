"""Generator and discriminator: shapes, ranges, shared weights, save/load round trips."""

import keras
import numpy as np
import pytest

from affect_tf.data import targets as tg
from affect_tf.gan.conditions import CONDITION_DIM
from affect_tf.gan.config import GAN_PRESETS, GANConfig, get_gan_preset
from affect_tf.gan.networks import (
    CONDITION,
    NOISE,
    REAL_FAKE,
    AffectDiscriminator,
    build_generator,
)
from affect_tf.model.affect_model import AffectModel

CONFIG = get_gan_preset("tiny")


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return build_generator(CONFIG)


@pytest.fixture(scope="module")
def discriminator():
    keras.utils.set_random_seed(0)
    return AffectDiscriminator(CONFIG.affect_config, class_weights=np.linspace(0.5, 2, 8))


def _inputs(n=3):
    rng = np.random.default_rng(0)
    return {
        NOISE: rng.standard_normal((n, CONFIG.noise_dim)).astype("float32"),
        CONDITION: rng.random((n, CONDITION_DIM)).astype("float32"),
    }


def test_presets_and_validation():
    for name, preset in GAN_PRESETS.items():
        assert preset.name == name and preset.image_size == 64
        assert preset.affect_config.image_size == 64
    assert GANConfig.from_dict(CONFIG.to_dict()) == CONFIG
    with pytest.raises(ValueError, match="multiple of 16"):
        GANConfig(image_size=72)
    with pytest.raises(ValueError, match="recognizer preset"):
        GANConfig(recognizer="huge")
    with pytest.raises(ValueError, match="Expected a GAN preset"):
        get_gan_preset("big")
    assert get_gan_preset("tiny", steps=10).epochs == 1


def test_generator_shape_and_range(generator):
    images = np.asarray(generator(_inputs(), training=False))
    assert images.shape == (3, 64, 64, 3)
    assert images.min() >= 0.0 and images.max() <= 255.0
    # The condition matters: another condition, the same noise -> other pixels.
    other = _inputs()
    other[CONDITION] = 1.0 - other[CONDITION]
    assert not np.allclose(images, np.asarray(generator(other, training=False)))


def test_discriminator_outputs_and_shared_recognizer(discriminator):
    faces = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    out = discriminator(faces, training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        tg.EXPRESSION: (2, 8),
        tg.AU: (2, 12),
        tg.VA: (2, 2),
        REAL_FAKE: (2, 1),
    }
    assert isinstance(discriminator.recognizer, AffectModel)
    plain = discriminator.recognizer.predict(faces)
    for key in tg.OUTPUTS:
        np.testing.assert_allclose(plain[key], np.asarray(out[key]), rtol=1e-5, atol=1e-5)
    # Every recognizer weight is a discriminator weight; the real/fake head is the only extra.
    ids = {id(v) for v in discriminator.weights}
    assert all(id(v) in ids for v in discriminator.recognizer.weights if "log_vars" not in v.path)
    extra = len(discriminator.trainable_weights) - len(discriminator.recognizer.trainable_weights)
    assert extra == 2


def test_generator_save_load_round_trip(generator, tmp_path):
    generator.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(
        np.asarray(loaded(_inputs(), training=False)),
        np.asarray(generator(_inputs(), training=False)),
        atol=1e-4,
    )


def test_discriminator_save_load_round_trip(discriminator, tmp_path):
    discriminator.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras")
    assert isinstance(loaded, AffectDiscriminator)
    assert loaded.get_config() == discriminator.get_config()
    assert loaded.recognizer.class_weights == discriminator.recognizer.class_weights
    faces = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    a, b = discriminator(faces, training=False), loaded(faces, training=False)
    for key in (*tg.OUTPUTS, REAL_FAKE):
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=1e-5)


def test_recalibrate_batch_norm_averages_the_batches():
    import tensorflow as tf

    from affect_tf.gan.train import recalibrate_batch_norm

    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Sequential([keras.Input((2,)), norm])
    batches = [np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[4.0, 5.0], [6.0, 11.0]])]
    ds = tf.data.Dataset.from_tensor_slices(np.stack(batches).astype("float32"))
    assert recalibrate_batch_norm(model, ds) == 2
    # Mean of the batch means / variances (biased, as batch norm computes them).
    np.testing.assert_allclose(norm.moving_mean.numpy(), [3.0, 5.0])
    np.testing.assert_allclose(norm.moving_variance.numpy(), [1.0, 5.0])
    assert norm.momentum == 0.99


def test_gan_save_load_round_trip(generator, discriminator, tmp_path):
    import warnings

    from affect_tf.gan.model import AffectGAN

    gan = AffectGAN(generator, discriminator, CONFIG)
    gan.compile()
    gan.save(tmp_path / "gan.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "compile() was not called" warning
        loaded = keras.models.load_model(tmp_path / "gan.keras")
    assert isinstance(loaded, AffectGAN) and loaded.gan_config == CONFIG
    assert isinstance(loaded.discriminator, AffectDiscriminator)
    assert float(loaded.g_optimizer.learning_rate) == pytest.approx(CONFIG.g_learning_rate)
    np.testing.assert_allclose(
        np.asarray(loaded(_inputs(), training=False)),
        np.asarray(gan(_inputs(), training=False)),
        atol=1e-4,
    )


def test_labelled_share_is_validated():
    with pytest.raises(ValueError, match=r"labelled_share in \[0, 1\)"):
        GANConfig(labelled_share=1.0)
