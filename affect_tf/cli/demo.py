"""``affect-tf demo`` (the quick path without TFX) and ``affect-tf pipeline summary``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from affect_tf.cli.errors import UsageError
from affect_tf.core.files import replaced_atomically


def _demo(args: argparse.Namespace) -> int:
    """SynthAffect -> tf.Examples -> train -> evaluate on held-out faces -> summary.

    The quick path without TFX; ``make demo`` runs the same steps as TFX components.
    """
    from affect_tf.data.convert import convert_corpus
    from affect_tf.data.synth import SynthConfig, write_corpus, write_expression_grid
    from affect_tf.model import get_preset
    from affect_tf.training.tfrecords import evaluate, train

    out = Path(args.out)
    timings: dict[str, float] = {}
    # Three corpora, three seeds: the validation (early stopping) and test people are new.
    corpora = {
        "train": SynthConfig(n=args.n, size=args.size, seed=args.seed),
        "validation": SynthConfig(n=max(32, args.n // 8), size=args.size, seed=args.seed + 2),
        "test": SynthConfig(n=max(64, args.n // 4), size=args.size, seed=args.seed + 1),
    }
    print(
        f"[1/4] rendering SynthAffect: {corpora['train'].n} training, "
        f"{corpora['validation'].n} validation and {corpora['test'].n} held-out test faces, "
        f"each set of other people -> {out}"
    )
    start = time.perf_counter()
    for name, config in corpora.items():
        write_corpus(config, out / f"synth_{name}", progress=True)
    timings["synth"] = time.perf_counter() - start
    grid = write_expression_grid(out / "synthaffect_grid.png", size=args.size, seed=args.seed)

    print("[2/4] converting the manifest corpora to tf.Examples")
    start = time.perf_counter()
    results = {}
    for name in corpora:
        results[name] = convert_corpus(
            "manifest", out / f"synth_{name}", out / f"{name}.tfrecord.gz"
        )
    timings["convert"] = time.perf_counter() - start

    config = get_preset(args.preset, epochs=args.epochs or get_preset(args.preset).epochs)
    print(
        f"[3/4] training preset {config.name!r} ({config.backbone}, {config.heads} heads, "
        f"{config.image_size}px) for {config.epochs} epochs"
    )
    start = time.perf_counter()
    trained = train(
        config,
        [str(results["train"].out_path)],
        out / "model",
        val_files=[str(results["validation"].out_path)],
        resume=False,
    )
    timings["train"] = time.perf_counter() - start

    print("[4/4] evaluating on the held-out faces")
    start = time.perf_counter()
    test_files = [str(results["test"].out_path)]
    metrics = evaluate(trained.model, test_files)
    smoothed = evaluate(trained.model, test_files, smooth="mean:5")
    timings["evaluate"] = time.perf_counter() - start

    _write_summary(out, results, metrics, smoothed, timings, grid)
    return 0


def _write_summary(out: Path, results: dict, metrics: dict, smoothed: dict, timings: dict, grid):
    """Prints the demo's summary and artifacts; writes ``OUT/summary.json``."""
    from affect_tf.evaluation.report import format_report

    stats = results["train"].stats.to_dict()
    print("summary")
    print(
        f"  data:     {stats['written']} training examples ({stats['videos']} videos; labelled VA "
        f"{stats['labelled']['va']}, expression {stats['labelled']['expression']}, AU "
        f"{stats['labelled']['au']}), {results['test'].stats.written} held-out"
    )
    for title, m in (("held-out", metrics), ("+ mean:5", smoothed)):
        print(f"  {title:9s} {format_report(m)}")
    print("  times:    " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print("artifacts:")
    print(f"  corpora        {out}/synth_{{train,validation,test}}/ (manifest.csv + images)")
    print(f"  tf.Examples    {out}/{{train,validation,test}}.tfrecord.gz (+ .report.json)")
    print(f"  model          {out / 'model' / 'model.keras'}")
    print(f"  curves         {out / 'model' / 'training_curves.png'}")
    print(f"  face grid      {grid}")
    summary = {
        "timings_s": timings,
        "data": stats,
        "held_out": metrics,
        "held_out_smoothed": smoothed,
        "model": str(out / "model" / "model.keras"),
    }
    with replaced_atomically(out / "summary.json") as partial:
        partial.write_text(json.dumps(summary, indent=2))
    print(f"  summary        {out / 'summary.json'}")


def _pipeline_summary(args: argparse.Namespace) -> int:
    from affect_tf.pipeline.config import ConfigError, PipelineConfig
    from affect_tf.pipeline.summary import format_summary, summarize

    try:
        config = PipelineConfig.load(**({"output_root": args.out} if args.out else {}))
    except ConfigError as e:
        raise UsageError(str(e)) from None
    try:
        summary = summarize(config)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    print(format_summary(summary))
    return 0 if summary["blessed"] or not args.require_blessed else 1


def add_commands(sub) -> None:
    """Adds ``demo`` and ``pipeline summary``."""
    from affect_tf.model.config import PRESETS

    p = sub.add_parser(
        "demo",
        help="without TFX: SynthAffect -> tf.Examples -> train -> held-out evaluation "
        "(`make demo` runs the TFX pipeline)",
    )
    # Not runs/demo: that is the TFX pipeline's output_root (`make demo`), whose summary.json
    # has other contents.
    p.add_argument("--out", default="runs/quick-demo")
    p.add_argument("--n", type=int, default=2048, help="training faces (held-out: a quarter)")
    p.add_argument("--size", type=int, default=96, help="SynthAffect frame size")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)

    p = sub.add_parser("pipeline", help="the TFX pipeline's results (run it with the tfx CLI)")
    pipeline_sub = p.add_subparsers(dest="pipeline_command", required=True)
    q = pipeline_sub.add_parser(
        "summary", help="summarise the last run from ML Metadata into OUTPUT/summary.json"
    )
    q.add_argument(
        "--out", help="the pipeline's output_root (default: AFFECT_OUTPUT_ROOT or runs/demo)"
    )
    q.add_argument(
        "--require-blessed", action="store_true", help="exit 1 when the model was not blessed"
    )
    q.set_defaults(func=_pipeline_summary)
