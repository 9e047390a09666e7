"""Server-side batching (TF Serving's ``--enable_batching``): parameters and the batcher.

Concurrent requests to one signature are merged into one model call of at most
``max_batch_size`` rows, waiting at most ``batch_timeout_micros`` for a batch to fill, on
``num_batch_threads`` threads; each caller gets its own rows back.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable

import grpc
import numpy as np

from affect_tf.serving.errors import ServingError

log = logging.getLogger("affect_tf.serving")


# A version being unloaded closes its batcher once no request has been queued for this long.
IDLE_TO_CLOSE = 0.2


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's ``BatchingParameters`` (``--batching_parameters_file``) that apply here.

    Attributes:
        max_batch_size: Most rows one model call takes; a larger request is refused.
        batch_timeout_micros: How long the first request of a batch waits for company.
        num_batch_threads: Batches run in parallel.
        max_enqueued_batches: Queue depth (in batches) beyond which requests get UNAVAILABLE.
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100

    @classmethod
    def parse(cls, text: str, source: str = "batching parameters") -> BatchingParameters:
        """Parses the text-proto file (``max_batch_size { value: 32 }`` or ``key: value``)."""
        values: dict[str, int] = {}
        fields = {f.name for f in dataclasses.fields(cls)}
        ignored = {
            "pad_variable_length_inputs",
            "allowed_batch_sizes",
            "enable_large_batch_splitting",
        }
        text = re.sub(r"#.*", "", text)
        entry = re.compile(r"(\w+)\s*(?::\s*|\{\s*value\s*:\s*)([\w.\-]+)\s*\}?")
        leftover = entry.sub("", text).strip()
        if leftover:  # a malformed file used to fall back to the defaults without a word
            raise ValueError(
                "Expected BatchingParameters text proto entries such as "
                f"'max_batch_size {{ value: 32 }}'. Received: {leftover[:60]!r} in {source}"
            )
        for key, value in entry.findall(text):
            if key in ignored:
                continue
            if key not in fields:
                raise ValueError(
                    f"Expected batching parameters among {sorted(fields | ignored)}. "
                    f"Received: {key}={value} in {source}"
                )
            try:
                values[key] = int(value)
            except ValueError:
                raise ValueError(
                    f"Expected an integer for {key}. Received: {key}={value} in {source}"
                ) from None
            if values[key] < 1:
                raise ValueError(f"Expected {key} >= 1. Received: {key}={value} in {source}")
        return cls(**values)


class Batcher:
    """Merges concurrent requests to one signature into batches (TF Serving's basic batching).

    The first queued request waits at most ``batch_timeout_micros`` for others, up to
    ``max_batch_size`` rows in all; the merged inputs run once and each request gets its rows
    back. If a merged batch fails, its requests run one by one, so a bad request fails alone.
    """

    def __init__(self, fn: Callable[[dict], dict], params: BatchingParameters, name: str) -> None:
        self._fn = fn
        self._name = name
        self.params = params
        self._queue: list[tuple[dict, int, _Result]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0  # batches running now
        self.batches = 0
        self.rows = 0
        self._threads = [
            threading.Thread(target=self._loop, name=f"batch-{name}-{i}", daemon=True)
            for i in range(params.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values())))
        result = _Result()
        with self._cond:
            if self._closed:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE, "The servable version is being unloaded; retry"
                )
            queued = sum(r for _, r, _ in self._queue)
            limit = self.params.max_enqueued_batches * self.params.max_batch_size
            if queued + rows > limit:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"The batch scheduling queue is full ({queued} rows queued, limit {limit})",
                )
            self._queue.append((inputs, rows, result))
            self._cond.notify()
        return result.wait()

    def close(self, drain_seconds: float = 10.0) -> None:
        """Drains, then stops the batch threads. Requests queued or still arriving (callers
        that resolved this version just before it was unloaded) run until the queue has been
        idle for ``IDLE_TO_CLOSE`` seconds, as TF Serving keeps a version alive while requests
        hold it; whatever is still queued after ``drain_seconds`` fails at once with
        UNAVAILABLE, so no caller waits forever."""
        deadline = time.monotonic() + drain_seconds
        idle_since = None
        with self._cond:
            while time.monotonic() < deadline:
                if self._queue or self._busy:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= IDLE_TO_CLOSE:
                    break
                self._cond.wait(0.02)
            self._closed = True
            queued, self._queue = self._queue, []
            self._cond.notify_all()
        for _, _, result in queued:
            result.fail(
                ServingError(
                    grpc.StatusCode.UNAVAILABLE,
                    "The servable version was unloaded before the request ran; retry",
                )
            )
        for thread in self._threads:  # each ends after the batch it is running
            if thread is not threading.current_thread():
                thread.join(timeout=max(1.0, deadline - time.monotonic()))

    def _take(self) -> list[tuple[dict, int, _Result]] | None:
        """The next batch (None once closed). Several batch threads wait here together, so the
        queue another thread emptied while this one waited for the batch to fill means: wait
        again (this used to pop from an empty list and end the thread)."""
        timeout = self.params.batch_timeout_micros / 1e6
        with self._cond:
            while True:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return None
                deadline = time.monotonic() + timeout
                while sum(r for _, r, _ in self._queue) < self.params.max_batch_size:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed:
                        break
                    self._cond.wait(left)
                batch, total = [], 0
                while self._queue and total + self._queue[0][1] <= self.params.max_batch_size:
                    item = self._queue.pop(0)
                    batch.append(item)
                    total += item[1]
                if not batch and self._queue:  # one request over max_batch_size: alone
                    batch.append(self._queue.pop(0))
                if batch:
                    self._busy += 1
                    return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run_batch(batch)
            except BaseException as e:  # noqa: BLE001 - the thread must outlive any batch
                log.exception("batch thread %s: a batch failed unexpectedly", self._name)
                for _, _, result in batch:
                    result.fail(e)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _run_batch(self, batch: list[tuple[dict, int, _Result]]) -> None:
        self.batches += 1
        self.rows += sum(r for _, r, _ in batch)
        if len(batch) == 1:
            self._run_one(batch[0])
            return
        merged = {k: np.concatenate([b[0][k] for b in batch]) for k in batch[0][0]}
        try:
            outputs = self._fn(merged)
        except Exception:  # noqa: BLE001 - each request then gets its own answer
            for item in batch:
                self._run_one(item)
            return
        start = 0
        for _, rows, result in batch:
            result.set({k: v[start : start + rows] for k, v in outputs.items()})
            start += rows

    def _run_one(self, item: tuple[dict, int, _Result]) -> None:
        inputs, _, result = item
        try:
            result.set(self._fn(inputs))
        except Exception as e:  # noqa: BLE001 - handed to the waiting request thread
            result.fail(e)


class _Result:
    """One request's answer, handed from a batch thread to the waiting request thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._value: dict | None = None
        self._error: BaseException | None = None

    def set(self, value: dict) -> None:
        self._value = value
        self._event.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    def wait(self) -> dict:
        self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
