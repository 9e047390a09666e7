"""The TFLite step after the Pusher: gated by the same blessing, versioned like the push.

``export_pushed`` converts the pushed SavedModel to the configured TFLite variants, checks each
(GPU-delegate compatibility, agreement with the SavedModel on eval faces) and writes
``<tflite_root>/<version>/affect_<variant>.tflite`` next to a ``checks.json``, where
``<version>`` is the Pusher's version directory name, so a TFLite file and the TF Serving
version it came from carry the same number.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affect_tf.data import examples as ex
from affect_tf.data.dataset import resolve_files, serialized_examples
from affect_tf.export.tflite import export_variants

# The output artifact's MLMD type (Kubeflow v2 wants "<namespace>.<Name>").
TFLITE_ARTIFACT_TYPE = "affect_tf.TFLiteModel"


def eval_faces(examples_dir: str, transform_dir: str, n: int) -> np.ndarray:
    """``n`` aligned faces of the eval split, through the Transform graph."""
    import tensorflow_transform as tft

    tft_output = tft.TFTransformOutput(transform_dir)
    layer = tft_output.transform_features_layer()
    spec = tft_output.raw_feature_spec()
    files = resolve_files(str(Path(examples_dir) / "Split-eval" / "*"))
    faces = []
    for batch in serialized_examples(files).take(n).batch(64):
        faces.append(layer(ex.parse_examples(batch, spec=spec))[ex.TRANSFORMED_IMAGE].numpy())
    if not faces:
        raise ValueError(f"Expected eval examples in {examples_dir}/Split-eval. Received: none")
    return np.concatenate(faces)


def export_pushed(
    pushed_dir: str,
    version: str,
    examples_dir: str,
    transform_dir: str,
    artifact_dir: str,
    tflite_root: str,
    variants: Sequence[str],
    parity_examples: int,
) -> dict:
    """Converts and checks; writes into the artifact and ``<tflite_root>/<version>/``."""
    faces = eval_faces(examples_dir, transform_dir, parity_examples)
    checks = export_variants(pushed_dir, artifact_dir, faces, variants)
    target = Path(tflite_root) / version
    target.mkdir(parents=True, exist_ok=True)
    for variant, check in checks.items():
        source = Path(check["path"])
        shutil.copy2(source, target / source.name)
        shutil.copy2(source.with_suffix(".analyzer.txt"), target / f"affect_{variant}.analyzer.txt")
        check["artifact_path"] = str(source)
        check["path"] = str(target / source.name)
    (target / "checks.json").write_text(json.dumps(checks, indent=2))
    (Path(artifact_dir) / "checks.json").write_text(json.dumps(checks, indent=2))
    return checks
