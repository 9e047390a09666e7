"""FaceExampleGen's conversion inside Beam: in-process vs the multi-processing DirectRunner, on
the same photos without annotated geometry (MTCNN finds every face).

Runs the component's own PTransform (``affect_tf.pipeline.example_gen.faces_to_examples``) in a
Beam pipeline of its own, as the ExampleGen executor does, and counts the examples it yields.

    python -m benchmarks.example_gen [--n 160] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from affect_tf.pipeline import example_gen as eg


def unannotated_corpus(root: Path, n: int) -> Path:
    """SynthAffect photos as a manifest without box/landmark columns (faces must be found)."""
    if not (root / "manifest.csv").is_file():
        import pandas as pd

        from affect_tf.data.synth import SynthConfig, write_corpus

        write_corpus(SynthConfig(n=n, size=128, frames_per_video=1, seed=7), root, progress=False)
        table = pd.read_csv(root / "manifest.csv")
        geometry = ["box_x", "box_y", "box_w", "box_h", "landmarks"]
        table.drop(columns=geometry).to_csv(root / "manifest.csv", index=False)
    return root


def run(corpus: Path, out: Path, beam_args: list[str]) -> dict:
    """One Beam run of FaceExampleGen's PTransform; faces/s over the whole run."""
    config = {eg.FORMAT_KEY: "manifest", eg.SPLIT_KEY: "train", eg.SKIP_DIR_KEY: str(out)}
    properties = {eg.CORPUS_CONFIG_KEY: json.dumps(config), "input_base": str(corpus)}
    counts = out / "count"
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner", *beam_args])) as p:
        _ = (
            p
            | "Examples" >> eg.faces_to_examples(properties, "*")
            | "One" >> beam.Map(lambda _: 1)
            | "Sum" >> beam.CombineGlobally(sum)
            | "Write" >> beam.io.WriteToText(str(counts), shard_name_template="")
        )
    seconds = time.perf_counter() - start
    written = int(counts.read_text().strip() or 0)
    return {
        "args": beam_args,
        "seconds": seconds,
        "written": written,
        "faces_per_s": written / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=160)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="runs/example_gen")
    parser.add_argument("--json", default="benchmarks/results/example_gen.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    corpus = unannotated_corpus(out / "corpus", args.n)
    results = {
        "in-process": run(corpus, out / "in_process", []),
        "multi-processing": run(
            corpus,
            out / "multi_processing",
            ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"],
        ),
    }
    for name, r in results.items():
        print(
            f"{name}: {r['written']} faces in {r['seconds']:.1f} s = {r['faces_per_s']:.1f} faces/s"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
