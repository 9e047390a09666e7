"""The TFX pipeline's one configuration object: defaults < YAML file < environment variables.

Every field can be set in a YAML file (``AFFECT_CONFIG=path.yaml``, keys are the field names)
and overridden by an environment variable ``AFFECT_<FIELD>`` (upper case), which is how
``make demo`` and ``tfx run create`` pass settings (the ``tfx`` CLI runs the pipeline file with
the caller's environment). Values are checked when the config is built, so a bad setting fails
before any component runs, with a message naming it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from affect_tf.data import SPLITS
from affect_tf.evaluation.report import DEFAULT_MIN_GAIN, THRESHOLD_TASK
from affect_tf.export.tflite import VARIANTS as TFLITE_VARIANTS
from affect_tf.face.registry import DEFAULT_DETECTOR, DETECTORS
from affect_tf.model.config import PRESETS
from affect_tf.model.shipped import SYNTHAFFECT, WeightsCardError, find_shipped, shipped
from affect_tf.pipeline.settings import CONFIG_ENV, ConfigError, coerce, read_yaml

ENV_PREFIX = "AFFECT_"
CORPUS_FORMATS = ("synth", "manifest", "affectnet", "affwild2", "ferplus")
# ``tf.distribute`` choices of the Trainer (``affect_tf.pipeline.trainer.choose_strategy``).
STRATEGIES = ("auto", "mirrored", "multiworker", "default")
# The ABAW metric names TFMA reports (``affect_tf.pipeline.evaluation``) that may carry a
# value threshold; keys of ``PipelineConfig.thresholds``.
THRESHOLD_METRICS = tuple(THRESHOLD_TASK)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything the ``affect`` TFX pipeline needs.

    Attributes:
        pipeline_name: TFX pipeline name (the ``tfx`` CLI's ``--pipeline_name``).
        output_root: Root of everything the pipeline writes: ``pipeline/`` (artifacts),
            ``metadata.sqlite`` (ML Metadata), ``serving/affect/<version>/`` (the TF Serving
            layout), ``tflite/<version>/``, ``summary.json``.
        corpus_format: ``synth`` (SynthAffect rendered inside FaceExampleGen, no files needed),
            ``manifest``, ``affectnet``, ``affwild2`` or ``ferplus`` (ready-cropped faces: no
            detector runs).
        corpus_root: The corpus folder (not used for ``synth``).
        detector: The face detector FaceExampleGen uses on images without boxes and landmarks
            (``blazeface`` or ``mtcnn``; ``affect_tf.face.DETECTORS``).
        corpus_split: Which of the corpus' own splits to read (``train``/``validation``;
            ``test`` for FER+);
            FaceExampleGen then splits it by video into train/eval.
        synth_n, synth_size, synth_frames_per_video, synth_seed: SynthAffect settings.
        eval_percent: Share of videos (hash of ``video_id``) in the eval split.
        preset: Model preset (``affect_tf.model.config.PRESETS``).
        epochs: Training epochs (None: the preset's).
        batch_size: Training batch size (None: the preset's).
        patience: Early stopping patience (epochs without a better validation P_MTL).
        seed: Seed of training (weights, data order, augmentation).
        weights, schedule, imbalance, augment: Override the preset's ``AffectConfig`` fields
            (None: the preset's): backbone initialisation (``imagenet``, a ``.weights.h5``, an
            earlier ``.keras`` model), ``scratch``/``frozen``/``finetune``, the expression
            imbalance treatment, augmentation layers. ``weights`` without ``schedule`` on a
            ``scratch`` preset fine-tunes.
        cache_embeddings: With ``schedule=frozen``: the backbone runs once, the heads train on
            its features.
        warm_start: Start the Trainer from the latest Model this pipeline trained (TFX
            ``base_model``; same architecture), e.g. to continue on new data.
        strategy: ``tf.distribute`` choice: ``auto`` (MirroredStrategy + mixed float16 when
            GPUs are visible), ``mirrored``, ``multiworker`` (TF_CONFIG from the cluster) or
            ``default``.
        thresholds: Absolute value thresholds (lower bounds) on the eval split, by metric name
            in ``THRESHOLD_METRICS``; none by default. Each applies only when the eval split
            labels its task (a threshold on a task the corpus lacks is ignored, and the summary
            says so); ``p_mtl`` is over the measured tasks.
        min_gain: The default gate, relative to the trivial predictors on the same eval split:
            each measured task's score (mean CCC, expression macro F1, AU mean F1) must be at
            least this much above a constant VA (CCC 0), the majority class, and every AU on.
            -1 turns it off.
        max_p_mtl_drop: Change threshold: the candidate's P_MTL may be at most this much below
            the latest blessed model's, both over the tasks the eval split labels (0 = it must
            be at least as good).
        au_threshold: Probability threshold of the AU decisions in evaluation.
        tflite_variants: Which TFLite files to export (subset of fp32, fp16, int8).
        parity_examples: Eval examples used for the TFLite vs SavedModel agreement check and
            the int8 calibration.
        beam_workers: Beam DirectRunner worker processes (0 = in-process, the fastest for
            small corpora; N > 0 = multi-processing).
        beam_args: Extra Beam pipeline arguments (e.g. ``--runner=FlinkRunner ...``), space
            separated in the environment variable, a list in YAML.
        enable_cache: TFX component caching (unchanged inputs -> cached outputs).
        trainer_workers: Trainer replicas. 1: the Trainer runs in the orchestrator's process.
            N > 1: the Trainer runs as a Vertex AI training job of N replicas (a chief pool of
            one and a worker pool of N - 1, ``trainer_machine_type`` each, ``trainer_image``,
            in ``vertex_project``/``vertex_region``) with ``MultiWorkerMirroredStrategy``; the
            one place the worker pools are configured (``trainer_worker_pools``).
        corpora: More corpora for the Trainer's training stream, each ``PATH[:WEIGHT]``
            (tf.Example files, a folder or a glob, e.g. ``affect-tf convert`` output), each
            labelling what it has (``affect_tf.data.mixing``); never in validation or the
            Evaluator's splits. With weights, every corpus needs one, the pipeline's own corpus
            ``corpus_weight``; without, the files join the stream whole.
        corpus_weight: The mixing weight of the pipeline's own corpus (FaceExampleGen's train
            split) when ``corpora`` carry weights.
        gan_examples: Optional generated, labelled faces (tf.Example files or a glob, e.g. from
            ``affect-tf gan examples``) that the Trainer adds to its training stream (never to
            validation or the Evaluator's eval split). Empty (the default): off.
    """

    pipeline_name: str = "affect"
    output_root: str = "runs/demo"
    corpus_format: str = "synth"
    corpus_root: str = ""
    corpus_split: str = "train"
    detector: str = DEFAULT_DETECTOR
    synth_n: int = 4000
    synth_size: int = 96
    synth_frames_per_video: int = 8
    synth_seed: int = 0
    eval_percent: int = 20
    preset: str = "demo"
    epochs: int | None = None
    batch_size: int | None = None
    patience: int = 5
    seed: int = 0
    weights: str | None = None
    schedule: str | None = None
    imbalance: str | None = None
    augment: bool | None = None
    cache_embeddings: bool = False
    warm_start: bool = False
    strategy: str = "auto"
    thresholds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    min_gain: float = DEFAULT_MIN_GAIN
    max_p_mtl_drop: float = 0.05
    au_threshold: float = 0.5
    tflite_variants: tuple[str, ...] = TFLITE_VARIANTS
    parity_examples: int = 128
    beam_workers: int = 0
    beam_args: tuple[str, ...] = ()
    enable_cache: bool = True
    gan_examples: str = ""
    corpora: tuple[str, ...] = ()
    corpus_weight: float | None = None
    trainer_workers: int = 1
    trainer_machine_type: str = "n1-standard-8"
    trainer_image: str = ""
    vertex_project: str = ""
    vertex_region: str = "us-central1"

    def __post_init__(self) -> None:
        def fail(name: str, expected: str) -> None:
            raise ConfigError(
                f"Expected {expected}. Received: {name}={getattr(self, name)!r} "
                f"(set {ENV_PREFIX}{name.upper()} or '{name}' in the {CONFIG_ENV} YAML file)"
            )

        if not self.pipeline_name or not self.pipeline_name.replace("_", "").isalnum():
            fail("pipeline_name", "a name of letters, digits and underscores")
        if not self.output_root:
            fail("output_root", "a folder")
        if self.corpus_format not in CORPUS_FORMATS:
            fail("corpus_format", f"one of {CORPUS_FORMATS}")
        if self.corpus_format != "synth":
            if not self.corpus_root:
                fail("corpus_root", f"the corpus folder for corpus_format={self.corpus_format!r}")
            if not Path(self.corpus_root).is_dir():
                fail("corpus_root", "an existing folder")
        if self.corpus_split not in SPLITS:
            fail("corpus_split", f"one of {SPLITS}")
        if self.detector not in DETECTORS:
            fail("detector", f"a face detector in {DETECTORS}")
        if self.synth_n < 16:
            fail("synth_n", "at least 16 faces")
        if not 32 <= self.synth_size <= 512:
            fail("synth_size", "a frame side in [32, 512] pixels")
        if self.synth_frames_per_video < 1:
            fail("synth_frames_per_video", "at least 1")
        if not 1 <= self.eval_percent <= 50:
            fail("eval_percent", "a percentage in [1, 50]")
        if self.preset not in PRESETS:
            fail("preset", f"one of {sorted(PRESETS)}")
        if self.epochs is not None and self.epochs < 1:
            fail("epochs", "at least 1 (or unset for the preset's)")
        if self.batch_size is not None and self.batch_size < 1:
            fail("batch_size", "at least 1 (or unset for the preset's)")
        if self.patience < 1:
            fail("patience", "at least 1 epoch")
        self._check_weights(fail)
        try:
            self.model_config()
        except ValueError as error:
            name = next(
                (
                    k
                    for k in ("cache_embeddings", "schedule", "imbalance", "weights")
                    if k in str(error)
                ),
                "preset",
            )
            fail(name, f"a valid model setting ({error})")
        if self.strategy not in STRATEGIES:
            fail("strategy", f"one of {STRATEGIES}")
        if self.gan_examples:
            from glob import glob

            if not (Path(self.gan_examples).exists() or glob(self.gan_examples)):
                fail("gan_examples", "tf.Example files of generated faces (a file, folder or glob)")
        self._check_corpora(fail)
        unknown = set(self.thresholds) - set(THRESHOLD_METRICS)
        if unknown:
            fail("thresholds", f"metric names from {THRESHOLD_METRICS}")
        for name, value in self.thresholds.items():
            bound = 3.0 if name == "p_mtl" else 1.0
            if not -1.0 <= float(value) <= bound:
                fail("thresholds", f"{name} in [-1, {bound}]")
        if not -1.0 <= self.min_gain <= 1.0:
            fail(
                "min_gain", "a score margin in [-1, 1] (-1: no gate relative to trivial baselines)"
            )
        if not 0.0 <= self.max_p_mtl_drop <= 3.0:
            fail("max_p_mtl_drop", "a P_MTL difference in [0, 3]")
        if not 0.0 < self.au_threshold < 1.0:
            fail("au_threshold", "a probability in (0, 1)")
        if not set(self.tflite_variants) <= set(TFLITE_VARIANTS):
            fail("tflite_variants", f"a subset of {TFLITE_VARIANTS}")
        if not 8 <= self.parity_examples <= 10_000:
            fail("parity_examples", "8 to 10000 examples")
        if not 0 <= self.beam_workers <= 256:
            fail("beam_workers", "0 (in-process) to 256 processes")
        if self.trainer_workers < 1:
            fail("trainer_workers", "at least 1 Trainer replica")
        if self.trainer_workers > 1:
            for name in ("vertex_project", "vertex_region", "trainer_image"):
                if not getattr(self, name):
                    fail(name, f"a value when trainer_workers={self.trainer_workers} (Vertex AI)")
            if self.strategy not in ("auto", "multiworker"):
                fail("strategy", "'auto' or 'multiworker' with trainer_workers > 1")

    def corpus_mixture(self) -> tuple[list[str], list[float] | None]:
        """``corpora`` as paths and the normalised weights (the pipeline's corpus first), or
        None when no weight is given.

        Raises:
            CorpusError: A weight that does not parse or is negative; weights on some corpora
                only; weights that sum to 0.
        """
        from affect_tf.data.mixing import CorpusSpec, mixing_weights, parse_corpus

        specs = [parse_corpus(text) for text in self.corpora]
        own = CorpusSpec(f"{self.corpus_format} corpus (corpus_weight)", self.corpus_weight)
        weights = mixing_weights([own, *specs]) if specs else None
        return [s.data for s in specs], weights

    def _check_corpora(self, fail) -> None:
        """``corpora``: weights that mix, files that exist."""
        from glob import glob

        from affect_tf.data.corpus import CorpusError

        if not self.corpora:
            if self.corpus_weight is not None:
                fail("corpus_weight", "corpora to mix the pipeline's corpus with (or unset)")
            return
        try:
            paths, _ = self.corpus_mixture()
        except CorpusError as e:
            fail("corpora", f"corpora that mix ({e})")
        for path in paths:
            if not (Path(path).exists() or glob(path)):
                fail("corpora", f"tf.Example files for {path!r} (a file, folder or glob)")

    def _check_weights(self, fail) -> None:
        """``weights``: shipped for the preset's backbone and size, or a file that exists."""
        if self.weights == SYNTHAFFECT and self.preset in PRESETS:
            preset = PRESETS[self.preset]
            try:
                find_shipped(preset.backbone, preset.image_size)
            except WeightsCardError:
                listing = ", ".join(f"{w.label} (preset {w.card['preset']!r})" for w in shipped())
                fail(
                    "weights",
                    f"'synthaffect' with a preset whose backbone has shipped weights ({listing}; "
                    f"preset {self.preset!r} is {preset.backbone} at {preset.image_size}px)",
                )
        elif self.weights and self.weights != "imagenet" and not Path(self.weights).is_file():
            fail(
                "weights",
                "'synthaffect', 'imagenet', a .weights.h5 file or a .keras model that exists",
            )

    def model_overrides(self) -> dict:
        """The ``AffectConfig`` fields this config overrides (what the Trainer receives)."""
        overrides = {
            "batch_size": self.batch_size,
            "weights": self.weights,
            "schedule": self.schedule,
            "imbalance": self.imbalance,
            "augment": self.augment,
            "cache_embeddings": self.cache_embeddings or None,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if self.weights and self.schedule is None and PRESETS[self.preset].schedule == "scratch":
            overrides["schedule"] = "finetune"
        return overrides

    def model_config(self, extra: dict | None = None):
        """The Trainer's ``AffectConfig``: the preset with ``model_overrides`` (and ``extra``)."""
        return PRESETS[self.preset].replace(**{**self.model_overrides(), **(extra or {})})

    # --- derived paths --------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.output_root).resolve()

    @property
    def pipeline_root(self) -> str:
        return str(self.root / "pipeline")

    @property
    def metadata_path(self) -> str:
        return str(self.root / "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        """TF Serving's ``--model_base_path``: versions are ``<serving_dir>/<version>/``."""
        return str(self.root / "serving" / "affect")

    @property
    def tflite_dir(self) -> str:
        return str(self.root / "tflite")

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    def beam_pipeline_args(self) -> list[str]:
        """The Beam arguments of every component: the user's ``beam_args``; without a
        ``--runner`` there, Beam's FnApiRunner on this machine (in-process, or ``beam_workers``
        processes).

        Beam 2.77's default runner first tries to download the Prism binary from GitHub on
        every pipeline (and falls back to the FnApiRunner when it cannot), so the local runner
        is named explicitly: no pipeline of the project reaches the network.

        Raises:
            ConfigError: ``--runner`` names a runner Beam does not have.
        """
        runner = _runner_of(self.beam_args)
        args = []
        if runner is None:
            args.append("--runner=FnApiRunner")
        else:
            _check_runner(runner)
        if self.beam_workers > 0:
            args += [
                "--direct_running_mode=multi_processing",
                f"--direct_num_workers={self.beam_workers}",
            ]
        return args + list(self.beam_args)

    def trainer_worker_pools(self) -> dict | None:
        """The Vertex AI CustomJob of a multi-worker Trainer (TFX's ``TRAINING_ARGS_KEY``):
        a chief pool of one replica and a worker pool of ``trainer_workers - 1``; None for a
        one-replica Trainer. Vertex sets each replica's ``TF_CONFIG``."""
        if self.trainer_workers < 2:
            return None
        pool = {
            "machine_spec": {"machine_type": self.trainer_machine_type},
            "container_spec": {"image_uri": self.trainer_image},
        }
        return {
            "project": self.vertex_project,
            "job_spec": {
                "worker_pool_specs": [
                    {**pool, "replica_count": 1},
                    {**pool, "replica_count": self.trainer_workers - 1},
                ]
            },
        }

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["thresholds"] = dict(self.thresholds)
        return out

    # --- loading ----------------------------------------------------------------------------

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> PipelineConfig:
        """Defaults, then the ``AFFECT_CONFIG`` YAML file, then ``AFFECT_*`` variables, then
        ``overrides`` (for tests).

        Raises:
            ConfigError: Naming the setting (unknown key, wrong type, out of range).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if environ.get(CONFIG_ENV):
            values.update(read_yaml(Path(environ[CONFIG_ENV])))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in fields:
            key = ENV_PREFIX + name.upper()
            if key in environ and environ[key] != "":
                values[name] = environ[key]
        values.update(overrides)
        unknown = set(values) - set(fields)
        if unknown:
            raise ConfigError(
                f"Expected pipeline settings from {sorted(fields)}. "
                f"Received: unknown {sorted(unknown)}"
            )
        return cls(**{name: coerce(name, value, fields[name]) for name, value in values.items()})


def _runner_of(beam_args: Sequence[str]) -> str | None:
    """The value of ``--runner`` in Beam arguments (``--runner=X`` or ``--runner X``)."""
    for i, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            return arg.split("=", 1)[1]
        if arg == "--runner" and i + 1 < len(beam_args):
            return beam_args[i + 1]
    return None


def _check_runner(name: str) -> None:
    """A clear error for a runner name Beam does not know (Beam's own comes at run time, from
    deep inside the first component)."""
    from apache_beam.runners.runner import create_runner

    try:
        create_runner(name)
    except (ValueError, ImportError) as e:
        raise ConfigError(
            "Expected a Beam runner (FnApiRunner, DirectRunner, PortableRunner, FlinkRunner, "
            f"SparkRunner, DataflowRunner, ...). Received: --runner={name} in beam_args "
            f"({ENV_PREFIX}BEAM_ARGS): {str(e).splitlines()[0][:160]}"
        ) from None
