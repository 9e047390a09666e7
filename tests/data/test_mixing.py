"""Several corpora in one run: ``--data PATH:WEIGHT`` parsing, draws by weight, masks, contracts."""

import numpy as np
import pytest
import tensorflow as tf

from affect_tf.data import examples as ex
from affect_tf.data import targets as tg
from affect_tf.data.corpus import CorpusError
from affect_tf.data.dataset import measure_priors
from affect_tf.data.mixing import (
    CorpusSpec,
    check_contract,
    make_mixed_dataset,
    mixing_weights,
    mixture_priors,
    parse_corpus,
)
from tests.data.test_examples import make_record


def write(path, records) -> str:
    with tf.io.TFRecordWriter(str(path)) as w:
        for record in records:
            w.write(ex.serialize_example(record))
    return str(path)


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    """'real' labels expressions only (class 3); 'synth' labels VA and AUs only."""
    root = tmp_path_factory.mktemp("mix")
    real = [
        make_record(source="real", video_id=f"r{i}", expression=3, va_mask=0, au_mask=[0] * 12)
        for i in range(12)
    ]
    synth = [
        make_record(source="synth", video_id=f"s{i}", expr_mask=0, valence=0.5, arousal=-0.5)
        for i in range(12)
    ]
    return write(root / "real.tfrecord", real), write(root / "synth.tfrecord", synth)


@pytest.mark.parametrize(
    "text, spec",
    [
        ("corpus.tfrecord.gz:0.7", CorpusSpec("corpus.tfrecord.gz", 0.7)),
        ("synth/:3", CorpusSpec("synth/", 3.0)),
        ("a:1e-1", CorpusSpec("a", 0.1)),
        ("a:.5", CorpusSpec("a", 0.5)),
        ("gs://bucket/x.tfrecord", CorpusSpec("gs://bucket/x.tfrecord")),
        ("corpus:abc", CorpusSpec("corpus:abc")),  # not a number: part of the path
        ("plain", CorpusSpec("plain")),
    ],
)
def test_parse_corpus(text, spec):
    assert parse_corpus(text) == spec


@pytest.mark.parametrize("text", ["a:-0.3", "a:nan", "a:inf", "a:-inf"])
def test_parse_corpus_rejects_bad_weights(text):
    with pytest.raises(CorpusError, match=r"weight >= 0.*" + text.split(":")[1]):
        parse_corpus(text)


def test_mixing_weights_normalise_and_check():
    assert mixing_weights([CorpusSpec("a"), CorpusSpec("b")]) is None
    assert mixing_weights([CorpusSpec("a", 3.0), CorpusSpec("b", 1.0)]) == [0.75, 0.25]
    with pytest.raises(CorpusError, match=r"every --data.*\['b'\]"):
        mixing_weights([CorpusSpec("a", 0.7), CorpusSpec("b")])
    with pytest.raises(CorpusError, match="sum to more than 0.*a:0, b:0"):
        mixing_weights([CorpusSpec("a", 0.0), CorpusSpec("b", 0.0)])


def test_draws_follow_the_weights_and_keep_each_corpus_masks(two_corpora):
    n, p_real = 400, 0.8
    ds = make_mixed_dataset(
        [[two_corpora[0]], [two_corpora[1]]],
        [p_real, 1 - p_real],
        image_size=32,
        margin=0.25,
        batch_size=50,
        size=n,
        seed=3,
        with_meta=True,
    )
    sources, targets = [], {t: [] for t in tg.OUTPUTS}
    for _, y, meta in ds:
        sources += [s.decode() for s in meta[ex.SOURCE].numpy()]
        for t in targets:
            targets[t].append(y[t].numpy())
    assert len(sources) == n
    real = np.array(sources) == "real"
    # Binomial(400, 0.8): mean 320, sd 8; 4 sd either side.
    assert 288 <= real.sum() <= 352
    expression = np.concatenate(targets[tg.EXPRESSION])
    va = np.concatenate(targets[tg.VA])
    au = np.concatenate(targets[tg.AU])
    # Each corpus' labels and masks as its tf.Examples have them, whatever the mix.
    np.testing.assert_array_equal(expression[real][:, :2], [[3.0, 1.0]] * real.sum())
    np.testing.assert_array_equal(expression[~real][:, 1], 0.0)
    np.testing.assert_array_equal(va[real][:, 2], 0.0)
    np.testing.assert_allclose(va[~real], [[0.5, -0.5, 1.0]] * (~real).sum())
    np.testing.assert_array_equal(au[real][:, 12:], 0.0)
    assert au[~real][:, 12:].sum() > 0


def test_a_zero_weight_corpus_is_never_drawn(two_corpora):
    ds = make_mixed_dataset(
        [[two_corpora[0]], [two_corpora[1]]], [1.0, 0.0], 32, 0.25, 20, size=60, seed=0,
        with_meta=True,
    )  # fmt: skip
    sources = {s.decode() for _, _, m in ds for s in m[ex.SOURCE].numpy()}
    assert sources == {"real"}


def test_mixture_priors_weight_each_corpus(two_corpora):
    real, synth = (measure_priors([f], split=None) for f in two_corpora)
    mixed = mixture_priors([real, synth], [0.25, 0.75])
    # 24 examples in all: the real corpus (12 faces, all class 3) makes a quarter of them.
    assert mixed.n == 24
    assert mixed.expression_counts[3] == pytest.approx(6.0)
    assert mixed.va_labelled == 18
    assert mixed.au_labelled.sum() == pytest.approx(0.75 * 24 * 10)  # 10 AUs labelled each


def test_check_contract_names_the_corpus_of_an_older_file(tmp_path, two_corpora):
    check_contract([two_corpora[0]], "real")  # the current contract passes
    example = ex.encode_example(make_record())
    del example.features.feature[ex.BBOX]
    old = tmp_path / "old.tfrecord"
    with tf.io.TFRecordWriter(str(old)) as w:
        w.write(example.SerializeToString())
    with pytest.raises(CorpusError, match=r"corpus 'older'.*old.tfrecord.*\['bbox'\]"):
        check_contract([str(old)], "older")
    junk = tmp_path / "junk.tfrecord"
    with tf.io.TFRecordWriter(str(junk)) as w:
        w.write(b"\xff\x00not a proto")
    with pytest.raises(CorpusError, match="corpus 'junk'"):
        check_contract([str(junk)], "junk")
