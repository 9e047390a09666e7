"""Does the shipped SynthAffect backbone help on a domain it never saw? Measured, over seeds.

1. **Transfer**: a preset trained from random weights (``scratch``) vs from the shipped
   ``weights="synthaffect"`` backbone (``finetune``, ``frozen``) on a SynthAffect corpus rendered
   with *other* generator settings than pretraining ever used -- photographic backgrounds, JPEG
   artefacts down to quality 30, +-0.7 rad yaw, 2.4x the sensor noise, other identities (other
   seeds) and real-corpus label gaps -- at several labelled-set sizes, tested on held-out faces
   of that domain (another seed). Mean +- std over ``--seeds``.
2. **Sim-to-real sanity**: BlazeFace's hit rate on rendered frames (pretraining's domain and
   the target domain: a detection whose box overlaps the true face box by IoU >= 0.3) vs the
   real face photographs scikit-image ships; and what the pretraining run's model and the
   target-domain models read on those real faces.
3. **Rendering speed** of each generator setting, images/s on one core.

    python -m benchmarks.pretrained [--preset demo] [--sizes 500,2000,8000] [--seeds 3]
        [--epochs N] [--quick]

Each preset writes its own JSON (``benchmarks/results/pretrained.json`` for ``demo``,
``pretrained_<preset>.json`` otherwise) and its own section of ``docs/results.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from affect_tf.data.examples import read_tfrecord, serialize_example
from affect_tf.data.synth import SynthConfig, render_video
from affect_tf.model import get_preset
from affect_tf.model.shipped import find_shipped, read_card
from affect_tf.training.pretrain import setting_differences
from affect_tf.training.pretrain_budget import BUDGETS
from affect_tf.training.tfrecords import evaluate
from benchmarks.common import write_section
from benchmarks.real_corpora import cell, corpus, mean_std
from benchmarks.real_corpora import run as train_and_test

# The target domain: nuisance settings pretraining never saw (its budget uses the defaults).
TARGET = {"backgrounds": "photo", "jpeg_min_quality": 30, "yaw_range": 0.7, "noise_max": 12.0}
SCHEDULES = ("scratch", "finetune", "frozen")
REAL_FACES = ("astronaut", "camera")  # the photographs of people scikit-image ships


def subset(source: str, n: int, out: Path) -> str:
    """The first ``n`` examples of ``source`` (whole videos first: a smaller labelled set)."""
    import tensorflow as tf

    path = out / f"pool_{n}.tfrecord.gz"
    if not path.is_file():
        with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
            for i, record in enumerate(read_tfrecord(source)):
                if i >= n:
                    break
                writer.write(serialize_example(record))
    return str(path)


def run(name: str, config, files, test, out: Path, seed: int, **kw) -> dict:
    """One training run, tested; a run an interrupted benchmark finished is tested again, not
    retrained (its folder has ``history.json``, written when training ends)."""
    folder = out / f"{name}_s{seed}"
    history = folder / "history.json"
    if history.is_file() and (folder / "model.keras").is_file():
        from affect_tf.model.loading import load_model

        metrics = evaluate(load_model(folder / "model.keras", compile=False), test)
        print(f"   {name} seed {seed}: P_MTL {metrics['p_mtl']:.3f} (finished earlier)", flush=True)
        return {
            "seed": seed,
            "seconds": json.loads(history.read_text())["seconds"],
            "metrics": metrics,
        }
    return train_and_test(name, config, files, test, out, seed, **kw)


def render_speed(size: int, seconds: float = 4.0, settings: dict | None = None) -> dict:
    """Images/s of one process per generator setting (``frames_per_video`` 2, as pretraining).

    ``settings``: label -> ``SynthConfig`` keyword arguments; default: the defaults, photo
    backgrounds, JPEG and this benchmark's target domain.
    """
    if settings is None:
        settings = {"default (clutter)": {}, "photo backgrounds": {"backgrounds": "photo"}}
        settings["JPEG q>=30"] = {"jpeg_min_quality": 30}
        settings["target domain (all of them)"] = TARGET
    out = {}
    for label, knobs in settings.items():
        config = SynthConfig(n=10**6, size=size, frames_per_video=2, seed=11, **knobs)
        render_video(config, 0)  # photographs loaded, caches warm
        start, frames, video = time.perf_counter(), 0, 1
        while time.perf_counter() - start < seconds:
            frames += len(render_video(config, video))
            video += 1
        out[label] = frames / (time.perf_counter() - start)
        print(f"   render {label}: {out[label]:.0f} images/s on one core", flush=True)
    return out


def detector_hits(size: int, n: int) -> dict:
    """BlazeFace's hit rate on rendered frames of both domains and on the real photographs."""
    import skimage.data

    from affect_tf.face import make_detector
    from affect_tf.face.detect import box_iou

    detector = make_detector("blazeface")
    out = {}
    for label, knobs in (("pretraining domain", {}), ("target domain", TARGET)):
        config = SynthConfig(n=n, size=size, frames_per_video=4, seed=21, **knobs)
        frames = [f for v in range(config.num_videos) for f in render_video(config, v)][:n]
        hits = sum(
            any(box_iou(d.box, f.bbox) >= 0.3 for d in detector.detect(f.image)) for f in frames
        )
        out[label] = {"frames": len(frames), "hits": int(hits), "rate": hits / len(frames)}
    found = {name: len(detector.detect(getattr(skimage.data, name)())) for name in REAL_FACES}
    out["real photographs"] = {
        "frames": len(REAL_FACES),
        "hits": int(sum(v >= 1 for v in found.values())),
        "rate": sum(v >= 1 for v in found.values()) / len(REAL_FACES),
        "faces_found": found,
    }
    for label, r in out.items():
        print(f"   BlazeFace on {label}: {r['hits']}/{r['frames']} ({r['rate']:.0%})", flush=True)
    return out


