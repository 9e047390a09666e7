"""Face detectors side by side: faces found on real photos, landmark agreement, speed.

Per detector (``mtcnn``; ``blazeface`` at its default ``min_face=40`` and at ``min_face=20``):

- faces found: skimage's astronaut (1 face), a group photo of her head at 7 sizes
  (``benchmarks.scenes.group_photo``, 1280 x 720), the 100 faces of skimage's ``lfw_subset``
  (25 x 25 grey crops of real people) and its 100 background patches (false positives), and
  SynthAffect renders at 64, 128 and 256 px;
- landmark distance to MTCNN's, in eye distances, on the images where both find one face;
- detection time on the astronaut (512 px) and on the group photo;
- video end to end (decode -> detect/track -> align -> model -> smoothing) through
  ``AffectRecognizer.predict_video`` on a moving-face clip (``benchmarks.scenes``: pan, zoom,
  half occlusion, a second face entering) at 640 x 480 and 1280 x 720: frames/s, frames with a
  face, share of time per stage;
- photos end to end: ``predict_images`` over 32 copies of the astronaut JPEG: photos/s.

    python -m benchmarks.faces [--model runs/demo/serving/affect] [--json OUT] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DETECTORS = {
    # name: (registry name, keyword arguments)
    "mtcnn": ("mtcnn", {}),
    "blazeface": ("blazeface", {}),
    "blazeface_min20": ("blazeface", {"min_face": 20}),
}


def _timed(function, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def real_photos(quick: bool) -> dict[str, list[np.ndarray]]:
    """The photo sets faces are counted on (RGB uint8)."""
    from skimage import data

    from affect_tf.data.synth import SynthConfig, iter_frames
    from benchmarks.scenes import group_photo

    # lfw_subset: 100 faces (25 x 25 grey crops of real people), then 100 background patches
    # (any face found there is a false positive).
    lfw = [np.stack([im] * 3, -1) for im in (data.lfw_subset() * 255).round().astype(np.uint8)]
    n = 50 if quick else 100
    sets = {
        "astronaut": [data.astronaut()],
        "group": [group_photo()[0]],
        "lfw_faces": lfw[:n],
        "lfw_background (false positives)": lfw[100 : 100 + n],
    }
    for size in (64, 128, 256):
        config = SynthConfig(n=16 if quick else 48, size=size, frames_per_video=1, seed=3)
        sets[f"synthaffect_{size}"] = [f.image for _, _, f in iter_frames(config)]
    return sets


def faces_found(detectors: dict, sets: dict) -> dict:
    """Per detector and set: images with at least one face, faces in all; and the landmark
    distance (in eye distances) to MTCNN's where both find exactly one face."""
    found: dict = {}
    single: dict = {name: {} for name in detectors}
    for name, detector in detectors.items():
        found[name] = {}
        for set_name, images in sets.items():
            detections = [detector.detect(im) for im in images]
            found[name][set_name] = {
                "images": len(images),
                "with_face": sum(bool(d) for d in detections),
                "faces": sum(len(d) for d in detections),
            }
            for i, d in enumerate(detections):
                if len(d) == 1:
                    single[name][(set_name, i)] = d[0].landmarks
    distance = {}
    for name in detectors:
        if name == "mtcnn":
            continue
        both = single[name].keys() & single["mtcnn"].keys()
        errors = []
        for key in both:
            ref = single["mtcnn"][key]
            eyes = max(float(np.linalg.norm(ref[1] - ref[0])), 1e-6)
            errors.append(float(np.linalg.norm(single[name][key] - ref, axis=1).mean()) / eyes)
        distance[name] = {
            "images": len(errors),
            "mean_eye_distances": float(np.mean(errors)) if errors else None,
            "median_eye_distances": float(np.median(errors)) if errors else None,
        }
    return {"found": found, "landmark_distance_to_mtcnn": distance}


