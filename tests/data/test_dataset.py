import numpy as np
import pytest
import tensorflow as tf

from affect_tf.data import SkipReport, read_corpus
from affect_tf.data import examples as ex
from affect_tf.data.convert import convert
from affect_tf.data.dataset import make_dataset, measure_priors, resolve_files
from affect_tf.data.preprocess import preprocess_face
from affect_tf.data.synth import SynthConfig, write_corpus


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_corpus(
        SynthConfig(n=80, size=64, frames_per_video=4, seed=9),
        root / "c",
        workers=1,
        progress=False,
    )
    report = SkipReport()
    convert(
        read_corpus("manifest", root / "c", report=report),
        root / "x.tfrecord.gz",
        report,
        progress=False,
    )
    return root / "x.tfrecord.gz"


def test_preprocess_same_eagerly_and_in_tf_data(records):
    files = resolve_files(records)
    ds = make_dataset(files, 40, 0.25, batch_size=4, with_meta=True, cache=False)
    images, targets, meta = next(iter(ds))
    assert images.shape == (4, 40, 40, 3) and images.dtype == tf.float32
    assert set(targets) == {"va", "expression", "au"} and targets["au"].shape == (4, 24)
    first = next(iter(tf.data.TFRecordDataset(files, compression_type="GZIP")))
    f = ex.parse_example(first)
    eager = preprocess_face(f["image"], f["landmarks"], f["bbox"], 40, 0.25)
    np.testing.assert_allclose(eager.numpy(), images[0].numpy(), atol=1e-3)
    assert meta["video_id"][0].numpy() == f["video_id"].numpy()
    assert float(tf.reduce_max(images)) <= 255.0 and float(tf.reduce_min(images)) >= 0.0


def test_split_is_by_video_and_complete(records):
    files = resolve_files(records)

    def videos(split):
        ds = make_dataset(
            files,
            32,
            0.25,
            batch_size=16,
            split=split,
            eval_percent=30,
            with_meta=True,
            cache=False,
        )
        return [v.decode() for _, _, m in ds for v in m["video_id"].numpy()]

    train, val = videos("train"), videos("eval")
    assert len(train) + len(val) == 80
    assert set(train).isdisjoint(val) and val


def test_training_batches_are_shuffled_and_shaped(records):
    files = resolve_files(records)
    ds = make_dataset(files, 32, 0.25, batch_size=8, training=True, seed=1)
    x, y = next(iter(ds))
    assert x.shape == (8, 32, 32, 3) and y["va"].shape == (8, 3)


def test_priors_hand_checked(tmp_path):
    from tests.data.test_examples import make_record

    path = tmp_path / "p.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for expression, au0 in [(0, 1), (0, 0), (0, 0), (4, 0)]:
            w.write(
                ex.serialize_example(
                    make_record(expression=expression, au=[au0] + [0] * 11, au_mask=[1] * 12)
                )
            )
    priors = measure_priors([str(path)], split=None)
    assert priors.n == 4 and priors.expression_counts[0] == 3 and priors.expression_counts[4] == 1
    # 4 labelled / (2 classes present x count): 4/6 and 4/2; absent classes weigh 1.
    np.testing.assert_allclose(priors.class_weights()[[0, 4, 1]], [4 / 6, 2.0, 1.0])
    assert priors.pos_weights()[0] == pytest.approx(3.0)  # 3 negatives per positive
    assert priors.pos_weights()[1] == 1.0  # never positive
    assert priors.adjacency().shape == (22, 22)


def test_resolve_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing found"):
        resolve_files(tmp_path / "none*.tfrecord")


def test_transformed_dataset_adds_extra_files_whole(records):
    from affect_tf.data.dataset import count_examples, make_transformed_dataset

    def transform_layer(features):  # what the Transform graph computes for the image and labels
        image = tf.map_fn(
            lambda f: preprocess_face(f[0], f[1], f[2], 32, 0.25),
            (features[ex.IMAGE], features[ex.LANDMARKS], features[ex.BBOX]),
            fn_output_signature=tf.float32,
        )
        return {**features, ex.TRANSFORMED_IMAGE: image}

    def total(**kwargs):
        ds = make_transformed_dataset(files, transform_layer, ex.FEATURE_SPEC, 8, **kwargs)
        return sum(int(x.shape[0]) for x, _ in ds)

    files = [str(records)]
    n_train = count_examples(files, "train")
    assert total(split="train") == n_train
    # Extra files (generated faces) are used whole, on top of the split.
    assert total(split="train", extra_files=files) == n_train + count_examples(files)
