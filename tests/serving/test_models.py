"""The server's parts without a network: batching parameters, version policies, the batcher,
TF error messages and the REST JSON formats."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from affect_tf.serving.models import (
    Batcher,
    BatchingParameters,
    ServingError,
    clean_tf_message,
    wanted_versions,
)
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
