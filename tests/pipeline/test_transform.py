"""The Transform preprocessing_fn through real tf.Transform (Beam): faces equal the training
preprocessing, and the analyzers' label priors equal LabelPriors measured in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from affect_tf.data import examples as ex
from affect_tf.data.dataset import LabelPriors, measure_priors
from affect_tf.data.label_graph import label_vectors, pair_stats
from affect_tf.data.preprocess import preprocess_face
from affect_tf.data.synth import SynthConfig, video_records
from affect_tf.pipeline.transform import preprocessing_fn, raw_schema, write_raw_schema


@pytest.fixture(scope="module")
def raw_records():
    config = SynthConfig(n=24, size=64, frames_per_video=4, seed=5)
    return [r for video in range(config.num_videos) for r in video_records(config, video)]


def test_tf_pair_stats_and_label_vectors_equal_numpy(raw_records):
    f = {k: np.stack([np.asarray(getattr(r, k)) for r in raw_records]) for k in ex.LABEL_KEYS}
    args = [f[k] for k in (ex.EXPRESSION, ex.EXPR_MASK, ex.VALENCE, ex.AROUSAL, ex.VA_MASK)]
    values, valid = label_vectors(*args, f[ex.AU], f[ex.AU_MASK])
    tvalues, tvalid = label_vectors(*args, f[ex.AU], f[ex.AU_MASK], xp=tf)
    np.testing.assert_allclose(tvalues.numpy(), values, atol=1e-6)
    per_example = pair_stats(tvalues, tvalid, xp=tf, per_example=True).numpy()
    assert per_example.shape == (len(raw_records), 6, 22, 22)
    np.testing.assert_allclose(per_example.sum(0), pair_stats(values, valid), rtol=1e-5, atol=1e-4)


def test_label_priors_vector_round_trip():
    rng = np.random.default_rng(0)
    priors = LabelPriors(
        n=7,
        expression_counts=rng.integers(0, 5, 8).astype(float),
        au_positive=rng.integers(0, 3, 12).astype(float),
        au_labelled=rng.integers(3, 6, 12).astype(float),
        va_labelled=4,
        pair_stats=rng.normal(size=(6, 22, 22)),
    )
    back = LabelPriors.from_vector(priors.to_vector())
    assert back.n == 7 and back.va_labelled == 4
    np.testing.assert_array_equal(back.pair_stats, priors.pair_stats)
    np.testing.assert_array_equal(back.class_weights(), priors.class_weights())
    with pytest.raises(ValueError, match="label priors of length"):
        LabelPriors.from_vector(np.zeros(3))


def test_preprocessing_fn_with_tft_beam(raw_records, tmp_path):
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata

    raw = [ex.parse_example(ex.serialize_example(r)) for r in raw_records]
    instances = [{k: v.numpy() for k, v in f.items()} for f in raw]
    metadata = dataset_metadata.DatasetMetadata(raw_schema())
    with tft_beam.Context(temp_dir=str(tmp_path)):
        (transformed, _), _ = (instances, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {"image_size": 40, "margin": 0.25}),
            output_record_batches=False,
        )
    assert len(transformed) == len(raw_records)
    first = transformed[0]
    assert np.asarray(first[ex.TRANSFORMED_IMAGE]).reshape(40, 40, 3).shape == (40, 40, 3)
    # The same crop as the non-TFX training path (affect_tf.data.preprocess).
    eager = preprocess_face(raw[0][ex.IMAGE], raw[0][ex.LANDMARKS], raw[0][ex.BBOX], 40, 0.25)
    np.testing.assert_allclose(
        np.asarray(first[ex.TRANSFORMED_IMAGE]).reshape(40, 40, 3), eager.numpy(), atol=1e-3
    )
    assert int(first[ex.EXPR_MASK]) == raw_records[0].expr_mask
    # The analyzers' priors equal LabelPriors over the same examples (NumPy path).
    path = tmp_path / "x.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for r in raw_records:
            writer.write(ex.serialize_example(r))
    expected = measure_priors([str(path)], split=None)
    got = LabelPriors.from_vector(first[ex.LABEL_PRIORS])
    assert got.n == expected.n == len(raw_records)
    np.testing.assert_allclose(got.expression_counts, expected.expression_counts)
    np.testing.assert_allclose(got.au_positive, expected.au_positive)
    np.testing.assert_allclose(got.pos_weights(), expected.pos_weights(), rtol=1e-6)
    np.testing.assert_allclose(got.adjacency(), expected.adjacency(), atol=1e-6)


def test_raw_schema_has_label_domains(tmp_path):
    schema = raw_schema()
    features = {f.name: f for f in schema.feature}
    assert features[ex.VALENCE].float_domain.min == -1.0
    assert features[ex.EXPRESSION].int_domain.max == 7
    path = write_raw_schema(tmp_path)
    mtime = path.stat().st_mtime_ns
    write_raw_schema(tmp_path)  # unchanged content: not rewritten (TFX caching fingerprints)
    assert path.stat().st_mtime_ns == mtime
