"""Wall seconds per stage of a batch job, so a run can say where its time went."""

from __future__ import annotations

import contextlib
import time


class StageClock:
    """Wall seconds per stage of a batch job (``with clock("detect"): ...``), so a run can
    say where its time went (``table.attrs["stage_seconds"]``; ``benchmarks.run``)."""

    def __init__(self, *stages: str) -> None:
        self.seconds = dict.fromkeys(stages, 0.0)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
