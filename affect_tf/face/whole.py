"""``--detector none``: the whole image is the face, for ready-cropped faces (FER+, AffectNet's
released crops, many users' folders), which are too small for any detector (BlazeFace and MTCNN
find almost nothing at 48 px). The box is the image, the 5 landmarks the alignment template's
points placed in it (``affect_tf.face.align.landmarks_from_box``), so aligning gives the image
itself, resized as the preset expects. A blank or uniform image has no face to take.
"""

from __future__ import annotations

import numpy as np

from affect_tf.face.detect import Detection, Policy, check_rgb, is_uniform, select_face


class WholeImageDetector:
    """A ``FaceDetector`` that returns the whole image as the one face (``--detector none``)."""

    name = "none"
    min_score = 0.0
    no_face = "a blank or uniform image; --detector none takes the whole image as the face"

    def __init__(self, policy: Policy = "largest") -> None:
        self.policy = policy

    def detect(self, image: np.ndarray) -> list[Detection]:
        """``[the whole image]``, or ``[]`` for a blank or uniform image."""
        from affect_tf.face.warp import TEMPLATE_112, TEMPLATE_SIZE

        image = check_rgb(image)
        if is_uniform(image):
            return []
        height, width = image.shape[:2]
        unit = (TEMPLATE_112 + 0.5) / TEMPLATE_SIZE  # as landmarks_from_box places them
        landmarks = (unit * np.array([width, height]) - 0.5).astype(np.float32)
        return [Detection((0.0, 0.0, float(width), float(height)), 1.0, landmarks, detector="none")]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """``detect`` for each image."""
        return [self.detect(image) for image in images]

    def detect_one(self, image: np.ndarray, policy: Policy | None = None) -> Detection | None:
        """The whole image, or None for a blank or uniform one."""
        return select_face(self.detect(image), policy or self.policy)

    def refine(self, image: np.ndarray, box: tuple[float, ...]) -> Detection | None:
        """Video frames: the whole frame again."""
        return self.detect_one(image)