def real_readings(models: dict[str, str]) -> dict:
    """What each model reads on the real face photographs: expression, VA, active AUs."""
    import skimage.data

    from affect_tf.data.targets import active_aus
    from affect_tf.inference import AffectRecognizer

    out = {}
    for label, path in models.items():
        recognizer = AffectRecognizer.load(path)
        out[label] = {}
        for name in REAL_FACES:
            table = recognizer.predict_images(getattr(skimage.data, name)(), faces="largest")
            if table.empty:
                out[label][name] = None
                continue
            row = table.iloc[0]
            out[label][name] = {
                "expression": str(row["expression"]),
                "probability": float(row[row["expression"]]),
                "valence": float(row["valence"]),
                "arousal": float(row["arousal"]),
                "aus": active_aus(row),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--sizes", default="500,2000,8000", help="labelled-set sizes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--seeds-largest", type=int, default=2, help="seeds at the largest size (the slowest)"
    )
    parser.add_argument("--n-val", type=int, default=480)
    parser.add_argument("--n-test", type=int, default=960)
    parser.add_argument("--pretrain-model", default="", help="the pretraining run's model.keras")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--quick", action="store_true", help="one seed, sizes 200,400, 2 epochs")
    parser.add_argument("--out", default="", help="default: runs/pretrained[_PRESET]")
    parser.add_argument(
        "--json", default="", help="default: benchmarks/results/pretrained[_PRESET].json"
    )
    parser.add_argument("--md", default="docs/results.md")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the docs section from the JSON"
    )
    parser.add_argument(
        "--reproduced",
        default="",
        help="the card of a rerun of the shipped weights' command: compared with the shipped card",
    )
    args = parser.parse_args(argv)
    key = "pretrained" if args.preset == "demo" else f"pretrained_{args.preset}"
    args.out = args.out or f"runs/{key}"
    args.json = args.json or f"benchmarks/results/{key}.json"
    if args.quick:
        args.seeds, args.sizes, args.n_val, args.n_test, args.epochs = 1, "200,400", 96, 96, 2
    epochs = args.epochs
    if args.render_only:
        results = json.loads(Path(args.json).read_text())
        if args.reproduced:
            results["reproduction"] = reproduction(args.preset, args.reproduced)
            Path(args.json).write_text(json.dumps(results, indent=2, default=float))
        write_section(args.md, key, markdown(results))
        print(f"wrote {args.md} from {args.json}")
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = get_preset(args.preset, weights="", schedule="scratch")
    scene = max(128, 2 * base.image_size)
    card = find_shipped(base.backbone, base.image_size).card
    print(f"== target domain {TARGET}, scene {scene}px", flush=True)
    pool = corpus(out, "target_pool", SynthConfig(n=max(sizes), size=scene, seed=7001, **TARGET))
    val = [corpus(out, "target_val", SynthConfig(n=args.n_val, size=scene, seed=7002, **TARGET))]
    test = [corpus(out, "target_test", SynthConfig(n=args.n_test, size=scene, seed=7003, **TARGET))]
    results: dict = {
        "config": {**vars(args), "target": TARGET, "scene": scene, "epochs": epochs or base.epochs},
        "machine": platform.platform(),
        "shipped_card": {k: card[k] for k in ("preset", "budget", "training", "held_out_test")},
        "transfer": {},
    }
    for n in sizes:
        files = [subset(pool, n, out)]
        results["transfer"][str(n)] = {}
        for schedule in SCHEDULES:
            config = base.replace(
                schedule=schedule, weights="" if schedule == "scratch" else "synthaffect"
            )
            print(f"== {n} faces, {schedule}", flush=True)
            seeds = args.seeds_largest if n == max(sizes) and len(sizes) > 1 else args.seeds
            results["transfer"][str(n)][schedule] = [
                run(f"n{n}_{schedule}", config, files, test, out, s, val_files=val, epochs=epochs)
                for s in range(seeds)
            ]
    print("== sim-to-real sanity", flush=True)
    results["render_images_per_s"] = render_speed(scene, 1.0 if args.quick else 4.0)
    results["detector"] = detector_hits(scene, 48 if args.quick else 240)
    largest = str(max(sizes))
    models = {
        f"target {largest} faces, {s}": str(out / f"n{largest}_{s}_s0" / "model.keras")
        for s in ("scratch", "finetune")
    }
    if args.pretrain_model:
        models = {"pretraining run (SynthAffect only)": args.pretrain_model, **models}
    results["real_faces"] = real_readings(models)
    results["test_check"] = {label: evaluate_model(path, test) for label, path in models.items()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    write_section(args.md, key, markdown(results))
    print(f"wrote {args.json} and {args.md}")
    return 0


def reproduction(preset: str, card_file: str) -> dict:
    """The shipped card next to a rerun's: the settings that differ (none for a true rerun)
    and both runs' held-out metrics and time."""
    config = get_preset(preset)
    shipped = find_shipped(config.backbone, config.image_size).card
    rerun = read_card(card_file)
    same = ("preset", "seed", "budget", "corpus", "model")
    return {
        "differences": [
            k for k in same if setting_differences({k: shipped.get(k)}, {k: rerun.get(k)})
        ],
        "runs": {
            label: {
                "held_out_test": card["held_out_test"],
                "minutes": card["training"]["seconds_this_session"] / 60,
                "faces_per_second": card["training"]["faces_per_second"],
                "git_revision": card["git_revision"],
                "created": card["created"],
                "same_file": card["weights_sha256"] == shipped["weights_sha256"],
            }
            for label, card in (("shipped", shipped), ("rerun", rerun))
        },
    }


def evaluate_model(path: str, test: list[str]) -> float:
    """The target-domain test P_MTL of a saved model."""
    from affect_tf.model.loading import load_model

    return float(evaluate(load_model(path, compile=False), test)["p_mtl"])


def markdown(r: dict) -> str:
    c, card = r["config"], r["shipped_card"]
    t = card["training"]
    lines = [
        "## Pretrained on SynthAffect: transfer to a domain pretraining never saw"
        + ("" if c["preset"] == "demo" else f" (`{c['preset']}`)"),
        "",
        f"`python -m benchmarks.pretrained --preset {c['preset']}` ({c['seeds']} seeds, "
        f"{c['seeds_largest']} at the largest size, mean ± std; {c.get('epochs') or get_preset(c['preset']).epochs} epochs; "
        f"{r['machine']}). JSON: `{c['json']}`. The shipped "
        f"backbone: `affect-tf pretrain --preset {card['preset']} --budget "
        f"{card['budget']['name']}{steps_flag(card)}` — {t['faces_seen']} faces rendered on the fly "
        f"({t['epochs']} epochs x {card['budget']['steps_per_epoch']} steps), "
        f"{t['seconds_this_session'] / 60:.0f} min on {t['cpu_count']} cores; held-out "
        f"SynthAffect test P_MTL {card['held_out_test']['p_mtl']:.3f}.",
        "",
        f"Target domain: {c['target']} (pretraining: drawn clutter, no JPEG, ±0.45 rad yaw, "
        f"noise ≤ 5), other identities, real-corpus label gaps; validation {c['n_val']} and "
        f"test {c['n_test']} faces of other seeds.",
        "",
        "| labelled faces | init | P_MTL | VA CCC | EXPR F1 | AU F1 | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, by_schedule in r["transfer"].items():
        for schedule, runs in by_schedule.items():
            init = "random" if schedule == "scratch" else f"synthaffect, {schedule}"
            lines.append(
                f"| {n} | {init} | {cell(runs, 'p_mtl')} | {cell(runs, 'va')} | "
                f"{cell(runs, 'expr_f1')} | {cell(runs, 'au_f1')} | "
                f"{np.mean([x['seconds'] for x in runs]):.0f} |"
            )
    speed = r["render_images_per_s"]
    lines += [
        "",
        "**Rendering** (images/s, one core, frames of "
        f"{c['scene']} px): " + ", ".join(f"{k} {v:.0f}" for k, v in speed.items()) + ".",
        "",
        "**BlazeFace hit rate** (a detection with IoU ≥ 0.3 on the true face box): "
        + ", ".join(
            f"{k} {v['hits']}/{v['frames']} ({v['rate']:.0%})" for k, v in r["detector"].items()
        )
        + ".",
        "",
        "**What the models read on the real photographs scikit-image ships** "
        "(largest face; target-domain test P_MTL of each model in brackets):",
        "",
        "| model | " + " | ".join(REAL_FACES) + " |",
        "|---|" + "---|" * len(REAL_FACES),
    ]
    for label, readings in r["real_faces"].items():
        cells = []
        for name in REAL_FACES:
            x = readings.get(name)
            cells.append(
                "no face"
                if x is None
                else f"{x['expression']} {x['probability']:.2f}, V {x['valence']:+.2f} "
                f"A {x['arousal']:+.2f}, {'+'.join(x['aus']) or 'no AU'}"
            )
        lines.append(f"| {label} [{r['test_check'][label]:.3f}] | " + " | ".join(cells) + " |")
    return "\n".join(lines + reproduction_lines(r) + ["", findings(r)]) + "\n"


def reproduction_lines(r: dict) -> list[str]:
    """The shipped card next to a rerun of its command, if one was measured."""
    rep = r.get("reproduction")
    if not rep:
        return []
    lines = [
        "",
        "**Reproducing the shipped card**: the same `affect-tf pretrain` command run again "
        f"(settings that differ from the card: {', '.join(rep['differences']) or 'none'}); "
        "held-out SynthAffect test:",
        "",
        "| run | P_MTL | VA CCC | EXPR F1 | AU F1 | minutes | faces/s | revision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, x in rep["runs"].items():
        m = x["held_out_test"]
        lines.append(
            f"| {label} ({x['created'][:10]}) | {m['p_mtl']:.3f} | {m['va']:.3f} | "
            f"{m['expr_f1']:.3f} | {m['au_f1']:.3f} | {x['minutes']:.1f} | "
            f"{x['faces_per_second']:.0f} | {x['git_revision'][:7]} |"
        )
    return lines + ["", reproduction_verdict(rep)]


def reproduction_verdict(rep: dict) -> str:
    """Whether a rerun matches the shipped card within the held-out set's sampling noise.

    The noise is the binomial standard error of the shipped run's expression accuracy on its
    ``n`` held-out faces, ``sqrt(acc (1 - acc) / n)``: two runs scored on the same faces differ
    by training noise, and a difference under two such errors is not one a test set this size
    can tell apart.
    """
    shipped, rerun = rep["runs"]["shipped"]["held_out_test"], rep["runs"]["rerun"]["held_out_test"]
    se = (shipped["expr_acc"] * (1 - shipped["expr_acc"]) / shipped["n"]) ** 0.5
    diffs = {k: rerun[k] - shipped[k] for k in ("p_mtl", "va", "expr_f1", "au_f1")}
    worst = max(abs(diffs[k]) for k in ("va", "expr_f1", "au_f1"))
    verdict = "within noise" if worst <= 2 * se else "NOT within noise"
    return (
        f"Rerun - shipped: P_MTL {diffs['p_mtl']:+.3f} (VA CCC {diffs['va']:+.3f}, EXPR F1 "
        f"{diffs['expr_f1']:+.3f}, AU F1 {diffs['au_f1']:+.3f}); the largest task difference is "
        f"{worst:.3f} against a sampling error of {se:.3f} (expression accuracy on "
        f"{shipped['n']} held-out faces): {verdict} (threshold: two sampling errors)."
    )


def steps_flag(card: dict) -> str:
    """The ``--steps-per-epoch`` a card's run overrode its named budget with, as a flag."""
    steps = card["budget"]["steps_per_epoch"]
    named = BUDGETS.get(card["budget"]["name"])
    return "" if named is None or named.steps_per_epoch == steps else f" --steps-per-epoch {steps}"


def findings(r: dict) -> str:
    """What the numbers say, computed from them: where SynthAffect init beats random weights by
    more than the two spreads together, where it does not, and what frozen costs."""
    gains, not_better, frozen_gaps = [], [], []
    for n, by_schedule in r["transfer"].items():
        scratch, scratch_std = mean_std(by_schedule["scratch"], "p_mtl")
        finetune = mean_std(by_schedule["finetune"], "p_mtl")
        frozen = mean_std(by_schedule["frozen"], "p_mtl")
        gains.append(f"{n} faces {scratch:.2f} -> {finetune[0]:.2f} (frozen {frozen[0]:.2f})")
        frozen_gaps.append(finetune[0] - frozen[0])
        best, best_std = max(finetune, frozen)  # the better init, with its own spread
        if best - scratch <= scratch_std + best_std:
            not_better.append(n)
    if not not_better:
        verdict = "SynthAffect initialisation beats random weights at every labelled-set size"
    elif len(not_better) == len(gains):
        verdict = "SynthAffect initialisation does not beat random weights at any labelled-set size"
    else:
        verdict = (
            "SynthAffect initialisation beats random weights except at "
            f"{', '.join(not_better)} faces, where the difference is within the seeds' spread"
        )
    frozen_word = (
        f"`frozen` is within {max(frozen_gaps):.2f} of `finetune`"
        if max(frozen_gaps) >= 0
        else "`frozen` beats `finetune` at every size"
    )
    zero_shot = next((v for k, v in r["test_check"].items() if k.startswith("pretraining")), None)
    text = (
        f"Findings: {verdict} measured (P_MTL, random -> finetune: {'; '.join(gains)}); "
        f"{frozen_word} (largest gap)."
    )
    if zero_shot is not None:
        text += (
            f" The pretraining run's own model, which never saw the target domain, scores "
            f"{zero_shot:.3f} on its test faces."
        )
    return text + (
        " What the models read on two real photographs is an anecdote, not a measurement "
        "(no labelled real corpus on this machine); the table shows the sim-to-real gap as it is."
    )


if __name__ == "__main__":
    sys.exit(main())
