"""Files the pipeline reads that are made from its settings: the SynthAffect description and the
curated raw schema. Written once before the graph is built (``prepare_inputs``), so building the
graph (``pipelines/affect.py::create_pipeline``) has no side effects."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from affect_tf.pipeline.config import PipelineConfig
from affect_tf.pipeline.transform import write_raw_schema


@dataclasses.dataclass(frozen=True)
class PipelineInputs:
    """Where FaceExampleGen reads its corpus and ImportSchemaGen its schema."""

    input_base: str
    schema_file: str


def synth_settings(config: PipelineConfig) -> dict:
    """The SynthAffect corpus FaceExampleGen renders (``affect_tf.data.synth.SynthConfig``)."""
    return {
        "n": config.synth_n,
        "size": config.synth_size,
        "frames_per_video": config.synth_frames_per_video,
        "seed": config.synth_seed,
    }


def _synth_input_base(config: PipelineConfig) -> str:
    """The folder whose ``synth.json`` describes the SynthAffect corpus (rewritten only when it
    changes, so its fingerprint -- and TFX's cache -- follow the settings)."""
    folder = config.root / "corpus_synth"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "synth.json"
    text = json.dumps(synth_settings(config), indent=2, sort_keys=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return str(folder)


def prepare_inputs(config: PipelineConfig) -> PipelineInputs:
    """Writes what the pipeline's first components read; returns where it is."""
    synth = config.corpus_format == "synth"
    return PipelineInputs(
        input_base=_synth_input_base(config) if synth else str(Path(config.corpus_root).resolve()),
        # The tf.Example contract as a curated schema (types, shapes, label domains), so the
        # validator reports out-of-range labels and missing features as anomalies.
        schema_file=str(write_raw_schema(config.root / "schema")),
    )
