"""TFLiteExport: a TFX component after the Pusher that writes checked TFLite variants.

Runs only when the Pusher pushed (the model was blessed); otherwise it records why nothing was
exported. The work is ``affect_tf.pipeline.tflite_export.export_pushed``.
"""

import logging

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact, standard_artifacts

from affect_tf.pipeline.tflite_export import TFLITE_ARTIFACT_TYPE


class TFLiteModel(artifact.Artifact):
    """TFLite flatbuffers (``affect_<variant>.tflite``) with their checks (``checks.json``)."""

    TYPE_NAME = TFLITE_ARTIFACT_TYPE


@component
def TFLiteExport(  # noqa: N802 (TFX component names are classes)
    pushed_model: InputArtifact[standard_artifacts.PushedModel],
    examples: InputArtifact[standard_artifacts.Examples],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    tflite_model: OutputArtifact[TFLiteModel],
    tflite_root: Parameter[str],
    variants: Parameter[str] = "fp32 fp16 int8",
    parity_examples: Parameter[int] = 128,
) -> None:
    from affect_tf.pipeline.tflite_export import export_pushed

    if not pushed_model.get_int_custom_property("pushed"):
        tflite_model.set_int_custom_property("exported", 0)
        tflite_model.set_string_custom_property("reason", "the model was not blessed/pushed")
        logging.getLogger(__name__).info("TFLite export skipped: the model was not pushed")
        return
    version = pushed_model.get_string_custom_property("pushed_version")
    checks = export_pushed(
        pushed_dir=pushed_model.get_string_custom_property("pushed_destination"),
        version=version,
        examples_dir=examples.uri,
        transform_dir=transform_graph.uri,
        artifact_dir=tflite_model.uri,
        tflite_root=tflite_root,
        variants=variants.split(),
        parity_examples=parity_examples,
    )
    tflite_model.set_int_custom_property("exported", 1)
    tflite_model.set_string_custom_property("version", version)
    tflite_model.set_json_value_custom_property("checks", checks)
