"""What the last pipeline run did, read back from ML Metadata: ``<output>/summary.json``.

Keys: ``blessed``, ``not_blessed_reasons`` (``"<metric> = x < threshold y"``), ``metrics`` (the
``affect-tf evaluate`` keys, eval split, candidate model), ``metrics_by_source``,
``baseline`` (the model it was compared with, if any), ``pushed`` (``saved_model``: the
version directory, ``tflite``: {variant: path}), ``tflite_checks``, ``components`` ({name:
{status, seconds}}), ``data`` (examples per split, skips, anomalies), ``model`` (sizes,
training history), ``artifacts``.
"""

from __future__ import annotations

import json
from pathlib import Path

from affect_tf.core.layout import KERAS_FILE
from affect_tf.evaluation.report import format_report
from affect_tf.export.tflite import VARIANTS
from affect_tf.pipeline.config import PipelineConfig

_STATES = {
    0: "UNKNOWN",
    1: "NEW",
    2: "RUNNING",
    3: "COMPLETE",
    4: "FAILED",
    5: "CACHED",
    6: "CANCELED",
}


def _store(path: str):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    if not Path(path).is_file():
        raise FileNotFoundError(
            f"Expected the pipeline's ML Metadata at {path}. Received: no such file "
            "(has the pipeline run with this output_root?)"
        )
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _prop(artifact, name: str):
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(value.struct_value).get("__value__", MessageToDict(value.struct_value))
    return getattr(value, kind) if kind else None


def _dir_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def last_run(store, pipeline_name: str) -> dict:
    """Executions of the newest run: ``{node: {"status", "seconds", "outputs": {type: art}}}``."""
    # One pipeline writes one store (``<output_root>/metadata.sqlite``).
    runs = list(store.get_contexts_by_type("pipeline_run"))
    if not runs:
        raise ValueError(f"Expected a run of pipeline {pipeline_name!r}. Received: none in MLMD")
    run = max(runs, key=lambda c: c.create_time_since_epoch)
    nodes = {}
    executions = sorted(
        store.get_executions_by_context(run.id), key=lambda e: e.create_time_since_epoch
    )
    for execution in executions:
        node = next(
            (
                c.name.split(".", 1)[-1]
                for c in store.get_contexts_by_execution(execution.id)
                if store.get_context_types_by_id([c.type_id])[0].name == "node"
            ),
            str(execution.id),
        )
        events = store.get_events_by_execution_ids([execution.id])
        output_ids = [e.artifact_id for e in events if e.type in (4, 2)]  # OUTPUT, DECLARED_OUTPUT
        outputs = {}
        for artifact in store.get_artifacts_by_id(output_ids):
            type_name = store.get_artifact_types_by_id([artifact.type_id])[0].name
            outputs[type_name] = artifact
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1e3
        nodes[node] = {
            "status": _STATES.get(execution.last_known_state, str(execution.last_known_state)),
            "seconds": round(seconds, 1),
            "outputs": outputs,
        }
    return {"run_id": run.name, "nodes": nodes}


def _metrics(evaluation_uri: str) -> tuple[dict, dict, dict]:
    """(overall candidate metrics, per-source metrics, baseline overall metrics), each in the
    report layout with None for tasks the eval split does not label."""
    import tensorflow_model_analysis as tfma

    from affect_tf.pipeline.evaluation import report_from_values

    overall, by_source, baseline = {}, {}, {}
    for record in tfma.load_metrics(evaluation_uri):
        values = {}
        base = {}
        for kv in record.metric_keys_and_values:
            if kv.key.is_diff:
                continue
            value = kv.value.double_value.value
            target = base if kv.key.model_name == "baseline" else values
            target[kv.key.name] = value
        report = report_from_values(values)
        keys = list(record.slice_key.single_slice_keys)
        if not keys:
            overall = report
            baseline = report_from_values(base) if base else {}
        else:
            by_source[keys[0].bytes_value.decode()] = report
    return overall, by_source, baseline


