"""The model itself, per preset: inference by runtime and batch, sizes, FLOPs, training speed.

Each preset's ``AffectModel`` is built with seeded random weights (speed does not depend on
the weights, and nothing can be downloaded here), exported exactly as the pipeline exports
(``affect_tf.export.saved_model.export_saved_model``, then ``affect_tf.export.tflite.convert`` for fp32, fp16
and int8, int8 calibrated on aligned SynthAffect faces), and each file is timed:

- Keras: ``model.predict`` (what users call; ``AffectModel.predict`` runs one batch through
  ``predict_on_batch``), Keras' own ``keras.Model.predict`` (a ``tf.data`` pipeline built and
  traced per call: the "before" of that change) and ``model.predict_on_batch``;
- SavedModel: the ``serving_aligned`` signature (what TF Serving runs, minus the network);
- TFLite through ``ai_edge_litert`` with XNNPACK, one thread per usable core; batch 32 runs
  the interpreter resized to 32.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.common import count_flops, folder_bytes, time_calls

RUNTIMES = (
    "keras_model_predict",
    "keras_predict",
    "keras_predict_on_batch",
    "saved_model",
    "tflite_fp32",
    "tflite_fp16",
    "tflite_int8",
)
BATCHES = (1, 32)


def aligned_faces(size: int, margin: float, n: int = 64, seed: int = 3) -> np.ndarray:
    """``n`` SynthAffect faces aligned as training aligns them, ``(n, size, size, 3)`` float32."""
    from affect_tf.data.preprocess import preprocess_array
    from affect_tf.data.synth import SynthConfig, iter_frames

    config = SynthConfig(n=n, size=max(128, size), frames_per_video=4, seed=seed)
    faces = [
        preprocess_array(frame.image, frame.landmarks, size, margin).numpy()
        for _, _, frame in iter_frames(config)
    ]
    return np.stack(faces).astype(np.float32)


def build(preset: str, seed: int = 0):
    """A seeded, built ``AffectModel`` of ``preset``."""
    import keras

    from affect_tf.model import AffectModel, get_preset

    keras.utils.set_random_seed(seed)
    config = get_preset(preset)
    model = AffectModel(config)
    model(np.zeros((1, config.image_size, config.image_size, 3), np.float32), training=False)
    return model


def export(model, out_dir: Path, faces: np.ndarray, variants=("fp32", "fp16", "int8")) -> dict:
    """SavedModel + TFLite files of ``model`` under ``out_dir``; returns their paths and sizes."""
    from affect_tf.core.layout import KERAS_FILE
    from affect_tf.export.saved_model import export_saved_model
    from affect_tf.export.tflite import convert

    saved = export_saved_model(model, export_dir=out_dir / "saved_model")
    files = {
        "saved_model": str(saved),
        "keras": str(saved / KERAS_FILE),
    }
    for variant in variants:
        path = out_dir / f"affect_{variant}.tflite"
        path.write_bytes(convert(saved, variant, representative=faces[:32]))
        files[f"tflite_{variant}"] = str(path)
    sizes = {
        # The SavedModel's own files (graph + variables), without the bundled .keras copy.
        "saved_model": folder_bytes(saved) - folder_bytes(saved / "assets.extra"),
        "keras": folder_bytes(saved / KERAS_FILE),
        **{f"tflite_{v}": folder_bytes(files[f"tflite_{v}"]) for v in variants},
    }
    return {"files": files, "bytes": sizes}


class TFLiteBatch:
    """A TFLite file resized to a fixed batch; ``(batch, ...)`` -> ``{output name: array}``.

    Through the tensor API rather than a signature runner (the peer's file has no signature);
    outputs are named by the signature where there is one.
    """

    def __init__(self, path: str | Path, batch: int, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        detail = self.interpreter.get_input_details()[0]
        if batch != int(detail["shape"][0]):
            shape = [batch, *(int(d) for d in detail["shape"][1:])]
            self.interpreter.resize_tensor_input(detail["index"], shape)
        self.interpreter.allocate_tensors()
        self.input_index = detail["index"]
        if self.interpreter.get_signature_list():
            # Named as the signature names them (our files: the serving output names).
            details = self.interpreter.get_signature_runner().get_output_details()
            self.outputs = [(name, d["index"]) for name, d in details.items()]
        else:
            self.outputs = [(d["name"], d["index"]) for d in self.interpreter.get_output_details()]

    def __call__(self, images: np.ndarray) -> dict:
        self.interpreter.set_tensor(self.input_index, images)
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(index) for name, index in self.outputs}


def callers(model, loaded, files: dict, batch: int, threads: int) -> dict:
    """Runtime name -> a function of a ``(batch, S, S, 3)`` array (``loaded``: the SavedModel
    of ``files["saved_model"]``, loaded once for both batch sizes)."""
    import keras
    import tensorflow as tf

    from affect_tf.core.layout import SERVING_ALIGNED

    signature = loaded.signatures[SERVING_ALIGNED]
    out = {
        "keras_model_predict": lambda x: keras.Model.predict(model, x, batch_size=batch, verbose=0),
        "keras_predict": lambda x: model.predict(x, batch_size=batch, verbose=0),
        "keras_predict_on_batch": lambda x: model.predict_on_batch(x),
        # ``loaded`` rides along in the default argument: the signature needs its variables.
        "saved_model": lambda x, _keep=loaded: signature(image=tf.constant(x)),
    }
    for name in RUNTIMES:
        if name.startswith("tflite_") and name in files:
            out[name] = TFLiteBatch(files[name], batch, threads)
    return out


def measure_inference(
    model, files: dict, faces: np.ndarray, min_seconds: float, threads: int | None = None
) -> dict:
    """``{runtime: {"b1": time_calls result, "b32": ...}}`` on ``faces`` (tiled to 32)."""
    import tensorflow as tf

    threads = threads or len(os.sched_getaffinity(0))
    loaded = tf.saved_model.load(files["saved_model"])
    results: dict[str, dict] = {}
    for batch in BATCHES:
        x = np.resize(faces, (batch, *faces.shape[1:])).astype(np.float32)
        for name, fn in callers(model, loaded, files, batch, threads).items():
            results.setdefault(name, {})[f"b{batch}"] = time_calls(
                lambda fn=fn, x=x: fn(x), items_per_call=batch, min_seconds=min_seconds, min_calls=5
            )
    return results


def flops_per_face(model) -> int:
    size = model.affect_config.image_size
    return count_flops(lambda x: model(x, training=False), (1, size, size, 3))


def measure_training(preset: str, min_seconds: float, seed: int = 0) -> dict:
    """Examples/s of the compiled training step (AdamW, composite loss, metrics) on one
    in-memory batch of the preset's size, after the step is traced."""
    import keras

    from affect_tf.core.labels import NUM_AUS, NUM_EXPRESSIONS
    from affect_tf.data import targets as tg

    model = build(preset, seed)
    config = model.affect_config
    batch, size = config.batch_size, config.image_size
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    ones = np.ones((batch, 1), np.float32)
    y = {
        tg.VA: np.concatenate([rng.uniform(-1, 1, (batch, 2)), ones], 1).astype(np.float32),
        tg.EXPRESSION: np.concatenate(
            [rng.integers(0, NUM_EXPRESSIONS, (batch, 1)), ones], 1
        ).astype(np.float32),
        tg.AU: np.concatenate(
            [rng.integers(0, 2, (batch, NUM_AUS)), np.ones((batch, NUM_AUS))], 1
        ).astype(np.float32),
    }
    model.compile_for_training(steps_per_epoch=100)
    timing = time_calls(
        lambda: model.train_on_batch(x, y),
        items_per_call=batch,
        warmup=2,
        min_calls=3,
        min_seconds=min_seconds,
    )
    keras.backend.clear_session()
    return {"backend": keras.backend.backend(), "batch_size": batch, **timing}
