"""Process environment for TensorFlow, set once before TensorFlow is imported.

- ``TF_CPP_MIN_LOG_LEVEL``: a default only (``setdefault``), a user's own setting wins.
- ``TF_USE_LEGACY_KERAS``: forced to ``0``. affect-tf uses Keras 3 (``import keras``) only, but
  TensorFlow Transform sets this variable to ``1`` when it is unset, and the ``tfx`` CLI imports
  Transform and hands its environment to the pipeline process; ``tf.keras`` would then silently
  be ``tf_keras`` under ``tfx run create`` but Keras 3 under plain ``python`` (and tf-keras-vis
  needs Keras 3). Transform itself imports ``tf_keras`` explicitly either way, so it keeps
  working; it logs one warning about the setting.
"""

import os

# TensorFlow's C++ INFO/WARNING lines (oneDNN, CUDA probing) drown the CLI's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_USE_LEGACY_KERAS"] = "0"
