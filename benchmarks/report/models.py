"""The page's model sections: machine, inference speed, sizes and cost, the peer, training, memory."""

from __future__ import annotations

from benchmarks.models import RUNTIMES
from benchmarks.report.cells import RUNTIME_LABELS, mb, num, table


def machine(results: dict) -> list[str]:
    m, peak = results["machine"], results["peak"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return [
        f"- **CPU**: {m['cpu']}, {m['usable_cpus']} usable cores ({m['logical_cpus']} logical), "
        f"SIMD {', '.join(m['simd']) or 'none'}; {m['memory_gib']} GiB RAM; no GPU visible"
        if not results.get("gpus")
        else f"- **CPU**: {m['cpu']}; GPUs: {', '.join(results['gpus'])}",
        f"- **OS**: {m['os']}, Python {m['python']}; {versions}",
        f"- **Measured peak**: {num(peak['gflops'])} GFLOP/s float32 "
        f"({peak['n']}x{peak['n']} matmul; TensorFlow {num(peak['tensorflow_gflops'])}, "
        f'NumPy {num(peak["numpy_gflops"])}), the denominator of every "% of peak" below',
        f"- **Run**: `{results['command'].strip()}` on {results['date']}, {num(results['seconds'] / 60)} "
        f"min{' (--quick: shorter timings, fewer presets, no pipeline run)' if results['quick'] else ''}",
    ]


def inference(results: dict) -> list[str]:
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
                    num(b1["p50_ms"], 2),
                    num(b1["p99_ms"], 2),
                    num(b1["per_s"], 0),
                    num(b32["p50_ms"], 2),
                    num(b32["p99_ms"], 2),
                    num(b32["per_s"], 0),
                    num(100 * flops * best / 1e9 / peak, 1),
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
    return table(header, rows)


def files(results: dict) -> list[str]:
    rows = []
    for preset, r in results["presets"].items():
        b = r["bytes"]
        rows.append(
            [
                f"`{preset}`",
                r["backbone"],
                str(r["image_size"]),
                f"{r['params'] / 1e6:.2f} M",
                num(r["flops_per_face"] / 1e6, 1),
                mb(b.get("saved_model")),
                mb(b.get("keras")),
                mb(b.get("tflite_fp32")),
                mb(b.get("tflite_fp16")),
                mb(b.get("tflite_int8")),
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
                num(peer["flops_per_face"] / 1e6, 1),
                "–",
                mb(peer["bytes"]["keras"]) + " (.hdf5)",
                "–",
                "–",
                mb(peer["bytes"]["tflite"]) + " (quantized)",
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
    return table(header, rows)


# Ours vs the peer, like for like: the same runtime kind at the same batch.

PEER_PAIRS = (
    ("keras_predict", "keras_predict", "Keras `model.predict`"),
    ("keras_predict_on_batch", "keras_predict_on_batch", "Keras `predict_on_batch`"),
    ("tflite_int8", "tflite_quantized", "TFLite int8 vs fer's quantized .tflite"),
    ("tflite_fp32", "tflite_quantized", "TFLite fp32 vs fer's quantized .tflite"),
)


def peer(results: dict) -> list[str]:
    peer = results.get("peer")
    if not peer or "error" in peer:
        return [f"Peer not measured: {peer.get('error') if peer else 'skipped'}."]
    rows = []
    for name in ("keras_predict", "keras_predict_on_batch", "tflite_quantized"):
        run = peer["runs"][name]
        rows.append(
            [
                f"fer `{name}`",
                num(run["b1"]["p50_ms"], 2),
                num(run["b1"]["per_s"], 0),
                num(run["b32"]["per_s"], 0),
            ]
        )
    lines = table(["peer runtime", "b1 p50 ms", "b1 faces/s", "b32 faces/s"], rows)
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
                    num(
                        r["inference"][ours]["b1"]["per_s"] / peer["runs"][theirs]["b1"]["per_s"], 2
                    ),
                    num(
                        r["inference"][ours]["b32"]["per_s"] / peer["runs"][theirs]["b32"]["per_s"],
                        2,
                    ),
                    num(r["flops_per_face"] / peer["flops_per_face"], 1),
                ]
            )
    lines += table(
        ["preset", "pair", "ratio b1", "ratio b32", "FLOPs ratio (ours/fer)"], ratio_rows
    )
    return lines


def training(results: dict) -> list[str]:
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
                num(t["p50_ms"], 0),
                num(t["per_s"], 1),
                num(share, 1),
            ]
        )
    return table(
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


def memory(results: dict) -> list[str]:
    labels = {
        "baseline": "`import tensorflow` (every TF process)",
        "inference": "inference: load SavedModel, MTCNN + align + model over the JPEG folder",
        "pipeline": "demo TFX pipeline (LocalDagRunner, every component in one process)",
    }
    rows = [
        [labels[k], num(v["peak_rss_mib"], 0), num(v["seconds"], 0), str(v["returncode"])]
        for k, v in results["memory"].items()
    ]
    if "pipeline" not in results["memory"]:
        rows.append([labels["pipeline"], "not run (--quick or --no-pipeline)", "–", "–"])
    return table(["workload", "peak RSS MiB", "seconds", "exit"], rows)
