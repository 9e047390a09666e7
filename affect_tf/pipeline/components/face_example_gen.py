"""FaceExampleGen: a file-based TFX ExampleGen over affect-tf's corpus readers and SynthAffect.

The Beam logic lives in ``affect_tf.pipeline.example_gen``; this module only declares the
component (spec, executor, driver) for TFX.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from affect_tf.face.registry import DEFAULT_DETECTOR
from affect_tf.pipeline import example_gen as eg


class FaceExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's spec plus the corpus description (JSON)."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        eg.CORPUS_CONFIG_KEY: ExecutionParameter(type=str),
    }


class Executor(BaseExampleGenExecutor):
    """TFX's ExampleGen executor with affect-tf's PTransform and skip accounting."""

    def GetInputSourceToExamplePTransform(self):  # noqa: N802 (TFX's name)
        return eg.faces_to_examples

    def Do(self, input_dict, output_dict, exec_properties: dict[str, Any]) -> None:  # noqa: N802
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        skip_dir = os.path.join(examples.uri, eg.SKIPS_DIR)
        config = json.loads(exec_properties[eg.CORPUS_CONFIG_KEY])
        config[eg.SKIP_DIR_KEY] = skip_dir
        exec_properties = {**exec_properties, eg.CORPUS_CONFIG_KEY: json.dumps(config)}
        super().Do(input_dict, output_dict, exec_properties)
        result = eg.finish_examples(examples.uri, skip_dir)
        if result["written"] is not None:
            examples.set_int_custom_property("written", result["written"])
        examples.set_int_custom_property("skipped", result["skipped"])
        examples.set_json_value_custom_property("skip_report", result["report"])


class FaceExampleGen(FileBasedExampleGen):
    """Reads a corpus (``synth``, ``manifest``, ``affectnet``, ``affwild2``, ``ferplus``) into
    tf.Examples split by video into ``train`` and ``eval``; a corpus with splits of its own
    (``example_gen.GIVEN_SPLITS``: FER+ Train -> train, Valid -> eval, and Test -> test when
    the folder has it, for the TestEvaluator's report) keeps them.

    Args:
        corpus_format: One of ``affect_tf.pipeline.config.CORPUS_FORMATS``.
        input_base: The corpus folder (for ``synth``: the folder holding ``synth.json``).
        corpus_split: The corpus' own split to read (``train``/``validation``).
        eval_percent: Share of videos in the eval split (hash of ``video_id``).
        synth: ``SynthConfig`` fields for ``synth``.
        detector: The face detector for corpora without boxes and landmarks
            (``affect_tf.face.DETECTORS``).
    """

    SPEC_CLASS = FaceExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        corpus_format: str,
        input_base: str,
        corpus_split: str = "train",
        eval_percent: int = 20,
        synth: dict | None = None,
        detector: str = DEFAULT_DETECTOR,
    ) -> None:
        from tfx import types
        from tfx.types import standard_artifacts

        given = eg.given_splits(corpus_format, input_base)
        if given:  # the corpus' own splits, kept (TFX names the outputs after the inputs)
            input_config = example_gen_pb2.Input(
                splits=[
                    example_gen_pb2.Input.Split(name=name, pattern=pattern)
                    for name, (pattern, _) in given.items()
                ]
            )
            output_config = example_gen_pb2.Output()
        else:
            input_config = example_gen_pb2.Input(
                splits=[
                    example_gen_pb2.Input.Split(
                        name="corpus", pattern=eg.FINGERPRINT_PATTERNS[corpus_format]
                    )
                ]
            )
            output_config = example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[
                        example_gen_pb2.SplitConfig.Split(
                            name="train", hash_buckets=100 - eval_percent
                        ),
                        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_percent),
                    ],
                    # Frames of one video (or one subject) stay together.
                    partition_feature_name="video_id",
                )
            )
        corpus_config = json.dumps(
            {
                eg.FORMAT_KEY: corpus_format,
                eg.SPLIT_KEY: corpus_split,
                eg.SYNTH_KEY: synth or {},
                eg.DETECTOR_KEY: detector,
            },
            sort_keys=True,
        )
        spec = FaceExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=None,
            range_config=None,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            examples=types.Channel(type=standard_artifacts.Examples),
            corpus_config=corpus_config,
        )
        # FileBasedExampleGen.__init__ builds its own spec; skip to the base component's.
        super(FileBasedExampleGen, self).__init__(spec=spec)


__all__ = ["Executor", "FaceExampleGen", "FaceExampleGenSpec"]
