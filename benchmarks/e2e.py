"""End to end: image files and a video through ``AffectRecognizer``, stage by stage.

The API path users run (``predict_images`` on a folder, ``predict_video`` on a clip), timed
by the recognizer's own ``attrs["stage_seconds"]`` (decode, detect, align, model, smooth), with
MTCNN as the ``mtcnn`` package runs it (eager Keras calls: the first "before"), compiled
(``MTCNNDetector(compiled=True)``), with O-Net tracking in videos (the second "before"), and
with BlazeFace + face mesh (the default detector now; face-mesh tracking in videos).

Inputs: SynthAffect frames (192 px JPEGs, one face each), a real photograph (skimage's
``astronaut``, 512 px) and a SynthAffect clip (192 px mp4, one face, occluders on some frames).
"""

from __future__ import annotations

from pathlib import Path

STILL_SIZE = 192
VIDEO_SIZE = 192


def write_inputs(out_dir: Path, n_images: int, n_frames: int) -> dict[str, Path]:
    """The folders of still images and the clip (rendered once per run)."""
    from PIL import Image
    from skimage import data

    from affect_tf.data.synth import SynthConfig, iter_frames, write_video

    synth_dir = out_dir / "synth_images"
    synth_dir.mkdir(parents=True, exist_ok=True)
    config = SynthConfig(n=n_images, size=STILL_SIZE, frames_per_video=1, seed=21)
    for i, (_, _, frame) in enumerate(iter_frames(config)):
        Image.fromarray(frame.image).save(synth_dir / f"{i:04d}.jpg", quality=92)
    photo_dir = out_dir / "photo"
    photo_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(photo_dir / "astronaut.jpg", quality=92)
    clip = write_video(
        SynthConfig(n=n_frames, size=VIDEO_SIZE, frames_per_video=n_frames, seed=11),
        out_dir / "clip.mp4",
        fps=30,
    )
    return {"synth_images": synth_dir, "photo": photo_dir, "video": clip}


def _summary(stage_seconds: dict, items: int, faces: int) -> dict:
    total = sum(stage_seconds.values())
    return {
        "items": items,
        "faces": faces,
        "seconds": total,
        "ms_per_item": {k: 1000.0 * v / max(items, 1) for k, v in stage_seconds.items()},
        "share": {k: v / total for k, v in stage_seconds.items()} if total else {},
        "dominant": max(stage_seconds, key=stage_seconds.get) if total else None,
        "items_per_s": items / total if total else 0.0,
        "faces_per_s": faces / total if total else 0.0,
    }


MODES = {
    # name: (detector, its keyword arguments, tracking in videos)
    "mtcnn_eager": ("mtcnn", {"compiled": False}, False),
    "mtcnn_compiled": ("mtcnn", {}, False),
    "mtcnn_compiled_tracking": ("mtcnn", {}, True),
    "blazeface": ("blazeface", {}, False),
    "blazeface_tracking": ("blazeface", {}, True),
}


def measure(model_dir: str | Path, inputs: dict[str, Path], repeats: int = 1) -> dict:
    """``{mode: {"synth_images"|"photo"|"video": summary}}`` for each of ``MODES`` (tracking
    only concerns the video), each after an untimed warm-up pass (first-call tracing is not a
    per-image cost), plus ``speedup`` of each mode over the eager one."""
    from affect_tf.face.registry import make_detector
    from affect_tf.inference import AffectRecognizer

    results: dict[str, dict] = {}
    for mode, (name, kwargs, track) in MODES.items():
        detector = make_detector(name, **kwargs)
        recognizer = AffectRecognizer.load(model_dir, detector=detector)
        per_mode: dict[str, dict] = {}
        for name in () if track else ("synth_images", "photo"):
            recognizer.predict_images(inputs[name])  # warm-up
            stages: dict[str, float] = {}
            images = faces = 0
            # The photo is one image: repeat it so its timing is not one sample.
            rounds = repeats * (10 if name == "photo" else 1)
            for _ in range(rounds):
                table = recognizer.predict_images(inputs[name])
                for k, v in table.attrs["stage_seconds"].items():
                    stages[k] = stages.get(k, 0.0) + v
                images += len({*table["source"]}) + len(table.attrs["skipped"])
                faces += len(table)
            per_mode[name] = _summary(stages, images, faces)
        recognizer.predict_video(inputs["video"], progress=False, max_frames=8, track=track)
        video = recognizer.predict_video(
            inputs["video"], smooth="mean:15", progress=False, track=track
        )
        per_mode["video"] = _summary(
            video.attrs["stage_seconds"], video.attrs["frames"], video.attrs["frames_with_face"]
        )
        per_mode["video"]["frames_tracked"] = video.attrs["frames_tracked"]
        per_mode["video"]["wall_frames_per_s"] = video.attrs["frames"] / video.attrs["seconds"]
        results[mode] = per_mode
    eager = results["mtcnn_eager"]
    results["speedup"] = {
        mode: {
            name: s["items_per_s"] / max(eager[name]["items_per_s"], 1e-12)
            for name, s in results[mode].items()
        }
        for mode in MODES
        if mode != "mtcnn_eager"
    }
    return results
