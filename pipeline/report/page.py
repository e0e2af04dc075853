"""The run report page outputs/<name>/report/index.html: what the run wrote, read back from ML
Metadata and the artifacts it points at, rendered by pipeline/report/html.py.

``collect`` gathers plain data (JSON-able, also written as report_data.json beside the page);
``render`` turns it into the page; ``write_report`` does both after a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from features import task as task_lib
from pipeline import lineage
from pipeline.config import PipelineConfig
from pipeline.report import confusion_entries
from pipeline.report import html as h
from pipeline.summary import STATES, RunSummary, _custom, latest_execution, open_store, output_artifacts

HISTOGRAM_BUCKETS = 10


def _outputs(store: Any, pipeline: str, node_id: str) -> list[tuple[str, Any]]:
    """(type name, artifact) for the latest execution of ``node_id``."""
    execution = latest_execution(store, pipeline, node_id)
    if execution is None:
        return []
    artifacts = output_artifacts(store, execution.id)
    types = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    return [(types[a.type_id], a) for a in artifacts]


def _uri(store: Any, pipeline: str, node_id: str, type_name: str) -> str | None:
    return next((a.uri for t, a in _outputs(store, pipeline, node_id) if t == type_name), None)


def _splits(uri: str) -> list[tuple[str, Path]]:
    order = {"train": 0, "eval": 1, "test": 2}
    found = [(p.name.removeprefix("Split-"), p) for p in Path(uri).glob("Split-*")]
    return sorted(found, key=lambda s: (order.get(s[0], 9), s[0]))


# ----------------------------------------------------------------------------- data --

def feature_statistics(uri: str) -> dict[str, dict[str, Any]]:
    """StatisticsGen's output: split -> {rows, features: {name: {type, missing, mean, unique, histogram}}}."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    out = {}
    for split, folder in _splits(uri):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString((folder / "FeatureStats.pb").read_bytes())
        dataset = stats.datasets[0]
        features = {}
        for f in dataset.features:
            name = f.path.step[-1] if f.path.step else f.name
            kind = f.WhichOneof("stats")
            d: dict[str, Any] = {"type": statistics_pb2.FeatureNameStatistics.Type.Name(f.type).lower()}
            common = getattr(f, kind).common_stats if kind else None
            if common is not None:
                d["missing"] = _missing(int(dataset.num_examples), common)
            if kind == "num_stats":
                s = f.num_stats
                d["mean"] = float(s.mean)
                standard = [hist for hist in s.histograms if hist.type == hist.STANDARD]
                d["histogram"] = [float(b.sample_count) for b in standard[0].buckets] if standard else []
            elif kind == "string_stats":
                s = f.string_stats
                d.update(unique=int(s.unique), histogram=[float(v.frequency) for v in s.top_values[:HISTOGRAM_BUCKETS]])
            features[name] = d
        out[split] = {"rows": int(dataset.num_examples), "features": features}
    return out


def _missing(rows: int, common: Any) -> int:
    """Examples without a value. TFDV's num_missing counts only absent features, but CsvExampleGen
    writes an empty CSV field as a present, empty list (392 of 1,213 taxi rows' `company`, shown as 0
    missing); for single-valued features every example without a value is rows - tot_num_values."""
    if common.max_num_values <= 1:
        return rows - int(common.tot_num_values)
    return int(common.num_missing)


