"""TF Serving's REST API over ``http.server``: status, metadata and predict, with its JSON
formats (row ``instances`` / columnar ``inputs``, ``{"b64": ...}`` for bytes) and its error shape
``{"error": "..."}`` with the HTTP status TF Serving maps each gRPC code to."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np

from affect_tf.serving.errors import ServingError, invalid
from affect_tf.serving.manager import ModelManager
from affect_tf.serving.monitoring import Metrics

log = logging.getLogger("affect_tf.serving")

# tensorflow_serving/model_servers/http_server.cc: ToHTTPStatusCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<what>/metadata|:predict|:classify|:regress)?/?$"
)
MAX_BODY = 256 * 1024 * 1024


def _decode_value(value):
    """JSON value -> Python, ``{"b64": s}`` -> bytes, strings -> UTF-8 bytes."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise invalid(
                    'Expected base64 in a {"b64": ...} value. Received: not base64'
                ) from None
        raise invalid(f"Expected a tensor value. Received: an object with keys {sorted(value)}")
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def parse_predict_body(body: dict, input_names: list[str]) -> tuple[dict, str]:
    """A predict JSON body -> (named inputs, ``"row"`` | ``"columnar"``)."""
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise invalid(
            "Expected exactly one of 'instances' (row format) or 'inputs' (columnar format). "
            f"Received: keys={sorted(body)}"
        )
    if has_rows:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise invalid(
                "Expected 'instances' to be a non-empty list. Received: " + json.dumps(rows)[:80]
            )
        named = [isinstance(r, dict) and "b64" not in r for r in rows]
        if all(named):
            keys = set(rows[0])
            if any(set(r) != keys for r in rows):
                raise invalid("Expected every instance to have the same named inputs")
            return {k: [_decode_value(r[k]) for r in rows] for k in keys}, "row"
        if any(named):
            raise invalid("Expected instances all named (objects) or all plain values")
        if len(input_names) != 1:
            raise invalid(
                f"Expected named instances ({{name: value}}) for a signature with inputs "
                f"{sorted(input_names)}. Received: plain values"
            )
        return {input_names[0]: [_decode_value(r) for r in rows]}, "row"
    inputs = body["inputs"]
    if isinstance(inputs, dict) and "b64" not in inputs:
        if not inputs:
            raise invalid("Expected 'inputs' to name at least one input. Received: {}")
        return {k: _decode_value(v) for k, v in inputs.items()}, "columnar"
    if len(input_names) != 1:
        raise invalid(
            f"Expected 'inputs' as an object {{name: value}} for a signature with inputs "
            f"{sorted(input_names)}"
        )
    return {input_names[0]: _decode_value(inputs)}, "columnar"


def _json_value(array: np.ndarray):
    if array.dtype == object:
        return [{"b64": base64.b64encode(v).decode()} for v in array.reshape(-1)]
    return array.tolist()


