"""Faces: detection (BlazeFace + face mesh, MTCNN) and landmark alignment.

Modules: ``detect`` (``Detection``, the detector interface), ``registry`` (detectors by name),
``blazeface`` and ``ssd`` (BlazeFace + face mesh through LiteRT), ``mtcnn``, ``whole`` (the
whole image as the face), ``align`` (similarity alignment in TensorFlow ops) and ``warp`` (the
same steps in NumPy/OpenCV). The names load lazily: the CLI builds its ``--detector`` flag
from the registry without loading TensorFlow, which ``align`` needs. It imports nothing else of
the package (not even ``core.presets.lazy_attributes``), so it has its own three-line hook.
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
