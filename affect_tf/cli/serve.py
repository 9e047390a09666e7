"""``affect-tf serve``: TF Serving's flags -> ``ServerOptions``; run until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import threading

from affect_tf.cli.errors import UsageError

# Seconds a stopping server waits for in-flight requests before it exits anyway.
DRAIN_SECONDS = 10.0


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"Expected true or false. Received: {value!r}")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``tensorflow_model_server``'s flags that apply to this server (``--flag=value`` works);
    defaults are ``ServerOptions``'."""
    from affect_tf.serving.options import ServerOptions

    d = ServerOptions()
    parser.add_argument("--port", type=int, default=d.port, help="gRPC port (default 8500)")
    parser.add_argument(
        "--rest_api_port", type=int, default=d.rest_api_port, help="REST port; 0 disables"
    )
    parser.add_argument(
        "--rest_api_num_threads",
        type=int,
        default=d.rest_api_num_threads,
        help="REST requests run at once; more wait for a free thread (default 32)",
    )
    parser.add_argument(
        "--rest_api_timeout_in_ms",
        type=int,
        default=d.rest_api_timeout_in_ms,
        help="a REST connection silent this long is closed (default 30000)",
    )
    parser.add_argument("--grpc_max_threads", type=int, default=d.grpc_max_threads)
    parser.add_argument("--model_name", default=d.model_name)
    parser.add_argument("--model_base_path", help="folder of numeric SavedModel versions")
    parser.add_argument("--model_config_file", help="ModelServerConfig text proto (models.config)")
    parser.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=d.model_config_file_poll_wait_seconds,
        help="re-read --model_config_file this often (0: never)",
    )
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=d.file_system_poll_wait_seconds,
        help="poll period for new versions; 0 loads once (default 1)",
    )
    parser.add_argument(
        "--enable_batching", type=_bool, nargs="?", const=True, default=d.enable_batching
    )
    parser.add_argument("--batching_parameters_file", help="BatchingParameters text proto")
    parser.add_argument("--monitoring_config_file", help="MonitoringConfig text proto")
    parser.add_argument("--host", default=d.host, help="interface to bind (default all)")
    parser.add_argument(
        "--max_request_instances",
        type=int,
        default=d.max_request_instances,
        help=f"instances per request, batching on or off (default {d.max_request_instances})",
    )
    parser.add_argument(
        "--max_image_pixels",
        type=int,
        default=d.max_image_pixels,
        help=f"pixels of one image, read from its header (default {d.max_image_pixels:,})",
    )
    parser.add_argument(
        "--max_request_pixels",
        type=int,
        default=d.max_request_pixels,
        help=f"image pixels of one request (default {d.max_request_pixels:,})",
    )


def options_from_args(args: argparse.Namespace):
    """The ``ServerOptions`` of parsed ``serve`` flags."""
    from affect_tf.serving.options import ServerOptions

    return ServerOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(ServerOptions)}
    )


def run_server(options) -> int:
    """Starts a ``ModelServer``, says what it serves, and runs until SIGINT/SIGTERM."""
    from affect_tf.serving.server import ModelServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = ModelServer(options)
        server.start()
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from None
    for config in server.manager.configs:
        available = server.manager.available_versions(config.name)
        print(
            f"model {config.name!r} from {config.base_path}: versions {available or 'none yet'}"
            + (" (batching on)" if server.manager.batching else ""),
            flush=True,
        )
    print(
        "This is affect-tf's development server; production serves the same folder with "
        "TF Serving (see serving/).",
        flush=True,
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    # Drain within a bound (k8s and docker stop send SIGKILL after their grace period): stop
    # accepting, let in-flight requests finish, then exit even if something still hangs.
    stopper = threading.Thread(target=server.stop, name="drain", daemon=True)
    stopper.start()
    stopper.join(DRAIN_SECONDS)
    if stopper.is_alive():
        print(f"affect-tf serve: not drained within {DRAIN_SECONDS} s; exiting", flush=True)
        os._exit(0)
    return 0