def anomalies(uri: str) -> dict[str, list[tuple[str, str]]]:
    """ExampleValidator's output: split -> [(feature, description)]."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    out = {}
    for split, folder in _splits(uri):
        found = anomalies_pb2.Anomalies()
        path = folder / "SchemaDiff.pb"
        if path.exists():
            found.ParseFromString(path.read_bytes())
        out[split] = sorted((name, info.description or info.short_description)
                            for name, info in found.anomaly_info.items())
    return out


def _json_beside(store: Any, pipeline: str, node_id: str, type_name: str, file: str) -> Any:
    uri = _uri(store, pipeline, node_id, type_name)
    path = Path(uri or "") / file
    return json.loads(path.read_text()) if uri and path.exists() else None


# ----------------------------------------------------------------------------- model --

def evaluation_details(uri: str, task: str, metric: str) -> dict[str, Any]:
    """TFMA's result: metric per slice (column -> [(value, examples, metric)]), the validation result
    (ok, failed metric names) and the confusion matrix of the overall slice (multiclass: argmax)."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(uri)
    slices: dict[str, list[tuple[str, int, float]]] = {}
    for key, metrics in result.slicing_metrics:
        flat = task_lib.flat_metrics(metrics)
        if len(key) == 1 and flat.get(metric) is not None:
            column, value = key[0]
            slices.setdefault(column, []).append((str(value), int(flat.get("example_count") or 0), flat[metric]))
    for rows in slices.values():
        rows.sort(key=lambda r: (len(r[0]), r[0]))
    validation = tfma.load_validation_result(uri)
    failed = sorted({f.metric_key.name for s in validation.metric_validations_per_slice for f in s.failures})
    return {"slices": slices, "validation_ok": bool(validation.validation_ok), "failed": failed,
            "confusion": _confusion(result) if task == task_lib.MULTICLASS else []}


def _confusion(result: Any) -> list[list[float]]:
    entries = confusion_entries(result)
    k = 1 + max([int(e.get(f, 0)) for e in entries for f in ("actualClassId", "predictedClassId")], default=-1)
    counts = [[0.0] * k for _ in range(k)]
    for e in entries:
        predicted = int(e.get("predictedClassId", 0))
        if predicted >= 0:
            counts[int(e.get("actualClassId", 0))][predicted] += float(e.get("numWeightedExamples", 0))
    return counts


def threshold_checks(cfg: PipelineConfig, metrics: dict[str, float], failed: list[str]) -> list[dict[str, Any]]:
    """Each configured threshold with the measured value and TFMA's verdict on it."""
    return [{"metric": t.metric, "lower_bound": t.lower_bound, "upper_bound": t.upper_bound,
             "max_decrease": t.max_decrease if t.max_decrease is not None else t.max_increase,
             "value": metrics.get(t.metric), "baseline_diff": metrics.get(f"{t.metric}_diff"),
             "passed": t.metric not in failed} for t in cfg.evaluation.thresholds]


def tuner_trials(uri: str | None) -> list[dict[str, Any]]:
    """TFX Tuner's tuner_results.json when present: [{trial_id, score, hyperparameters}]."""
    path = Path(uri or "") / "tuner_results.json"
    if not uri or not path.exists():
        return []
    rows = json.loads(path.read_text())
    return [{"trial_id": r.get("trial_id", i), "score": r.get("score"),
             "hyperparameters": {k: v for k, v in r.items() if k not in ("trial_id", "score", "best_step")}}
            for i, r in enumerate(rows)]


# ----------------------------------------------------------------------------- deployment --

def deployment(store: Any, pipeline: str, node_ids: list[str]) -> dict[str, Any]:
    pushes, infra, tfjs = [], [], {}
    for node_id in node_ids:
        for type_name, a in _outputs(store, pipeline, node_id):
            if node_id.startswith("Pusher") and type_name == "PushedModel":
                pushed = _custom(a, "pushed") == 1
                pushes.append((node_id, pushed, _custom(a, "pushed_destination") if pushed else None))
            elif type_name == "InfraBlessing":
                infra.append((node_id, _custom(a, "blessed") == 1))
            elif node_id.startswith("TFJSConverter") and _custom(a, "agreement") is not None:
                model = node_id.removeprefix("TFJSConverter").removeprefix("_") or "trained"
                tfjs[model] = {str(_custom(a, "quantization") or "float"): {
                    "bytes": _custom(a, "model_bytes"), "max_abs_diff": _custom(a, "max_abs_diff"),
                    "agreement": _custom(a, "agreement")}}
            elif node_id.startswith("TFJSConverter") and type_name.endswith("Blessing"):
                model = node_id.removeprefix("TFJSConverter").removeprefix("_") or "trained"
                for row in tfjs.get(model, {}).values():
                    row["blessed"] = _custom(a, "blessed") == 1
    return {"pushes": pushes, "infra": infra, "tfjs": tfjs}


# ----------------------------------------------------------------------------- lineage and changes --

