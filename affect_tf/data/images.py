"""Encoded image bytes -> RGB uint8 pixels: the one still-image decoder of conversion and local
inference (``affect_tf.data.convert.load_image``, ``affect_tf.inference.read_image``).

Handles images as users have them: 16-bit and 32-bit greyscale scaled to 8 bits (Pillow's
``convert("RGB")`` saturates them to white), palette / CMYK / RGBA / LA converted, EXIF
orientation honoured where asked, and images over a pixel limit refused from the header, before
any pixel is decoded (an image bomb never reaches memory).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np

from affect_tf.core.errors import UserError

# Pillow refuses images over ~179 MP itself (DecompressionBombError); ours is lower and checked
# before decoding: 100 MP is a 10000 x 10000 photo (300 MB of RGB).
MAX_IMAGE_PIXELS = 100_000_000
# Formats and modes TensorFlow reads to the same pixels as Pillow (JPEG with
# ``dct_method="INTEGER_ACCURATE"``, as ``affect_tf.data.preprocess.decode_image`` does).
TF_READY_FORMATS = frozenset({"JPEG", "PNG", "BMP"})
TF_READY_MODES = frozenset({"RGB", "L"})


class ImageDecodeError(UserError):
    """Bytes that are no usable image; ``reason`` is ``corrupt_image`` or ``image_too_large``,
    ``received`` what was found (callers that name the file reuse it)."""

    def __init__(self, reason: str, expected: str, received: str) -> None:
        super().__init__(f"Expected {expected}. Received: {received}")
        self.reason = reason
        self.received = received


@dataclasses.dataclass
class Decoded:
    """Decoded pixels and whether a plain decoder (``tf.io``) would give other pixels."""

    rgb: np.ndarray  # (H, W, 3) uint8
    format: str | None
    tf_ready: bool  # the bytes decode to ``rgb`` with tf.io as they are


def _to_uint8(image) -> np.ndarray:
    """Pillow image of any mode -> RGB uint8, scaling high-bit-depth greyscale."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        if image.mode == "I" and values.max() > 65535:
            top = float(values.max())
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"))


def _u16le(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def gif_frames(data: bytes) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """A GIF's logical screen ``(width, height)`` and every frame's declared ``(width, height)``,
    read from the block structure without decoding any pixel (a truncated file gives the frames
    declared before its end)."""
    screen = (_u16le(data, 6), _u16le(data, 8))
    packed = data[10] if len(data) > 10 else 0
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    frames: list[tuple[int, int]] = []
    n = len(data)
    while pos < n:
        block = data[pos]
        if block == 0x21:  # extension: introducer, label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor: left, top, width, height, packed
            frames.append((_u16le(data, pos + 5), _u16le(data, pos + 7)))
            local = data[pos + 9] if pos + 9 < n else 0
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1  # + LZW code size
        else:  # the trailer (0x3B) or bytes no decoder reads further
            break
        while pos < n and data[pos]:  # data sub-blocks, each led by its length, 0 ends them
            pos += data[pos] + 1
        pos += 1
    return screen, frames


def decode_pixels(data: bytes) -> tuple[int, str] | None:
    """The pixels a decoder touches to read ``data``, and the size it declares as text
    (``"640x480"``; a GIF: its screen and frame count), from the headers alone (None:
    unreadable, left for the decoder to report).

    One budget for every entry point (conversion, ``predict``, video frames, the serving
    graphs and the server's pre-check): a still image counts ``width x height``; a GIF counts
    every frame, each at least its screen, because TensorFlow's GIF decoder reads every frame
    into memory even when it returns only the first (a 298 KB GIF whose second frame declared
    20000 x 20000 asked the server for 64 GiB).
    """
    if data[:6] in (b"GIF87a", b"GIF89a"):
        (width, height), frames = gif_frames(data)
        screen = width * height
        total = sum(max(w * h, screen) for w, h in frames) or screen
        largest = max(frames, key=lambda f: f[0] * f[1], default=(width, height))
        text = f"{width}x{height}"
        if frames:
            text += f", {len(frames)} frame(s), the largest {largest[0]}x{largest[1]}"
        return total, text
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = (int.from_bytes(data[i : i + 4], "big") for i in (16, 20))
        return width * height, f"{width}x{height}"
    return _pillow_pixels(data)


def _pillow_pixels(data: bytes) -> tuple[int, str] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size[0] * image.size[1], f"{image.size[0]}x{image.size[1]}"
    except Image.DecompressionBombError as e:
        # Pillow refused to describe it (over ~179 MP): its message has the pixel count.
        digits = [int(t) for t in str(e).replace("(", " ").split() if t.isdigit()]
        pixels = digits[0] if digits else 1 << 31
        return pixels, f"over {pixels:,} pixels"
    except Exception:  # noqa: BLE001 - unreadable headers are the decoder's to report
        return None


def check_decode_budget(data: bytes, max_pixels: int) -> None:
    """Raises ``ImageDecodeError`` (``image_too_large``) when ``decode_pixels`` is over
    ``max_pixels``; headers that cannot be read are left for the decoder to report."""
    declared = decode_pixels(data)
    if declared is not None and declared[0] > max_pixels:
        raise ImageDecodeError(
            "image_too_large",
            f"an image of at most {max_pixels:,} pixels (every frame counted)",
            f"{declared[1]} = {declared[0]:,} pixels",
        )


def decode_rgb(
    data: bytes, exif_orientation: bool = True, max_pixels: int = MAX_IMAGE_PIXELS
) -> Decoded:
    """Decodes ``data`` fully (a truncated file fails here, not later).

    Args:
        data: Encoded JPEG, PNG, BMP, GIF (first frame), WebP or TIFF bytes.
        exif_orientation: Rotate/flip as the EXIF orientation tag says (what a viewer shows).
        max_pixels: Refuse larger images (``decode_pixels``: every frame, from the headers).

    Raises:
        ImageDecodeError: ``corrupt_image`` (not an image, truncated, empty) or
            ``image_too_large`` (over ``max_pixels``), with a message saying which.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageDecodeError("corrupt_image", "image bytes", "an empty file")
    check_decode_budget(data, max_pixels)  # every format's size, before any pixel
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            fmt, mode = image.format, image.mode
            # EXIF tag 0x0112 (Orientation): 1 is upright; 2-8 flip and/or rotate.
            rotated = exif_orientation and image.getexif().get(0x0112, 1) not in (1, 0)
            rgb = _to_uint8(ImageOps.exif_transpose(image) if rotated else image)
    except Image.DecompressionBombError as e:  # over Pillow's own ~179 MP, refused at open
        raise ImageDecodeError(
            "image_too_large", f"an image of at most {max_pixels:,} pixels", str(e)
        ) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "corrupt_image", "a readable image", "not an image format Pillow knows"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageDecodeError(
            "corrupt_image", "a readable image", f"{type(e).__name__}: {e}"
        ) from None
    tf_ready = fmt in TF_READY_FORMATS and mode in TF_READY_MODES and not rotated
    return Decoded(rgb=np.ascontiguousarray(rgb), format=fmt, tf_ready=tf_ready)
