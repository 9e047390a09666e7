"""Trainer pieces that do not need a pipeline run (the e2e test runs run_fn for real)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from affect_tf.model.affect_model import AffectModel
from affect_tf.model.config import get_preset
from affect_tf.pipeline.trainer import choose_strategy, model_config


def test_strategy_on_this_cpu_machine_and_bad_name():
    assert not tf.config.list_logical_devices("GPU")
    assert isinstance(choose_strategy("auto"), type(tf.distribute.get_strategy()))
    assert choose_strategy("mirrored").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="strategy"):
        choose_strategy("tpu-pod")


def test_model_config_applies_overrides_and_ignores_unset():
    config = model_config({"preset": "tiny", "overrides": {"batch_size": None, "heads": "gcn"}})
    assert config.heads == "gcn" and config.batch_size == get_preset("tiny").batch_size


def test_mixed_float16_training_step_is_finite():
    """What the Trainer does on GPUs, exercised on CPU: losses stay finite in float16."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = AffectModel(get_preset("tiny", heads="gcn"))
        model.compile_for_training(2, 1)
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (8, 48, 48, 3)).astype("float32")
        y = {
            "va": np.c_[rng.uniform(-1, 1, (8, 2)), np.ones(8)].astype("float32"),
            "expression": np.c_[rng.integers(0, 8, 8), np.ones(8)].astype("float32"),
            "au": np.c_[rng.integers(0, 2, (8, 12)), np.ones((8, 12))].astype("float32"),
        }
        history = model.fit(x, y, epochs=1, batch_size=4, verbose=0).history
        assert np.isfinite(history["loss"][0])
    finally:
        keras.mixed_precision.set_global_policy("float32")
