import numpy as np
import pytest

from affect_tf.evaluation.smoothing import parse_smooth, smooth_by_video, smooth_sequence


def test_parse_smooth():
    assert parse_smooth("mean:15") == ("mean", 15)
    assert parse_smooth("median:3") == ("median", 3)
    assert parse_smooth(None) is None and parse_smooth("none") is None
    for bad in ("gauss:5", "mean:0", "mean:x"):
        with pytest.raises(ValueError, match="mean:15"):
            parse_smooth(bad)


def test_mean_window_hand_checked_with_truncated_edges():
    values = np.array([0.0, 3.0, 6.0, 9.0, 12.0])
    out = smooth_sequence(values, np.arange(5), "mean", 3)
    np.testing.assert_allclose(out, [1.5, 3.0, 6.0, 9.0, 10.5])


def test_median_removes_a_spike():
    values = np.array([0.0, 0.0, 10.0, 0.0, 0.0])
    np.testing.assert_allclose(smooth_sequence(values, np.arange(5), "median", 3), 0.0)


def test_gaps_are_interpolated_and_order_kept():
    frames = np.array([4, 0, 2])  # unsorted, frames 1 and 3 missing
    values = np.array([[4.0], [0.0], [2.0]])
    # Dense grid 0..4 = 0,1,2,3,4 after interpolation; mean:3 at frames 4, 0, 2.
    out = smooth_sequence(values, frames, "mean", 3)
    np.testing.assert_allclose(out[:, 0], [3.5, 0.5, 2.0])


def test_videos_are_smoothed_separately():
    video = np.array(["a", "a", "a", "b", "b", "b"])
    frames = np.array([0, 1, 2, 0, 1, 2])
    probs = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], float)
    out = smooth_by_video(video, frames, {"p": probs}, "mean", 5, normalise=("p",))
    np.testing.assert_allclose(out["p"], probs)  # nothing leaks across the boundary
    med = smooth_by_video(
        video, frames, {"p": np.array([[0.2, 0.3]] * 6)}, "median", 3, normalise=("p",)
    )
    np.testing.assert_allclose(med["p"].sum(axis=1), 1.0)


def test_smoothing_reduces_noise_on_a_slow_signal():
    rng = np.random.default_rng(0)
    t = np.arange(300)
    clean = np.sin(t / 30.0)
    noisy = clean + rng.normal(0, 0.3, t.size)
    smoothed = smooth_sequence(noisy, t, "mean", 15)
    assert np.abs(smoothed - clean).mean() < 0.5 * np.abs(noisy - clean).mean()
