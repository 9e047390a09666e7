"""Explanations: the flat model computes the same head outputs, the maps are finite images of
the face's size, and targets are validated."""

from __future__ import annotations

import numpy as np
import pytest

from affect_tf.core.labels import AUS
from affect_tf.export.saved_model import serving_outputs
from affect_tf.inference.explain import explain, flat_head_model, plot_explanation, resolve_target


@pytest.fixture(scope="module")
def face():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (48, 48, 3)).astype(np.float32)


def test_flat_model_equals_the_model_heads(tiny_model, face):
    outputs = tiny_model(face[None], training=False)
    for head in ("expression", "au", "va"):
        flat = flat_head_model(tiny_model, head)
        assert "feature_map" in [layer.name for layer in flat.layers]
        np.testing.assert_allclose(
            np.asarray(flat(face[None])), np.asarray(outputs[head]), atol=1e-5
        )


def test_explain_maps_and_picture(tiny_model, face, tmp_path):
    from PIL import Image

    result = explain(tiny_model, face, "au", "AU12")
    assert result["target"] == "AU12"
    # The score is the model's own AU12 probability for this face.
    direct = serving_outputs(tiny_model(face[None], training=False))["au"][0, AUS.index("AU12")]
    assert result["score"] == pytest.approx(float(direct), abs=1e-5)
    for key in ("saliency", "gradcam"):
        m = result[key]
        assert m.shape == (48, 48) and np.isfinite(m).all()
        assert m.min() == 0.0 and m.max() == pytest.approx(1.0) and m.std() > 0
    top = explain(tiny_model, face, "expression")
    assert top["target"] == resolve_target("expression", None, top["outputs"])[1]
    png = plot_explanation(face, result, tmp_path / "x.png")
    assert Image.open(png).size[0] >= 600


def test_bad_targets():
    outputs = {"expression": np.ones((1, 8)) / 8, "au": np.zeros((1, 12))}
    assert resolve_target("va", "Arousal", outputs) == (1, "arousal")
    assert resolve_target("expression", "happy", outputs) == (4, "Happiness")
    with pytest.raises(ValueError, match="AU99"):
        resolve_target("au", "AU99", outputs)
    with pytest.raises(ValueError, match="head"):
        resolve_target("pose", None, outputs)
    with pytest.raises(ValueError, match="valence"):
        resolve_target("va", "dominance", outputs)
