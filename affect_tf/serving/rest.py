"""TF Serving's REST API over waitress (a WSGI server): status, metadata and predict, with its JSON
formats (row ``instances`` / columnar ``inputs``, ``{"b64": ...}`` for bytes) and its error shape
``{"error": "..."}`` with the HTTP status TF Serving maps each gRPC code to."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from http import HTTPStatus

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
# TensorFlow's own limit on a tensor's rank; JSON nested deeper is no tensor (and Python's
# parser recurses once per level: 100,000 levels exhausted its stack).
MAX_DIMS = 64
_PHRASES = {s.value for s in HTTPStatus}


def _decode_value(value, depth: int = 0):
    """JSON value -> Python, ``{"b64": s}`` -> bytes, strings -> UTF-8 bytes."""
    if depth > MAX_DIMS:
        raise invalid(
            f"Expected a tensor of at most {MAX_DIMS} dimensions (TensorFlow's limit). "
            f"Received: lists nested more than {MAX_DIMS} levels"
        )
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
        return [_decode_value(v, depth + 1) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _brief(value) -> str:
    """A JSON value named in an error, never recursing into it (it may be nested deeply)."""
    if isinstance(value, (list, dict)):
        kind = "list" if isinstance(value, list) else "object"
        return f"an empty {kind}" if not value else f"a {kind}"
    return json.dumps(value)[:80]


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
            raise invalid("Expected 'instances' to be a non-empty list. Received: " + _brief(rows))
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
    if not match or what not in allowed.get(method, ()):
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")
    version = match["version"]
    if version is not None and not version.isdigit():
        raise invalid(f"Expected a numeric version. Received: versions/{version}")
    return what, (match["name"], int(version) if version else None, match["label"])


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
    except RecursionError:
        raise invalid(
            f"Expected JSON nested at most {MAX_DIMS} levels (a tensor's rank). Received: "
            "nesting deeper than the parser's limit"
        ) from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise invalid(f"JSON Parse error: {e}") from None
    served = manager.resolve(name, version, label)
    if not isinstance(body, dict):
        raise invalid(
            f"Expected a JSON object with 'instances' or 'inputs'. Received: {type(body).__name__}"
        )
    signature = body.get("signature_name") or "serving_default"
    if not isinstance(signature, str):
        raise invalid(f"Expected 'signature_name' to be a string. Received: {_brief(signature)}")
    inputs, style = parse_predict_body(body, served.input_names(signature))
    return format_predict(served.predict(signature, inputs), style)


class RestApp:
    """TF Serving's REST API as a WSGI application (served by ``RestServer``)."""

    def __init__(self, manager: ModelManager, metrics: Metrics, metrics_path: str | None):
        self.manager = manager
        self.metrics = metrics
        self.metrics_path = metrics_path

    def __call__(self, environ: dict, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        # PEP 3333: PATH_INFO holds the percent-decoded bytes as Latin-1; names are UTF-8.
        path = path.encode("latin-1", "replace").decode("utf-8", "replace")
        start = time.perf_counter()
        name, code = "", grpc.StatusCode.OK
        content_type = "application/json"
        try:
            what, spec = route(method, path, self.metrics_path)
            if what == "metrics":
                data = self.metrics.render().encode()
                content_type = "text/plain; version=0.0.4"
            elif method == "GET":
                if what == "/metadata":
                    data = _dumps(metadata_json(self.manager.resolve(*spec)))
                else:
                    data = _dumps(status_json(self.manager.status(spec[0], spec[1])))
            else:
                name = spec[0]
                # The server has read the whole body before calling us (chunked bodies
                # de-chunked, its length checked), so this read never waits on the client.
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length else b""
                data = _dumps(predict_json(self.manager, what, spec, raw))
            status = 200
        except ServingError as e:
            code = e.code
            status, data = HTTP_STATUS.get(e.code, 500), _dumps({"error": e.message})
        except Exception as e:  # noqa: BLE001 - the server keeps serving; the client learns why
            log.exception("REST %s %s failed", method, path)
            code = grpc.StatusCode.INTERNAL
            status, data = 500, _dumps({"error": f"Internal error: {e}"})
        if name:
            self.metrics.observe(name, "predict/rest", code.name, time.perf_counter() - start)
        reason = HTTPStatus(status).phrase if status in _PHRASES else "Client Closed Request"
        start_response(
            f"{status} {reason}",
            [("Content-Type", content_type), ("Content-Length", str(len(data)))],
        )
        return [data]


def _dumps(body: dict) -> bytes:
    """JSON as RFC 8259 has it: a non-finite output is an error, never a literal ``NaN``."""
    try:
        return json.dumps(body, allow_nan=False).encode()
    except ValueError:
        raise ServingError(
            grpc.StatusCode.INTERNAL, "Expected finite outputs. Received: NaN or infinity"
        ) from None


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


class RestServer:
    """TF Serving's REST API on a waitress server: its asynchronous loop reads requests (slow
    clients hold a connection, never a worker thread), ``threads`` workers run them (bounded
    concurrency), and it owns the HTTP parts: listen backlog, keep-alive, chunked bodies, the
    body size limit (413), idle/read timeouts."""

    def __init__(
        self,
        app: RestApp,
        port: int,
        host: str = "0.0.0.0",
        timeout: float = 30.0,
        threads: int = 32,
    ) -> None:
        from waitress.server import create_server

        seconds = max(1, math.ceil(timeout))
        try:
            self._server = create_server(
                app,
                host=host,
                port=port,
                threads=threads,
                # http.server listened with a backlog of 5: 64 clients connecting at once
                # saw 44 connections reset. The kernel caps this at net.core.somaxconn.
                backlog=1024,
                connection_limit=1024,
                asyncore_use_poll=True,  # select() stops at file descriptor 1024
                channel_timeout=seconds,  # --rest_api_timeout_in_ms: a silent client is closed
                cleanup_interval=min(30, seconds),
                max_request_body_size=MAX_BODY,
                ident="affect-tf-model-server",
                expose_tracebacks=False,
            )
        except OSError as e:
            raise OSError(
                f"Expected a free port for the REST API. Received: --rest_api_port={port} "
                f"(in use or not allowed on {host}: {e.strerror})"
            ) from None
        self.port: int = int(self._server.effective_port)
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        """Runs the server's loop until ``shutdown``."""
        try:
            self._server.run()
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Closes the listener and every connection (inside the loop's own thread, where
        waitress expects it), then stops the worker threads."""
        server = self._server

        def close_all() -> None:
            for channel in list(server._map.values()):
                if channel is not server.trigger:
                    channel.close()
            server.close()  # the listener and the trigger: the loop ends with its map empty

        server.trigger.pull_trigger(close_all)
        self._stopped.wait(timeout)
        server.task_dispatcher.shutdown(timeout=timeout)


def make_rest_server(
    manager: ModelManager,
    port: int,
    metrics: Metrics,
    metrics_path: str | None,
    host="0.0.0.0",
    timeout: float = 30.0,
    threads: int = 32,
) -> RestServer:
    """TF Serving's REST API on ``host:port`` (not started: call ``serve_forever`` in a thread);
    ``timeout`` in seconds before a silent connection is closed, ``threads`` requests at once.

    Raises:
        OSError: The port is in use (the message names ``--rest_api_port``).
    """
    return RestServer(RestApp(manager, metrics, metrics_path), port, host, timeout, threads)
