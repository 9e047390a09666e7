"""Image preprocessing in pure TF ops: encoded image + landmarks -> aligned model input.

The same function serves ``tf.data`` training pipelines, the TFX Transform graph and serving
signatures, so a face is prepared identically everywhere (no training/serving skew). The output
is float32 RGB in [0, 255]; each backbone normalises internally. ``FaceAligner`` is the same step
as a Keras preprocessing layer (keras-hub's preprocessor idea): the Transform graph and the
SavedModel's raw-input signatures run it, and a ``.keras`` model built with it in front
(``with_aligner``) takes encoded images and landmarks itself.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from affect_tf.data.examples import BBOX, IMAGE, LANDMARKS, NUM_LANDMARKS
from affect_tf.data.images import MAX_IMAGE_PIXELS
from affect_tf.face.align import align_face


def _uint(data: tf.Tensor, start: int, width: int, big_endian: bool) -> tf.Tensor:
    """An unsigned integer of ``width`` bytes at ``start`` of a byte string (0 if too short)."""
    raw = tf.io.decode_raw(tf.strings.substr(data, start, width), tf.uint8)
    weights = [256**i for i in range(width)]
    weights = tf.constant(weights[::-1] if big_endian else weights, tf.int64)
    return tf.cond(
        tf.shape(raw)[0] == width,
        lambda: tf.reduce_sum(tf.cast(raw, tf.int64) * weights),
        lambda: tf.constant(0, tf.int64),
    )


def _gif_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
    """Every frame of a GIF, each at least its logical screen, summed: TensorFlow's GIF decoder
    reads all frames into memory even with ``expand_animations=False``. A walk over the blocks
    (extensions, image descriptors, their length-prefixed sub-blocks), as
    ``affect_tf.data.images.gif_frames`` does in Python."""
    data = tf.cast(tf.io.decode_raw(image_bytes, tf.uint8), tf.int64)
    n = tf.size(data, out_type=tf.int64)

    def at(i):
        return tf.gather(data, tf.clip_by_value(tf.cast(i, tf.int64), 0, n - 1))

    def u16(i):
        return at(i) + 256 * at(i + 1)

    def table(packed):  # a colour table follows when bit 7 is set: 3 * 2^(size + 1) bytes
        size = tf.bitwise.left_shift(tf.constant(6, tf.int64), tf.bitwise.bitwise_and(packed, 7))
        return tf.where(tf.bitwise.bitwise_and(packed, 0x80) > 0, size, tf.constant(0, tf.int64))

    screen = u16(6) * u16(8)
    zero = tf.constant(0, tf.int64)

    def body(pos, in_blocks, total, frames):
        byte = at(pos)

        def sub_block():  # a data sub-block: its length, then that many bytes; 0 ends them
            return pos + byte + 1, byte != 0, total, frames

        def block():
            is_ext, is_image = byte == 0x21, byte == 0x2C
            after_image = pos + 10 + table(at(pos + 9)) + 1  # descriptor, table, LZW size
            stop = n  # the trailer, or bytes no decoder reads further
            nxt = tf.where(is_ext, pos + 2, tf.where(is_image, after_image, stop))
            pixels = tf.where(is_image, tf.maximum(u16(pos + 5) * u16(pos + 7), screen), zero)
            return nxt, is_ext | is_image, total + pixels, frames + tf.cast(is_image, tf.int64)

        return tf.cond(in_blocks, sub_block, block)

    start = 13 + table(at(10))
    _, _, total, frames = tf.while_loop(
        lambda pos, *_: pos < n, body, (start, tf.constant(False), zero, zero)
    )
    return tf.where(frames > 0, total, screen)


def header_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
    """The pixels decoding touches, from JPEG/PNG/GIF/BMP headers without decoding (0 when
    unknown: the decoder then reports the bytes); a GIF counts every frame, as
    ``affect_tf.data.images.decode_pixels`` does. Pure TF, so the serving graph guards itself."""
    head = tf.strings.substr(image_bytes, 0, 8)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0] * shape[1]

    def png():
        return _uint(image_bytes, 16, 4, True) * _uint(image_bytes, 20, 4, True)

    def gif():
        return _gif_pixels(image_bytes)

    def bmp():  # height may be negative (top-down rows): take its magnitude
        height = _uint(image_bytes, 22, 4, False)
        height = tf.where(height >= 2**31, 2**32 - height, height)
        return _uint(image_bytes, 18, 4, False) * height

    return tf.case(
        [
            (tf.strings.substr(head, 0, 3) == b"\xff\xd8\xff", jpeg),
            (head == b"\x89PNG\r\n\x1a\n", png),
            (tf.strings.substr(head, 0, 3) == b"GIF", gif),
            (tf.strings.substr(head, 0, 2) == b"BM", bmp),
        ],
        default=lambda: tf.constant(0, tf.int64),
    )


def decode_image(image_bytes: tf.Tensor, max_pixels: int = MAX_IMAGE_PIXELS) -> tf.Tensor:
    """Decodes JPEG/PNG/BMP/GIF bytes to ``(H, W, 3)`` uint8 (first frame of an animation).

    Images over ``max_pixels`` (``affect_tf.data.images.MAX_IMAGE_PIXELS``, from the header)
    fail with InvalidArgumentError before any pixel is decoded: an image bomb sent to a real TF
    Serving never reaches memory.
    """
    check = tf.debugging.assert_less_equal(
        header_pixels(image_bytes),
        tf.constant(max_pixels, tf.int64),
        message=f"Expected an image of at most {max_pixels} pixels (affect-tf's limit)",
    )
    with tf.control_dependencies([check]):
        # JPEG with the accurate integer DCT, as Pillow (local inference, conversion) decodes
        # it: TensorFlow's default fast DCT differs from it by up to 27 levels on 60 % of the
        # pixels of a q100 photo, which made `predict` and the serving graph see other faces.
        return tf.cond(
            tf.io.is_jpeg(image_bytes),
            lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(image_bytes, channels=3, expand_animations=False),
        )


def preprocess_face(
    image_bytes: tf.Tensor,
    landmarks: tf.Tensor,
    bbox: tf.Tensor | None,
    size: int,
    margin: float,
) -> tf.Tensor:
    """Decodes, aligns on the 5 landmarks (box fallback) and crops to ``(size, size, 3)``.

    Args:
        image_bytes: Scalar string tensor, the encoded frame.
        landmarks: ``(10,)`` landmarks in pixels (all zero -> the box is used).
        bbox: ``(4,)`` face box, or None; all zero -> the whole image is the face box (a
            client that sends an already cropped face gives neither box nor landmarks).
        size: Output side.
        margin: Alignment margin (see ``affect_tf.face.align.template_points``).

    Returns:
        float32 ``(size, size, 3)`` in [0, 255].
    """
    image = decode_image(image_bytes)
    if bbox is not None:
        bbox = tf.cast(bbox, tf.float32)
        height_width = tf.cast(tf.shape(image)[:2], tf.float32)
        whole = tf.stack([0.0, 0.0, height_width[1], height_width[0]])
        bbox = tf.where(tf.reduce_all(tf.equal(bbox, 0.0)), whole, bbox)
    face = align_face(image, landmarks, size=size, margin=margin, bbox=bbox)
    face = tf.clip_by_value(face, 0.0, 255.0)
    return tf.ensure_shape(face, [size, size, 3])


def preprocess_batch(
    image_bytes: tf.Tensor,
    landmarks: tf.Tensor,
    bbox: tf.Tensor,
    size: int,
    margin: float,
) -> tf.Tensor:
    """Batched ``preprocess_face``: ``(N,)`` bytes, ``(N, 10)`` landmarks, ``(N, 4)`` boxes ->
    ``(N, size, size, 3)``; the one definition the Transform graph and serving signatures use."""
    return tf.map_fn(
        lambda x: preprocess_face(x[0], x[1], x[2], size, margin),
        (
            tf.reshape(image_bytes, [-1]),
            tf.reshape(tf.cast(landmarks, tf.float32), [-1, 2 * NUM_LANDMARKS]),
            tf.reshape(tf.cast(bbox, tf.float32), [-1, 4]),
        ),
        fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
    )


def preprocess_array(image, landmarks, size: int, margin: float) -> tf.Tensor:
    """Aligns an already decoded RGB image (e.g. from OpenCV / PIL) the same way."""
    face = align_face(tf.convert_to_tensor(image), landmarks, size=size, margin=margin)
    return tf.clip_by_value(face, 0.0, 255.0)


@keras.saving.register_keras_serializable(package="affect_tf")
class FaceAligner(keras.layers.Layer):
    """Encoded frames, 5 landmarks and face boxes -> aligned faces (``preprocess_batch``).

    Inputs: a dict with ``image`` ``(B,)`` encoded JPEG/PNG bytes, ``landmarks`` ``(B, 10)``
    (all zero: the box is used) and ``bbox`` ``(B, 4)`` (all zero: the whole frame). Output:
    ``(B, image_size, image_size, 3)`` float32 in [0, 255]. No weights; not trainable.

    Args:
        image_size: Output side (the model's input size).
        margin: Alignment margin (``affect_tf.face.align.template_points``); the model's
            ``AffectConfig.margin``.
    """

    def __init__(self, image_size: int, margin: float, **kwargs) -> None:
        kwargs["trainable"] = False  # no weights; a saved config says False too
        super().__init__(**kwargs)
        if int(image_size) < 1 or not 0.0 <= float(margin) < 2.0:
            raise ValueError(
                "Expected image_size >= 1 and margin in [0, 2). Received: "
                f"image_size={image_size}, margin={margin}"
            )
        self.image_size = int(image_size)
        self.margin = float(margin)

    @staticmethod
    def inputs_of(features: dict) -> dict:
        """The layer's three inputs picked out of a dict of parsed features (the Transform
        graph's and the serving signatures' carry labels and more besides)."""
        return {key: features[key] for key in (IMAGE, LANDMARKS, BBOX)}

    def call(self, inputs: dict) -> tf.Tensor:
        return preprocess_batch(
            inputs[IMAGE], inputs[LANDMARKS], inputs[BBOX], self.image_size, self.margin
        )

    def compute_output_shape(self, input_shape: dict) -> tuple:
        return (input_shape[IMAGE][0], self.image_size, self.image_size, 3)

    def compute_output_spec(self, inputs: dict) -> keras.KerasTensor:
        batch = inputs[IMAGE].shape[0]
        return keras.KerasTensor((batch, self.image_size, self.image_size, 3), "float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "image_size": self.image_size, "margin": self.margin}


def raw_inputs() -> dict[str, keras.KerasTensor]:
    """Keras inputs of ``FaceAligner``: encoded ``image``, ``landmarks``, ``bbox``."""
    return {
        IMAGE: keras.Input(shape=(), dtype="string", name=IMAGE),
        LANDMARKS: keras.Input(shape=(2 * NUM_LANDMARKS,), dtype="float32", name=LANDMARKS),
        BBOX: keras.Input(shape=(4,), dtype="float32", name=BBOX),
    }


def with_aligner(model: keras.Model, image_size: int, margin: float) -> keras.Model:
    """``model`` with ``FaceAligner`` in front: a Keras model from encoded frames + landmarks to
    the same outputs (saves and loads as ``.keras`` like the model itself)."""
    inputs = raw_inputs()
    faces = FaceAligner(image_size, margin, name="face_aligner")(inputs)
    return keras.Model(inputs, model(faces), name=f"{model.name}_from_frames")
