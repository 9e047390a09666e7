"""``affect-tf serve``: a development model server speaking TF Serving's protocol.

Production runs the real ``tensorflow/serving`` image (``serving/``); it cannot be installed
on machines without Docker (it is on neither PyPI nor Debian), so this server gives development
and the tests the same gRPC PredictionService/ModelService (the ``tensorflow-serving-api``
protos), the same REST API and error shapes, and the same flags as ``tensorflow_model_server``:

    affect-tf serve --port=8500 --rest_api_port=8501 --model_name=affect \\
        --model_base_path=runs/demo/serving/affect --enable_batching

It loads the newest version under the base path (or what ``--model_config_file`` asks for),
picks up newly pushed versions without a restart, and batches concurrent requests.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from affect_tf.serving.batching import BatchingParameters
from affect_tf.serving.manager import ModelManager
from affect_tf.serving.model_config import read_model_config, single_model_config
from affect_tf.serving.monitoring import Metrics, read_monitoring_config
from affect_tf.serving.options import RequestLimits, ServerOptions

log = logging.getLogger("affect_tf.serving")


class ModelServer:
    """The running server: model manager, gRPC and REST front-ends."""

    def __init__(self, options: ServerOptions) -> None:
        if bool(options.model_config_file) == bool(options.model_base_path):
            raise ValueError(
                "Expected exactly one of --model_base_path or --model_config_file. Received: "
                f"model_base_path={options.model_base_path!r}, "
                f"model_config_file={options.model_config_file!r}"
            )
        if options.model_config_file:
            config = read_model_config(options.model_config_file)
        else:
            if not Path(options.model_base_path).is_dir():
                raise ValueError(
                    "Expected --model_base_path to be a folder of numeric SavedModel versions. "
                    f"Received: {options.model_base_path!r} (not a folder)"
                )
            config = single_model_config(
                options.model_name, str(Path(options.model_base_path).resolve())
            )
        batching = None
        if options.enable_batching:
            batching = BatchingParameters()
            if options.batching_parameters_file:
                path = Path(options.batching_parameters_file)
                if not path.is_file():
                    raise ValueError(
                        f"Expected a batching parameters file. Received: {str(path)!r} (not found)"
                    )
                batching = BatchingParameters.parse(path.read_text(), str(path))
        metrics_path = None
        if options.monitoring_config_file:
            metrics_path = read_monitoring_config(options.monitoring_config_file)
        self.metrics = Metrics()
        limits = RequestLimits(
            options.max_request_instances, options.max_image_pixels, options.max_request_pixels
        )
        self.manager = ModelManager(config, batching, options.file_system_poll_wait_seconds, limits)
        self.options = options
        self.metrics_path = metrics_path
        self.grpc_server = None
        self.rest_server = None
        self.grpc_port = None
        self.rest_port = None
        self._stopped = threading.Event()

    def start(self) -> None:
        from affect_tf.serving.grpc_service import make_grpc_server
        from affect_tf.serving.rest import make_rest_server

        self.manager.start()
        options = self.options
        if options.model_config_file and options.model_config_file_poll_wait_seconds > 0:
            threading.Thread(target=self._watch_config, daemon=True).start()
        self.grpc_server, self.grpc_port = make_grpc_server(
            self.manager, options.port, self.metrics, options.grpc_max_threads, options.host
        )
        self.grpc_server.start()
        log.info("Running gRPC ModelServer at %s:%s ...", options.host, self.grpc_port)
        if options.rest_api_port:
            self.rest_server = make_rest_server(
                self.manager,
                options.rest_api_port,
                self.metrics,
                self.metrics_path,
                options.host,
                timeout=options.rest_api_timeout_in_ms / 1000,
                threads=options.rest_api_num_threads,
            )
            self.rest_port = self.rest_server.port
            threading.Thread(target=self.rest_server.serve_forever, daemon=True).start()
            log.info("Exporting HTTP/REST API at:%s:%s ...", options.host, self.rest_port)

    def _watch_config(self) -> None:
        """Re-reads ``--model_config_file`` and applies it when it changed (new labels,
        policies or models), as TF Serving's ``--model_config_file_poll_wait_seconds``."""
        path = Path(self.options.model_config_file)
        last = path.read_text()
        while not self._stopped.wait(self.options.model_config_file_poll_wait_seconds):
            try:
                text = path.read_text()
                if text != last:
                    self.manager.reload(read_model_config(path))
                    last = text
                    log.info("applied the changed model config %s", path)
            except (OSError, ValueError) as e:
                log.error("model config %s not applied: %s", path, e)

    def stop(self) -> None:
        self._stopped.set()
        if self.rest_server is not None:
            self.rest_server.shutdown()
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=1).wait()
        self.manager.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class LocalServer:
    """An ``affect-tf serve`` child process and its ports (see ``launch``)."""

    process: subprocess.Popen
    grpc_port: int
    rest_port: int

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def launch(flags: list[str], stdout=subprocess.DEVNULL, timeout: float = 180.0) -> LocalServer:
    """Starts ``affect-tf serve FLAGS`` on free loopback ports in a child process and returns
    once a model version is AVAILABLE (tests, benchmarks, notebooks).

    Raises:
        RuntimeError: The process exited or no version became available within ``timeout``.
    """
    from affect_tf.serving.client import AffectClient, ServingClientError

    grpc_port, rest_port = free_port(), free_port()
    command = [sys.executable, "-m", "affect_tf.cli", "serve", f"--port={grpc_port}"]
    command += [f"--rest_api_port={rest_port}", "--host=127.0.0.1", *flags]
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT)
    client = AffectClient("127.0.0.1", "rest", rest_port=rest_port, retries=0)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if any(s["state"] == "AVAILABLE" for s in client.status()):
                return LocalServer(process, grpc_port, rest_port)
        except ServingClientError:
            pass
        time.sleep(0.5)
    process.kill()
    process.wait()
    raise RuntimeError(
        f"Expected affect-tf serve to load a model within {timeout:.0f} s. Received: "
        f"exit status {process.returncode} for {' '.join(command)}"
    )
