"""Model backends: what runs aligned faces — a ``.keras`` file, a SavedModel or a TFLite file.

Each backend has ``image_size``, ``margin`` (the alignment the model was trained with) and
``__call__(faces) -> serving outputs`` (``affect_tf.data.targets.SERVING_OUTPUTS``).
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np

from affect_tf.core.layout import KERAS_FILE, SERVING_ALIGNED, latest_version
from affect_tf.inference.errors import InferenceError
from affect_tf.model.config import AffectConfig

# AffectConfig's default margin (every preset's); used when a TFLite file is all there is.
DEFAULT_MARGIN = AffectConfig.margin


def resolve_model(path: str | Path) -> tuple[str, Path]:
    """Which kind of model ``path`` is: ``("saved_model" | "keras" | "tflite", path)``.

    A folder of numeric versions (what the Pusher and TF Serving use) resolves to its newest
    version holding a ``saved_model.pb``.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        return "keras", path
    if path.is_file() and path.suffix == ".tflite":
        return "tflite", path
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model", path
    latest = latest_version(path)
    if latest is not None:
        return "saved_model", latest
    raise InferenceError(
        "Expected a SavedModel folder, a folder of numeric SavedModel versions (TF Serving "
        "layout, e.g. runs/demo/serving/affect), a .keras file or a .tflite file. "
        f"Received: model={str(path)!r}" + ("" if path.exists() else " (does not exist)")
    )


def keras_config(keras_file: str | Path | zipfile.ZipFile) -> dict:
    """The ``AffectConfig`` dict inside a ``.keras`` file, read without building the model."""
    with zipfile.ZipFile(keras_file) as archive:
        config = json.loads(archive.read("config.json"))
    return config["config"]["config"]


class _KerasBackend:
    def __init__(self, model) -> None:
        self.model = model
        self.image_size = int(model.affect_config.image_size)
        self.margin = float(model.affect_config.margin)

    def __call__(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        from affect_tf.export.saved_model import serving_outputs

        out = serving_outputs(self.model.predict_on_batch(faces))
        return {k: np.asarray(v) for k, v in out.items()}


class _SavedModelBackend:
    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        loaded = tf.saved_model.load(str(path))
        if SERVING_ALIGNED not in loaded.signatures:
            raise InferenceError(
                f"Expected a SavedModel with the {SERVING_ALIGNED!r} signature (exported by "
                f"affect-tf). Received: model={str(path)!r} with {sorted(loaded.signatures)}"
            )
        self._loaded = loaded  # keeps the variables alive
        self._fn = loaded.signatures[SERVING_ALIGNED]
        self.image_size = int(self._fn.structured_input_signature[1]["image"].shape[1])
        keras_file = path / KERAS_FILE
        self.margin = (
            float(keras_config(keras_file).get("margin", DEFAULT_MARGIN))
            if keras_file.is_file()
            else DEFAULT_MARGIN
        )

    def __call__(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        out = self._fn(image=self._tf.constant(faces, self._tf.float32))
        return {k: v.numpy() for k, v in out.items()}


class _TFLiteBackend:
    def __init__(self, path: Path, margin: float) -> None:
        from affect_tf.export.tflite import Runner

        self._runner = Runner(path)
        self.image_size = self._runner.image_size
        self.margin = margin

    def __call__(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        return self._runner(faces)


def load_backend(path: str | Path, margin: float | None = None):
    """``(kind, resolved path, backend)`` for a SavedModel, version base folder, .keras or .tflite.

    Args:
        margin: Alignment margin for a TFLite file (which cannot carry it); SavedModels and
            ``.keras`` files carry their own.
    """
    kind, resolved = resolve_model(path)
    if kind != "tflite" and importlib.util.find_spec("tensorflow") is None:
        raise InferenceError(
            f"Expected TensorFlow to read a {'.keras' if kind == 'keras' else 'SavedModel'} "
            f"model. Received: model={str(resolved)!r} on a machine without TensorFlow; "
            "install it (`make setup`) or use a .tflite model, which runs on LiteRT alone "
            "(the shipped model is one: leave --model out)"
        )
    if kind == "keras":
        from affect_tf.model.loading import load_model

        return kind, resolved, _KerasBackend(load_model(resolved))
    if kind == "tflite":
        margin = DEFAULT_MARGIN if margin is None else margin
        return kind, resolved, _TFLiteBackend(resolved, margin)
    return kind, resolved, _SavedModelBackend(resolved)
