"""Single-shot detector post-processing, as MediaPipe runs it for BlazeFace: anchor grids,
the sigmoid of raw scores, score-weighted non-maximum suppression, and the tiles a large image is
searched in (``affect_tf.face.blazeface`` uses them). NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

_NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold


def anchors(size: int, strides: tuple[int, ...], per_layer: int) -> np.ndarray:
    """SSD anchor centres ``(N, 2)`` in [0, 1] (ssd_anchors_calculator.cc, fixed anchor size;
    consecutive layers of one stride share a grid, ``per_layer`` anchors each)."""
    centres = []
    layer = 0
    while layer < len(strides):
        repeats = 0
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            repeats += per_layer
            same += 1
        grid = size // strides[layer]
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], -1).reshape(-1, 2)
        centres.append(np.repeat(cells, repeats, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def weighted_nms(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: overlapping candidates (IoU > 0.3) are averaged by score into
    one face, which keeps the top score. ``rows``: ``(N, 16)`` x1, y1, x2, y2, 6 keypoints."""
    order = np.argsort(-scores)
    rows, scores = rows[order], scores[order]
    kept_rows, kept_scores = [], []
    alive = np.ones(len(rows), bool)
    areas = (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1])
    for i in range(len(rows)):
        if not alive[i]:
            continue
        x1 = np.maximum(rows[i, 0], rows[:, 0])
        y1 = np.maximum(rows[i, 1], rows[:, 1])
        x2 = np.minimum(rows[i, 2], rows[:, 2])
        y2 = np.minimum(rows[i, 3], rows[:, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        cluster = alive & (iou > _NMS_IOU)
        cluster[i] = True
        weights = scores[cluster]
        kept_rows.append((rows[cluster] * weights[:, None]).sum(0) / weights.sum())
        kept_scores.append(scores[i])
        alive &= ~cluster
    return np.array(kept_rows).reshape(-1, rows.shape[1]), np.array(kept_scores)


def tile_starts(length: int, side: int) -> list[int]:
    """Tile origins along one axis: tiles of ``side`` overlapping by at least a quarter."""
    if length <= side:
        return [0]
    count = math.ceil((length - side) / (0.75 * side)) + 1
    return [int(v) for v in np.linspace(0, length - side, count).round()]
