"""The face detectors by name: ``--detector``, ``PipelineConfig.detector``, the benchmarks."""

from __future__ import annotations

from affect_tf.face.detect import POLICIES, FaceDetector, Policy

# ``none``: the whole image is the face (ready-cropped faces; ``affect_tf.face.whole``).
DETECTORS: tuple[str, ...] = ("blazeface", "mtcnn", "none")
DEFAULT_DETECTOR = "blazeface"
SMALLEST_MIN_FACE = 4  # pixels: below this ``min_face`` asks for faces no detector can see


def make_detector(
    name: str = DEFAULT_DETECTOR, policy: Policy = "largest", min_face: int | None = None, **kwargs
) -> FaceDetector:
    """A face detector by name (``DETECTORS``); ``kwargs`` go to its class.

    Args:
        name: ``blazeface``, ``mtcnn`` or ``none`` (the whole image is the face).
        policy: Which face ``detect_one`` keeps.
        min_face: The smallest face side (pixels) to look for (``--min-face``); None: the
            detector's default (BlazeFace 40, MTCNN 20).

    Raises:
        ValueError: An unknown name, listing the known ones, or a bad policy or ``min_face``.
    """
    check_detector(name, min_face)
    if policy not in POLICIES:
        raise ValueError(f"Expected policy in {POLICIES}. Received: policy={policy!r}")
    if name == "none":
        from affect_tf.face.whole import WholeImageDetector

        return WholeImageDetector(policy=policy)
    if name == "blazeface":
        from affect_tf.face.blazeface import BlazeFaceDetector

        if min_face is not None:
            kwargs["min_face"] = min_face
        return BlazeFaceDetector(policy=policy, **kwargs)
    from affect_tf.face.mtcnn import MTCNNDetector  # the other name check_detector lets pass

    if min_face is not None:
        kwargs["min_face_size"] = min_face
    return MTCNNDetector(policy=policy, **kwargs)


def check_detector(name: str, min_face: int | None = None) -> None:
    """Checks a detector name and ``min_face`` without building anything (callers that build
    the detector later, in worker processes, fail early with the same message).

    Raises:
        ValueError: An unknown name, listing the known ones, or ``min_face`` below
            ``SMALLEST_MIN_FACE``.
    """
    if name not in DETECTORS:
        raise ValueError(f"Expected a face detector in {DETECTORS}. Received: detector={name!r}")
    if min_face is not None and min_face < SMALLEST_MIN_FACE:
        raise ValueError(
            f"Expected min_face >= {SMALLEST_MIN_FACE} pixels. Received: min_face={min_face}"
        )
