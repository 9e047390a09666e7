"""The pipeline graph builds fast, and compiles for Kubeflow Pipelines v2 / Vertex."""

from __future__ import annotations

import json

from affect_tf.pipeline.config import PipelineConfig
from affect_tf.pipeline.inputs import prepare_inputs
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


def _build(config: PipelineConfig):
    return create_pipeline(config, prepare_inputs(config))


def test_graph_builds_with_every_component(tmp_path):
    config = PipelineConfig.load({}, output_root=str(tmp_path), beam_workers=2)
    pipeline = _build(config)
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
    trainer = {c.id: c for c in _build(config).components}["Trainer"]
    assert json.loads(trainer.exec_properties["custom_config"])["gan_examples"] == ""
    gan = tmp_path / "gan.tfrecord.gz"
    gan.write_bytes(b"")
    config = PipelineConfig.load({"AFFECT_GAN_EXAMPLES": str(gan)}, output_root=str(tmp_path))
    trainer = {c.id: c for c in _build(config).components}["Trainer"]
    assert json.loads(trainer.exec_properties["custom_config"])["gan_examples"] == str(gan)


def test_more_corpora_reach_the_trainer_with_their_weights(tmp_path):
    synth = tmp_path / "synth.tfrecord.gz"
    synth.write_bytes(b"")
    config = PipelineConfig.load(
        {"AFFECT_CORPORA": f"{synth}:1", "AFFECT_CORPUS_WEIGHT": "3"}, output_root=str(tmp_path)
    )
    trainer = {c.id: c for c in _build(config).components}["Trainer"]
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert custom["corpora"] == [str(synth)] and custom["corpus_weights"] == [0.75, 0.25]
    config = PipelineConfig.load({"AFFECT_CORPORA": str(synth)}, output_root=str(tmp_path))
    custom = json.loads(
        {c.id: c for c in _build(config).components}["Trainer"].exec_properties["custom_config"]
    )
    assert custom["corpora"] == [str(synth)] and custom["corpus_weights"] is None


def test_compiles_for_kubeflow_v2(tmp_path):
    config = PipelineConfig.load({}, output_root=str(tmp_path))
    out = compile_kubeflow(config, str(tmp_path / "affect_pipeline.json"), image="affect-tf:1")
    spec = json.loads((tmp_path / "affect_pipeline.json").read_text())
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    # The resolver is compiled into the Evaluator's input resolution, not a task of its own.
    assert set(COMPONENTS) - {"latest_blessed_model_resolver"} <= set(tasks)
    assert "latest_blessed_model_resolver" in json.dumps(spec)
    assert out.endswith("affect_pipeline.json")


def _fingerprint(pipeline) -> str:
    """Everything a run receives from the graph: component settings, inputs, Beam arguments."""
    parts = [
        pipeline.pipeline_info.pipeline_name,
        str(pipeline.pipeline_info.pipeline_root),
        str(pipeline.metadata_connection_config),
        str(pipeline.enable_cache),
        " ".join(pipeline.beam_pipeline_args),
    ]
    for component in sorted(pipeline.components, key=lambda c: c.id):
        parts.append(component.id)
        parts += [f"{k}={v}" for k, v in sorted(component.exec_properties.items())]
        parts += sorted(component.inputs)
    return "\n".join(parts)


