"""The face detectors by name: ``--detector``, ``PipelineConfig.detector``, the benchmarks."""

from __future__ import annotations

from affect_tf.face.detect import POLICIES, FaceDetector, Policy

DETECTORS: tuple[str, ...] = ("blazeface", "mtcnn")
DEFAULT_DETECTOR = "blazeface"


def make_detector(
    name: str = DEFAULT_DETECTOR, policy: Policy = "largest", **kwargs
) -> FaceDetector:
    """A face detector by name (``DETECTORS``); ``kwargs`` go to its class.

    Raises:
        ValueError: An unknown name, listing the known ones.
    """
    if policy not in POLICIES:
        raise ValueError(f"Expected policy in {POLICIES}. Received: policy={policy!r}")
    if name == "blazeface":
        from affect_tf.face.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(policy=policy, **kwargs)
    if name == "mtcnn":
        from affect_tf.face.mtcnn import MTCNNDetector

        return MTCNNDetector(policy=policy, **kwargs)
    raise ValueError(f"Expected a face detector in {DETECTORS}. Received: detector={name!r}")
