"""Grayscale: hand-checked luminance, grey faces unchanged, eager = tf.data, saved and loaded."""

import numpy as np
import tensorflow as tf

from affect_tf.model.colour import LUMA, Grayscale


def test_luminance_hand_checked_and_grey_unchanged():
    rgb = np.array([[[[255.0, 0.0, 0.0], [0.0, 255.0, 0.0], [0.0, 0.0, 255.0], [10, 20, 30]]]])
    out = np.asarray(Grayscale()(rgb))
    expected = [255 * LUMA[0], 255 * LUMA[1], 255 * LUMA[2], 10 * 0.299 + 20 * 0.587 + 30 * 0.114]
    np.testing.assert_allclose(out[0, 0], np.repeat(np.array(expected)[:, None], 3, 1), rtol=1e-6)
    grey = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1)).repeat(3, -1).astype("float32")
    np.testing.assert_allclose(np.asarray(Grayscale()(grey)), grey, atol=1e-4)


def test_same_eagerly_and_inside_tf_data():
    faces = np.random.default_rng(1).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    layer = Grayscale()
    eager = np.asarray(layer(faces))
    mapped = next(iter(tf.data.Dataset.from_tensor_slices(faces).batch(4).map(layer)))
    np.testing.assert_allclose(mapped.numpy(), eager, atol=1e-5)


def test_round_trips_inside_a_saved_affect_model(tmp_path):
    import keras

    from affect_tf.model.affect_model import AffectModel
    from affect_tf.model.config import get_preset

    model = AffectModel(get_preset("tiny", grayscale=True))
    assert model.get_layer("grayscale").get_config()["name"] == "grayscale"
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.affect_config.grayscale and isinstance(loaded.get_layer("grayscale"), Grayscale)
    faces = np.random.default_rng(2).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(loaded.predict(faces, verbose=0)["va"]),
        np.asarray(model.predict(faces, verbose=0)["va"]),
        atol=1e-6,
    )
    # A colour face and its grey version read the same.
    grey = np.asarray(Grayscale()(faces))
    np.testing.assert_allclose(
        np.asarray(model.predict(grey, verbose=0)["va"]),
        np.asarray(model.predict(faces, verbose=0)["va"]),
        atol=1e-5,
    )
