"""``affect-tf ablate``: every study at a tiny budget on a tiny SynthAffect corpus; the tables'
numbers are the arms' saved models evaluated independently; resumable; bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affect_tf import cli
from affect_tf.training import ablation, ablation_report
from tests.conftest import synth_corpus

TINY = ablation.Budget(epochs=1, steps_per_epoch=2, seeds=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from affect_tf.cli.train import training_files

    root = tmp_path_factory.mktemp("ablate")
    train = training_files(str(synth_corpus(root / "train", n=48, seed=1, size=64)), root / "t")
    val = training_files(str(synth_corpus(root / "val", n=24, seed=2, size=64)), root / "v")
    second = training_files(str(synth_corpus(root / "b", n=24, seed=3, size=64)), root / "b2")
    return root, train, val, second


def test_summarise_hand_checked():
    """Reference 0.5 ± 0.1 (values 0.4, 0.6); an arm at 0.9 ± 0.1 differs beyond the spread,
    one at 0.55 does not."""
    results = {
        "ref": [{"p_mtl": 0.4}, {"p_mtl": 0.6}],
        "far": [{"p_mtl": 0.8}, {"p_mtl": 1.0}],
        "near": [{"p_mtl": 0.5}, {"p_mtl": 0.6}],
    }
    table = ablation_report.summarise(results)
    assert table["ref"]["p_mtl"]["mean"] == pytest.approx(0.5)
    assert table["ref"]["p_mtl"]["std"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert table["far"]["p_mtl"]["diff"] == pytest.approx(0.4)
    assert table["far"]["p_mtl"]["beyond_spread"] and not table["near"]["p_mtl"]["beyond_spread"]
    text = ablation_report.markdown("loss", table)
    assert "| far | 0.900 ± 0.141 * |" in text and "| near | 0.550 ± 0.071 |" in text


@pytest.mark.slow  # 34 arm-seeds trained (8 more reused) and evaluated: about 8 minutes on 2 cores
def test_every_study_at_a_tiny_budget(corpus, tmp_path):
    import keras

    from affect_tf.model import get_preset
    from affect_tf.training.tfrecords import evaluate

    _, train, val, second = corpus
    config = get_preset("demo", epochs=1, batch_size=8)  # shipped weights: the heads study runs
    out = tmp_path / "study"
    labelled = ablation.labelled_tasks(val)
    # Two corpora mixed by weight: the multitask study runs, every other study trains on the mix.
    data = ablation.TrainingData((tuple(train), tuple(second)), (0.75, 0.25))
    summaries = ablation.run_studies(list(ablation.STUDIES), config, data, val, out, TINY)
    assert set(summaries) == set(ablation.STUDIES)
    for study, summary in summaries.items():
        assert "skipped" not in summary, summary
        assert (out / study / "table.md").is_file() and (out / study / "summary.json").is_file()
        png = "smoothing.png" if study == "smoothing" else f"{study}.png"
        assert (out / study / png).stat().st_size > 1000
        # Every arm ran, but one acting on a task the tiny validation set happens not to
        # label (SynthAffect labels AUs on a share of its videos), which is named instead.
        skipped = summary.get("skipped_arms", {})
        assert set(summary["table"]) | set(skipped) == set(ablation.STUDIES[study])
        for arm in skipped:
            assert labelled[ablation.ARM_TASK[arm]] == 0, (arm, labelled)
    # The table's numbers are the saved models' own, evaluated independently here.
    loss = summaries["loss"]
    for arm, runs in loss["results"].items():
        values = [evaluate(keras.models.load_model(r["model"]), val)["p_mtl"] for r in runs]
        assert loss["table"][arm]["p_mtl"]["mean"] == pytest.approx(np.mean(values), abs=1e-6)
        assert loss["table"][arm]["p_mtl"]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    # One run behind every reference that trains the same config on the same data and seeds.
    first = [r["model"] for r in summaries["loss"]["results"]["ccc+ce+weighted_bce"]]
    for study, arm in (("weights", "a=b=1,lr=2e-3"), ("heads", "whole_network"),
                       ("multitask", "all_corpora")):  # fmt: skip
        runs = summaries[study]["results"][arm]
        assert [r["model"] for r in runs] == first and all("reused" in r for r in runs)
    # The expressions-only arm reports no VA, AU or P_MTL (its other heads are untrained).
    multitask = summaries["multitask"]["table"]
    assert set(multitask["all_corpora,expressions_only"]) == {"expr_f1", "expr_acc"}
    assert {"p_mtl", "va", "expr_f1"} <= set(multitask["first_corpus_alone"])
    curves = summaries["smoothing"]["smoothing"]
    assert [r["k"] for r in curves["mean"]["va"]] == list(ablation.SMOOTHING_WINDOWS)
    # Resumable: a second run trains nothing (every arm-seed's result.json is kept).
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    assert len(stamps) == 2 * sum(len(summary["table"]) for summary in summaries.values())
    ablation.run_studies(["loss"], config, data, val, out, TINY)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == stamps


def test_bad_input_is_one_line(corpus, tmp_path, capsys):
    root, train, val, _ = corpus
    base = ["ablate", "--data", str(root / "train"), "--val-data", str(root / "val")]
    with pytest.raises(SystemExit):  # argparse: the choices, exit 2
        cli.main([*base, "--study", "lossy", "--out", str(tmp_path / "o")])
    assert "invalid choice: 'lossy'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*base, "--study", "loss", "--budget", "huge", "--out", str(tmp_path / "o")])
    capsys.readouterr()
    # An output folder of another study set.
    other = tmp_path / "other"
    other.mkdir()
    (other / "ablation.json").write_text(json.dumps({"preset": "full"}))
    assert cli.main([*base, "--study", "heads", "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert "Expected" in err and "preset='full' (now 'tiny')" in err and "Traceback" not in err
    # A study the preset cannot answer is skipped with its reason, the run goes on.
    assert cli.main([*base, "--study", "heads", "--out", str(tmp_path / "h")]) == 0
    out = capsys.readouterr().out
    assert "heads: skipped (its frozen-features arms need shipped weights" in out
    # The multitask study with one corpus: skipped, named; a mixing weight below 0: one line.
    assert cli.main([*base, "--study", "multitask", "--out", str(tmp_path / "m")]) == 0
    assert "multitask: skipped (it compares the first training corpus alone" in (
        capsys.readouterr().out
    )
    mixed = [*base, "--data", f"{root / 'b'}:-1", "--study", "multitask", "--out", str(other)]
    assert cli.main(mixed) == 2
    err = capsys.readouterr().err
    assert "Expected a mixing weight >= 0" in err and "Traceback" not in err
    # Weights on some corpora only.
    assert cli.main([*base, "--data", f"{root / 'b'}:0.5", "--study", "multitask",
                     "--out", str(tmp_path / "w")]) == 2  # fmt: skip
    assert "Expected a mixing weight on every --data" in capsys.readouterr().err


def test_arms_for_tasks_the_data_does_not_label_are_skipped(corpus, tmp_path, monkeypatch):
    """Validation data labelling expressions only (as FER+): the loss study runs the reference
    and the focal arm and names the two it leaves out; the table says so."""
    import tensorflow as tf

    from affect_tf.data.examples import read_tfrecord, serialize_example

    _, train, val, _ = corpus
    expressions_only = tmp_path / "expr.tfrecord.gz"
    with tf.io.TFRecordWriter(str(expressions_only), options="GZIP") as writer:
        for record in read_tfrecord(val[0]):
            record.va_mask = 0
            record.au_mask = np.zeros_like(record.au_mask)
            writer.write(serialize_example(record))
    counts = ablation.labelled_tasks([str(expressions_only)])
    assert counts["va"] == 0 and counts["au"] == 0 and counts["expression"] > 0
    trained = []
    monkeypatch.setattr(
        ablation, "run_arm", lambda config, *a, **k: trained.append(config) or {"p_mtl": 0.5}
    )
    from affect_tf.model import get_preset

    summary = ablation.run_study(
        "loss", get_preset("tiny"), train, [str(expressions_only)], tmp_path / "o", TINY
    )
    assert list(summary["arms"]) == ["ccc+ce+weighted_bce", "focal_expr"]
    assert set(summary["skipped_arms"]) == {"mse_va", "plain_bce_au"}
    assert [c.focal_gamma for c in trained] == [0.0, 0.0, 2.0, 2.0]  # 2 arms x 2 seeds
    table = (tmp_path / "o" / "loss" / "table.md").read_text()
    assert "`mse_va` not run: the validation data labels no va." in table


def test_features_study_needs_va_or_au_labels():
    """FER+ labels expressions only: the features study (its arms change the AU and VA heads)
    is skipped with that reason; with AU labels it runs."""
    from affect_tf.model import get_preset

    config = get_preset("demo")
    none = {"va": 0, "expression": 100, "au": 0, "frames": 100, "videos": 100}
    reason = ablation.skip_reason("features", config, none)
    assert reason == "its arms change the va and au heads; the validation data labels neither"
    assert ablation.skip_reason("features", config, {**none, "au": 5}) is None
    assert ablation.skip_reason("features", get_preset("tiny"), {**none, "au": 5}).startswith(
        "its frozen-features arms need shipped weights"
    )
    arms = ablation.STUDIES["features"]
    assert [a.get("head_features", "embedding") for a in arms.values()] == list(
        ("embedding", "scores", "both")
    )


def test_multitask_arms_train_on_their_corpora(corpus, tmp_path, monkeypatch):
    """The reference trains on the first corpus alone (no mixing), the others on both corpora
    mixed by their weights, the last with the expression task only; one corpus: skipped."""
    from affect_tf.model import get_preset

    _, train, val, second = corpus
    data = ablation.TrainingData((tuple(train), tuple(second)), (0.7, 0.3))
    assert data.files == [*train, *second]
    calls = []
    monkeypatch.setattr(
        ablation,
        "run_arm",
        lambda config, arm_data, *a, **k: calls.append((config.tasks, arm_data)) or {"p_mtl": 1},
    )
    ablation.run_study("multitask", get_preset("tiny"), data, val, tmp_path / "o", TINY)
    first = ablation.TrainingData((tuple(train),))
    everything = ("va", "expression", "au")
    assert (
        calls
        == [(everything, first)] * 2 + [(everything, data)] * 2 + [(("expression",), data)] * 2
    )
    labelled = ablation.labelled_tasks(val)
    reason = ablation.skip_reason("multitask", get_preset("tiny"), labelled, corpora=1)
    assert (
        reason.startswith("it compares the first training corpus alone") and "Received: 1" in reason
    )
    assert ablation.skip_reason("multitask", get_preset("tiny"), labelled, corpora=2) is None


def test_mixed_arm_trains_on_both_corpora(corpus, tmp_path, monkeypatch):
    """``run_arm`` hands the mix to ``tfrecords.train`` as corpora and weights; the first corpus
    alone as plain files."""
    from affect_tf.model import get_preset
    from affect_tf.training import tfrecords

    _, train, val, second = corpus
    seen = []

    def fake_train(config, files, out, **kwargs):
        seen.append((list(files), kwargs["corpora"], kwargs["weights"]))
        raise RuntimeError("stop here")

    monkeypatch.setattr(tfrecords, "train", fake_train)
    data = ablation.TrainingData((tuple(train), tuple(second)), (0.7, 0.3))
    for arm_data in (data, data.for_arm({"corpora": "first"})):
        with pytest.raises(RuntimeError, match="stop here"):
            ablation.run_arm(get_preset("tiny"), arm_data, val, tmp_path / "a", TINY, 0)
    assert seen == [
        ([*train, *second], [list(train), list(second)], [0.7, 0.3]),
        (list(train), None, None),
    ]


def test_an_arm_seed_another_study_trained_is_reused(corpus, tmp_path, monkeypatch):
    """Same config, data, validation, budget and seed: the earlier result, not a new training;
    another seed or config trains."""
    from affect_tf.model import get_preset
    from affect_tf.training import tfrecords

    _, train, val, _ = corpus
    config = get_preset("tiny")
    data = ablation.TrainingData((tuple(train),))
    key = ablation.arm_key(config, data, val, TINY, 0)
    assert key == ablation.arm_key(get_preset("tiny"), data, list(val), TINY, 0)
    assert key != ablation.arm_key(config, data, val, TINY, 1)
    assert key != ablation.arm_key(config.replace(focal_gamma=2.0), data, val, TINY, 0)
    earlier = tmp_path / "set" / "loss" / "ref" / "seed0"
    earlier.mkdir(parents=True)
    (earlier / "result.json").write_text(json.dumps({"p_mtl": 1.25, "model": "m", "key": key}))

    def no_training(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(tfrecords, "train", no_training)
    here = tmp_path / "set" / "weights" / "ref" / "seed0"
    result = ablation.run_arm(config, data, val, here, TINY, 0, tmp_path / "set")
    assert result["p_mtl"] == 1.25 and result["model"] == "m" and result["reused"] == str(earlier)
    assert json.loads((here / "result.json").read_text()) == result
    with pytest.raises(AssertionError, match="trained"):  # seed 1 was never trained
        ablation.run_arm(config, data, val, tmp_path / "x", TINY, 1, tmp_path / "set")
