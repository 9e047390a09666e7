"""SynthAffect as data: per-frame label masks, in-memory records, the manifest corpus writer.

Everything is deterministic given the seed; each video has its own random stream, so rendering
in parallel gives the same files. ``write_corpus`` writes a manifest corpus (``manifest.csv`` +
images) that ``affect-tf convert --format manifest`` reads.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS
from affect_tf.data.synth.labels import SOURCE, Frame, SynthConfig
from affect_tf.data.synth.renderer import render_video


def label_masks(
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
    va_mask, expr_mask, au_mask = label_masks(config, video, len(frames))
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
