"""What a conversion wrote: label coverage of the examples (``LabelStats``) and the result with
its skip report (``ConvertResult``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS, NUM_EXPRESSIONS
from affect_tf.data.corpus import SkipReport
from affect_tf.data.examples import FaceRecord


@dataclasses.dataclass
class LabelStats:
    """Label coverage of the written examples, for the summary and the report."""

    written: int = 0
    va: int = 0
    expr: int = 0
    au: int = 0
    videos: set = dataclasses.field(default_factory=set)
    expression_counts: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(NUM_EXPRESSIONS, np.int64)
    )
    au_positive: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(NUM_AUS, np.int64))
    au_labelled: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(NUM_AUS, np.int64))
    va_sum: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))
    va_sq: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))

    def add(self, record: FaceRecord) -> None:
        """Counts one written example."""
        self.written += 1
        self.videos.add(record.video_id)
        if record.va_mask:
            self.va += 1
            v = np.array([record.valence, record.arousal])
            self.va_sum += v
            self.va_sq += v * v
        if record.expr_mask:
            self.expr += 1
            self.expression_counts[record.expression] += 1
        mask = np.asarray(record.au_mask)
        if mask.any():
            self.au += 1
        self.au_labelled += mask
        self.au_positive += np.asarray(record.au) * mask

    def to_dict(self) -> dict:
        va_mean = self.va_sum / max(self.va, 1)
        va_std = np.sqrt(np.maximum(self.va_sq / max(self.va, 1) - va_mean**2, 0.0))
        rate = self.au_positive / np.maximum(self.au_labelled, 1)
        return {
            "written": self.written,
            "videos": len(self.videos),
            "labelled": {"va": self.va, "expression": self.expr, "au": self.au},
            "expression_counts": dict(
                zip(EXPRESSIONS, self.expression_counts.tolist(), strict=True)
            ),
            "au_positive_rate": {a: round(float(r), 4) for a, r in zip(AUS, rate, strict=True)},
            "valence": {"mean": round(float(va_mean[0]), 4), "std": round(float(va_std[0]), 4)},
            "arousal": {"mean": round(float(va_mean[1]), 4), "std": round(float(va_std[1]), 4)},
        }


@dataclasses.dataclass
class ConvertResult:
    """What a conversion wrote and skipped; ``report_path`` holds the same as JSON."""

    out_path: Path
    report_path: Path
    stats: LabelStats
    report: SkipReport
    found_by: dict[str, int] = dataclasses.field(default_factory=dict)  # faces per source
    seconds: float = 0.0

    def summary(self, written_file: Path) -> dict:
        """The report's JSON: label counts, skips, where the faces came from, speed, and the
        size of ``written_file`` (the examples, under their final or temporary name)."""
        return {
            **self.stats.to_dict(),
            **self.report.to_dict(),
            "faces_found_by": self.found_by,
            "seconds": round(self.seconds, 3),
            "faces_per_s": round(self.stats.written / max(self.seconds, 1e-9), 2),
            "bytes": Path(written_file).stat().st_size,
        }

    def format(self) -> str:
        d = self.stats.to_dict()
        lines = [
            f"wrote {d['written']} examples from {d['videos']} videos to {self.out_path}",
            f"  labelled: VA {d['labelled']['va']}, expression {d['labelled']['expression']}, "
            f"AU {d['labelled']['au']}",
            f"  skipped: {self.report.total_skipped}",
        ]
        if self.found_by:
            found = ", ".join(f"{name} {count}" for name, count in self.found_by.items())
            rate = d["written"] / max(self.seconds, 1e-9)
            lines.append(f"  faces from: {found}; {rate:.1f} faces/s")
        details = self.report.format()
        if details:
            lines.append(details)
        lines.append(f"report: {self.report_path}")
        return "\n".join(lines)
