"""The SynthAffect face: geometry the 12 AUs drive, drawn on a ``Canvas``, and occluders.

Brows raise/lower and knit, lids tighten, cheeks raise, lip corners pull/depress, lips
tighten/press/part, jaw drops. Coordinates are face units: x right, y down, the eyes' centres at
``EYE_Y``.
"""

from __future__ import annotations

import math

import numpy as np

from affect_tf.core.labels import AUS
from affect_tf.data.synth.canvas import Canvas, ellipse
from affect_tf.data.synth.labels import Identity

# Vertical position of the eyes' centres in face units (the face spans about [-1.3, 1.3]).
EYE_Y = -0.12


def draw_face(
    canvas: Canvas, ident: Identity, act: np.ndarray, asym: float, blink: float
) -> np.ndarray:
    """Draws the face for AU activations ``act``; returns the 5 landmarks in output pixels
    (eye centres, nose tip, mouth corners)."""
    a = {name: float(act[i]) for i, name in enumerate(AUS)}
    _draw_head(canvas, ident, a)
    _draw_skin_marks(canvas, ident, a)
    eyes = _draw_eyes(canvas, ident, a, blink)
    if ident.fringe is not None:
        _draw_fringe(canvas, ident)
    if ident.glasses is not None:
        _draw_glasses(canvas, ident)
    nose, tip_y = _draw_nose(canvas, ident, a)
    if ident.beard > 0:
        _draw_beard(canvas, ident, a, tip_y)
    corners = _draw_mouth(canvas, ident, a, asym, tip_y)
    if ident.mask is not None:
        _draw_mask(canvas, ident, a, tip_y)
    return np.array([*eyes, nose, *corners], np.float32)


def _draw_fringe(canvas: Canvas, ident: Identity) -> None:
    """Hair from the crown down over the forehead to ``ident.fringe``'s strand ends, over the
    brows (drawn after them), with a few darker strand lines."""
    fw, fh = ident.face_w, ident.face_h
    ends = ident.fringe
    xs = np.linspace(-0.85, 0.85, len(ends)) * fw
    crown = ellipse(0, -0.02, fw * 1.02, fh * 1.01, t0=math.pi * 1.08, t1=math.pi * 1.92)
    canvas.poly(np.vstack([crown, np.stack([xs, ends], 1)[::-1]]), ident.hair, depth=0.62)
    for x, end in zip(xs[1:-1:2], ends[1:-1:2], strict=True):
        strand = np.array([[x * 0.8, -fh * 0.8], [x, end - 0.02]])
        canvas.line(strand, ident.hair * 0.7, 0.015, depth=0.62, alpha=0.6)


def _draw_mask(canvas: Canvas, ident: Identity, a: dict[str, float], tip_y: float) -> None:
    """A face mask from the nose bridge to under the chin (it stretches with the jaw, AU26),
    pleats and ear loops; drawn over the mouth and any beard."""
    fw = ident.face_w
    jaw = 0.10 * a["AU26"]
    chin = _lower_arc(ident, a, 0.97, 0.04, 0.96, dy=0.02)
    top_y = tip_y - 0.16
    top = np.array([[-fw * 0.95, top_y + 0.1], [0.0, top_y - 0.04], [fw * 0.95, top_y + 0.1]])
    top = smooth_curve(top)
    chin = chin[chin[:, 1] > top_y + 0.1]
    canvas.poly(np.vstack([chin, top]), ident.mask, depth=1.0)
    for k in range(1, 4):  # pleats, lower as the jaw drops
        y = top_y + 0.1 + k * (0.16 + jaw / 3)
        pleat = smooth_curve(np.array([[-fw * 0.7, y], [0.0, y - 0.03], [fw * 0.7, y]]))
        canvas.line(pleat, ident.mask * 0.8, 0.012, depth=1.0, alpha=0.7)
    for side in (-1, 1):  # ear loops
        loop = np.array(
            [[side * fw * 0.95, top_y + 0.1], [side * fw * 1.02, 0.0], [side * fw * 0.9, 0.75]]
        )
        canvas.line(smooth_curve(loop), ident.mask * 0.9, 0.015, depth=0.3)


