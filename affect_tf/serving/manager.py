"""The model manager: loads the configured versions and keeps them current by polling.

Follows TF Serving's semantics where a client can see them: new versions picked up by polling the
file system; version states START/LOADING/AVAILABLE/UNLOADING/END; errors as gRPC status codes
with TF Serving's messages.

Locking: ``_lock`` guards ``_config``, ``_served``, ``_states`` and ``_failed`` (every read and
write); ``_poll_lock`` makes one poll or reload run at a time, so two pollers never load the same
version twice. Loading a SavedModel (seconds) happens outside ``_lock``, so requests keep being
served meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import grpc

from affect_tf.core.layout import numeric_versions
from affect_tf.serving.batching import BatchingParameters
from affect_tf.serving.errors import ServingError, invalid
from affect_tf.serving.model_config import wanted_versions
from affect_tf.serving.options import RequestLimits
from affect_tf.serving.servable import ServedVersion

log = logging.getLogger("affect_tf.serving")

# A version that failed to load is retried after this many seconds, not at every poll.
RETRY_FAILED_SECONDS = 30


class ModelManager:
    """Loads the configured models' versions and keeps them current by polling their folders.

    Args:
        config: A ``ModelServerConfig``.
        batching: Batching parameters (None: every request runs alone).
        poll_seconds: File-system poll period; <= 0 loads once at start.
        limits: Per-request limits (``RequestLimits`` defaults when None).
    """

    def __init__(
        self,
        config,
        batching: BatchingParameters | None = None,
        poll_seconds=1.0,
        limits: RequestLimits | None = None,
    ):
        self.batching = batching
        self.limits = limits
        self.poll_seconds = poll_seconds
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
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
        with self._poll_lock:
            with self._lock:
                self._config = config
                names = {m.name for m in config.model_config_list.config}
                gone = [(n, v) for n in self._served if n not in names for v in self._served[n]]
            for name, version in gone:
                self._unload(name, version)
            with self._lock:
                for name in set(self._served) - names:
                    del self._served[name]
            self._poll_unlocked()

    def poll(self) -> None:
        """Loads wanted versions that are new on disk, unloads those no longer wanted."""
        with self._poll_lock:
            self._poll_unlocked()

    def _poll_unlocked(self) -> None:
        with self._lock:
            configs = list(self._config.model_config_list.config)
        for model in configs:
            base = Path(model.base_path)
            on_disk = numeric_versions(base)
            wanted = wanted_versions(model.model_version_policy, on_disk)
            with self._lock:
                served = set(self._served.setdefault(model.name, {}))
                now = time.monotonic()
                retry = {
                    v
                    for v in wanted
                    if now - self._failed.get((model.name, v), -1e9) >= RETRY_FAILED_SECONDS
                }
            for version in wanted:
                if version not in served and version in retry:
                    self._load(model.name, version, base / str(version))
            for version in self._to_unload(model.name, wanted, on_disk):
                self._unload(model.name, version)
            self._forget_failures(model.name, on_disk)

    def _to_unload(self, name: str, wanted: list[int], on_disk: list[int]) -> list[int]:
        """Served versions the policy no longer wants, except those still needed for
        availability (TF Serving's availability-preserving policy): while a wanted version is
        not loaded (it failed, or waits for its retry), as many of the newest served versions
        still on disk stay as are missing, so a broken new version never takes down the old."""
        with self._lock:
            served = set(self._served.get(name, {}))
        missing = [v for v in wanted if v not in served]
        surplus = sorted((served - set(wanted)) & set(on_disk))
        keep = set(surplus[-len(missing) :]) if missing else set()
        return sorted(served - set(wanted) - keep)

    def _forget_failures(self, name: str, on_disk: list[int]) -> None:
        """A failed version whose folder is gone is no longer reported (the status recovers)."""
        with self._lock:
            for key in [k for k in self._failed if k[0] == name and k[1] not in on_disk]:
                del self._failed[key]
                if self._states.get(key, ("", ""))[0] == "END":
                    del self._states[key]

    def _set_state(self, name: str, version: int, state: str, message: str = "") -> None:
        with self._lock:
            self._states[(name, version)] = (state, message)

    def _load(self, name: str, version: int, path: Path) -> None:
        self._set_state(name, version, "LOADING")
        start = time.perf_counter()
        try:
            served = ServedVersion(name, version, path, self.batching, self.limits)
            warmed = served.warmup()
        except Exception as e:  # noqa: BLE001 - reported through GetModelStatus and the log
            with self._lock:
                self._states[(name, version)] = ("END", f"Loading {path} failed: {e}")
                self._failed[(name, version)] = time.monotonic()
            log.error("could not load %s version %d from %s: %s", name, version, path, e)
            return
        with self._lock:
            self._served.setdefault(name, {})[version] = served
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
            served = self._served.get(name, {}).pop(version, None)
            if served is not None:
                self._states[(name, version)] = ("UNLOADING", "")
        if served is not None:
            served.close()
            self._set_state(name, version, "END")
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
        with self._lock:
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
