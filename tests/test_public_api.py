"""The public API at the package's top (``affect_tf.AffectRecognizer``, ``affect_tf.load_model``,
``affect_tf.AffectClient``, the presets and config classes): every name resolves to the one
object of its layer, ``import affect_tf`` loads none of them (nor TensorFlow), and the README
opens by reading a photo with it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import affect_tf

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_is_the_object_of_its_layer():
    from affect_tf.core import labels
    from affect_tf.gan.config import GAN_PRESETS, GANConfig
    from affect_tf.inference.recognizer import AffectRecognizer
    from affect_tf.model.config import PRESETS, AffectConfig, get_preset
    from affect_tf.serving.client import AffectClient

    assert affect_tf.AffectRecognizer is AffectRecognizer
    assert affect_tf.AffectClient is AffectClient
    assert affect_tf.AffectConfig is AffectConfig and affect_tf.PRESETS is PRESETS
    assert affect_tf.get_preset("tiny") == get_preset("tiny")
    assert affect_tf.GANConfig is GANConfig and affect_tf.GAN_PRESETS is GAN_PRESETS
    assert affect_tf.EXPRESSIONS == labels.EXPRESSIONS and len(affect_tf.AUS) == 12
    for name in affect_tf.__all__:
        assert getattr(affect_tf, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        affect_tf.Nope  # noqa: B018


def test_importing_the_package_stays_cheap():
    """A fresh interpreter: ``import affect_tf`` loads no layer above ``core`` and no
    TensorFlow; the first use of ``AffectRecognizer`` loads the inference layer only."""
    script = (
        "import json, sys, affect_tf\n"
        "before = sorted(m for m in sys.modules if m.startswith('affect_tf'))\n"
        "affect_tf.AffectRecognizer\n"
        "print(json.dumps({'before': before, 'tf': 'tensorflow' in sys.modules,"
        " 'keras': 'keras' in sys.modules, 'inference': 'affect_tf.inference' in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(m == "affect_tf" or m.startswith("affect_tf.core") for m in out["before"]), out
    assert out["inference"] and not out["tf"] and not out["keras"], out


def test_the_readme_opens_by_reading_a_photo():
    """The first code block starts by line 25 and runs ``affect-tf predict`` on a photo; the
    Python version uses the top-level API."""
    lines = (ROOT / "README.md").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("```"))
    assert first < 25, f"Expected the first code block by line 25. Received: line {first + 1}"
    head = "\n".join(lines[:30])
    assert re.search(r"^affect-tf predict \S+\.jpg", head, re.M)
    assert "affect_tf.AffectRecognizer()" in head
