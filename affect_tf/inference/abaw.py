"""ABAW (Aff-Wild2) per-video prediction files from a ``predict_video`` table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affect_tf.core import outputs as tg
from affect_tf.core.labels import AUS, EXPRESSIONS


def fill_frames(table: pd.DataFrame, columns: Sequence[str], frames: int) -> np.ndarray:
    """Values of ``columns`` at every frame ``0..frames-1``: linear interpolation between the
    frames with a face, the nearest value beyond the ends (ABAW wants a line per frame)."""
    known = table[table["face_found"].astype(bool)]
    grid = np.arange(frames)
    if known.empty:
        return np.full((frames, len(columns)), np.nan)
    x = known["frame"].to_numpy(np.float64)
    return np.stack([np.interp(grid, x, known[c].to_numpy(np.float64)) for c in columns], axis=1)


def write_abaw(
    table: pd.DataFrame, out_dir: str | Path, name: str, au_threshold: float = 0.5
) -> dict[str, Path]:
    """Writes the ABAW (Aff-Wild2) per-video prediction files of a ``predict_video`` table:
    ``<out>/VA/<name>.txt`` (``valence,arousal``), ``EXPR/<name>.txt`` (class index) and
    ``AU/<name>.txt`` (12 0/1 columns), a header line then one line per video frame."""
    frames = int(table.attrs.get("frames", int(table["frame"].max()) + 1))
    out_dir = Path(out_dir)
    written = {}
    va = fill_frames(table, [tg.VALENCE, tg.AROUSAL], frames)
    expr = np.argmax(fill_frames(table, list(EXPRESSIONS), frames), axis=-1)
    au = (fill_frames(table, list(AUS), frames) >= au_threshold).astype(int)
    contents = {
        "VA": ("valence,arousal", [f"{v:.6f},{a:.6f}" for v, a in va]),
        "EXPR": (",".join(EXPRESSIONS), [str(int(e)) for e in expr]),
        "AU": (",".join(AUS), [",".join(str(int(x)) for x in row) for row in au]),
    }
    for task, (header, lines) in contents.items():
        path = out_dir / task / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header, *lines]) + "\n")
        written[task] = path
    return written