def _reasons(evaluation_uri: str, config: PipelineConfig, by_slice: dict) -> list[str]:
    """The failed checks as lines: the gate's own reasons (``affect_tf.evaluation.report.gate`` on
    the slice's report) and the change threshold against the latest blessed model."""
    import tensorflow_model_analysis as tfma

    from affect_tf.evaluation.report import gate
    from affect_tf.pipeline.evaluation import GATE_FAILURES

    result = tfma.load_validation_result(evaluation_uri)
    reasons = []
    for per_slice in result.metric_validations_per_slice:
        keys = list(per_slice.slice_key.single_slice_keys)
        where = (
            " on "
            + ", ".join(f"{k.column}={k.bytes_value.decode() or k.int64_value}" for k in keys)
            if keys
            else ""
        )
        report = by_slice.get(keys[0].bytes_value.decode() if keys else None) or {}
        for failure in per_slice.failures:
            name = failure.metric_key.name
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if name == GATE_FAILURES and report:
                failed, _ = gate(report, dict(config.thresholds), config.min_gain)
                reasons += [f"{line}{where}" for line in failed]
            elif threshold.HasField("change_threshold"):
                bound = threshold.change_threshold.absolute.value
                reasons.append(
                    f"{name} changed by {value:+.4f} vs the latest blessed model "
                    f"< allowed {bound:+.4f}{where}"
                )
            else:
                reasons.append(f"{name} = {value:.4f}: {failure.message.strip()}{where}")
    return reasons


def _evaluation(out: dict, evaluator: dict, config: PipelineConfig):
    """Fills the blessing, metrics, baseline and gate of ``out``; the ModelEvaluation or None."""
    from affect_tf.evaluation.report import gate

    blessing, evaluation = evaluator.get("ModelBlessing"), evaluator.get("ModelEvaluation")
    if blessing is not None:
        out["blessed"] = bool(_prop(blessing, "blessed"))
    if evaluation is None:
        return None
    out["metrics"], out["metrics_by_source"], baseline = _metrics(evaluation.uri)
    out["baseline"] = {"metrics": baseline} if baseline else None
    notes = (
        gate(out["metrics"], dict(config.thresholds), config.min_gain)[1] if out["metrics"] else []
    )
    out["gate"] = {
        "min_gain": config.min_gain,
        "thresholds": dict(config.thresholds),
        "max_p_mtl_drop": config.max_p_mtl_drop,
        "tasks_measured": out["metrics"].get("tasks_measured", []),
        "notes": notes,
    }
    if not out["blessed"]:
        by_slice = {None: out["metrics"], **out["metrics_by_source"]}
        out["not_blessed_reasons"] = _reasons(evaluation.uri, config, by_slice)
    return evaluation


def summarize(config: PipelineConfig) -> dict:
    """Builds the summary of the newest run and writes ``config.summary_path``."""
    import tensorflow as tf

    # TFMA's result readers use deprecated TF1 record iterators and say so at length.
    tf.get_logger().setLevel("ERROR")
    store = _store(config.metadata_path)
    run = last_run(store, config.pipeline_name)
    nodes = run["nodes"]
    out: dict = {
        "pipeline": config.pipeline_name,
        "run_id": run["run_id"],
        "output_root": str(config.root),
        "blessed": False,
        "not_blessed_reasons": [],
        "metrics": {},
        "metrics_by_source": {},
        "baseline": None,
        "pushed": {"saved_model": None, "tflite": {}},
        "tflite_checks": {},
        "components": {
            n: {"status": v["status"], "seconds": v["seconds"]} for n, v in nodes.items()
        },
        "data": {},
        "model": {},
    }
    outputs = {n: v["outputs"] for n, v in nodes.items()}
    out["data"] = _data_summary(outputs)
    out["model"] = _model_summary(outputs)
    evaluation = _evaluation(out, outputs.get("Evaluator", {}), config)
    out["test"] = _test_summary(outputs)
    out["pushed"], out["tflite_checks"] = _pushed_summary(outputs)
    out["artifacts"] = {
        "pipeline_root": config.pipeline_root,
        "metadata": config.metadata_path,
        "serving": config.serving_dir,
        "tflite": config.tflite_dir,
        "evaluation": evaluation.uri if evaluation is not None else None,
    }
    config.summary_path.parent.mkdir(parents=True, exist_ok=True)
    config.summary_path.write_text(json.dumps(out, indent=2, default=str))
    return out


