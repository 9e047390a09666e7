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

from affect_tf.errors import UserError

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


def header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from an encoded image's header, without decoding (None: unreadable,
    left for the decoder to report)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError:
        return (1 << 31, 1)  # over every limit: Pillow refused to even describe it
    except Exception:  # noqa: BLE001 - unreadable headers are the decoder's to report
        return None


def decode_rgb(
    data: bytes, exif_orientation: bool = True, max_pixels: int = MAX_IMAGE_PIXELS
) -> Decoded:
    """Decodes ``data`` fully (a truncated file fails here, not later).

    Args:
        data: Encoded JPEG, PNG, BMP, GIF (first frame), WebP or TIFF bytes.
        exif_orientation: Rotate/flip as the EXIF orientation tag says (what a viewer shows).
        max_pixels: Refuse larger images (width x height, read from the header).

    Raises:
        ImageDecodeError: ``corrupt_image`` (not an image, truncated, empty) or
            ``image_too_large`` (over ``max_pixels``), with a message saying which.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageDecodeError("corrupt_image", "image bytes", "an empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    "image_too_large",
                    f"an image of at most {max_pixels:,} pixels",
                    f"{width}x{height} = {width * height:,} pixels",
                )
            image.load()
            fmt, mode = image.format, image.mode
            # EXIF tag 0x0112 (Orientation): 1 is upright; 2-8 flip and/or rotate.
            rotated = exif_orientation and image.getexif().get(0x0112, 1) not in (1, 0)
            rgb = _to_uint8(ImageOps.exif_transpose(image) if rotated else image)
    except ImageDecodeError:
        raise
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
