"""The affect GAN measured on SynthAffect: condition fidelity, realism, augmentation, and the
discriminator as a recognizer.

One run, one machine (CPU), every number from held-out faces:

1. Corpora: training (seed 0), validation (seed 2, for checkpoint selection only) and test
   (seed 1: other identities, backgrounds, videos). The training corpus is split by video into
   a **labelled** part (``--label-percent``, default 10 %) and an **unlabelled** part (the same
   faces with every mask 0).
2. A **reference recognizer** (``AffectModel``, the GAN's recognizer preset at its image size)
   trained on *all* training labels, real faces only: it judges the generated faces.
3. The **GAN**, trained on labelled + unlabelled faces (semi-supervised).
4. **Condition fidelity**: conditions drawn from the test labels (balanced over expressions),
   generated faces, read by the reference recognizer: accuracy / F1 / CCC against the
   conditions asked for; next to the same recognizer on real test faces (its ceiling) and on
   an untrained generator (chance).
5. **Realism**: Fréchet distance between feature distributions in the reference recognizer's
   embedding space (Inception weights cannot be downloaded here, so no FID): generated vs real
   test faces, next to real training vs real test faces (the floor) and an untrained generator.
6. **Augmentation**: a plain ``AffectModel`` trained on the labelled part only, with and without
   GAN faces for the rare expressions, the same steps; P_MTL and per-class F1 on the test corpus.
7. **Discriminator as recognizer**: the GAN discriminator's task heads (``recognizer.keras``)
   on the test corpus vs the plain model with the same labels.

    python -m benchmarks.gan_eval [--steps 2000] [--label-percent 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy import linalg

from affect_tf.core.labels import EXPRESSIONS, NUM_AUS
from affect_tf.data import targets as tg
from affect_tf.data.dataset import make_dataset, measure_priors
from affect_tf.data.examples import read_tfrecord, serialize_example
from affect_tf.evaluation.report import AffectEvaluator
from affect_tf.gan.conditions import AU_SLICE, ConditionPriors, condition_targets
from affect_tf.gan.config import get_gan_preset
from affect_tf.gan.folder import GAN_FILE, load_gan, read_meta
from affect_tf.gan.networks import build_generator
from affect_tf.gan.sampling import expression_grid, generate, write_generated_examples, write_png
from affect_tf.gan.train import train_gan
from affect_tf.model.affect_model import probabilities
from affect_tf.training.tfrecords import evaluate, train
from benchmarks.common import write_section
from benchmarks.mtl_vs_single import corpus


def split_labels(source: str, labelled: Path, unlabelled: Path, percent: int) -> dict:
    """Splits a corpus by video: ``percent`` % of the videos keep their labels, the rest lose
    them (every mask 0). Stable: a video's share is a hash of its id."""
    counts = {"labelled": 0, "unlabelled": 0}
    if labelled.is_file() and unlabelled.is_file():
        return {
            "labelled": measure_priors([str(labelled)], split=None).n,
            "unlabelled": measure_priors([str(unlabelled)], split=None).n,
        }
    with (
        tf.io.TFRecordWriter(str(labelled), "GZIP") as keep,
        tf.io.TFRecordWriter(str(unlabelled), "GZIP") as drop,
    ):
        for record in read_tfrecord(source):
            bucket = int(tf.strings.to_hash_bucket_fast("labels:" + record.video_id, 100))
            if bucket < percent:
                keep.write(serialize_example(record))
                counts["labelled"] += 1
            else:
                record.va_mask = record.expr_mask = 0
                record.au_mask = [0] * NUM_AUS
                drop.write(serialize_example(record))
                counts["unlabelled"] += 1
    return counts


def read_faces(model, images: np.ndarray, batch: int = 128) -> dict:
    """Reference-recognizer probabilities for uint8/float faces."""
    parts = [
        probabilities(model.predict_on_batch(images[i : i + batch].astype("float32")))
        for i in range(0, len(images), batch)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def fidelity(model, faces: np.ndarray, conditions: np.ndarray) -> dict:
    """How the reference recognizer reads faces, against the conditions they were made for
    (AUs asked with activation >= 0.5 count as present)."""
    probs = read_faces(model, faces)
    t = {k: np.array(v) for k, v in condition_targets(conditions).items()}
    t[tg.AU][:, :NUM_AUS] = (conditions[:, AU_SLICE] >= 0.5).astype(np.float32)
    evaluator = AffectEvaluator()
    evaluator.update(probs[tg.VA], probs[tg.EXPRESSION], probs[tg.AU], t)
    return evaluator.result()


def embeddings(embed, images: np.ndarray, batch: int = 128) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(embed.predict_on_batch(images[i : i + batch].astype("float32")))
            for i in range(0, len(images), batch)
        ]
    ).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) between two feature sets (rows = samples)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    # A tiny ridge keeps the square root defined for dimensions the features never use.
    ridge = 1e-9 * np.eye(a.shape[1])
    cov_a, cov_b = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    root = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def real_faces(files: list[str], size: int, margin: float, n: int, seed: int = 0) -> np.ndarray:
    ds = make_dataset(files, size, margin, 256, training=True, seed=seed, cache=False)
    out, total = [], 0
    for images, _ in ds:
        out.append(images.numpy())
        total += len(out[-1])
        if total >= n:
            break
    return np.concatenate(out)[:n]


def fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=4096)
    parser.add_argument("--n-val", type=int, default=512)
    parser.add_argument("--n-test", type=int, default=1024)
    parser.add_argument("--size", type=int, default=96, help="SynthAffect frame size")
    parser.add_argument("--preset", default="demo", help="GAN preset")
    parser.add_argument("--steps", type=int, help="GAN steps (default: the preset's)")
    parser.add_argument(
        "--mode-seeking", type=float, help="mode-seeking weight (default: the preset's)"
    )
    parser.add_argument(
        "--labelled-share", type=float, help="GAN labelled_share (default: the preset's)"
    )
    parser.add_argument("--label-percent", type=int, default=10)
    parser.add_argument("--reference-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=12, help="augmentation runs: epochs")
    parser.add_argument("--steps-per-epoch", type=int, default=40, help="augmentation runs")
    parser.add_argument("--n-generated", type=int, default=1024, help="faces for fidelity/FD")
    parser.add_argument("--out", default="runs/gan_eval")
    parser.add_argument("--md", default="docs/results.md")
    parser.add_argument("--grid", default="docs/gan_grid.jpg")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.gan_eval " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = {"steps": args.steps} if args.steps else {}
    if args.mode_seeking is not None:
        overrides["mode_seeking_weight"] = args.mode_seeking
    if args.labelled_share is not None:
        overrides["labelled_share"] = args.labelled_share
    gan_config = get_gan_preset(args.preset, **overrides)
    affect = gan_config.affect_config
    clock = time.perf_counter()

    print("== corpora", flush=True)
    train_file = corpus(out, "train", args.n_train, args.size, seed=0)
    val_files = [corpus(out, "val", args.n_val, args.size, seed=2)]
    test_files = [corpus(out, "test", args.n_test, args.size, seed=1)]
    labelled, unlabelled = out / "labelled.tfrecord.gz", out / "unlabelled.tfrecord.gz"
    split = split_labels(train_file, labelled, unlabelled, args.label_percent)
    label_priors = measure_priors([str(labelled)], split=None)
    counts = label_priors.expression_counts
    print(f"   {split} faces; labelled expressions {counts.astype(int).tolist()}", flush=True)

    print("== reference recognizer (all training labels, real faces)", flush=True)
    if (out / "reference" / "model.keras").is_file():  # a finished earlier run of this script
        reference_model = keras.models.load_model(out / "reference" / "model.keras")
    else:
        reference_model = train(
            affect,
            [train_file],
            out / "reference",
            val_files=val_files,
            epochs=args.reference_epochs,
            patience=args.reference_epochs,
            verbose=0,
        ).model
    reference_test = evaluate(reference_model, test_files)
    print(f"   test P_MTL {reference_test['p_mtl']:.3f}", flush=True)

    print(f"== GAN ({gan_config.steps} steps, {args.label_percent} % labels)", flush=True)
    gan_dir = out / "gan"
    done = (gan_dir / GAN_FILE).is_file() and read_meta(gan_dir).get("finished")
    done = done and read_meta(gan_dir)["config"] == gan_config.to_dict()
    if not done:
        train_gan(gan_config, [str(labelled), str(unlabelled)], gan_dir, verbose=0)
    loaded = load_gan(gan_dir)
    gan_history = loaded.meta["history"]
    write_png(expression_grid(loaded.generator, loaded.priors, per_expression=8, seed=0), args.grid)

    print("== condition fidelity and realism", flush=True)
    rng = np.random.default_rng(0)
    test_priors = ConditionPriors.from_files(test_files)
    balanced = test_priors.sample(args.n_generated, rng, balance=True)
    as_test = test_priors.sample(args.n_generated, rng, balance=False)
    untrained = build_generator(gan_config)
    fakes = generate(loaded.generator, balanced, seed=1)
    fid_rows = {
        "GAN": fidelity(reference_model, fakes, balanced),
        "untrained generator": fidelity(
            reference_model, generate(untrained, balanced, 1), balanced
        ),
    }
    real_test = real_faces(test_files, affect.image_size, affect.margin, args.n_generated)
    embed = reference_model.embedding_model()
    e_test = embeddings(embed, real_test)
    e_train = embeddings(
        embed, real_faces([train_file], affect.image_size, affect.margin, args.n_generated, seed=5)
    )
    fd = {
        "real training faces (floor)": frechet_distance(e_train, e_test),
        "GAN": frechet_distance(embeddings(embed, generate(loaded.generator, as_test, 2)), e_test),
        "untrained generator": frechet_distance(
            embeddings(embed, generate(untrained, as_test, 2)), e_test
        ),
    }
    print(f"   fidelity acc {fid_rows['GAN']['expr_acc']:.3f}; FD {fd}", flush=True)

    print("== augmentation: plain vs + GAN faces for rare expressions", flush=True)
    rare = [i for i, c in enumerate(counts) if c < 0.5 * counts.max()]
    per_class = {EXPRESSIONS[i]: int(counts.max() - counts[i]) for i in rare}
    generated = out / "generated_rare.tfrecord.gz"
    write_generated_examples(gan_dir, per_class, generated, seed=3, margin=affect.margin)
    runs = {}
    for name, files in (
        ("plain, labelled faces only", [str(labelled)]),
        ("+ GAN faces for rare classes", [str(labelled), str(generated)]),
    ):
        r = train(
            affect,
            files,
            out / name.replace(" ", "_").replace(",", "").replace("+", "plus"),
            val_files=val_files,
            epochs=args.epochs,
            patience=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            resume=False,
            verbose=0,
        )
        runs[name] = {"metrics": evaluate(r.model, test_files), "seconds": r.seconds}
        print(f"   {name}: P_MTL {runs[name]['metrics']['p_mtl']:.3f}", flush=True)
    disc = evaluate(keras.models.load_model(gan_dir / "recognizer.keras"), test_files)

    report = {
        "command": command.strip(),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, CPU",
        "seconds": time.perf_counter() - clock,
        "gan_config": gan_config.to_dict(),
        "gan_seconds": loaded.meta.get("seconds", 0.0),
        "split": split,
        "labelled_expression_counts": counts.tolist(),
        "rare": per_class,
        "reference_test": reference_test,
        "fidelity": fid_rows,
        "frechet": fd,
        "augmentation": runs,
        "discriminator": disc,
        "gan_history_last": {k: v[-1] for k, v in gan_history.items()},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2, default=float))
    write_section(args.md, "gan", render(report, args))
    print(f"wrote {args.md}, {args.grid}, {out / 'results.json'}")
    return 0


