"""FaceAligner, the alignment as a Keras preprocessing layer: the same numbers as
``preprocess_face`` eagerly and inside tf.data, a complete config, and a model with the layer in
front saved and loaded as ``.keras``."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
import tensorflow as tf

import affect_tf
from affect_tf.data.preprocess import FaceAligner, preprocess_face, with_aligner
from affect_tf.face.warp import MAX_DIFFERENCE
from affect_tf.model import AffectModel, get_preset
from tests.conftest import gif_bomb, jpeg_bytes

LANDMARKS = [[10.0, 12.0, 22.0, 12.0, 16.0, 18.0, 11.0, 24.0, 21.0, 24.0]]


def _inputs(n: int = 2) -> dict[str, tf.Tensor]:
    return {
        "image": tf.constant([jpeg_bytes((32, 32), seed=i) for i in range(n)]),
        "landmarks": tf.constant(LANDMARKS * n, tf.float32),
        "bbox": tf.zeros((n, 4)),
    }


def test_aligner_equals_preprocess_face_eagerly_and_in_tf_data():
    aligner = FaceAligner(24, 0.25)
    inputs = _inputs()
    eager = aligner(inputs).numpy()
    assert eager.shape == (2, 24, 24, 3) and eager.dtype == np.float32
    for i in range(2):
        one = preprocess_face(
            inputs["image"][i], inputs["landmarks"][i], inputs["bbox"][i], 24, 0.25
        ).numpy()
        np.testing.assert_allclose(eager[i], one, atol=1e-4)
    batched = tf.data.Dataset.from_tensor_slices(inputs).batch(2).map(aligner)
    np.testing.assert_allclose(next(iter(batched)).numpy(), eager, atol=1e-4)


def test_aligner_config_round_trip_and_checks():
    aligner = FaceAligner(40, 0.3, name="align")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(aligner))
    assert clone.get_config() == aligner.get_config()
    assert (clone.image_size, clone.margin, clone.trainable) == (40, 0.3, False)
    with pytest.raises(ValueError, match="image_size >= 1"):
        FaceAligner(0, 0.25)


def test_model_with_aligner_saves_loads_and_matches_the_model(tmp_path):
    config = get_preset("tiny")
    model = AffectModel(config)
    full = with_aligner(model, config.image_size, config.margin)
    inputs = _inputs()
    out = full(inputs)
    faces = FaceAligner(config.image_size, config.margin)(inputs)
    np.testing.assert_allclose(out["va"], model(faces)["va"], atol=1e-6)
    path = tmp_path / "from_frames.keras"
    full.save(path)
    loaded = affect_tf.load_model(path)
    np.testing.assert_allclose(loaded(inputs)["expression"], out["expression"], atol=1e-6)


def _encode(image, fmt: str) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_header_pixels_read_without_decoding(fmt):
    from PIL import Image

    from affect_tf.data.preprocess import header_pixels

    data = _encode(Image.new("RGB", (37, 23), (10, 20, 30)), fmt)
    assert int(header_pixels(tf.constant(data))) == 37 * 23
    assert int(header_pixels(tf.constant(b"not an image"))) == 0


def test_the_serving_graph_refuses_an_image_bomb(exported):
    """A 120 MP PNG of zeros (a small file) fails in the SavedModel itself with a message
    naming the limit, before it is decoded: real TF Serving is protected too."""
    from PIL import Image

    bomb = _encode(Image.new("L", (12000, 10000)), "PNG")
    assert len(bomb) < 300_000
    signature = tf.saved_model.load(str(exported["version"])).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 100000000 pixels"):
        signature(image=tf.constant([bomb]))
    faces = tf.data.Dataset.from_tensors(tf.constant(bomb)).map(
        lambda b: preprocess_face(b, tf.zeros(10), tf.zeros(4), 24, 0.25)
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most"):
        next(iter(faces))


def test_a_jpeg_gives_the_same_face_through_predict_and_the_serving_graph(exported, astronaut):
    """One decoder: `predict` (Pillow, then the recognizer's alignment) and the exported
    serving graph (TensorFlow's JPEG decoder inside the SavedModel, as real TF Serving runs it)
    see the same pixels, so the same crop and the same outputs. With TensorFlow's default fast
    DCT the two differed by up to 27 grey levels on most pixels."""
    import io

    from PIL import Image

    from affect_tf.data.preprocess import decode_image, preprocess_face
    from affect_tf.inference import AffectRecognizer, read_image

    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, format="JPEG", quality=95)
    jpeg = buffer.getvalue()
    np.testing.assert_array_equal(decode_image(tf.constant(jpeg)).numpy(), read_image(jpeg))

    recognizer = AffectRecognizer.load(exported["version"])
    face = recognizer.detector.detect_one(read_image(jpeg))
    crop = recognizer.align(read_image(jpeg), face.landmarks)
    size, margin = recognizer.image_size, recognizer.margin
    graph_crop = preprocess_face(
        tf.constant(jpeg), tf.constant(face.landmarks.reshape(10)), None, size, margin
    ).numpy()
    np.testing.assert_allclose(crop, graph_crop, atol=MAX_DIFFERENCE)

    table = recognizer.predict_images([jpeg], faces="largest")
    signature = tf.saved_model.load(str(exported["version"])).signatures["serving_landmarks"]
    served = signature(
        image=tf.constant([jpeg]), landmarks=tf.constant(face.landmarks.reshape(1, 10))
    )
    np.testing.assert_allclose(table["valence"], served["valence"].numpy(), atol=1e-4)
    np.testing.assert_allclose(table["arousal"], served["arousal"].numpy(), atol=1e-4)


def _animated(frames: int, size: tuple[int, int]) -> bytes:
    from PIL import Image

    images = [Image.new("RGB", size, (30 * i, 10, 10)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_every_gif_frame_counts_in_the_graph_and_in_python_alike():
    """The serving graph's pure-TF walk over a GIF's blocks and the Python one agree: a still
    GIF is its screen, an animation every frame, a bomb its declared 20000 x 20000 frame."""
    from affect_tf.data.images import decode_pixels
    from affect_tf.data.preprocess import header_pixels

    cases = {
        "still": (_animated(1, (37, 23)), 37 * 23),
        "animated": (_animated(5, (40, 30)), 5 * 40 * 30),
        "bomb": (gif_bomb((20000, 20000)), 64 * 64 + 20000 * 20000),
        "many frames": (gif_bomb((64, 64), 300), 301 * 64 * 64),
        "truncated": (gif_bomb((20000, 20000))[:-200], 64 * 64 + 20000 * 20000),
    }
    for name, (data, pixels) in cases.items():
        assert decode_pixels(data)[0] == pixels, name
        assert int(header_pixels(tf.constant(data))) == pixels, name
        pipeline = tf.data.Dataset.from_tensors(tf.constant(data)).map(header_pixels)
        assert int(next(iter(pipeline))) == pixels, name


def test_a_gif_bomb_is_refused_by_the_graph_and_by_pillow(exported):
    """Before: the graph checked the GIF's screen (64 x 64) and then decoded a second frame
    that declared 20000 x 20000. Now the SavedModel itself and ``decode_rgb`` refuse it."""
    from affect_tf.data.images import ImageDecodeError, decode_rgb

    bomb = gif_bomb((20000, 20000))
    signature = tf.saved_model.load(str(exported["version"])).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 100000000 pixels"):
        signature(image=tf.constant([bomb]))
    with pytest.raises(ImageDecodeError, match="20000x20000") as error:
        decode_rgb(bomb)
    assert error.value.reason == "image_too_large"
    assert decode_rgb(_animated(3, (40, 30))).rgb.shape == (30, 40, 3)  # first frame
