"""Multi-worker training with ``tf.distribute.MultiWorkerMirroredStrategy`` (MWMS).

What ``training.fit.fit`` needs to train one Keras 3 model on several processes or machines:

- ``cluster_from_env``: ``TF_CONFIG`` read and checked (a clear ``ClusterError`` for JSON that is
  not a cluster) -> a ``Cluster``, or None for a one-process run.
- ``connect``: the strategy, built before any other TensorFlow op of the process (MWMS fails
  with "Collective ops must be configured at program startup" otherwise), and a first
  all-reduce as a barrier; a peer that never answers ends the process with a message naming
  the peers that do not accept connections, after ``timeout_s`` instead of a hang (TensorFlow
  blocks in C++ there holding the GIL and swallows SIGTERM: a watchdog process kills it).
- ``shard_by_data``: DATA auto-sharding (a corpus is often one TFRecord; FILE sharding fails
  on it), so each global batch is split between the workers.
- ``SyncMovingStatistics``: Keras 3 creates BatchNormalization's moving statistics without an
  aggregation, and under MWMS each worker's copy drifts on its own batches (measured; under
  MirroredStrategy on one machine the copies stayed equal, tested); this callback averages
  them over the workers before each validation and save (the mean of the
  replicas' moving averages is the moving average of the mean batch statistics: the update
  is linear).
- ``patch_keras``: the narrowly scoped workaround of keras-team/keras#20585 (``fit`` under
  MWMS), applied only while Keras' code still has the bug.
- ``output_dir``: the chief writes to the run's folder; other workers to a temporary folder
  that is deleted afterwards (TensorFlow's multi-worker guide).
- ``check_same``: every worker must resume from the same epoch (the run's folder must be
  shared by every machine), checked with one all-gather.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from affect_tf.core.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
TF_CONFIG_FORM = (
    '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
    ' (a "chief" job of one address may come first)'
)


class ClusterError(UserError):
    """``TF_CONFIG`` or the cluster it names cannot run a multi-worker job."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The jobs of ``TF_CONFIG`` and this process' task among them.

    Attributes:
        jobs: ``{"chief": [address], "worker": [addresses]}`` (``chief`` optional).
        task_type, task_index: This process.
    """

    jobs: dict[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def num_tasks(self) -> int:
        return sum(len(addresses) for addresses in self.jobs.values())

    @property
    def is_chief(self) -> bool:
        """The task that writes: ``chief`` 0, or ``worker`` 0 when there is no chief job."""
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"

    @property
    def peers(self) -> list[str]:
        own = self.jobs[self.task_type][self.task_index]
        return [a for addresses in self.jobs.values() for a in addresses if a != own]


def _fail(raw: str, expected: str) -> ClusterError:
    shown = raw if len(raw) <= 300 else raw[:300] + "…"
    return ClusterError(f"Expected TF_CONFIG {expected}. Received: TF_CONFIG={shown}")


def parse_tf_config(raw: str) -> Cluster:
    """Checks a ``TF_CONFIG`` value and returns its ``Cluster``.

    Raises:
        ClusterError: Not JSON, no ``cluster``/``task``, an address that is not ``host:port``,
            a task that is not in the cluster, an unsupported job (``ps``, ``evaluator``).
    """
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _fail(raw, f"as JSON {TF_CONFIG_FORM} (not JSON: {e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise _fail(raw, f"with a 'cluster' object: {TF_CONFIG_FORM}")
    jobs: dict[str, tuple[str, ...]] = {}
    for job, addresses in spec["cluster"].items():
        if job not in ("chief", "worker"):
            raise _fail(
                raw,
                f"with 'chief' and 'worker' jobs only (MultiWorkerMirroredStrategy; "
                f"job {job!r} is for other strategies)",
            )
        if isinstance(addresses, str) or not isinstance(addresses, list) or not addresses:
            raise _fail(raw, f"a non-empty list of addresses for job {job!r}")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise _fail(raw, f"addresses as host:port (job {job!r}: {address!r})")
        jobs[job] = tuple(str(a) for a in addresses)
    if len(jobs.get("chief", ())) > 1:
        raise _fail(raw, "at most one chief address")
    task = spec.get("task")
    if not isinstance(task, dict) or task.get("type") not in jobs:
        raise _fail(raw, f"a 'task' whose type is one of the cluster's jobs {sorted(jobs)}")
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(jobs[task["type"]]):
        raise _fail(raw, f"a task index in [0, {len(jobs[task['type']])}) for job {task['type']!r}")
    return Cluster(jobs, task["type"], index)


def cluster_from_env() -> Cluster | None:
    """The ``TF_CONFIG`` cluster when it names more than one task; None otherwise."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    cluster = parse_tf_config(raw)
    return cluster if cluster.num_tasks > 1 else None