def format_predict(outputs: dict[str, np.ndarray], style: str) -> dict:
    """Outputs -> TF Serving's response body for the request's format."""
    if style == "columnar":
        values = {k: _json_value(v) for k, v in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    n = len(next(iter(outputs.values())))
    if len(outputs) == 1:
        (value,) = outputs.values()
        return {"predictions": _json_value(value)}
    rows = [{k: _json_value(v[i : i + 1])[0] for k, v in outputs.items()} for i in range(n)]
    return {"predictions": rows}


def route(method: str, path: str, metrics_path: str | None) -> tuple[str, tuple | None]:
    """``(what, (name, version, label))`` of a request path; ``("metrics", None)`` for the
    monitoring path. Raises ``ServingError`` (NOT_FOUND, INVALID_ARGUMENT) otherwise."""
    clean = path.split("?", 1)[0]
    if method == "GET" and metrics_path and clean == metrics_path:
        return "metrics", None
    match = _ROUTE.match(clean)
    what = match and (match["what"] or "")
    allowed = {"GET": ("", "/metadata"), "POST": (":predict", ":classify", ":regress")}
    if not match or what not in allowed[method]:
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")
    version = match["version"]
    if version is not None and not version.isdigit():
        raise invalid(f"Expected a numeric version. Received: versions/{version}")
    return what, (match["name"], int(version) if version else None, match["label"])


def _content_length(value: str | None) -> int:
    """The request's Content-Length (0 when absent); INVALID_ARGUMENT when it is not a
    non-negative integer (chunked bodies are not supported: TF Serving's clients send a length)."""
    try:
        length = int(value or 0)
    except ValueError:
        raise invalid(f"Expected a numeric Content-Length. Received: {value!r}") from None
    if length < 0:
        raise invalid(f"Expected a Content-Length >= 0. Received: {length}")
    return length


def predict_json(manager: ModelManager, what: str, spec: tuple, raw: bytes) -> dict:
    """The response body of a REST predict request (raises ``ServingError``)."""
    name, version, label = spec
    if what != ":predict":
        raise invalid(
            f"Expected a predict request: the affect model's signatures are predict "
            f"signatures. Received: {what[1:]}"
        )
    try:
        body = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise invalid(f"JSON Parse error: {e}") from None
    served = manager.resolve(name, version, label)
    if not isinstance(body, dict):
        raise invalid(
            f"Expected a JSON object with 'instances' or 'inputs'. Received: {type(body).__name__}"
        )
    signature = body.get("signature_name") or "serving_default"
    if not isinstance(signature, str):
        raise invalid(
            f"Expected 'signature_name' to be a string. Received: {json.dumps(signature)[:80]}"
        )
    inputs, style = parse_predict_body(body, served.input_names(signature))
    return format_predict(served.predict(signature, inputs), style)


class RestHandler(BaseHTTPRequestHandler):
    """TF Serving's REST API; ``make_handler`` binds it to a manager and metrics."""

    protocol_version = "HTTP/1.1"
    # Headers and body are two writes; with Nagle on, the client's delayed ACK adds ~40 ms
    # to every keep-alive request.
    disable_nagle_algorithm = True
    server_version = "affect-tf-model-server"
    manager: ModelManager
    metrics: Metrics
    metrics_path: str | None = None

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        log.debug("%s - %s", self.address_string(), format % args)

    def _send(self, status: int, body: dict | str, content_type="application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: ServingError) -> None:
        self._send(HTTP_STATUS.get(error.code, 500), {"error": error.message})

    def do_GET(self):  # noqa: N802 - http.server's naming
        try:
            what, spec = route("GET", self.path, self.metrics_path)
            if what == "metrics":
                self._send(200, self.metrics.render(), "text/plain; version=0.0.4")
            elif what == "/metadata":
                self._send(200, metadata_json(self.manager.resolve(*spec)))
            else:
                name, version, _ = spec
                self._send(200, status_json(self.manager.status(name, version)))
        except ServingError as e:
            self._error(e)

    def do_POST(self):  # noqa: N802 - http.server's naming
        start = time.perf_counter()
        name, code = "", grpc.StatusCode.OK
        try:
            length = _content_length(self.headers.get("Content-Length"))
            if length > MAX_BODY:
                raise invalid(f"Expected a request body up to {MAX_BODY} bytes. Received: {length}")
            raw = self.rfile.read(length) if length else b""
            what, spec = route("POST", self.path, self.metrics_path)
            name = spec[0]
            self._send(200, predict_json(self.manager, what, spec, raw))
        except ServingError as e:
            code = e.code
            self._error(e)
        except (
            TimeoutError
        ):  # the client announced more body than it sent (--rest_api_timeout_in_ms)
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - the server keeps serving; the client learns why
            log.exception("REST predict failed")
            code = grpc.StatusCode.INTERNAL
            self._error(ServingError(code, f"Internal error: {e}"))
        finally:
            if name:
                self.metrics.observe(name, "predict/rest", code.name, time.perf_counter() - start)


def make_handler(
    manager: ModelManager, metrics: Metrics, metrics_path: str | None, timeout: float = 30.0
):
    """A ``RestHandler`` class bound to this server's manager, metrics and monitoring path;
    ``timeout`` bounds every socket read (a slow or lying client cannot hold a thread)."""
    return type(
        "Handler",
        (RestHandler,),
        {"manager": manager, "metrics": metrics, "metrics_path": metrics_path, "timeout": timeout},
    )


def status_json(rows: list[tuple[int, str, str]]) -> dict:
    return {
        "model_version_status": [
            {
                "version": str(version),
                "state": state,
                "status": {"error_code": "UNKNOWN" if message else "OK", "error_message": message},
            }
            for version, state, message in rows
        ]
    }


def metadata_json(served) -> dict:
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    defs = get_model_metadata_pb2.SignatureDefMap()
    for key, value in served.signature_defs.items():
        defs.signature_def[key].CopyFrom(value)
    return {
        "model_spec": {"name": served.name, "signature_name": "", "version": str(served.version)},
        "metadata": {
            "signature_def": json_format.MessageToDict(defs, preserving_proto_field_name=True)
        },
    }


class _Server(ThreadingHTTPServer):
    # The standard library listens with a backlog of 5: 64 clients connecting at once saw 44
    # connections reset. The kernel caps this at net.core.somaxconn.
    request_queue_size = 1024


def make_rest_server(
    manager: ModelManager,
    port: int,
    metrics: Metrics,
    metrics_path: str | None,
    host="0.0.0.0",
    timeout: float = 30.0,
) -> ThreadingHTTPServer:
    """TF Serving's REST API on ``host:port`` (not started); ``timeout`` in seconds per read."""
    handler = make_handler(manager, metrics, metrics_path, timeout)
    server = _Server((host, port), handler)
    server.daemon_threads = True
    return server
