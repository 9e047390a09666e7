"""Pretraining a preset's backbone on SynthAffect rendered on the fly (``affect-tf pretrain``).

Every epoch renders faces no earlier epoch saw (``data.synth.stream``: video ``v`` is a function
of the seed and ``v``, so a resumed run renders exactly the videos it has not trained on), and
the one fit function trains the preset's whole multi-task model on all three tasks. The output
folder receives the backbone's weights (``backbone.weights.h5``), its card
(``backbone.card.json``: corpus settings, steps, time, held-out metrics, git revision, digest)
and the fit's usual files (``model.keras``, ``state.json``, ``history.json``, ...). The card is
written last: a folder with a card is a finished run.

Validation (early stopping, the best epoch) and the held-out test set the card reports are
rendered with their own seeds: no face of either is ever trained on.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import tensorflow as tf

from affect_tf.core.errors import UserError
from affect_tf.core.files import replaced_atomically, write_text_atomically
from affect_tf.data.dataset import make_dataset, measure_priors
from affect_tf.data.synth.labels import LATER_FIELDS
from affect_tf.data.synth.stream import stream_chunks, video_examples
from affect_tf.evaluation.report import evaluate_run
from affect_tf.model.config import AffectConfig, get_preset
from affect_tf.model.shipped import (
    CARD_FORMAT,
    WEIGHTS_SUFFIX,
    card_path,
    file_sha256,
    read_card,
)
from affect_tf.training.callbacks import STATE_FILE
from affect_tf.training.fit import FitData, fit, predict_dataset
from affect_tf.training.pretrain_budget import BUDGETS, TEST_SEED, VAL_SEED, PretrainBudget

log = logging.getLogger(__name__)
SETTINGS_FILE = "pretrain.json"
WEIGHTS_FILE = "backbone" + WEIGHTS_SUFFIX


class PretrainFolderError(UserError):
    """An output folder that belongs to another run."""


def git_revision() -> str:
    """The git revision of the source this package runs from (``+dirty`` with local changes),
    or ``unknown`` outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def settings_of(preset: str, budget: PretrainBudget, seed: int, config: AffectConfig) -> dict:
    """What defines a pretraining run: a folder holds one run of exactly these settings."""
    settings = {
        "preset": preset,
        "seed": seed,
        "budget": budget.to_dict(),
        "model": config.to_dict(),
    }
    return json.loads(json.dumps(settings))  # as the folder's JSON gives them back (lists)


def check_folder(out: Path, settings: dict) -> dict | None:
    """The finished run's card in ``out`` (None: start or resume there).

    Raises:
        PretrainFolderError: ``out`` holds another run (other settings, or not a pretraining
            run at all).
    """
    if not out.exists():
        return None
    if not out.is_dir():
        raise PretrainFolderError(f"Expected a folder for --out. Received: {out} (a file)")
    saved_path = out / SETTINGS_FILE
    if not saved_path.is_file():
        entries = sorted(p.name for p in out.iterdir())
        if not entries:
            return None
        raise PretrainFolderError(
            f"Expected an empty folder or an unfinished `affect-tf pretrain` run. Received: "
            f"{out}, which holds {', '.join(entries[:5])}{' ...' if len(entries) > 5 else ''} "
            "of another run (choose a new --out)"
        )
    try:
        saved = json.loads(saved_path.read_text())
    except ValueError as e:
        raise PretrainFolderError(
            f"Expected JSON settings in {saved_path}. Received: {e}"
        ) from None
    differs = setting_differences(saved, settings)
    if differs:
        raise PretrainFolderError(
            f"Expected {out} to hold a pretraining run with the same settings (to resume it). "
            f"Received: a run whose {'; '.join(differs[:4])} (choose a new --out)"
        )
    card = out / card_path(WEIGHTS_FILE).name
    return read_card(card) if card.is_file() else None