def this_run_id(store: Any, pipeline: str, node_ids: list[str]) -> str | None:
    """The pipeline_run context of the newest execution among ``node_ids``: the run just finished."""
    executions = [e for e in (latest_execution(store, pipeline, n) for n in node_ids) if e is not None]
    if not executions:
        return None
    newest = max(executions, key=lambda e: e.id)
    return next((c.name for c in store.get_contexts_by_execution(newest.id) if c.type == "pipeline_run"), None)


def run_graph(store: Any, pipeline: str, run_id: str | None) -> dict[str, Any]:
    """This run's executions and artifacts (pipeline/lineage.run_graph) as {nodes, edges} for drawing."""
    if run_id is None:
        return {"nodes": {}, "edges": []}
    artifacts, executions, events = lineage.run_graph(store, run_id)
    names = lineage._node_names(store, pipeline)
    types = {t.id: t.name for t in store.get_artifact_types()}
    nodes: dict[str, dict[str, Any]] = {}
    for e in executions:
        name, state = names.get(e.id, e.type.rsplit(".", 1)[-1]), STATES[e.last_known_state]
        nodes[f"e{e.id}"] = {"label": name, "kind": "execution", "title": f"{name} #{e.id}: {state}",
                             "failed": state == "FAILED"}
    for a in artifacts:
        nodes[f"a{a.id}"] = {"label": types.get(a.type_id, "artifact"), "kind": "artifact",
                             "title": f"#{a.id} {a.uri}"}
    edges = [(f"a{ev.artifact_id}", f"e{ev.execution_id}") if ev.type in lineage.INPUT_EVENTS
             else (f"e{ev.execution_id}", f"a{ev.artifact_id}") for ev in events]
    return {"run_id": run_id, "nodes": nodes, "edges": edges}


def schema_features(uri: str | None) -> dict[str, str]:
    """Feature name -> type of a Schema artifact (schema.pbtxt)."""
    if not uri:
        return {}
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = Path(uri) / "schema.pbtxt"
    if not path.exists():
        return {}
    schema = text_format.Parse(path.read_text(), schema_pb2.Schema())
    return {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}


def schema_diff(before: dict[str, str], now: dict[str, str]) -> dict[str, Any]:
    return {"added": sorted(set(now) - set(before)), "removed": sorted(set(before) - set(now)),
            "changed": {f: (before[f], now[f]) for f in sorted(set(before) & set(now)) if before[f] != now[f]}}


def _run_output(store: Any, pipeline: str, run_id: str, node_id: str, type_name: str) -> str | None:
    """The URI of ``node_id``'s ``type_name`` output in run ``run_id`` (cached executions included)."""
    artifacts, executions, events = lineage.run_graph(store, run_id)
    names = lineage._node_names(store, pipeline)
    mine = {e.id for e in executions if names.get(e.id) == node_id}
    ids = {ev.artifact_id for ev in events if ev.execution_id in mine and ev.type in lineage.OUTPUT_EVENTS}
    types = {t.id: t.name for t in store.get_artifact_types()}
    return next((a.uri for a in artifacts if a.id in ids and types.get(a.type_id) == type_name), None)


def changes_since_blessed(store: Any, cfg: PipelineConfig, summary: RunSummary, run_id: str | None,
                          schema_node: str | None, schema_uri: str | None, stats_node: str | None,
                          stats: dict[str, Any]) -> dict[str, Any]:
    """Metrics, the schema the model trained on, data statistics and config against the last
    blessed run before this one (the same nodes' outputs in that run)."""
    previous = lineage.last_blessed_run(store, cfg.name, run_id) if run_id else None
    if previous is None:
        return {}
    metrics_now = summary.metrics.get(cfg.evaluation.splits[0], {})
    shared = sorted(set(previous.metrics) & set(metrics_now))
    metrics = {m: (previous.metrics[m], metrics_now[m]) for m in shared if "@" not in m and not m.endswith("_diff")}
    out: dict[str, Any] = {"run": previous.run_id, "metrics": metrics}
    from pipeline import metadata_cli  # the per-run config snapshots `run` writes

    before_cfg, now_cfg = metadata_cli.load_snapshot(cfg, previous.run_id), metadata_cli.load_snapshot(cfg, run_id)
    if before_cfg is not None and now_cfg is not None:
        out["config"] = metadata_cli.config_diff(before_cfg, now_cfg)
    before_uri = _run_output(store, cfg.name, previous.run_id, schema_node, "Schema") if schema_node else None
    if before_uri and schema_uri:
        out["schema"] = schema_diff(schema_features(before_uri), schema_features(schema_uri))
    stats_uri = _run_output(store, cfg.name, previous.run_id, stats_node, "ExampleStatistics") if stats_node else None
    if stats_uri and stats:
        old = feature_statistics(stats_uri)
        out["statistics"] = {f"{s} rows": (old.get(s, {}).get("rows"), d["rows"]) for s, d in stats.items()}
        for s, d in stats.items():  # missing values per feature, where they changed
            for f, now in d["features"].items():
                before = old.get(s, {}).get("features", {}).get(f, {}).get("missing")
                if before != now.get("missing"):
                    out["statistics"][f"{s} missing {f}"] = (before, now.get("missing"))
    return out


