"""Serving latency and throughput over loopback, REST vs gRPC, and per-frame video speed.

Starts ``affect-tf serve`` (batching on, ``serving/batching_parameters.txt``) on a pushed model,
then for 1, 8, 32 and 64 concurrent clients sends one face crop per request through
``AffectClient`` for ``--seconds`` each and reports p50/p99 latency, requests/s, errors and the
server's RSS before/after, side by side for the two protocols (ratios gRPC/REST). Then the
hostile part: the server's RSS around image bombs, and the time from removing a corrupt newest
version to a clean status, under 8 clients of load. Then reads a SynthAffect video with
``AffectRecognizer.predict_video`` (detection + alignment + model + smoothing).

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


def rss_mib(pid: int) -> float:
    """A process's resident memory (``VmRSS``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(
    protocol: str,
    ports: tuple[int, int],
    image: bytes,
    clients: int,
    seconds: float,
    pid: int | None = None,
) -> dict:
    """``clients`` threads, each with its own client, one crop per request, for ``seconds``;
    a failed request is counted (and the client goes on), never retried."""
    from affect_tf.serving import AffectClient

    grpc_port, rest_port = ports
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    rss_before = rss_mib(pid) if pid else float("nan")
    # The clock starts once every client is connected and warm (the barrier's action).
    stop = [0.0]
    barrier = threading.Barrier(
        clients, action=lambda: stop.__setitem__(0, time.monotonic() + seconds)
    )

    def run(i: int) -> None:
        client = AffectClient(
            "127.0.0.1", protocol, rest_port=rest_port, grpc_port=grpc_port, retries=0
        )
        client.predict([image])  # connection set-up outside the measurement
        barrier.wait()
        while time.monotonic() < stop[0]:
            start = time.perf_counter()
            try:
                client.predict_raw({"image": np.array([image], dtype=object)})
                latencies[i].append(time.perf_counter() - start)
            except Exception as e:  # noqa: BLE001 - counted: the row reports errors
                errors.append(repr(e)[:200])

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
        "errors": len(errors),
        "first_errors": errors[:3],
        "server_rss_mib_before": rss_before,
        "server_rss_mib_after": rss_mib(pid) if pid else float("nan"),
    }


def hostile(server, base: Path, image: bytes) -> dict:
    """Under 8 clients of load: the server's RSS around 6 bomb requests (a 20000 x 20000 PNG of
    a few hundred KB) and the seconds from removing a corrupt newest version to a clean status."""
    import io
    import shutil

    from PIL import Image

    from affect_tf.serving import AffectClient, ServingClientError

    buffer = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buffer, format="PNG")
    bomb = buffer.getvalue()
    rest = AffectClient("127.0.0.1", "rest", rest_port=server.rest_port, retries=0)
    grpc = AffectClient("127.0.0.1", "grpc", grpc_port=server.grpc_port, retries=0)
    pid = server.process.pid
    result = {"bomb_bytes": len(bomb), "bomb_pixels": 20000 * 20000}
    background = threading.Thread(
        target=lambda: result.update(
            load_during=load("rest", (server.grpc_port, server.rest_port), image, 8, 12.0, pid)
        )
    )
    background.start()
    time.sleep(1.0)
    before = rss_mib(pid)
    refused = 0
    for client in (rest, grpc, rest, grpc, rest, grpc):
        try:
            client.predict_raw({"image": np.array([bomb], dtype=object)})
        except ServingClientError as e:
            refused += "--max_image_pixels" in str(e)
    result.update(
        bombs_refused=refused, rss_mib_before_bombs=before, rss_mib_after_bombs=rss_mib(pid)
    )
    from affect_tf.core.layout import next_version

    bad = next_version(base)  # newer than the serving version: the server wants to load it
    bad.mkdir()
    (bad / "saved_model.pb").write_bytes(os.urandom(5000))
    number = int(bad.name)

    def wait(condition, what: str) -> float:
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > 60:
                raise RuntimeError(f"Expected {what} within 60 s")
            time.sleep(0.05)
        return time.monotonic() - start

    result["seconds_to_report_bad_version"] = wait(
        lambda: any(s["version"] == number and s["error"] for s in rest.status()),
        "the bad version's failure in the status",
    )
    shutil.rmtree(bad)
    result["seconds_to_clean_status_after_removal"] = wait(
        lambda: not any(s["error"] for s in rest.status()), "a clean status"
    )
    background.join()
    return result


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

    import shutil
    import tempfile

    from affect_tf.data.synth import SynthConfig, video_records
    from affect_tf.serving.server import launch

    image = video_records(SynthConfig(n=1, size=96, seed=1), 0)[0].image
    # A copy of the model's newest version: the hostile part adds and removes a bad version.
    from affect_tf.core.layout import latest_version

    base = Path(tempfile.mkdtemp(prefix="affect_bench_serving_")) / "affect"
    newest = latest_version(args.model)
    shutil.copytree(newest, base / newest.name)
    server = launch(
        [
            f"--model_base_path={base}",
            "--enable_batching",
            f"--batching_parameters_file={ROOT / 'serving' / 'batching_parameters.txt'}",
            "--file_system_poll_wait_seconds=0.2",
        ]
    )
    pid = server.process.pid
    try:
        rows = [
            load(protocol, (server.grpc_port, server.rest_port), image, clients, args.seconds, pid)
            for clients in (1, 8, 32, 64)
            for protocol in ("rest", "grpc")
        ]
        chaos = hostile(server, base, image)
    finally:
        server.stop()
        shutil.rmtree(base.parent, ignore_errors=True)
    video = video_speed(args.model)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}",
        "model": args.model,
        "image_bytes": len(image),
        "load": rows,
        "hostile": chaos,
        "video": video,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(
        "| clients | protocol | p50 ms | p99 ms | req/s | gRPC/REST req/s | errors | server RSS MiB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    by = {(r["clients"], r["protocol"]): r for r in rows}
    for r in rows:
        ratio = (
            by[(r["clients"], "grpc")]["requests_per_s"]
            / by[(r["clients"], "rest")]["requests_per_s"]
        )
        print(
            f"| {r['clients']} | {r['protocol']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['requests_per_s']:.0f} | {ratio:.2f}x | {r['errors']} | "
            f"{r['server_rss_mib_before']:.0f} -> {r['server_rss_mib_after']:.0f} |"
        )
    during = chaos["load_during"]
    print(
        f"bombs: {chaos['bombs_refused']}/6 refused ({chaos['bomb_bytes'] / 1e3:.0f} KB PNG, "
        f"{chaos['bomb_pixels'] / 1e6:.0f} MP); server RSS {chaos['rss_mib_before_bombs']:.0f} -> "
        f"{chaos['rss_mib_after_bombs']:.0f} MiB. Bad version reported in "
        f"{chaos['seconds_to_report_bad_version']:.2f} s, status clean "
        f"{chaos['seconds_to_clean_status_after_removal']:.2f} s after its removal. Load meanwhile "
        f"(8 REST clients): {during['requests']} requests, {during['errors']} errors, p99 "
        f"{during['p99_ms']:.0f} ms"
    )
    print(
        f"video: {video['frames']} frames ({video['frames_with_face']} with a face) at "
        f"{video['frames_per_s']:.1f} frames/s ({video['ms_per_frame']:.0f} ms/frame)"
    )
    print(f"JSON -> {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
