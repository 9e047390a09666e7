import numpy as np
import pytest
import tensorflow as tf

from affect_tf.data import examples as ex
from affect_tf.data.examples import FaceRecord, LabelError
from tests.conftest import jpeg_bytes


def make_record(**overrides) -> FaceRecord:
    fields = dict(
        image=jpeg_bytes(),
        bbox=(1.0, 2.0, 20.0, 24.0),
        landmarks=np.arange(10, dtype=np.float32).reshape(5, 2),
        valence=-0.25,
        arousal=0.5,
        va_mask=1,
        expression=6,
        expr_mask=1,
        au=[1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0],
        au_mask=[1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1],
        video_id="vid-7",
        frame=42,
        source="unit",
    )
    fields.update(overrides)
    return FaceRecord(**fields)


def test_feature_spec_has_every_contract_key():
    assert set(ex.FEATURE_SPEC) == {
        "image",
        "bbox",
        "landmarks",
        "valence",
        "arousal",
        "va_mask",
        "expression",
        "expr_mask",
        "expression_dist",
        "au",
        "au_mask",
        "video_id",
        "frame",
        "source",
    }
    assert ex.OPTIONAL_KEYS == ("expression_dist",)
    assert ex.FEATURE_SPEC["expression_dist"].shape == [8]
    assert ex.FEATURE_SPEC["au"].shape == [12]
    assert ex.FEATURE_SPEC["landmarks"].shape == [10]


def test_round_trip_python():
    record = make_record()
    back = ex.decode_example(ex.serialize_example(record))
    assert back.image == record.image
    np.testing.assert_allclose(back.bbox, record.bbox)
    np.testing.assert_allclose(back.landmarks, record.landmarks)
    assert (back.valence, back.arousal, back.va_mask) == (-0.25, 0.5, 1)
    assert (back.expression, back.expr_mask) == (6, 1)
    # A label under a zero mask is written as 0.
    assert back.au == [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0]
    assert back.au_mask == list(record.au_mask)
    assert (back.video_id, back.frame, back.source) == ("vid-7", 42, "unit")


def test_masked_labels_are_zeroed():
    record = make_record(va_mask=0, expr_mask=0, au=[1] * 12, au_mask=[0] * 12, valence=0.9)
    back = ex.decode_example(ex.serialize_example(record))
    assert (back.valence, back.arousal, back.expression) == (0.0, 0.0, 0)
    assert back.au == [0] * 12


def test_parse_in_tf_data_and_batch():
    records = [make_record(frame=i, expression=i % 8) for i in range(3)]
    data = [ex.serialize_example(r) for r in records]
    ds = tf.data.Dataset.from_tensor_slices(data).map(ex.parse_example).batch(3)
    batch = next(iter(ds))
    assert batch["au"].shape == (3, 12) and batch["au"].dtype == tf.int64
    assert batch["landmarks"].shape == (3, 10)
    assert batch["frame"].numpy().tolist() == [0, 1, 2]
    assert batch["expression"].numpy().tolist() == [0, 1, 2]
    parsed = ex.parse_examples(tf.constant(data))
    np.testing.assert_allclose(parsed["valence"].numpy(), [-0.25] * 3)
    assert tf.io.decode_jpeg(parsed["image"][0]).shape == (32, 32, 3)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"valence": 1.5}, "valence"),
        ({"arousal": float("nan")}, "arousal"),
        ({"expression": 8}, "expression"),
        ({"au": [2] + [0] * 11}, "au"),
        ({"au_mask": [1] * 11}, "au_mask"),
        ({"bbox": (0, 0, 0, 10)}, "bbox"),
        ({"landmarks": np.zeros(8)}, "landmarks"),
        ({"va_mask": 2}, "va_mask"),
        ({"image": b""}, "image"),
    ],
)
def test_encode_rejects_out_of_range_labels(overrides, field):
    with pytest.raises(LabelError, match=field):
        ex.encode_example(make_record(**overrides))


def test_out_of_range_value_is_fine_when_masked():
    record = make_record(valence=7.0, va_mask=0, expression=99, expr_mask=0)
    decoded = ex.decode_example(ex.serialize_example(record))
    # Masked fields are written as 0, so no consumer can read the unlabelled value.
    assert decoded.va_mask == 0 and decoded.expr_mask == 0
    assert decoded.valence == 0.0 and decoded.arousal == 0.0 and decoded.expression == 0


def test_read_tfrecord_gzip(tmp_path):
    path = tmp_path / "x.tfrecord.gz"
    with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
        for i in range(4):
            w.write(ex.serialize_example(make_record(frame=i)))
    assert [r.frame for r in ex.read_tfrecord(path)] == [0, 1, 2, 3]


def test_soft_labels_round_trip_and_files_without_them_still_parse():
    """The vote distribution is normalised, travels through the tf.Example and back; an
    example written before the field existed parses to zeros (no distribution)."""
    record = make_record(expression=4, expression_dist=[1, 0, 0, 0, 7, 0, 2, 0])
    back = ex.decode_example(ex.serialize_example(record))
    np.testing.assert_allclose(back.expression_dist, [0.1, 0, 0, 0, 0.7, 0, 0.2, 0], atol=1e-7)
    assert ex.decode_example(ex.serialize_example(make_record())).expression_dist is None
    old = ex.encode_example(make_record())
    del old.features.feature["expression_dist"]  # what older versions wrote
    parsed = ex.parse_example(tf.constant(old.SerializeToString()))
    assert parsed["expression_dist"].numpy().tolist() == [0.0] * 8
    assert ex.decode_example(old.SerializeToString()).expression_dist is None
    for bad, match in (
        ([1, 2, 3], "8 non-negative"),
        ([0] * 8, "positive sum"),
        ([-1, 1, 0, 0, 0, 0, 0, 1], "8 non-negative"),
        ([float("nan")] + [1] * 7, "8 non-negative"),
    ):
        with pytest.raises(LabelError, match=match):
            make_record(expression_dist=bad).validate()
    with pytest.raises(LabelError, match="expr_mask=0"):
        make_record(expr_mask=0, expression_dist=[1] * 8).validate()
