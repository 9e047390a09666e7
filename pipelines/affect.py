"""The ``affect`` TFX pipeline: FaceExampleGen -> statistics/schema/validation -> Transform ->
Trainer -> Evaluator (vs the latest blessed model) -> Pusher (TF Serving layout) -> TFLiteExport.

Run it with the tfx CLI (settings from ``AFFECT_*`` variables or ``AFFECT_CONFIG=file.yaml``,
see ``affect_tf.pipeline.config``)::

    tfx pipeline create --pipeline_path=pipelines/affect.py --engine=local
    tfx run create --pipeline_name=affect --engine=local

or directly: ``python pipelines/affect.py``. This file only wires the graph; the work lives in
``affect_tf.pipeline``.
"""

from __future__ import annotations

import sys

import affect_tf  # noqa: F401  (sets the process environment before TensorFlow loads)
from affect_tf.pipeline.config import PipelineConfig
from affect_tf.pipeline.inputs import PipelineInputs, prepare_inputs, synth_settings

# Module paths TFX imports in its executors (the package is installed; no module-file shims).
PREPROCESSING_FN = "affect_tf.pipeline.transform.preprocessing_fn"
RUN_FN = "affect_tf.pipeline.trainer.run_fn"


def create_data_pipeline(config: PipelineConfig, inputs: PipelineInputs):
    """The data half of ``create_pipeline`` (FaceExampleGen, schema, statistics, validation,
    Transform): the Beam-heavy part, to run or check on a cluster runner on its own."""
    from tfx import v1 as tfx

    return tfx.dsl.Pipeline(
        pipeline_name=f"{config.pipeline_name}-data",
        pipeline_root=config.pipeline_root,
        components=_data_components(config, inputs, {}),
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        ),
        beam_pipeline_args=config.beam_pipeline_args(),
    )


def create_pipeline(
    config: PipelineConfig, inputs: PipelineInputs, trainer_overrides: dict | None = None
):
    """The TFX pipeline for ``config`` (no side effects: ``prepare_inputs`` wrote the inputs).

    Args:
        config: The pipeline settings.
        inputs: ``prepare_inputs(config)``.
        trainer_overrides: Extra ``AffectConfig`` fields for the Trainer (tests use it to train
            a deliberately worse model).
    """
    from tfx import v1 as tfx

    overrides = {**config.model_overrides(), **(trainer_overrides or {})}
    data = _data_components(config, inputs, trainer_overrides or {})
    example_gen, schema_gen, transform = data[0], data[1], data[-1]
    trainer, latest_model = _trainer(config, example_gen, schema_gen, transform, overrides)
    from affect_tf.pipeline.example_gen import given_splits

    test = "test" in given_splits(config.corpus_format, inputs.input_base)
    deployment = _deployment(config, example_gen, schema_gen, transform, trainer, test)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[*data, *([latest_model] if latest_model else []), trainer, *deployment],
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        ),
        beam_pipeline_args=config.beam_pipeline_args(),
    )


def _data_components(config: PipelineConfig, inputs: PipelineInputs, extra: dict) -> list:
    """FaceExampleGen, ImportSchemaGen, StatisticsGen, ExampleValidator, Transform."""
    from tfx import v1 as tfx

    from affect_tf.pipeline.components.face_example_gen import FaceExampleGen

    synth = config.corpus_format == "synth"
    example_gen = FaceExampleGen(
        corpus_format=config.corpus_format,
        input_base=inputs.input_base,
        corpus_split=config.corpus_split,
        eval_percent=config.eval_percent,
        synth=synth_settings(config) if synth else None,
        detector=config.detector,
    )
    schema_gen = tfx.components.ImportSchemaGen(schema_file=inputs.schema_file)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    # The alignment comes from the Trainer's own model config (preset + overrides): one source.
    model = config.model_config(extra)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={"image_size": model.image_size, "margin": model.margin},
        # The Trainer maps raw examples through the graph itself (and caches the faces), so
        # nothing is materialised; the analyzers see the train split only.
        splits_config=tfx.proto.SplitsConfig(analyze=["train"]),
        materialize=False,
    )
    return [example_gen, schema_gen, statistics_gen, example_validator, transform]


