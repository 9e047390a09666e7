"""affect-tf: multi-task facial affect (valence/arousal, AUs, expressions), Keras 3 + TFX.

The public API, loaded on first use so that ``import affect_tf`` stays cheap:

>>> import affect_tf
>>> rec = affect_tf.AffectRecognizer()          # the shipped model, TFLite on LiteRT
>>> table = rec.predict_images(["photo.jpg"])   # one row per face

- ``AffectRecognizer``: images and videos in, one row per face out (``affect_tf.inference``).
- ``AffectClient``: REST / gRPC client of a served model (``affect_tf.serving``).
- ``load_model``: the one ``.keras`` loader.
- ``AffectConfig``, ``PRESETS``, ``get_preset``: the model's configuration and its presets;
  ``GANConfig``, ``GAN_PRESETS``, ``get_gan_preset``: the GAN's.
- ``EXPRESSIONS``, ``AUS``, ``NUM_EXPRESSIONS``, ``NUM_AUS``: the label space.

The layers, bottom to top (``docs/architecture.md``): ``core``, ``face``, ``data``,
``evaluation``, ``model``, ``training`` and ``gan``, ``export``, ``inference`` and ``serving``,
``pipeline``, ``cli``.
"""

from affect_tf.core import _env  # noqa: F401  (must run before TensorFlow is imported)
from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS, NUM_EXPRESSIONS  # noqa: F401
from affect_tf.core.presets import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "AffectRecognizer": "affect_tf.inference.recognizer",
    "AffectClient": "affect_tf.serving.client",
    **dict.fromkeys(("AffectConfig", "PRESETS", "get_preset"), "affect_tf.model.config"),
    **dict.fromkeys(("GANConfig", "GAN_PRESETS", "get_gan_preset"), "affect_tf.gan.config"),
}
__all__ = sorted(
    ["AUS", "EXPRESSIONS", "NUM_AUS", "NUM_EXPRESSIONS", "__version__", "load_model", *_LAZY]
)

__getattr__ = lazy_attributes("affect_tf", _LAZY)


def load_model(path, compile: bool = True):
    """Loads a saved ``.keras`` AffectModel, a file or a training folder holding ``model.keras``.

    The package's one model loader (``affect_tf.model.loading.load_model``); ``keras.models.
    load_model`` works too once ``affect_tf.model`` has been imported.
    """
    from affect_tf.model.loading import load_model as _load

    return _load(path, compile=compile)
