"""`affect-tf serve` as a real process on loopback, queried over REST and gRPC by AffectClient:
labels and version pick-up, every bad request answered clearly while the server keeps serving,
batching of concurrent clients, monitoring, and the same numbers through every path."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from affect_tf.serving import AffectClient, ServingClientError
from affect_tf.serving.server import free_port, launch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    base = root / "affect"
    shutil.copytree(exported["version"], base / "1")
    config = root / "models.config"
    config.write_text(
        f"""model_config_list {{
  config {{
    name: "affect"
    base_path: "{base}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
}}
"""
    )
    (root / "batching.txt").write_text(
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 20000 }\n"
        "num_batch_threads { value: 2 }\n"
    )
    (root / "monitoring.config").write_text(
        'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n'
    )
    log = (root / "server.log").open("w")
    try:
        launched = launch(
            [
                f"--model_config_file={config}",
                "--enable_batching=true",
                f"--batching_parameters_file={root / 'batching.txt'}",
                f"--monitoring_config_file={root / 'monitoring.config'}",
                "--file_system_poll_wait_seconds=0.5",
            ],
            stdout=log,
        )
    except RuntimeError as e:
        pytest.fail(f"{e}\n" + (root / "server.log").read_text()[-3000:])
    grpc_port, rest_port = launched.grpc_port, launched.rest_port
    yield {"grpc": grpc_port, "rest": rest_port, "base": base, "root": root}
    start = time.monotonic()
    launched.stop()  # SIGTERM: drains, then exits within its bound (DRAIN_SECONDS)
    log.close()
    assert launched.process.returncode == 0 and time.monotonic() - start < 15


@pytest.fixture(scope="module")
def records():
    from affect_tf.data.synth import SynthConfig, video_records

    return video_records(SynthConfig(n=8, size=96, frames_per_video=8, seed=2), 0)


def _clients(server, **kwargs):
    return [
        AffectClient("127.0.0.1", p, rest_port=server["rest"], grpc_port=server["grpc"], **kwargs)
        for p in ("rest", "grpc")
    ]


def _post(server, path: str, body) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server["rest"], timeout=30)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", path, body=data)
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, payload


def test_status_metadata_and_predict_over_rest_and_grpc(server, records):
    images = [r.image for r in records[:3]]
    tables = []
    for client in _clients(server):
        assert [s["state"] for s in client.status()] == ["AVAILABLE"]
        meta = client.metadata()
        assert meta["version"] == 1
        assert set(meta["signature_def"]) == {
            "serving_default",
            "serving_landmarks",
            "serving_examples",
            "serving_aligned",
        }
        table = client.predict(images)
        assert (
            len(table) == 3
            and table["expression"]
            .isin(
                ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
            )
            .all()
        )
        tables.append(table)
    np.testing.assert_allclose(
        tables[0].drop(columns="expression").to_numpy(float),
        tables[1].drop(columns="expression").to_numpy(float),
        atol=1e-6,
    )
    # TF Serving's row format with b64 and its response shape.
    status, body = _post(
        server,
        "/v1/models/affect:predict",
        {"instances": [{"b64": base64.b64encode(images[0]).decode()}]},
    )
    assert status == 200 and set(body["predictions"][0]) == {
        "expression",
        "au",
        "valence",
        "arousal",
    }
    assert body["predictions"][0]["valence"] == pytest.approx(tables[0]["valence"][0], abs=1e-6)


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(server, records):
    jpeg = records[0].image
    cases = [
        ({"instances": [{"b64": base64.b64encode(b"hello").decode()}]}, "JPEG, PNG"),
        ({"instances": [{"b64": base64.b64encode(jpeg[: len(jpeg) // 2]).decode()}]}, "truncated"),
        ({"instances": []}, "non-empty"),
        ({"inputs": {"picture": [{"b64": "aGk="}]}}, "input tensor alias not found"),
        (
            {"inputs": [{"b64": base64.b64encode(jpeg).decode()}] * 9},
            "exceeds the maximum batch size 8",
        ),
        ({"signature_name": "classify", "instances": [1]}, "not found in signature def"),
        (b"{not json", "JSON Parse error"),
    ]
    for body, match in cases:
        status, payload = _post(server, "/v1/models/affect:predict", body)
        assert status == 400 and match in payload["error"], (match, payload)
    assert _post(server, "/v1/models/nope:predict", {"instances": [1]})[0] == 404
    assert _post(server, "/v1/models/affect/versions/9:predict", {"instances": [1]})[0] == 404
    assert _post(server, "/v2/whatever", {})[0] == 404

    rest, grpc_client = _clients(server, retries=0)
    for client in (rest, grpc_client):
        with pytest.raises(ServingClientError) as error:
            client.predict([b"GIF89a-not-really"])
        assert error.value.status == "INVALID_ARGUMENT"
        with pytest.raises(ServingClientError, match="input tensor alias not found"):
            client.predict_raw({"picture": np.array([jpeg], dtype=object)})
        with pytest.raises(ServingClientError, match="shape"):
            client.predict_raw({"image": np.zeros((1, 10, 10, 3), np.float32)}, "serving_aligned")
    # Still serving.
    assert len(grpc_client.predict([jpeg])) == 1


def test_concurrent_clients_are_batched_and_a_bad_one_fails_alone(server, records):
    client = AffectClient("127.0.0.1", "grpc", grpc_port=server["grpc"], retries=0)
    good = [r.image for r in records[:4]]
    expected = client.predict(good)
    results, errors = {}, {}
    barrier = threading.Barrier(12)

    def call(i):
        barrier.wait()
        try:
            results[i] = client.predict(
                [b"\xff\xd8\xff broken"] if i == 5 else good[i % 4 : i % 4 + 1]
            )
        except ServingClientError as e:
            errors[i] = e.status

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == {5: "INVALID_ARGUMENT"}
    for i, table in results.items():
        assert table["valence"][0] == pytest.approx(expected["valence"][i % 4], abs=1e-5)
    connection = http.client.HTTPConnection("127.0.0.1", server["rest"], timeout=30)
    connection.request("GET", "/monitoring/prometheus/metrics")
    metrics = connection.getresponse().read().decode()
    assert 'status="INVALID_ARGUMENT"' in metrics and 'api="predict/grpc",status="OK"' in metrics


def test_parity_across_keras_savedmodel_rest_grpc_and_tflite(server, records, tiny_model, exported):
    """The same faces through every path give the same outputs (|diff| <= 1e-4)."""
    from affect_tf.data.preprocess import preprocess_face
    from affect_tf.export import tflite
    from affect_tf.export.saved_model import serving_outputs

    size = tiny_model.affect_config.image_size
    images = [r.image for r in records]
    landmarks = np.stack([np.asarray(r.landmarks, np.float32).reshape(10) for r in records])
    faces = np.stack(
        [
            preprocess_face(r.image, lm, np.asarray(r.bbox, np.float32), size, 0.25).numpy()
            for r, lm in zip(records, landmarks, strict=True)
        ]
    )
    names = ("expression", "au", "valence", "arousal")
    paths = {
        "keras": {
            k: np.asarray(v)
            for k, v in serving_outputs(tiny_model.predict(faces, verbose=0)).items()
        }
    }
    loaded = tf.saved_model.load(str(exported["version"]))
    paths["saved_model:serving_landmarks"] = {
        k: v.numpy()
        for k, v in loaded.signatures["serving_landmarks"](
            image=tf.constant(images), landmarks=tf.constant(landmarks)
        ).items()
    }
    paths["saved_model:serving_aligned"] = {
        k: v.numpy()
        for k, v in loaded.signatures["serving_aligned"](image=tf.constant(faces)).items()
    }
    for client in _clients(server, batch_size=4):
        table = client.predict(images, landmarks=landmarks)
        paths[f"{client.protocol}:serving_landmarks"] = {
            "expression": table[
                ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
            ].to_numpy(),
            "au": table[[c for c in table.columns if c.startswith("AU")]].to_numpy(),
            "valence": table["valence"].to_numpy(),
            "arousal": table["arousal"].to_numpy(),
        }
        paths[f"{client.protocol}:serving_aligned"] = client.predict_aligned(faces)
    paths["tflite_fp32"] = tflite.run(exported["tflite"], faces)
    reference = paths["keras"]
    assert reference["expression"].shape == (8, 8)
    for path, outputs in paths.items():
        for name in names:
            np.testing.assert_allclose(
                np.asarray(outputs[name]).reshape(reference[name].shape),
                reference[name],
                atol=1e-4,
                err_msg=f"{path} {name}",
            )


def test_new_version_is_picked_up_and_labels_route(server, records):
    rest, grpc_client = _clients(server, retries=0)
    canary = AffectClient("127.0.0.1", "grpc", grpc_port=server["grpc"], label="canary", retries=0)
    with pytest.raises(ServingClientError) as error:
        canary.metadata()
    assert error.value.status == "NOT_FOUND"
    # Push version 2 the way a Pusher does: write elsewhere, then rename into place.
    staging = server["base"] / ".staging-2"
    shutil.copytree(server["base"] / "1", staging)
    staging.rename(server["base"] / "2")
    deadline = time.monotonic() + 90
    while [s["state"] for s in rest.status()] != ["AVAILABLE", "AVAILABLE"]:
        assert time.monotonic() < deadline, rest.status()
        time.sleep(0.5)
    assert grpc_client.metadata()["version"] == 2 and rest.metadata()["version"] == 2
    assert canary.metadata()["version"] == 2
    stable = AffectClient("127.0.0.1", "rest", rest_port=server["rest"], label="stable")
    assert stable.metadata()["version"] == 1
    pinned = AffectClient("127.0.0.1", "rest", rest_port=server["rest"], version=1)
    assert len(pinned.predict([records[0].image])) == 1


def test_client_retries_unavailable_with_backoff():
    client = AffectClient("127.0.0.1", "rest", rest_port=free_port(), retries=2, backoff=0.05)
    start = time.monotonic()
    with pytest.raises(ServingClientError) as error:
        client.status()
    assert error.value.status == "UNAVAILABLE"
    assert time.monotonic() - start >= 0.05 + 0.1  # two waits: 0.05 s, then 0.1 s


def test_serve_flag_errors_exit_cleanly(tmp_path, capsys):
    from affect_tf.cli import main

    assert main(["serve", f"--model_base_path={tmp_path / 'nope'}"]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "b.txt").write_text("max_batch { value: 3 }")
    code = main(
        [
            "serve",
            f"--model_base_path={tmp_path}",
            "--enable_batching",
            f"--batching_parameters_file={tmp_path / 'b.txt'}",
        ]
    )
    assert code == 2 and "max_batch=3" in capsys.readouterr().err
