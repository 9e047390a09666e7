"""What the local model server serves: model configs, version loading/polling, requests run.

Follows TF Serving's semantics where a client can see them: a ``ModelServerConfig`` (the
``--model_config_file`` text proto) or one ``--model_name``/``--model_base_path``; numeric
version folders under each base path; version policies ``latest {num_versions}`` (default 1),
``all`` and ``specific {versions}``; ``version_labels`` (``stable``/``canary``); new versions
picked up by polling the file system; version states START/LOADING/AVAILABLE/UNLOADING/END;
errors as gRPC status codes with TF Serving's messages.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np

from affect_tf.export import WARMUP_FILE

log = logging.getLogger("affect_tf.serving")

# Image signatures whose string input must hold encoded images (checked before batching so
# that one client's garbage is reported to that client by name, not as a TF kernel error).
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
_CODE_NAMES = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request that cannot be served: a gRPC status code and a message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


# --- batching parameters ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's ``BatchingParameters`` (``--batching_parameters_file``) that apply here.

    Attributes:
        max_batch_size: Most rows one model call takes; a larger request is refused.
        batch_timeout_micros: How long the first request of a batch waits for company.
        num_batch_threads: Batches run in parallel.
        max_enqueued_batches: Queue depth (in batches) beyond which requests get UNAVAILABLE.
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100

    @classmethod
    def parse(cls, text: str, source: str = "batching parameters") -> BatchingParameters:
        """Parses the text-proto file (``max_batch_size { value: 32 }`` or ``key: value``)."""
        values: dict[str, int] = {}
        fields = {f.name for f in dataclasses.fields(cls)}
        ignored = {
            "pad_variable_length_inputs",
            "allowed_batch_sizes",
            "enable_large_batch_splitting",
        }
        text = re.sub(r"#.*", "", text)
        for key, value in re.findall(r"(\w+)\s*(?::\s*|\{\s*value\s*:\s*)([\w.\-]+)\s*\}?", text):
            if key in ignored:
                continue
            if key not in fields:
                raise ValueError(
                    f"Expected batching parameters among {sorted(fields | ignored)}. "
                    f"Received: {key}={value} in {source}"
                )
            try:
                values[key] = int(value)
            except ValueError:
                raise ValueError(
                    f"Expected an integer for {key}. Received: {key}={value} in {source}"
                ) from None
            if values[key] < 1:
                raise ValueError(f"Expected {key} >= 1. Received: {key}={value} in {source}")
        return cls(**values)


class Batcher:
    """Merges concurrent requests to one signature into batches (TF Serving's basic batching).

    The first queued request waits at most ``batch_timeout_micros`` for others, up to
    ``max_batch_size`` rows in all; the merged inputs run once and each request gets its rows
    back. If a merged batch fails, its requests run one by one, so a bad request fails alone.
    """

    def __init__(self, fn: Callable[[dict], dict], params: BatchingParameters, name: str) -> None:
        self._fn = fn
        self.params = params
        self._queue: list[tuple[dict, int, _Result]] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0
        self.rows = 0
        self._threads = [
            threading.Thread(target=self._loop, name=f"batch-{name}-{i}", daemon=True)
            for i in range(params.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values())))
        result = _Result()
        with self._cond:
            queued = sum(r for _, r, _ in self._queue)
            limit = self.params.max_enqueued_batches * self.params.max_batch_size
            if queued + rows > limit:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"The batch scheduling queue is full ({queued} rows queued, limit {limit})",
                )
            self._queue.append((inputs, rows, result))
            self._cond.notify()
        return result.wait()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _take(self) -> list[tuple[dict, int, _Result]] | None:
        timeout = self.params.batch_timeout_micros / 1e6
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            deadline = time.monotonic() + timeout
            while sum(r for _, r, _ in self._queue) < self.params.max_batch_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, total = [], 0
            while self._queue and total + self._queue[0][1] <= self.params.max_batch_size:
                item = self._queue.pop(0)
                batch.append(item)
                total += item[1]
            if not batch:  # cannot happen: requests larger than max_batch_size are refused
                batch.append(self._queue.pop(0))
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self.batches += 1
            self.rows += sum(r for _, r, _ in batch)
            if len(batch) == 1:
                self._run_one(batch[0])
                continue
            merged = {k: np.concatenate([b[0][k] for b in batch]) for k in batch[0][0]}
            try:
                outputs = self._fn(merged)
            except Exception:  # noqa: BLE001 - each request then gets its own answer
                for item in batch:
                    self._run_one(item)
                continue
            start = 0
            for _, rows, result in batch:
                result.set({k: v[start : start + rows] for k, v in outputs.items()})
                start += rows

    def _run_one(self, item: tuple[dict, int, _Result]) -> None:
        inputs, _, result = item
        try:
            result.set(self._fn(inputs))
        except Exception as e:  # noqa: BLE001 - handed to the waiting request thread
            result.fail(e)


class _Result:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._value: dict | None = None
        self._error: BaseException | None = None

    def set(self, value: dict) -> None:
        self._value = value
        self._event.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    def wait(self) -> dict:
        self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


# --- loaded versions -------------------------------------------------------------------------


def read_signature_defs(saved_model_dir: str | Path) -> dict:
    """The SavedModel's SignatureDefs by name (what GetModelMetadata returns), init op left out."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    defs = proto.meta_graphs[0].signature_def
    return {k: defs[k] for k in defs if not k.startswith("__")}


def clean_tf_message(message: str) -> str:
    """The user-facing first line of a TensorFlow runtime error (no node names, no traces)."""
    lines = []
    for line in str(message).splitlines():
        line = line.strip()
        if not line or line.startswith(
            ("Detected at node", "File ", "[[", "Traceback", "<stack traces")
        ):
            continue
        if line.startswith("Graph execution error"):
            continue
        line = re.sub(r"\s*\[\[\{\{node [^}]*\}\}\]\]", "", line)
        line = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", line)
        line = re.sub(r"\s*\[Op:[^\]]*\]$", "", line)
        lines.append(line)
    return lines[0] if lines else str(message).strip()


class ServedVersion:
    """One loaded SavedModel version: its signatures, their specs, and how a request runs."""

    def __init__(
        self, name: str, version: int, path: Path, batching: BatchingParameters | None
    ) -> None:
        import tensorflow as tf

        self.name = name
        self.version = version
        self.path = path
        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))
        self.signatures = dict(self._loaded.signatures)
        self.signature_defs = read_signature_defs(path)
        self.input_specs = {
            k: fn.structured_input_signature[1] for k, fn in self.signatures.items()
        }
        self.batching = batching
        self._batchers: dict[str, Batcher] = {}
        if batching is not None:
            for key in self.signatures:
                self._batchers[key] = Batcher(
                    lambda inputs, key=key: self._run(key, inputs), batching, f"{name}-{version}"
                )

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()

    def predict(
        self, signature_name: str, inputs: dict, output_filter: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Checks the inputs against the signature, runs (batched if enabled), filters outputs."""
        signature_name = signature_name or "serving_default"
        self.input_names(signature_name)  # an unknown signature is INVALID_ARGUMENT here
        arrays = self._check_inputs(signature_name, inputs)
        outputs_def = self.signature_defs[signature_name].outputs
        for name in output_filter or ():
            if name not in outputs_def:
                raise invalid(
                    f"output tensor alias not found in signature: {name} Outputs expected to "
                    f"be in the set {{{','.join(sorted(outputs_def))}}}."
                )
        batcher = self._batchers.get(signature_name)
        outputs = batcher(arrays) if batcher is not None else self._run(signature_name, arrays)
        if output_filter:
            outputs = {k: v for k, v in outputs.items() if k in output_filter}
        return outputs

    def input_names(self, signature_name: str | None) -> list[str]:
        """The input names of a signature (default ``serving_default``); INVALID_ARGUMENT
        naming the signatures there are when it does not exist."""
        signature_name = signature_name or "serving_default"
        if signature_name not in self.signatures:
            raise invalid(
                f'Serving signature name: "{signature_name}" not found in signature def. '
                f"Expected one of {sorted(self.signatures)}"
            )
        return list(self.input_specs[signature_name])

    def _check_inputs(self, signature_name: str, inputs: dict) -> dict[str, np.ndarray]:
        specs = self.input_specs[signature_name]
        expected = "{" + ",".join(sorted(specs)) + "}"
        if not inputs:
            raise invalid(f"input is empty. Expected inputs {expected} for {signature_name}")
        for key in inputs:
            if key not in specs:
                raise invalid(
                    f"input tensor alias not found in signature: {key}. "
                    f"Inputs expected to be in the set {expected}."
                )
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise invalid(
                f"Missing input tensor alias: {', '.join(missing)}. Inputs expected to be in "
                f"the set {expected}."
            )
        arrays: dict[str, np.ndarray] = {}
        rows = None
        for key, spec in specs.items():
            value = inputs[key]
            try:
                if spec.dtype == self._tf.string:
                    array = np.asarray(value, dtype=object)
                    if array.size and not all(isinstance(v, bytes) for v in array.reshape(-1)):
                        raise TypeError("not bytes")
                else:
                    array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
            except (TypeError, ValueError):
                raise invalid(
                    f"Expected input {key!r} of type {spec.dtype.name}. Received: "
                    f"{np.asarray(value).dtype} values"
                ) from None
            shape = spec.shape.as_list()
            if array.ndim != len(shape) or any(
                d is not None and d != a for d, a in zip(shape, array.shape, strict=False)
            ):
                dims = ", ".join("N" if d is None else str(d) for d in shape)
                raise invalid(
                    f"Expected input {key!r} of shape ({dims}). Received: shape={array.shape}"
                )
            if rows is not None and array.shape[0] != rows:
                raise invalid(
                    f"Expected every input to have the same batch size. Received: {key!r} has "
                    f"{array.shape[0]}, another input {rows}"
                )
            rows = array.shape[0]
            if spec.dtype == self._tf.string and key == "image":
                for i, data in enumerate(array.reshape(-1)):
                    if not data.startswith(_IMAGE_MAGIC):
                        raise invalid(
                            f"Expected input 'image'[{i}] to be JPEG, PNG, GIF or BMP bytes. "
                            f"Received: {len(data)} bytes starting {data[:8]!r}"
                        )
            arrays[key] = array
        if rows == 0:
            raise invalid(f"Expected at least one row. Received: an empty batch for {expected}")
        if self.batching is not None and rows > self.batching.max_batch_size:
            raise invalid(
                f"Batch size {rows} exceeds the maximum batch size "
                f"{self.batching.max_batch_size} (max_batch_size of --batching_parameters_file)"
            )
        return arrays

    def _run(self, signature_name: str, arrays: dict) -> dict[str, np.ndarray]:
        tf = self._tf
        try:
            out = self.signatures[signature_name](**{k: tf.constant(v) for k, v in arrays.items()})
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as e:
            message = clean_tf_message(e.message)
            if "image" in arrays and arrays["image"].dtype == object:
                bad = self._undecodable(arrays["image"])
                if bad is not None:
                    message = (
                        f"Expected input 'image'[{bad}] to be a complete JPEG/PNG/GIF/BMP image. "
                        f"Received: a corrupt or truncated image ({message})"
                    )
            raise invalid(message) from None
        except tf.errors.OpError as e:
            raise ServingError(
                _CODE_NAMES.get(e.error_code, grpc.StatusCode.INTERNAL),
                clean_tf_message(e.message),
            ) from None
        return {k: v.numpy() for k, v in out.items()}

    def _undecodable(self, images: np.ndarray) -> int | None:
        """Index of the first image TF cannot decode (which row broke a request)."""
        for i, data in enumerate(images.reshape(-1)):
            try:
                self._tf.io.decode_image(data, channels=3, expand_animations=False)
            except self._tf.errors.OpError:
                return i
        return None

    def warmup(self) -> int:
        """Replays ``assets.extra/tf_serving_warmup_requests`` (TF Serving's warmup file) so
        the first client does not pay for tracing; returns how many requests ran."""
        from tensorflow_serving.apis import prediction_log_pb2

        path = self.path / WARMUP_FILE
        if not path.is_file():
            return 0
        count = 0
        for record in self._tf.data.TFRecordDataset(str(path)):
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            request = entry.predict_log.request
            inputs = {k: self._tf.make_ndarray(v) for k, v in request.inputs.items()}
            self._run(request.model_spec.signature_name or "serving_default", inputs)
            count += 1
        return count


# --- the models and their versions -----------------------------------------------------------


def single_model_config(name: str, base_path: str):
    """The ``ModelServerConfig`` of ``--model_name``/``--model_base_path``."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def read_model_config(path: str | Path):
    """Parses a ``--model_config_file`` (text ``ModelServerConfig``), naming the file on error."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Expected a model config file. Received: {str(path)!r} (not found)")
    try:
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
        raise ValueError(
            f"Expected a ModelServerConfig text proto in {path}. Received: {e}"
        ) from None
    base = path.parent
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise ValueError(f"Expected a name and a base_path for every model in {path}")
        if not Path(model.base_path).is_absolute() and not Path(model.base_path).exists():
            # TF Serving reads relative paths from its working directory; from the config's
            # folder is what a repository's checked-in config means.
            model.base_path = str(base / model.base_path)
    return config


def wanted_versions(policy, available: list[int]) -> list[int]:
    """The versions a ``ModelVersionPolicy`` serves among those on disk."""
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return sorted(available)
    if which == "specific":
        return sorted(set(policy.specific.versions) & set(available))
    count = policy.latest.num_versions if which == "latest" and policy.latest.num_versions else 1
    return sorted(available)[-count:]


class ModelManager:
    """Loads the configured models' versions and keeps them current by polling their folders.

    Args:
        config: A ``ModelServerConfig``.
        batching: Batching parameters (None: every request runs alone).
        poll_seconds: File-system poll period; <= 0 loads once at start.
    """

    def __init__(self, config, batching: BatchingParameters | None = None, poll_seconds=1.0):
        self.batching = batching
        self.poll_seconds = poll_seconds
        self._lock = threading.RLock()
        self._config = config
        self._served: dict[str, dict[int, ServedVersion]] = {}
        # (name, version) -> (state name, error message); what GetModelStatus reports.
        self._states: dict[tuple[str, int], tuple[str, str]] = {}
        self._failed: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> None:
        self.poll()
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="fs-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for versions in self._served.values():
                for served in versions.values():
                    served.close()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a bad poll must not end polling
                log.exception("polling the model folders failed")

    def reload(self, config) -> None:
        """Applies a new ``ModelServerConfig`` (HandleReloadConfigRequest): unconfigured
        models are unloaded, new ones loaded."""
        with self._lock:
            self._config = config
            names = {m.name for m in config.model_config_list.config}
            for name in list(self._served):
                if name not in names:
                    for version in list(self._served[name]):
                        self._unload(name, version)
                    del self._served[name]
        self.poll()

    def poll(self) -> None:
        """Loads wanted versions that are new on disk, unloads those no longer wanted."""
        with self._lock:
            configs = list(self._config.model_config_list.config)
        for model in configs:
            base = Path(model.base_path)
            on_disk = sorted(
                int(p.name)
                for p in (base.iterdir() if base.is_dir() else [])
                if p.name.isdigit() and (p / "saved_model.pb").is_file()
            )
            wanted = wanted_versions(model.model_version_policy, on_disk)
            served = self._served.setdefault(model.name, {})
            for version in wanted:
                if version in served:
                    continue
                key = (model.name, version)
                if time.monotonic() - self._failed.get(key, -1e9) < 30:
                    continue  # a broken version is retried every 30 s, not every poll
                self._load(model.name, version, base / str(version))
            for version in list(served):
                if version not in wanted:
                    self._unload(model.name, version)

    def _load(self, name: str, version: int, path: Path) -> None:
        self._states[(name, version)] = ("LOADING", "")
        start = time.perf_counter()
        try:
            served = ServedVersion(name, version, path, self.batching)
            warmed = served.warmup()
        except Exception as e:  # noqa: BLE001 - reported through GetModelStatus and the log
            self._states[(name, version)] = ("END", f"Loading {path} failed: {e}")
            self._failed[(name, version)] = time.monotonic()
            log.error("could not load %s version %d from %s: %s", name, version, path, e)
            return
        with self._lock:
            self._served[name][version] = served
        self._states[(name, version)] = ("AVAILABLE", "")
        log.info(
            "Successfully loaded servable version {name: %s version: %d} in %.1f s "
            "(%d warmup requests)",
            name,
            version,
            time.perf_counter() - start,
            warmed,
        )

    def _unload(self, name: str, version: int) -> None:
        with self._lock:
            served = self._served[name].pop(version, None)
        if served is not None:
            self._states[(name, version)] = ("UNLOADING", "")
            served.close()
            self._states[(name, version)] = ("END", "")
            log.info("Unloaded servable version {name: %s version: %d}", name, version)

    # -- lookups --

    def available_versions(self, name: str) -> list[int]:
        """The loaded versions of a model (none yet: empty)."""
        with self._lock:
            return sorted(self._served.get(name, {}))

    @property
    def configs(self) -> list:
        """The configured models' ``ModelConfig`` protos."""
        with self._lock:
            return list(self._config.model_config_list.config)

    def model_config(self, name: str):
        with self._lock:
            for model in self._config.model_config_list.config:
                if model.name == name:
                    return model
        raise ServingError(
            grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
        )

    def resolve(self, name: str, version: int | None = None, label: str | None = None):
        """The ``ServedVersion`` a model spec asks for (latest when neither version nor label)."""
        model = self.model_config(name)
        with self._lock:
            served = dict(self._served.get(name, {}))
        if label:
            if label not in model.version_labels:
                raise invalid(f"Unrecognized servable version label: {label}")
            version = model.version_labels[label]
        if version is not None:
            if version not in served:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Servable not found for request: Specific({name}, {version})",
                )
            return served[version]
        if not served:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
            )
        return served[max(served)]

    def status(self, name: str, version: int | None = None) -> list[tuple[int, str, str]]:
        """``[(version, state, error message)]`` of a model (one version if given)."""
        self.model_config(name)
        rows = sorted((v, s, m) for (n, v), (s, m) in self._states.items() if n == name)
        if version is not None:
            rows = [r for r in rows if r[0] == version]
            if not rows:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find version {version} of model {name}",
                )
        if not rows:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}"
            )
        return rows
