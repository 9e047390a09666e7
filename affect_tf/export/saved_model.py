"""SavedModel export: the Transform graph and the Keras 3 model behind serving signatures.

Signatures (outputs are ``affect_tf.data.targets.SERVING_OUTPUTS``: ``expression`` (N, 8) and ``au``
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
exactly what training saw. A model trained outside TFX (``affect-tf train``) is exported with
``FacePreprocessor`` in its place: the same ``affect_tf.data.preprocess.FaceAligner`` the
Transform graph calls, without the label analyzers serving never needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf

from affect_tf.core.layout import (
    AU_THRESHOLDS_FILE,
    KERAS_FILE,
    SERVING_ALIGNED,
    SERVING_DEFAULT,
    SERVING_EXAMPLES,
    SERVING_LANDMARKS,
    WARMUP_FILE,
    latest_version,
    next_version,
)
from affect_tf.data import examples as ex
from affect_tf.data import targets as tg
from affect_tf.data.preprocess import FaceAligner
from affect_tf.face.align import landmarks_from_box
from affect_tf.model.affect_model import activate, inference_copy


class FacePreprocessor(tf.Module):
    """The Transform graph's image part as a module: raw ``image``/``landmarks``/``bbox`` ->
    ``{"image": aligned faces}``; stands in for the TFT layer of a model trained without TFX."""

    def __init__(self, image_size: int, margin: float) -> None:
        super().__init__(name="face_preprocessor")
        self.image_size = int(image_size)
        self.margin = float(margin)
        self.aligner = FaceAligner(self.image_size, self.margin, name="face_aligner")

    def __call__(self, raw: dict) -> dict:
        faces = self.aligner(FaceAligner.inputs_of(raw))
        return {ex.TRANSFORMED_IMAGE: faces}


def serving_outputs(outputs: dict) -> dict[str, tf.Tensor]:
    """Model outputs (logits, tanh VA) -> the named serving outputs (float32), through the
    model's one activation step (``affect_model.activate``)."""
    active = activate(outputs)
    return {
        tg.EXPRESSION_PROBS: active[tg.EXPRESSION],
        tg.AU_PROBS: active[tg.AU],
        tg.VALENCE: active[tg.VA][:, 0],
        tg.AROUSAL: active[tg.VA][:, 1],
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
        return run(ex.parse_examples(examples, spec=raw_feature_spec))

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
    model: keras.Model,
    tft_layer=None,
    raw_feature_spec: dict | None = None,
    export_dir: str | Path = "",
) -> Path:
    """Writes the SavedModel (TF Serving / TFMA / TFLite source) and the ``.keras`` file
    (``<export_dir>/assets.extra/affect_model.keras``, for ``model.predict`` users).

    Args:
        model: A trained ``AffectModel``.
        tft_layer: The TFT ``TransformFeaturesLayer``; None -> ``FacePreprocessor`` with the
            model's image size and margin.
        raw_feature_spec: The raw tf.Example spec ``serving_examples`` parses; None -> the
            corpus contract ``affect_tf.data.examples.FEATURE_SPEC``.
        export_dir: The version folder to write (TF Serving: ``<base>/<version>``).
    """
    if not str(export_dir):
        raise ValueError("Expected an export directory. Received: export_dir=''")
    if tft_layer is None:
        tft_layer = FacePreprocessor(model.affect_config.image_size, model.affect_config.margin)
    if raw_feature_spec is None:
        raw_feature_spec = ex.FEATURE_SPEC
    export_dir = Path(export_dir)
    # A weights-only copy without the augmentation block: the trained model also tracks its
    # optimizer (two AdamW slots per weight), which would triple both files and serves no one;
    # and Keras' random layers draw from a seed generator even when not training, which the
    # SavedModel cannot save (every augmenting preset failed to export: mobile, full).
    model = inference_copy(model)
    keras_path = export_dir / KERAS_FILE
    keras_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(keras_path)
    # Tracked as an attribute, the Transform layer's graph and assets are saved with the model.
    model.tft_layer = tft_layer
    signatures = make_signatures(model, tft_layer, raw_feature_spec)
    tf.saved_model.save(model, str(export_dir), signatures=signatures)
    write_warmup_requests(export_dir / WARMUP_FILE, model.affect_config.image_size)
    if getattr(model, "au_thresholds", None) is not None:
        # Tuned on the validation data by ``training.fit.fit``: for clients that binarise the
        # served AU probabilities (the .keras file carries them too).
        from affect_tf.core.labels import AUS

        (export_dir / AU_THRESHOLDS_FILE).write_text(
            json.dumps(dict(zip(AUS, model.au_thresholds, strict=True)), indent=2)
        )
    return export_dir


def write_warmup_requests(path: Path, image_size: int) -> Path:
    """One ``PredictionLog`` per image signature (a grey 64x64 JPEG, its landmarks, an aligned
    face): TF Serving's ``assets.extra/tf_serving_warmup_requests``."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    jpeg = tf.io.encode_jpeg(tf.fill([64, 64, 3], tf.constant(128, tf.uint8))).numpy()
    box = tf.constant([[0.0, 0.0, 64.0, 64.0]])
    landmarks = tf.reshape(landmarks_from_box(box), [1, 2 * ex.NUM_LANDMARKS]).numpy()
    requests = {
        SERVING_DEFAULT: {"image": tf.make_tensor_proto([jpeg])},
        SERVING_LANDMARKS: {
            "image": tf.make_tensor_proto([jpeg]),
            "landmarks": tf.make_tensor_proto(landmarks),
        },
        SERVING_ALIGNED: {
            "image": tf.make_tensor_proto(tf.fill([1, image_size, image_size, 3], 128.0).numpy())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for key, proto in inputs.items():
                request.inputs[key].CopyFrom(proto)
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def default_serving_base(cache_root: str | Path | None = None) -> Path:
    """A TF Serving base folder holding the shipped model (``affect_tf.model.default``).

    Exported once per shipped file (its digest names the folder) under ``cache_root``
    (default ``$XDG_CACHE_HOME/affect-tf`` or ``~/.cache/affect-tf``), then reused; an export
    cut short leaves no version that looks complete (``numeric_versions`` skips it).

    Raises:
        DefaultModelError: The shipped file is missing or damaged.
    """
    import os

    from affect_tf.model.default import default_model_path, read_card
    from affect_tf.model.loading import load_model

    path = default_model_path()
    if cache_root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache_root = Path(xdg) / "affect-tf"
    base = Path(cache_root) / f"shipped-{read_card()['sha256'][:12]}"
    if latest_version(base) is None:
        export_saved_model(load_model(path, compile=False), export_dir=next_version(base))
    return base
