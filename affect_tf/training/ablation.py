"""Ablations: the source papers' research questions as arms trained on the same data, budget
and seeds, summarised with their seed spread (``affect-tf ablate``).

A study is a set of arms; an arm is a set of ``AffectConfig`` overrides (the first arm of each
study is its reference). Every arm is trained ``seeds`` times (CPU training is not
bit-reproducible) with ``affect_tf.training.tfrecords.train`` and evaluated on the validation
data with ``affect_tf.training.tfrecords.evaluate``; its model is an ordinary ``.keras`` file
the user can evaluate, export and serve. Finished arm-seeds are not re-run (their
``result.json`` is the mark), and an arm-seed that would train what another study of the set
already trained (the same config, data, budget and seed: the studies' references are often one
run) reuses that one.

Studies available here:

- ``loss`` (Kollias et al.): CCC vs MSE for VA, CE vs focal for expressions, weighted vs plain
  BCE for AUs.
- ``weights`` (Kollias et al.): the task weights α, β (VA and AU, expressions at 1) and the
  learning rate.
- ``gcn`` (Emotion-GCN): GCN vs MLP heads; the adjacency's threshold τ and re-weighting p;
  the data-derived vs a learned adjacency (``AffectConfig.gcn_adjacency``).
- ``features`` (Savchenko): the AU and VA heads reading the frozen embedding, the expression
  scores, or both concatenated (``AffectConfig.head_features``).
- ``heads`` (Savchenko): simple heads on frozen (shipped SynthAffect) backbone features vs the
  whole network trained.
- ``smoothing`` (Savchenko): one model per seed, evaluated with mean and median windows k.
- ``multitask`` (the seeds' question across corpora): the first ``--data`` corpus alone vs every
  corpus mixed (FER+ ∪ SynthAffect: does learning VA and AUs on synthetic faces help or hurt
  expressions on real ones?), and the mix with the expression task alone (which separates the
  extra faces from the extra tasks).

Savchenko's scores come from a model pretrained on another corpus; here they are the
network's own expression head (gradients stopped), so the question is asked of the AU and VA
heads, on data that labels them (SynthAffect).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from affect_tf.core.errors import UserError
from affect_tf.training.ablation_report import (
    METRICS,
    SMOOTHING_WINDOWS,
    markdown,
    plot,
    plot_smoothing,
    smoothing_markdown,
    summarise,
)

if TYPE_CHECKING:
    from affect_tf.model.config import AffectConfig

log = logging.getLogger(__name__)

# Savchenko's set-up: the shipped SynthAffect backbone fixed, run once over the data.
FROZEN = {"weights": "synthaffect", "schedule": "frozen", "cache_embeddings": True}
STUDIES: dict[str, dict[str, dict]] = {
    "loss": {
        "ccc+ce+weighted_bce": {},
        "mse_va": {"va_loss": "mse"},
        "focal_expr": {"focal_gamma": 2.0},
        "plain_bce_au": {"class_weighting": False},
    },
    "weights": {
        "a=b=1,lr=2e-3": {},
        "a=b=0.5,lr=2e-3": {"loss_weights": (0.5, 1.0, 0.5)},
        "a=b=1,lr=1e-3": {"learning_rate": 1e-3},
        "a=b=0.5,lr=1e-3": {"loss_weights": (0.5, 1.0, 0.5), "learning_rate": 1e-3},
    },
    "gcn": {
        "mlp": {"heads": "mlp"},
        "gcn,tau=0.3,p=0.25": {"heads": "gcn"},
        "gcn,tau=0.2": {"heads": "gcn", "gcn_tau": 0.2},
        "gcn,tau=0.4": {"heads": "gcn", "gcn_tau": 0.4},
        "gcn,p=0.5": {"heads": "gcn", "gcn_p": 0.5},
        "gcn,learned_adjacency": {"heads": "gcn", "gcn_adjacency": "learned"},
    },
    # Savchenko: what the per-task heads read, on frozen (shipped SynthAffect) features. The
    # expression head makes the scores, so the arms differ in the AU and VA heads only.
    "features": {
        "embeddings": {**FROZEN, "heads": "mlp"},
        "scores": {**FROZEN, "heads": "mlp", "head_features": "scores"},
        "embeddings+scores": {**FROZEN, "heads": "mlp", "head_features": "both"},
    },
    "heads": {
        "whole_network": {},
        "heads_on_frozen_features": FROZEN,
    },
    "smoothing": {"model": {}},
    # ``corpora`` is not a config field: which of the training corpora the arm trains on.
    "multitask": {
        "first_corpus_alone": {"corpora": "first"},
        "all_corpora": {},
        "all_corpora,expressions_only": {"tasks": ("expression",)},
    },
}
# The task an arm's change acts on: the arm is skipped (with its reason) where the validation
# data does not label that task (FER+ labels expressions only: an MSE-for-VA arm would train
# the same network as the reference there).
ARM_TASK = {"mse_va": "va", "focal_expr": "expression", "plain_bce_au": "au"}
TASK_METRICS = {"va": ("va",), "expression": ("expr_f1", "expr_acc"), "au": ("au_f1",)}
# A study whose arms all act on these tasks is skipped where the validation data labels none.
STUDY_TASKS = {"features": ("va", "au")}


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much each arm trains: epochs, steps per epoch (None: the whole split), seeds."""

    epochs: int
    steps_per_epoch: int | None
    seeds: int


