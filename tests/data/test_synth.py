import csv
import dataclasses

import numpy as np
import pytest

from affect_tf.core.labels import AUS, EXPRESSIONS
from affect_tf.data import synth
from affect_tf.data.synth import SynthConfig, render_video
from affect_tf.data.synth.corpus import label_masks


def test_deterministic_by_seed():
    config = SynthConfig(n=4, size=64, frames_per_video=4, seed=5)
    a, b = render_video(config, 0), render_video(config, 0)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.image, fb.image)
        assert fa.valence == fb.valence and fa.expression == fb.expression
    other = render_video(SynthConfig(n=4, size=64, frames_per_video=4, seed=6), 0)
    assert not np.array_equal(a[0].image, other[0].image)


def test_labels_follow_geometry_and_ranges():
    config = SynthConfig(n=64, size=64, frames_per_video=8, seed=1)
    frames = [f for v in range(8) for f in render_video(config, v)]
    for f in frames:
        assert f.image.shape == (64, 64, 3) and f.image.dtype == np.uint8
        np.testing.assert_array_equal(f.au, (f.au_activation >= synth.AU_THRESHOLD).astype(int))
        assert 0 <= f.expression < 8
        # The 5 landmarks are in order: eyes left/right, nose below eyes, mouth below nose.
        le, re, nose, ml, mr = f.landmarks
        x, y, w, h = f.bbox
        assert w > 8 and h > 8
    happy = [f for f in frames if EXPRESSIONS[f.expression] == "Happiness"]
    sad = [f for f in frames if EXPRESSIONS[f.expression] == "Sadness"]
    if happy and sad:
        assert np.mean([f.valence for f in happy]) > np.mean([f.valence for f in sad])


def test_forced_expressions_carry_their_prototype_aus():
    config = SynthConfig(n=1, size=64, frames_per_video=1, seed=0)
    for name, au in [
        ("Happiness", "AU12"),
        ("Surprise", "AU26"),
        ("Anger", "AU4"),
        ("Sadness", "AU15"),
    ]:
        acts = [
            render_video(config, v, expressions=[EXPRESSIONS.index(name)])[0] for v in range(12)
        ]
        rate = np.mean([f.au[AUS.index(au)] for f in acts])
        assert rate > 0.6, (name, au, rate)
        assert all(EXPRESSIONS[f.expression] == name for f in acts)


def test_au_geometry_moves_the_landmarks():
    rng = np.random.default_rng(0)
    ident = synth.random_identity(rng)
    pose = synth.Pose(cx=64, cy=64, radius=30, roll=0.0, yaw=0.0)
    background = np.zeros((256, 256, 3), np.uint8)
    light = (1.0, 0.0, 0.0, np.ones(3))

    def render(**aus):
        act = np.zeros(12, np.float32)
        for name, v in aus.items():
            act[AUS.index(name)] = v
        return synth.render_frame(
            np.random.default_rng(1), 128, ident, pose, act, 0.0, background, light, 0.0, 0.0, False
        )

    neutral, lm_neutral, _ = render()
    smile, lm_smile, _ = render(AU12=1.0)
    frown, lm_frown, _ = render(AU15=1.0)
    brows, lm_brows, _ = render(AU1=1.0, AU2=1.0)
    # Lip corners go up with AU12 (smaller y) and down with AU15; eyes and nose stay put.
    assert (lm_smile[3:, 1] < lm_neutral[3:, 1] - 2).all()
    assert (lm_frown[3:, 1] > lm_neutral[3:, 1] + 2).all()
    np.testing.assert_allclose(lm_smile[:3], lm_neutral[:3], atol=1e-4)
    # Brow raising changes the pixels above the eyes only.
    diff = np.abs(brows.astype(int) - neutral.astype(int)).sum(axis=-1)
    eye_y = int(lm_neutral[0, 1])
    assert diff[: eye_y - 1].sum() > 0 and diff[eye_y + 10 :].sum() == 0


