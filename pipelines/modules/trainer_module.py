"""Trainer module file: the ``run_fn`` lives in ``affect_tf.pipeline.trainer``."""

from affect_tf.pipeline.trainer import run_fn

__all__ = ["run_fn"]
