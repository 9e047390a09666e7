"""The TF Serving deployment files parse as what they claim, and the development server
accepts exactly the flags the production containers are started with."""

from __future__ import annotations

from pathlib import Path

import yaml

from affect_tf.serving.batching import BatchingParameters
from affect_tf.serving.model_config import read_model_config
from affect_tf.serving.monitoring import read_monitoring_config

SERVING = Path(__file__).resolve().parents[2] / "serving"


def _server_args(args: list[str]):
    import argparse

    from affect_tf.cli.serve import add_flags

    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(args)


def test_configs_parse():
    config = read_model_config(SERVING / "models.config")
    (model,) = config.model_config_list.config
    assert model.name == "affect" and model.model_version_policy.latest.num_versions == 2
    batching = BatchingParameters.parse((SERVING / "batching_parameters.txt").read_text())
    assert batching.max_batch_size == 32
    assert read_monitoring_config(SERVING / "monitoring.config") == "/monitoring/prometheus/metrics"


def test_compose_and_kubernetes_use_flags_the_dev_server_takes():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["affect"]
    assert service["image"].startswith("tensorflow/serving:")
    args = _server_args(service["command"])
    assert args.enable_batching and args.port == 8500 and args.rest_api_port == 8501
    docs = list(yaml.safe_load_all((SERVING / "k8s" / "affect-serving.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert _server_args(container["args"]).model_config_file == "/config/models.config"
    assert {d["kind"] for d in docs} == {"Deployment", "Service"}
