"""affect-tf: multi-task facial affect (valence/arousal, action units, expressions).

Keras 3 + TFX; see README.md and docs/.
"""

from affect_tf import _env  # noqa: F401  (must run before TensorFlow is imported)
from affect_tf.labels import AUS, EXPRESSIONS, NUM_AUS, NUM_EXPRESSIONS

__version__ = "0.1.0"
__all__ = ["AUS", "EXPRESSIONS", "NUM_AUS", "NUM_EXPRESSIONS", "__version__", "load_model"]


def load_model(path, compile: bool = True):
    """Loads a saved ``.keras`` AffectModel, a file or a training folder holding ``model.keras``.

    The package's one model loader (``affect_tf.model.loading.load_model``); ``keras.models.
    load_model`` works too once ``affect_tf.model`` has been imported.
    """
    from affect_tf.model.loading import load_model as _load

    return _load(path, compile=compile)
