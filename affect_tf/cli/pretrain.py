"""``affect-tf pretrain``: a preset's backbone pretrained on SynthAffect rendered on the fly."""

from __future__ import annotations

import argparse
from pathlib import Path

from affect_tf.cli.errors import UsageError
from affect_tf.cli.flags import add_synth_nuisance_flags, synth_nuisances


def _budget(args: argparse.Namespace):
    from affect_tf.training.pretrain_budget import get_budget

    overrides = synth_nuisances(args)
    for name in ("epochs", "steps_per_epoch", "frames_per_video", "test_n", "val_n"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    try:
        return get_budget(args.budget, **overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _pretrain(args: argparse.Namespace) -> int:
    from affect_tf.model import get_preset
    from affect_tf.model.shipped import card_path
    from affect_tf.training.pretrain import WEIGHTS_FILE, pretrain

    budget = _budget(args)
    try:
        config = get_preset(args.preset)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"Expected --workers >= 0. Received: --workers {args.workers}")
    out = Path(args.out)
    faces = budget.epochs * budget.steps_per_epoch * config.batch_size
    print(
        f"pretraining preset {args.preset!r} ({config.backbone}, {config.image_size}px) on "
        f"SynthAffect rendered on the fly: budget {budget.name!r}, {budget.epochs} epochs x "
        f"{budget.steps_per_epoch} steps x {config.batch_size} = {faces} faces, seed "
        f"{args.seed} -> {out}"
    )
    try:
        card = pretrain(args.preset, out, budget, seed=args.seed, workers=args.workers)
    except ValueError as e:
        raise UsageError(str(e)) from None
    test, run = card["held_out_test"], card["training"]
    print(
        f"held-out SynthAffect ({test['n']} faces): P_MTL {test['p_mtl']:.3f} (VA CCC "
        f"{test['va']:.3f}, expression F1 {test['expr_f1']:.3f}, AU F1 {test['au_f1']:.3f})"
    )
    print(
        f"{run['epochs']} epochs, {run['faces_seen']} faces, {run['seconds_this_session']:.0f} s "
        f"this session ({run['faces_per_second']:.0f} faces/s)"
    )
    print(f"backbone weights: {out / WEIGHTS_FILE} ({card['weights_mb']} MB)")
    print(f"card: {card_path(out / WEIGHTS_FILE)}")
    print(
        f"use them: affect-tf train --preset {args.preset} --weights {out / WEIGHTS_FILE} "
        "--data ... --out ..."
    )
    return 0


def add_commands(sub) -> None:
    """Adds ``pretrain``."""
    from affect_tf.training.pretrain_budget import BUDGETS

    p = sub.add_parser(
        "pretrain", help="pretrain a preset's backbone on SynthAffect rendered on the fly"
    )
    p.add_argument("--preset", required=True, help="model preset (tiny, demo, mobile, full)")
    p.add_argument("--out", required=True, help="a new folder, or an unfinished run to resume")
    p.add_argument(
        "--budget",
        choices=sorted(BUDGETS),
        default="shipped",
        help="how much to render and train (default: what the shipped weights were made with)",
    )
    p.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="batches of new faces each")
    p.add_argument("--frames-per-video", type=int, default=None, help="faces per rendered video")
    p.add_argument("--val-n", type=int, default=None, help="held-out validation faces")
    p.add_argument("--test-n", type=int, default=None, help="held-out test faces (the card)")
    add_synth_nuisance_flags(p)
    p.add_argument("--seed", type=int, default=0, help="the rendered faces are a function of it")
    p.add_argument(
        "--workers", type=int, default=None, help="rendering processes (default: all cores)"
    )
    p.set_defaults(func=_pretrain)
