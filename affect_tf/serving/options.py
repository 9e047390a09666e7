"""What ``affect-tf serve`` serves and what one request may ask: plain settings, importable
without TensorFlow (the CLI builds its flags from them, and ``affect-tf --help`` stays fast)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may ask of the server, checked before anything is decoded or batched
    (batching on or off). Flags: ``--max_request_instances``, ``--max_image_pixels``,
    ``--max_request_pixels`` (``affect-tf serve``)."""

    max_request_instances: int = 1024
    # Per image, read from its header: 40 MP is a 7300 x 5500 photo (120 MB decoded).
    max_image_pixels: int = 40_000_000
    # All images of a request together.
    max_request_pixels: int = 200_000_000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(
                    f"Expected --{field.name} >= 1. Received: {getattr(self, field.name)}"
                )


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """What to serve and how: ``tensorflow_model_server``'s flags that apply to this server
    (the CLI's ``affect-tf serve`` flags are these fields, ``affect_tf.cli.serve``)."""

    port: int = 8500  # gRPC; 0 picks a free port
    rest_api_port: int = 8501  # 0 disables REST
    rest_api_num_threads: int = 32  # REST requests run at once (more wait, not rejected)
    rest_api_timeout_in_ms: int = 30000  # a REST connection silent this long is closed
    grpc_max_threads: int = 32
    model_name: str = "affect"
    model_base_path: str | None = None  # a folder of numeric SavedModel versions
    model_config_file: str | None = None  # a ModelServerConfig text proto
    model_config_file_poll_wait_seconds: float = 0.0  # re-read the config this often (0: never)
    file_system_poll_wait_seconds: float = 1.0  # poll for new versions; 0 loads once
    enable_batching: bool = False
    batching_parameters_file: str | None = None
    monitoring_config_file: str | None = None
    host: str = "0.0.0.0"
    # affect-tf's own (TF Serving has no such flags): ``RequestLimits``.
    max_request_instances: int = RequestLimits.max_request_instances
    max_image_pixels: int = RequestLimits.max_image_pixels
    max_request_pixels: int = RequestLimits.max_request_pixels