def test_write_corpus_masks_and_parallel_determinism(tmp_path):
    config = SynthConfig(n=30, size=48, frames_per_video=8, seed=2)
    one = synth.write_corpus(config, tmp_path / "one", workers=1, progress=False)
    two = synth.write_corpus(config, tmp_path / "two", workers=2, progress=False)
    assert one.read_text() == two.read_text()
    rows = list(csv.DictReader(one.open()))
    assert len(rows) == 30
    assert len({r["video_id"] for r in rows}) == 4
    for r in rows:
        assert (tmp_path / "one" / r["path"]).read_bytes() == (
            tmp_path / "two" / r["path"]
        ).read_bytes()
        labelled = r["expression"] or r["valence"] or any(r[a] for a in AUS)
        assert labelled, r
    # Real corpora leave tasks unlabelled: so does SynthAffect.
    assert any(not r["valence"] for r in rows) or any(not r["AU1"] for r in rows)


def test_config_validation():
    with pytest.raises(ValueError, match="size"):
        SynthConfig(size=8)
    with pytest.raises(ValueError, match="n >= 1"):
        SynthConfig(n=0)


def test_label_masks_follow_the_configured_rates():
    config = SynthConfig(n=8, frames_per_video=8, seed=0)
    va, expr, au = zip(*(label_masks(config, v, 8) for v in range(400)), strict=True)
    va, expr, au = np.concatenate(va), np.concatenate(expr), np.concatenate(au)
    assert abs(va.mean() - 0.85 * 0.95) < 0.05
    assert abs(au.any(axis=1).mean() - 0.75 * 0.95) < 0.05
    assert (va | expr | au.any(axis=1)).all()  # no frame without any label
    partial = au.any(axis=1) & ~au.all(axis=1)
    assert 0 < partial.mean() < 0.3  # some videos code only some AUs


def test_pitch_moves_features_by_their_depth():
    """Pitch compresses y by cos and shifts by depth * sin, like yaw does for x (hand-checked)."""
    from affect_tf.data.synth.canvas import Canvas

    pose = synth.Pose(cx=0, cy=0, radius=10, roll=0.0, yaw=0.0, pitch=0.3)
    canvas = Canvas(np.zeros((4, 4, 3), np.uint8), pose, 1)
    got = canvas.project([[0.2, 0.5]], depth=1.0)[0]
    np.testing.assert_allclose(got, [2.0, 10 * (0.5 * np.cos(0.3) + np.sin(0.3))])
    level = Canvas(np.zeros((4, 4, 3), np.uint8), synth.Pose(0, 0, 10, 0.0, 0.0), 1)
    np.testing.assert_array_equal(level.project([[0.2, 0.5]], 1.0)[0], [2.0, 5.0])


def test_accessories_and_pitch_change_the_pixels_not_the_labels_or_the_scene():
    """Glasses, beards and pitch come from a stream of their own: the same seed keeps its
    identities, expressions, AUs, VA and head position; at 0 nothing is drawn."""
    base = SynthConfig(n=8, size=96, frames_per_video=2, seed=4)
    plain = [f for v in range(4) for f in render_video(base, v)]
    dressed_config = dataclasses.replace(base, accessory_rate=1.0)
    dressed = [f for v in range(4) for f in render_video(dressed_config, v)]
    pitched = [
        f for v in range(4) for f in render_video(dataclasses.replace(base, pitch_range=0.4), v)
    ]
    for a, b, c in zip(plain, dressed, pitched, strict=True):
        for other in (b, c):
            assert a.expression == other.expression and a.valence == other.valence
            np.testing.assert_array_equal(a.au, other.au)
        # Accessories leave the geometry alone; pitch moves the landmarks.
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        assert a.bbox == b.bbox
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() > 1.0
    moved = [np.abs(a.landmarks - c.landmarks).max() for a, c in zip(plain, pitched, strict=True)]
    assert max(moved) > 1.0
    # Rate 1: every video wears glasses and a beard; rate 0 and pitch 0: none, level heads.
    from affect_tf.data.synth.renderer import _later_nuisances

    for video in range(4):
        ident = synth.random_identity(np.random.default_rng([4, video]))
        assert not _later_nuisances(base, video, ident).any()
        assert ident.glasses is None and ident.beard == 0.0
        _later_nuisances(dressed_config, video, ident)
        assert ident.glasses is not None and 0.5 <= ident.beard <= 0.95
    # Still deterministic.
    np.testing.assert_array_equal(render_video(dressed_config, 1)[0].image, dressed[2].image)