# ``standard``: 6 epochs of 250 steps (8,000 faces at batch 32 each epoch; the FER+ defaults'
# studies trained 6 epochs on an 8,000-face sample: about 3 minutes an arm-seed on 2 cores).
BUDGETS = {"quick": Budget(2, 20, 2), "standard": Budget(6, 250, 3)}


class AblationError(UserError):
    """A study set that cannot run: unknown study or budget, an output of another set."""


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The training corpora (each its files) and their mixing weights (None: read as one)."""

    corpora: tuple[tuple[str, ...], ...]
    weights: tuple[float, ...] | None = None

    @classmethod
    def of(cls, data: Sequence[str] | TrainingData) -> TrainingData:
        """A list of files is one corpus."""
        return data if isinstance(data, TrainingData) else cls((tuple(str(f) for f in data),))

    @property
    def files(self) -> list[str]:
        return [f for files in self.corpora for f in files]

    def for_arm(self, overrides: dict) -> TrainingData:
        """What an arm trains on: every corpus, or the first alone (``corpora='first'``)."""
        return TrainingData(self.corpora[:1]) if overrides.get("corpora") == "first" else self


def study_names(study: str) -> list[str]:
    """``all`` or one study name -> the studies to run."""
    if study == "all":
        return list(STUDIES)
    if study not in STUDIES:
        raise AblationError(
            f"Expected a study in {sorted([*STUDIES, 'all'])}. Received: --study {study!r}"
        )
    return [study]


def _check_out(out: Path, manifest: dict) -> None:
    """An output folder holds one study set: the same data, budget and preset."""
    path = out / "ablation.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        differs = {k: (saved.get(k), v) for k, v in manifest.items() if saved.get(k) != v}
        if differs:
            raise AblationError(
                f"Expected {out} to hold this study set (or to be new). Received: a set with "
                + ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in differs.items())
            )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1))


def labelled_tasks(files: Sequence[str]) -> dict[str, int]:
    """How many examples of ``files`` label each task, and ``frames``/``videos`` counts
    (``data.coverage.LabelStats``, the conversion report's counter)."""
    from affect_tf.data.coverage import LabelStats
    from affect_tf.data.examples import read_tfrecord

    stats = LabelStats()
    for path in files:
        for record in read_tfrecord(path):
            stats.add(record)
    return {
        "va": stats.va,
        "expression": stats.expr,
        "au": stats.au,
        "frames": stats.written,
        "videos": len(stats.videos),
    }


def skip_reason(
    study: str, base_config: AffectConfig, labelled: dict[str, int], corpora: int = 1
) -> str | None:
    """Why ``study`` cannot run on this data and preset (None: it can): ``features`` needs VA or
    AU labels; a study with an arm on the shipped SynthAffect weights (``heads``, ``features``)
    needs them for the preset's backbone and size; ``smoothing`` needs videos (validation
    examples sharing a video; ``labelled`` is ``labelled_tasks`` of them); ``multitask`` needs
    two or more training ``corpora``."""
    if study == "multitask" and corpora < 2:
        return (
            "it compares the first training corpus alone with every corpus together; "
            f"give two or more --data (PATH:WEIGHT mixes them by weight). Received: {corpora}"
        )
    tasks = STUDY_TASKS.get(study)
    if tasks and not any(labelled[t] for t in tasks):
        return (
            f"its arms change the {' and '.join(tasks)} heads; the validation data labels neither"
        )
    if any(arm.get("weights") == "synthaffect" for arm in STUDIES[study].values()):
        from affect_tf.model.shipped import WeightsCardError, find_shipped

        try:
            find_shipped(base_config.backbone, base_config.image_size)
        except WeightsCardError as e:
            return f"its frozen-features arms need shipped weights: {e}"
    if study == "smoothing" and labelled["frames"] <= labelled["videos"]:
        return (
            f"it needs videos; the validation data has {labelled['frames']} examples in "
            f"{labelled['videos']} videos (one frame each)"
        )
    return None


def run_arm(
    config: AffectConfig,
    data: Sequence[str] | TrainingData,
    val_files: Sequence[str],
    out: Path,
    budget: Budget,
    seed: int,
    shared: Path | None = None,
) -> dict:
    """One arm at one seed: trained (unless its ``result.json`` exists) and evaluated.

    ``shared``: a study set's folder; an arm-seed there that trained the same config on the
    same data, budget and seed (another study's reference, most often) is reused, not retrained.
    """
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    data = TrainingData.of(data)
    key = arm_key(config, data, val_files, budget, seed)
    twin = _same_arm(shared, key) if shared is not None else None
    if twin is not None:
        log.info("%s: the same arm-seed as %s, reused", out, twin.parent)
        result = {**json.loads(twin.read_text()), "reused": str(twin.parent)}
        out.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(result, indent=1))
        return result
    from affect_tf.training.tfrecords import evaluate, train

    mixed = data.weights is not None and len(data.corpora) > 1
    fit = train(
        config,
        data.files,
        out,
        corpora=[list(files) for files in data.corpora] if mixed else None,
        weights=list(data.weights) if mixed else None,
        val_files=val_files,
        epochs=budget.epochs,
        steps_per_epoch=budget.steps_per_epoch,
        seed=seed,
        verbose=0,
    )
    result = {k: v for k, v in evaluate(fit.model, val_files).items() if k in METRICS}
    # A head the arm does not train reads at chance: its metric, and the P_MTL summing it,
    # would compare unlike with like.
    untrained = [m for task, ms in TASK_METRICS.items() if task not in config.tasks for m in ms]
    for metric in [*untrained, "p_mtl"] if untrained else []:
        result.pop(metric, None)
    result["model"] = str(out / "model.keras")
    result["key"] = key
    done.write_text(json.dumps(result, indent=1))
    return result


