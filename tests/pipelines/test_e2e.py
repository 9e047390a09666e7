"""One end-to-end run of the real pipeline (LocalDagRunner) on a small SynthAffect corpus:
blessing, push in the TF Serving layout, TFLite export with checks, TFMA = affect-tf evaluate,
the serving signatures, and a deliberately worse second model that is not blessed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_pipeline_end_to_end(tmp_path):
    from tfx import v1 as tfx

    import affect_tf
    from affect_tf.data.dataset import resolve_files
    from affect_tf.export import KERAS_FILE
    from affect_tf.pipeline.config import PipelineConfig
    from affect_tf.pipeline.summary import summarize
    from affect_tf.training import evaluate
    from pipelines.affect import create_pipeline

    config = PipelineConfig.load(
        {},
        output_root=str(tmp_path),
        synth_n=480,
        synth_size=64,
        preset="tiny",
        epochs=4,
        eval_percent=25,
        thresholds={"p_mtl": 0.1},
        max_p_mtl_drop=0.05,
        parity_examples=24,
    )
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    summary = summarize(config)

    assert summary["blessed"], summary["not_blessed_reasons"]
    assert all(c["status"] == "COMPLETE" for c in summary["components"].values())
    assert summary["data"]["examples_per_split"]["eval"] > 0
    version = Path(summary["pushed"]["saved_model"])
    assert version.parent == Path(config.serving_dir) and version.name.isdigit()
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    assert set(summary["pushed"]["tflite"]) == {"fp32", "fp16", "int8"}
    for variant, path in summary["pushed"]["tflite"].items():
        assert Path(path).is_file() and Path(path).parent.name == version.name
        check = summary["tflite_checks"][variant]
        assert check["bytes"] == Path(path).stat().st_size
        assert isinstance(check["gpu_compatible"], bool)
    fp32 = summary["tflite_checks"]["fp32"]
    assert fp32["max_abs_va_diff"] < 1e-4 and fp32["expr_agreement"] == 1.0
    assert summary["tflite_checks"]["int8"]["bytes"] < fp32["bytes"] / 2

    # TFMA's numbers equal `affect-tf evaluate` on the same eval examples.
    model = affect_tf.load_model(version / KERAS_FILE)
    eval_files = resolve_files(str(Path(summary["data"]["examples_uri"]) / "Split-eval" / "*"))
    report = evaluate(model, eval_files)
    assert report["n"] == summary["metrics"]["n"]
    for key in ("ccc_valence", "ccc_arousal", "expr_f1", "expr_acc", "au_f1", "p_mtl"):
        assert summary["metrics"][key] == pytest.approx(report[key], abs=2e-3), key

    # The serving signatures: image bytes in, named outputs out; same numbers as Keras.
    loaded = tf.saved_model.load(str(version))
    serialized = next(iter(tf.data.TFRecordDataset(eval_files, compression_type="GZIP")))
    by_examples = loaded.signatures["serving_examples"](examples=serialized[tf.newaxis])
    assert set(by_examples) == {"expression", "au", "valence", "arousal"}
    assert by_examples["expression"].shape == (1, 8) and by_examples["au"].shape == (1, 12)
    np.testing.assert_allclose(by_examples["expression"].numpy().sum(), 1.0, atol=1e-5)
    image = tf.io.encode_jpeg(tf.zeros([80, 64, 3], tf.uint8))
    by_image = loaded.signatures["serving_default"](image=image[tf.newaxis])
    assert by_image["valence"].shape == (1,)

    # A deliberately worse model (it barely learns) is not blessed and nothing is pushed.
    tfx.orchestration.LocalDagRunner().run(
        create_pipeline(config, trainer_overrides={"learning_rate": 1e-7})
    )
    second = summarize(config)
    assert not second["blessed"]
    assert any(r.startswith("p_mtl changed by") for r in second["not_blessed_reasons"])
    assert second["pushed"]["saved_model"] is None and second["pushed"]["tflite"] == {}
    assert second["baseline"]["metrics"]["p_mtl"] == pytest.approx(summary["metrics"]["p_mtl"])
    assert [p.name for p in Path(config.serving_dir).iterdir()] == [version.name]
    # Unchanged inputs came from the cache.
    assert second["components"]["Transform"]["status"] == "CACHED"
    assert second["components"]["Trainer"]["status"] == "COMPLETE"
