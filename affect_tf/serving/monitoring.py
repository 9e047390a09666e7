"""Request counters and latencies in Prometheus text format (TF Serving's monitoring endpoint,
``--monitoring_config_file`` with ``prometheus_config { enable: true path: "..." }``)."""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from pathlib import Path

DEFAULT_PATH = "/monitoring/prometheus/metrics"
# Upper bounds (seconds) of the latency histogram.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def read_monitoring_config(path: str | Path) -> str | None:
    """The metrics path a ``MonitoringConfig`` text proto enables, or None when disabled."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Expected a monitoring config file. Received: {str(path)!r} (not found)")
    text = re.sub(r"#.*", "", path.read_text())
    if not re.search(r"enable\s*:\s*true", text):
        return None
    match = re.search(r'path\s*:\s*"([^"]+)"', text)
    return match.group(1) if match else DEFAULT_PATH


class Metrics:
    """Thread-safe request count, latency histogram and batch sizes per model and API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str, str], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sum: dict[tuple[str, str], float] = defaultdict(float)
        self._n: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, model: str, api: str, status: str, seconds: float) -> None:
        with self._lock:
            self._count[(model, api, status)] += 1
            key = (model, api)
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[key][i] += 1
            self._sum[key] += seconds
            self._n[key] += 1

    def render(self) -> str:
        lines = [
            "# TYPE :tensorflow:serving:request_count counter",
        ]
        with self._lock:
            for (model, api, status), n in sorted(self._count.items()):
                lines.append(
                    f':tensorflow:serving:request_count{{model_name="{model}",api="{api}",'
                    f'status="{status}"}} {n}'
                )
            lines.append("# TYPE :tensorflow:serving:request_latency histogram")
            for (model, api), counts in sorted(self._buckets.items()):
                labels = f'model_name="{model}",API="{api}"'
                for bound, n in zip(BUCKETS, counts, strict=True):
                    lines.append(
                        f':tensorflow:serving:request_latency_bucket{{{labels},le="{bound}"}} {n}'
                    )
                n = self._n[(model, api)]
                lines.append(
                    f':tensorflow:serving:request_latency_bucket{{{labels},le="+Inf"}} {n}'
                )
                lines.append(
                    f":tensorflow:serving:request_latency_sum{{{labels}}} {self._sum[(model, api)]}"
                )
                lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {n}")
        return "\n".join(lines) + "\n"
