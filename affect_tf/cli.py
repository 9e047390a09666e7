"""The ``affect-tf`` command line: ``synth``, ``convert`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from affect_tf import _env  # noqa: F401  (quiet TensorFlow logs before TF is imported)


class UsageError(Exception):
    """A user mistake: reported as one line and exit status 2, never a traceback."""


def _synth(args: argparse.Namespace) -> int:
    from affect_tf.data.synth import SynthConfig, expression_grid, write_corpus

    try:
        config = SynthConfig(
            n=args.n,
            size=args.size,
            frames_per_video=args.frames_per_video,
            seed=args.seed,
            image_format=args.format,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
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
            f"{expression_grid(args.grid, size=config.size, seed=config.seed)}"
        )
    return 0


def _convert(args: argparse.Namespace) -> int:
    from affect_tf.data import SkipReport, read_corpus
    from affect_tf.data.convert import Converter, convert

    report = SkipReport()
    samples = read_corpus(args.format, args.root, args.split, report)
    result = convert(
        samples,
        args.out,
        report=report,
        converter=Converter(policy=args.policy),
        progress=not args.quiet,
    )
    print(result.format())
    if result.stats.written == 0:
        print(f"affect-tf convert: error: no usable example in {args.root}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    """SynthAffect -> tf.Examples -> summary. The TFX pipeline replaces this when it lands."""
    from affect_tf.data import SkipReport, read_corpus
    from affect_tf.data.convert import convert
    from affect_tf.data.synth import SynthConfig, expression_grid, write_corpus

    out = Path(args.out)
    config = SynthConfig(n=args.n, size=args.size, frames_per_video=8, seed=args.seed)
    print(
        f"[1/3] rendering SynthAffect: {config.n} faces in {config.num_videos} videos "
        f"-> {out / 'synth'}"
    )
    start = time.perf_counter()
    write_corpus(config, out / "synth", progress=True)
    synth_s = time.perf_counter() - start
    grid = expression_grid(out / "synthaffect_grid.png", size=config.size, seed=config.seed)

    print("[2/3] converting the manifest corpus to tf.Examples")
    start = time.perf_counter()
    report = SkipReport()
    result = convert(
        read_corpus("manifest", out / "synth", report=report),
        out / "examples.tfrecord.gz",
        report=report,
    )
    convert_s = time.perf_counter() - start

    print("[3/3] summary")
    stats = result.stats.to_dict()
    print(f"  SynthAffect: {config.n} images in {synth_s:.1f} s ({config.n / synth_s:.0f} img/s)")
    print(
        f"  tf.Examples: {stats['written']} written, {report.total_skipped} skipped, "
        f"in {convert_s:.1f} s"
    )
    print(
        f"  labelled:    VA {stats['labelled']['va']}, "
        f"expression {stats['labelled']['expression']}, "
        f"AU {stats['labelled']['au']} (of {stats['written']})"
    )
    print("  expressions: " + ", ".join(f"{k} {v}" for k, v in stats["expression_counts"].items()))
    print(
        "  AU rates:    " + ", ".join(f"{k} {v:.2f}" for k, v in stats["au_positive_rate"].items())
    )
    print(
        f"  valence {stats['valence']['mean']:+.2f}±{stats['valence']['std']:.2f}, "
        f"arousal {stats['arousal']['mean']:+.2f}±{stats['arousal']['std']:.2f}"
    )
    print("artifacts:")
    print(f"  corpus       {out / 'synth' / 'manifest.csv'}")
    print(f"  examples     {result.out_path}")
    print(f"  report       {result.report_path}")
    print(f"  face grid    {grid}")
    summary = {
        "synth_seconds": synth_s,
        "convert_seconds": convert_s,
        **stats,
        "skipped": report.to_dict()["skipped"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"  summary      {out / 'summary.json'}")
    print(
        "The TFX pipeline (training, evaluation, export) is not built yet; "
        "this demo stops at tf.Examples."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="affect-tf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="render the SynthAffect corpus (images + manifest.csv)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=512, help="number of images (default 512)")
    p.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames-per-video", type=int, default=8, help="frames per video (1: stills)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--grid", help="also write a grid image of faces per expression to this PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    from affect_tf.data import READERS, SPLITS

    p = sub.add_parser("convert", help="convert a corpus to GZIP tf.Examples")
    p.add_argument("--format", required=True, choices=sorted(READERS))
    p.add_argument("--root", required=True, help="corpus folder (see docs/datasets.md)")
    p.add_argument("--split", choices=SPLITS, default="train", help="AffectNet/Aff-Wild2 split")
    p.add_argument("--out", required=True, help="output .tfrecord.gz")
    p.add_argument(
        "--policy",
        choices=("largest", "confident"),
        default="largest",
        help="which detected face to keep",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_convert)

    p = sub.add_parser("demo", help="run what exists end to end on SynthAffect and summarise")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``affect-tf`` console script."""
    from affect_tf.data.corpus import CorpusError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, CorpusError) as e:
        print(f"affect-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"affect-tf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
