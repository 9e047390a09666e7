"""The pipeline graph builds fast, and compiles for Kubeflow Pipelines v2 / Vertex."""

from __future__ import annotations

import json

from affect_tf.pipeline.config import PipelineConfig
from pipelines.affect import compile_kubeflow, create_pipeline

COMPONENTS = [
    "FaceExampleGen",
    "ImportSchemaGen",
    "StatisticsGen",
    "ExampleValidator",
    "Transform",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "Pusher",
    "TFLiteExport",
]


def test_graph_builds_with_every_component(tmp_path):
    config = PipelineConfig.load({}, output_root=str(tmp_path), beam_workers=2)
    pipeline = create_pipeline(config)
    assert sorted(c.id for c in pipeline.components) == sorted(COMPONENTS)
    assert pipeline.pipeline_info.pipeline_name == "affect"
    assert "--direct_num_workers=2" in pipeline.beam_pipeline_args
    by_id = {c.id: c for c in pipeline.components}
    # Split by video, never by frame; the analyzers see the train split only.
    split = json.loads(by_id["FaceExampleGen"].exec_properties["output_config"])["split_config"]
    assert split["partition_feature_name"] == "video_id"
    assert [s["hash_buckets"] for s in split["splits"]] == [80, 20]
    assert "transformed_examples" not in by_id["Transform"].outputs  # materialize=False
    # The Evaluator compares with the latest blessed model; the Pusher needs its blessing.
    assert "baseline_model" in by_id["Evaluator"].inputs
    assert "model_blessing" in by_id["Pusher"].inputs
    assert (tmp_path / "corpus_synth" / "synth.json").is_file()
    assert (tmp_path / "schema" / "schema.pbtxt").is_file()


def test_generated_faces_hook_is_off_by_default_and_reaches_the_trainer(tmp_path):
    config = PipelineConfig.load({}, output_root=str(tmp_path))
    trainer = {c.id: c for c in create_pipeline(config).components}["Trainer"]
    assert json.loads(trainer.exec_properties["custom_config"])["gan_examples"] == ""
    gan = tmp_path / "gan.tfrecord.gz"
    gan.write_bytes(b"")
    config = PipelineConfig.load({"AFFECT_GAN_EXAMPLES": str(gan)}, output_root=str(tmp_path))
    trainer = {c.id: c for c in create_pipeline(config).components}["Trainer"]
    assert json.loads(trainer.exec_properties["custom_config"])["gan_examples"] == str(gan)


def test_compiles_for_kubeflow_v2(tmp_path):
    config = PipelineConfig.load({}, output_root=str(tmp_path))
    out = compile_kubeflow(config, str(tmp_path / "affect_pipeline.json"), image="affect-tf:1")
    spec = json.loads((tmp_path / "affect_pipeline.json").read_text())
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    # The resolver is compiled into the Evaluator's input resolution, not a task of its own.
    assert set(COMPONENTS) - {"latest_blessed_model_resolver"} <= set(tasks)
    assert "latest_blessed_model_resolver" in json.dumps(spec)
    assert out.endswith("affect_pipeline.json")
