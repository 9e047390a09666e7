"""Process environment for TensorFlow, set once before TensorFlow is imported.

Only defaults are set (``setdefault``): a user's own settings win.
"""

import os

# TensorFlow's C++ INFO/WARNING lines (oneDNN, CUDA probing) drown the CLI's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
