"""Drawing SynthAffect frames: faces whose geometry the 12 AUs drive, in cluttered scenes.

Brows raise/lower and knit, lids tighten, cheeks raise, lip corners pull/depress, lips
tighten/press/part, jaw drops. Nuisances vary independently of the labels: identity, head roll,
yaw and pitch, glasses, beards, fringes and face masks, scale and position, lighting and colour
cast, blur, sensor noise, low resolution, background clutter or photographs, JPEG artefacts and
partial occlusion. Videos interpolate smoothly between expression keyframes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from affect_tf.core.labels import NUM_AUS
from affect_tf.data.synth.canvas import Canvas, draw_background, draw_photo_background, ellipse
from affect_tf.data.synth.face import draw_face, draw_occluder
from affect_tf.data.synth.labels import (
    AU_INDEX,
    AU_THRESHOLD,
    Frame,
    Identity,
    Pose,
    SynthConfig,
    random_identity,
    sample_keyframe,
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
    canvas = Canvas(image, pose, ss)
    landmarks = draw_face(canvas, ident, act, asym, blink)
    if occlude:
        draw_occluder(canvas, rng, ident.skin)
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
    jaw = 0.10 * float(act[AU_INDEX["AU26"]])
    outline = canvas.project(ellipse(0, jaw / 2, ident.face_w, ident.face_h + jaw / 2, n=64))
    x0, y0 = outline.min(axis=0)
    x1, y1 = outline.max(axis=0)
    bbox = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    return out, landmarks, bbox


def jpeg_degrade(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (RGB uint8) compressed to JPEG at ``quality`` and decoded again."""
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB frame
        raise RuntimeError("OpenCV could not encode a frame")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _video_scene(rng: np.random.Generator, size: int, yaw_range: float = 0.45) -> tuple:
    """Where the head starts and the light of a video: ``(radius, cx, cy, roll, yaw, light)``.

    The face half-width is 16-30 % of the frame; the rest of the frame is context.
    """
    radius = rng.uniform(0.16, 0.30) * size
    margin = radius * 1.5
    cx0, cy0 = rng.uniform(margin, size - margin), rng.uniform(margin * 1.1, size - margin * 1.1)
    roll0, yaw0 = rng.normal(0, 0.15), rng.uniform(-yaw_range, yaw_range)
    light0 = (
        rng.uniform(0.75, 1.2),
        rng.uniform(0.0, 0.6),
        rng.uniform(0, 2 * math.pi),
        rng.uniform(0.88, 1.12, 3),
    )
    return radius, cx0, cy0, roll0, yaw0, light0


def _between_keyframes(keys: list, step: int, t: int, rng: np.random.Generator) -> tuple:
    """Frame ``t``'s ``(expression, AU activations, asymmetry, VA)``: a smoothstep between the
    keyframes around it, with per-frame label noise."""
    k, frac = divmod(t, step)
    w = float(frac) / step
    w = w * w * (3 - 2 * w)  # smoothstep
    e0, act0, va0, as0 = keys[k]
    e1, act1, va1, as1 = keys[k + 1]
    act = (1 - w) * act0 + w * act1
    act = np.clip(act + rng.normal(0, 0.03, NUM_AUS), 0, 1).astype(np.float32)
    asym = (1 - w) * as0 + w * as1
    va = np.clip((1 - w) * va0 + w * va1 + rng.normal(0, 0.05, 2), -1, 1)
    return (e0 if w < 0.5 else e1), act, asym, va


def _later_nuisances(config: SynthConfig, video: int, ident: Identity) -> np.ndarray:
    """Adds ``config``'s accessories to ``ident``; returns the video's per-frame head pitch.

    Their own random stream (not the video's): at 0 the corpus is the one rendered before these
    settings existed, and otherwise the same labels and scenes with glasses, beards, pitch.
    """
    rng = np.random.default_rng([config.seed, video, 1])
    if rng.random() < config.accessory_rate:
        tint = float(rng.choice([0.0, 0.15, 0.85], p=[0.6, 0.25, 0.15]))
        frame = rng.choice([[20, 20, 20], [90, 60, 30], [160, 160, 170], [120, 30, 30]])
        ident.glasses = (np.asarray(frame, np.float32), tint)
    if rng.random() < config.accessory_rate:
        ident.beard = float(rng.uniform(0.5, 0.95))
    count = config.frames_per_video
    pitch0 = rng.uniform(-config.pitch_range, config.pitch_range)
    drift = rng.normal(0, 0.015, count).cumsum() if config.pitch_range else np.zeros(count)
    return pitch0 + drift


