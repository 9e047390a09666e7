"""The SynthAffect label model: AU prototypes per expression, valence/arousal, identities, poses.

Expressions are EMFACS-style AU combinations at a random intensity, with idiosyncratic AUs added
and dropped; valence/arousal come from the expression's place on the circumplex, its intensity
and noise. ``SynthConfig`` says how much to render and how.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS

SOURCE = "synthaffect"
AU_THRESHOLD = 0.5  # an AU "occurs" (label 1) when its activation reaches this

# AU name -> its index in the label vectors.
AU_INDEX = {name: i for i, name in enumerate(AUS)}


def _proto(**weights: float) -> np.ndarray:
    v = np.zeros(NUM_AUS, np.float32)
    for name, w in weights.items():
        v[AU_INDEX[name]] = w
    return v


# EMFACS-style prototypes (AUs outside the ABAW 12, e.g. AU5/AU9/AU20, have no geometry here).
PROTOTYPES: dict[str, np.ndarray] = {
    "Neutral": _proto(),
    "Anger": _proto(AU4=1.0, AU7=0.85, AU23=0.8, AU24=0.6),
    "Disgust": _proto(AU10=1.0, AU4=0.6, AU15=0.6, AU25=0.5),
    "Fear": _proto(AU1=0.95, AU2=0.75, AU4=0.7, AU7=0.5, AU25=0.9, AU26=0.45),
    "Happiness": _proto(AU6=0.9, AU12=1.0, AU25=0.55),
    "Sadness": _proto(AU1=0.95, AU4=0.75, AU15=0.95),
    "Surprise": _proto(AU1=1.0, AU2=1.0, AU25=0.95, AU26=0.95),
    # "Other" is contempt-like: a one-sided lip corner raise (drawn, not an AU12 label) + press.
    "Other": _proto(AU24=0.55, AU12=0.3),
}
# Circumplex positions (valence, arousal) at full intensity.
VA_PROTOTYPES: dict[str, tuple[float, float]] = {
    "Neutral": (0.0, 0.0),
    "Anger": (-0.6, 0.7),
    "Disgust": (-0.65, 0.35),
    "Fear": (-0.6, 0.75),
    "Happiness": (0.75, 0.45),
    "Sadness": (-0.65, -0.4),
    "Surprise": (0.2, 0.8),
    "Other": (-0.3, 0.15),
}
# Rare classes are rare, as in every real corpus.
EXPRESSION_PRIOR = np.array([0.22, 0.10, 0.06, 0.06, 0.22, 0.12, 0.12, 0.10])

SKIN_TONES = np.array(
    [
        [236, 200, 170],
        [224, 178, 140],
        [198, 148, 110],
        [160, 110, 80],
        [120, 80, 58],
        [92, 62, 45],
    ],
    np.float32,
)
HAIR_COLOURS = np.array(
    [[30, 25, 20], [70, 45, 30], [120, 80, 45], [200, 160, 100], [150, 150, 150], [110, 40, 20]],
    np.float32,
)


BACKGROUNDS = ("clutter", "photo", "mixed")
# The keyframe intensity range the generator always drew from; ``intensity_min`` rescales it.
_INTENSITY_LOW = 0.6


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """How much to render and how.

    Attributes:
        n: Number of images.
        size: Side of the square frames in pixels.
        frames_per_video: Frames per video (1 gives independent stills).
        seed: The whole corpus is a function of this seed.
        va_rate, expr_rate, au_rate: Fraction of videos whose task is labelled.
        frame_dropout: Per-frame chance that a labelled task is left unlabelled anyway.
        occlusion_rate: Per-frame chance of an occluder over part of the face.
        image_format: ``jpg`` or ``png``.
        backgrounds: ``clutter`` (drawn shapes and lines), ``photo`` (crops of the non-face
            photographs scikit-image ships: coffee, a cat, a rocket, textures, ...) or ``mixed``
            (half and half, per video).
        yaw_range: Head yaw of a video is drawn in +- this many radians.
        jpeg_min_quality: 0 (off), or each frame is JPEG-compressed in memory at a quality
            drawn in [jpeg_min_quality, 95] before it is stored (camera and upload artefacts).
        noise_max: Sensor noise standard deviation is drawn in [0, noise_max] per frame.
        accessory_rate: Per-video chance of glasses (clear, tinted or sunglasses), and,
            independently, of a beard with a moustache. 0 (the default) draws none.
        pitch_range: Head pitch of a video is drawn in +- this many radians (0: none, the
            default; positive looks down).
        fringe_rate: Per-video chance of a fringe: hair over the forehead, down over part or
            all of the brows (AU1/AU2/AU4 stay labelled, as in real corpora).
        mask_rate: Per-video chance of a face mask over the nose, mouth and chin (the lower
            face's AUs stay labelled; the mask stretches with the jaw).
        low_res_rate: Per-frame chance that the frame is captured at low resolution: shrunk
            until the face is 10-32 pixels wide, then scaled back up (a distant or cropped
            face; the model's input is then 12-45 pixels of real detail).
        intensity_min: Expression keyframes are drawn at an intensity in
            [intensity_min, 1]; the default 0.6 gives clear expressions, lower values add
            subtle ones (AU activations and VA follow the intensity, so the labels stay exact).

    ``accessory_rate`` to ``low_res_rate`` draw from random streams of their own and
    ``intensity_min`` rescales the same draw, so at their defaults a corpus is exactly what it
    was before they existed, and at any value the identities and scenes are those of the same
    seed without them (``LATER_FIELDS``); only ``intensity_min`` changes labels.

    ``backgrounds`` to ``intensity_min`` are the generator's nuisance settings: the defaults are
    the corpus the tests and the demo were measured on; ``benchmarks/pretrained.py``
    (``TARGET``) renders another domain with them (docs/results.md).
    """

    n: int = 512
    size: int = 128
    frames_per_video: int = 8
    seed: int = 0
    va_rate: float = 0.85
    expr_rate: float = 0.9
    au_rate: float = 0.75
    frame_dropout: float = 0.05
    occlusion_rate: float = 0.12
    image_format: str = "jpg"
    backgrounds: str = "clutter"
    yaw_range: float = 0.45
    jpeg_min_quality: int = 0
    noise_max: float = 5.0
    accessory_rate: float = 0.0
    pitch_range: float = 0.0
    fringe_rate: float = 0.0
    mask_rate: float = 0.0
    low_res_rate: float = 0.0
    intensity_min: float = _INTENSITY_LOW

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"Expected n >= 1. Received: n={self.n}")
        if self.size < 32:
            raise ValueError(f"Expected size >= 32 pixels. Received: size={self.size}")
        if self.frames_per_video < 1:
            raise ValueError(
                "Expected frames_per_video >= 1. "
                f"Received: frames_per_video={self.frames_per_video}"
            )
        if self.image_format not in ("jpg", "png"):
            raise ValueError(
                "Expected image_format 'jpg' or 'png'. "
                f"Received: image_format={self.image_format!r}"
            )

        if self.backgrounds not in BACKGROUNDS:
            raise ValueError(
                f"Expected backgrounds in {BACKGROUNDS}. Received: backgrounds={self.backgrounds!r}"
            )
        if not 0.0 <= self.yaw_range <= 0.9:
            raise ValueError(
                f"Expected yaw_range in [0, 0.9] radians. Received: yaw_range={self.yaw_range}"
            )
        if self.jpeg_min_quality and not 5 <= self.jpeg_min_quality <= 95:
            raise ValueError(
                "Expected jpeg_min_quality 0 (off) or in [5, 95]. "
                f"Received: jpeg_min_quality={self.jpeg_min_quality}"
            )
        if not 0.0 <= self.noise_max <= 50.0:
            raise ValueError(f"Expected noise_max in [0, 50]. Received: noise_max={self.noise_max}")
        for rate in ("accessory_rate", "fringe_rate", "mask_rate", "low_res_rate"):
            if not 0.0 <= getattr(self, rate) <= 1.0:
                raise ValueError(
                    f"Expected {rate} in [0, 1]. Received: {rate}={getattr(self, rate)}"
                )
        if not 0.05 <= self.intensity_min <= 1.0:
            raise ValueError(
                f"Expected intensity_min in [0.05, 1]. Received: intensity_min={self.intensity_min}"
            )
        if not 0.0 <= self.pitch_range <= 0.6:
            raise ValueError(
                "Expected pitch_range in [0, 0.6] radians. "
                f"Received: pitch_range={self.pitch_range}"
            )

    @property
    def num_videos(self) -> int:
        return math.ceil(self.n / self.frames_per_video)


# Generator settings added after the first pretraining cards were written. Their defaults render
# exactly what the generator rendered before them, so a card or settings file that lacks one
# means its default (``affect_tf.training.pretrain.setting_differences``).
_LATER = (
    "accessory_rate",
    "pitch_range",
    "fringe_rate",
    "mask_rate",
    "low_res_rate",
    "intensity_min",
)
LATER_FIELDS: dict[str, float] = {
    f.name: f.default for f in dataclasses.fields(SynthConfig) if f.name in _LATER
}


@dataclasses.dataclass
class Identity:
    """Who is in the video: constant across its frames."""

    face_w: float
    face_h: float
    skin: np.ndarray
    hair: np.ndarray
    hair_style: int
    eye_spacing: float
    eye_size: float
    iris: np.ndarray
    brow_thickness: float
    mouth_width: float
    nose_length: float
    gaze: tuple[float, float]
    # Accessories (``SynthConfig.accessory_rate``): glasses as (frame RGB, lens tint alpha),
    # beard density in [0, 1] (0: none).
    glasses: tuple[np.ndarray, float] | None = None
    beard: float = 0.0
    # ``SynthConfig.fringe_rate``: the fringe's lower edge, face-unit y of 9 strands left to
    # right (None: no fringe). ``mask_rate``: the mask's RGB (None: no mask).
    fringe: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclasses.dataclass
class Pose:
    """Where and how the head is in a frame."""

    cx: float  # centre in output pixels
    cy: float
    radius: float  # face half-width in output pixels
    roll: float  # radians
    yaw: float  # radians
    pitch: float = 0.0  # radians, positive looks down


@dataclasses.dataclass
class Frame:
    """One rendered frame with its ground truth."""

    image: np.ndarray  # (size, size, 3) uint8 RGB
    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray  # (5, 2)
    expression: int
    au_activation: np.ndarray  # (12,) float in [0, 1]
    au: np.ndarray  # (12,) 0/1
    valence: float
    arousal: float
    asymmetry: float = 0.0


def random_identity(rng: np.random.Generator) -> Identity:
    tone = rng.integers(len(SKIN_TONES))
    return Identity(
        face_w=float(rng.uniform(0.88, 1.08)),
        face_h=float(rng.uniform(1.18, 1.42)),
        skin=np.clip(SKIN_TONES[tone] + rng.normal(0, 8, 3), 0, 255),
        hair=np.clip(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] + rng.normal(0, 10, 3), 0, 255),
        hair_style=int(rng.integers(3)),
        eye_spacing=float(rng.uniform(0.30, 0.36)),
        eye_size=float(rng.uniform(0.85, 1.15)),
        iris=np.array(
            rng.choice([[60, 40, 25], [40, 80, 120], [70, 100, 60], [30, 30, 30]]), np.float32
        ),
        brow_thickness=float(rng.uniform(0.035, 0.06)),
        mouth_width=float(rng.uniform(0.24, 0.31)),
        nose_length=float(rng.uniform(0.9, 1.1)),
        gaze=(float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.2, 0.2))),
    )


def sample_keyframe(
    rng: np.random.Generator,
    expression: int | None = None,
    intensity_min: float = _INTENSITY_LOW,
) -> tuple[int, np.ndarray, np.ndarray, float]:
    """Draws an expression, its AU activations, its (valence, arousal) and the asymmetry.

    The intensity is drawn in ``[intensity_min, 1]`` (``SynthConfig.intensity_min``).
    """
    if expression is None:
        expression = int(rng.choice(len(EXPRESSIONS), p=EXPRESSION_PRIOR))
    name = EXPRESSIONS[expression]
    intensity = float(rng.uniform(_INTENSITY_LOW, 1.0))
    if intensity_min != _INTENSITY_LOW:
        # The same draw mapped linearly onto [intensity_min, 1]: the random stream, and so
        # every other label and nuisance of the corpus, stays that of the default.
        frac = (intensity - _INTENSITY_LOW) / (1.0 - _INTENSITY_LOW)
        intensity = intensity_min + frac * (1.0 - intensity_min)
    if name == "Neutral":
        act = rng.uniform(0.0, 0.25, NUM_AUS) * (rng.random(NUM_AUS) < 0.3)
    else:
        act = PROTOTYPES[name] * intensity * rng.uniform(0.85, 1.15, NUM_AUS)
        # Idiosyncrasy: people drop some prototype AUs and add others.
        act = np.where((act > 0) & (rng.random(NUM_AUS) < 0.08), act * 0.3, act)
    extra = rng.random(NUM_AUS) < 0.06
    act = np.where(extra, np.maximum(act, rng.uniform(0.3, 0.85, NUM_AUS)), act)
    act = np.clip(act, 0.0, 1.0).astype(np.float32)
    v0, a0 = VA_PROTOTYPES[name]
    scale = 0.45 + 0.55 * intensity
    va = np.array(
        [v0 * scale, a0 * scale + (0.1 * (intensity - 0.8) if name != "Neutral" else 0.0)]
    )
    va = va + rng.normal(0.0, 0.08, 2)
    asym = (
        float(rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.0) * intensity)
        if name == "Other"
        else 0.0
    )
    return expression, act, np.clip(va, -1, 1).astype(np.float32), asym
