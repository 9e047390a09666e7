"""What a served model answers: the serving outputs' names and shapes, and result tables.

The names are shared by the SavedModel signatures, the TFLite files, TF Serving responses and
``AffectRecognizer``'s tables. This module imports neither TensorFlow nor Keras, so the
TFLite inference path (``affect_tf.inference`` with a ``.tflite`` model) reads results without
loading them; ``affect_tf.data.targets`` re-exports it next to the training targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS, NUM_EXPRESSIONS

if TYPE_CHECKING:
    import pandas

# Serving signature outputs (SavedModel, TFLite, TF Serving responses): probabilities, not logits.
EXPRESSION_PROBS: Final[str] = "expression"
AU_PROBS: Final[str] = "au"
VALENCE: Final[str] = "valence"
AROUSAL: Final[str] = "arousal"
SERVING_OUTPUTS: Final[tuple[str, ...]] = (EXPRESSION_PROBS, AU_PROBS, VALENCE, AROUSAL)
# Per-face shape of each serving output.
SERVING_OUTPUT_SHAPES: Final[dict[str, tuple[int, ...]]] = {
    EXPRESSION_PROBS: (NUM_EXPRESSIONS,),
    AU_PROBS: (NUM_AUS,),
    VALENCE: (),
    AROUSAL: (),
}


def empty_serving_outputs() -> dict:
    """Serving outputs for zero faces (NumPy, float64), shaped as ``SERVING_OUTPUT_SHAPES``."""
    return {name: np.zeros((0, *SERVING_OUTPUT_SHAPES[name])) for name in SERVING_OUTPUTS}


def outputs_frame(outputs: dict[str, np.ndarray]) -> pandas.DataFrame:
    """Serving outputs (``SERVING_OUTPUTS``) -> one row per face.

    Columns: the 8 expression probabilities by name, ``expression`` (the most likely one),
    the 12 AU probabilities by AU, ``valence``, ``arousal``.
    """
    import pandas as pd

    expr = np.asarray(outputs[EXPRESSION_PROBS], np.float64).reshape(-1, len(EXPRESSIONS))
    au = np.asarray(outputs[AU_PROBS], np.float64).reshape(-1, len(AUS))
    table = pd.DataFrame(expr, columns=list(EXPRESSIONS))
    table["expression"] = [EXPRESSIONS[i] for i in np.argmax(expr, axis=-1)] if len(expr) else []
    table[list(AUS)] = au
    table[VALENCE] = np.asarray(outputs[VALENCE], np.float64).reshape(-1)
    table[AROUSAL] = np.asarray(outputs[AROUSAL], np.float64).reshape(-1)
    return table


def active_aus(row: pandas.Series | dict, threshold: float = 0.5) -> list[str]:
    """The AUs of a result row whose probability reaches ``threshold``."""
    return [au for au in AUS if float(row[au]) >= threshold]
