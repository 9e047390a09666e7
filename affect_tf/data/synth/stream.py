"""SynthAffect streamed: serialized tf.Examples rendered on the fly, never written to disk.

Video ``v`` of a config is the same frames wherever and whenever it is rendered (its random
stream is ``(seed, v)``), so a stream of videos ``[first, end)`` is deterministic whatever the
number of processes, and a resumed run renders exactly the videos it has not trained on yet.
Rendering runs in "spawn" worker processes a bounded number of chunks ahead of the consumer
(memory stays flat however long the stream is); results come back in video order.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from affect_tf.data.synth.corpus import video_records
from affect_tf.data.synth.labels import SynthConfig

CHUNK_VIDEOS = 8  # videos per task sent to a worker: amortises the inter-process traffic


def video_examples(config: SynthConfig, first: int, end: int) -> list[bytes]:
    """Serialized tf.Examples of videos ``[first, end)``, every frame of each (``config.n``
    is ignored)."""
    from affect_tf.data.examples import serialize_example

    config = dataclasses.replace(config, n=end * config.frames_per_video)
    return [
        serialize_example(record) for v in range(first, end) for record in video_records(config, v)
    ]


def _exit_with_parent(parent: int) -> None:
    """Ends this worker when the process that started it is gone (a consumer killed by SIGTERM or
    SIGKILL runs no cleanup; its workers would go on rendering and then wait forever)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _chunk(args: tuple[SynthConfig, int, int]) -> list[bytes]:
    return video_examples(*args)


def stream_chunks(
    config: SynthConfig, first_video: int, end_video: int, workers: int = 1
) -> Iterator[list[bytes]]:
    """Serialized tf.Examples of videos ``[first_video, end_video)`` in order, as lists of
    ``CHUNK_VIDEOS`` videos' frames (one hand-over per chunk: what a ``tf.data`` generator
    wants, whose every call wakes TensorFlow's threads).

    Args:
        config: The generator settings (``config.n`` is ignored: the range says how much).
        first_video, end_video: Which videos.
        workers: Rendering processes (0 or 1: render in this process).
    """
    chunks = [
        (config, start, min(start + CHUNK_VIDEOS, end_video))
        for start in range(first_video, end_video, CHUNK_VIDEOS)
    ]
    if workers <= 1:
        for chunk in chunks:
            yield _chunk(chunk)
        return
    # "spawn": forking a process that has TensorFlow loaded can deadlock.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )
    pending: collections.deque = collections.deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(_chunk, chunk))
            if len(pending) >= 4 * workers:  # bounded read-ahead
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        # A consumer that stops early (a finished epoch budget, an interrupt) ends the workers.
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
