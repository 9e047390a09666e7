import csv

import numpy as np
import pytest

from affect_tf.data import synth
from affect_tf.data.synth import SynthConfig, render_video
from affect_tf.data.synth.corpus import label_masks
from affect_tf.labels import AUS, EXPRESSIONS


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
