"""Faces: detection (BlazeFace + face mesh, MTCNN; ``make_detector``) and pure-TF landmark
alignment.

The names load lazily (``affect_tf.presets.lazy_attributes``): the CLI builds its
``--detector`` flag from the registry without loading TensorFlow, which ``align`` needs.
"""

from affect_tf.presets import lazy_attributes

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
__getattr__ = lazy_attributes("affect_tf.face", _LAZY)
