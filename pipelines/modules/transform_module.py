"""Transform module file: the ``preprocessing_fn`` lives in ``affect_tf.pipeline.transform``."""

from affect_tf.pipeline.transform import preprocessing_fn

__all__ = ["preprocessing_fn"]