def _draw_glasses(canvas: Canvas, ident: Identity) -> None:
    """Rims round the eyes, a bridge and temples to the ears, and a tinted lens (sunglasses
    hide the lids, as they do in real corpora; the labels do not change)."""
    frame, tint = ident.glasses
    es, ey = ident.eye_spacing, EYE_Y
    rw, rh = 0.20 * ident.eye_size, 0.13 * ident.eye_size
    for side in (-1, 1):
        rim = ellipse(side * es, ey + 0.01, rw, rh, n=32)
        canvas.poly(rim, frame * 0.4, depth=0.75, alpha=tint)
        canvas.line(np.vstack([rim, rim[:1]]), frame, 0.025, depth=0.75)
        temple = np.array([[side * (es + rw), ey - 0.02], [side * ident.face_w * 0.98, ey - 0.04]])
        canvas.line(temple, frame, 0.02, depth=0.5)
    bridge = np.array([[-(es - rw), ey - 0.02], [0.0, ey - 0.05], [es - rw, ey - 0.02]])
    canvas.line(bridge, frame, 0.022, depth=0.8)


def _draw_beard(canvas: Canvas, ident: Identity, a: dict[str, float], tip_y: float) -> None:
    """Beard over the jaw and chin (it follows the jaw drop, AU26) and a moustache; the lips
    are drawn over it."""
    arc = _lower_arc(ident, a, 0.99, 0.08, 0.92)
    arc = arc[arc[:, 1] > 0.3]
    top = np.array([[-0.3, tip_y + 0.16], [0.0, tip_y + 0.12], [0.3, tip_y + 0.16]])
    colour = ident.hair * 0.9
    canvas.poly(np.vstack([arc, top]), colour, depth=0.65, alpha=ident.beard)
    moustache = ellipse(0, tip_y + 0.1, ident.mouth_width + 0.04, 0.045, n=24)
    canvas.poly(moustache, colour * 0.9, depth=0.75, alpha=ident.beard)


def _lower_arc(
    ident: Identity, a: dict[str, float], scale: float, t0: float, t1: float, dy: float = 0.0
) -> np.ndarray:
    """The lower arc of the head outline at ``scale``, from ``t0`` to ``t1`` half-turns,
    shifted down by ``dy`` and stretched down with the jaw drop (AU26) as the head's own
    outline is (for what follows the chin: beard, mask)."""
    fw, fh = ident.face_w, ident.face_h
    t = np.linspace(t0 * math.pi, t1 * math.pi, 32)
    arc = np.stack([fw * scale * np.cos(t), fh * scale * np.sin(t) + dy], axis=1)
    arc[:, 1] += 0.10 * a["AU26"] * arc[:, 1] / fh
    return arc


def _draw_head(canvas: Canvas, ident: Identity, a: dict[str, float]) -> None:
    """Hair behind the head, ears, the head (the chin goes down with the jaw, AU26), hair cap."""
    skin = ident.skin
    fw, fh = ident.face_w, ident.face_h
    jaw = 0.10 * a["AU26"]
    if ident.hair_style == 2:
        canvas.poly(ellipse(0, -0.05, fw * 1.18, fh * 1.05), ident.hair, depth=-0.2)
    for side in (-1, 1):
        canvas.poly(ellipse(side * fw * 0.98, 0.0, 0.12, 0.22), skin * 0.92, depth=-0.3)
    outline = ellipse(0, 0, fw, fh)
    outline[:, 1] += np.where(outline[:, 1] > 0, jaw * outline[:, 1] / fh, 0.0)
    canvas.poly(outline, skin)
    if ident.hair_style >= 1:
        cap = ellipse(0, -0.02, fw * 1.03, fh * 1.02, t0=math.pi * 1.03, t1=math.pi * 1.97)
        cap = np.vstack([cap, [[fw * 0.75, -0.55], [0.0, -0.72], [-fw * 0.75, -0.55]]])
        canvas.poly(cap, ident.hair)


def _draw_skin_marks(canvas: Canvas, ident: Identity, a: dict[str, float]) -> None:
    """Cheeks (AU6 raises and rounds them), forehead wrinkles (AU1/AU2), the brow furrow (AU4)."""
    skin = ident.skin
    for side in (-1, 1):
        canvas.poly(
            ellipse(side * 0.45, 0.22 - 0.06 * a["AU6"], 0.17, 0.11),
            [200, 90, 90],
            depth=0.4,
            alpha=0.15 + 0.35 * a["AU6"],
        )

    raise_ = max(a["AU1"], a["AU2"])
    for k in range(3):
        y = -0.62 + 0.08 * k
        canvas.line(
            ellipse(0, y + 0.3, 0.38, 0.3, n=16, t0=math.pi * 1.25, t1=math.pi * 1.75),
            skin * 0.6,
            0.02,
            depth=0.3,
            alpha=0.85 * raise_,
        )
    ey = EYE_Y
    for side in (-1, 1):
        canvas.line(
            np.array([[side * 0.05, ey - 0.22], [side * 0.035, ey - 0.08]]),
            skin * 0.55,
            0.022,
            depth=0.6,
            alpha=0.9 * a["AU4"],
        )


