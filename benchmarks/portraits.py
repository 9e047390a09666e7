"""Tight portraits: photos where one face fills 40-70 % of the side, as news portraits and
ID-style photos frame them (the case BlazeFace's full-range model misses at its first look).

Built here from what ships with scikit-image and the package, deterministically:

- ``astronaut``: crops of skimage's astronaut photo (a real face, public domain: NASA) around
  her face at 250-400 px, the face 40-70 % of the side, shifted, some mirrored;
- ``synthaffect``: SynthAffect renders on photo backgrounds, cropped so the face fills 40-70 %
  of the side, at 250-400 px;
- ``lfw``: the 100 faces of skimage's ``lfw_subset`` (25 x 25 grey crops of real people, the
  face nearly the whole image).
"""

from __future__ import annotations

import numpy as np

# A box around the astronaut's face in skimage.data.astronaut() (x, y, w, h); BlazeFace's box
# there is (174, 70, 105, 105), so its face fills 94 % of what the crops count as the face.
ASTRONAUT_FACE = (176.0, 77.0, 112.0, 112.0)
SIDES = (250, 400)
FILL = (0.40, 0.70)


def _crop_around(image: np.ndarray, box: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """A square crop where ``box``'s face fills a random share ``FILL`` of the side, shifted
    at random within the crop, edges replicated where the crop leaves the image, resized to a
    random side in ``SIDES``."""
    import cv2

    x, y, w, h = box
    fill = rng.uniform(*FILL)
    side = max(w, h) / fill
    slack = (side - max(w, h)) / 2
    cx = x + w / 2 + rng.uniform(-0.6, 0.6) * slack
    cy = y + h / 2 + rng.uniform(-0.6, 0.6) * slack
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    pad = round(side)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[y0 + pad : y0 + pad + round(side), x0 + pad : x0 + pad + round(side)]
    out = int(rng.integers(SIDES[0], SIDES[1] + 1))
    interpolation = cv2.INTER_AREA if out < crop.shape[0] else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (out, out), interpolation=interpolation)
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def astronaut_portraits(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` tight crops of the astronaut's face (RGB uint8)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photo = data.astronaut()
    return [_crop_around(photo, ASTRONAUT_FACE, rng) for _ in range(n)]


def synthaffect_portraits(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` SynthAffect renders on photo backgrounds, cropped tight around the renderer's own
    face box (RGB uint8)."""
    from affect_tf.data.synth import SynthConfig, iter_frames

    rng = np.random.default_rng(seed)
    config = SynthConfig(n=n, size=256, frames_per_video=1, seed=seed, backgrounds="photo")
    images = []
    for _, _, frame in iter_frames(config):
        images.append(_crop_around(frame.image, frame.bbox, rng))
    return images


def lfw_faces() -> list[np.ndarray]:
    """skimage's ``lfw_subset`` faces: 100 grey 25 x 25 crops as RGB uint8."""
    from skimage import data

    faces = (data.lfw_subset()[:100] * 255).round().astype(np.uint8)
    return [np.stack([f] * 3, -1) for f in faces]


def tight_portraits(n: int = 100, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """The three sets, ``n`` astronaut and ``n`` SynthAffect portraits and lfw's 100 faces."""
    return {
        "astronaut": astronaut_portraits(n, seed),
        "synthaffect": synthaffect_portraits(n, seed),
        "lfw": lfw_faces(),
    }
