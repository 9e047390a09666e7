"""FaceExampleGen's Beam logic: corpus readers (or SynthAffect) -> serialized tf.Examples.

The TFX component (``affect_tf.pipeline.components.face_example_gen``) is a ``FileBasedExampleGen``
whose executor plugs ``faces_to_examples`` into TFX's base ExampleGen executor; that executor
then splits by the hash of ``video_id`` (``SplitConfig.partition_feature_name``), so frames of
one video never straddle train and eval, and writes GZIP TFRecords per split.

Every record that cannot be used is counted by reason: the reader's skips are known when the
corpus is read; the conversion's skips (unreadable image, no face, bad label) happen inside
Beam and are written as JSON lines under ``<examples>/skips/`` and merged afterwards
(``merge_skip_report``) into ``<examples>/skip_report.json`` and the artifact's properties.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam

from affect_tf.data import SkipReport, read_corpus
from affect_tf.data.corpus import CorpusError, Sample
from affect_tf.face.registry import DEFAULT_DETECTOR

log = logging.getLogger(__name__)
# Seconds between progress lines of a conversion worker.
PROGRESS_EVERY = 20.0
SKIPS_DIR = "skips"
SKIP_REPORT = "skip_report.json"
_SKIP, _NOTE = "skip", "note"

# The component's ``corpus_config`` execution property (JSON) and its keys.
CORPUS_CONFIG_KEY = "corpus_config"
FORMAT_KEY = "corpus_format"
SPLIT_KEY = "corpus_split"
SYNTH_KEY = "synth"
DETECTOR_KEY = "detector"  # affect_tf.face.DETECTORS; absent: the default detector
SKIP_DIR_KEY = "_skip_dir"  # set by the executor, not by users

# The corpus files whose size and mtime fingerprint a corpus (TFX caching reruns ExampleGen
# when they change). Image files are not fingerprinted: replacing an image in place, without
# touching the annotations, needs a manual re-run (``enable_cache=False``).
FINGERPRINT_PATTERNS = {
    "synth": "synth.json",
    "manifest": "manifest.*",
    "affectnet": "*.csv",
    "affwild2": "*_Challenge/*",
    "ferplus": "FER2013*/label.csv",
}
# Corpora whose own splits the pipeline keeps (FER+: Train -> train, Valid -> eval, as the
# published results are measured; Test -> test, reported on only) instead of splitting one of
# them by video: pipeline split -> (the input pattern that fingerprints it, the reader's split).
GIVEN_SPLITS: dict[str, dict[str, tuple[str, str]]] = {
    "ferplus": {
        "train": ("FER2013Train/label.csv", "train"),
        "eval": ("FER2013Valid/label.csv", "validation"),
        "test": ("FER2013Test/label.csv", "test"),
    },
}
# Given splits that are read only when the corpus has them: reported on (the pipeline's
# TestEvaluator), never trained, validated or gated on.
REPORT_SPLITS = ("test",)


def given_splits(format: str, root: str) -> dict[str, tuple[str, str]]:
    """The corpus' own splits that ``root`` holds (``GIVEN_SPLITS``; a report split only when
    its file is there)."""
    return {
        name: (pattern, split)
        for name, (pattern, split) in GIVEN_SPLITS.get(format, {}).items()
        if name not in REPORT_SPLITS or (Path(root) / pattern).is_file()
    }


def corpus_split_of(format: str, split_pattern: str, default: str) -> str:
    """The reader's split for one input split of FaceExampleGen (``default`` for corpora split
    by video)."""
    for pattern, split in GIVEN_SPLITS.get(format, {}).values():
        if pattern == split_pattern:
            return split
    return default


def read_samples(format: str, root: str, split: str) -> tuple[list[Sample], SkipReport]:
    """All samples of a corpus and the reader's skip report.

    Raises:
        CorpusError: When the corpus cannot be read as a whole, or holds no usable sample.
    """
    report = SkipReport()
    samples = list(read_corpus(format, root, split, report))
    if not samples:
        raise CorpusError(
            f"Expected usable samples in the {format} corpus at {root} (split {split}). "
            f"Received: none; skipped {dict(report.skipped) or 'nothing'}"
        )
    return samples, report


class _SampleToExample(beam.DoFn):
    """Sample -> serialized tf.Example; skips and notes go to a tagged output.

    Long conversions show progress: every ``PROGRESS_EVERY`` seconds each worker logs how many
    samples it converted of the corpus' total, at what rate, and its skips by reason; the
    counts are also Beam metrics (``faces_written``, ``faces_skipped``, and
    ``faces_from_<source>``: the detector that found each face, or ``given`` landmarks ...).
    """

    def __init__(self, total: int, detector: str) -> None:
        self._total = total
        self._detector = detector

    def setup(self) -> None:
        from affect_tf.data.convert import Converter

        self._converter = Converter(detector=self._detector)
        self._done, self._skipped = 0, collections.Counter()
        self._found_by: collections.Counter[str] = collections.Counter()
        self._start = self._last = time.monotonic()
        self._written_counter = beam.metrics.Metrics.counter("FaceExampleGen", "faces_written")
        self._skipped_counter = beam.metrics.Metrics.counter("FaceExampleGen", "faces_skipped")

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        log.info(
            "FaceExampleGen: %d/%d samples converted by this worker (%.1f/s), faces from %s, "
            "skipped %s",
            self._done,
            self._total,
            self._done / max(now - self._start, 1e-9),
            dict(self._found_by) or "none yet",
            dict(self._skipped) or "none",
        )

    def process(self, sample: Sample) -> Iterator[Any]:
        from affect_tf.data.convert import SkipSample
        from affect_tf.data.examples import encode_example

        report = SkipReport()
        self._done += 1
        self._progress()
        try:
            record = self._converter.to_record(sample, report)
        except SkipSample as e:
            self._skipped[e.reason] += 1
            self._skipped_counter.inc()
            yield beam.pvalue.TaggedOutput(
                _SKIP, _line(_SKIP, e.reason, str(sample.path), e.detail)
            )
            return
        self._written_counter.inc()
        self._found_by[self._converter.found_by] += 1
        beam.metrics.Metrics.counter(
            "FaceExampleGen", f"faces_from_{self._converter.found_by}"
        ).inc()
        for reason, examples in report.examples.items():
            for example in examples:
                yield beam.pvalue.TaggedOutput(_NOTE, _line(_NOTE, reason, example, ""))
        # Protos, not bytes: TFX's split by ``partition_feature_name`` reads the feature.
        yield encode_example(record)


def _line(kind: str, reason: str, where: str, detail: str) -> str:
    return json.dumps({"kind": kind, "reason": reason, "where": where, "detail": detail})


def _synth_video(video: int, synth: dict) -> Iterator[Any]:
    from affect_tf.data.examples import encode_example
    from affect_tf.data.synth import SynthConfig, video_records

    for record in video_records(SynthConfig(**synth), video):
        yield encode_example(record)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def faces_to_examples(
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """The ExampleGen PTransform: the corpus at ``input_base`` -> ``tf.train.Example`` protos."""
    config = json.loads(exec_properties[CORPUS_CONFIG_KEY])
    format = config.get(FORMAT_KEY, "manifest")
    if format == "synth":
        from affect_tf.data.synth import SynthConfig

        synth = config.get(SYNTH_KEY, {})
        videos = range(SynthConfig(**synth).num_videos)
        # One element per video: the renderer draws a video's frames in sequence.
        return (
            pipeline
            | "Videos" >> beam.Create(list(videos), reshuffle=True)
            | "RenderSynthAffect" >> beam.FlatMap(_synth_video, synth)
        )
    split = corpus_split_of(format, split_pattern, config[SPLIT_KEY])
    samples, report = read_samples(format, exec_properties["input_base"], split)
    detector = config.get(DETECTOR_KEY, DEFAULT_DETECTOR)
    skip_dir = Path(config[SKIP_DIR_KEY])
    skip_dir.mkdir(parents=True, exist_ok=True)
    # One reader report and one skip file per input split (FER+ reads two).
    (skip_dir / f"reader_{split}.json").write_text(
        json.dumps({"samples": len(samples), **_report_lines(report)})
    )
    results = (
        pipeline
        | f"Samples_{split}" >> beam.Create(samples, reshuffle=True)
        | f"ToExamples_{split}"
        >> beam.ParDo(_SampleToExample(len(samples), detector)).with_outputs(
            _SKIP, _NOTE, main="ok"
        )
    )
    _ = (
        (results[_SKIP], results[_NOTE])
        | f"SkipsAndNotes_{split}" >> beam.Flatten()
        | f"WriteSkips_{split}"
        >> beam.io.WriteToText(str(skip_dir / f"convert_{split}"), file_name_suffix=".jsonl")
    )
    return results.ok


def _report_lines(report: SkipReport) -> dict:
    return {
        "skipped": dict(report.skipped),
        "notes": dict(report.notes),
        "examples": dict(report.examples),
    }


def merge_skip_report(skip_dir: str | Path) -> tuple[SkipReport, int | None, int]:
    """The reader's and the conversion's skips as one ``SkipReport``.

    Returns:
        (the report, samples the reader produced (None without a reader, i.e. SynthAffect),
        samples the conversion skipped).
    """
    skip_dir = Path(skip_dir)
    report = SkipReport()
    samples = None
    for reader in sorted(skip_dir.glob("reader*.json")):
        data = json.loads(reader.read_text())
        samples = (samples or 0) + data["samples"]
        report.skipped.update(data["skipped"])
        report.notes.update(data["notes"])
        for reason, examples in data["examples"].items():
            report.examples[reason].extend(examples[: report.keep])
    converted_skips = 0
    for path in sorted(skip_dir.glob("convert*.jsonl")):
        for line in _lines(path.read_text().splitlines()):
            if line["kind"] == _SKIP:
                report.skip(line["reason"], line["where"], line["detail"])
                converted_skips += 1
            else:
                report.note(line["reason"], line["where"], line["detail"])
    return report, samples, converted_skips


def _lines(lines: Iterable[str]) -> Iterator[dict]:
    for line in lines:
        if line.strip():
            yield json.loads(line)


def finish_examples(examples_uri: str, skip_dir: str | Path) -> dict:
    """After the Beam run: merges the skip reports into ``<examples>/skip_report.json``.

    Returns:
        ``{"samples", "written", "skipped", "report"}`` for the artifact's properties.

    Raises:
        CorpusError: When every sample of the corpus was skipped.
    """
    report, samples, converted_skips = merge_skip_report(skip_dir)
    written = None if samples is None else samples - converted_skips
    out = {"samples": samples, "written": written, "skipped": report.total_skipped}
    summary = {**out, **report.to_dict()}
    (Path(examples_uri) / SKIP_REPORT).write_text(json.dumps(summary, indent=2))
    if written == 0:
        raise CorpusError(
            f"Expected at least one usable face. Received: all {samples} samples were skipped "
            f"({dict(report.skipped)}); details in {Path(examples_uri) / SKIP_REPORT}"
        )
    return {**out, "report": summary}