# ----------------------------------------------------------------------------- page --

def collect(cfg: PipelineConfig, summary: RunSummary, node_ids: list[str]) -> dict[str, Any]:
    from pipeline.pipeline_def import EVALUATOR_ID

    store = open_store(cfg)
    name = cfg.name
    data: dict[str, Any] = {"pipeline": name, "description": getattr(cfg, "description", "") or "",
                            "task": summary.task}
    stats_node = next((n for n in node_ids if n.startswith("StatisticsGen")), None)
    stats_uri = _uri(store, name, stats_node, "ExampleStatistics") if stats_node else None
    data["statistics"] = feature_statistics(stats_uri) if stats_uri else {}
    validator = "ExampleValidator" if "ExampleValidator" in node_ids else None
    anomalies_uri = _uri(store, name, validator, "ExampleAnomalies") if validator else None
    data["anomalies"] = anomalies(anomalies_uri) if anomalies_uri else {}
    drift = next((n for n in node_ids if n.startswith("DriftSkewGate")), None)
    data["drift"] = next((json.loads((Path(a.uri) / "report.json").read_text())
                          for _, a in _outputs(store, name, drift) if (Path(a.uri) / "report.json").exists()),
                         None) if drift else None
    data["cleaning"] = _json_beside(store, name, "DataCleaner", "CleaningReport", "report.json")
    data["feature_scores"] = _json_beside(store, name, "FeatureSelector", "FeatureScores", "scores.json")
    data["tuned"] = summary.tuned_hyperparameters
    data["trials"] = tuner_trials(_uri(store, name, "Tuner", "TunerResults")) if "Tuner" in node_ids else []
    data["metrics"] = summary.metrics
    data["blessed"] = summary.blessed
    metric = task_lib.PRIMARY[summary.task]
    data["primary_metric"] = metric
    evaluation = _uri(store, name, EVALUATOR_ID, "ModelEvaluation") if EVALUATOR_ID in node_ids else None
    details = evaluation_details(evaluation, summary.task, metric) if evaluation else {}
    data["evaluation"] = details
    first_split = cfg.evaluation.splits[0]
    data["first_split"] = first_split
    data["thresholds"] = threshold_checks(cfg, summary.metrics.get(first_split, {}),
                                          details.get("failed", [])) if details else []
    data["classes"] = summary.classes
    data["variants"] = {"rows": summary.variants, "split": summary.variants_split, "pushed": summary.variants_pushed}
    data["tflite"] = summary.tflite
    data["deployment"] = deployment(store, name, node_ids)
    run_id = this_run_id(store, name, node_ids)
    data["run_id"] = run_id
    data["lineage"] = run_graph(store, name, run_id)
    # The schema the Trainer saw: after feature selection and cleaning when those ran.
    schema_node = next((n for n in ("FeatureSelector", "DataCleaner", *node_ids) if n in node_ids
                        and (n in ("FeatureSelector", "DataCleaner") or "SchemaGen" in n)), None)
    schema_uri = _uri(store, name, schema_node, "Schema") if schema_node else None
    data["changes"] = changes_since_blessed(store, cfg, summary, run_id, schema_node, schema_uri, stats_node,
                                            data["statistics"])
    data["nodes"] = [(n.node_id, n.state, n.seconds) for n in summary.nodes]
    return data


