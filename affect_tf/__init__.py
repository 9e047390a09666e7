"""affect-tf: multi-task facial affect (valence/arousal, action units, expressions).

Keras 3 + TFX; see README.md and docs/.
"""

from affect_tf import _env  # noqa: F401  (must run before TensorFlow is imported)
from affect_tf.labels import AUS, EXPRESSIONS, NUM_AUS, NUM_EXPRESSIONS

__version__ = "0.1.0"
__all__ = ["AUS", "EXPRESSIONS", "NUM_AUS", "NUM_EXPRESSIONS", "__version__", "load_model"]


def load_model(path):
    """Loads a saved ``.keras`` AffectModel (registering affect-tf's custom objects first).

    ``keras.models.load_model`` works too once ``affect_tf.model`` has been imported.
    """
    import keras

    import affect_tf.model.affect_model  # noqa: F401  (registers AffectModel, heads, metrics)

    return keras.models.load_model(path)
