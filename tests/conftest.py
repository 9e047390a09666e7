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


def jpeg_bytes(size: tuple[int, int] = (32, 32), seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buffer, format="JPEG"
    )
    return buffer.getvalue()


@pytest.fixture(scope="session")
def detector():
    """One MTCNN for the whole session: building it loads three networks."""
    from affect_tf.face.detect import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()