def _test_summary(outputs: dict) -> dict | None:
    """The TestEvaluator's overall metrics on the corpus' own Test split (None when the
    corpus gives none): a report, not part of the gate."""
    from affect_tf.pipeline.evaluation import TEST_EVALUATOR

    evaluation = outputs.get(TEST_EVALUATOR, {}).get("ModelEvaluation")
    if evaluation is None:
        return None
    return {"metrics": _metrics(evaluation.uri)[0], "evaluation": evaluation.uri}


def _data_summary(outputs: dict) -> dict:
    """Examples written/skipped (by reason), per split, and the validator's anomalies."""
    data: dict = {}
    examples = outputs.get("FaceExampleGen", {}).get("Examples")
    if examples is not None:
        report = _prop(examples, "skip_report") or {}
        data = {
            "examples_uri": examples.uri,
            "written": _prop(examples, "written"),
            "skipped": _prop(examples, "skipped"),
            "skipped_by_reason": report.get("skipped", {}),
        }
    stats = outputs.get("StatisticsGen", {}).get("ExampleStatistics")
    if stats is not None:
        data["examples_per_split"] = _split_counts(stats.uri)
    anomalies = outputs.get("ExampleValidator", {}).get("ExampleAnomalies")
    if anomalies is not None:
        data["anomalies"] = _anomalies(anomalies.uri)
    return data


def _model_summary(outputs: dict) -> dict:
    """The trained model's sizes, training time, epochs, best validation P_MTL, curves."""
    summary: dict = {}
    model_run = outputs.get("Trainer", {}).get("ModelRun")
    model = outputs.get("Trainer", {}).get("Model")
    if model is not None:
        saved = Path(model.uri) / "Format-Serving"
        summary["saved_model_bytes"] = _dir_bytes(saved) if saved.is_dir() else None
        keras_file = saved / KERAS_FILE
        summary["keras_bytes"] = keras_file.stat().st_size if keras_file.is_file() else None
    if model_run is not None:
        history = Path(model_run.uri) / "history.json"
        if history.is_file():
            h = json.loads(history.read_text())
            summary["train_seconds"] = round(h.get("seconds", 0.0), 1)
            summary["epochs"] = len(h.get("loss", []))
            summary["best_val_p_mtl"] = max(h.get("val_p_mtl", [float("nan")]))
            summary["init"] = h.get("init")
        summary["training_curves"] = str(Path(model_run.uri) / "training_curves.png")
        summary["tensorboard"] = str(Path(model_run.uri) / "tensorboard")
    return summary


# What the summary keeps of each TFLite variant's checks.
TFLITE_CHECK_KEYS = (
    "gpu_compatible",
    "max_abs_va_diff",
    "expr_agreement",
    "au_agreement",
    "max_abs_prob_diff",
    "bytes",
    "n",
)


def _pushed_summary(outputs: dict) -> tuple[dict, dict]:
    """``(pushed, tflite_checks)``: where the Pusher and TFLiteExport wrote, and the checks."""
    from affect_tf.pipeline.tflite_export import TFLITE_ARTIFACT_TYPE

    pushed_out: dict = {"saved_model": None, "tflite": {}}
    pushed = outputs.get("Pusher", {}).get("PushedModel")
    if pushed is not None and _prop(pushed, "pushed"):
        pushed_out["saved_model"] = _prop(pushed, "pushed_destination")
        pushed_out["version"] = _prop(pushed, "pushed_version")
    tflite = outputs.get("TFLiteExport", {}).get(TFLITE_ARTIFACT_TYPE)
    if tflite is None or not _prop(tflite, "exported"):
        return pushed_out, {}
    checks = _prop(tflite, "checks") or {}
    pushed_out["tflite"] = {v: c["path"] for v, c in checks.items()}
    return pushed_out, {v: {k: c[k] for k in TFLITE_CHECK_KEYS} for v, c in checks.items()}


def _split_counts(uri: str) -> dict:
    import tensorflow_data_validation as tfdv

    counts = {}
    for split_dir in sorted(Path(uri).glob("Split-*")):
        stats_file = split_dir / "FeatureStats.pb"
        if stats_file.is_file():
            stats = tfdv.load_stats_binary(str(stats_file))
            counts[split_dir.name[len("Split-") :]] = int(stats.datasets[0].num_examples)
    return counts


