"""Training callbacks and curves shared by the fit (``affect_tf.training.fit``) and the GAN.

``PMTLCallback`` logs the validation P_MTL (the early-stopping and checkpoint monitor),
``ResumeState`` records where a run is so it can resume, ``plot_history`` draws the curves.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np

from affect_tf.core.files import replaced_atomically, write_text_atomically
from affect_tf.model.loading import MODEL_FILE, ModelLoadError, load_model

log = logging.getLogger(__name__)
STATE_FILE = "state.json"
LAST_FILE = "last.keras"


def p_mtl_from_logs(logs: dict, prefix: str = "val_") -> float:
    """P_MTL from Keras log keys: the sum over the tasks that have metrics (measured ones)."""
    get = lambda k: float(logs.get(prefix + k, 0.0))  # noqa: E731
    va = (get("va_ccc_valence") + get("va_ccc_arousal")) / 2
    return va + get("expression_f1") + get("au_f1")


class PMTLCallback(keras.callbacks.Callback):
    """Adds ``p_mtl`` and ``val_p_mtl`` to the epoch logs (put it before checkpoints/early stop)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["p_mtl"] = p_mtl_from_logs(logs, "")
            if any(k.startswith("val_") for k in logs):
                logs["val_p_mtl"] = p_mtl_from_logs(logs, "val_")


class ResumeState(keras.callbacks.Callback):
    """After each epoch: the best model so far (``model.keras``, replaced only when the
    validation P_MTL improves), the last model, the epoch reached and the best P_MTL, so a
    killed run can resume. Every file is written under a temporary name and renamed: a kill
    leaves the previous file or the new one, never half a file (Keras' ModelCheckpoint writes
    in place, and a kill inside it left a truncated best model that the resumed run failed on).
    """

    def __init__(self, out_dir: Path, best: float = -np.inf):
        super().__init__()
        self.out_dir = out_dir
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        score = float(logs.get("val_p_mtl", -np.inf))
        if score > self.best:
            self.best = score
            with replaced_atomically(self.out_dir / MODEL_FILE) as partial:
                self.model.save(partial)
        with replaced_atomically(self.out_dir / LAST_FILE) as partial:
            self.model.save(partial)
        state = {
            "epoch": epoch + 1,
            "best_val_p_mtl": self.best,
            "logs": {k: float(v) for k, v in logs.items()},
        }
        write_text_atomically(self.out_dir / STATE_FILE, json.dumps(state, indent=2))


def plot_history(history: dict, path: Path) -> Path:
    """Loss and metric curves, train vs validation, one panel per quantity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    cols = 4
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        ax.plot(history[key], label="train")
        if "val_" + key in history:
            ax.plot(history["val_" + key], label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    with replaced_atomically(path) as partial:
        fig.savefig(partial, dpi=90)
    plt.close(fig)
    return path


def resume_point(out: Path, epochs: int, resume: bool) -> tuple[keras.Model | None, int, float]:
    """``(model, epoch, best)`` to continue an unfinished run in ``out`` from (``ResumeState``
    wrote it); ``(None, 0, best or -inf)`` to train anew, with a logged reason."""
    state_path = out / STATE_FILE
    if not (resume and state_path.is_file() and (out / LAST_FILE).is_file()):
        return None, 0, -np.inf
    try:
        state = json.loads(state_path.read_text())
        int(state["epoch"])
    except (ValueError, KeyError, TypeError) as e:
        log.warning("cannot resume from %s (%s): training anew", state_path, e)
        return None, 0, -np.inf
    if state["epoch"] >= epochs:
        log.info("the run in %s already finished %d epochs: training anew", out, state["epoch"])
        return None, 0, -np.inf
    best = float(state.get("best_val_p_mtl", -np.inf))
    try:
        model = load_model(out / LAST_FILE)
    except ModelLoadError as e:
        # E.g. killed while saving before checkpoints were renamed into place: start over, but
        # keep the best score so model.keras is only replaced by a better model.
        log.warning("cannot resume from %s (%s): training anew", out / LAST_FILE, e)
        return None, 0, best
    log.info("resuming from epoch %d (%s)", state["epoch"], out / LAST_FILE)
    return model, int(state["epoch"]), best