def arm_key(
    config: AffectConfig,
    data: TrainingData,
    val_files: Sequence[str],
    budget: Budget,
    seed: int,
) -> str:
    """What makes two arm-seeds the same run: config, training data, validation, budget, seed."""
    what = {
        "config": dataclasses.asdict(config),
        "corpora": data.corpora,
        "weights": data.weights,
        "validation": [str(f) for f in val_files],
        "budget": dataclasses.asdict(budget),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _same_arm(shared: Path, key: str) -> Path | None:
    """A finished, trained (not itself reused) arm-seed under ``shared`` with this key."""
    for path in sorted(shared.glob("*/*/seed*/result.json")):
        result = json.loads(path.read_text())
        if result.get("key") == key and "reused" not in result:
            return path
    return None


def _smoothing_curves(models: list[str], val_files: Sequence[str]) -> dict:
    from affect_tf.model.loading import load_model
    from affect_tf.training.tfrecords import evaluate

    per_seed = {"mean": {}, "median": {}}
    for path in models:
        model = load_model(path)
        for method in per_seed:
            for k in SMOOTHING_WINDOWS:
                smooth = None if k == 1 else f"{method}:{k}"
                result = evaluate(model, val_files, smooth=smooth)
                for metric in ("va", "expr_f1", "au_f1"):
                    if result.get(metric) is not None:
                        per_seed[method].setdefault(metric, {}).setdefault(k, []).append(
                            result[metric]
                        )
    return {
        method: {
            metric: [
                {
                    "k": k,
                    "mean": float(np.mean(v)),
                    "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                }
                for k, v in sorted(by_k.items())
            ]
            for metric, by_k in metrics.items()
        }
        for method, metrics in per_seed.items()
    }


def run_study(
    study: str,
    base_config: AffectConfig,
    train_files: Sequence[str] | TrainingData,
    val_files: Sequence[str],
    out: Path,
    budget: Budget,
    progress: Callable[[str], None] = log.info,
    labelled: dict[str, int] | None = None,
) -> dict:
    """Every arm of ``study`` over ``budget.seeds`` seeds; writes ``<out>/<study>/summary.json``,
    ``table.md`` and a plot, and returns the summary. ``labelled``: ``labelled_tasks`` of the
    validation files when the caller has it (read here otherwise); ``train_files``: one
    corpus's files, or several corpora (``TrainingData``)."""
    data = TrainingData.of(train_files)
    folder = out / study
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    labelled = labelled_tasks(val_files) if labelled is None else labelled
    arms, skipped = {}, {}
    for arm, overrides in STUDIES[study].items():
        task = ARM_TASK.get(arm)
        if task and not labelled[task]:
            skipped[arm] = f"the validation data labels no {task}"
            progress(f"{study}: arm {arm} skipped ({skipped[arm]})")
        else:
            arms[arm] = overrides
    for a, (arm, overrides) in enumerate(arms.items()):
        fields = {k: v for k, v in overrides.items() if k != "corpora"}
        config = base_config.replace(**fields) if fields else base_config
        arm_data = data.for_arm(overrides)
        results[arm] = []
        for seed in range(budget.seeds):
            progress(f"{study}: arm {a + 1}/{len(arms)} {arm}, seed {seed + 1}/{budget.seeds}")
            results[arm].append(
                run_arm(
                    config, arm_data, val_files, folder / arm / f"seed{seed}", budget, seed, out
                )
            )
    table = summarise(results)
    summary = {"study": study, "budget": dataclasses.asdict(budget), "arms": arms,
               "skipped_arms": skipped, "results": results, "table": table}  # fmt: skip
    text = markdown(study, table) + "".join(
        f"\n`{arm}` not run: {why}." for arm, why in skipped.items()
    )
    if study == "smoothing":
        curves = _smoothing_curves([r["model"] for r in results["model"]], val_files)
        summary["smoothing"] = curves
        text += "\n\n" + smoothing_markdown(curves)
        plot_smoothing(curves, folder / "smoothing.png")
    else:
        plot(study, table, folder / f"{study}.png")
    (folder / "table.md").write_text(text + "\n")
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def run_studies(
    studies: Sequence[str],
    base_config: AffectConfig,
    train_files: Sequence[str] | TrainingData,
    val_files: Sequence[str],
    out: str | Path,
    budget: str | Budget,
    progress: Callable[[str], None] = log.info,
) -> dict[str, dict]:
    """``run_study`` for each study into one output folder (checked to hold this set); a study
    the data or preset cannot answer is skipped with its reason (``skip_reason``).
    ``train_files``: one corpus's files, or several corpora and their weights."""
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise AblationError(f"Expected --budget in {sorted(BUDGETS)}. Received: {budget!r}")
        budget = BUDGETS[budget]
    out = Path(out)
    data = TrainingData.of(train_files)
    manifest = {
        "train": data.files,
        "validation": [str(f) for f in val_files],
        "preset": base_config.name,
        "budget": dataclasses.asdict(budget),
    }
    if len(data.corpora) > 1:  # a one-corpus set's manifest is as it always was
        manifest["corpora"] = [len(files) for files in data.corpora]
        manifest["weights"] = list(data.weights) if data.weights else None
    _check_out(out, manifest)
    labelled = labelled_tasks(val_files)  # read once for every study
    summaries = {}
    for study in studies:
        reason = skip_reason(study, base_config, labelled, len(data.corpora))
        if reason:
            progress(f"{study}: skipped, {reason}")
            summaries[study] = {"study": study, "skipped": reason}
            continue
        summaries[study] = run_study(
            study, base_config, data, val_files, out, budget, progress, labelled
        )
    return summaries
