"""Serving latency and throughput over loopback, REST vs gRPC, and per-frame video speed.

Starts ``affect-tf serve`` (batching on, ``serving/batching_parameters.txt``) on a pushed model,
then for 1, 8 and 32 concurrent clients sends one face crop per request through
``AffectClient`` for ``--seconds`` each and reports p50/p99 latency and requests/s, side by side
for the two protocols (ratios gRPC/REST). Then reads a SynthAffect video with
``AffectRecognizer.predict_video`` (MTCNN every frame + alignment + model + smoothing).

    python -m benchmarks.serving [--model runs/demo/serving/affect] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load(protocol: str, ports: tuple[int, int], image: bytes, clients: int, seconds: float) -> dict:
    """``clients`` threads, each with its own client, one crop per request, for ``seconds``."""
    from affect_tf.serving import AffectClient

    grpc_port, rest_port = ports
    latencies: list[list[float]] = [[] for _ in range(clients)]
    # The clock starts once every client is connected and warm (the barrier's action).
    stop = [0.0]
    barrier = threading.Barrier(
        clients, action=lambda: stop.__setitem__(0, time.monotonic() + seconds)
    )

    def run(i: int) -> None:
        client = AffectClient("127.0.0.1", protocol, rest_port=rest_port, grpc_port=grpc_port)
        client.predict([image])  # connection set-up outside the measurement
        barrier.wait()
        while time.monotonic() < stop[0]:
            start = time.perf_counter()
            client.predict_raw({"image": np.array([image], dtype=object)})
            latencies[i].append(time.perf_counter() - start)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - (stop[0] - seconds)
    flat = np.array([x for per in latencies for x in per]) * 1000
    return {
        "protocol": protocol,
        "clients": clients,
        "requests": int(flat.size),
        "p50_ms": float(np.percentile(flat, 50)),
        "p99_ms": float(np.percentile(flat, 99)),
        "requests_per_s": float(flat.size / wall),
    }


def video_speed(model: str, frames: int = 120) -> dict:
    from affect_tf.data.synth import SynthConfig, write_video
    from affect_tf.inference import AffectRecognizer

    config = SynthConfig(n=frames, size=192, frames_per_video=frames, seed=5)
    path = write_video(config, Path("/tmp/affect_bench_clip.mp4"), fps=25)
    recognizer = AffectRecognizer.load(model)
    recognizer.predict_video(path, progress=False, max_frames=5)  # warm: MTCNN, tracing
    table = recognizer.predict_video(path, smooth="mean:15", progress=False)
    seconds = table.attrs["seconds"]
    return {
        "frames": int(table.attrs["frames"]),
        "frames_with_face": int(table.attrs["frames_with_face"]),
        "size": 192,
        "seconds": seconds,
        "frames_per_s": table.attrs["frames"] / seconds,
        "ms_per_frame": 1000 * seconds / table.attrs["frames"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "demo" / "serving" / "affect"))
    parser.add_argument("--seconds", type=float, default=6.0, help="per protocol and level")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "serving.json"))
    args = parser.parse_args(argv)

    from affect_tf.data.synth import SynthConfig, video_records
    from affect_tf.serving.server import launch

    image = video_records(SynthConfig(n=1, size=96, seed=1), 0)[0].image
    server = launch(
        [
            f"--model_base_path={args.model}",
            "--enable_batching",
            f"--batching_parameters_file={ROOT / 'serving' / 'batching_parameters.txt'}",
        ]
    )
    try:
        rows = [
            load(protocol, (server.grpc_port, server.rest_port), image, clients, args.seconds)
            for clients in (1, 8, 32)
            for protocol in ("rest", "grpc")
        ]
    finally:
        server.stop()
    video = video_speed(args.model)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}",
        "model": args.model,
        "image_bytes": len(image),
        "load": rows,
        "video": video,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print("| clients | protocol | p50 ms | p99 ms | req/s | gRPC/REST req/s |")
    print("|---:|---|---:|---:|---:|---:|")
    by = {(r["clients"], r["protocol"]): r for r in rows}
    for r in rows:
        ratio = (
            by[(r["clients"], "grpc")]["requests_per_s"]
            / by[(r["clients"], "rest")]["requests_per_s"]
        )
        print(
            f"| {r['clients']} | {r['protocol']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['requests_per_s']:.0f} | {ratio:.2f}x |"
        )
    print(
        f"video: {video['frames']} frames ({video['frames_with_face']} with a face) at "
        f"{video['frames_per_s']:.1f} frames/s ({video['ms_per_frame']:.0f} ms/frame)"
    )
    print(f"JSON -> {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
