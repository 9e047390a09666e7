"""Image inputs: paths, folders, encoded bytes or arrays -> RGB uint8 arrays, with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affect_tf.core.files import is_input_file
from affect_tf.data.images import MAX_IMAGE_PIXELS, ImageDecodeError, decode_rgb
from affect_tf.inference.errors import InferenceError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def read_image(source) -> np.ndarray:
    """A path, encoded bytes or an array -> RGB uint8 ``(H, W, 3)``.

    Raises:
        InferenceError: Naming the file and what was expected, for a missing, unreadable,
            truncated or non-image file.
    """
    if isinstance(source, np.ndarray):
        array = source
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise InferenceError(
                f"Expected an RGB image array (H, W, 3). Received: shape={array.shape}"
            )
        return np.ascontiguousarray(np.clip(array[..., :3], 0, 255).astype(np.uint8))
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise InferenceError(f"Expected an image file. Received: path={name!r} (not found)")
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as e:
        raise InferenceError(
            f"Expected a readable image file. Received: path={name!r} ({e})"
        ) from None
    try:
        return decode_rgb(data).rgb
    except ImageDecodeError as e:
        raise InferenceError(
            "Expected a readable image (JPEG, PNG, BMP, GIF, WebP, TIFF)"
            + (f" of at most {MAX_IMAGE_PIXELS:,} pixels" if e.reason == "image_too_large" else "")
            + f". Received: path={name!r} ({e.received})"
        ) from None


def expand_inputs(inputs) -> list:
    """Paths, folders (their images, sorted; hidden and partial files left out), bytes and
    arrays -> a flat list of items."""
    if isinstance(inputs, (str, Path, bytes, np.ndarray)):
        inputs = [inputs]
    items: list = []
    for item in inputs:
        if isinstance(item, (str, Path)) and Path(item).is_dir():
            items.extend(
                sorted(
                    p
                    for p in Path(item).rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES and is_input_file(p)
                )
            )
        else:
            items.append(item)
    return items


def source_name(item, index: int) -> str:
    """How a result row names its input: the path, or ``<input i>`` for bytes and arrays."""
    return str(item) if isinstance(item, (str, Path)) else f"<input {index}>"