def detection_ms(detectors: dict, repeats: int) -> dict:
    from skimage import data

    from benchmarks.scenes import group_photo

    astronaut, group = data.astronaut(), group_photo()[0]
    return {
        name: {
            "astronaut_512_ms": _timed(lambda d=d: d.detect(astronaut), repeats),
            "group_1280x720_ms": _timed(lambda d=d: d.detect(group), max(3, repeats // 4)),
        }
        for name, d in detectors.items()
    }


def _stages(table) -> dict:
    seconds = table.attrs["stage_seconds"]
    total = sum(seconds.values())
    return {k: v / total for k, v in seconds.items()} if total else {}


def video(model: str, detectors: dict, work: Path, frames: int) -> dict:
    """End to end on the moving-face clip at two resolutions, tracking on (and, for the
    "before", MTCNN's O-Net tracking)."""
    from affect_tf.inference import AffectRecognizer
    from benchmarks.scenes import write_moving_face_video

    results: dict = {}
    for width, height in ((640, 480), (1280, 720)):
        clip = write_moving_face_video(work / f"clip_{width}x{height}.mp4", width, height, frames)
        key = f"{width}x{height}"
        results[key] = {}
        for name, detector in detectors.items():
            recognizer = AffectRecognizer.load(model, detector=detector)
            recognizer.predict_video(clip, progress=False, max_frames=5)  # warm-up
            table = recognizer.predict_video(clip, smooth="mean:15", progress=False)
            a = table.attrs
            results[key][name] = {
                "frames": a["frames"],
                "frames_with_face": a["frames_with_face"],
                "frames_tracked": a["frames_tracked"],
                "frames_per_s": a["frames"] / a["seconds"],
                "stage_share": _stages(table),
            }
    return results


def photos(model: str, detectors: dict, copies: int) -> dict:
    """``predict_images`` over ``copies`` encoded astronaut JPEGs (decode, detect, align,
    model): photos/s."""
    from PIL import Image
    from skimage import data

    from affect_tf.inference import AffectRecognizer

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=92)
    jpegs = [buffer.getvalue()] * copies
    results = {}
    for name, detector in detectors.items():
        recognizer = AffectRecognizer.load(model, detector=detector)
        recognizer.predict_images(jpegs[:2])  # warm-up
        start = time.perf_counter()
        table = recognizer.predict_images(jpegs)
        seconds = time.perf_counter() - start
        results[name] = {
            "photos": copies,
            "faces": len(table),
            "photos_per_s": copies / seconds,
            "stage_share": _stages(table),
        }
    return results


def measure(model: str, quick: bool = False, work: Path | None = None) -> dict:
    """Every measurement above, with ratios of each BlazeFace setting over MTCNN."""
    from affect_tf.face.registry import make_detector

    work = work or Path(tempfile.mkdtemp(prefix="affect-faces-"))
    detectors = {name: make_detector(n, **kw) for name, (n, kw) in DETECTORS.items()}
    result = {
        "detectors": {name: {"detector": n, **kw} for name, (n, kw) in DETECTORS.items()},
        **faces_found(detectors, real_photos(quick)),
        "detection_ms": detection_ms(detectors, 5 if quick else 20),
        "video": video(model, detectors, work, 60 if quick else 150),
        "photos": photos(model, detectors, 8 if quick else 32),
    }
    result["ratios_over_mtcnn"] = {
        name: {
            "photos_per_s": result["photos"][name]["photos_per_s"]
            / result["photos"]["mtcnn"]["photos_per_s"],
            **{
                f"video_{res}_frames_per_s": result["video"][res][name]["frames_per_s"]
                / result["video"][res]["mtcnn"]["frames_per_s"]
                for res in result["video"]
            },
            "astronaut_detection_speed": result["detection_ms"]["mtcnn"]["astronaut_512_ms"]
            / result["detection_ms"][name]["astronaut_512_ms"],
        }
        for name in DETECTORS
        if name != "mtcnn"
    }
    return result


def markdown(result: dict) -> str:
    """The tables of ``docs/faces.md`` from one result."""
    names = list(result["detectors"])
    sets = list(result["found"][names[0]])
    lines = ["| detector | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
    for name in names:
        cells = [
            f"{f['with_face']}/{f['images']} ({f['faces']} faces)"
            for f in result["found"][name].values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| detector | astronaut 512 px ms | group 1280x720 ms | photos/s end to end | "
        "640x480 video frames/s | 1280x720 video frames/s | landmark distance to MTCNN |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        ms = result["detection_ms"][name]
        distance = result["landmark_distance_to_mtcnn"].get(name, {})
        mean = distance.get("mean_eye_distances")
        video = result["video"]
        lines.append(
            f"| {name} | {ms['astronaut_512_ms']:.1f} | {ms['group_1280x720_ms']:.0f} | "
            f"{result['photos'][name]['photos_per_s']:.1f} | "
            f"{video['640x480'][name]['frames_per_s']:.1f} | "
            f"{video['1280x720'][name]['frames_per_s']:.1f} | "
            + (f"{mean:.3f} eye dist. ({distance['images']} faces)" if mean is not None else "-")
            + " |"
        )
    lines += [
        "",
        "| detector | video | frames with a face | tracked | decode | detect | align | "
        "model | smooth |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res, per in result["video"].items():
        for name in names:
            v = per[name]
            share = v["stage_share"]
            lines.append(
                f"| {name} | {res} | {v['frames_with_face']}/{v['frames']} | "
                f"{v['frames_tracked']} | "
                + " | ".join(
                    f"{100 * share.get(k, 0):.0f} %"
                    for k in ("decode", "detect", "align", "model", "smooth")
                )
                + " |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "demo" / "serving" / "affect"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "faces.json"))
    parser.add_argument("--quick", action="store_true", help="fewer images and frames")
    args = parser.parse_args(argv)
    if not Path(args.model).exists():
        parser.error(f"Expected a model at --model {args.model} (run `make demo` first)")
    result = measure(args.model, args.quick)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(json.dumps(result["ratios_over_mtcnn"], indent=2))
    print(f"JSON -> {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
