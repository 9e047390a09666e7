"""Temporal smoothing of per-frame predictions within each video (Savchenko's post-processing).

``mean`` or ``median`` over a centred window of ``k`` frames. Each video is smoothed on its
own (windows never cross a video boundary); frames missing from a video (no face detected,
every other frame sampled) are filled by linear interpolation before smoothing, and the result
is read back at the frames that exist. Near a video's ends the window is truncated.
"""

from __future__ import annotations

import numpy as np

METHODS = ("mean", "median")


def parse_smooth(spec: str | None) -> tuple[str, int] | None:
    """``"mean:15"`` -> ("mean", 15); ``None``/``"none"`` -> None.

    Raises:
        ValueError: For another method or a window < 1.
    """
    if spec is None or str(spec).lower() in ("", "none", "off"):
        return None
    method, _, window = str(spec).partition(":")
    try:
        k = int(window) if window else 15
    except ValueError:
        k = 0
    if method not in METHODS or k < 1:
        raise ValueError(
            f"Expected a smoothing spec like 'mean:15' or 'median:9'. Received: smooth={spec!r}"
        )
    return method, k


def smooth_sequence(
    values: np.ndarray, frames: np.ndarray, method: str = "mean", window: int = 15
) -> np.ndarray:
    """Smooths ``(T, D)`` values of one video at (possibly unsorted, gapped) ``frames``."""
    values = np.asarray(values, np.float64)
    squeeze = values.ndim == 1
    if squeeze:
        values = values[:, None]
    frames = np.asarray(frames, np.int64)
    if len(frames) != len(values):
        raise ValueError(
            f"Expected one frame number per row. Received: {len(frames)} frames, {len(values)} rows"
        )
    if len(values) == 0 or window <= 1:
        return values[:, 0] if squeeze else values
    order = np.argsort(frames, kind="stable")
    f_sorted, v_sorted = frames[order], values[order]
    # Duplicate frame numbers (several rows for one frame) are averaged onto the grid.
    grid = np.arange(f_sorted[0], f_sorted[-1] + 1)
    unique, inverse = np.unique(f_sorted, return_inverse=True)
    sums = np.zeros((len(unique), values.shape[1]))
    np.add.at(sums, inverse, v_sorted)
    means = sums / np.bincount(inverse)[:, None]
    dense = np.stack([np.interp(grid, unique, means[:, d]) for d in range(values.shape[1])], axis=1)
    half = window // 2
    if method == "mean":
        # Running sums: O(T) per dimension.
        csum = np.vstack([np.zeros((1, dense.shape[1])), np.cumsum(dense, axis=0)])
        idx = np.arange(len(grid))
        lo, hi = np.maximum(idx - half, 0), np.minimum(idx + window - half, len(grid))
        out = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
    else:
        out = np.stack(
            [
                np.median(dense[max(i - half, 0) : i + window - half], axis=0)
                for i in range(len(grid))
            ]
        )
    result = np.empty_like(values)
    result[order] = out[f_sorted - grid[0]]
    return result[:, 0] if squeeze else result


def smooth_by_video(
    video_ids,
    frames,
    arrays: dict[str, np.ndarray],
    method: str = "mean",
    window: int = 15,
    normalise: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Smooths every array of per-row predictions within each video.

    Args:
        video_ids, frames: Per-row video id and frame number.
        arrays: Name -> ``(N, D)`` predictions (probabilities or values).
        normalise: Names whose rows are probability distributions to renormalise afterwards
            (a median of distributions does not sum to 1).
    """
    video_ids = np.asarray(video_ids)
    frames = np.asarray(frames)
    out = {name: np.array(a, np.float64, copy=True) for name, a in arrays.items()}
    for video in np.unique(video_ids):
        rows = np.flatnonzero(video_ids == video)
        for name, a in arrays.items():
            out[name][rows] = smooth_sequence(np.asarray(a)[rows], frames[rows], method, window)
    for name in normalise:
        out[name] = out[name] / np.maximum(out[name].sum(axis=-1, keepdims=True), 1e-12)
    return out
