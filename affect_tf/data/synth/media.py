"""SynthAffect for people to look at: a grid of faces per expression, the videos as one mp4."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from affect_tf.core.labels import EXPRESSIONS
from affect_tf.data.synth.labels import SynthConfig
from affect_tf.data.synth.renderer import render_video


def write_expression_grid(
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
