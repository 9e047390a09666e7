"""Packs the shipped model's training data as arrays for a machine without TensorFlow.

The shipped model (``affect_tf/model/shipped``, docs/results.md "shipped model") was trained
on a GPU machine whose image has JAX but no TensorFlow and no network, and whose upload limit
is 64 MiB. This writes what ``benchmarks.shipped_train`` reads there, made here by the
package's own readers and its one preprocessing (``affect_tf.data.preprocess``), so the faces
the model trains on are exactly what ``affect-tf predict`` feeds it:

- ``ferplus.npz``: FER+ Train and Valid (the README's majority-vote rules,
  ``affect_tf.data.ferplus``): the 48 x 48 grey pixels (lossless WebP: 1.6 kB a face against
  2.3 kB raw, which zlib barely shrinks), the packed expression targets
  (``affect_tf.data.targets``: class, mask, the 10 annotators' vote distribution).
- ``align.npz``: ``--detector none`` alignment of a 48 x 48 face to the model's crop is one
  fixed linear map (bilinear warp, zero border): stored sparse, measured by pushing each of the
  2,304 unit images through ``preprocess_array``, and checked against it on real faces.
- ``synth.npz``: SynthAffect faces already aligned at the model's size (JPEG at quality 95,
  as the corpus itself stores its frames; 2.4 kB against 12 kB raw) with all three targets.

Needs FER+ (``../shared/data/ferplus``); without it, says so and exits 0.

    python -m benchmarks.shipped_data --out .devdata --synth SYNTH.tfrecord.gz
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from benchmarks.ferplus_defaults import FERPLUS

log = logging.getLogger("benchmarks.shipped_data")
FER_SIZE = 48


def encode(images: np.ndarray, ext: str, params: list[int]) -> dict[str, np.ndarray]:
    """Images -> one byte blob and the offsets of each image in it (``decode`` reverses it)."""
    import cv2

    chunks = [cv2.imencode(ext, image, params)[1].tobytes() for image in images]
    offsets = np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64)
    return {"blob": np.frombuffer(b"".join(chunks), np.uint8), "offsets": offsets}


def ferplus_arrays(root: Path, split: str) -> dict[str, np.ndarray]:
    """One FER+ split: ``x`` (N, 48, 48) uint8 grey, ``expression`` (N, 10) packed targets."""
    import cv2

    from affect_tf.data.ferplus import read_ferplus

    pixels, rows = [], []
    for sample in read_ferplus(root, split):
        image = cv2.imread(str(sample.path), cv2.IMREAD_GRAYSCALE)
        if image is None or image.shape != (FER_SIZE, FER_SIZE):
            raise ValueError(f"Expected a 48 x 48 FER image. Received: {sample.path}")
        pixels.append(image)
        rows.append([sample.expression, 1.0, *sample.expression_dist])
    return {"x": np.stack(pixels), "expression": np.asarray(rows, np.float32)}


def alignment_map(size: int, margin: float) -> dict[str, np.ndarray]:
    """The linear map 48 x 48 grey -> (size, size) of ``--detector none`` alignment, sparse.

    Returns ``index`` and ``weight`` ``(size * size, K)``: output pixel p is
    ``sum_k weight[p, k] * x.flat[index[p, k]]`` (K = 4 for a bilinear warp).
    """
    from affect_tf.data.preprocess import preprocess_array
    from affect_tf.face.whole import WholeImageDetector

    blank = np.zeros((FER_SIZE, FER_SIZE, 3), np.float32)
    blank[0, 0] = 1.0  # any non-uniform image: the whole-image landmarks depend on size only
    landmarks = WholeImageDetector().detect_one((blank * 255).astype(np.uint8)).landmarks
    columns = np.zeros((size * size, FER_SIZE * FER_SIZE), np.float32)
    for i in range(FER_SIZE * FER_SIZE):
        unit = np.zeros((FER_SIZE, FER_SIZE, 3), np.float32)
        unit.reshape(-1, 3)[i] = 255.0
        columns[:, i] = preprocess_array(unit, landmarks, size, margin).numpy()[..., 0].reshape(-1)
    columns /= 255.0
    k = int((columns > 0).sum(axis=1).max())
    index = np.argsort(-columns, axis=1)[:, :k]
    weight = np.take_along_axis(columns, index, axis=1)
    return {"index": index.astype(np.int32), "weight": weight, "landmarks": landmarks}


def apply_alignment(x: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``(N, 48, 48)`` grey -> ``(N, S, S)`` float32, the aligned crops (one channel)."""
    flat = x.reshape(len(x), -1).astype(np.float32)
    side = int(round(np.sqrt(len(index))))
    out = np.einsum("npk,pk->np", flat[:, index], weight)
    return out.reshape(len(x), side, side)


