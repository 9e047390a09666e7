"""The server's parts without a network: batching parameters, version policies, the batcher,
TF error messages and the REST JSON formats."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from affect_tf.serving.batching import Batcher, BatchingParameters
from affect_tf.serving.errors import ServingError, clean_tf_message
from affect_tf.serving.model_config import wanted_versions
from affect_tf.serving.rest import format_predict, parse_predict_body


def test_batching_parameters_parse():
    text = """
    max_batch_size { value: 16 }  # rows
    batch_timeout_micros { value: 5000 }
    num_batch_threads { value: 3 }
    pad_variable_length_inputs: true
    """
    params = BatchingParameters.parse(text)
    assert params == BatchingParameters(16, 5000, 3, 100)
    with pytest.raises(ValueError, match="max_batchsize=4 in f.txt"):
        BatchingParameters.parse("max_batchsize { value: 4 }", "f.txt")
    with pytest.raises(ValueError, match=">= 1"):
        BatchingParameters.parse("max_batch_size { value: 0 }")
    # A malformed file is an error naming it, not the defaults.
    with pytest.raises(ValueError, match="Received: 'max_batch_size = 16' in f.txt"):
        BatchingParameters.parse("max_batch_size = 16", "f.txt")


def test_version_policies():
    from tensorflow_serving.config import model_server_config_pb2 as pb

    policy = pb.ModelConfig().model_version_policy
    assert wanted_versions(policy, [3, 1, 2]) == [3]  # default: the latest one
    policy.latest.num_versions = 2
    assert wanted_versions(policy, [3, 1, 2]) == [2, 3]
    policy.specific.versions.extend([1, 7])
    assert wanted_versions(policy, [3, 1, 2]) == [1]
    policy.all.SetInParent()
    assert wanted_versions(policy, [3, 1, 2]) == [1, 2, 3]


def test_batcher_merges_concurrent_requests_and_isolates_a_failure():
    calls = []

    def fn(inputs):
        x = inputs["x"]
        calls.append(len(x))
        if np.any(x < 0):
            raise ServingError(__import__("grpc").StatusCode.INVALID_ARGUMENT, "negative")
        return {"y": x * 2}

    batcher = Batcher(fn, BatchingParameters(8, 200_000, 1, 10), "t")
    results, errors = {}, {}
    start = threading.Barrier(6)

    def client(i):
        start.wait()
        try:
            results[i] = batcher({"x": np.full((1 + i % 2,), -1.0 if i == 3 else float(i))})
        except ServingError as e:
            errors[i] = e.message

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert errors == {3: "negative"}
    for i, out in results.items():
        np.testing.assert_array_equal(out["y"], np.full((1 + i % 2,), 2.0 * i))
    # 9 rows from 6 clients in batches of at most 8: merged (fewer calls than requests, plus
    # the failing batch's one-by-one retries).
    assert max(calls) > 2 and batcher.batches < 6


def test_clean_tf_message():
    message = (
        "Graph execution error:\n\nDetected at node map/while/decode_image/DecodeImage defined "
        "at (most recent call last):\n<stack traces unavailable>\njpeg::Uncompress failed. "
        "Invalid JPEG data or crop window.\n\t [[{{node map/while/decode_image/DecodeImage}}]] "
        "[Op:__inference_signature_wrapper_serve_images_2728]"
    )
    assert clean_tf_message(message) == "jpeg::Uncompress failed. Invalid JPEG data or crop window."


def test_rest_formats():
    inputs, style = parse_predict_body({"instances": [{"b64": "aGk="}, {"b64": "eW8="}]}, ["image"])
    assert style == "row" and inputs == {"image": [b"hi", b"yo"]}
    inputs, style = parse_predict_body(
        {"instances": [{"image": {"b64": "aGk="}, "landmarks": [1.0] * 10}]},
        ["image", "landmarks"],
    )
    assert inputs["image"] == [b"hi"] and inputs["landmarks"] == [[1.0] * 10]
    inputs, style = parse_predict_body({"inputs": {"image": [[1, 2]]}}, ["image"])
    assert style == "columnar" and inputs == {"image": [[1, 2]]}
    for body, match in (
        ({"instances": []}, "non-empty"),
        ({}, "exactly one"),
        ({"instances": [1], "inputs": [1]}, "exactly one"),
        ({"instances": [{"b64": "***"}]}, "base64"),
        ({"instances": [1, 2]}, "named instances"),
    ):
        with pytest.raises(ServingError, match=match):
            parse_predict_body(
                body, ["image", "landmarks"] if match == "named instances" else ["image"]
            )
    outputs = {"valence": np.array([0.5, -0.5]), "au": np.zeros((2, 2))}
    assert format_predict(outputs, "row") == {
        "predictions": [{"valence": 0.5, "au": [0.0, 0.0]}, {"valence": -0.5, "au": [0.0, 0.0]}]
    }
    assert format_predict(outputs, "columnar")["outputs"]["valence"] == [0.5, -0.5]
    assert format_predict({"v": np.array([1.0])}, "columnar") == {"outputs": [1.0]}


def test_poll_and_reload_concurrently_keep_one_consistent_state(exported, tmp_path, monkeypatch):
    """A poll thread and a reload thread racing over the same models: no exception, every
    version loaded at most once per time it was wanted, and the final state is what the last
    config asks for (all versions served, every state AVAILABLE)."""
    from affect_tf.serving import manager as manager_module
    from affect_tf.serving.model_config import single_model_config

    base = tmp_path / "affect"
    for version in (1, 2):
        shutil.copytree(exported["version"], base / str(version))
    loads: list[tuple[str, int]] = []
    real = manager_module.ServedVersion

    def counted(name, version, *args):
        loads.append((name, version))
        return real(name, version, *args)

    monkeypatch.setattr(manager_module, "ServedVersion", counted)
    latest = single_model_config("affect", str(base))  # latest 1: version 2
    every = single_model_config("affect", str(base))
    every.model_config_list.config[0].model_version_policy.all.SetInParent()
    other = single_model_config("other", str(base))  # "affect" unconfigured: unloaded
    manager = manager_module.ModelManager(latest, poll_seconds=0)
    manager.start()
    errors: list[BaseException] = []

    def run(fn, *args):
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = []
    for config in (every, other, latest, every):
        threads.append(threading.Thread(target=run, args=(manager.reload, config)))
        threads.append(threading.Thread(target=run, args=(manager.poll,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    manager.reload(every)
    try:
        assert not errors, errors
        assert manager.available_versions("affect") == [1, 2]
        assert [s for _, s, _ in manager.status("affect")] == ["AVAILABLE", "AVAILABLE"]
        # With one poll at a time no version is loaded while already served: each load of a
        # version is preceded by its unload, so loads of a version <= configs that wanted it.
        assert loads.count(("affect", 1)) <= 3
        assert loads.count(("affect", 2)) <= 5
        assert manager.resolve("affect").version == 2
    finally:
        manager.stop()


def test_batcher_threads_survive_bursts_and_close_fails_queued_requests():
    """Several batch threads racing over bursts of requests: every request gets its own rows,
    every batch thread is alive afterwards (one used to die on an empty queue), and closing the
    batcher (a version swap) fails queued requests at once instead of leaving them waiting."""
    import time

    def fn(inputs):
        time.sleep(0.002)
        return {"y": inputs["x"] * 2.0}

    batcher = Batcher(fn, BatchingParameters(4, 2_000, 4, 1000), "burst")
    errors, wrong = [], []

    def client(i):
        try:
            x = np.full((1, 2), float(i))
            if not np.array_equal(batcher({"x": x})["y"], x * 2.0):
                wrong.append(i)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    for _ in range(30):
        burst = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in burst:
            t.start()
        for t in burst:
            t.join(timeout=5)
    assert not errors and not wrong and not any(t.is_alive() for t in burst)
    assert all(t.is_alive() for t in batcher._threads)

    slow = Batcher(lambda inputs: time.sleep(1.0) or inputs, BatchingParameters(1, 1, 1, 100), "s")
    results: list = []

    def waiting():
        try:
            results.append(slow({"x": np.zeros((1, 1))}))
        except ServingError as e:
            results.append(e)

    queued = [threading.Thread(target=waiting) for _ in range(4)]
    for t in queued:
        t.start()
    time.sleep(0.2)
    start = time.monotonic()
    # Unloading drains what was queued for a bounded time (the version stays alive for the
    # requests that hold it, as TF Serving's handles keep it), then fails the rest at once.
    slow.close(drain_seconds=1.5)
    for t in queued:
        t.join(timeout=5)
    assert time.monotonic() - start < 3.5 and len(results) == 4
    answered = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ServingError)]
    assert 2 <= len(answered) < 4 and refused and refused[0].code.name == "UNAVAILABLE"

    quick = Batcher(
        lambda inputs: time.sleep(0.05) or inputs, BatchingParameters(2, 1000, 1, 100), "q"
    )
    done: list = []
    ready = threading.Barrier(9)

    def submit():
        ready.wait()
        done.append(quick({"x": np.ones((1, 1))}))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(0.02)  # all 8 queued (4 batches of 2, 50 ms each) before the unload starts
    quick.close()  # everything queued is answered before the threads stop
    for t in threads:
        t.join(timeout=5)
    assert len(done) == 8 and not any(t.is_alive() for t in quick._threads)


def test_a_broken_new_version_never_takes_down_the_serving_one(exported, tmp_path):
    """TF Serving's availability: a corrupt newest version is reported (END + its error) and
    retried, the serving version keeps answering; when the bad folder goes the status recovers;
    a good newer version is loaded before the old one is unloaded."""
    from affect_tf.serving import manager as manager_module
    from affect_tf.serving.model_config import single_model_config

    base = tmp_path / "affect"
    shutil.copytree(exported["version"], base / "1")
    manager = manager_module.ModelManager(single_model_config("affect", str(base)), poll_seconds=0)
    manager.start()
    try:
        assert manager.resolve("affect").version == 1
        (base / "9").mkdir()
        (base / "9" / "saved_model.pb").write_bytes(np.random.default_rng(0).bytes(5000))
        manager.poll()
        assert manager.resolve("affect").version == 1  # still serving
        status = {v: (s, m) for v, s, m in manager.status("affect")}
        assert status[1] == ("AVAILABLE", "") and status[9][0] == "END" and status[9][1]
        shutil.rmtree(base / "9")
        manager.poll()
        assert [v for v, _, _ in manager.status("affect")] == [1]
        shutil.copytree(exported["version"], base / "2")
        manager.poll()
        assert manager.resolve("affect").version == 2 and manager.available_versions("affect") == [
            2
        ]
    finally:
        manager.stop()


def test_request_limits_refuse_bombs_and_floods_before_decoding(exported):
    """An image over --max_image_pixels (read from its header: the 40 KB PNG below is 64 MP of
    zeros), too many pixels in one request, or too many instances without batching: each an
    INVALID_ARGUMENT naming the flag, before TF decodes anything."""
    import io

    from PIL import Image

    from affect_tf.serving.options import RequestLimits
    from affect_tf.serving.servable import ServedVersion

    served = ServedVersion(
        "affect", 1, exported["version"], None, RequestLimits(4, 10**6, 2 * 10**6)
    )
    buffer = io.BytesIO()
    Image.new("L", (8000, 8000)).save(buffer, format="PNG")
    bomb = buffer.getvalue()
    assert len(bomb) < 100_000
    buffer = io.BytesIO()
    Image.new("RGB", (900, 900)).save(buffer, format="JPEG")
    photo = buffer.getvalue()
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, format="JPEG")
    tiny = buffer.getvalue()
    zeros = np.zeros((1, 10), np.float32)
    cases = [
        ([bomb], "--max_image_pixels"),
        ([photo] * 3, "--max_request_pixels"),
        ([tiny] * 5, "--max_request_instances"),
    ]
    for images, flag in cases:
        inputs = {"image": images, "landmarks": np.repeat(zeros, len(images), 0)}
        with pytest.raises(ServingError, match=flag) as error:
            served.predict("serving_landmarks", inputs)
        assert error.value.code.name == "INVALID_ARGUMENT"
    ok = {"image": [photo], "landmarks": zeros}
    assert served.predict("serving_landmarks", ok)["valence"].shape == (1,)
    with pytest.raises(ValueError, match="max_image_pixels >= 1"):
        RequestLimits(max_image_pixels=0)
    served.close()


def test_a_grpc_port_in_use_is_an_error_not_a_second_server():
    """gRPC's default SO_REUSEPORT let a second server bind a busy port (the kernel then split
    the traffic); now the second bind is refused with the flag named."""
    from affect_tf.serving.grpc_service import make_grpc_server
    from affect_tf.serving.monitoring import Metrics

    first, port = make_grpc_server(None, 0, Metrics(), host="127.0.0.1")
    first.start()
    try:
        with pytest.raises(OSError, match=f"--port={port} \\(in use"):
            make_grpc_server(None, port, Metrics(), host="127.0.0.1")
    finally:
        first.stop(0)


def test_rest_requests_that_used_to_500_or_hang_are_400s(exported):
    """On a real loopback REST server: a non-numeric Content-Length, a list signature_name,
    landmarks of 1e30 (a 200 with a literal NaN before) or NaN are 400s; a body shorter than its
    Content-Length releases the thread after the read timeout instead of holding it."""
    import base64
    import http.client
    import json
    import socket
    import time

    from affect_tf.serving.manager import ModelManager
    from affect_tf.serving.model_config import single_model_config
    from affect_tf.serving.monitoring import Metrics
    from affect_tf.serving.rest import make_rest_server
    from tests.conftest import jpeg_bytes

    base = exported["version"].parent
    manager = ModelManager(single_model_config("affect", str(base)), poll_seconds=0)
    manager.start()
    server = make_rest_server(manager, 0, Metrics(), None, "127.0.0.1", timeout=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.port

    def post(body: bytes, headers: dict) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/v1/models/affect:predict")
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(body)
        response = conn.getresponse()
        return response.status, response.read().decode()

    try:
        assert post(b"{}", {"Content-Length": "abc"})[0] == 400
        body = json.dumps({"signature_name": ["x"], "instances": [{"b64": "aGk="}]}).encode()
        status, text = post(body, {"Content-Length": str(len(body))})
        assert status == 400 and "signature_name" in text
        jpeg = {"b64": base64.b64encode(jpeg_bytes()).decode()}
        for value in (1e30, float("nan")):
            instance = {"image": jpeg, "landmarks": [value] * 10}
            body = json.dumps({"signature_name": "serving_landmarks", "instances": [instance]})
            status, text = post(body.encode(), {"Content-Length": str(len(body))})
            assert status == 400 and "landmarks" in text and "NaN" not in text.split(":", 1)[0]
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/models/affect:predict HTTP/1.1\r\nHost: x\r\n"
                b'Content-Length: 1000\r\n\r\n{"instances"'
            )
            assert sock.recv(100) == b""  # closed by the server after its read timeout
        assert time.monotonic() - start < 5
    finally:
        server.shutdown()
        manager.stop()


def test_grpc_dtypes_are_as_strict_as_tf_serving(exported):
    """A float64 tensor for a float32 input was converted silently; TF Serving refuses it."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from affect_tf.serving.grpc_service import predict
    from affect_tf.serving.manager import ModelManager
    from affect_tf.serving.model_config import single_model_config
    from tests.conftest import jpeg_bytes

    manager = ModelManager(
        single_model_config("affect", str(exported["version"].parent)), poll_seconds=0
    )
    manager.start()
    try:
        for dtype in (np.float64, np.float32):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "affect"
            request.model_spec.signature_name = "serving_landmarks"
            request.inputs["image"].CopyFrom(tf.make_tensor_proto([jpeg_bytes()]))
            landmarks = np.full((1, 10), 10.0, dtype)
            request.inputs["landmarks"].CopyFrom(tf.make_tensor_proto(landmarks))
            if dtype is np.float64:
                with pytest.raises(ServingError, match="to be float32 but float64 is provided"):
                    predict(manager, request)
            else:
                assert predict(manager, request).outputs["valence"].float_val
    finally:
        manager.stop()


