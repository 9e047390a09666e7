"""SynthAffect: a procedural face corpus that is a real learning problem, not a lookup.

Faces are drawn from geometry that the 12 AUs drive (brows raise/lower and knit, lids tighten,
cheeks raise, lip corners pull/depress, lips tighten/press/part, jaw drops). Expressions are
EMFACS-style AU combinations at a random intensity, with idiosyncratic AUs added and dropped;
valence/arousal come from the expression's place on the circumplex, its intensity and noise.
Nuisances vary independently of the labels: identity (face shape, proportions, skin tone, hair),
head roll and yaw, scale and position in a larger frame, lighting and colour cast, blur, sensor
noise, background clutter and partial occlusion. Short "videos" interpolate smoothly between
expression keyframes (per-frame label noise on top), so temporal smoothing has work to do.
Some tasks are left unlabelled per video and per frame, as in real corpora.

Everything is deterministic given the seed; each video has its own random stream, so rendering
in parallel gives the same files. ``write_corpus`` writes a manifest corpus (``manifest.csv`` +
images) that ``affect-tf convert --format manifest`` reads.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from affect_tf.labels import AUS, EXPRESSIONS, NUM_AUS

SOURCE = "synthaffect"
AU_THRESHOLD = 0.5  # an AU "occurs" (label 1) when its activation reaches this

_A = {name: i for i, name in enumerate(AUS)}


def _proto(**weights: float) -> np.ndarray:
    v = np.zeros(NUM_AUS, np.float32)
    for name, w in weights.items():
        v[_A[name]] = w
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

    @property
    def num_videos(self) -> int:
        return math.ceil(self.n / self.frames_per_video)


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


@dataclasses.dataclass
class Pose:
    """Where and how the head is in a frame."""

    cx: float  # centre in output pixels
    cy: float
    radius: float  # face half-width in output pixels
    roll: float  # radians
    yaw: float  # radians


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
    rng: np.random.Generator, expression: int | None = None
) -> tuple[int, np.ndarray, np.ndarray, float]:
    """Draws an expression, its AU activations, its (valence, arousal) and the asymmetry."""
    if expression is None:
        expression = int(rng.choice(len(EXPRESSIONS), p=EXPRESSION_PRIOR))
    name = EXPRESSIONS[expression]
    intensity = float(rng.uniform(0.6, 1.0))
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


# --- drawing ---------------------------------------------------------------------------------


class _Canvas:
    """A supersampled RGB canvas with a face-local -> pixel mapping (roll, yaw, scale, shift)."""

    def __init__(self, image: np.ndarray, pose: Pose, ss: int) -> None:
        self.image = image
        self.ss = ss
        self.pose = pose
        self._cos, self._sin = math.cos(pose.roll), math.sin(pose.roll)
        self._ycos, self._ysin = math.cos(pose.yaw), math.sin(pose.yaw)

    def project(self, points: np.ndarray, depth: float | np.ndarray = 0.0) -> np.ndarray:
        """Face-local points (x right, y down, 1 = face half-width) -> output-pixel coordinates."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        # Yaw: compress x, shift by depth (features in front of the face plane move more).
        x = p[:, 0] * self._ycos + np.asarray(depth) * self._ysin
        y = p[:, 1]
        r = self.pose.radius
        px = self.pose.cx + r * (x * self._cos - y * self._sin)
        py = self.pose.cy + r * (x * self._sin + y * self._cos)
        return np.stack([px, py], axis=1)

    def _pix(self, points: np.ndarray, depth: float | np.ndarray = 0.0) -> np.ndarray:
        # cv2 draws with 4 fractional bits (shift=4); pixel centres are at integer coordinates.
        q = (self.project(points, depth) + 0.5) * self.ss - 0.5
        return np.round(q * 16).astype(np.int32)

    def poly(self, points, colour, depth=0.0, alpha: float = 1.0) -> None:
        self._blend(
            lambda im: cv2.fillPoly(im, [self._pix(points, depth)], _c(colour), cv2.LINE_AA, 4),
            alpha,
        )

    def line(self, points, colour, width: float, depth=0.0, alpha: float = 1.0) -> None:
        thickness = max(1, int(round(width * self.pose.radius * self.ss)))
        self._blend(
            lambda im: cv2.polylines(
                im, [self._pix(points, depth)], False, _c(colour), thickness, cv2.LINE_AA, 4
            ),
            alpha,
        )

    def _blend(self, draw, alpha: float) -> None:
        if alpha >= 0.999:
            draw(self.image)
            return
        if alpha <= 0.01:
            return
        layer = self.image.copy()
        draw(layer)
        cv2.addWeighted(layer, alpha, self.image, 1.0 - alpha, 0.0, dst=self.image)


