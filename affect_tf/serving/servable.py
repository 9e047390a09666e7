"""One loaded SavedModel version: its signatures, their input specs, and how a request runs."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import numpy as np

from affect_tf.core.layout import WARMUP_FILE
from affect_tf.data.images import decode_pixels
from affect_tf.serving.batching import Batcher, BatchingParameters
from affect_tf.serving.errors import CODE_NAMES, ServingError, clean_tf_message, invalid
from affect_tf.serving.options import RequestLimits

log = logging.getLogger("affect_tf.serving")

# Image signatures whose string input must hold encoded images (checked before batching so
# that one client's garbage is reported to that client by name, not as a TF kernel error).
# Inputs holding pixel coordinates, and how far from the image they may be: no image within the
# pixel limits has a side this long, and 1e30 landmarks made the alignment return NaN.
PIXEL_INPUTS = ("landmarks", "bbox")
MAX_COORD = 1e6
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _describe(error: Exception) -> str:
    """What numpy found wrong with a request's value, in a line."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "inhomogeneous" in text or "sequence" in text:
        return "rows of different lengths (a ragged array)"
    return text[:200]


def read_signature_defs(saved_model_dir: str | Path) -> dict:
    """The SavedModel's SignatureDefs by name (what GetModelMetadata returns), init op left out."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    defs = proto.meta_graphs[0].signature_def
    return {k: defs[k] for k in defs if not k.startswith("__")}


class ServedVersion:
    """One loaded SavedModel version: its signatures, their specs, and how a request runs."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        batching: BatchingParameters | None,
        limits: RequestLimits | None = None,
    ) -> None:
        import tensorflow as tf

        self.name = name
        self.version = version
        self.path = path
        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))
        self.signatures = dict(self._loaded.signatures)
        self.signature_defs = read_signature_defs(path)
        self.input_specs = {
            k: fn.structured_input_signature[1] for k, fn in self.signatures.items()
        }
        self.batching = batching
        self.limits = limits or RequestLimits()
        self._batchers: dict[str, Batcher] = {}
        if batching is not None:
            for key in self.signatures:
                self._batchers[key] = Batcher(
                    lambda inputs, key=key: self._run(key, inputs), batching, f"{name}-{version}"
                )

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()

    def predict(
        self, signature_name: str, inputs: dict, output_filter: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Checks the inputs against the signature, runs (batched if enabled), filters outputs."""
        signature_name = signature_name or "serving_default"
        self.input_names(signature_name)  # an unknown signature is INVALID_ARGUMENT here
        arrays = self._check_inputs(signature_name, inputs)
        outputs_def = self.signature_defs[signature_name].outputs
        for name in output_filter or ():
            if name not in outputs_def:
                raise invalid(
                    f"output tensor alias not found in signature: {name} Outputs expected to "
                    f"be in the set {{{','.join(sorted(outputs_def))}}}."
                )
        batcher = self._batchers.get(signature_name)
        outputs = batcher(arrays) if batcher is not None else self._run(signature_name, arrays)
        if output_filter:
            outputs = {k: v for k, v in outputs.items() if k in output_filter}
        return outputs

    def input_names(self, signature_name: str | None) -> list[str]:
        """The input names of a signature (default ``serving_default``); INVALID_ARGUMENT
        naming the signatures there are when it does not exist."""
        signature_name = signature_name or "serving_default"
        if signature_name not in self.signatures:
            raise invalid(
                f'Serving signature name: "{signature_name}" not found in signature def. '
                f"Expected one of {sorted(self.signatures)}"
            )
        return list(self.input_specs[signature_name])

    def _check_inputs(self, signature_name: str, inputs: dict) -> dict[str, np.ndarray]:
        specs = self.input_specs[signature_name]
        expected = "{" + ",".join(sorted(specs)) + "}"
        if not inputs:
            raise invalid(f"input is empty. Expected inputs {expected} for {signature_name}")
        for key in inputs:
            if key not in specs:
                raise invalid(
                    f"input tensor alias not found in signature: {key}. "
                    f"Inputs expected to be in the set {expected}."
                )
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise invalid(
                f"Missing input tensor alias: {', '.join(missing)}. Inputs expected to be in "
                f"the set {expected}."
            )
        arrays: dict[str, np.ndarray] = {}
        rows = None
        for key, spec in specs.items():
            value = inputs[key]
            try:
                if spec.dtype == self._tf.string:
                    array = np.asarray(value, dtype=object)
                    if array.size and not all(isinstance(v, bytes) for v in array.reshape(-1)):
                        raise TypeError("not bytes")
                else:
                    array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
                    if array.dtype.kind == "f" and not np.isfinite(array).all():
                        raise invalid(
                            f"Expected finite values in input {key!r}. Received: "
                            f"{int((~np.isfinite(array)).sum())} NaN/inf values"
                        )
                    if key in PIXEL_INPUTS and array.size and np.abs(array).max() > MAX_COORD:
                        raise invalid(
                            f"Expected pixel coordinates in input {key!r} within "
                            f"±{MAX_COORD:,.0f}. Received: {np.abs(array).max():.3g}"
                        )
            except (TypeError, ValueError) as e:
                # Describing the value must not fail again (a ragged list cannot be an array).
                raise invalid(
                    f"Expected input {key!r} as a rectangular array of {spec.dtype.name} values. "
                    f"Received: {_describe(e)}"
                ) from None
            shape = spec.shape.as_list()
            if array.ndim != len(shape) or any(
                d is not None and d != a for d, a in zip(shape, array.shape, strict=False)
            ):
                dims = ", ".join("N" if d is None else str(d) for d in shape)
                raise invalid(
                    f"Expected input {key!r} of shape ({dims}). Received: shape={array.shape}"
                )
            if rows is not None and array.shape[0] != rows:
                raise invalid(
                    f"Expected every input to have the same batch size. Received: {key!r} has "
                    f"{array.shape[0]}, another input {rows}"
                )
            rows = array.shape[0]
            if spec.dtype == self._tf.string and key == "image":
                self._check_images(array)
            arrays[key] = array
        if rows == 0:
            raise invalid(f"Expected at least one row. Received: an empty batch for {expected}")
        if rows > self.limits.max_request_instances:
            raise invalid(
                f"Expected at most {self.limits.max_request_instances} instances per request "
                f"(--max_request_instances). Received: {rows}"
            )
        if self.batching is not None and rows > self.batching.max_batch_size:
            raise invalid(
                f"Batch size {rows} exceeds the maximum batch size "
                f"{self.batching.max_batch_size} (max_batch_size of --batching_parameters_file)"
            )
        return arrays

    def _check_images(self, images: np.ndarray) -> None:
        """Encoded images: a known format, and the pixels decoding them touches (from the
        headers, every GIF frame counted: ``decode_pixels``) within the limits."""
        total = 0
        for i, data in enumerate(images.reshape(-1)):
            if not data.startswith(IMAGE_MAGIC):
                raise invalid(
                    f"Expected input 'image'[{i}] to be JPEG, PNG, GIF or BMP bytes. "
                    f"Received: {len(data)} bytes starting {data[:8]!r}"
                )
            declared = decode_pixels(data)
            if declared is None:
                continue  # the decoder reports a corrupt image, naming its row
            pixels, size = declared
            if pixels > self.limits.max_image_pixels:
                raise invalid(
                    f"Expected input 'image'[{i}] of at most {self.limits.max_image_pixels:,} "
                    f"pixels, every frame counted (--max_image_pixels). Received: {size} = "
                    f"{pixels:,} pixels"
                )
            total += pixels
            if total > self.limits.max_request_pixels:
                raise invalid(
                    f"Expected at most {self.limits.max_request_pixels:,} image pixels per "
                    f"request (--max_request_pixels). Received: more by 'image'[{i}]"
                )

    def _run(self, signature_name: str, arrays: dict) -> dict[str, np.ndarray]:
        tf = self._tf
        try:
            out = self.signatures[signature_name](**{k: tf.constant(v) for k, v in arrays.items()})
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as e:
            message = clean_tf_message(e.message)
            if "image" in arrays and arrays["image"].dtype == object:
                bad = self._undecodable(arrays["image"])
                if bad is not None:
                    message = (
                        f"Expected input 'image'[{bad}] to be a complete JPEG/PNG/GIF/BMP image. "
                        f"Received: a corrupt or truncated image ({message})"
                    )
            raise invalid(message) from None
        except tf.errors.OpError as e:
            raise ServingError(
                CODE_NAMES.get(e.error_code, grpc.StatusCode.INTERNAL),
                clean_tf_message(e.message),
            ) from None
        return {k: v.numpy() for k, v in out.items()}

    def _undecodable(self, images: np.ndarray) -> int | None:
        """Index of the first image TF cannot decode (which row broke a request)."""
        from affect_tf.data.preprocess import decode_image  # guarded: a bomb is not decoded

        for i, data in enumerate(images.reshape(-1)):
            try:
                decode_image(self._tf.constant(data))
            except self._tf.errors.OpError:
                return i
        return None

    def warmup(self) -> int:
        """Replays ``assets.extra/tf_serving_warmup_requests`` (TF Serving's warmup file) so
        the first client does not pay for tracing; returns how many requests ran."""
        from tensorflow_serving.apis import prediction_log_pb2

        path = self.path / WARMUP_FILE
        if not path.is_file():
            return 0
        count = 0
        for record in self._tf.data.TFRecordDataset(str(path)):
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            request = entry.predict_log.request
            inputs = {k: self._tf.make_ndarray(v) for k, v in request.inputs.items()}
            self._run(request.model_spec.signature_name or "serving_default", inputs)
            count += 1
        return count
