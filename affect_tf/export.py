"""SavedModel export: the Transform graph and the Keras 3 model behind serving signatures.

Signatures (outputs are ``affect_tf.targets.SERVING_OUTPUTS``: ``expression`` (N, 8) and ``au``
(N, 12) probabilities, ``valence`` and ``arousal`` (N,)):

- ``serving_default``: ``image`` (N,) encoded JPEG/PNG bytes of face crops -> outputs. The
  whole image is taken as the face box (TF Serving clients send crops).
- ``serving_landmarks``: ``image`` (N,) bytes of whole frames + ``landmarks`` (N, 10) pixel
  x, y of the 5 points -> outputs (the same alignment as training).
- ``serving_examples``: ``examples`` (N,) serialized tf.Examples (the corpus contract) ->
  outputs; TFMA evaluates through it.
- ``serving_aligned``: ``image`` (N, S, S, 3) float32 aligned faces in [0, 255] -> outputs;
  what the TFLite files are converted from (phones align on their own).

The Transform layer (decode, align, resize) runs inside the first three, so serving computes
exactly what training saw.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from affect_tf import targets as tg
from affect_tf.data import examples as ex

SERVING_DEFAULT = "serving_default"
SERVING_LANDMARKS = "serving_landmarks"
SERVING_EXAMPLES = "serving_examples"
SERVING_ALIGNED = "serving_aligned"
SIGNATURES = (SERVING_DEFAULT, SERVING_LANDMARKS, SERVING_EXAMPLES, SERVING_ALIGNED)
KERAS_FILE = "assets.extra/affect_model.keras"


def serving_outputs(outputs: dict) -> dict[str, tf.Tensor]:
    """Model outputs (logits, tanh VA) -> the named serving outputs (float32)."""
    va = tf.cast(outputs[tg.VA], tf.float32)
    return {
        tg.EXPRESSION_PROBS: tf.nn.softmax(tf.cast(outputs[tg.EXPRESSION], tf.float32), axis=-1),
        tg.AU_PROBS: tf.sigmoid(tf.cast(outputs[tg.AU], tf.float32)),
        tg.VALENCE: va[:, 0],
        tg.AROUSAL: va[:, 1],
    }


def make_signatures(model: keras.Model, tft_layer, raw_feature_spec: dict) -> dict:
    """The four serving functions of ``model`` with ``tft_layer`` (a TFT
    ``TransformFeaturesLayer``) in front."""
    size = model.affect_config.image_size

    def run(raw: dict) -> dict:
        transformed = tft_layer(raw)
        return serving_outputs(model(transformed[ex.TRANSFORMED_IMAGE], training=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
    def serve_images(image):
        n = tf.shape(image)[0]
        raw = {
            ex.IMAGE: image,
            ex.LANDMARKS: tf.zeros([n, 2 * ex.NUM_LANDMARKS], tf.float32),
            ex.BBOX: tf.zeros([n, 4], tf.float32),
        }
        return run(raw)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="image"),
            tf.TensorSpec([None, 2 * ex.NUM_LANDMARKS], tf.float32, name="landmarks"),
        ]
    )
    def serve_landmarks(image, landmarks):
        n = tf.shape(image)[0]
        raw = {ex.IMAGE: image, ex.LANDMARKS: landmarks, ex.BBOX: tf.zeros([n, 4], tf.float32)}
        return run(raw)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples):
        return run(tf.io.parse_example(examples, raw_feature_spec))

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="image")])
    def serve_aligned(image):
        return serving_outputs(model(image, training=False))

    return {
        SERVING_DEFAULT: serve_images,
        SERVING_LANDMARKS: serve_landmarks,
        SERVING_EXAMPLES: serve_examples,
        SERVING_ALIGNED: serve_aligned,
    }


def export_saved_model(
    model: keras.Model, tft_layer, raw_feature_spec: dict, export_dir: str | Path
) -> Path:
    """Writes the SavedModel (TF Serving / TFMA / TFLite source) and the ``.keras`` file
    (``<export_dir>/assets.extra/affect_model.keras``, for ``model.predict`` users)."""
    trained_weights = model.get_weights()
    export_dir = Path(export_dir)
    # A weights-only copy: the trained model also tracks its optimizer (two AdamW slots per
    # weight), which would triple both files and serves no one.
    model = model.__class__.from_config(model.get_config())
    model.set_weights(trained_weights)
    keras_path = export_dir / KERAS_FILE
    keras_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(keras_path)
    # Tracked as an attribute, the Transform layer's graph and assets are saved with the model.
    model.tft_layer = tft_layer
    signatures = make_signatures(model, tft_layer, raw_feature_spec)
    tf.saved_model.save(model, str(export_dir), signatures=signatures)
    return export_dir
