"""train -> evaluate -> predict through the CLI on a small SynthAffect corpus."""

import json

import numpy as np
import pandas as pd
import pytest

from affect_tf import cli
from affect_tf.core.labels import AUS, EXPRESSIONS
from affect_tf.evaluation import report as R
from tests.conftest import synth_corpus


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    corpus = synth_corpus(root / "corpus", n=96, seed=4)
    out = root / "run"
    args = [
        "train",
        "--data",
        str(corpus),
        "--preset",
        "tiny",
        "--heads",
        "gcn",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0
    return corpus, out, args


def test_train_writes_model_history_and_plot(trained):
    _, out, _ = trained
    for name in (
        "model.keras",
        "last.keras",
        "state.json",
        "history.json",
        "history.csv",
        "validation.json",
        "priors.json",
        "config.json",
        "training_curves.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "data" / "examples.tfrecord.gz").is_file()  # the manifest was converted once
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 1 and "val_p_mtl" in state["logs"]
    assert state["best_val_p_mtl"] == state["logs"]["val_p_mtl"]
    assert json.loads((out / "history.json").read_text())["init"] == "random weights"


def test_resume_continues_from_the_last_epoch(trained, capsys):
    _, out, args = trained
    args = [a if a != "1" else "2" for a in args]  # --epochs 2
    assert cli.main(args) == 0
    assert "resuming from epoch 1" in capsys.readouterr().out
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 2
    init = json.loads((out / "history.json").read_text())["init"]
    assert init == f"resumed at epoch 1 in {out}"
    assert state["best_val_p_mtl"] == max(state["best_val_p_mtl"], state["logs"]["val_p_mtl"])


def test_evaluate_json_and_predict_csv_agree(trained, tmp_path, capsys):
    corpus, out, _ = trained
    report = tmp_path / "eval.json"
    assert (
        cli.main(
            ["evaluate", "--model", str(out), "--data", str(out / "data"), "--out", str(report)]
        )
        == 0
    )
    result = json.loads(report.read_text())
    assert set(R.REPORT_KEYS) <= set(result)
    assert result["n"] == 96 and set(result["au_f1_per_au"]) == set(AUS)

    csv_path = tmp_path / "preds.csv"
    assert (
        cli.main(
            [
                "predict-examples",
                "--model",
                str(out / "model.keras"),
                "--data",
                str(out / "data"),
                "--out",
                str(csv_path),
            ]
        )
        == 0
    )
    table = pd.read_csv(csv_path)
    assert len(table) == 96
    expected_cols = [
        "id",
        "video_id",
        "frame",
        *[f"p_{e}" for e in EXPRESSIONS],
        *[f"p_{a}" for a in AUS],
        "valence",
        "arousal",
        "label_valence",
        "label_arousal",
        "label_expression",
        *[f"label_{a}" for a in AUS],
        "va_mask",
        "expr_mask",
        *[f"au_mask_{a}" for a in AUS],
    ]
    assert set(expected_cols) <= set(table.columns)
    np.testing.assert_allclose(table[[f"p_{e}" for e in EXPRESSIONS]].sum(axis=1), 1.0, atol=1e-4)
    # Anyone can recompute the metrics from the file.
    ev = R.AffectEvaluator()
    ev.update(
        table[["valence", "arousal"]].to_numpy(),
        table[[f"p_{e}" for e in EXPRESSIONS]].to_numpy(),
        table[[f"p_{a}" for a in AUS]].to_numpy(),
        {
            "va": table[["label_valence", "label_arousal", "va_mask"]].to_numpy(),
            "expression": table[["label_expression", "expr_mask"]].to_numpy(),
            "au": table[[f"label_{a}" for a in AUS] + [f"au_mask_{a}" for a in AUS]].to_numpy(),
        },
    )
    again = ev.result()
    for key in ("ccc_valence", "ccc_arousal", "expr_f1", "au_f1", "p_mtl"):
        assert again[key] == pytest.approx(result[key], abs=1e-4), key


def test_evaluate_with_tuned_au_thresholds(trained, capsys):
    _, out, _ = trained
    tuned = json.loads((out / "au_thresholds.json").read_text())
    assert list(tuned) == list(AUS) and all(0 < v < 1 for v in tuned.values())
    assert (
        cli.main(
            [
                "evaluate",
                "--model",
                str(out),
                "--data",
                str(out / "data"),
                "--au-thresholds",
                str(out / "au_thresholds.json"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{") :])
    assert result["au_thresholds"] == [tuned[a] for a in AUS]
    assert (
        cli.main(
            ["evaluate", "--model", str(out), "--data", str(out / "data"), "--au-thresholds", "1.5"]
        )
        == 2
    )
    assert "(0, 1)" in capsys.readouterr().err


def test_evaluate_with_smoothing(trained, capsys):
    _, out, _ = trained
    assert (
        cli.main(
            ["evaluate", "--model", str(out), "--data", str(out / "data"), "--smooth", "mean:5"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{") :])
    assert result["smooth"] == "mean:5" and result["n"] == 96


def test_user_errors(trained, tmp_path, capsys):
    _, out, _ = trained
    assert (
        cli.main(["evaluate", "--model", str(tmp_path / "nope.keras"), "--data", str(out / "data")])
        == 2
    )
    assert "Expected a .keras model file" in capsys.readouterr().err
    assert (
        cli.main(
            ["evaluate", "--model", str(out), "--data", str(out / "data"), "--smooth", "gauss:3"]
        )
        == 2
    )
    assert "mean:15" in capsys.readouterr().err
    assert (
        cli.main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "nothing found" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(out / "data"),
                "--tasks",
                "va,pose",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "tasks" in capsys.readouterr().err


def test_demo_runs_end_to_end_small(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--n", "160", "--size", "48", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "[4/4] evaluating on the held-out faces" in printed and "P_MTL" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["held_out"]["n"] == 64
        and summary["data"]["written"] == 160
        and (out / "model" / "model.keras").is_file()
    )


def test_transfer_flags_fail_clearly(trained, tmp_path, capsys):
    """Weights of another backbone, a schedule without weights, a missing warm start: one
    line naming the setting, exit 2, no traceback."""
    _, out, _ = trained
    base = ["train", "--data", str(out / "data"), "--out", str(tmp_path / "o"), "--epochs", "1"]
    mobile = tmp_path / "mobile.weights.h5"
    from affect_tf.model import build_backbone

    build_backbone("mobilenet_v3_small", 48).save_weights(mobile)
    assert cli.main([*base, "--weights", str(mobile)]) == 2
    err = capsys.readouterr().err
    assert "Expected weights of backbone 'small_cnn'" in err and "Traceback" not in err
    assert cli.main([*base, "--schedule", "frozen"]) == 2
    assert "Expected pretrained weights for schedule='frozen'" in capsys.readouterr().err
    assert cli.main([*base, "--warm-start", str(tmp_path / "none.keras")]) == 2
    assert "--warm-start" in capsys.readouterr().err
    assert cli.main([*base, "--focal-gamma", "-1"]) == 2
    assert "Expected focal_gamma in [0, 10]. Received: focal_gamma=-1.0" in capsys.readouterr().err
    # The loss choices reach the saved model's config.
    from affect_tf.inference import keras_config

    assert cli.main([*base, "--va-loss", "mse", "--focal-gamma", "2"]) == 0
    saved = keras_config(tmp_path / "o" / "model.keras")
    assert (saved["va_loss"], saved["focal_gamma"]) == ("mse", 2.0)
    capsys.readouterr()
    # So do the heads' inputs (mlp heads only: with gcn the flag is one line, exit 2).
    heads = ["--head-features", "both", "--no-resume"]
    assert cli.main([*base, *heads, "--heads", "gcn"]) == 2
    assert "Expected heads='mlp' with head_features" in capsys.readouterr().err
    assert cli.main([*base, *heads, "--heads", "mlp"]) == 0
    assert keras_config(tmp_path / "o" / "model.keras")["head_features"] == "both"
    capsys.readouterr()
    # The model's own tuned AU thresholds (saved in model.keras = au_thresholds.json).
    args = ["evaluate", "--model", str(out), "--data", str(out / "data")]
    assert cli.main([*args, "--au-thresholds", "model"]) == 0
    result = json.loads(capsys.readouterr().out)
    tuned = json.loads((out / "au_thresholds.json").read_text())
    assert result["au_thresholds"] == pytest.approx([tuned[a] for a in AUS])
    assert set(result["gate"]) == {"passed", "failures", "notes"}


def test_a_run_killed_at_the_wrong_moment_does_not_wedge(trained, tmp_path, caplog):
    """Killed while converting (a truncated cached TFRecord) and while saving (a 0-byte
    last.keras beside an unfinished state.json): the re-run rebuilds the conversion and trains
    anew instead of dying with a DataLossError or 'File not found'."""
    import logging

    corpus, _, args = trained
    out = tmp_path / "run"
    cached = out / "data" / "examples.tfrecord.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x1f\x8b\x08\x00truncated")  # newer than the manifest
    (out / "last.keras").write_bytes(b"")
    (out / "state.json").write_text(json.dumps({"epoch": 1, "best_val_p_mtl": 0.5, "logs": {}}))
    rerun = [a if a != args[args.index("--out") + 1] else str(out) for a in args]
    rerun[rerun.index("--epochs") + 1] = "2"
    with caplog.at_level(logging.INFO, logger="affect_tf"):
        assert cli.main(rerun) == 0
    assert "interrupted?" in caplog.text or "report is missing" in caplog.text
    assert "cannot resume from" in caplog.text
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 2 and (out / "model.keras").stat().st_size > 0


def test_train_mixes_corpora_by_weight_and_rejects_bad_weights(trained, tmp_path, capsys):
    """Two corpora, each labelling what it has (SynthAffect: all; a FER+-like file:
    expressions only), mixed 0.7 / 0.3; weights that cannot mix: one line, exit 2."""
    import tensorflow as tf

    from affect_tf.data import examples as ex
    from tests.data.test_examples import make_record

    _, out, _ = trained
    synth = str(out / "data" / "examples.tfrecord.gz")
    real = tmp_path / "real.tfrecord"
    with tf.io.TFRecordWriter(str(real)) as w:
        for i in range(40):
            record = make_record(
                video_id=f"r{i}", expression=i % 8, va_mask=0, au_mask=[0] * 12, source="real"
            )
            w.write(ex.serialize_example(record))
    run = tmp_path / "mixed"
    args = ["train", "--data", f"{synth}:0.7", "--data", f"{real}:0.3", "--preset", "tiny",
            "--epochs", "1", "--steps-per-epoch", "2", "--out", str(run)]  # fmt: skip
    assert cli.main(args) == 0
    assert (run / "model.keras").is_file()
    capsys.readouterr()
    for data, message in (
        ([f"{synth}:-1"], "weight >= 0"),
        ([f"{synth}:0.5", str(real)], "every --data"),
        ([f"{synth}:0", f"{real}:0"], "sum to more than 0"),
    ):
        argv = ["train", *[a for d in data for a in ("--data", d)], "--out", str(tmp_path / "o")]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    old = ex.encode_example(make_record())
    del old.features.feature[ex.LANDMARKS]
    older = tmp_path / "older.tfrecord"
    with tf.io.TFRecordWriter(str(older)) as w:
        w.write(old.SerializeToString())
    argv = ["train", "--data", f"{synth}:1", "--data", f"{older}:1", "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"corpus '{older}'" in err and "landmarks" in err and "Traceback" not in err
