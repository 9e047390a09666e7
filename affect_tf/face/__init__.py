"""Faces: detection (BlazeFace + face mesh, MTCNN; ``make_detector``) and pure-TF landmark
alignment."""

from affect_tf.face.align import (
    TEMPLATE_112,
    align_face,
    align_faces,
    estimate_similarity,
    landmarks_from_box,
    template_points,
)
from affect_tf.face.detect import Detection, FaceDetector, select_face
from affect_tf.face.registry import DEFAULT_DETECTOR, DETECTORS, make_detector

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "make_detector",
    "TEMPLATE_112",
    "Detection",
    "FaceDetector",
    "align_face",
    "align_faces",
    "estimate_similarity",
    "landmarks_from_box",
    "select_face",
    "template_points",
]