def render(data: dict[str, Any], pictures: dict[str, Path]) -> str:
    """The page; ``pictures``: name (training, slices, confusion, variants) -> PNG file."""
    ev = data.get("evaluation") or {}
    metric = data["primary_metric"]
    confusion = ev.get("confusion") or []
    names = data["classes"] or [str(i) for i in range(len(confusion))]
    title = "Confusion matrix (TFMA, argmax; rows: true class)"
    if not confusion and data["task"] == task_lib.BINARY:
        first = data["metrics"].get(data["first_split"], {})
        if all(first.get(k) is not None for k in ("example_count", "binary_accuracy", "precision", "recall")):
            confusion = h.binary_confusion(first["example_count"], first["binary_accuracy"], first["precision"],
                                           first["recall"]) or []
            names = ["0", "1"]
            title = (f"Confusion matrix on {data['first_split']} at threshold 0.5 (rows: true label; implied by "
                     "TFMA's count, accuracy, precision and recall)")
    data_body = (h.statistics_html(data["statistics"]) + h.anomalies_html(data["anomalies"])
                 + h.drift_html(data["drift"]) + h.cleaning_html(data["cleaning"])
                 + h.feature_scores_html(data["feature_scores"]))
    model_body = (h.tuning_html(data["tuned"], data["trials"])
                  + h.picture(pictures.get("training"), "training curves")
                  + h.metrics_html(data["metrics"], data["blessed"])
                  + h.thresholds_html(data["thresholds"], ev.get("validation_ok") if ev else None)
                  + h.slices_html(ev.get("slices") or {}, metric)
                  + h.picture(pictures.get("slices"), f"{metric} per slice")
                  + h.confusion_html(confusion, names, title)
                  + h.picture(pictures.get("confusion"), "confusion matrix"))
    v, dep = data["variants"], data["deployment"]
    tflite_metric = {task_lib.BINARY: "auc", task_lib.MULTICLASS: "sparse_categorical_accuracy",
                     task_lib.REGRESSION: "mean_absolute_error"}[data["task"]]
    deploy_body = (h.variants_html(v["rows"], v["split"], metric, v["pushed"])
                   + h.picture(pictures.get("variants"), "model variants")
                   + h.ondevice_html("TFLite", data["tflite"], tflite_metric)
                   + h.ondevice_html("TF.js", dep["tfjs"], tflite_metric)
                   + h.pushes_html(dep["pushes"], dep["infra"]))
    g = data["lineage"]
    lineage_body = (h.lineage_svg(g["nodes"], g["edges"])
                    + "<p class=note>boxes: executions; rounded: artifacts; hover for ids and URIs</p>"
                    if g["nodes"] else "")
    runs_body = h.table(["component", "state", "seconds"], [
        [f"<td>{h.esc(n)}</td>", f"<td>{h.verdict(s in ('COMPLETE', 'CACHED'), s, s)}</td>",
         h.cell(round(sec, 1), digits=1)]
        for n, s, sec in data["nodes"]], numeric_from=2) if data["nodes"] else ""
    return h.page(f"Run report: {data['pipeline']}", f"{data['description']} (task: {data['task']})", [
        ("run", "Components", runs_body), ("data", "Data", data_body), ("model", "Model", model_body),
        ("deployment", "Variants and deployment", deploy_body), ("lineage", "Lineage", lineage_body),
        ("changes", "Since the last blessed run", h.changes_html(data["changes"]))])


def write_report(cfg: PipelineConfig, summary: RunSummary, node_ids: list[str], report_dir: Path,
                 pictures: list[Path]) -> Path:
    """index.html (and report_data.json, the numbers it shows) in ``report_dir``."""
    data = collect(cfg, summary, node_ids)
    named = {}
    for p in pictures:
        key = ("training" if p.name == "training.png" else "confusion" if p.name == "confusion_matrix.png"
               else "variants" if p.name == "variants.png" else "slices")
        named[key] = p
    (report_dir / "report_data.json").write_text(json.dumps(data, indent=1, default=str))
    out = report_dir / "index.html"
    out.write_text(render(data, named))
    return out