def _draw_eyes(canvas: Canvas, ident: Identity, a: dict[str, float], blink: float) -> list:
    """Eyes and brows; the two eye centres in output pixels.

    Almond opening from the lids: AU7 tightens, AU6 pushes the lower lid up, AU1+2 widen.
    Brows: AU1 lifts the inner end, AU2 the outer end, AU4 lowers and knits the inner end.
    """
    skin = ident.skin
    es, ey = ident.eye_spacing, EYE_Y
    raise_ = max(a["AU1"], a["AU2"])
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
            iris = ellipse(ix, iy, r, r, n=24)
            iris[:, 1] = np.clip(iris[:, 1], ey - hu * 0.95, ey + hl * 0.95)
            canvas.poly(iris, ident.iris, depth=0.55)
            pupil = ellipse(ix, iy, r * 0.45, min(r * 0.45, (hu + hl) * 0.45), n=16)
            canvas.poly(pupil, [10, 10, 10], depth=0.55)
        canvas.line(upper, skin * 0.35, 0.022, depth=0.55)
        canvas.line(lower, skin * 0.6, 0.012, depth=0.55)
        landmarks.append(canvas.project([[cx, ey]], 0.55)[0])
        inner_x = side * (es - 0.13 + 0.07 * a["AU4"])
        inner_y = ey - 0.17 - 0.16 * a["AU1"] + 0.12 * a["AU4"]
        mid_y = ey - 0.22 - 0.08 * a["AU1"] - 0.12 * a["AU2"] + 0.06 * a["AU4"]
        outer_y = ey - 0.16 - 0.17 * a["AU2"] + 0.02 * a["AU4"]
        brow = np.array([[inner_x, inner_y], [side * es, mid_y], [side * (es + 0.18), outer_y]])
        brow = smooth_curve(brow)
        canvas.line(brow, ident.hair * 0.8, ident.brow_thickness, depth=0.6)

    return landmarks


def _draw_nose(canvas: Canvas, ident: Identity, a: dict[str, float]) -> tuple[np.ndarray, float]:
    """The nose (AU10 lifts the wings); its tip in output pixels and its height in face units."""
    skin = ident.skin
    ey = EYE_Y
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
            ellipse(side * 0.055, tip_y + 0.03 - 0.02 * a["AU10"], 0.035, 0.018, n=12),
            skin * 0.35,
            depth=0.9,
        )
    canvas.poly(ellipse(0, tip_y, 0.07, 0.045, n=16), skin * 0.9, depth=1.0, alpha=0.8)
    return canvas.project([[0.0, tip_y]], 1.0)[0], tip_y


def _draw_mouth(
    canvas: Canvas, ident: Identity, a: dict[str, float], asym: float, tip_y: float
) -> list:
    """Lips, opening and teeth, nasolabial folds (deepen with AU6/AU10/AU12); the two corners.

    AU12 pulls the corners up and wide, AU15 down, AU23/AU24 tighten and press the lips, AU25
    parts them, AU26 drops the jaw; ``asym`` lifts one corner only (contempt).
    """
    skin = ident.skin
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
        canvas.line(smooth_curve(path), skin * 0.6, 0.018, depth=0.7, alpha=0.75 * fold)
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
    return [
        canvas.project([[-mw, corner_y[-1]]], 0.7)[0],
        canvas.project([[mw, corner_y[1]]], 0.7)[0],
    ]


def smooth_curve(points: np.ndarray, n: int = 16) -> np.ndarray:
    """A quadratic Bezier through 3 control points."""
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = points
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def draw_occluder(canvas: Canvas, rng: np.random.Generator, skin: np.ndarray) -> None:
    kind = rng.integers(3)
    cx, cy = rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.9)
    if kind == 0:  # a hand: skin-coloured blob
        canvas.poly(
            ellipse(cx, cy, rng.uniform(0.3, 0.5), rng.uniform(0.2, 0.35)),
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