def _c(colour) -> tuple[int, int, int]:
    return tuple(int(np.clip(v, 0, 255)) for v in colour)


def _ellipse(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    n: int = 48,
    t0: float = 0.0,
    t1: float = 2 * math.pi,
) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _draw_background(image: np.ndarray, rng: np.random.Generator) -> None:
    h, w = image.shape[:2]
    base = rng.uniform(40, 220, 3)
    image[:] = base.astype(np.uint8)
    # Soft gradient plus clutter: shapes and lines of random colours, some face-coloured.
    for _ in range(int(rng.integers(4, 14))):
        colour = _c(rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        x, y = (int(v) for v in rng.uniform(0, [w, h]))
        s = int(rng.uniform(0.05, 0.35) * w)
        if kind == 0:
            cv2.rectangle(
                image, (x, y), (x + s, y + int(s * rng.uniform(0.3, 2))), colour, -1, cv2.LINE_AA
            )
        elif kind == 1:
            cv2.circle(image, (x, y), max(1, s // 2), colour, -1, cv2.LINE_AA)
        else:
            x2, y2 = (int(v) for v in rng.uniform(0, [w, h]))
            cv2.line(
                image, (x, y), (x2, y2), colour, max(1, int(rng.uniform(1, 0.03 * w))), cv2.LINE_AA
            )


def _draw_face(
    canvas: _Canvas, ident: Identity, act: np.ndarray, asym: float, blink: float
) -> np.ndarray:
    """Draws the face for AU activations ``act``; returns the 5 landmarks in output pixels."""
    a = {name: float(act[i]) for i, name in enumerate(AUS)}
    skin = ident.skin
    fw, fh = ident.face_w, ident.face_h
    jaw = 0.10 * a["AU26"]  # the chin goes down with the jaw

    # Hair behind the head, ears, head.
    if ident.hair_style == 2:
        canvas.poly(_ellipse(0, -0.05, fw * 1.18, fh * 1.05), ident.hair, depth=-0.2)
    for side in (-1, 1):
        canvas.poly(_ellipse(side * fw * 0.98, 0.0, 0.12, 0.22), skin * 0.92, depth=-0.3)
    outline = _ellipse(0, 0, fw, fh)
    outline[:, 1] += np.where(outline[:, 1] > 0, jaw * outline[:, 1] / fh, 0.0)
    canvas.poly(outline, skin)
    if ident.hair_style >= 1:
        cap = _ellipse(0, -0.02, fw * 1.03, fh * 1.02, t0=math.pi * 1.03, t1=math.pi * 1.97)
        cap = np.vstack([cap, [[fw * 0.75, -0.55], [0.0, -0.72], [-fw * 0.75, -0.55]]])
        canvas.poly(cap, ident.hair)

    # Cheeks (AU6 raises and rounds them).
    for side in (-1, 1):
        canvas.poly(
            _ellipse(side * 0.45, 0.22 - 0.06 * a["AU6"], 0.17, 0.11),
            [200, 90, 90],
            depth=0.4,
            alpha=0.15 + 0.35 * a["AU6"],
        )

    # Forehead wrinkles (AU1/AU2) and the furrow between the brows (AU4).
    raise_ = max(a["AU1"], a["AU2"])
    for k in range(3):
        y = -0.62 + 0.08 * k
        canvas.line(
            _ellipse(0, y + 0.3, 0.38, 0.3, n=16, t0=math.pi * 1.25, t1=math.pi * 1.75),
            skin * 0.6,
            0.02,
            depth=0.3,
            alpha=0.85 * raise_,
        )
    es, ey = ident.eye_spacing, -0.12
    for side in (-1, 1):
        canvas.line(
            np.array([[side * 0.05, ey - 0.22], [side * 0.035, ey - 0.08]]),
            skin * 0.55,
            0.022,
            depth=0.6,
            alpha=0.9 * a["AU4"],
        )

    # Eyes: almond opening from the lids; AU7 tightens, AU6 pushes the lower lid up, AU1+2 widen.
    landmarks = []
    upper_open = (1 + 0.45 * raise_) * (1 - 0.5 * a["AU7"]) * (1 - 0.2 * a["AU4"]) * (1 - blink)
    lower_open = (1 - 0.55 * a["AU7"]) * (1 - 0.65 * a["AU6"]) * (1 - blink)
    for side in (-1, 1):
        cx = side * es
        ew = 0.15 * ident.eye_size
        hu = 0.085 * ident.eye_size * upper_open
        hl = 0.06 * ident.eye_size * max(lower_open, 0.05)
        t = np.linspace(0, math.pi, 24)
        upper = np.stack([cx - ew * np.cos(t), ey - hu * np.sin(t)], axis=1)
        lower = np.stack([cx + ew * np.cos(t), ey + hl * np.sin(t)], axis=1)
        almond = np.vstack([upper, lower])
        canvas.poly(almond, [245, 245, 240], depth=0.55)
        if hu + hl > 0.02:
            ix, iy = cx + ident.gaze[0] * ew * 0.4, ey + ident.gaze[1] * hu * 0.5
            r = 0.062 * ident.eye_size
            iris = _ellipse(ix, iy, r, r, n=24)
            iris[:, 1] = np.clip(iris[:, 1], ey - hu * 0.95, ey + hl * 0.95)
            canvas.poly(iris, ident.iris, depth=0.55)
            pupil = _ellipse(ix, iy, r * 0.45, min(r * 0.45, (hu + hl) * 0.45), n=16)
            canvas.poly(pupil, [10, 10, 10], depth=0.55)
        canvas.line(upper, skin * 0.35, 0.022, depth=0.55)
        canvas.line(lower, skin * 0.6, 0.012, depth=0.55)
        landmarks.append(canvas.project([[cx, ey]], 0.55)[0])
        # Brows: AU1 lifts the inner end, AU2 the outer end, AU4 lowers and knits the inner end.
        inner_x = side * (es - 0.13 + 0.07 * a["AU4"])
        inner_y = ey - 0.17 - 0.16 * a["AU1"] + 0.12 * a["AU4"]
        mid_y = ey - 0.22 - 0.08 * a["AU1"] - 0.12 * a["AU2"] + 0.06 * a["AU4"]
        outer_y = ey - 0.16 - 0.17 * a["AU2"] + 0.02 * a["AU4"]
        brow = np.array([[inner_x, inner_y], [side * es, mid_y], [side * (es + 0.18), outer_y]])
        brow = _smooth_curve(brow)
        canvas.line(brow, ident.hair * 0.8, ident.brow_thickness, depth=0.6)

    # Nose; AU10 lifts the wings; nasolabial folds deepen with AU6/AU10/AU12.
    tip_y = 0.28 * ident.nose_length
    canvas.line(
        np.array([[0.02, ey + 0.05], [0.05, tip_y - 0.02]]),
        skin * 0.75,
        0.018,
        depth=0.8,
        alpha=0.6,
    )
    for side in (-1, 1):
        canvas.poly(
            _ellipse(side * 0.055, tip_y + 0.03 - 0.02 * a["AU10"], 0.035, 0.018, n=12),
            skin * 0.35,
            depth=0.9,
        )
    canvas.poly(_ellipse(0, tip_y, 0.07, 0.045, n=16), skin * 0.9, depth=1.0, alpha=0.8)
    landmarks.append(canvas.project([[0.0, tip_y]], 1.0)[0])

    # Mouth.
    my = 0.64 + 0.02 * a["AU26"]
    mw = ident.mouth_width * (1 + 0.25 * a["AU12"] - 0.22 * a["AU23"] - 0.1 * a["AU24"])
    corner_y = {}
    for side in (-1, 1):
        lift = a["AU12"] + (max(asym * side, 0.0) * 0.9 if asym else 0.0)
        corner_y[side] = my - 0.17 * lift + 0.14 * a["AU15"]
    fold = max(a["AU6"], a["AU10"], a["AU12"])
    for side in (-1, 1):
        path = np.array(
            [
                [side * 0.12, tip_y + 0.02],
                [side * (mw + 0.01), (tip_y + corner_y[side]) / 2],
                [side * (mw + 0.06), corner_y[side] + 0.05],
            ]
        )
        canvas.line(_smooth_curve(path), skin * 0.6, 0.018, depth=0.7, alpha=0.75 * fold)
    thin = max(0.15, 1 - 0.55 * a["AU23"] - 0.7 * a["AU24"])
    gap = 0.1 * a["AU25"] + 0.26 * a["AU26"] * max(a["AU25"], 0.3)
    lip_up, lip_low = 0.055 * thin, 0.07 * thin
    u = np.linspace(-1, 1, 33)
    base = my - 0.01 + np.where(u < 0, corner_y[-1] - my, corner_y[1] - my) * u**2
    bell = np.sqrt(np.clip(1 - u**2, 0, 1))
    x = u * mw
    inner_up = base - 0.012 * bell - 0.04 * a["AU10"] * bell
    inner_low = base + gap * bell
    # The upper lip's outline rises a little at the centre (a simple Cupid's bow).
    outer_up = inner_up - lip_up * bell - 0.01 * (np.abs(u) < 0.25) * bell
    outer_low = inner_low + lip_low * bell
    lip_colour = np.array([skin[0] * 0.85, skin[1] * 0.5, skin[2] * 0.5]) + [25, 0, 0]
    canvas.poly(
        np.vstack([np.stack([x, outer_up], 1), np.stack([x, outer_low], 1)[::-1]]),
        lip_colour,
        depth=0.7,
    )
    if gap + 0.04 * a["AU10"] > 0.012:
        opening = np.vstack([np.stack([x, inner_up], 1), np.stack([x, inner_low], 1)[::-1]])
        canvas.poly(opening, [60, 15, 20], depth=0.7)
        teeth_low = np.minimum(inner_up + 0.035, inner_low)
        canvas.poly(
            np.vstack(
                [np.stack([x * 0.85, inner_up], 1), np.stack([x * 0.85, teeth_low], 1)[::-1]]
            ),
            [235, 232, 220],
            depth=0.7,
        )
    canvas.line(np.stack([x, inner_up], 1), lip_colour * 0.55, 0.012, depth=0.7)
    landmarks.append(canvas.project([[-mw, corner_y[-1]]], 0.7)[0])
    landmarks.append(canvas.project([[mw, corner_y[1]]], 0.7)[0])
    return np.array(landmarks, np.float32)


def _smooth_curve(points: np.ndarray, n: int = 16) -> np.ndarray:
    """A quadratic Bezier through 3 control points."""
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = points
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _draw_occluder(canvas: _Canvas, rng: np.random.Generator, skin: np.ndarray) -> None:
    kind = rng.integers(3)
    cx, cy = rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.9)
    if kind == 0:  # a hand: skin-coloured blob
        canvas.poly(
            _ellipse(cx, cy, rng.uniform(0.3, 0.5), rng.uniform(0.2, 0.35)),
            skin * rng.uniform(0.85, 1.05),
            depth=1.2,
        )
    elif kind == 1:  # an object
        w, h = rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.4)
        box = np.array([[cx - w, cy - h], [cx + w, cy - h], [cx + w, cy + h], [cx - w, cy + h]])
        canvas.poly(box, rng.uniform(0, 255, 3), depth=1.2)
    else:  # a microphone / pen crossing the face
        canvas.line(
            np.array([[cx - 0.8, cy + 0.4], [cx + 0.8, cy - 0.3]]),
            rng.uniform(0, 255, 3),
            rng.uniform(0.06, 0.15),
            depth=1.2,
        )


def render_frame(
    rng: np.random.Generator,
    size: int,
    ident: Identity,
    pose: Pose,
    act: np.ndarray,
    asym: float,
    background: np.ndarray,
    lighting: tuple[float, float, float, np.ndarray],
    blur: float,
    noise: float,
    occlude: bool,
    blink: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """Renders one frame; returns (RGB uint8 image, 5 landmarks, face box) in output pixels."""
    ss = 2  # supersampling: draw at 2x, shrink with area averaging (antialiasing)
    image = background.copy()
    canvas = _Canvas(image, pose, ss)
    landmarks = _draw_face(canvas, ident, act, asym, blink)
    if occlude:
        _draw_occluder(canvas, rng, ident.skin)
    out = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    # Lighting: gain, a linear gradient in some direction, a colour cast.
    gain, slope, angle, cast = lighting
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    shade = gain + slope * (xx * math.cos(angle) + yy * math.sin(angle))
    out = out * shade[..., None] * cast
    if blur > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if noise > 0:
        out = out + rng.normal(0, noise, out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    # The face box: the head ellipse (without hair) in output pixels.
    jaw = 0.10 * float(act[_A["AU26"]])
    outline = canvas.project(_ellipse(0, jaw / 2, ident.face_w, ident.face_h + jaw / 2, n=64))
    x0, y0 = outline.min(axis=0)
    x1, y1 = outline.max(axis=0)
    bbox = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    return out, landmarks, bbox


def render_video(
    config: SynthConfig, video: int, expressions: list[int] | None = None
) -> list[Frame]:
    """Renders one video of ``config.frames_per_video`` frames (deterministic in seed, video).

    Args:
        config: Corpus settings.
        video: Video index; with the seed it fixes the random stream.
        expressions: Force the keyframe expressions (for grids and tests).
    """
    rng = np.random.default_rng([config.seed, video])
    size, count = config.size, config.frames_per_video
    ident = random_identity(rng)
    ss = 2
    background = np.zeros((size * ss, size * ss, 3), np.uint8)
    _draw_background(background, rng)
    # Pose: face half-width 16-30 % of the frame; the rest of the frame is context.
    radius = rng.uniform(0.16, 0.30) * size
    margin = radius * 1.5
    cx0, cy0 = rng.uniform(margin, size - margin), rng.uniform(margin * 1.1, size - margin * 1.1)
    roll0, yaw0 = rng.normal(0, 0.15), rng.uniform(-0.45, 0.45)
    light0 = (
        rng.uniform(0.75, 1.2),
        rng.uniform(0.0, 0.6),
        rng.uniform(0, 2 * math.pi),
        rng.uniform(0.88, 1.12, 3),
    )
    # Expression keyframes every 3-8 frames, smoothly interpolated in between.
    step = int(rng.integers(3, 9))
    n_keys = count // step + 2
    keys = [
        sample_keyframe(rng, None if expressions is None else expressions[k % len(expressions)])
        for k in range(n_keys)
    ]
    drift = rng.normal(0, 1, (count, 4)).cumsum(axis=0) * np.array(
        [0.01 * size, 0.01 * size, 0.01, 0.02]
    )
    frames = []
    for t in range(count):
        k, frac = divmod(t, step)
        w = float(frac) / step
        w = w * w * (3 - 2 * w)  # smoothstep
        e0, act0, va0, as0 = keys[k]
        e1, act1, va1, as1 = keys[k + 1]
        act = (1 - w) * act0 + w * act1
        act = np.clip(act + rng.normal(0, 0.03, NUM_AUS), 0, 1).astype(np.float32)
        asym = (1 - w) * as0 + w * as1
        va = np.clip((1 - w) * va0 + w * va1 + rng.normal(0, 0.05, 2), -1, 1)
        expression = e0 if w < 0.5 else e1
        pose = Pose(
            cx=float(cx0 + drift[t, 0]),
            cy=float(cy0 + drift[t, 1]),
            radius=float(radius * (1 + 0.5 * drift[t, 2])),
            roll=float(roll0 + drift[t, 2] * 3),
            yaw=float(np.clip(yaw0 + drift[t, 3], -0.6, 0.6)),
        )
        gain, slope, angle, cast = light0
        lighting = (gain * rng.uniform(0.95, 1.05), slope, angle + rng.normal(0, 0.05), cast)
        blink = float(rng.uniform(0.6, 1.0)) if rng.random() < 0.04 else 0.0
        image, landmarks, bbox = render_frame(
            rng,
            size,
            ident,
            pose,
            act,
            float(asym),
            background,
            lighting,
            blur=float(rng.uniform(0, 1.0)),
            noise=float(rng.uniform(0, 5)),
            occlude=bool(rng.random() < config.occlusion_rate),
            blink=blink,
        )
        frames.append(
            Frame(
                image=image,
                bbox=bbox,
                landmarks=landmarks,
                expression=expression,
                au_activation=act,
                au=(act >= AU_THRESHOLD).astype(np.int64),
                valence=float(va[0]),
                arousal=float(va[1]),
                asymmetry=float(asym),
            )
        )
    return frames


def _label_masks(
    config: SynthConfig, video: int, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which tasks are labelled per frame: per-video availability, per-frame dropout, partial AU
    sets for some videos; every frame keeps at least one label."""
    rng = np.random.default_rng([config.seed, video, 1])
    va = np.full(count, rng.random() < config.va_rate)
    expr = np.full(count, rng.random() < config.expr_rate)
    au_video = np.ones(NUM_AUS, bool) if rng.random() < config.au_rate else np.zeros(NUM_AUS, bool)
    if au_video.any() and rng.random() < 0.15:
        au_video = rng.random(NUM_AUS) < 0.6  # a corpus that codes only some AUs
    au = np.tile(au_video, (count, 1))
    va &= rng.random(count) >= config.frame_dropout
    expr &= rng.random(count) >= config.frame_dropout
    au &= (rng.random(count) >= config.frame_dropout)[:, None]
    none = ~(va | expr | au.any(axis=1))
    expr |= none
    return va, expr, au


def _video_frames(config: SynthConfig, video: int):
    """Renders a video and yields ``(t, frame, labels)`` for its frames inside ``config.n``;
    ``labels`` are the ``FaceLabels`` keyword arguments with this video's label masks."""
    frames = render_video(config, video)
    va_mask, expr_mask, au_mask = _label_masks(config, video, len(frames))
    video_id = f"synth{config.seed}_{video:05d}"
    for t, frame in enumerate(frames):
        if video * config.frames_per_video + t >= config.n:
            return
        labels = {
            "valence": frame.valence if va_mask[t] else 0.0,
            "arousal": frame.arousal if va_mask[t] else 0.0,
            "va_mask": int(va_mask[t]),
            "expression": int(frame.expression) if expr_mask[t] else 0,
            "expr_mask": int(expr_mask[t]),
            "au": [int(a) if m else 0 for a, m in zip(frame.au, au_mask[t], strict=True)],
            "au_mask": [int(m) for m in au_mask[t]],
            "video_id": video_id,
            "frame": t,
            "source": SOURCE,
        }
        yield t, frame, labels


def _encode(frame: Frame, image_format: str) -> bytes:
    bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if image_format == "jpg" else []
    ok, data = cv2.imencode(f".{image_format}", bgr, params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB frame
        raise RuntimeError(f"OpenCV could not encode a {image_format} frame")
    return data.tobytes()


def video_records(config: SynthConfig, video: int) -> list:
    """One video rendered in memory as ``FaceRecord`` objects (encoded frames, box, landmarks,
    labels) -- what the TFX FaceExampleGen writes without touching the disk."""
    from affect_tf.data.examples import FaceRecord

    return [
        FaceRecord(
            image=_encode(frame, config.image_format),
            bbox=frame.bbox,
            landmarks=frame.landmarks,
            **labels,
        )
        for _, frame, labels in _video_frames(config, video)
    ]


def _render_rows(args: tuple[SynthConfig, int, str]) -> list[dict]:
    config, video, out_dir = args
    rows = []
    for t, frame, labels in _video_frames(config, video):
        video_id = labels["video_id"]
        folder = Path(out_dir) / "images" / video_id
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{t:05d}.{config.image_format}"
        (folder / name).write_bytes(_encode(frame, config.image_format))
        row = {
            "path": f"images/{video_id}/{name}",
            "video_id": video_id,
            "frame": t,
            "source": SOURCE,
            "expression": EXPRESSIONS[frame.expression] if labels["expr_mask"] else "",
            "valence": f"{frame.valence:.4f}" if labels["va_mask"] else "",
            "arousal": f"{frame.arousal:.4f}" if labels["va_mask"] else "",
            "box_x": f"{frame.bbox[0]:.2f}",
            "box_y": f"{frame.bbox[1]:.2f}",
            "box_w": f"{frame.bbox[2]:.2f}",
            "box_h": f"{frame.bbox[3]:.2f}",
            "landmarks": ";".join(f"{v:.2f}" for v in frame.landmarks.reshape(-1)),
        }
        for i, au in enumerate(AUS):
            row[au] = str(int(frame.au[i])) if labels["au_mask"][i] else ""
        rows.append(row)
    return rows


def write_corpus(
    config: SynthConfig, out_dir: str | Path, workers: int | None = None, progress: bool = True
) -> Path:
    """Renders the corpus into ``out_dir`` (images + ``manifest.csv``) and returns the manifest.

    Args:
        config: What to render.
        out_dir: Output folder (created).
        workers: Processes to render with (default: all cores); the files do not depend on it.
        progress: Show a progress bar (videos) on stderr.
    """
    from tqdm import tqdm

    from affect_tf.data.manifest import manifest_columns

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(config, v, str(out)) for v in range(config.num_videos)]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=config.n, disable=not progress, unit="img", desc="synth", leave=False)
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=manifest_columns())
        writer.writeheader()
        if workers > 1 and len(jobs) > 1:
            # "spawn": forking a process that has TensorFlow loaded can deadlock.
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                for rows in pool.map(
                    _render_rows, jobs, chunksize=max(1, len(jobs) // (8 * workers))
                ):
                    writer.writerows(rows)
                    bar.update(len(rows))
        else:
            for job in jobs:
                rows = _render_rows(job)
                writer.writerows(rows)
                bar.update(len(rows))
    bar.close()
    return manifest


def iter_frames(config: SynthConfig) -> Iterator[tuple[str, int, Frame]]:
    """Renders in memory: yields (video_id, frame index, Frame) for ``config.n`` frames."""
    emitted = 0
    for video in range(config.num_videos):
        for t, frame in enumerate(render_video(config, video)):
            if emitted >= config.n:
                return
            emitted += 1
            yield f"synth{config.seed}_{video:05d}", t, frame


def expression_grid(
    path: str | Path, per_expression: int = 6, size: int = 128, seed: int = 0
) -> Path:
    """Writes a grid image: one row per expression, ``per_expression`` different people each."""
    rows = []
    for e, name in enumerate(EXPRESSIONS):
        tiles = []
        for k in range(per_expression):
            config = SynthConfig(n=1, size=size, frames_per_video=1, seed=seed, occlusion_rate=0.0)
            frame = render_video(config, 1000 * e + k, expressions=[e])[0]
            tiles.append(frame.image)
        row = np.concatenate(tiles, axis=1)
        label = np.full((size, int(size * 1.1), 3), 255, np.uint8)
        cv2.putText(
            label,
            name,
            (4, size // 2 + 5),
            cv2.FONT_HERSHEY_SIMPLEX,
            size / 240,
            (0, 0, 0),
            max(1, size // 100),
            cv2.LINE_AA,
        )
        rows.append(np.concatenate([label, row], axis=1))
    grid = np.concatenate(rows, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The extension picks the format (.png lossless, .jpg much smaller for the noisy frames).
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if path.suffix.lower() in (".jpg", ".jpeg") else []
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), params)
    return path


def write_video(config: SynthConfig, path: str | Path, fps: float = 15.0) -> Path:
    """Renders the corpus's videos one after another into one mp4 (for ``affect-tf video``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (config.size, config.size)
    )
    try:
        for video in range(config.num_videos):
            for frame in render_video(config, video):
                writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
