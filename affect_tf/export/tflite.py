"""TFLite export of the ``serving_aligned`` signature: fp32, fp16 and int8, each checked.

- Conversion: ``tf.lite.TFLiteConverter.from_saved_model`` on the pushed SavedModel's
  ``serving_aligned`` signature (aligned float32 faces in [0, 255] -> named outputs; phones
  detect and align with their own face tracker).
  ``fp16``: float16 weights; ``int8``: full-integer weights and activations calibrated on
  representative eval faces (float32 input/output kept, so callers feed pixels either way).
- GPU delegate compatibility: ``tf.lite.experimental.Analyzer`` with ``gpu_compatibility=True``.
- Agreement with the SavedModel on the same faces: max |ΔVA|, expression argmax agreement,
  AU decision agreement at 0.5.
- The file holds one signature (``serving_default`` in TFLite's naming) with the input
  ``image`` (1, S, S, 3) and the outputs ``affect_tf.data.targets.SERVING_OUTPUTS``.
- Running: ``ai_edge_litert`` (``tf.lite.Interpreter`` is deprecated).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affect_tf.core import outputs as tg
from affect_tf.core.layout import SERVING_ALIGNED

log = logging.getLogger(__name__)

# The precisions one export can hold; ``PipelineConfig.tflite_variants`` picks among them.
VARIANTS = ("fp32", "fp16", "int8")


def convert(
    saved_model_dir: str | Path, variant: str, representative: np.ndarray | None = None
) -> bytes:
    """Converts the ``serving_aligned`` signature to a TFLite flatbuffer.

    Args:
        saved_model_dir: The exported SavedModel.
        variant: ``fp32``, ``fp16`` or ``int8``.
        representative: ``(N, S, S, 3)`` float32 faces for int8 calibration.
    """
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"Expected a variant in {VARIANTS}. Received: variant={variant!r}")
    # From the loaded signature rather than ``from_saved_model``: the latter keeps the Keras 3
    # variables as resources here (READ_VARIABLE kernels that fail at run time).
    loaded = tf.saved_model.load(str(saved_model_dir))
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.signatures[SERVING_ALIGNED]], loaded
    )
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("Expected representative faces for int8 calibration. Received: none")

        def samples():
            for face in representative:
                yield {"image": face[np.newaxis].astype(np.float32)}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        # Integer kernels where they exist, float kernels for the rest (e.g. the softmax).
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return converter.convert()


def gpu_compatibility(model: bytes) -> tuple[bool, str]:
    """Runs the TFLite analyzer with ``gpu_compatibility=True``.

    Returns:
        (compatible, the analyzer's report).
    """
    import tensorflow as tf

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tf.lite.experimental.Analyzer.analyze(model_content=model, gpu_compatibility=True)
    report = buffer.getvalue()
    compatible = "looks compatible with GPU delegate" in report
    return compatible and "GPU COMPATIBILITY WARNING" not in report, report


class Runner:
    """A loaded TFLite file (or flatbuffer) that runs aligned faces -> named outputs.

    The file's input is one face ``(1, S, S, 3)`` (the phone case); batches run face by face.
    """

    def __init__(self, model: bytes | str | Path, num_threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from affect_tf.face.detect import litert_threads

        num_threads = litert_threads() if num_threads is None else num_threads
        if isinstance(model, bytes):
            interpreter = Interpreter(model_content=model, num_threads=num_threads)
        else:
            interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
        self._runner = interpreter.get_signature_runner()  # the one signature (serving_aligned)
        self.image_size = int(self._runner.get_input_details()["image"]["shape"][1])

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        parts: dict[str, list] = {name: [] for name in tg.SERVING_OUTPUTS}
        for face in np.asarray(images, np.float32):
            out = self._runner(image=face[np.newaxis])
            for name in tg.SERVING_OUTPUTS:
                parts[name].append(np.asarray(out[name]))
        if not parts[tg.VALENCE]:
            return tg.empty_serving_outputs()
        return {name: np.concatenate(v) for name, v in parts.items()}


def run(model: bytes | str | Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """Runs a TFLite file (or flatbuffer) face by face; returns the named outputs stacked."""
    return Runner(model)(images)


def agreement(reference: dict, candidate: dict, au_threshold: float = 0.5) -> dict[str, float]:
    """How closely ``candidate`` outputs follow ``reference`` (both by serving output name)."""
    va_diff = max(
        float(np.max(np.abs(np.asarray(reference[k]) - np.asarray(candidate[k]))))
        for k in (tg.VALENCE, tg.AROUSAL)
    )
    expr = np.mean(
        np.argmax(reference[tg.EXPRESSION_PROBS], -1)
        == np.argmax(candidate[tg.EXPRESSION_PROBS], -1)
    )
    au = np.mean(
        (np.asarray(reference[tg.AU_PROBS]) >= au_threshold)
        == (np.asarray(candidate[tg.AU_PROBS]) >= au_threshold)
    )
    return {
        "max_abs_va_diff": va_diff,
        "expr_agreement": float(expr),
        "au_agreement": float(au),
        "max_abs_prob_diff": float(
            max(
                np.max(np.abs(np.asarray(reference[k]) - np.asarray(candidate[k])))
                for k in (tg.EXPRESSION_PROBS, tg.AU_PROBS)
            )
        ),
    }


def export_variants(
    saved_model_dir: str | Path,
    out_dir: str | Path,
    faces: np.ndarray,
    variants: Sequence[str] = VARIANTS,
    progress: bool = True,
) -> dict[str, dict]:
    """Converts, checks and writes ``<out_dir>/affect_<variant>.tflite`` for each variant.

    Args:
        saved_model_dir: The SavedModel with a ``serving_aligned`` signature.
        out_dir: Where the files go (created).
        faces: ``(N, S, S, 3)`` aligned eval faces: int8 calibration and agreement checks.
        variants: Subset of ``VARIANTS``.

    Returns:
        ``{variant: {"path", "bytes", "gpu_compatible", "max_abs_va_diff", "expr_agreement",
        "au_agreement", "max_abs_prob_diff", "n"}}``.
    """
    import tensorflow as tf

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    signature = tf.saved_model.load(str(saved_model_dir)).signatures[SERVING_ALIGNED]
    reference = {k: v.numpy() for k, v in signature(image=tf.constant(faces, tf.float32)).items()}
    checks = {}
    for variant in variants:
        model = convert(saved_model_dir, variant, representative=faces)
        path = out_dir / f"affect_{variant}.tflite"
        path.write_bytes(model)
        compatible, report = gpu_compatibility(model)
        (out_dir / f"affect_{variant}.analyzer.txt").write_text(report)
        checks[variant] = {
            "path": str(path),
            "bytes": len(model),
            "gpu_compatible": compatible,
            **agreement(reference, run(path, faces)),
            "n": len(faces),
        }
        if progress:
            c = checks[variant]
            log.info(
                f"tflite {variant}: {c['bytes'] / 1e6:.2f} MB, GPU delegate "
                f"{'compatible' if compatible else 'NOT compatible'}, max |dVA| "
                f"{c['max_abs_va_diff']:.4f}, expression agreement {c['expr_agreement']:.3f}, "
                f"AU agreement {c['au_agreement']:.3f}"
            )
    return checks
