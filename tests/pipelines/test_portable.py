"""Beam beyond the in-process runner, on loopback: the pipeline's data half (FaceExampleGen,
StatisticsGen, Transform) through ``PortableRunner`` against Beam's own Python job service with
an ``EXTERNAL`` worker pool (the job/worker protocol a Flink or Spark job server speaks), both
started and stopped here; and the default local runner never reaching for the network."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"Expected the Beam service to start. Received: exit {process.returncode}"
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"Expected a Beam service on port {port} within {seconds} s")


def test_the_local_runner_is_named_and_never_downloads(caplog):
    """Beam 2.77's default runner tries to download Prism from GitHub on every pipeline; ours
    names the FnApiRunner, so a pipeline runs without touching the network."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from affect_tf.pipeline.config import PipelineConfig

    args = PipelineConfig().beam_pipeline_args()
    assert args[0] == "--runner=FnApiRunner"
    with caplog.at_level(logging.INFO):
        with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
            _ = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2)
    assert "prism" not in caplog.text.lower()
    # Two worker processes: the same runner in multi-processing mode.
    args = PipelineConfig(beam_workers=2).beam_pipeline_args()
    assert "--direct_running_mode=multi_processing" in args and args[0] == "--runner=FnApiRunner"


def test_a_runner_beam_does_not_have_is_a_config_error():
    from affect_tf.pipeline.config import ConfigError, PipelineConfig

    with pytest.raises(ConfigError, match="--runner=FlinkRunnr in beam_args"):
        PipelineConfig(beam_args=("--runner=FlinkRunnr",)).beam_pipeline_args()
    flink = ("--runner", "FlinkRunner", "--flink_master=host:8081")
    assert PipelineConfig(beam_args=flink).beam_pipeline_args() == list(flink)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(600)  # a worker that never connects would otherwise wait for ever
def test_data_half_through_the_portable_runner(tmp_path):
    from tfx import v1 as tfx

    from affect_tf.pipeline.config import PipelineConfig
    from affect_tf.pipeline.inputs import prepare_inputs
    from pipelines.affect import create_data_pipeline

    job_port, pool_port = _free_port(), _free_port()
    # The worker pool starts each SDK worker as `python -c ...` from PATH (not its own
    # interpreter): that `python` must be this environment's.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": path}
    job_log = (tmp_path / "job_service.log").open("w")
    services = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.portability.local_job_service_main",
                f"--port={job_port}",
            ],
            stdout=job_log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.worker.worker_pool_main",
                f"--service_port={pool_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        ),
    ]
    try:
        _wait_for_port(job_port, services[0])
        _wait_for_port(pool_port, services[1])
        beam_args = (
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{pool_port}",
        )
        config = PipelineConfig.load(
            {},
            output_root=str(tmp_path / "out"),
            synth_n=64,
            synth_size=64,
            preset="tiny",
            beam_args=beam_args,
            enable_cache=False,
        )
        tfx.orchestration.LocalDagRunner().run(create_data_pipeline(config, prepare_inputs(config)))
    finally:
        for service in services:
            service.terminate()
        for service in services:
            service.wait(timeout=30)
        job_log.close()
    log = (tmp_path / "job_service.log").read_text()
    # FaceExampleGen, StatisticsGen and Transform: three Beam jobs, all through the job service.
    assert log.count("with state DONE") == 3, log[-2000:]
    root = Path(config.pipeline_root)
    examples = list((root / "FaceExampleGen" / "examples").rglob("*.gz"))
    assert examples and all(f.stat().st_size > 0 for f in examples)
    assert list((root / "StatisticsGen").rglob("FeatureStats.pb"))
    assert list((root / "Transform" / "transform_graph").rglob("transform_fn/saved_model.pb"))
    assert list((root / "Transform" / "post_transform_stats").rglob("FeatureStats.pb"))
    assert "prism" not in log.lower()
