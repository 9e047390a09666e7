"""``affect-tf train``, ``evaluate``, ``predict-examples``, ``export``: models from tf.Examples."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import affect_tf
from affect_tf.cli.errors import UsageError, as_usage_error
from affect_tf.cli.workers import DIGEST_ENV
from affect_tf.core.files import replaced_atomically


def training_files(data: str, out: Path) -> list[str]:
    """``--data`` as TFRecords (``affect_tf.data.sources.training_files``), cached under OUT."""
    from affect_tf.data.sources import training_files as files_of

    with as_usage_error(FileNotFoundError):
        return files_of(data, out)


def training_corpora(data: list[str], out: Path) -> tuple[list[list[str]], list[float] | None]:
    """Repeated ``--data PATH[:WEIGHT]``: each corpus' TFRecords and the normalised mixing
    weights (None when none was given: the files are read as one).

    Each manifest corpus is converted once into its own cache folder (the first under OUT,
    as a single ``--data`` always was; the others under ``OUT/corpus<i>``).
    """
    from affect_tf.data.mixing import check_contract, mixing_weights, parse_corpus

    specs = [parse_corpus(text) for text in data]
    weights = mixing_weights(specs)
    corpora = []
    for i, spec in enumerate(specs):
        files = training_files(spec.data, out if i == 0 else out / f"corpus{i}")
        if len(specs) > 1:
            check_contract(files, spec.data)
        corpora.append(files)
    return corpora, weights


def _cluster(args: argparse.Namespace):
    """The multi-worker strategy when ``TF_CONFIG`` names a cluster (built first: collective
    ops must be configured before any other TensorFlow op of the process), else None."""
    from affect_tf.training import distribute

    if args.workers is not None and args.workers < 1:
        raise UsageError(
            "Expected --workers N >= 1 (local worker processes). "
            f"Received: --workers {args.workers}"
        )
    if args.cluster_timeout <= 0:
        raise UsageError(
            "Expected --cluster-timeout > 0 seconds. "
            f"Received: --cluster-timeout {args.cluster_timeout:g}"
        )
    cluster = distribute.cluster_from_env()
    if cluster is None:
        return None
    if args.workers and args.workers > 1:
        raise UsageError(
            "Expected either --workers N (local workers) or a TF_CONFIG cluster. Received: both"
            f" (--workers {args.workers}, TF_CONFIG of {cluster.num_tasks} tasks)"
        )
    return distribute.connect(cluster, args.cluster_timeout)


def _train(args: argparse.Namespace) -> int:
    strategy = _cluster(args)
    from affect_tf.evaluation.report import format_report
    from affect_tf.model import get_preset
    from affect_tf.model.shipped import SYNTHAFFECT, find_shipped
    from affect_tf.training import distribute
    from affect_tf.training.tfrecords import train

    overrides = {}
    if args.heads:
        overrides["heads"] = args.heads
    if args.backbone:
        overrides["backbone"] = args.backbone
    if args.tasks:
        overrides["tasks"] = tuple(t.strip() for t in args.tasks.split(","))
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    for name in (
        "weights", "schedule", "imbalance", "augment", "warmup_epochs", "va_loss", "focal_gamma",
        "head_features", "gcn_adjacency",
    ):  # fmt: skip
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.backbone_lr_scale is not None:
        overrides["backbone_lr_scale"] = args.backbone_lr_scale
    if args.cache_embeddings:
        overrides["cache_embeddings"] = True
    if args.weights and args.schedule is None and get_preset(args.preset).schedule == "scratch":
        overrides["schedule"] = "finetune"  # pretrained weights: fine-tune unless told
    if args.weights == "":
        overrides["schedule"] = args.schedule or "scratch"
    try:
        config = get_preset(args.preset, **overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if config.weights == SYNTHAFFECT:  # before any data is converted
        find_shipped(config.backbone, config.image_size)
    if args.warm_start and not Path(args.warm_start).is_file():
        raise UsageError(f"Expected a .keras model. Received: --warm-start {args.warm_start}")
    out = Path(args.out)
    corpora, weights = training_corpora(args.data, out)
    files = [f for part in corpora for f in part]
    val_files = training_files(args.val_data, out / "val") if args.val_data else None
    if strategy is None and args.workers and args.workers > 1:
        from affect_tf.cli.workers import launch

        return launch(args.workers, args.argv, out)  # the data is converted once, above
    chief = strategy is None or distribute.is_chief(strategy)
    print(
        f"training preset {config.name!r} ({config.backbone}, {config.heads} heads, "
        f"{config.image_size}px, tasks {','.join(config.tasks)}; weights "
        f"{config.weights or 'random'}, schedule {config.schedule}, imbalance "
        f"{config.imbalance}, augment {config.augment}) -> {out}"
    )
    try:
        result = train(
            config,
            files,
            out,
            val_files=val_files,
            epochs=args.epochs,
            patience=args.patience,
            steps_per_epoch=args.steps_per_epoch,
            resume=not args.no_resume,
            verbose=2,
            seed=args.seed,
            warm_start=args.warm_start,
            strategy=strategy,
            corpora=corpora if weights else None,
            weights=weights,
        )
    except ValueError as e:  # data that cannot train, weights that cannot be had or do not fit
        raise UsageError(str(e)) from None
    except Exception as e:  # noqa: BLE001 (a lost peer is reported below; the rest re-raised)
        if strategy is None or not _peer_lost(e, strategy, out):
            raise
        return 1
    if result.weights_digest and os.environ.get(DIGEST_ENV):
        Path(os.environ[DIGEST_ENV]).write_text(result.weights_digest)
    if not chief:
        print(f"worker done in {result.seconds:.0f} s; weights sha256 {result.weights_digest}")
        return 0
    v = result.validation
    print(f"done in {result.seconds:.0f} s; validation ({v['n']} examples): {format_report(v)}")
    print(f"model: {out / 'model.keras'}; curves: {out / 'training_curves.png'}")
    return 0


def _peer_lost(error: Exception, strategy, out: Path) -> bool:
    """Reports a multi-worker run whose peer stopped (TensorFlow's coordination service fails
    the collective ops of the others within seconds) in one message; whether it was that."""
    import re

    import tensorflow as tf

    from affect_tf.cli.workers import resume_hint
    from affect_tf.training.distribute import cluster_of

    if not isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError)):
        return False
    cluster = cluster_of(strategy)
    me = f"/job:{cluster.task_type}/replica:0/task:{cluster.task_index}"
    lost = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", str(error))) - {me})
    print(
        f"affect-tf train: error: {cluster.name} lost "
        f"{', '.join(lost) or 'a peer'} (it stopped answering: crashed, killed or preempted); "
        f"this worker stopped too. {resume_hint(out)} — restart every worker with it",
        file=sys.stderr,
    )
    return True


def _evaluate(args: argparse.Namespace) -> int:
    from affect_tf.evaluation.report import format_report, gate
    from affect_tf.evaluation.smoothing import parse_smooth
    from affect_tf.training.tfrecords import evaluate, load_au_thresholds

    from_model = args.au_thresholds == "model"
    try:
        parse_smooth(args.smooth)
        thresholds = 0.5 if from_model else load_au_thresholds(args.au_thresholds)
    except ValueError as e:
        raise UsageError(str(e)) from None
    model = affect_tf.load_model(args.model)  # a .keras file or a training folder
    if from_model:
        if model.au_thresholds is None:
            raise UsageError(
                "Expected a model with AU thresholds tuned on validation data (trained on AU "
                f"labels). Received: --model {args.model} without them"
            )
        thresholds = model.au_thresholds
    out = Path(args.out) if args.out else None
    files = training_files(args.data, (out.parent if out else Path("runs")) / "evaluate")
    result = evaluate(model, files, smooth=args.smooth, au_thresholds=thresholds)
    failures, notes = gate(result)
    result["gate"] = {"passed": not failures, "failures": failures, "notes": notes}
    text = json.dumps(result, indent=2)
    print(text)
    print(format_report(result), file=sys.stderr)
    if out:
        with replaced_atomically(out) as partial:
            partial.write_text(text)
    return 0


def _predict_examples(args: argparse.Namespace) -> int:
    from affect_tf.evaluation.smoothing import parse_smooth
    from affect_tf.training.tfrecords import predict_table

    try:
        parse_smooth(args.smooth)
    except ValueError as e:
        raise UsageError(str(e)) from None
    model = affect_tf.load_model(args.model)  # a .keras file or a training folder
    out = Path(args.out)
    files = training_files(args.data, out.parent / "predict")
    table = predict_table(model, files, smooth=args.smooth)
    # %.9g writes float32 values exactly, so metrics recomputed from the file match.
    with replaced_atomically(out) as partial:
        table.to_csv(partial, index=False, float_format="%.9g")
    print(f"wrote {len(table)} rows to {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from affect_tf.core.layout import SIGNATURES, next_version
    from affect_tf.export.saved_model import export_saved_model

    model = affect_tf.load_model(args.model)  # a .keras file or a training folder
    out = Path(args.out)
    version_dir = out / str(args.version) if args.version else next_version(out)
    if version_dir.exists():
        raise UsageError(f"Expected a new version folder. Received: {version_dir} (exists)")
    # Written under a name no server loads (not numeric), then renamed: a model server polling
    # OUT never sees a half-written version.
    partial = version_dir.with_name(f".{version_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    export_saved_model(model, export_dir=partial)
    partial.rename(version_dir)
    print(f"SavedModel ({', '.join(SIGNATURES)}) -> {version_dir}")
    return 0


def add_commands(sub) -> None:
    """Adds ``train``, ``evaluate``, ``predict-examples`` and ``export``."""
    add_train_command(sub)

    def model_and_data(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, help="model.keras, or a training folder")
        p.add_argument(
            "--data", required=True, help="tf.Example file/folder/glob, or a manifest corpus folder"
        )
        p.add_argument("--smooth", help="temporal smoothing within videos: mean:15, median:9")

    p = sub.add_parser("evaluate", help="ABAW metrics of a model on labelled data (JSON)")
    model_and_data(p)
    p.add_argument(
        "--au-thresholds",
        help="AU decision threshold: a number (default 0.5), the au_thresholds.json that "
        "training tuned on its validation split, or 'model' (the thresholds saved in it)",
    )
    p.add_argument("--out", help="also write the JSON here")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "predict-examples", help="per-example predictions (and labels, masks) of tf.Examples as CSV"
    )
    model_and_data(p)
    p.add_argument("--out", required=True, help="CSV file")
    p.set_defaults(func=_predict_examples)

    p = sub.add_parser("export", help="a .keras model -> a SavedModel version for TF Serving")
    p.add_argument("--model", required=True, help="model.keras or a training folder")
    p.add_argument("--out", required=True, help="TF Serving base folder (the version goes inside)")
    p.add_argument("--version", type=int, help="version number (default: one above the newest)")
    p.set_defaults(func=_export)


def _loss_and_head_flags(p: argparse.ArgumentParser) -> None:
    """The loss choices of Kollias et al. and the heads' inputs and graph (the ablations')."""
    from affect_tf.model.config import GCN_ADJACENCIES, HEAD_FEATURES

    p.add_argument(
        "--va-loss", choices=("ccc", "mse"), help="valence/arousal loss (default the preset's: ccc)"
    )
    p.add_argument(
        "--focal-gamma",
        type=float,
        help="> 0: the expression loss is the focal loss with this gamma (default 0: CE)",
    )
    p.add_argument(
        "--head-features",
        choices=HEAD_FEATURES,
        help="mlp heads: the AU and VA heads read the embedding (default), the expression "
        "scores, or both (Savchenko)",
    )
    p.add_argument(
        "--gcn-adjacency",
        choices=GCN_ADJACENCIES,
        help="gcn heads: the label graph from the data's correlations (default) or learned",
    )


def add_train_command(sub) -> None:
    """``affect-tf train``: the model, transfer learning, imbalance and augmentation flags."""
    from affect_tf.model.config import BACKBONE_NAMES, IMBALANCE, PRESETS, SCHEDULES

    p = sub.add_parser("train", help="train an AffectModel on tf.Examples or a manifest corpus")
    p.add_argument(
        "--data",
        required=True,
        action="append",
        help="tf.Example file/folder/glob, or a manifest corpus folder; repeat it to train on "
        "several corpora, each labelling what it has, with PATH:WEIGHT to mix them by weight "
        "(--data ferplus.tfrecord.gz:0.7 --data synth/:0.3)",
    )
    p.add_argument("--val-data", help="validation data (default: 10 %% of the videos of --data)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--heads", choices=("mlp", "gcn"), help="override the preset's heads")
    p.add_argument("--backbone", choices=BACKBONE_NAMES, help="override the preset's backbone")
    p.add_argument(
        "--tasks", help="comma-separated subset of va,expression,au (single-task training)"
    )
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--patience", type=int, default=5, help="early stopping on validation P_MTL")
    p.add_argument(
        "--weights",
        help="backbone init: synthaffect (the shipped weights, offline), imagenet (Keras' "
        "download), a .weights.h5 file (e.g. affect-tf pretrain's), an earlier .keras model's "
        "backbone, or '' for random (default: the preset's)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="scratch | frozen (heads only) | finetune (frozen warm-up, then all at a lower "
        "backbone learning rate); default the preset's, finetune when --weights is given",
    )
    p.add_argument("--warmup-epochs", type=int, help="finetune: frozen epochs first")
    p.add_argument(
        "--cache-embeddings",
        action="store_true",
        help="frozen: run the backbone once and train the heads on its features (fast)",
    )
    p.add_argument("--backbone-lr-scale", type=float, help="finetune: backbone LR factor")
    p.add_argument(
        "--imbalance", choices=IMBALANCE, help="expression class imbalance (default the preset's)"
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="augmentation layers in the model while training (default the preset's)",
    )
    _loss_and_head_flags(p)
    p.add_argument("--warm-start", help="start every weight from an earlier .keras model")
    p.add_argument(
        "--no-resume", action="store_true", help="start over even if OUT holds an unfinished run"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers",
        type=int,
        help="train on N worker processes on this machine (MultiWorkerMirroredStrategy on "
        "loopback; --batch-size is the global batch). On a real cluster set TF_CONFIG on each "
        "machine instead (docs/pipeline.md)",
    )
    p.add_argument(
        "--cluster-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for every TF_CONFIG task to join before failing (default 300)",
    )
    p.add_argument("--out", required=True, help="output folder (shared by every worker)")
    p.set_defaults(func=_train)
