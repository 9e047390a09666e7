"""Chaos under load: `affect-tf serve` as a real process on loopback keeps answering 8 clients
(REST and gRPC) without one error while it is handed a corrupt version, a half-written version,
image bombs (its RSS measured), 48 slow clients and 64 simultaneous new connections."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from affect_tf.serving import AffectClient, ServingClientError
from affect_tf.serving.server import launch
from tests.conftest import gif_bomb

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

LOAD_CLIENTS = 8  # half REST, half gRPC
REST_THREADS = 8  # fewer worker threads than slow clients: slow clients must not hold one


def rss_mib(pid: int) -> float:
    """A process's resident memory (``VmRSS``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class Load:
    """Clients predicting one crop in a loop until ``stop``; every error is kept."""

    def __init__(self, ports: tuple[int, int], image: bytes) -> None:
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(p, ports, image), daemon=True)
            for p in ["rest", "grpc"] * (LOAD_CLIENTS // 2)
        ]
        for t in self._threads:
            t.start()

    def _run(self, protocol: str, ports: tuple[int, int], image: bytes) -> None:
        grpc_port, rest_port = ports
        client = AffectClient(
            "127.0.0.1", protocol, rest_port=rest_port, grpc_port=grpc_port, retries=0
        )
        inputs = {"image": np.array([image], dtype=object)}
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                client.predict_raw(inputs)
                self.latencies.append(time.perf_counter() - start)
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                self.errors.append(f"{protocol}: {e!r}")

    def stop(self) -> bool:
        """Stops the clients; False when one is still stuck in a request after 30 s."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        return not any(t.is_alive() for t in self._threads)


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    from affect_tf.data.synth import SynthConfig, video_records

    root = tmp_path_factory.mktemp("chaos")
    base = root / "affect"
    shutil.copytree(exported["version"], base / "1")
    (root / "batching.txt").write_text(
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 5000 }\n"
        "num_batch_threads { value: 2 }\n"
    )
    log = (root / "server.log").open("w")
    server = launch(
        [
            f"--model_base_path={base}",
            "--enable_batching",
            f"--batching_parameters_file={root / 'batching.txt'}",
            "--file_system_poll_wait_seconds=0.3",
            f"--rest_api_num_threads={REST_THREADS}",
            "--rest_api_timeout_in_ms=3000",
        ],
        stdout=log,
    )
    image = video_records(SynthConfig(n=1, size=96, seed=1), 0)[0].image
    load = Load((server.grpc_port, server.rest_port), image)
    yield {"server": server, "base": base, "load": load, "image": image, "root": root}
    load.stop()
    server.stop()
    log.close()


def _wait(condition, seconds: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if condition():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"Expected {what} within {seconds} s")


def _status(served) -> list[dict]:
    client = AffectClient("127.0.0.1", "rest", rest_port=served["server"].rest_port, retries=0)
    return client.status()


def _bad_version_is_reported_then_forgotten(served, version: int, make) -> float:
    folder = served["base"] / str(version)
    make(folder)

    def reported() -> bool:
        return any(s["version"] == version and s["error"] for s in _status(served))

    _wait(reported, 30, f"version {version}'s load failure in the status")
    time.sleep(1.0)  # a few polls and retries under load
    assert any(s["version"] < version and s["state"] == "AVAILABLE" for s in _status(served))
    shutil.rmtree(folder)
    return _wait(
        lambda: all(not s["error"] for s in _status(served)),
        30,
        f"the status to forget version {version} once its folder is gone",
    )


def test_corrupt_and_half_written_versions_under_load(served):
    """TF Serving's availability-preserving order: the serving version keeps answering every
    request while a newer version fails to load; the failure is in the status and leaves it
    when the folder goes."""

    def corrupt(folder: Path) -> None:
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(os.urandom(5000))

    def half_written(folder: Path) -> None:
        staging = folder.parent / ".staging"
        shutil.copytree(served["base"] / "1", staging)
        for data in (staging / "variables").glob("variables.data-*"):
            data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
        staging.rename(folder)

    recover = [
        _bad_version_is_reported_then_forgotten(served, 9, corrupt),
        _bad_version_is_reported_then_forgotten(served, 10, half_written),
    ]
    assert max(recover) < 5, recover
    assert served["load"].errors == [], served["load"].errors[:5]


def test_image_bombs_are_refused_without_the_memory(served):
    """A 20000 x 20000 PNG of 388 KB took the server from 2.0 to 8.0 GB; now it is refused from
    its header, over REST and gRPC, and the server's RSS barely moves."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buffer, format="PNG")
    bomb = buffer.getvalue()
    assert len(bomb) < 500_000
    pid = served["server"].process.pid
    before = rss_mib(pid)
    for protocol in ("rest", "grpc"):
        client = AffectClient(
            "127.0.0.1",
            protocol,
            rest_port=served["server"].rest_port,
            grpc_port=served["server"].grpc_port,
            retries=0,
        )
        for _ in range(3):
            with pytest.raises(ServingClientError, match="--max_image_pixels"):
                client.predict_raw({"image": np.array([bomb], dtype=object)})
    grown = rss_mib(pid) - before
    assert grown < 150, f"RSS grew {grown:.0f} MiB under 6 bombs"
    assert served["load"].errors == [], served["load"].errors[:5]