def setting_differences(saved: dict, wanted: dict, prefix: str = "") -> list[str]:
    """``key was A, now B`` for every leaf that differs between two runs' settings (or cards).

    A generator setting added after one of them was written (``LATER_FIELDS``) and missing from
    it reads as its default, which renders what that run rendered.
    """
    out = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key, LATER_FIELDS.get(key)), wanted.get(key, LATER_FIELDS.get(key))
        if isinstance(a, dict) and isinstance(b, dict):
            out += setting_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} was {a!r}, now {b!r}")
    return out


def _resume_epoch(out: Path, epochs: int) -> int:
    """The epoch ``fit`` resumes at (``ResumeState``'s file): the stream starts there too. A run
    killed after its last epoch but before its card trains anew, as ``fit`` does."""
    try:
        epoch = int(json.loads((out / STATE_FILE).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return epoch if 0 < epoch < epochs else 0


def _rendered(budget: PretrainBudget, config: AffectConfig, seed: int, n: int) -> list[bytes]:
    """``n`` faces of ``seed`` rendered in memory as serialized tf.Examples."""
    part = budget.synth(config.image_size, seed, n)
    return video_examples(part, 0, part.num_videos)[:n]


def _batches(examples: list[bytes], config: AffectConfig) -> tf.data.Dataset:
    """Aligned, batched held-out faces."""
    return make_dataset(
        tf.data.Dataset.from_tensor_slices(examples),
        config.image_size,
        config.margin,
        config.batch_size,
    ).apply(tf.data.experimental.assert_cardinality(-(-len(examples) // config.batch_size)))


def _fit_data(budget, config, seed: int, first_epoch: int, workers: int) -> FitData:
    """The endless training stream from ``first_epoch`` on, the validation faces, the priors."""
    batch = config.batch_size
    faces = budget.steps_per_epoch * batch
    videos = faces // budget.frames_per_video  # per epoch (whole videos: checked by pretrain)
    train_part = budget.synth(config.image_size, seed, faces)
    stream = tf.data.Dataset.from_generator(
        lambda: stream_chunks(train_part, first_epoch * videos, budget.epochs * videos, workers),
        output_signature=tf.TensorSpec((None,), tf.string),
    ).unbatch()
    train = make_dataset(
        stream,
        config.image_size,
        config.margin,
        batch,
        training=True,
        cache=False,
        shuffle_buffer=min(1024, faces),
        seed=seed + first_epoch,
    )
    # The label statistics of the stream: its first faces (the generator is stationary).
    prior_sample = _rendered(budget, config, seed, budget.prior_n)
    val = _rendered(budget, config, seed + VAL_SEED, budget.val_n)
    return FitData(
        train,
        _batches(val, config),
        budget.steps_per_epoch,
        -(-len(val) // batch),
        measure_priors(tf.data.Dataset.from_tensor_slices(prior_sample), split=None),
        measure_priors(tf.data.Dataset.from_tensor_slices(val), split=None),
        stream=True,
    )


def pretrain(
    preset: str,
    out_dir: str | Path,
    budget: PretrainBudget | None = None,
    seed: int = 0,
    workers: int | None = None,
    verbose: int = 2,
) -> dict:
    """Pretrains ``preset``'s backbone on SynthAffect rendered on the fly; returns its card.

    Args:
        preset: An ``AffectConfig`` preset (its backbone, size, heads and optimiser).
        out_dir: A new or empty folder, or an unfinished run of the same settings (resumed
            at its last epoch; a finished run's card is returned as it is).
        budget: How much to render and train (``BUDGETS``); default ``shipped``.
        seed: The training stream (and, offset, the held-out sets) are functions of it.
        workers: Rendering processes (default: all cores; 1 renders in this process).
        verbose: Keras progress (1 bar, 2 one line per epoch).

    Raises:
        PretrainFolderError: ``out_dir`` holds another run.
        ValueError: Settings that do not fit together.
    """
    budget = budget or BUDGETS["shipped"]
    out = Path(out_dir)
    config = get_preset(
        preset,
        weights="",
        schedule="scratch",
        epochs=budget.epochs,
        tasks=("va", "expression", "au"),
    )
    faces = budget.steps_per_epoch * config.batch_size
    if faces % budget.frames_per_video:  # an epoch is whole videos: resuming starts at one
        raise ValueError(
            f"Expected steps_per_epoch x batch_size ({faces}) to be a multiple of "
            f"frames_per_video. Received: frames_per_video={budget.frames_per_video}"
        )
    settings = settings_of(preset, budget, seed, config)
    card = check_folder(out, settings)
    if card is not None:
        log.info("%s already holds a finished pretraining run", out)
        return card
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / SETTINGS_FILE, json.dumps(settings, indent=2))
    first_epoch = _resume_epoch(out, budget.epochs)
    revision = git_revision()  # of the code this run loads now, not of the checkout at the end
    workers = workers if workers is not None else (os.cpu_count() or 1)
    data = _fit_data(budget, config, seed, first_epoch, workers)
    start = time.perf_counter()
    result = fit(
        config,
        data,
        out,
        epochs=budget.epochs,
        patience=budget.patience,
        seed=seed,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    test = evaluate_run(
        predict_dataset(
            result.model,
            _batches(_rendered(budget, config, seed + TEST_SEED, budget.test_n), config),
        )
    )
    trained = (result.history.get("p_mtl") or [None])[-1]
    if trained and test["p_mtl"] < 0.5 * trained:
        log.warning(
            "The held-out SynthAffect P_MTL (%.3f) is under half the last training epoch's "
            "(%.3f): check %s before using these weights (BatchNorm statistics that never "
            "converged, or a validation score that never improved).",
            test["p_mtl"],
            trained,
            out / "history.csv",
        )
    weights = out / WEIGHTS_FILE
    with replaced_atomically(weights) as partial:
        result.model.get_layer("backbone").save_weights(partial)
    card = _card(preset, budget, config, seed, result, test, weights, seconds, first_epoch)
    card["git_revision"] = revision
    write_text_atomically(card_path(weights), json.dumps(card, indent=2))
    return card


def _card(preset, budget, config, seed, result, test, weights: Path, seconds, first_epoch) -> dict:
    epochs_run = len(result.history.get("loss", [])) + first_epoch
    faces = epochs_run * budget.steps_per_epoch * config.batch_size
    keep = ("p_mtl", "va", "ccc_valence", "ccc_arousal", "expr_f1", "expr_acc", "au_f1", "n")
    return {
        "format": CARD_FORMAT,
        "preset": preset,
        "backbone": config.backbone,
        "image_size": config.image_size,
        "weights_file": weights.name,
        "weights_sha256": file_sha256(weights),
        "weights_mb": round(weights.stat().st_size / 2**20, 2),
        "seed": seed,
        "budget": budget.to_dict(),
        "corpus": {
            part: dataclasses.asdict(budget.synth(config.image_size, seed + offset, n))
            for part, offset, n in (
                ("train", 0, faces),
                ("validation", VAL_SEED, budget.val_n),
                ("test", TEST_SEED, budget.test_n),
            )
        },
        "training": {
            "epochs": epochs_run,
            "resumed_at_epoch": first_epoch,
            "steps": epochs_run * budget.steps_per_epoch,
            "batch_size": config.batch_size,
            "faces_seen": faces,
            "seconds_this_session": round(seconds, 1),
            "faces_per_second": round(
                (epochs_run - first_epoch)
                * budget.steps_per_epoch
                * config.batch_size
                / max(seconds, 1e-9),
                1,
            ),
            "cpu_count": os.cpu_count(),
        },
        "held_out_test": {k: test[k] for k in keep if k in test},
        "validation": {k: result.validation[k] for k in keep if k in result.validation},
        "model": config.to_dict(),
        "git_revision": None,  # set by the caller
        "versions": {"tensorflow": tf.__version__, "keras": _keras_version()},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _keras_version() -> str:
    import keras

    return keras.__version__