def test_64_clients_connecting_at_once_are_all_served(exported):
    """The REST listener's backlog was 5: 64 simultaneous new connections saw resets."""
    from affect_tf.serving.manager import ModelManager
    from affect_tf.serving.model_config import single_model_config
    from affect_tf.serving.monitoring import Metrics
    from affect_tf.serving.rest import make_rest_server
    from tests.conftest import connect_at_once

    manager = ModelManager(
        single_model_config("affect", str(exported["version"].parent)), poll_seconds=0
    )
    manager.start()
    server = make_rest_server(manager, 0, Metrics(), None, "127.0.0.1", timeout=10.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        statuses, errors = connect_at_once(server.port)
        assert not errors and statuses == [200] * 64
    finally:
        server.shutdown()
        manager.stop()


def test_chunked_bodies_are_read_and_a_busy_rest_port_is_an_error(exported):
    """A chunked body was parsed as a second request; now it gives the same answer as the
    body sent with a Content-Length. A second REST server on a busy port is refused by name."""
    import base64
    import http.client
    import json

    from affect_tf.serving.manager import ModelManager
    from affect_tf.serving.model_config import single_model_config
    from affect_tf.serving.monitoring import Metrics
    from affect_tf.serving.rest import make_rest_server
    from tests.conftest import jpeg_bytes

    manager = ModelManager(
        single_model_config("affect", str(exported["version"].parent)), poll_seconds=0
    )
    manager.start()
    server = make_rest_server(manager, 0, Metrics(), None, "127.0.0.1", timeout=10.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    body = json.dumps({"instances": [{"b64": base64.b64encode(jpeg_bytes()).decode()}]}).encode()
    answers = []
    try:
        for chunked in (False, True):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            if chunked:
                pieces = iter([body[:7], body[7:100], body[100:]])
                connection.request(
                    "POST", "/v1/models/affect:predict", body=pieces, encode_chunked=True
                )
            else:
                connection.request("POST", "/v1/models/affect:predict", body=body)
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())))
            # The same connection serves a second request (keep-alive after a chunked one).
            connection.request("GET", "/v1/models/affect")
            assert connection.getresponse().status == 200
            connection.close()
        assert answers[0][0] == answers[1][0] == 200
        assert answers[0][1] == answers[1][1]
        with pytest.raises(OSError, match=f"--rest_api_port={server.port} \\(in use"):
            make_rest_server(manager, server.port, Metrics(), None, "127.0.0.1")
    finally:
        server.shutdown()
        manager.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