def _trainer(config: PipelineConfig, example_gen, schema_gen, transform, overrides: dict):
    """The Trainer (and the warm-start resolver when ``warm_start``)."""
    from tfx import v1 as tfx

    latest_model = None
    if config.warm_start:
        latest_model = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        ).with_id("latest_model_resolver")
    corpora, corpus_weights = config.corpus_mixture()
    custom_config = {
        "preset": config.preset,
        "epochs": config.epochs,
        "strategy": config.strategy,
        "overrides": overrides,
        "patience": config.patience,
        "seed": config.seed,
        "warm_start": config.warm_start,
        # Off unless set: generated faces join the training stream (docs/pipeline.md).
        "gan_examples": config.gan_examples,
        # Off unless set: more corpora mixed into the training stream by weight.
        "corpora": corpora,
        "corpus_weights": corpus_weights,
    }
    trainer_class = tfx.components.Trainer
    pools = config.trainer_worker_pools()
    if pools:  # a Vertex AI training job of several replicas (PipelineConfig.trainer_workers)
        vertex = tfx.extensions.google_cloud_ai_platform
        trainer_class = vertex.Trainer
        custom_config.update(
            {
                "strategy": "multiworker",
                vertex.ENABLE_VERTEX_KEY: True,
                vertex.VERTEX_REGION_KEY: config.vertex_region,
                vertex.TRAINING_ARGS_KEY: pools,
            }
        )
    trainer = trainer_class(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=latest_model.outputs["model"] if latest_model else None,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=custom_config,
    )
    return trainer, latest_model


def _deployment(
    config: PipelineConfig, example_gen, schema_gen, transform, trainer, test: bool
) -> list:
    """The baseline resolver, Evaluator (the gate), the TestEvaluator when the corpus gives a
    Test split (a report, never gated on), Pusher and TFLiteExport."""
    from tfx import v1 as tfx

    from affect_tf.pipeline.components.tflite_export import TFLiteExport
    from affect_tf.pipeline.evaluation import TEST_EVALUATOR, eval_config

    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        schema=schema_gen.outputs["schema"],
        example_splits=["eval"],
        eval_config=eval_config(
            dict(config.thresholds), config.max_p_mtl_drop, config.au_threshold, config.min_gain
        ),
    )
    # The corpus' own Test split (FER+), when given: reported, never gated on.
    report = []
    if test:
        report.append(
            tfx.components.Evaluator(
                examples=example_gen.outputs["examples"],
                model=trainer.outputs["model"],
                schema=schema_gen.outputs["schema"],
                example_splits=["test"],
                eval_config=eval_config(
                    {}, config.max_p_mtl_drop, config.au_threshold, config.min_gain, gated=False
                ),
            ).with_id(TEST_EVALUATOR)
        )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)
        ),
    )
    tflite = TFLiteExport(
        pushed_model=pusher.outputs["pushed_model"],
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        tflite_root=config.tflite_dir,
        variants=" ".join(config.tflite_variants),
        parity_examples=config.parity_examples,
    )
    return [baseline, evaluator, *report, pusher, tflite]


def compile_kubeflow(config: PipelineConfig, output_file: str, image: str) -> str:
    """Compiles the same pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines (a
    pipeline-spec JSON to upload); each component then runs in ``image`` (an image with
    this package installed). Settings such as ``output_root`` should then be a bucket path.
    """
    from tfx import v1 as tfx

    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_filename=output_file,
    )
    runner.run(create_pipeline(config, prepare_inputs(config)), write_out=True)
    return output_file


def show_progress_logs() -> None:
    """The library's INFO lines (FaceExampleGen's N/total progress, the fit phases) on stderr:
    under ``tfx run create`` absl shows WARNING and up only, and every component runs in this
    process (LocalDagRunner; Beam in-process unless ``beam_workers`` > 0)."""
    import logging

    logger = logging.getLogger("affect_tf")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False  # absl's root handler would print the warnings twice
    logger.setLevel(logging.INFO)


if __name__ == "__main__":
    from tfx import v1 as tfx

    from affect_tf.pipeline.config import ConfigError

    show_progress_logs()

    try:
        _config = PipelineConfig.load()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(_config, prepare_inputs(_config)))