def _anomalies(uri: str) -> dict:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = {}
    for split_dir in sorted(Path(uri).glob("Split-*")):
        path = split_dir / "SchemaDiff.pb"
        if path.is_file():
            anomalies = anomalies_pb2.Anomalies.FromString(path.read_bytes())
            found[split_dir.name[len("Split-") :]] = {
                name: info.short_description for name, info in anomalies.anomaly_info.items()
            }
    return found


def _per_class(title: str, metrics: dict) -> list[str]:
    """One line of the per-class expression F1 (none when the split has no expressions)."""
    per_class = metrics.get("expr_f1_per_class") or {}
    values = ", ".join(f"{k} {v:.2f}" for k, v in per_class.items() if v is not None)
    return [title + values] if values else []


def format_summary(summary: dict) -> str:
    """The human-readable lines ``make demo`` prints."""
    lines = []
    m = summary.get("metrics") or {}
    verdict = "BLESSED" if summary["blessed"] else "NOT BLESSED"
    lines.append(f"pipeline {summary['pipeline']} run {summary['run_id']}: {verdict}")
    for reason in summary.get("not_blessed_reasons", []):
        lines.append(f"  not blessed: {reason}")
    data = summary.get("data") or {}
    if data:
        lines.append(
            f"  data: {data.get('examples_per_split', {})} examples per split, "
            f"{data.get('skipped', 0)} skipped {data.get('skipped_by_reason') or ''}".rstrip()
        )
        anomalies = {k: v for k, v in (data.get("anomalies") or {}).items() if v}
        lines.append(f"  data anomalies: {anomalies or 'none'}")
    if m:
        lines.append(f"  eval split [n={m.get('n')}]: {format_report(m)}")
        trivial = m.get("trivial") or {}
        if trivial:
            lines.append(
                "  trivial baselines on it: "
                + ", ".join(f"{k} {v:.3f} (gain {m['gain'][k]:+.3f})" for k, v in trivial.items())
            )
        lines += _per_class("  expression F1 per class: ", m)
        per_au = {k: v for k, v in (m.get("au_f1_per_au") or {}).items() if v is not None}
        if per_au:
            lines.append("  AU F1: " + ", ".join(f"{k} {v:.2f}" for k, v in per_au.items()))
    test = (summary.get("test") or {}).get("metrics")
    if test:
        lines.append(f"  test split [n={test.get('n')}] (not gated): {format_report(test)}")
        lines += _per_class("  test expression F1 per class: ", test)
    for note in (summary.get("gate") or {}).get("notes", []):
        lines.append(f"  note: {note}")
    base = (summary.get("baseline") or {}).get("metrics")
    if base and base.get("p_mtl") is not None:
        lines.append(f"  baseline (latest blessed): P_MTL {base['p_mtl']:.3f} on the same split")
    pushed = summary["pushed"]
    lines.append(f"  pushed SavedModel: {pushed['saved_model'] or 'nothing'}")
    checks = summary.get("tflite_checks", {})
    for variant in [v for v in VARIANTS if v in checks]:
        check = checks[variant]
        lines.append(
            f"  TFLite {variant}: {check['bytes'] / 1e6:.2f} MB, GPU delegate "
            f"{'compatible' if check['gpu_compatible'] else 'NOT compatible'}, max |dVA| "
            f"{check['max_abs_va_diff']:.4f}, expression agreement {check['expr_agreement']:.3f}, "
            f"AU agreement {check['au_agreement']:.3f} -> {pushed['tflite'][variant]}"
        )
    timing = ", ".join(
        f"{name} {c['seconds']:.0f}s{'' if c['status'] == 'COMPLETE' else ' ' + c['status']}"
        for name, c in summary["components"].items()
    )
    lines.append(f"  components: {timing}")
    model = summary.get("model") or {}
    if model.get("init"):
        lines.append(f"  backbone init: {model['init']}")
    if model.get("training_curves"):
        lines.append(f"  training curves: {model['training_curves']}")
        lines.append(f"  TensorBoard: tensorboard --logdir {model['tensorboard']}")
    lines.append(f"  summary: {Path(summary['output_root']) / 'summary.json'}")
    return "\n".join(lines)
