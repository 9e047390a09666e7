"""The one fit function on real-corpus shapes: partial labels, no labels, fine-tuning phases,
class-balanced sampling."""

import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from affect_tf.data import SkipReport, read_corpus
from affect_tf.data import targets as tg
from affect_tf.data.convert import convert
from affect_tf.data.dataset import balance_expressions
from affect_tf.data.synth import SynthConfig, write_corpus
from affect_tf.model import get_preset
from affect_tf.training.fit import _phases
from affect_tf.training.tfrecords import train


def _corpus(root, **rates):
    write_corpus(
        SynthConfig(n=96, size=64, frames_per_video=4, seed=5, frame_dropout=0.0, **rates),
        root / "c",
        workers=1,
        progress=False,
    )
    report = SkipReport()
    out = root / "x.tfrecord.gz"
    convert(read_corpus("manifest", root / "c", report=report), out, report, progress=False)
    return [str(out)]


@pytest.fixture(scope="module")
def expression_only(tmp_path_factory):
    """SynthAffect with expression labels only (as FER-style corpora)."""
    return _corpus(tmp_path_factory.mktemp("expr"), va_rate=0.0, au_rate=0.0, expr_rate=1.0)


@pytest.fixture(scope="module")
def trained_expression_only(expression_only, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = get_preset("tiny", epochs=1)
    result = train(config, expression_only, out, eval_percent=30, steps_per_epoch=2)
    return result, out


def test_expression_only_corpus_trains_and_reports_other_tasks_not_measured(
    trained_expression_only,
):
    result, out = trained_expression_only
    assert result.tasks_measured == ["expression"]
    v = result.validation
    assert v["va"] is None and v["au_f1"] is None and v["expr_f1"] is not None
    assert v["n_labelled"]["va"] == 0 and v["n_labelled"]["expression"] == v["n"]
    assert v["p_mtl"] == pytest.approx(v["expr_f1"])
    assert (out / "au_thresholds.json").is_file() and result.model.au_thresholds is None
    # The Keras metrics and early stopping see the measured task only.
    assert "val_expression_f1" in result.history and "val_au_f1" not in result.history
    assert result.history["val_p_mtl"] == result.history["val_expression_f1"]


def test_a_corpus_without_any_label_is_a_clear_error(tmp_path):
    from affect_tf.data import examples as ex
    from tests.data.test_examples import make_record

    path = tmp_path / "unlabelled.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(40):
            record = make_record(va_mask=0, expr_mask=0, au_mask=[0] * 12, video_id=f"v{i}")
            writer.write(ex.serialize_example(record))
    files = [str(path)]
    with pytest.raises(ValueError, match="Expected labels for at least one trained task"):
        train(get_preset("tiny", epochs=1), files, tmp_path / "run", eval_percent=30)


def test_finetune_runs_a_frozen_warmup_then_the_whole_network(
    trained_expression_only, expression_only, tmp_path, caplog
):
    _, source = trained_expression_only
    config = get_preset(
        "tiny",
        weights=str(source / "model.keras"),
        schedule="finetune",
        warmup_epochs=1,
        epochs=2,
        imbalance="sampling",
        augment=True,
    )
    assert _phases(config, 2) == [(0, 1, False, None), (1, 2, True, 0.1)]
    with caplog.at_level(logging.INFO, logger="affect_tf"):
        result = train(config, expression_only, tmp_path / "ft", eval_percent=30, patience=3)
    text = caplog.text
    assert "initialised from backbone of" in text
    assert "epochs 1-1: backbone frozen" in text and "epochs 2-2: backbone trainable at 0.1" in text
    assert len(result.history["loss"]) == 2
    src = keras.models.load_model(source / "model.keras").get_layer("backbone").get_weights()
    last = keras.models.load_model(tmp_path / "ft" / "last.keras", compile=False)
    got = last.get_layer("backbone").get_weights()
    assert len(got) == len(src)
    # Fine-tuned: the backbone moved from the source in the second phase (last.keras is the
    # state after epoch 2; model.keras is the best epoch, which may be the first).
    assert any(not np.array_equal(a, b) for a, b in zip(got, src, strict=True))


def test_class_balanced_sampling_by_hand():
    # 90 Neutral, 10 Anger, 20 without an expression label.
    labels = np.array([0] * 90 + [1] * 10 + [0] * 20)
    masks = np.array([1] * 100 + [0] * 20)
    targets = {tg.EXPRESSION: np.stack([labels, masks], 1).astype("float32")}
    ds = tf.data.Dataset.from_tensor_slices((np.arange(120), targets))
    counts = np.zeros(8)
    counts[:2] = [90, 10]
    out = list(balance_expressions(ds, counts, 20, 3000, seed=0).as_numpy_iterator())
    assert len(out) == 3000
    expr = np.array([t[tg.EXPRESSION] for _, t in out])
    unlabelled = (expr[:, 1] == 0).mean()
    assert unlabelled == pytest.approx(20 / 120, abs=0.03)  # keeps its share
    labelled = expr[expr[:, 1] == 1, 0]
    assert (labelled == 1).mean() == pytest.approx(0.5, abs=0.04)  # Anger: 10 % -> 50 %


def test_frozen_heads_on_embeddings_computed_once(
    trained_expression_only, expression_only, tmp_path, caplog
):
    _, source = trained_expression_only
    config = get_preset(
        "tiny",
        weights=str(source / "model.keras"),
        schedule="frozen",
        cache_embeddings=True,
        epochs=3,
    )
    src = keras.models.load_model(source / "model.keras", compile=False)
    with caplog.at_level(logging.INFO, logger="affect_tf"):
        result = train(config, expression_only, tmp_path / "cached", eval_percent=30)
    assert "embeddings computed once" in caplog.text
    assert len(result.history["loss"]) == 3 and "val_p_mtl" in result.history
    # history.json (and the pipeline summary) say where the backbone came from.
    init = json.loads((tmp_path / "cached" / "history.json").read_text())["init"]
    assert init == f"backbone of {source / 'model.keras'}"
    # The saved model: the source's backbone untouched, heads trained.
    backbone = result.model.get_layer("backbone").get_weights()
    for a, b in zip(backbone, src.get_layer("backbone").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        result.model.get_layer("expression").get_weights()[0],
        src.get_layer("expression").get_weights()[0],
    )
    with pytest.raises(ValueError, match="schedule='frozen' with cache_embeddings"):
        get_preset("tiny", weights="x.keras", schedule="finetune", cache_embeddings=True)
