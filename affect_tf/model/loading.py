"""The one loader of ``.keras`` AffectModels: a file, or a training folder holding ``model.keras``.

Importing ``affect_tf.model.affect_model`` registers every custom layer, loss and metric, so
``keras.models.load_model`` finds them; this module adds the folder convention and an error that
names the file and what was expected, instead of Keras' deep traceback.
"""

from __future__ import annotations

from pathlib import Path

import keras

import affect_tf.model.affect_model  # noqa: F401  (registers AffectModel, heads, metrics)
from affect_tf.core.errors import UserError

# What a training run writes (``affect_tf.training.fit``) and a folder argument resolves to.
MODEL_FILE = "model.keras"


class ModelLoadError(UserError):
    """The path is not a loadable affect-tf ``.keras`` model; ``cause`` says why in a few words
    (callers that name the file another way reuse it)."""

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


def resolve_keras_file(path: str | Path) -> Path:
    """``path`` itself when it is a file, ``path/model.keras`` when it is a folder.

    Raises:
        ModelLoadError: Neither exists.
    """
    model_path = Path(path)
    if model_path.is_dir():
        model_path = model_path / MODEL_FILE
    if not model_path.is_file():
        cause = "no model.keras in the folder" if Path(path).exists() else "not found"
        raise ModelLoadError(
            "Expected a .keras model file or a training folder holding model.keras. "
            f"Received: model={str(path)!r}" + ("" if Path(path).exists() else " (not found)"),
            cause,
        )
    return model_path


def load_model(path: str | Path, compile: bool = True) -> keras.Model:
    """Loads an affect-tf ``.keras`` model (a file or a training folder).

    Args:
        path: The ``.keras`` file, or a folder holding ``model.keras``.
        compile: Restore the training configuration too (False for inference or warm starts:
            faster, and independent of the optimizer it was saved with).

    Raises:
        ModelLoadError: Naming the file, when it is missing or not an affect-tf model.
    """
    model_path = resolve_keras_file(path)
    try:
        return keras.models.load_model(model_path, compile=compile)
    except Exception as e:  # Keras raises many types (zip, JSON, deserialisation) for one cause
        cause = f"{type(e).__name__}: {e}"
        raise ModelLoadError(
            f"Expected an affect-tf .keras model. Received: model={str(model_path)!r} ({cause})",
            cause,
        ) from None
