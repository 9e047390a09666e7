"""The TFX Transform ``preprocessing_fn`` and the raw-data schema FaceExampleGen's output obeys.

``preprocessing_fn`` is pure TF: decode -> similarity transform from the 5 landmarks onto the
template (``affect_tf.face.align``) -> crop/resize to the preset's size -> float32 RGB in
[0, 255] (each backbone normalises inside the model, so Keras, TF Serving and TFLite users all
feed pixels). Labels, masks and grouping keys pass through. TFT analyzers sum the training
split's label statistics -- class frequencies, AU positive rates, the label-correlation
sufficient statistics of the GCN adjacency -- into one ``label_priors`` vector
(``affect_tf.data.dataset.LabelPriors.to_vector`` layout), which the Trainer reads back.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_transform as tft

from affect_tf.core.labels import NUM_AUS, NUM_EXPRESSIONS, VA_RANGE
from affect_tf.data import examples as ex
from affect_tf.data.dataset import LabelPriors
from affect_tf.data.label_graph import label_vectors, pair_stats
from affect_tf.data.preprocess import FaceAligner

PASSTHROUGH = (*ex.LABEL_KEYS, ex.VIDEO_ID, ex.FRAME, ex.SOURCE)


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """Raw tf.Example features (a batch) -> aligned faces, labels and ``label_priors``.

    Args:
        inputs: Dense raw features (``affect_tf.data.examples.FEATURE_SPEC``); at serving time
            only ``image``, ``landmarks`` and ``bbox``.
        custom_config: ``{"image_size": int, "margin": float}`` from the preset.
    """
    size = int(custom_config["image_size"])
    margin = float(custom_config["margin"])
    # The model's preprocessing layer, the same one the SavedModel's raw-input signatures run.
    aligner = FaceAligner(size, margin, name="face_aligner")
    outputs = {ex.TRANSFORMED_IMAGE: aligner(FaceAligner.inputs_of(inputs))}
    for key in PASSTHROUGH:
        if key in inputs:
            outputs[key] = inputs[key]
    if all(key in inputs for key in ex.LABEL_KEYS):
        priors = _label_priors(inputs)
        outputs[ex.LABEL_PRIORS] = tf.broadcast_to(
            priors[tf.newaxis],
            [tf.shape(outputs[ex.TRANSFORMED_IMAGE])[0], LabelPriors.vector_size()],
        )
    return outputs


def _label_priors(inputs: dict) -> tf.Tensor:
    """The training split's ``LabelPriors`` vector, computed by TFT analyzers."""
    f32 = tf.float32
    expression = tf.reshape(inputs[ex.EXPRESSION], [-1])
    expr_mask = tf.cast(tf.reshape(inputs[ex.EXPR_MASK], [-1]), f32)
    va_mask = tf.cast(tf.reshape(inputs[ex.VA_MASK], [-1]), f32)
    au = tf.cast(inputs[ex.AU], f32)
    au_mask = tf.cast(inputs[ex.AU_MASK], f32)
    onehot = tf.one_hot(tf.clip_by_value(expression, 0, NUM_EXPRESSIONS - 1), NUM_EXPRESSIONS)
    values, valid = label_vectors(
        expression,
        expr_mask,
        tf.reshape(inputs[ex.VALENCE], [-1]),
        tf.reshape(inputs[ex.AROUSAL], [-1]),
        va_mask,
        au,
        au_mask,
        xp=tf,
    )

    def total(x: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tft.sum(x, reduce_instance_dims=False), [-1])

    parts = [
        total(tf.ones_like(expr_mask)[:, None]),
        total(onehot * expr_mask[:, None]),
        total(au * au_mask),
        total(au_mask),
        total(va_mask[:, None]),
        total(pair_stats(values, valid, xp=tf, per_example=True)),
    ]
    return tf.concat([tf.cast(p, f32) for p in parts], axis=0)


def raw_schema():
    """The tf.Example contract as a TFDV schema: types, shapes, and the value domains that
    ExampleValidator checks (VA in [-1, 1], expression in 0-7, masks and AUs in {0, 1})."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tensorflow_transform.tf_metadata import schema_utils

    # FaceExampleGen writes every feature, so the schema requires each one (TFT's schema has no
    # FixedLenFeature defaults; the library's parser keeps them for files from older versions).
    spec = {k: tf.io.FixedLenFeature(v.shape, v.dtype) for k, v in ex.FEATURE_SPEC.items()}
    schema = schema_utils.schema_from_feature_spec(spec)
    features = {f.name: f for f in schema.feature}
    features[ex.EXPRESSION_DIST].float_domain.CopyFrom(schema_pb2.FloatDomain(min=0.0, max=1.0))
    for key in (ex.VALENCE, ex.AROUSAL):
        features[key].float_domain.CopyFrom(
            schema_pb2.FloatDomain(min=VA_RANGE[0], max=VA_RANGE[1])
        )
    features[ex.EXPRESSION].int_domain.CopyFrom(
        schema_pb2.IntDomain(min=0, max=NUM_EXPRESSIONS - 1)
    )
    for key in (ex.VA_MASK, ex.EXPR_MASK, ex.AU, ex.AU_MASK):
        features[key].int_domain.CopyFrom(schema_pb2.IntDomain(min=0, max=1, is_categorical=True))
    features[ex.FRAME].int_domain.CopyFrom(schema_pb2.IntDomain(min=0))
    for feature in schema.feature:
        # Every example carries every feature (masks say which labels are real).
        feature.presence.min_fraction = 1.0
    assert len(features[ex.AU].shape.dim) == 1 and features[ex.AU].shape.dim[0].size == NUM_AUS
    return schema


def write_raw_schema(folder: str | Path) -> Path:
    """Writes ``schema.pbtxt`` (only when its content changed, so TFX caching still hits)."""
    from google.protobuf import text_format

    path = Path(folder) / "schema.pbtxt"
    text = text_format.MessageToString(raw_schema())
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path
