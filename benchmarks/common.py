"""What every benchmark shares: the clock, the machine's description and its measured peak.

Latency is taken call by call (``time.perf_counter``) after warm-up calls; throughput is items
over the summed wall time of the timed calls. The peak is a float32 matmul large enough to
keep every core busy, timed in the same process as the models it is compared with.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np


def time_calls(
    fn: Callable[[], object],
    items_per_call: int = 1,
    warmup: int = 3,
    min_calls: int = 10,
    min_seconds: float = 1.0,
    max_calls: int = 100_000,
) -> dict:
    """Times ``fn`` call by call after ``warmup`` untimed calls.

    Runs at least ``min_calls`` calls and at least ``min_seconds``, at most ``max_calls``.

    Returns:
        ``calls``, ``seconds``, ``p50_ms``, ``p99_ms``, ``mean_ms``, ``min_ms`` (per call) and
        ``per_s`` (items per second: ``items_per_call`` times calls over the timed seconds).
    """
    for _ in range(warmup):
        fn()
    latencies = []
    start = time.perf_counter()
    while len(latencies) < max_calls and (
        len(latencies) < min_calls or time.perf_counter() - start < min_seconds
    ):
        t = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - t)
    ms = np.asarray(latencies) * 1000.0
    seconds = float(ms.sum() / 1000.0)
    return {
        "calls": int(ms.size),
        "seconds": seconds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "per_s": items_per_call * ms.size / seconds,
    }


def describe_machine() -> dict:
    """CPU model and features, cores usable by this process, memory, OS and library versions."""
    cpu, flags = None, set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu is None:
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
    versions = {}
    for name in ("tensorflow", "keras", "ai_edge_litert", "numpy", "mtcnn"):
        try:
            versions[name] = version(name.replace("_", "-"))
        except Exception:  # noqa: BLE001 - a missing package is reported as such
            versions[name] = None
    return {
        "cpu": cpu or platform.processor() or "unknown",
        "simd": sorted(
            f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_vnni", "amx_tile"}
        ),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def peak_matmul(n: int = 2048, seconds: float = 3.0) -> dict:
    """The CPU's attainable float32 FLOP/s: an ``n x n`` matmul in TensorFlow (the runtime our
    models use) and in NumPy's BLAS, best of the two.

    Returns:
        ``gflops`` (the peak used for ratios), ``tensorflow_gflops``, ``numpy_gflops``, ``n``.
    """
    import tensorflow as tf

    flops = 2.0 * n**3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = tf.constant(a), tf.constant(b)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)[0, :1]))
    tf_run = time_calls(lambda: matmul(ta, tb).numpy(), warmup=2, min_calls=3, min_seconds=seconds)
    np_run = time_calls(lambda: a @ b, warmup=1, min_calls=3, min_seconds=seconds / 2)
    # The best call, not the median: the peak is what the hardware can do, and a neighbour
    # on a shared machine only ever makes a call slower.
    tf_gflops = flops / (tf_run["min_ms"] / 1000.0) / 1e9
    np_gflops = flops / (np_run["min_ms"] / 1000.0) / 1e9
    return {
        "gflops": max(tf_gflops, np_gflops),
        "tensorflow_gflops": tf_gflops,
        "numpy_gflops": np_gflops,
        "n": n,
    }


def count_flops(fn: Callable, input_shape: tuple[int, ...]) -> int:
    """Float operations of one call of ``fn`` on a float32 input of ``input_shape``.

    TensorFlow's graph profiler over the function with its variables frozen to constants;
    a multiply-add counts 2 (so EfficientNet-B0 at 224 px reads ~0.8 GFLOPs = 0.39 GMACs).
    """
    import contextlib
    import io

    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = tf.function(fn).get_concrete_function(tf.TensorSpec(input_shape, tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        info = tf.compat.v1.profiler.profile(
            graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
    return int(info.total_float_ops)


def folder_bytes(path: str | Path) -> int:
    """Total size of the files under ``path`` (or of the file itself)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_section(path: str | Path, key: str, text: str, title: str = "# Results") -> Path:
    """Writes ``text`` as the section ``key`` of a markdown page, keeping the other sections.

    Each benchmark that reports into a shared page (``docs/results.md``) owns the text between
    ``<!-- section:KEY -->`` and ``<!-- /section:KEY -->``; a new section goes at the end.
    """
    path = Path(path)
    start, end = f"<!-- section:{key} -->", f"<!-- /section:{key} -->"
    block = f"{start}\n{text.strip()}\n{end}\n"
    page = path.read_text() if path.is_file() else f"{title}\n\n"
    if start in page and end in page:
        before, rest = page.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        page = before + block + ("\n" + after if after else "")
    else:
        page = page.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