def test_fringe_mask_and_low_resolution_change_the_pixels_not_the_labels_or_the_scene():
    """The third random stream: labels, identities' geometry and head positions stay those of
    the seed; each setting draws what it says, and a higher low-resolution rate only adds
    low-resolution frames."""
    from affect_tf.data.synth.renderer import _fringe_mask_low_res, low_resolution

    base = SynthConfig(n=8, size=96, frames_per_video=2, seed=4)
    plain = [f for v in range(4) for f in render_video(base, v)]
    for knob in ("fringe_rate", "mask_rate", "low_res_rate"):
        changed = [
            f for v in range(4) for f in render_video(dataclasses.replace(base, **{knob: 1.0}), v)
        ]
        for a, b in zip(plain, changed, strict=True):
            assert a.expression == b.expression and a.valence == b.valence
            np.testing.assert_array_equal(a.au_activation, b.au_activation)
            np.testing.assert_array_equal(a.landmarks, b.landmarks)
            assert a.bbox == b.bbox
            assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() > 0.5, knob
    for video in range(4):
        ident = synth.random_identity(np.random.default_rng([4, video]))
        assert not _fringe_mask_low_res(base, video, ident).any()
        assert ident.fringe is None and ident.mask is None
        full = dataclasses.replace(base, fringe_rate=1.0, mask_rate=1.0, low_res_rate=1.0)
        widths = _fringe_mask_low_res(full, video, ident)
        assert ((widths >= 10) & (widths <= 32)).all()
        assert ident.fringe.shape == (9,) and (ident.fringe < -0.15).all()  # above the eyes
        assert ident.mask.shape == (3,) and ident.hair_style >= 1
        some = _fringe_mask_low_res(dataclasses.replace(base, low_res_rate=0.5), video, ident)
        assert set(np.flatnonzero(some)) <= set(np.flatnonzero(widths))
    # Low resolution keeps the size; a 10 px face leaves a tenth of the detail of a 100 px one.
    sharp = np.zeros((128, 128, 3), np.uint8)
    sharp[:, ::2] = 255  # 1-pixel stripes: gone once the face is shrunk and scaled back
    blurred = low_resolution(sharp, face_px=10, radius=50)
    assert blurred.shape == sharp.shape and blurred.std() < 0.1 * sharp.std()
    assert low_resolution(sharp, face_px=120, radius=50) is sharp  # never enlarged


def test_intensity_min_rescales_the_same_draw():
    """Hand-checked: the keyframe's uniform draw u in [0.6, 1] becomes
    intensity_min + (u - 0.6) / 0.4 * (1 - intensity_min); the random stream is unchanged."""
    happiness = EXPRESSIONS.index("Happiness")
    u = np.random.default_rng(7).uniform(0.6, 1.0)
    expected = 0.2 + (u - 0.6) / 0.4 * 0.8
    _, act0, va0, _ = synth.sample_keyframe(np.random.default_rng(7), happiness)
    _, act1, va1, _ = synth.sample_keyframe(np.random.default_rng(7), happiness, 0.2)
    # Happiness: valence = 0.75 * (0.45 + 0.55 * intensity) + the same noise.
    np.testing.assert_allclose(va1[0] - va0[0], 0.75 * 0.55 * (expected - u), atol=1e-6)
    assert act1[AUS.index("AU12")] < act0[AUS.index("AU12")]
    # In a corpus: the same expressions and head positions (eye centres), weaker AUs.
    base = SynthConfig(n=64, size=64, frames_per_video=8, seed=2)
    subtle = dataclasses.replace(base, intensity_min=0.1)
    a = [f for v in range(8) for f in render_video(base, v)]
    b = [f for v in range(8) for f in render_video(subtle, v)]
    assert [f.expression for f in a] == [f.expression for f in b]
    assert np.mean([f.au_activation.sum() for f in b]) < np.mean([f.au_activation.sum() for f in a])
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.landmarks[:2], fb.landmarks[:2])
