"""Which SynthAffect generator settings make pretraining transfer? One at a time, over seeds.

Two designs (``--design``). ``add_one`` (the default): each corpus is the shipped settings
(the generator's defaults) plus one nuisance setting at its ``RICH`` value, so every corpus
stays as learnable as the shipped one and the difference in transfer is what that setting
teaches. ``leave_one_out``: a ``rich`` corpus turns every setting on and each ablation sets one
back to its default; at the study's budget ``rich`` is too hard for the small backbone to learn
(its own held-out P_MTL stays near 0.6 against 2.5 for the defaults), so each row there also
measures how much easier pretraining became. Both include the shipped settings, ``rich`` and
random weights as reference rows. Every corpus pretrains the ``demo`` backbone
(small_cnn, 64 px) with ``affect-tf pretrain``'s code, the same budget and seed; each backbone
is then fine-tuned on ``--size`` labelled faces of a target domain none of them saw
(``TARGET``: every setting at values no pretraining corpus used, other identities, real-corpus
label gaps) and tested on held-out faces of that domain, mean +- std over ``--seeds``.
Rendering speed of each corpus, images/s on one core, sits beside its transfer.

    python -m benchmarks.synth_knobs [--design add_one] [--steps-per-epoch 64] [--size 500]
        [--seeds 2] [--quick]

Every pretraining run and every transfer run is resumable: an interrupted benchmark run again
with the same flags picks up where it stopped. JSON: ``benchmarks/results/synth_knobs.json``;
section ``synth_knobs`` of ``docs/results.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

from affect_tf.data.synth import SynthConfig
from affect_tf.model import get_preset
from affect_tf.training.pretrain import WEIGHTS_FILE, pretrain
from affect_tf.training.pretrain_budget import get_budget
from benchmarks.common import write_section
from benchmarks.pretrained import render_speed, run, subset
from benchmarks.real_corpora import cell, corpus, mean_std

PRESET = "demo"
# Every nuisance setting on: the corpus the ablations remove one setting from.
RICH = {
    "backgrounds": "mixed",
    "jpeg_min_quality": 40,
    "yaw_range": 0.6,
    "noise_max": 10.0,
    "occlusion_rate": 0.2,
    "accessory_rate": 0.3,
    "pitch_range": 0.3,
    "fringe_rate": 0.3,
    "mask_rate": 0.15,
    "low_res_rate": 0.2,
    "intensity_min": 0.3,
}
# The target domain: each setting at a value no pretraining corpus uses.
TARGET = {
    "backgrounds": "photo",
    "jpeg_min_quality": 30,
    "yaw_range": 0.75,
    "noise_max": 12.0,
    "occlusion_rate": 0.25,
    "accessory_rate": 0.5,
    "pitch_range": 0.4,
    "fringe_rate": 0.45,
    "mask_rate": 0.25,
    "low_res_rate": 0.3,
    "intensity_min": 0.2,
}


SHIPPED, ALL_ON = "shipped settings (defaults)", "rich (all on)"
# Per design: the reference corpus its rows compare with, the prefix of its one-setting rows'
# labels, and what each of those corpora is (for the results page).
DESIGN_ROWS = {
    "add_one": (
        SHIPPED,
        "shipped + ",
        "each corpus is the shipped settings plus one setting at its `rich` value",
    ),
    "leave_one_out": (
        ALL_ON,
        "rich without ",
        "each corpus is `rich` with one setting back at its default",
    ),
}
DESIGNS = tuple(DESIGN_ROWS)


def variants(design: str = "add_one") -> dict[str, dict]:
    """Pretraining corpora by label: the shipped defaults, ``rich``, and one corpus per setting.

    Args:
        design: ``"add_one"``: the defaults plus each ``RICH`` setting alone;
            ``"leave_one_out"``: ``RICH`` minus each setting (set back to its default).
    """
    if design not in DESIGNS:
        raise ValueError(f"Expected design in {DESIGNS}. Received: design={design!r}")
    prefix = DESIGN_ROWS[design][1]
    out = {SHIPPED: {}, ALL_ON: dict(RICH)}
    for knob, value in RICH.items():
        if design == "add_one":
            out[f"{prefix}{knob} (= {value})"] = {knob: value}
        else:
            default = getattr(SynthConfig, knob)
            out[f"{prefix}{knob} (= {default})"] = {**RICH, knob: default}
    return out


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.split(" (")[0]).strip("_")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", choices=DESIGNS, default="add_one")
    parser.add_argument("--steps-per-epoch", type=int, default=64, help="pretraining budget")
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=500, help="labelled target faces")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12, help="transfer epochs")
    parser.add_argument("--n-val", type=int, default=480)
    parser.add_argument("--n-test", type=int, default=960)
    parser.add_argument("--quick", action="store_true", help="a smoke run: minutes, no claims")
    parser.add_argument("--out", default="runs/synth_knobs")
    parser.add_argument("--json", default="benchmarks/results/synth_knobs.json")
    parser.add_argument("--md", default="docs/results.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps_per_epoch, args.pretrain_epochs, args.size = 2, 1, 64
        args.seeds, args.epochs, args.n_val, args.n_test = 1, 1, 32, 32
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene = max(128, 2 * get_preset(PRESET).image_size)

    def target(name: str, n: int, seed: int) -> str:
        # SynthConfig's default label rates: real-corpus gaps.
        return corpus(out, name, SynthConfig(n=n, size=scene, seed=seed, **TARGET))

    pool = target("target_pool", args.size, 9001)
    val, test = [target("target_val", args.n_val, 9002)], [target("target_test", args.n_test, 9003)]
    files = [subset(pool, args.size, out)]
    results: dict = {
        "config": {**vars(args), "rich": RICH, "target": TARGET, "scene": scene},
        "machine": platform.platform(),
        "corpora": {},
    }

    def transfer(name: str, config) -> list[dict]:
        return [
            run(name, config, files, test, out, s, val_files=val, epochs=args.epochs)
            for s in range(args.seeds)
        ]

    print("== random weights", flush=True)
    results["random"] = transfer("t_random", get_preset(PRESET, weights="", schedule="scratch"))
    for label, knobs in variants(args.design).items():
        print(f"== {label}", flush=True)
        held_out = {"val_n": 32, "test_n": 32} if args.quick else {}
        budget = get_budget(
            "shipped",
            epochs=args.pretrain_epochs,
            steps_per_epoch=args.steps_per_epoch,
            **held_out,
            **knobs,
        )
        folder = out / f"pre_{slug(label)}"
        card = pretrain(PRESET, folder, budget, seed=0)
        weights = str(folder / WEIGHTS_FILE)
        config = get_preset(PRESET, weights=weights, schedule="finetune")
        results["corpora"][label] = {
            "knobs": knobs,
            "held_out_own_domain": card["held_out_test"]["p_mtl"],
            "pretrain_seconds": card["training"]["seconds_this_session"],
            "images_per_s": render_speed(scene, 1.0 if args.quick else 3.0, {label: knobs})[label],
            "transfer": transfer(f"t_{slug(label)}", config),
        }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    if not args.quick:
        write_section(args.md, "synth_knobs", markdown(results))
    print(f"wrote {args.json}" + ("" if args.quick else f" and {args.md}"))
    return 0


def _design(r: dict) -> tuple[str, str, str, str]:
    """The study's design (results written before ``--design`` existed are leave-one-out),
    its reference corpus, the prefix of its one-setting rows and what those corpora are."""
    design = r["config"].get("design", "leave_one_out")
    return (design, *DESIGN_ROWS[design])


def markdown(r: dict) -> str:
    c = r["config"]
    design, reference, _, how = _design(r)
    faces = c["pretrain_epochs"] * c["steps_per_epoch"] * get_preset(PRESET).batch_size
    lines = [
        "## Which SynthAffect settings make pretraining transfer (one setting at a time)",
        "",
        f"`python -m benchmarks.synth_knobs --design {design} --steps-per-epoch "
        f"{c['steps_per_epoch']} --size {c['size']} --seeds {c['seeds']}` ({r['machine']}). "
        f"JSON: `benchmarks/results/synth_knobs.json`. Design `{design}`: {how}. Each corpus "
        f"pretrains the `demo` backbone (small_cnn, 64 px) on {faces:,} faces, seed 0; each "
        f"backbone is fine-tuned ({c['epochs']} epochs) on {c['size']} labelled faces of a "
        f"target domain none of them saw ({c['target']}, other identities, real-corpus label "
        f"gaps) and tested on {c['n_test']} held-out faces of it; P_MTL mean ± std over "
        f"{c['seeds']} seeds. Own-domain held-out: the pretraining model on held-out faces of "
        "its own corpus (how learnable the corpus was at this budget).",
        "",
        f"`rich` = {c['rich']}.",
        "",
        f"| pretraining corpus | transfer P_MTL | vs {reference.split(' (')[0]} "
        "| own-domain held-out P_MTL | pretrain min | images/s (1 core) |",
        "|---|---|---|---|---|---|",
        f"| random weights (no pretraining) | {cell(r['random'], 'p_mtl')} | | | | |",
    ]
    ref = mean_std(r["corpora"][reference]["transfer"], "p_mtl")[0]
    for label, x in r["corpora"].items():
        mean = mean_std(x["transfer"], "p_mtl")[0]
        lines.append(
            f"| {label} | {cell(x['transfer'], 'p_mtl')} | {mean - ref:+.3f} | "
            f"{x['held_out_own_domain']:.3f} | {x['pretrain_seconds'] / 60:.1f} | "
            f"{x['images_per_s']:.0f} |"
        )
    return "\n".join(lines + ["", findings(r)]) + "\n"


def _compare(a: list[dict], b: list[dict]) -> tuple[float, int]:
    """Mean P_MTL of runs ``a`` minus ``b``, and its sign where it exceeds the two spreads
    together (+1 or -1; 0: within the spreads)."""
    (mean_a, std_a), (mean_b, std_b) = mean_std(a, "p_mtl"), mean_std(b, "p_mtl")
    diff = mean_a - mean_b
    return diff, int(diff > std_a + std_b) - int(-diff > std_a + std_b)


def findings(r: dict) -> str:
    """Which settings help transfer, computed against the spreads.

    ``add_one``: a setting helps when adding it to the shipped settings raises transfer by
    more than the two spreads together. ``leave_one_out``: when removing it from ``rich``
    lowers transfer by as much. The reverse hurts; the rest are within the spreads.
    """
    design, reference, prefix, _ = _design(r)
    ref = r["corpora"][reference]["transfer"]
    helps, hurts, neutral = [], [], []
    for label, x in r["corpora"].items():
        if not label.startswith(prefix):
            continue
        diff, sign = _compare(x["transfer"], ref)
        if design == "leave_one_out":
            diff, sign = -diff, -sign
        knob = label[len(prefix) :].split()[0]
        if sign:
            (helps if sign > 0 else hurts).append(f"{knob} ({diff:+.3f})")
        else:
            neutral.append(knob)
    diff, sign = _compare(r["corpora"][ALL_ON]["transfer"], r["corpora"][SHIPPED]["transfer"])
    verdict = {
        1: f"the rich corpus transfers better than the shipped settings ({diff:+.3f})",
        -1: f"the shipped settings transfer better than the rich corpus ({-diff:+.3f})",
        0: "the rich corpus and the shipped settings transfer alike (within the spreads)",
    }[sign]
    action = "adding it raises" if design == "add_one" else "removing it lowers"
    parts = [
        f"Findings: {verdict}.",
        f"Settings that help transfer ({action} P_MTL by): "
        + (", ".join(helps) if helps else "none beyond the spreads")
        + ".",
    ]
    if hurts:
        parts.append("Settings that cost transfer: " + ", ".join(hurts) + ".")
    if neutral:
        parts.append("Within the spreads: " + ", ".join(neutral) + ".")
    spread = np.mean([mean_std(x["transfer"], "p_mtl")[1] for x in r["corpora"].values()])
    parts.append(f"Mean spread across seeds: {spread:.3f}.")
    return " ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
