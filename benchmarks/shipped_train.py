"""Trains the shipped model's candidates from packed arrays, on any Keras 3 backend.

Why this exists beside ``affect-tf train``: the shipped model was trained on a GPU machine whose
image has JAX but no TensorFlow (and no network), from the arrays ``benchmarks.shipped_data``
packs. What is shared with the product is what decides the model: ``AffectModel`` built by
``training.fit.model_from_priors`` from a preset (the backbone, the heads, the in-model augmentation,
the masked multi-task loss, soft labels) and the inputs made by the product's own alignment.
What differs is the feed: in-memory arrays mixed by weight, as ``--data X:W`` mixes corpora,
instead of tf.data; a per-epoch cosine learning rate whose length fits a time budget.

Each arm is one corpus mix and one preset, over seeds; each run trains on FER+ Train, is
measured on FER+ Valid after every epoch, and keeps the weights of its best Valid epoch.
FER+ Test is never read here (``benchmarks.shipped_card`` reports it, once).

    python -m benchmarks.shipped_train --data .devdata --out OUT --minutes 6 --parallel 6
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

# arm -> (preset overrides, SynthAffect's mixing weight: 0 for FER+ alone)
ARMS: dict[str, tuple[dict, float]] = {
    "ferplus_vgg": ({}, 0.0),
    "mixed_vgg": ({}, 0.3),
    "ferplus_cnn": ({"backbone": "small_cnn"}, 0.0),
    "mixed_cnn": ({"backbone": "small_cnn"}, 0.3),
}
RUNS = (
    ("ferplus_vgg", 0), ("mixed_vgg", 0), ("ferplus_vgg", 1), ("mixed_vgg", 1),
    ("ferplus_cnn", 0), ("mixed_cnn", 0),
)  # fmt: skip


def _without_tensorflow() -> None:
    """Lets the package's modules import where TensorFlow is not installed.

    Some modules on the model's import path name TensorFlow at import time (the tf.Example
    contract's feature specs, tf.data helpers) without using it to build or train the model.
    A placeholder module stands in for it; any real use of TensorFlow through it would fail
    at once (the objects it hands out do nothing useful), which the local dry run checks.
    """
    try:
        import tensorflow  # noqa: F401

        return
    except ImportError:
        pass

    class Absent:
        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Absent:
            return Absent(f"{self._name}.{attr}")

        def __call__(self, *args, **kwargs) -> Absent:
            return Absent(f"{self._name}()")

        def __getitem__(self, key) -> Absent:
            return self

        def __or__(self, other) -> Absent:
            return self

        __ror__ = __or__

    class Module(types.ModuleType):
        def __getattr__(self, attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return Absent(f"tensorflow.{attr}")

    module = Module("tensorflow")
    module.__path__ = []
    sys.modules["tensorflow"] = module


def load_arrays(folder: Path, mixed: bool, limit: int | None = None) -> dict:
    """FER+ Train/Valid aligned by the packed map (uint8 grey), SynthAffect if ``mixed``;
    ``limit``: the first faces of each only (a dry run)."""
    import cv2

    def decode(blob: np.ndarray, offsets: np.ndarray, flags: int) -> np.ndarray:
        return np.stack(
            [cv2.imdecode(blob[a:b], flags) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        )

    align = np.load(folder / "align.npz")
    fer = np.load(folder / "ferplus.npz")
    index, weight = align["index"], align["weight"]
    side = int(align["size"])

    def aligned(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float32)
        out = np.empty((len(x), side * side), np.float32)
        for start in range(0, len(x), 2048):  # the gather is (n, S*S, 4): keep it small
            part = flat[start : start + 2048]
            out[start : start + 2048] = np.einsum("npk,pk->np", part[:, index], weight)
        return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(len(x), side, side)

    grey = cv2.IMREAD_GRAYSCALE
    data = {"size": side}
    for split in ("train", "valid"):
        x = decode(fer[f"{split}_blob"], fer[f"{split}_offsets"], grey)[:limit]
        data[f"{split}_x"] = aligned(x)
        data[f"{split}_expression"] = fer[f"{split}_expression"][:limit]
    if mixed:
        synth = np.load(folder / "synth.npz")
        rgb = decode(synth["blob"], synth["offsets"], cv2.IMREAD_COLOR)[..., ::-1]
        data["synth_x"] = np.ascontiguousarray(rgb[:limit])
        data.update({f"synth_{k}": synth[k][:limit] for k in ("va", "expression", "au")})
    return data


def fer_targets(expression: np.ndarray) -> dict[str, np.ndarray]:
    """FER+ labels only expressions: VA and AUs masked (their mask columns are 0)."""
    n = len(expression)
    return {
        "va": np.zeros((n, 3), np.float32),
        "expression": expression.astype(np.float32),
        "au": np.zeros((n, 24), np.float32),
    }


def priors_of(targets: dict[str, np.ndarray]):
    """``LabelPriors`` from packed targets (what ``training.fit.model_from_priors`` reads)."""
    from affect_tf.data import examples as ex
    from affect_tf.data.dataset import LabelPriors

    priors = LabelPriors()
    priors.update(
        {
            ex.EXPRESSION: targets["expression"][:, 0].astype(np.int64),
            ex.EXPR_MASK: targets["expression"][:, 1].astype(np.int64),
            ex.VALENCE: targets["va"][:, 0],
            ex.AROUSAL: targets["va"][:, 1],
            ex.VA_MASK: targets["va"][:, 2].astype(np.int64),
            ex.AU: targets["au"][:, :12].astype(np.int64),
            ex.AU_MASK: targets["au"][:, 12:].astype(np.int64),
        }
    )
    return priors


def scores(labels: np.ndarray, logits: np.ndarray) -> dict:
    """Accuracy and 8-class macro F1 (the ABAW P_EXPR) of majority labels."""
    predicted = logits.argmax(-1)
    f1 = []
    for c in range(8):
        tp = np.sum((predicted == c) & (labels == c))
        denom = np.sum(predicted == c) + np.sum(labels == c)
        f1.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": float(np.mean(predicted == labels)), "macro_f1": float(np.mean(f1))}


def epoch_arrays(data: dict, synth_weight: float, rng: np.random.Generator):
    """One epoch: every FER+ Train face once, plus SynthAffect draws making ``synth_weight`` of it.

    Sampling by weight, as ``--data X:W`` mixes corpora: FER+ keeps its own class statistics.
    """
    n_fer = len(data["train_x"])
    fer_idx = rng.permutation(n_fer)
    x = np.repeat(data["train_x"][fer_idx][..., None], 3, axis=-1)
    y = fer_targets(data["train_expression"][fer_idx])
    if synth_weight > 0:
        n_synth = int(round(n_fer * synth_weight / (1.0 - synth_weight)))
        s_idx = rng.integers(0, len(data["synth_x"]), n_synth)
        x = np.concatenate([x, data["synth_x"][s_idx]])
        y = {t: np.concatenate([y[t], data[f"synth_{t}"][s_idx]]) for t in y}
        order = rng.permutation(len(x))
        x, y = x[order], {t: v[order] for t, v in y.items()}
    return x, y


def train_one(arm: str, seed: int, args: argparse.Namespace) -> dict:
    """One run of one arm; writes ``<arm>_s<seed>.weights.h5`` (best Valid epoch) and its log."""
    _without_tensorflow()
    import keras

    from affect_tf.model.config import get_preset
    from affect_tf.training.fit import model_from_priors

    start = time.time()
    overrides, synth_weight = ARMS[arm]
    keras.utils.set_random_seed(seed)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    data = load_arrays(Path(args.data), synth_weight > 0, args.limit or None)
    config = get_preset("shipped", **overrides)
    if config.image_size != data["size"]:
        raise SystemExit(f"Expected arrays at {config.image_size} px. Received: {data['size']}")
    priors_targets = fer_targets(data["train_expression"])
    if synth_weight > 0:
        synth = {t: data[f"synth_{t}"] for t in ("va", "expression", "au")}
        priors_targets = {t: np.concatenate([priors_targets[t], synth[t]]) for t in synth}
    model = model_from_priors(config, priors_of(priors_targets))
    optimizer = keras.optimizers.AdamW(
        config.learning_rate, weight_decay=config.weight_decay, clipnorm=5.0
    )
    # Keras marks its random geometry layers (rotation, zoom, translation) as not
    # XLA-compilable, which turns jit off for the whole model: under JAX their ops compile
    # (the dry run checks it), and without jit every op dispatches from Python: the first
    # GPU run took 200-420 s an epoch, about what 2 CPU cores do.
    for layer in model._flatten_layers():
        layer.supports_jit = True
    model.compile(optimizer=optimizer, jit_compile=True)
    valid_x = np.repeat(data["valid_x"][..., None], 3, axis=-1)
    valid_labels = data["valid_expression"][:, 0].astype(int)
    rng = np.random.default_rng(seed)
    out, logs = Path(args.out), Path(args.logs or args.out)
    name = f"{arm}_s{seed}"
    log = {"arm": arm, "seed": seed, "config": config.to_dict(), "synth_weight": synth_weight,
           "epochs": [], "backend": keras.backend.backend(),
           "policy": keras.mixed_precision.global_policy().name}  # fmt: skip
    budget = args.minutes * 60.0
    planned, best = args.max_epochs, -1.0
    for epoch in range(args.max_epochs):
        if epoch >= planned:
            break
        lr = config.learning_rate * (
            0.025 + 0.975 * 0.5 * (1 + math.cos(math.pi * epoch / planned))
        )
        model.optimizer.learning_rate.assign(lr)
        x, y = epoch_arrays(data, synth_weight, rng)
        t0 = time.time()
        history = model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0, shuffle=False)
        seconds = time.time() - t0
        if epoch == 1:  # the first epoch pays for compilation: plan on the second's pace
            left = budget - (time.time() - start)
            planned = min(args.max_epochs, max(3, 2 + int(left / max(seconds + 0.5, 1e-3))))
            log["planned_epochs"] = planned
        logits = np.asarray(model.predict(valid_x, batch_size=512, verbose=0)["expression"])
        valid = scores(valid_labels, logits.astype(np.float32))
        entry = {"epoch": epoch + 1, "lr": lr, "seconds": round(seconds, 2),
                 "loss": float(history.history["loss"][-1]), **valid}  # fmt: skip
        log["epochs"].append(entry)
        if valid["accuracy"] > best:
            best = valid["accuracy"]
            log["best"] = entry
            # The model's arrays only (Keras' weights file also holds the optimizer's two
            # moments: 3x the size), written aside then renamed: a run cut off by a time
            # limit leaves whole files only. ``load_run_weights`` reads them back.
            partial = out / f".{name}.partial.npz"
            with open(partial, "wb") as f:
                np.savez(f, *model.get_weights())
            os.replace(partial, out / f"{name}.npz")
        (logs / f"{name}.json").write_text(json.dumps(log, indent=1))
        print(f"{name} epoch {epoch + 1}/{planned} {seconds:.1f}s loss {entry['loss']:.3f} "
              f"valid acc {valid['accuracy']:.4f} f1 {valid['macro_f1']:.4f}", flush=True)  # fmt: skip
    log["wall_seconds"] = round(time.time() - start, 1)
    (logs / f"{name}.json").write_text(json.dumps(log, indent=1))
    return log


def load_run_weights(model, path: str | Path) -> None:
    """Sets a model's weights from a run's ``.npz`` (``model.get_weights()`` order).

    Raises:
        ValueError: The arrays do not fit the model (another arm's architecture).
    """
    with np.load(path) as saved:
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    shapes = [tuple(w.shape) for w in model.get_weights()]
    if [a.shape for a in arrays] != shapes:
        raise ValueError(f"Expected the arrays of {model.name}. Received: {path}")
    model.set_weights(arrays)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder of benchmarks.shipped_data's .npz")
    p.add_argument("--out", required=True, help="folder for the weights of each run")
    p.add_argument("--logs", default="", help="folder for each run's log (default: --out)")
    p.add_argument("--summary", default="", help="also merge the logs into this JSON file")
    p.add_argument("--minutes", type=float, default=6.0, help="training time per run")
    p.add_argument("--max-epochs", type=int, default=80)
    p.add_argument("--parallel", type=int, default=len(RUNS), help="runs at once")
    p.add_argument("--runs", default="", help="arm:seed,... (default: all of RUNS)")
    p.add_argument("--limit", type=int, default=0, help="faces per corpus (a dry run)")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_bfloat16 policy")
    p.add_argument("--one", default="", help=argparse.SUPPRESS)  # arm:seed, in a child process
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.logs or args.out).mkdir(parents=True, exist_ok=True)
    if args.one:
        arm, seed = args.one.split(":")
        train_one(arm, int(seed), args)
        return 0
    runs = [tuple(r.split(":")) for r in args.runs.split(",")] if args.runs else RUNS
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1")
    env.setdefault("KERAS_BACKEND", "jax")
    pending, running, codes = list(runs), [], {}
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--one"]
    while pending or running:
        while pending and len(running) < args.parallel:
            arm, seed = pending.pop(0)
            command = [sys.executable, "-m", "benchmarks.shipped_train", *forwarded,
                       "--one", f"{arm}:{seed}"]  # fmt: skip
            running.append((f"{arm}:{seed}", subprocess.Popen(command, env=env)))
        time.sleep(10)
        if args.summary:
            merged = sorted(Path(args.logs or args.out).glob("*_s*.json"))
            runs_log = [json.loads(f.read_text()) for f in merged]
            Path(args.summary).write_text(json.dumps({"runs": runs_log, "codes": codes}))
        for item in list(running):
            if item[1].poll() is not None:
                codes[item[0]] = item[1].returncode
                running.remove(item)
    if args.summary:
        merged = sorted(Path(args.logs or args.out).glob("*_s*.json"))
        runs_log = [json.loads(f.read_text()) for f in merged]
        Path(args.summary).write_text(json.dumps({"runs": runs_log, "codes": codes}))
    print(json.dumps(codes))
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