def test_no_pipeline_setting_is_dead(tmp_path):
    """Changing any PipelineConfig field changes what the components receive."""
    import dataclasses

    corpus, other_corpus = tmp_path / "corpus", tmp_path / "corpus2"
    corpus.mkdir()
    other_corpus.mkdir()
    weights = tmp_path / "backbone.weights.h5"
    weights.write_bytes(b"x")
    gan = tmp_path / "gan.tfrecord.gz"
    gan.write_bytes(b"")
    manifest = {"corpus_format": "manifest", "corpus_root": str(corpus)}
    vertex = {"trainer_workers": 2, "vertex_project": "p", "trainer_image": "affect-tf:1"}
    # field -> (base settings, changed settings)
    changes = {
        "pipeline_name": ({}, {"pipeline_name": "other"}),
        "output_root": ({}, {"output_root": str(tmp_path / "out2")}),
        "corpus_format": ({}, manifest),
        "corpus_root": (manifest, {**manifest, "corpus_root": str(other_corpus)}),
        "corpus_split": (manifest, {**manifest, "corpus_split": "validation"}),
        "detector": (manifest, {**manifest, "detector": "mtcnn"}),
        "synth_n": ({}, {"synth_n": 64}),
        "synth_size": ({}, {"synth_size": 128}),
        "synth_frames_per_video": ({}, {"synth_frames_per_video": 2}),
        "synth_seed": ({}, {"synth_seed": 3}),
        "eval_percent": ({}, {"eval_percent": 30}),
        "preset": ({}, {"preset": "tiny"}),
        "epochs": ({}, {"epochs": 3}),
        "batch_size": ({}, {"batch_size": 16}),
        "patience": ({}, {"patience": 2}),
        "seed": ({}, {"seed": 5}),
        "weights": ({}, {"weights": str(weights)}),
        "schedule": ({"weights": str(weights)}, {"weights": str(weights), "schedule": "frozen"}),
        "imbalance": ({}, {"imbalance": "sampling"}),
        "augment": ({}, {"augment": True}),
        "cache_embeddings": (
            {"weights": str(weights), "schedule": "frozen"},
            {"weights": str(weights), "schedule": "frozen", "cache_embeddings": True},
        ),
        "warm_start": ({}, {"warm_start": True}),
        "strategy": ({}, {"strategy": "default"}),
        "thresholds": ({}, {"thresholds": {"expr_f1": 0.4}}),
        "min_gain": ({}, {"min_gain": 0.1}),
        "max_p_mtl_drop": ({}, {"max_p_mtl_drop": 0.2}),
        "au_threshold": ({}, {"au_threshold": 0.3}),
        "tflite_variants": ({}, {"tflite_variants": ("fp32",)}),
        "parity_examples": ({}, {"parity_examples": 16}),
        "beam_workers": ({}, {"beam_workers": 2}),
        "beam_args": ({}, {"beam_args": ("--runner=DirectRunner",)}),
        "enable_cache": ({}, {"enable_cache": False}),
        "gan_examples": ({}, {"gan_examples": str(gan)}),
        "corpora": ({}, {"corpora": (str(gan),)}),
        "corpus_weight": (
            {"corpora": (f"{gan}:0.3",), "corpus_weight": 0.7},
            {"corpora": (f"{gan}:0.3",), "corpus_weight": 0.5},
        ),
        "trainer_workers": (vertex, {**vertex, "trainer_workers": 3}),
        "trainer_machine_type": (vertex, {**vertex, "trainer_machine_type": "n1-highmem-8"}),
        "trainer_image": (vertex, {**vertex, "trainer_image": "other:2"}),
        "vertex_project": (vertex, {**vertex, "vertex_project": "q"}),
        "vertex_region": (vertex, {**vertex, "vertex_region": "europe-west4"}),
    }
    assert set(changes) == {f.name for f in dataclasses.fields(PipelineConfig)}
    root = {"output_root": str(tmp_path / "out")}
    for name, (base, changed) in changes.items():
        before = _fingerprint(_build(PipelineConfig.load({}, **{**root, **base})))
        after = _fingerprint(_build(PipelineConfig.load({}, **{**root, **changed})))
        assert before != after, f"setting {name} does not reach the pipeline"


def test_trainer_receives_the_training_settings(tmp_path):
    config = PipelineConfig.load(
        {"AFFECT_PATIENCE": "3", "AFFECT_SEED": "7", "AFFECT_IMBALANCE": "logit_adjustment"},
        output_root=str(tmp_path),
        augment=True,
    )
    trainer = {c.id: c for c in _build(config).components}["Trainer"]
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert custom["patience"] == 3 and custom["seed"] == 7
    assert custom["overrides"] == {"imbalance": "logit_adjustment", "augment": True}
    from affect_tf.pipeline.trainer import model_config

    assert model_config(custom).imbalance == "logit_adjustment"


def test_multi_worker_trainer_gets_its_vertex_worker_pools_in_the_compiled_spec(tmp_path):
    settings = {
        "AFFECT_TRAINER_WORKERS": "4",
        "AFFECT_TRAINER_IMAGE": "gcr.io/p/affect-tf:1",
        "AFFECT_VERTEX_PROJECT": "p",
        "AFFECT_TRAINER_MACHINE_TYPE": "n1-standard-16",
    }
    config = PipelineConfig.load(settings, output_root=str(tmp_path))
    compile_kubeflow(config, str(tmp_path / "spec.json"), image="gcr.io/p/affect-tf:1")
    spec = (tmp_path / "spec.json").read_text()
    trainer = {c.id: c for c in _build(config).components}["Trainer"]
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert custom["strategy"] == "multiworker" and custom["ai_platform_enable_vertex"] is True
    pools = custom["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 3]  # the chief, then the workers
    assert {p["machine_spec"]["machine_type"] for p in pools} == {"n1-standard-16"}
    assert {p["container_spec"]["image_uri"] for p in pools} == {"gcr.io/p/affect-tf:1"}
    assert "worker_pool_specs" in spec and "n1-standard-16" in spec  # in the compiled spec
    # One replica: the ordinary in-process Trainer, no pools.
    plain = {c.id: c for c in _build(PipelineConfig.load({}, output_root=str(tmp_path))).components}
    assert "ai_platform_training_args" not in json.loads(
        plain["Trainer"].exec_properties["custom_config"]
    )
