"""Where exported models keep what: signature names, the files inside a version, the
TF Serving ``BASE/<n>/`` version folders.

TensorFlow-free, so the TFLite inference path and the CLI resolve a model path without loading
TensorFlow; ``affect_tf.export.saved_model`` writes this layout.
"""

from __future__ import annotations

from pathlib import Path

SERVING_DEFAULT = "serving_default"
SERVING_LANDMARKS = "serving_landmarks"
SERVING_EXAMPLES = "serving_examples"
SERVING_ALIGNED = "serving_aligned"
SIGNATURES = (SERVING_DEFAULT, SERVING_LANDMARKS, SERVING_EXAMPLES, SERVING_ALIGNED)
KERAS_FILE = "assets.extra/affect_model.keras"
# TF Serving replays this file's requests at load time (SavedModel warmup), so the first
# client does not wait for graph tracing; affect-tf serve does the same.
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
AU_THRESHOLDS_FILE = "assets.extra/au_thresholds.json"


def numeric_versions(base_dir: str | Path, complete: bool = True) -> list[int]:
    """The numeric version folders of a TF Serving base folder, ascending.

    The one scanner of the ``BASE/<n>/`` layout (export, inference and serving use it). With
    ``complete`` only versions holding a ``saved_model.pb`` count (what can be loaded); without,
    every numeric folder does (what a new version number must not collide with).
    """
    base = Path(base_dir)
    if not base.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in base.iterdir()
        if p.is_dir() and p.name.isdigit() and (not complete or (p / "saved_model.pb").is_file())
    )


def latest_version(base_dir: str | Path) -> Path | None:
    """The newest complete version folder of ``base_dir`` (None when there is none)."""
    versions = numeric_versions(base_dir)
    return Path(base_dir) / str(versions[-1]) if versions else None


def next_version(base_dir: str | Path) -> Path:
    """``<base_dir>/<n>`` with ``n`` one above the highest numeric version there (1 if none)."""
    return Path(base_dir) / str(max(numeric_versions(base_dir, complete=False), default=0) + 1)
