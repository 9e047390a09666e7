"""Faces from a trained generator: sampling, grids, and generated faces as labelled tf.Examples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from affect_tf.core.labels import EXPRESSIONS
from affect_tf.gan.conditions import CONDITION_DIM, ConditionPriors
from affect_tf.gan.folder import load_gan
from affect_tf.gan.model import check_condition_width
from affect_tf.gan.networks import CONDITION, NOISE


def generate(
    generator: keras.Model, conditions: np.ndarray, seed: int = 0, batch_size: int = 64
) -> np.ndarray:
    """Faces ``(N, S, S, 3)`` uint8 for conditions ``(N, 22)``; the same seed gives the same
    faces (the noise is drawn from ``numpy.random.default_rng(seed)``)."""
    conditions = np.asarray(conditions, np.float32)
    check_condition_width(conditions)
    noise_dim = generator.input[NOISE].shape[-1]
    noise = np.random.default_rng(seed).standard_normal((len(conditions), noise_dim))
    noise = noise.astype(np.float32)
    out = []
    for start in range(0, len(conditions), batch_size):
        part = slice(start, start + batch_size)
        images = generator({NOISE: noise[part], CONDITION: conditions[part]}, training=False)
        out.append(np.asarray(images))
    images = np.concatenate(out) if out else np.zeros((0, 1, 1, 3))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def grid_image(rows: Sequence[np.ndarray], labels: Sequence[str], gap: int = 2) -> np.ndarray:
    """One RGB image: each row of faces ``(k, S, S, 3)`` behind its label."""
    import cv2

    size = rows[0].shape[1]
    label_width = max(60, int(size * 1.6))
    lines = []
    for faces, label in zip(rows, labels, strict=True):
        tiles = []
        for face in faces:
            tiles += [face, np.full((size, gap, 3), 255, np.uint8)]
        tag = np.full((size, label_width, 3), 255, np.uint8)
        cv2.putText(
            tag, label, (3, size // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
        lines += [np.concatenate([tag, *tiles], axis=1), np.full((gap, 1, 3), 255, np.uint8)]
    width = max(line.shape[1] for line in lines)
    lines = [
        np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines
    ]
    return np.concatenate(lines, axis=0)


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Writes an RGB uint8 image (PNG, JPEG, ... by the extension)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"Expected a writable image path. Received: path={str(path)!r}")
    return path


def expression_grid(
    generator: keras.Model, priors: ConditionPriors, per_expression: int = 8, seed: int = 0
) -> np.ndarray:
    """One row per expression: its typical condition (``priors.condition``), different noise."""
    conditions = np.concatenate(
        [np.tile(priors.condition(e), (per_expression, 1)) for e in range(len(EXPRESSIONS))]
    )
    faces = generate(generator, conditions, seed=seed)
    rows = np.split(faces, len(EXPRESSIONS))
    labels = [
        f"{name}" + ("" if priors.counts[i] > 0 else " (unseen)")
        for i, name in enumerate(EXPRESSIONS)
    ]
    return grid_image(rows, labels)


def generated_examples(
    generator: keras.Model,
    conditions: np.ndarray,
    margin: float,
    seed: int = 0,
    video_prefix: str = "gan",
) -> list:
    """Generated faces as ``FaceRecord``s with the conditions as labels (AU ≥ 0.5 occurs), so
    they join any training set as tf.Examples. Each face is its own "video" (no leakage across
    a by-video split); landmarks are the alignment template, so the pipeline's alignment leaves
    the generated crop as it is."""
    import cv2

    from affect_tf.data.examples import FaceRecord
    from affect_tf.face.align import template_points
    from affect_tf.gan.conditions import AU_SLICE, EXPR_SLICE, VA_SLICE

    faces = generate(generator, conditions, seed=seed)
    size = faces.shape[1]
    points = np.asarray(template_points(size, margin)).reshape(5, 2)
    records = []
    for i, (face, cond) in enumerate(zip(faces, conditions, strict=True)):
        ok, png = cv2.imencode(".png", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError("Expected PNG encoding of a generated face to succeed")
        va = np.clip(cond[VA_SLICE], -1, 1)
        records.append(
            FaceRecord(
                image=png.tobytes(),
                bbox=[0.0, 0.0, float(size), float(size)],
                landmarks=points,
                valence=float(va[0]),
                arousal=float(va[1]),
                va_mask=1,
                expression=int(np.argmax(cond[EXPR_SLICE])),
                expr_mask=1,
                au=[int(v >= 0.5) for v in cond[AU_SLICE]],
                au_mask=[1] * (AU_SLICE.stop - AU_SLICE.start),
                video_id=f"{video_prefix}{seed}_{i:06d}",
                frame=0,
                source="gan",
            )
        )
    return records


def write_generated_examples(
    folder: str | Path,
    counts: dict[str | int, int],
    out_file: str | Path,
    seed: int = 0,
    margin: float | None = None,
) -> Path:
    """Writes ``counts[expression]`` generated faces per expression to a GZIP TFRecord.

    Conditions are drawn around each expression's typical condition: its AU rates decide each
    AU's occurrence at random and VA is drawn from its measured spread, so the faces vary.
    """
    from affect_tf.data.examples import serialize_example
    from affect_tf.gan.conditions import AU_SLICE, VA_SLICE, expression_index

    loaded = load_gan(folder)
    rng = np.random.default_rng(seed)
    rows = []
    for expression, n in counts.items():
        c = expression_index(expression)
        base = loaded.priors.condition(c)
        cond = np.tile(base, (int(n), 1))
        cond[:, AU_SLICE] = rng.random((int(n), AU_SLICE.stop - AU_SLICE.start)) < base[AU_SLICE]
        cond[:, VA_SLICE] = np.clip(
            base[VA_SLICE] + rng.normal(0, 1, (int(n), 2)) * loaded.priors.va_std[c], -1, 1
        )
        rows.append(cond.astype(np.float32))
    conditions = np.concatenate(rows) if rows else np.zeros((0, CONDITION_DIM), np.float32)
    if margin is None:  # the alignment of the models the faces will train
        margin = loaded.config.affect_config.margin
    records = generated_examples(loaded.generator, conditions, margin, seed=seed)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(out), options="GZIP" if out.name.endswith(".gz") else None) as w:
        for record in records:
            w.write(serialize_example(record))
    return out
