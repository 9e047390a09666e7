"""Explanations: which pixels of the aligned face drive one output (tf-keras-vis).

- **SmoothGrad saliency** (``tf_keras_vis.saliency.Saliency``): |d score / d pixel| averaged
  over noisy copies of the face.
- **Grad-CAM++** (``tf_keras_vis.gradcam_plus_plus.GradcamPlusPlus``) over the backbone's last
  convolutional feature map, upsampled to the face.

The score is a head's pre-activation output for one target: an expression's logit, an AU's
logit, or valence/arousal. The backbone is a nested model, so the explained model is rebuilt
flat: face -> backbone feature map (its own layer, the Grad-CAM++ layer) -> pooling -> the
rest of the AffectModel graph, with the same weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from affect_tf.core.labels import AUS, EXPRESSIONS, VA_DIMENSIONS
from affect_tf.data import targets as tg

HEADS = ("expression", "au", "va")
FEATURE_LAYER = "feature_map"


def resolve_target(
    head: str, target: str | None, outputs: dict[str, np.ndarray]
) -> tuple[int, str]:
    """``(index in the head's output, readable name)``; ``target`` None -> the top prediction
    (the most likely expression, the most likely AU, valence).

    Raises:
        ValueError: An unknown head or target name.
    """
    from affect_tf.core.labels import au_index, expression_index

    if head not in HEADS:
        raise ValueError(f"Expected head in {HEADS}. Received: head={head!r}")
    if head == "expression":
        if target is None:
            index = int(np.argmax(outputs[tg.EXPRESSION_PROBS][0]))
        else:
            index = expression_index(target)
        return index, EXPRESSIONS[index]
    if head == "au":
        if target is None:
            index = int(np.argmax(outputs[tg.AU_PROBS][0]))
        else:
            index = au_index(target)
        return index, AUS[index]
    name = (target or "valence").lower()
    if name not in VA_DIMENSIONS:
        raise ValueError(f"Expected target in {VA_DIMENSIONS} for head 'va'. Received: {target!r}")
    return VA_DIMENSIONS.index(name), name


def flat_head_model(model, head: str):
    """A flat Keras model face -> ``[feature map layer] -> head output`` with ``model``'s
    weights; its layer ``"features"`` is the backbone's last convolutional map."""
    import keras

    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    pool = backbone.layers[-1]  # global average pooling (every backbone ends with it)
    features = keras.Model(backbone.input, pool.input, name="features")
    # The rest of the AffectModel graph, from the backbone's output to the head: the backbone's
    # call in the outer graph is what ``embedding_dense`` reads (public API; the backbone's own
    # ``.output`` is its inner graph's tensor).
    embedding_in = model.get_layer("embedding_dense").input
    tail = keras.Model(embedding_in, model.output[head], name="tail")
    face = keras.Input(model.input.shape[1:], name="face")
    # A plain layer on the map: tf-keras-vis reads ``layer.output``, which for a nested model
    # would be its inner graph's tensor.
    feature_map = keras.layers.Identity(name=FEATURE_LAYER)(features(face))
    out = tail(pool(feature_map))
    return keras.Model(face, out, name=f"explain_{head}")


def explain(model, face: np.ndarray, head: str = "expression", target: str | None = None) -> dict:
    """Saliency and Grad-CAM++ maps of one aligned face for one head and target.

    Args:
        model: A Keras ``AffectModel``.
        face: ``(S, S, 3)`` aligned face in [0, 255].
        head: ``"expression"``, ``"au"`` or ``"va"``.
        target: An expression name, an AU name, ``"valence"``/``"arousal"``; None -> the top.

    Returns:
        ``{"saliency": (S, S), "gradcam": (S, S)}`` in [0, 1], ``"target"``, ``"score"``
        (the explained output: probability for expression/AU, value for VA), ``"outputs"``.
    """
    import tensorflow as tf

    from affect_tf.export.saved_model import serving_outputs

    face = np.asarray(face, np.float32)
    outputs = {
        k: np.asarray(v) for k, v in serving_outputs(model(face[None], training=False)).items()
    }
    index, name = resolve_target(head, target, outputs)
    flat = flat_head_model(model, head)

    def score(output):
        return output[:, index]

    seed = tf.constant(face[None])
    with warnings.catch_warnings():
        # tf-keras-vis calls the model with a list of one input; Keras notes the structure.
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        saliency, gradcam = _maps(flat, score, seed)
    if head == "expression":
        value = float(outputs[tg.EXPRESSION_PROBS][0, index])
    elif head == "au":
        value = float(outputs[tg.AU_PROBS][0, index])
    else:
        value = float(outputs[VA_DIMENSIONS[index]][0])
    return {
        "saliency": _unit(np.asarray(saliency)[0]),
        "gradcam": _unit(np.asarray(gradcam)[0]),
        "target": name,
        "head": head,
        "score": value,
        "outputs": outputs,
    }


def _maps(flat, score, seed):
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency

    saliency = Saliency(flat, clone=False)(score, seed, smooth_samples=16, smooth_noise=0.1)
    gradcam = GradcamPlusPlus(flat, clone=False)(
        score, seed, penultimate_layer=FEATURE_LAYER, seek_penultimate_conv_layer=False
    )
    return saliency, gradcam


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, np.float64))
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def plot_explanation(face: np.ndarray, result: dict, out: str | Path) -> Path:
    """Face | saliency | Grad-CAM++ overlay side by side, titled with the explained output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    face = np.clip(np.asarray(face), 0, 255).astype(np.uint8)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    axes[0].imshow(face)
    axes[0].set_title("aligned face")
    axes[1].imshow(result["saliency"], cmap="inferno")
    axes[1].set_title("SmoothGrad saliency")
    axes[2].imshow(face)
    axes[2].imshow(result["gradcam"], cmap="jet", alpha=0.45)
    axes[2].set_title("Grad-CAM++")
    for ax in axes:
        ax.axis("off")
    label = "p" if result["head"] in ("expression", "au") else "value"
    fig.suptitle(f"{result['head']} -> {result['target']} ({label} {result['score']:.2f})")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
