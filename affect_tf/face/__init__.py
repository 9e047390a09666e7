"""Faces: detection (BlazeFace + face mesh, MTCNN; ``make_detector``) and pure-TF landmark
alignment.

The names load lazily: the CLI builds its ``--detector`` flag from the registry without
loading TensorFlow, which ``align`` needs. (``affect_tf.presets.lazy_attributes`` does this for
the packages above; ``face`` sits below ``presets`` and imports only ``labels`` and ``_env``, so
it has its own three-line hook.)
"""

import importlib

_LAZY = {
    **dict.fromkeys(
        (
            "TEMPLATE_112",
            "align_face",
            "align_faces",
            "estimate_similarity",
            "landmarks_from_box",
            "template_points",
        ),
        "affect_tf.face.align",
    ),
    **dict.fromkeys(("Detection", "FaceDetector", "select_face"), "affect_tf.face.detect"),
    **dict.fromkeys(("DEFAULT_DETECTOR", "DETECTORS", "make_detector"), "affect_tf.face.registry"),
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'affect_tf.face' has no attribute {name!r}")
