"""AffectClient: one client for TF Serving (or ``affect-tf serve``) over REST or gRPC.

>>> client = AffectClient("localhost", protocol="grpc")          # gRPC 8500, REST 8501
>>> table = client.predict(["face1.jpg", "face2.png"])           # one row per image
>>> table[["expression", "valence", "arousal"]]

Requests carry encoded face crops (``serving_default``), whole frames with 5 landmarks
(``serving_landmarks``) or aligned float faces (``serving_aligned``); results are decoded into
named outputs: the 8 expression probabilities by name, the 12 AU probabilities by AU, valence
and arousal (``affect_tf.data.targets.outputs_frame``). Large inputs are split into requests of
``batch_size``; UNAVAILABLE answers (a version loading, a full queue, a restarting server) are
retried with exponential backoff; every call has a timeout.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

PROTOCOLS = ("rest", "grpc")


class ServingClientError(RuntimeError):
    """The server refused or failed a request: its status and message."""

    def __init__(self, status: str, message: str, http_status: int | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.http_status = http_status


def _encode_image(item) -> bytes:
    """A path, bytes or an RGB uint8 array -> encoded image bytes (arrays as PNG, lossless)."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, (str, Path)):
        return Path(item).read_bytes()
    import cv2

    array = np.asarray(item)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image (H, W, 3). Received: shape={array.shape}")
    ok, data = cv2.imencode(".png", cv2.cvtColor(array.astype(np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("Expected an image OpenCV can encode")
    return data.tobytes()


class AffectClient:
    """Queries the ``affect`` model on TF Serving or ``affect-tf serve``.

    Args:
        host: Server host name.
        protocol: ``"rest"`` or ``"grpc"``.
        rest_port, grpc_port: The server's ports (TF Serving's defaults 8501 and 8500).
        model: Model name.
        version: Pin a version number (None: the latest), or
        label: a version label (``stable``/``canary``) from the server's models.config.
        timeout: Seconds per request.
        retries: Extra attempts after an UNAVAILABLE answer or a refused connection.
        backoff: First retry delay in seconds; doubles each retry.
        batch_size: Most rows per request (keep <= the server's max_batch_size).
    """

    def __init__(
        self,
        host: str = "localhost",
        protocol: str = "grpc",
        rest_port: int = 8501,
        grpc_port: int = 8500,
        model: str = "affect",
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        batch_size: int = 32,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"Expected protocol in {PROTOCOLS}. Received: protocol={protocol!r}")
        if version is not None and label is not None:
            raise ValueError("Expected a version or a label, not both")
        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1. Received: batch_size={batch_size}")
        self.host = host
        self.protocol = protocol
        self.rest_port = rest_port
        self.grpc_port = grpc_port
        self.model = model
        self.version = version
        self.label = label
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.batch_size = batch_size
        self._local = threading.local()
        self._channel = None
        self._lock = threading.Lock()

    # --- public API --------------------------------------------------------------------------

    def predict(self, images: Sequence, landmarks: np.ndarray | None = None) -> pd.DataFrame:
        """Face crops (or whole frames with ``landmarks`` ``(N, 10)``) -> one row per image.

        Args:
            images: Paths, encoded bytes or RGB uint8 arrays.
            landmarks: Optional 5-point landmarks per image in pixels; then the server aligns
                (``serving_landmarks``), else each image is taken as the face crop.
        """
        from affect_tf.core.outputs import outputs_frame

        if isinstance(images, (str, Path, bytes)):
            images = [images]
        data = [_encode_image(item) for item in images]
        if landmarks is not None:
            landmarks = np.asarray(landmarks, np.float32).reshape(len(data), 10)
        outputs = self.predict_raw(
            {"image": np.array(data, dtype=object)}
            | ({"landmarks": landmarks} if landmarks is not None else {}),
            "serving_landmarks" if landmarks is not None else "serving_default",
        )
        return outputs_frame(outputs)

    def predict_aligned(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        """Aligned float faces ``(N, S, S, 3)`` in [0, 255] -> serving outputs by name."""
        return self.predict_raw({"image": np.asarray(faces, np.float32)}, "serving_aligned")

    def predict_raw(
        self, inputs: dict[str, np.ndarray], signature: str = "serving_default"
    ) -> dict[str, np.ndarray]:
        """Named input arrays -> named output arrays, split into ``batch_size`` requests."""
        n = len(next(iter(inputs.values())))
        parts = []
        for start in range(0, n, self.batch_size):
            chunk = {k: v[start : start + self.batch_size] for k, v in inputs.items()}
            call = self._grpc_predict if self.protocol == "grpc" else self._rest_predict
            parts.append(self._with_retries(call, chunk, signature))
        if not parts:
            raise ValueError("Expected at least one input row. Received: none")
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def metadata(self) -> dict:
        """The model's signatures: ``{"version": int, "signature_def": {name: {...}}}``."""
        if self.protocol == "grpc":
            return self._with_retries(self._grpc_metadata)
        body = self._with_retries(self._rest, "GET", self._rest_path("/metadata"), None)
        return {
            "version": int(body["model_spec"]["version"]),
            "signature_def": body["metadata"]["signature_def"]["signature_def"],
        }

    def status(self) -> list[dict]:
        """Version states: ``[{"version": int, "state": "AVAILABLE", "error": ""}]``."""
        if self.protocol == "grpc":
            return self._with_retries(self._grpc_status)
        body = self._with_retries(self._rest, "GET", f"/v1/models/{self.model}", None)
        return [
            {
                "version": int(s["version"]),
                "state": s["state"],
                "error": s["status"].get("error_message", ""),
            }
            for s in body["model_version_status"]
        ]

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # --- retries -----------------------------------------------------------------------------

    def _with_retries(self, call, *args):
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return call(*args)
            except ServingClientError as e:
                if e.status != "UNAVAILABLE" or attempt == self.retries:
                    raise
            time.sleep(delay)
            delay *= 2

    # --- REST --------------------------------------------------------------------------------

    def _rest_path(self, suffix: str) -> str:
        path = f"/v1/models/{self.model}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label is not None:
            path += f"/labels/{self.label}"
        return path + suffix

    def _rest(self, method: str, path: str, body: dict | None) -> dict:
        connection = getattr(self._local, "http", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.rest_port, timeout=self.timeout)
            self._local.http = connection
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            connection.close()
            self._local.http = None
            if isinstance(e, TimeoutError):
                raise ServingClientError("DEADLINE_EXCEEDED", f"{method} {path}: {e}") from None
            raise ServingClientError("UNAVAILABLE", f"{method} {path}: {e}") from None
        try:
            decoded = json.loads(payload) if payload else {}
        except json.JSONDecodeError:
            decoded = {"error": payload[:200].decode(errors="replace")}
        if response.status != 200:
            status = {503: "UNAVAILABLE", 404: "NOT_FOUND", 400: "INVALID_ARGUMENT"}.get(
                response.status, f"HTTP_{response.status}"
            )
            raise ServingClientError(status, decoded.get("error", ""), response.status)
        return decoded

    def _rest_predict(self, inputs: dict, signature: str) -> dict[str, np.ndarray]:
        columns = {}
        for key, value in inputs.items():
            if value.dtype == object:
                columns[key] = [{"b64": base64.b64encode(v).decode()} for v in value]
            else:
                columns[key] = value.tolist()
        body = {"signature_name": signature, "inputs": columns}
        outputs = self._rest("POST", self._rest_path(":predict"), body)["outputs"]
        return {k: np.asarray(v, np.float32) for k, v in outputs.items()}

    # --- gRPC --------------------------------------------------------------------------------

    def _stubs(self):
        with self._lock:
            if self._channel is None:
                import grpc
                from tensorflow_serving.apis import model_service_pb2_grpc
                from tensorflow_serving.apis import prediction_service_pb2_grpc as ps

                size = 256 * 1024 * 1024
                self._channel = grpc.insecure_channel(
                    f"{self.host}:{self.grpc_port}",
                    options=[
                        ("grpc.max_send_message_length", size),
                        ("grpc.max_receive_message_length", size),
                    ],
                )
                self._prediction = ps.PredictionServiceStub(self._channel)
                self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
            return self._prediction, self._models

    def _fill_spec(self, spec, signature: str | None = None) -> None:
        spec.name = self.model
        if signature:
            spec.signature_name = signature
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label

    def _grpc_call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ServingClientError(e.code().name, e.details() or "") from None

    def _grpc_predict(self, inputs: dict, signature: str) -> dict[str, np.ndarray]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        prediction, _ = self._stubs()
        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self._grpc_call(prediction.Predict, request)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def _grpc_metadata(self) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        prediction, _ = self._stubs()
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._fill_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._grpc_call(prediction.GetModelMetadata, request)
        defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(defs)
        as_dict = json_format.MessageToDict(defs, preserving_proto_field_name=True)
        return {
            "version": response.model_spec.version.value,
            "signature_def": as_dict["signature_def"],
        }

    def _grpc_status(self) -> list[dict]:
        from tensorflow_serving.apis import get_model_status_pb2

        _, models = self._stubs()
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model
        response = self._grpc_call(models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [
            {"version": s.version, "state": states.Name(s.state), "error": s.status.error_message}
            for s in response.model_version_status
        ]