def check_alignment(x: np.ndarray, align: dict, size: int, margin: float) -> float:
    """Largest difference (grey levels) between the map and ``preprocess_array`` on faces."""
    from affect_tf.data.preprocess import preprocess_array

    mapped = apply_alignment(x, align["index"], align["weight"])
    worst = 0.0
    for face, fast in zip(x, mapped, strict=True):
        rgb = np.repeat(face[..., None].astype(np.float32), 3, axis=-1)
        slow = preprocess_array(rgb, align["landmarks"], size, margin).numpy()
        worst = max(worst, float(np.abs(slow[..., 0] - fast).max()))
    return worst


def synth_arrays(files: list[str], size: int, margin: float) -> dict[str, np.ndarray]:
    """SynthAffect tf.Examples -> aligned uint8 faces and the packed targets."""
    from affect_tf.data.dataset import make_dataset

    parts: dict[str, list] = {"x": [], "va": [], "expression": [], "au": []}
    for images, targets in make_dataset(files, size, margin, batch_size=256, cache=False):
        parts["x"].append(np.clip(np.round(images.numpy()), 0, 255).astype(np.uint8))
        for task in ("va", "expression", "au"):
            parts[task].append(targets[task].numpy().astype(np.float32))
    return {k: np.concatenate(v) for k, v in parts.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the .npz files")
    p.add_argument("--synth", nargs="+", required=True, help="SynthAffect .tfrecord.gz files")
    p.add_argument("--size", type=int, default=64, help="the model's input side")
    p.add_argument("--margin", type=float, default=0.25, help="the model's alignment margin")
    p.add_argument("--ferplus", default=str(FERPLUS), help="FER+ folder")
    p.add_argument("--synth-max", type=int, default=3000, help="SynthAffect faces to keep")
    args = p.parse_args(argv)
    import cv2

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = Path(args.ferplus)
    if not (root / "FER2013Train" / "label.csv").is_file():
        print(f"FER+ not found at {root}: nothing packed (see ../shared/data/ferplus/README.md)")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    train, valid = ferplus_arrays(root, "train"), ferplus_arrays(root, "validation")
    align = alignment_map(args.size, args.margin)
    worst = check_alignment(valid["x"][:64], align, args.size, args.margin)
    if worst > 0.01:
        raise SystemExit(f"Expected the alignment map to match preprocess_array. Received: {worst}")
    log.info(
        "FER+ train %d, valid %d; alignment map checked (max diff %.2g)",
        len(train["x"]),
        len(valid["x"]),
        worst,
    )
    lossless = [cv2.IMWRITE_WEBP_QUALITY, 101]
    arrays = {}
    for split, part in (("train", train), ("valid", valid)):
        packed = encode(part["x"], ".webp", lossless)
        arrays.update({f"{split}_blob": packed["blob"], f"{split}_offsets": packed["offsets"],
                       f"{split}_expression": part["expression"]})  # fmt: skip
    np.savez(out / "ferplus.npz", **arrays)
    np.savez_compressed(
        out / "align.npz",
        index=align["index"],
        weight=align["weight"],
        size=args.size,
        margin=args.margin,
    )
    synth = synth_arrays(args.synth, args.size, args.margin)
    synth = {k: v[: args.synth_max] for k, v in synth.items()}
    packed = encode(synth.pop("x")[..., ::-1], ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])  # RGB->BGR
    np.savez(out / "synth.npz", blob=packed["blob"], offsets=packed["offsets"], **synth)
    sizes = {f.name: round(f.stat().st_size / 2**20, 1) for f in sorted(out.glob("*.npz"))}
    log.info("synth %d faces; wrote %s MiB in %.0f s", len(synth["va"]), sizes, time.time() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
