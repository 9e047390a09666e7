"""``affect-tf ablate``: the source papers' research questions run as ablation studies."""

from __future__ import annotations

import argparse
from pathlib import Path

from affect_tf.cli.errors import UsageError
from affect_tf.cli.train import training_corpora, training_files


def _ablate(args: argparse.Namespace) -> int:
    from affect_tf.model import get_preset
    from affect_tf.training.ablation import BUDGETS, TrainingData, run_studies, study_names

    studies = study_names(args.study)
    if args.budget not in BUDGETS:  # argparse's choices say so first; kept for library callers
        raise UsageError(f"Expected --budget in {sorted(BUDGETS)}. Received: {args.budget!r}")
    try:
        config = get_preset(args.preset)
    except ValueError as e:
        raise UsageError(str(e)) from None
    out = Path(args.out)
    corpora, weights = training_corpora(args.data, out / "data")
    data = TrainingData(tuple(map(tuple, corpora)), tuple(weights) if weights else None)
    val_files = training_files(args.val_data, out / "val")  # required: every arm's yardstick
    try:
        summaries = run_studies(studies, config, data, val_files, out, args.budget, print)
    except ValueError as e:  # data that cannot train
        raise UsageError(str(e)) from None
    for study, summary in summaries.items():
        if "skipped" in summary:
            print(f"{study}: skipped ({summary['skipped']})")
        else:
            print((out / study / "table.md").read_text())
            print(f"{study}: {out / study / 'summary.json'}")
    return 0


def add_commands(sub) -> None:
    """Adds ``ablate``."""
    from affect_tf.model.config import PRESETS
    from affect_tf.training.ablation import BUDGETS, STUDIES

    p = sub.add_parser(
        "ablate",
        help="run the papers' research questions as ablation studies (mean ± std over seeds)",
    )
    p.add_argument(
        "--data",
        required=True,
        action="append",
        help="training data: tf.Examples or a manifest; repeat for several corpora, "
        "PATH:WEIGHT to mix them by weight (the multitask study compares the first alone "
        "with all of them)",
    )
    p.add_argument("--val-data", required=True, help="held-out data every arm is measured on")
    p.add_argument("--study", required=True, choices=[*STUDIES, "all"])
    p.add_argument("--budget", default="quick", choices=sorted(BUDGETS))
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--out", required=True, help="output folder (resumable: finished arms stay)")
    p.set_defaults(func=_ablate)