def _fringe_mask_low_res(config: SynthConfig, video: int, ident: Identity) -> np.ndarray:
    """Adds ``config``'s fringe and mask to ``ident``; returns each frame's low-resolution face
    width in pixels (0: the frame keeps its resolution).

    A third random stream, for the same reason as ``_later_nuisances``. Every frame draws its
    chance and its width whatever the rate, so a higher rate only adds low-resolution frames.
    """
    rng = np.random.default_rng([config.seed, video, 2])
    if rng.random() < config.fringe_rate:
        edge = rng.uniform(-0.5, -0.28) + rng.uniform(-0.12, 0.12) * np.linspace(-1, 1, 9)
        ident.fringe = edge + rng.uniform(-0.05, 0.05, 9)
        ident.hair_style = max(ident.hair_style, 1)  # a fringe comes with hair on top
    if rng.random() < config.mask_rate:
        colours = [[150, 190, 220], [236, 236, 232], [35, 35, 40]]
        colour = colours[int(rng.integers(3))] if rng.random() < 0.75 else rng.uniform(40, 230, 3)
        ident.mask = np.asarray(colour, np.float32)
    chance = rng.random(config.frames_per_video)
    width = rng.uniform(10, 32, config.frames_per_video)
    return np.where(chance < config.low_res_rate, width, 0.0)


def low_resolution(image: np.ndarray, face_px: float, radius: float) -> np.ndarray:
    """``image`` shrunk until the face (half-width ``radius`` pixels) is ``face_px`` wide, then
    scaled back up to its size: what a distant face looks like after a detector's crop."""
    size = image.shape[0]
    factor = face_px / (2 * radius)
    if factor >= 1:
        return image
    small = max(8, round(size * factor))
    shrunk = cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(shrunk, (size, size), interpolation=cv2.INTER_LINEAR)


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
    pitch = _later_nuisances(config, video, ident)
    low_res = _fringe_mask_low_res(config, video, ident)
    ss = 2
    background = np.zeros((size * ss, size * ss, 3), np.uint8)
    # The default corpus draws exactly what it always drew (same random stream).
    if config.backgrounds == "clutter" or (config.backgrounds == "mixed" and rng.random() < 0.5):
        draw_background(background, rng)
    else:
        draw_photo_background(background, rng)
    radius, cx0, cy0, roll0, yaw0, light0 = _video_scene(rng, size, config.yaw_range)
    max_yaw = max(0.6, config.yaw_range + 0.15)
    # Expression keyframes every 3-8 frames, smoothly interpolated in between.
    step = int(rng.integers(3, 9))
    n_keys = count // step + 2
    keys = [
        sample_keyframe(
            rng,
            None if expressions is None else expressions[k % len(expressions)],
            config.intensity_min,
        )
        for k in range(n_keys)
    ]
    drift = rng.normal(0, 1, (count, 4)).cumsum(axis=0) * np.array(
        [0.01 * size, 0.01 * size, 0.01, 0.02]
    )
    frames = []
    for t in range(count):
        expression, act, asym, va = _between_keyframes(keys, step, t, rng)
        pose = Pose(
            cx=float(cx0 + drift[t, 0]),
            cy=float(cy0 + drift[t, 1]),
            radius=float(radius * (1 + 0.5 * drift[t, 2])),
            roll=float(roll0 + drift[t, 2] * 3),
            yaw=float(np.clip(yaw0 + drift[t, 3], -max_yaw, max_yaw)),
            pitch=float(pitch[t]),
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
            noise=float(rng.uniform(0, config.noise_max)),
            occlude=bool(rng.random() < config.occlusion_rate),
            blink=blink,
        )
        if low_res[t]:
            image = low_resolution(image, float(low_res[t]), pose.radius)
        if config.jpeg_min_quality:
            image = jpeg_degrade(image, int(rng.integers(config.jpeg_min_quality, 96)))
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
