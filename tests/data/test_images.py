"""The one still-image decoder: images as users have them (16-bit grey, EXIF-rotated, CMYK,
palette), bombs refused from the header, and conversion storing what tf.io decodes alike."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from affect_tf.data.convert import load_image
from affect_tf.data.images import ImageDecodeError, decode_rgb
from affect_tf.inference import InferenceError, read_image


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def test_16_bit_grey_is_scaled_not_saturated():
    ramp = (np.arange(64, dtype=np.uint16)[None, :] * 1024).repeat(8, axis=0)  # 0 .. 64512
    data = _encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    rgb = decode_rgb(data).rgb
    assert rgb.shape == (8, 64, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, :, 0], np.rint(ramp[0] / 257.0).astype(np.uint8))
    assert rgb.min() == 0 and rgb.max() == 251  # Pillow's convert("RGB") made nearly all 255


def test_exif_orientation_is_honoured_where_asked():
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :5] = 255  # a white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    data = _encode(Image.fromarray(pixels), "JPEG", exif=exif, quality=95)
    upright = decode_rgb(data)
    assert upright.rgb.shape == (30, 10, 3) and not upright.tf_ready
    assert upright.rgb[:5].mean() > 200  # the band is now on top
    stored = decode_rgb(data, exif_orientation=False)
    assert stored.rgb.shape == (10, 30, 3) and stored.tf_ready


def test_bombs_are_refused_from_the_header():
    data = _encode(Image.new("L", (5000, 4000)), "PNG")  # 20 MP of zeros: a small file
    with pytest.raises(ImageDecodeError, match="at most 1,000,000 pixels") as error:
        decode_rgb(data, max_pixels=1_000_000)
    assert error.value.reason == "image_too_large"
    with pytest.raises(InferenceError, match="of at most 100,000,000 pixels"):
        read_image(_encode(Image.new("L", (20000, 6000)), "PNG"))


@pytest.mark.parametrize("mode", ["CMYK", "P", "LA", "RGBA"])
def test_other_modes_convert_and_conversion_stores_tf_decodable_pixels(tmp_path, mode):
    image = Image.new("RGB", (16, 12), (200, 30, 90)).convert(mode)
    path = tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    loaded = load_image(path)
    assert loaded.rgb.shape == (12, 16, 3)
    np.testing.assert_array_equal(tf.io.decode_image(loaded.data, channels=3).numpy(), loaded.rgb)


def test_corrupt_and_empty_bytes():
    for data in (b"", b"not an image"):
        with pytest.raises(ImageDecodeError) as error:
            decode_rgb(data)
        assert error.value.reason == "corrupt_image"
