"""Shared fixtures: tiny images written in the formats the readers expect."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(
    path: Path, size: tuple[int, int] = (48, 40), seed: int = 0, fmt: str | None = None
) -> Path:
    """Writes a small random RGB image (w, h) and returns its path."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def synth_corpus(out: Path, n: int, seed: int, size: int = 64) -> Path:
    """A SynthAffect manifest corpus written by ``affect-tf synth`` (one process, quiet)."""
    from affect_tf import cli

    argv = ["synth", "--out", str(out), "--n", str(n), "--size", str(size), "--workers", "1"]
    assert cli.main([*argv, "--quiet", "--seed", str(seed)]) == 0
    return out


def connect_at_once(port: int, clients: int = 64) -> tuple[list[int], list[str]]:
    """``clients`` threads open a connection to the REST port at the same moment and ask for
    the model's status; ``(HTTP statuses, errors)``."""
    import http.client
    import threading

    statuses, errors = [], []
    barrier = threading.Barrier(clients)

    def client():
        try:
            barrier.wait()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/v1/models/affect")
            statuses.append(connection.getresponse().status)
            connection.close()
        except Exception as e:  # noqa: BLE001 - collected for the caller's assertions
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return statuses, errors


def jpeg_bytes(size: tuple[int, int] = (32, 32), seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buffer, format="JPEG"
    )
    return buffer.getvalue()


def gif_bomb(second: tuple[int, int] = (20000, 20000), frames: int = 1) -> bytes:
    """A 64 x 64 GIF (screen and first frame) followed by ``frames`` frames that declare
    ``second``, each with one sub-block of LZW data: the file is tiny, its declaration huge."""
    import struct

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 60)).save(buffer, format="GIF")
    body = buffer.getvalue()[:-1]  # without the trailer
    for _ in range(frames):
        body += b"\x2c" + struct.pack("<HHHH", 0, 0, *second) + b"\x00\x08"
        body += bytes([255]) + b"\x00" * 255 + b"\x00"
    return body + b"\x3b"


#           neutral happy surprise sad anger disgust fear contempt unknown NF
FERPLUS_ROWS = {
    "fer0.png": [8, 1, 0, 0, 0, 0, 0, 0, 1, 0],  # Neutral
    "fer1.png": [0, 0, 0, 0, 0, 0, 0, 6, 4, 0],  # contempt -> Other
    "fer2.png": [0, 0, 0, 0, 0, 0, 3, 0, 5, 2],  # top vote unknown: dropped
    "fer3.png": [0, 4, 0, 0, 0, 0, 0, 0, 0, 6],  # top vote not a face: dropped
    "fer4.png": [0, 5, 5, 0, 0, 0, 0, 0, 0, 0],  # tied: dropped
    "fer5.png": [1, 0, 0, 0, 0, 0, 9, 0, 0, 0],  # Fear
}


def _write_ferplus_split(root, folder: str, rows: dict, extra_lines: tuple[str, ...] = ()) -> None:
    split = root / folder
    split.mkdir(parents=True)
    lines = []
    for i, (name, votes) in enumerate(rows.items()):
        grey = np.full((48, 48), 40 * i, np.uint8)
        grey[10:20, 10:38] = 255 - 40 * i
        Image.fromarray(grey).save(split / name)
        lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (split / "label.csv").write_text("\n".join([*lines, *extra_lines]) + "\n")


def write_ferplus(root: Path) -> Path:
    """A tiny FER+ layout (Microsoft's ``FER2013{Train,Valid,Test}/label.csv``): Train has
    ``FERPLUS_ROWS`` and one row of 3 votes, Valid one Sadness face, Test one Disgust face."""
    _write_ferplus_split(root, "FER2013Train", FERPLUS_ROWS, ('bad.png,"(0, 0, 48, 48)",1,2,3',))
    _write_ferplus_split(root, "FER2013Valid", {"fer9.png": [0, 0, 0, 7, 3, 0, 0, 0, 0, 0]})
    _write_ferplus_split(root, "FER2013Test", {"fer8.png": [0, 0, 0, 0, 2, 8, 0, 0, 0, 0]})
    return root


@pytest.fixture(scope="session")
def detector():
    """One MTCNN for the whole session: building it loads three networks."""
    from affect_tf.face.mtcnn import MTCNNDetector

    return MTCNNDetector()


@pytest.fixture(scope="session")
def blazeface():
    """One BlazeFace + face mesh for the whole session."""
    from affect_tf.face.blazeface import BlazeFaceDetector

    return BlazeFaceDetector()


@pytest.fixture(params=["blazeface", "mtcnn"])
def any_detector(request):
    """Each registered detector in turn (the behaviour every detector owes)."""
    return request.getfixturevalue("blazeface" if request.param == "blazeface" else "detector")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained ``tiny`` AffectModel (fixed seed): what matters to inference and serving
    tests is that every path computes the same function, not that it is accurate."""
    import keras

    from affect_tf.model import AffectModel
    from affect_tf.model.config import PRESETS

    keras.utils.set_random_seed(7)
    return AffectModel(PRESETS["tiny"])


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory):
    """``tiny_model`` exported as TF Serving version 1 (SavedModel + .keras) and TFLite fp32."""
    from affect_tf.export import tflite
    from affect_tf.export.saved_model import export_saved_model

    base = tmp_path_factory.mktemp("serving") / "affect"
    version = export_saved_model(tiny_model, export_dir=base / "1")
    tflite_path = base.parent / "affect_fp32.tflite"
    tflite_path.write_bytes(tflite.convert(version, "fp32"))
    return {"base": base, "version": version, "tflite": tflite_path}


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    """A 24-frame SynthAffect clip (one face, changing expression) as mp4."""
    from affect_tf.data.synth import SynthConfig, write_video

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    # n = frames_per_video: one video, rendered as video 0 of seed 11.
    return write_video(SynthConfig(n=24, size=128, frames_per_video=24, seed=11), path, fps=12)