def local_tf_configs(ports: list[int]) -> list[str]:
    """``TF_CONFIG`` of each of ``len(ports)`` workers on loopback (``train --workers N``)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(len(ports))
    ]


# The watchdog is a separate process: while MWMS waits for its peers, TensorFlow blocks in C++
# holding the GIL (a Python thread never runs) and catches SIGTERM. It exits when the parent
# closes its stdin (joined, or dead: EOF); otherwise it names the silent peers and SIGKILLs it.
_WATCHDOG = """
import os, select, signal, socket, sys
pid, timeout, message, peers = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
if select.select([sys.stdin], [], [], timeout)[0]:
    sys.exit(0)
def accepts(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
        return True
    except OSError:
        return False
silent = [p for p in peers if not accepts(p)]
detail = ("nothing accepts connections at " + ", ".join(silent) if silent else
          "the peers " + ", ".join(peers) + " accept connections but did not join")
print("affect-tf: error: " + message.replace("DETAIL", detail), file=sys.stderr, flush=True)
os.kill(pid, signal.SIGKILL)
"""


def connect(cluster: Cluster, timeout_s: float = DEFAULT_TIMEOUT_S) -> tf.distribute.Strategy:
    """The MultiWorkerMirroredStrategy of ``cluster``, once every task has joined.

    Call it before any other TensorFlow op of the process. When the cluster has not formed
    after ``timeout_s`` (a peer that is down, unreachable or never started), a watchdog
    process prints which peers do not accept connections and kills this process (SIGKILL:
    nothing else stops TensorFlow there), instead of a hang.
    """
    message = (
        f"Expected the {cluster.num_tasks} tasks of TF_CONFIG to join within {timeout_s:g} s. "
        f"Received: {cluster.name} heard from no cluster; DETAIL (start every task with the "
        "same TF_CONFIG cluster; check hosts, ports and firewalls)"
    )
    watchdog = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WATCHDOG,
            str(os.getpid()),
            str(timeout_s),
            message,
            *cluster.peers,
        ],
        stdin=subprocess.PIPE,
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    barrier = tf.function(
        lambda: strategy.reduce("SUM", strategy.run(tf.ones, ([],)), axis=None), autograph=False
    )
    barrier()
    watchdog.stdin.close()
    watchdog.wait()
    log.info(
        "%s of a %d-task cluster: %d replicas in sync",
        cluster.name,
        cluster.num_tasks,
        strategy.num_replicas_in_sync,
    )
    return strategy


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode()  # noqa: SLF001 (no public accessor)
    )


def cluster_of(strategy: tf.distribute.Strategy) -> Cluster:
    """The ``Cluster`` a multi-worker strategy runs in (from its cluster resolver)."""
    resolver = strategy.cluster_resolver
    jobs = {job: tuple(tasks) for job, tasks in resolver.cluster_spec().as_dict().items()}
    return Cluster(jobs, resolver.task_type, resolver.task_id)


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run's outputs (always, outside a multi-worker run)."""
    return not is_multi_worker(strategy) or cluster_of(strategy).is_chief


def output_dir(strategy: tf.distribute.Strategy | None, out: Path) -> Path:
    """``out`` for the chief; a new temporary folder for the other workers."""
    if is_chief(strategy):
        return out
    cluster = cluster_of(strategy)
    return Path(tempfile.mkdtemp(prefix=f"affect-{cluster.task_type}{cluster.task_index}-"))


def shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    """DATA auto-sharding: each worker takes its part of every global batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def check_same(strategy: tf.distribute.Strategy, value: int, what: str) -> None:
    """Fails on every worker unless all of them hold the same ``value`` (one all-gather).

    Raises:
        ClusterError: The workers disagree (e.g. some cannot see the run's folder).
    """
    gathered = tf.function(
        lambda: strategy.gather(strategy.run(lambda: tf.constant([value], tf.int64)), axis=0),
        autograph=False,
    )()
    values = [int(v) for v in np.asarray(gathered)]
    if len(set(values)) > 1:
        raise ClusterError(
            f"Expected every worker to see the same {what}. Received: {values} (worker order);"
            " the output folder must be one shared folder, the same path on every machine"
        )


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of the model's weights (workers compare it to show they agree)."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


class SyncMovingStatistics(keras.callbacks.Callback):
    """Averages BatchNormalization moving statistics over the workers before each validation
    and at each epoch's end (so the saved, validated and restored weights agree everywhere)."""

    def __init__(self, strategy: tf.distribute.Strategy):
        super().__init__()
        self.strategy = strategy
        self._dirty = False

    def _variables(self) -> list:
        return [
            v
            for layer in self.model._flatten_layers()  # noqa: SLF001 (every nested layer)
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)
        ]

    def sync(self) -> None:
        variables = self._variables()
        if not variables:
            return

        @tf.function(autograph=False)  # one all-reduce of all (eager strategy.run is slow)
        def mean_of_workers():
            local = lambda: tf.concat([tf.reshape(v.value, [-1]) for v in variables], 0)  # noqa: E731
            return self.strategy.reduce("MEAN", self.strategy.run(local), axis=None)

        mean = mean_of_workers()
        offset = 0
        for v in variables:
            size = int(np.prod(v.shape))
            v.assign(tf.reshape(mean[offset : offset + size], v.shape))
            offset += size
        self._dirty = False

    def on_train_batch_end(self, batch, logs=None):
        self._dirty = True

    def on_test_begin(self, logs=None):
        if self._dirty:
            self.sync()

    def on_epoch_end(self, epoch, logs=None):
        if self._dirty:
            self.sync()


# --- keras-team/keras#20585: Model.fit under MultiWorkerMirroredStrategy ----------------------
# Keras 3.15's TensorFlow trainer (1) hands a ``PerReplica`` batch to ``_symbolic_build`` (with
# one replica per worker the batch is a PerReplica of one tensor, which the structure check
# misses) -> "Attempt to convert a value (PerReplica...) to a Tensor"; (2) reduces the scalar
# logs with ``strategy.reduce("MEAN", v, axis=0)`` -> "Invalid reduction dimension 0 for input
# with 0 dimensions". Both are replaced only while Keras' code still reads that way.

_BUGGY_REDUCE = 'strategy.reduce("MEAN", v, axis=0)'


def keras_needs_patch() -> bool:
    """Whether Keras' multi-worker log reduction still has the bug (the source says so)."""
    from keras.src.backend.tensorflow import trainer

    return _BUGGY_REDUCE in inspect.getsource(trainer.reduce_per_replica)


def patch_keras() -> bool:
    """Applies the workaround once when ``keras_needs_patch``; whether it is in place."""
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_affect_mwms_patch", False):
        return True
    if not keras_needs_patch():
        log.info("Keras' multi-worker fit needs no workaround (keras-team/keras#20585 fixed)")
        return False
    original_reduce = trainer.reduce_per_replica
    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def local(strategy, value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is None or self._distribute_strategy is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tf.nest.map_structure(lambda v: local(self.distribute_strategy, v), batch)
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0), values
            )
        return original_reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._affect_mwms_patch = True
    log.info("Keras multi-worker fit: workaround of keras-team/keras#20585 applied")
    return True
