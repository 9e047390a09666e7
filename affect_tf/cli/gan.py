"""``affect-tf gan train | sample | examples``: the GAN command line."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from affect_tf.cli.errors import UsageError
from affect_tf.cli.train import training_files
from affect_tf.core.labels import EXPRESSIONS


def _train(args: argparse.Namespace) -> int:
    from affect_tf.gan.config import get_gan_preset

    given = {
        "steps": args.steps,
        "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size,
    }
    overrides = {field: value for field, value in given.items() if value is not None}
    try:
        config = get_gan_preset(args.preset, **overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None
    out = Path(args.out)
    files = training_files(args.data, out)
    from affect_tf.gan.train import train_gan

    try:
        result = train_gan(config, files, out, resume=not args.no_resume, seed=args.seed)
    except ValueError as e:  # NotAGANError included
        raise UsageError(str(e)) from None
    last = {k: v[-1] for k, v in result.history.items()}
    print(
        f"done in {result.seconds:.0f} s: discriminator real/fake accuracy "
        f"{last.get('d_real_acc', float('nan')):.2f}/{last.get('d_fake_acc', float('nan')):.2f}, "
        f"generated faces read as the asked-for expression "
        f"{last.get('fake_expr_acc', float('nan')):.0%} (by the discriminator)"
    )
    print(f"GAN: {out} (generator.keras, discriminator.keras, recognizer.keras)")
    print(f"samples: {out / 'samples.png'}; curves: {out / 'training_curves.png'}")
    return 0


def _load(folder: str):
    from affect_tf.gan.folder import NotAGANError, load_gan

    try:
        return load_gan(folder)
    except NotAGANError as e:
        raise UsageError(str(e)) from None


def _conditions(args: argparse.Namespace, priors) -> tuple[list[int], list]:
    """The expressions asked for and one condition per expression (clear errors)."""
    from affect_tf.gan.conditions import expression_index, parse_au_assignments

    try:
        expressions = (
            list(range(len(EXPRESSIONS)))
            if args.expression.strip().lower() == "all"
            else [expression_index(args.expression)]
        )
        aus = parse_au_assignments(args.au or [])
        conditions = [
            priors.condition(e, aus, valence=args.valence, arousal=args.arousal)
            for e in expressions
        ]
    except ValueError as e:
        raise UsageError(str(e)) from None
    return expressions, conditions


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from affect_tf.gan.sampling import generate, grid_image, write_png

    if args.n < 1:
        raise UsageError(f"Expected --n >= 1. Received: --n {args.n}")
    loaded = _load(args.model)
    expressions, conditions = _conditions(args, loaded.priors)
    out = Path(args.out)
    rows, labels = [], []
    for e, condition in zip(expressions, conditions, strict=True):
        faces = generate(loaded.generator, np.tile(condition, (args.n, 1)), seed=args.seed + e)
        name = EXPRESSIONS[e]
        for i, face in enumerate(faces):
            write_png(face, out / f"{name.lower()}_{i:03d}.png")
        rows.append(faces)
        unseen = loaded.priors.counts[e] == 0
        labels.append(name + (" (unseen)" if unseen else ""))
        if unseen:
            print(f"warning: the GAN saw no labelled {name} face; its condition is a guess")
    grid = write_png(grid_image(rows, labels), out / "grid.png")
    first = conditions[0]
    print(
        f"{args.n * len(expressions)} faces ({loaded.config.image_size}px, seed {args.seed}) -> "
        f"{out}; grid: {grid}"
    )
    if len(expressions) == 1:
        from affect_tf.core.labels import AUS
        from affect_tf.gan.conditions import AU_SLICE, VA_SLICE

        active = [f"{a}={v:.2f}" for a, v in zip(AUS, first[AU_SLICE], strict=True) if v >= 0.05]
        va = first[VA_SLICE]
        print(
            f"condition: {EXPRESSIONS[expressions[0]]}, AUs {' '.join(active) or 'none'}, "
            f"valence {va[0]:+.2f}, arousal {va[1]:+.2f}"
        )
    return 0


def _parse_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"([A-Za-z]+)=(\d+)", item)
        if not match:
            raise UsageError(f"Expected EXPRESSION=COUNT, e.g. Fear=200. Received: {item!r}")
        counts[match.group(1)] = int(match.group(2))
    if not counts:
        raise UsageError(f"Expected at least one EXPRESSION=COUNT. Received: --counts {text!r}")
    return counts


def _examples(args: argparse.Namespace) -> int:
    from affect_tf.gan.conditions import expression_index
    from affect_tf.gan.sampling import write_generated_examples

    counts = _parse_counts(args.counts)
    try:
        for name in counts:
            expression_index(name)
        path = write_generated_examples(args.model, counts, args.out, seed=args.seed)
    except ValueError as e:  # NotAGANError included
        raise UsageError(str(e)) from None
    print(f"{sum(counts.values())} generated, labelled faces ({args.counts}) -> {path}")
    return 0


def add_commands(sub) -> None:
    """Adds ``gan`` and its sub-commands to the ``affect-tf`` parser."""
    from affect_tf.gan.config import GAN_PRESETS

    p = sub.add_parser(
        "gan", help="conditional face generation: train the affect GAN, sample faces from it"
    )
    gan_sub = p.add_subparsers(dest="gan_command", required=True)

    q = gan_sub.add_parser(
        "train", help="train the GAN (its discriminator is a multi-task affect model)"
    )
    q.add_argument(
        "--data",
        required=True,
        help="tf.Example file/folder/glob or a manifest corpus folder; faces without labels "
        "join the adversarial game only (semi-supervised)",
    )
    q.add_argument("--preset", default="demo", choices=sorted(GAN_PRESETS))
    q.add_argument("--out", required=True, help="the GAN folder")
    q.add_argument("--steps", type=int, help="override the preset's training steps")
    q.add_argument("--steps-per-epoch", type=int, help="steps between checkpoints and samples")
    q.add_argument("--batch-size", type=int)
    q.add_argument(
        "--no-resume", action="store_true", help="start over even if OUT holds an unfinished run"
    )
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_train)

    q = gan_sub.add_parser("sample", help="generate faces for an expression (+ AUs, VA)")
    q.add_argument("--model", required=True, help="a GAN folder from `affect-tf gan train`")
    q.add_argument(
        "--expression",
        required=True,
        help=f"one of {', '.join(EXPRESSIONS)} (any case), or 'all' for a row of each",
    )
    q.add_argument(
        "--au",
        nargs="+",
        metavar="AU=VALUE",
        help="AU activations in [0, 1], e.g. --au AU12=1 AU6=0.8 (others: the expression's "
        "typical rate)",
    )
    q.add_argument("--valence", type=float, help="in [-1, 1] (default: the expression's mean)")
    q.add_argument("--arousal", type=float, help="in [-1, 1] (default: the expression's mean)")
    q.add_argument("--n", type=int, default=8, help="faces per expression (default 8)")
    q.add_argument("--seed", type=int, default=0, help="the same seed gives the same faces")
    q.add_argument("--out", required=True, help="output folder (PNGs and grid.png)")
    q.set_defaults(func=_sample)

    q = gan_sub.add_parser(
        "examples",
        help="generated faces with their conditions as labels -> tf.Examples (augmentation)",
    )
    q.add_argument("--model", required=True, help="a GAN folder from `affect-tf gan train`")
    q.add_argument(
        "--counts", required=True, help="faces per expression, e.g. Fear=200,Disgust=200"
    )
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", required=True, help="output .tfrecord.gz")
    q.set_defaults(func=_examples)