def test_slow_clients_hold_no_worker_and_are_closed(served):
    """48 clients trickling a request (more than the 8 REST worker threads) do not stop a
    prompt client from being answered; the server closes them after --rest_api_timeout_in_ms."""
    import http.client

    port = served["server"].rest_port
    slow = []
    for _ in range(48):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"POST /v1/models/affect:predict HTTP/1.1\r\nHost: x\r\n")
        slow.append(sock)
    for sock in slow[:24]:  # half of them announce a body and never finish it
        sock.sendall(b'Content-Length: 1000\r\n\r\n{"instances"')
    try:
        start = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/v1/models/affect")
        assert connection.getresponse().status == 200
        assert time.monotonic() - start < 2
        connection.close()
        closed_at = []
        for sock in slow:
            sock.settimeout(15)
            assert sock.recv(100) == b""  # closed by the server, not by us
            closed_at.append(time.monotonic() - start)
        assert max(closed_at) < 3 + 3 + 2  # the timeout, waitress' sweep interval, slack
    finally:
        for sock in slow:
            sock.close()
    assert served["load"].errors == [], served["load"].errors[:5]


def test_64_new_connections_at_once_under_load(served):
    """No resets: every one of 64 connections opened at the same moment gets its answer."""
    from tests.conftest import connect_at_once

    statuses, errors = connect_at_once(served["server"].rest_port)
    assert not errors and statuses == [200] * 64
    load = served["load"]
    assert load.errors == [], load.errors[:5]
    assert len(load.latencies) > 100
    assert np.percentile(load.latencies, 99) < 5.0


def test_a_version_swap_under_load_loses_no_request(served):
    """A request used to hang forever across a version swap (and the server then ignored
    SIGTERM): now version 2 replaces version 1 under load with no error and no request slower
    than a few seconds, and every client thread finishes."""
    base = served["base"]
    staging = base / ".staging-2"
    shutil.copytree(base / "1", staging)
    staging.rename(base / "2")  # how `affect-tf export` pushes: complete, then renamed

    def swapped() -> bool:
        states = {s["version"]: s["state"] for s in _status(served)}
        return states.get(2) == "AVAILABLE" and states.get(1) != "AVAILABLE"

    _wait(swapped, 60, "version 2 to replace version 1")
    time.sleep(1.0)  # requests keep flowing to the new version
    load = served["load"]
    count = len(load.latencies)
    assert load.stop(), "a client is still waiting on a request after the swap"
    assert load.errors == [], load.errors[:5]
    assert len(load.latencies) >= count and max(load.latencies) < 10


def _rest_raw(served, path: str, body: bytes) -> tuple[int, str]:
    import http.client
    import json

    connection = http.client.HTTPConnection("127.0.0.1", served["server"].rest_port, timeout=60)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    status, data = response.status, response.read()
    connection.close()
    return status, json.loads(data).get("error", "")


def _grpc_raw(served, inputs: dict, signature: str = "serving_default"):
    """A Predict call with hand-built TensorProtos; (status code name, details)."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(
        f"127.0.0.1:{served['server'].grpc_port}",
        options=[("grpc.max_send_message_length", 64 << 20)],
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "affect"
    request.model_spec.signature_name = signature
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    try:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
        return "OK", ""
    except grpc.RpcError as e:
        return e.code().name, e.details()
    finally:
        channel.close()


def test_animated_gif_bomb_is_refused_from_every_frame(served):
    """Before: a 298 KB GIF whose second frame declared 20000 x 20000 killed the server (the
    in-graph decoder reads every frame; the limit looked at the first). Now every frame counts,
    over REST and gRPC, and the server's RSS barely moves."""
    import base64
    import json

    bombs = [gif_bomb((20000, 20000)), gif_bomb((10000, 10000)), gif_bomb((2000, 2000), 20)]
    pid = served["server"].process.pid
    before = rss_mib(pid)
    for bomb in bombs:
        body = json.dumps({"instances": [{"b64": base64.b64encode(bomb).decode()}]}).encode()
        status, error = _rest_raw(served, "/v1/models/affect:predict", body)
        assert status == 400 and "every frame counted" in error, (status, error)
        client = AffectClient("127.0.0.1", "grpc", grpc_port=served["server"].grpc_port, retries=0)
        with pytest.raises(ServingClientError, match="INVALID_ARGUMENT.*--max_image_pixels"):
            client.predict_raw({"image": np.array([bomb], dtype=object)})
    assert (
        "20000x20000"
        in _rest_raw(
            served,
            "/v1/models/affect:predict",
            json.dumps({"instances": [{"b64": base64.b64encode(bombs[0]).decode()}]}).encode(),
        )[1]
    )
    grown = rss_mib(pid) - before
    assert grown < 150, f"RSS grew {grown:.0f} MiB under 7 GIF bombs"
    assert served["load"].errors == [], served["load"].errors[:5]


