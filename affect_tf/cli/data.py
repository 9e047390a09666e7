"""``affect-tf synth`` and ``affect-tf convert``: corpora in, tf.Examples out."""

from __future__ import annotations

import argparse
import sys
import time

from affect_tf.cli.errors import UsageError
from affect_tf.cli.flags import (
    add_detector_flag,
    add_synth_nuisance_flags,
    check_min_face,
    synth_nuisances,
)


def _synth(args: argparse.Namespace) -> int:
    from affect_tf.data.synth import SynthConfig, write_corpus, write_expression_grid, write_video

    try:
        config = SynthConfig(
            n=args.n,
            size=args.size,
            frames_per_video=args.frames_per_video,
            seed=args.seed,
            image_format=args.format,
            **synth_nuisances(args),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.video:
        path = write_video(config, args.out)
        print(
            f"SynthAffect video: {config.num_videos} clips of {config.frames_per_video} "
            f"frames -> {path}"
        )
        return 0
    start = time.perf_counter()
    manifest = write_corpus(config, args.out, workers=args.workers, progress=not args.quiet)
    seconds = time.perf_counter() - start
    print(
        f"SynthAffect: {config.n} images ({config.num_videos} videos, {config.size}x{config.size}, "
        f"seed {config.seed}) in {seconds:.1f} s ({config.n / seconds:.0f} img/s) -> {manifest}"
    )
    if args.grid:
        print(
            "grid of faces per expression: "
            f"{write_expression_grid(args.grid, size=config.size, seed=config.seed)}"
        )
    return 0


def _convert(args: argparse.Namespace) -> int:
    from affect_tf.data.convert import Converter, convert_corpus

    check_min_face(args)
    result = convert_corpus(
        args.format,
        args.root,
        args.out,
        split=args.split,
        converter=Converter(policy=args.policy, detector=args.detector, min_face=args.min_face),
        progress=not args.quiet,
        workers=args.workers,
    )
    print(result.format())
    if result.stats.written == 0:
        print(f"affect-tf convert: error: no usable example in {args.root}", file=sys.stderr)
        return 1
    return 0


def add_commands(sub) -> None:
    """Adds ``synth`` and ``convert``."""
    p = sub.add_parser("synth", help="render the SynthAffect corpus (images + manifest.csv)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=512, help="number of images (default 512)")
    p.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames-per-video", type=int, default=8, help="frames per video (1: stills)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--grid", help="also write a grid image of faces per expression to this PNG")
    p.add_argument(
        "--video",
        action="store_true",
        help="write the videos one after another as one mp4 (OUT is the .mp4 file) instead",
    )
    add_synth_nuisance_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    from affect_tf.data import READERS, SPLITS

    p = sub.add_parser("convert", help="convert a corpus to GZIP tf.Examples")
    p.add_argument("--format", required=True, choices=sorted(READERS))
    p.add_argument("--root", required=True, help="corpus folder (see docs/datasets.md)")
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="train",
        help="the corpus split: AffectNet/Aff-Wild2/FER+ (test: FER+ only)",
    )
    p.add_argument("--out", required=True, help="output .tfrecord.gz")
    p.add_argument(
        "--policy",
        choices=("largest", "confident"),
        default="largest",
        help="which detected face to keep",
    )
    add_detector_flag(p)
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes finding faces (default 0: every core when faces must be detected)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_convert)