def render(r: dict, args) -> str:
    """The docs/results.md section."""
    ref = r["reference_test"]
    fid = r["fidelity"]
    lines = [
        "## Generation: the affect GAN on SynthAffect",
        "",
        f"Command: `{r['command']}` (JSON: `{args.out}/results.json`; "
        f"{r['seconds'] / 60:.0f} min on {r['machine']}, 2 cores).",
        "",
        f"GAN preset `{r['gan_config']['name']}`: {r['gan_config']['image_size']}x"
        f"{r['gan_config']['image_size']} faces, {r['gan_config']['steps']} steps of "
        f"{r['gan_config']['batch_size']} ({r['gan_seconds'] / 60:.0f} min), trained on the "
        f"{args.n_train}-frame training corpus (seed 0) of which only the videos in "
        f"{args.label_percent} % of the hash buckets of `video_id` keep their labels "
        f"({r['split']['labelled']} labelled faces = "
        f"{r['split']['labelled'] / max(1, args.n_train):.1%}, "
        f"{r['split']['unlabelled']} unlabelled; labelled expressions "
        + ", ".join(
            f"{n} {int(c)}"
            for n, c in zip(EXPRESSIONS, r["labelled_expression_counts"], strict=True)
        )
        + "). Test: "
        f"{args.n_test} frames rendered with seed 1 (other identities, backgrounds, videos). "
        f"Validation for checkpoint selection: {args.n_val} frames, seed 2. "
        "Grid of generated faces, one row per expression (its typical AUs and VA): "
        f"[{Path(args.grid).name}]({Path(args.grid).name}).",
        "",
        "The **reference recognizer** is the GAN's recognizer preset trained on *all* training "
        f"labels, real faces only (test P_MTL {ref['p_mtl']:.3f}); it judges the generated faces.",
        "",
        "### Condition fidelity",
        "",
        f"{args.n_generated} conditions drawn from the test labels, balanced over expressions; "
        "the reference recognizer reads the faces generated for them. Expression accuracy / "
        "macro F1 against the asked-for expression, AU F1 against the asked-for AUs "
        "(activation ≥ 0.5), CCC against the asked-for valence / arousal.",
        "",
        "| faces | EXPR acc | EXPR F1 | AU F1 | CCC V | CCC A |",
        "|---|---|---|---|---|---|",
    ]
    rows = {
        "GAN (generated for the conditions)": fid["GAN"],
        "untrained generator (chance)": fid["untrained generator"],
        "real test faces vs their labels (ceiling)": ref,
    }
    for name, m in rows.items():
        lines.append(
            f"| {name} | {fmt(m['expr_acc'])} | {fmt(m['expr_f1'])} | {fmt(m['au_f1'])} | "
            f"{fmt(m['ccc_valence'])} | {fmt(m['ccc_arousal'])} |"
        )
    lines += [
        "",
        "Per expression (F1 of the generated faces): "
        + ", ".join(f"{k} {v:.2f}" for k, v in fid["GAN"]["expr_f1_per_class"].items())
        + ".",
        "",
        "### Realism",
        "",
        "Fréchet distance between feature distributions in the reference recognizer's "
        "embedding space "
        "(Inception-v3 weights cannot be downloaded on these machines, so this is not FID and "
        "its scale is not comparable with published FIDs): "
        f"{args.n_generated} faces each, against real test faces. Lower is better.",
        "",
        "| faces | Fréchet distance |",
        "|---|---|",
    ]
    for name, value in r["frechet"].items():
        lines.append(f"| {name} | {value:.2f} |")
    aug = r["augmentation"]
    names = list(aug)
    rare = ", ".join(f"{k} +{v}" for k, v in r["rare"].items()) or "none"
    lines += [
        "",
        "### Augmentation with generated faces",
        "",
        f"The plain `AffectModel` ({r['gan_config']['recognizer']} preset at "
        f"{r['gan_config']['image_size']} px) trained on the {r['split']['labelled']} labelled "
        "faces only, with and without GAN faces for the rare expressions (fewer than half the "
        f"labelled faces of the most frequent one; generated: {rare}, labelled with their "
        f"conditions), {args.epochs} epochs × {args.steps_per_epoch} steps each (the same budget).",
        "",
        "| training set | P_MTL | CCC V | CCC A | EXPR F1 | AU F1 | "
        + " | ".join(f"F1 {e}" for e in EXPRESSIONS)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(EXPRESSIONS),
    ]
    for name in names:
        m = aug[name]["metrics"]
        lines.append(
            f"| {name} | {fmt(m['p_mtl'])} | {fmt(m['ccc_valence'])} | {fmt(m['ccc_arousal'])} | "
            f"{fmt(m['expr_f1'])} | {fmt(m['au_f1'])} | "
            + " | ".join(f"{m['expr_f1_per_class'][e]:.2f}" for e in EXPRESSIONS)
            + " |"
        )
    d = r["discriminator"]
    plain = aug[names[0]]["metrics"]
    lines += [
        "",
        "### The discriminator as a recognizer",
        "",
        "The GAN discriminator's task heads (`recognizer.keras` of the GAN folder: an "
        "`AffectModel` sharing the discriminator's weights, batch-norm statistics re-estimated "
        f"on real faces) on the test corpus, against the plain model trained on the same "
        f"{args.label_percent} % of the labels, and the reference with all labels.",
        "",
        "| model | labels | P_MTL | CCC V | CCC A | EXPR F1 | EXPR acc | AU F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, labels_used, m in (
        ("GAN discriminator (semi-supervised)", f"{args.label_percent} % + unlabelled faces", d),
        ("plain AffectModel", f"{args.label_percent} %", plain),
        ("reference AffectModel", "100 %", ref),
    ):
        lines.append(
            f"| {name} | {labels_used} | {fmt(m['p_mtl'])} | {fmt(m['ccc_valence'])} | "
            f"{fmt(m['ccc_arousal'])} | {fmt(m['expr_f1'])} | {fmt(m['expr_acc'])} | "
            f"{fmt(m['au_f1'])} |"
        )
    lines += ["", "One run (seed 0), no repeats; see the findings below the tables.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