def test_declared_tensor_shapes_are_checked_before_any_allocation(served):
    """Before: a 6 KB PredictRequest declaring 2^27 strings took +2.1 GB and 19 s; float tensors
    of huge shape gave UNKNOWN; a dtype enum TF does not know gave UNKNOWN; [-1] was taken as 1.
    Now each is INVALID_ARGUMENT naming the input, in milliseconds, and RSS stays flat."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    def proto(dtype: int, dims: list[int], strings: list[bytes] = ()):
        shape = tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
        )
        return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, string_val=list(strings))

    image = served["image"]
    pid = served["server"].process.pid
    before = rss_mib(pid)
    cases = [
        ({"image": proto(types_pb2.DT_STRING, [2**27], [image])}, "one string per element"),
        ({"image": proto(types_pb2.DT_STRING, [2**31], [image])}, "one string per element"),
        ({"image": proto(types_pb2.DT_STRING, [-1], [image])}, "non-negative dimensions"),
        ({"image": proto(999, [1], [image])}, "declare a TensorFlow dtype. Received: dtype=999"),
    ]
    aligned = [
        ({"image": proto(types_pb2.DT_FLOAT, [2**20, 48, 48, 3])}, "at most 268,435,456 bytes"),
        ({"image": proto(types_pb2.DT_FLOAT, [-5, 48, 48, 3])}, "non-negative dimensions"),
    ]
    start = time.monotonic()
    for signature, group in (("serving_default", cases), ("serving_aligned", aligned)):
        for inputs, expected in group:
            code, details = _grpc_raw(served, inputs, signature)
            assert code == "INVALID_ARGUMENT" and expected in details, (code, details)
            assert "'image'" in details
    assert time.monotonic() - start < 10
    grown = rss_mib(pid) - before
    assert grown < 150, f"RSS grew {grown:.0f} MiB under declared-shape amplification"
    assert served["load"].errors == [], served["load"].errors[:5]


def test_hostile_json_gets_400_not_500(served):
    """Before: nesting of 900 / 5,000 / 100,000 levels, more than 64 dimensions, a ragged
    serving_aligned input and an integer of 5,001 digits each got 500. Now 400 with the field."""
    import json

    path = "/v1/models/affect:predict"
    crop = [[[0.0] * 3] * 48] * 48
    cases = {
        "nested 900": b'{"instances": ' + b"[" * 900 + b"]" * 900 + b"}",
        "nested 5000": b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "nested 100000": b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "65 dims": b'{"instances": ' + b"[" * 65 + b"1" + b"]" * 65 + b"}",
        "ragged aligned": json.dumps(
            {"signature_name": "serving_aligned", "instances": [crop, crop[:40]]}
        ).encode(),
        "5001 digits": b'{"instances": [' + b"7" * 5001 + b"]}",
    }
    for name, body in cases.items():
        status, error = _rest_raw(served, path, body)
        assert status == 400, (name, status, error)
        assert error.startswith(("Expected", "JSON Parse error")), (name, error)
    _, error = _rest_raw(served, path, cases["ragged aligned"])
    assert "ragged" in error and "'image'" in error
    assert served["load"].errors == [], served["load"].errors[:5]


def test_error_messages_name_what_was_sent(served):
    """Before: a PNG bomb's 400 said ``Received: 2147483648x1`` and a percent-encoded
    non-ASCII model name came back decoded as Latin-1. Now the size and the name are the
    client's own."""
    import base64
    import json

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buffer, format="PNG")
    body = json.dumps({"instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}]})
    status, error = _rest_raw(served, "/v1/models/affect:predict", body.encode())
    assert status == 400 and "20000x20000" in error, error
    status, error = _rest_raw(served, "/v1/models/%C3%A9motion:predict", b'{"instances": []}')
    assert status == 404 and "émotion" in error, error
