"""What a run did, read back from ML Metadata: component states and times,
evaluation metrics per split, the blessing and the pushed model."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from features import task as task_lib
from model import hyperparameters
from pipeline.config import PipelineConfig

STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


@dataclass
class NodeRun:
    node_id: str
    state: str
    seconds: float
    execution_id: int


@dataclass
class RunSummary:
    pipeline: str
    task: str = task_lib.BINARY
    classes: list[str] = field(default_factory=list)  # multiclass: class id -> name (Transform's order)
    nodes: list[NodeRun] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> metric -> value
    blessed: bool | None = None
    pushed: bool | None = None
    pushed_path: str | None = None
    cleaning: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> rows_in / rows_out
    dropped_columns: list[str] = field(default_factory=list)
    dropped_features: list[str] = field(default_factory=list)  # not selected by FeatureSelector
    tuned_hyperparameters: dict[str, Any] = field(default_factory=dict)  # the model's, from Tuner's best
    variants: list[dict[str, Any]] = field(default_factory=list)  # VariantComparison rows, trained first
    variants_split: str | None = None
    variants_pushed: dict[str, str | None] = field(default_factory=dict)  # variant -> pushed path or None
    tflite: dict[str, dict] = field(default_factory=dict)  # model -> {variant: validation numbers}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)


def open_store(cfg: PipelineConfig) -> mlmd.MetadataStore:
    if cfg.runner.mysql is not None:
        from pipeline.config import metadata_connection_config

        return mlmd.MetadataStore(metadata_connection_config(cfg))
    conn = metadata_store_pb2.ConnectionConfig()
    conn.sqlite.filename_uri = str(cfg.metadata_path)
    conn.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(conn)


def latest_execution(store: mlmd.MetadataStore, pipeline: str, node_id: str
                     ) -> metadata_store_pb2.Execution | None:
    ctx = store.get_context_by_type_and_name("node", f"{pipeline}.{node_id}")
    if ctx is None:
        return None
    executions = store.get_executions_by_context(ctx.id)
    return max(executions, key=lambda e: e.id) if executions else None


def output_artifacts(store: mlmd.MetadataStore, execution_id: int) -> list[metadata_store_pb2.Artifact]:
    events = store.get_events_by_execution_ids([execution_id])
    ids = [e.artifact_id for e in events if e.type in (metadata_store_pb2.Event.OUTPUT,
                                                        metadata_store_pb2.Event.DECLARED_OUTPUT)]
    return store.get_artifacts_by_id(ids) if ids else []


def _custom(artifact: metadata_store_pb2.Artifact, key: str) -> Any:
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    return getattr(value, value.WhichOneof("value"))


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    import tensorflow_model_analysis as tfma

    from features.task import flat_metrics

    result = tfma.load_eval_result(evaluation_uri)
    for slice_key, metrics in result.slicing_metrics:
        if slice_key == ():
            return flat_metrics(metrics)
    return {}


def summarize(cfg: PipelineConfig, node_ids: list[str]) -> RunSummary:
    from pipeline.pipeline_def import EVALUATOR_ID

    store = open_store(cfg)
    summary = RunSummary(cfg.name, cfg.label.task)
    splits = list(cfg.evaluation.splits)
    for node_id in node_ids:
        execution = latest_execution(store, cfg.name, node_id)
        if execution is None:
            continue
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        summary.nodes.append(NodeRun(node_id, STATES[execution.last_known_state], seconds, execution.id))
        if node_id.startswith("TFLiteConverter"):
            for artifact in output_artifacts(store, execution.id):
                validation = Path(artifact.uri) / "validation.json"
                if validation.exists():
                    model = node_id.removeprefix("TFLiteConverter").removeprefix("_") or "trained"
                    summary.tflite[model] = json.loads(validation.read_text())["variants"]
            continue
        if node_id == "Transform" and cfg.label.task == task_lib.MULTICLASS:
            summary.classes = class_names(store, cfg)
            continue
        if node_id in ("DataCleaner", "FeatureSelector", "Tuner", "VariantComparison"):
            _read_reports(store, execution.id, summary)
            if summary.tuned_hyperparameters and node_id == "Tuner":
                summary.tuned_hyperparameters = hyperparameters.resolve(
                    summary.tuned_hyperparameters, cfg.trainer_custom_config()["model"])
            continue
        # The trained model's evaluations (one per configured split) and push; variants' pushes.
        evaluators = {EVALUATOR_ID: splits[0], **{f"{EVALUATOR_ID}_{s}": s for s in splits[1:]}}
        if node_id not in evaluators and not node_id.startswith("Pusher"):
            continue
        for artifact in output_artifacts(store, execution.id):
            type_name = store.get_artifact_types_by_id([artifact.type_id])[0].name
            if type_name == "ModelEvaluation":
                summary.metrics[evaluators[node_id]] = overall_metrics(artifact.uri)
            elif type_name == "ModelBlessing" and node_id == EVALUATOR_ID:
                summary.blessed = _custom(artifact, "blessed") == 1
            elif type_name == "PushedModel" and node_id == "Pusher":
                summary.pushed = _custom(artifact, "pushed") == 1
                summary.pushed_path = _custom(artifact, "pushed_destination")
            elif type_name == "PushedModel":
                pushed = _custom(artifact, "pushed") == 1
                summary.variants_pushed[node_id.removeprefix("Pusher_")] = (
                    _custom(artifact, "pushed_destination") if pushed else None)
    return summary


def _read_reports(store: mlmd.MetadataStore, execution_id: int, summary: RunSummary) -> None:
    """What DataCleaner, FeatureSelector, Tuner and VariantComparison wrote beside their outputs."""
    for artifact in output_artifacts(store, execution_id):
        type_name = store.get_artifact_types_by_id([artifact.type_id])[0].name
        if type_name == "HyperParameters":
            best = json.loads((Path(artifact.uri) / "best_hyperparameters.txt").read_text())
            summary.tuned_hyperparameters = best["values"]
        elif type_name == "VariantTable":
            table = json.loads((Path(artifact.uri) / "comparison.json").read_text())
            summary.variants, summary.variants_split = table["rows"], table["split"]
        elif type_name == "CleaningReport":
            report = json.loads((Path(artifact.uri) / "report.json").read_text())
            summary.cleaning = report["totals"]
            summary.dropped_columns = report["dropped_columns"]
        elif type_name == "FeatureScores":
            scores = json.loads((Path(artifact.uri) / "scores.json").read_text())
            summary.dropped_features = [s["feature"] for s in scores if not s["selected"]]


def format_summary(summary: RunSummary) -> str:
    lines = [f"Pipeline '{summary.pipeline}':"]
    for node in summary.nodes:
        lines.append(f"  {node.node_id:<28} {node.state:<9} {node.seconds:7.1f}s")
    if summary.metrics:
        # Per-class values go to their own table; "<metric>_diff" (vs the baseline) stays in MLMD.
        names = sorted({m for split in summary.metrics.values() for m in split
                        if "@" not in m and not m.endswith("_diff")})
        splits = sorted(summary.metrics, key=lambda s: ("train", "eval", "test").index(s))
        lines.append(f"  task: {summary.task}")
        lines.append(f"  {'metrics':<20}" + "".join(f"{s:>12}" for s in splits))
        for name in names:
            row = "".join(f"{summary.metrics[s].get(name, float('nan')):12.4f}" for s in splits)
            lines.append(f"  {name:<20}{row}")
        lines += _format_per_class(summary)
    if summary.cleaning:
        rows = ", ".join(f"{split} {c['rows_in']:,} -> {c['rows_out']:,}" for split, c in summary.cleaning.items())
        lines.append(f"  cleaning: rows {rows}; columns dropped: {', '.join(summary.dropped_columns) or 'none'}")
    if summary.dropped_features:
        lines.append(f"  feature selection dropped: {', '.join(summary.dropped_features)}")
    if summary.tuned_hyperparameters:
        tuned = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in sorted(summary.tuned_hyperparameters.items()))
        lines.append(f"  tuned: {tuned}")
    lines.append(f"  blessed: {summary.blessed}")
    lines.append(f"  pushed:  {summary.pushed_path if summary.pushed else 'no'}")
    if summary.variants:
        lines += _format_variants(summary)
    if summary.tflite:
        lines += _format_tflite(summary)
    for target, path in sorted(summary.variants_pushed.items()):
        if target.startswith(("mobile", "web")):
            lines.append(f"  pushed {target}: {path or 'no'}")
    return "\n".join(lines)


def _format_per_class(summary: RunSummary) -> list[str]:
    """Multiclass: one-vs-rest metrics per class on the first evaluated split."""
    split = min(summary.metrics, key=lambda s: ("train", "eval", "test").index(s))
    metrics = summary.metrics[split]
    ids = sorted({int(k.split("@")[1]) for k in metrics if "@" in k})
    if not ids:
        return []
    names = ("precision", "recall", "f1_score", "auc")
    lines = [f"  per class on {split} (one-vs-rest; the rows above are macro averages):",
             f"    {'class':<16}" + "".join(f"{n:>11}" for n in names)]
    for i in ids:
        label = summary.classes[i] if i < len(summary.classes) else str(i)
        lines.append(f"    {label:<16}" + "".join(f"{metrics.get(f'{n}@{i}', float('nan')):11.4f}" for n in names))
    return lines


# The TFMA metric the TFLite table shows per task (TFLiteConverter's default metric names).
TFLITE_HEADLINE = {task_lib.BINARY: ("auc", "AUC"), task_lib.MULTICLASS: ("sparse_categorical_accuracy", "acc"),
                   task_lib.REGRESSION: ("mean_absolute_error", "MAE")}


def _format_tflite(summary: RunSummary) -> list[str]:
    key, title = TFLITE_HEADLINE[summary.task]
    lines = ["  TFLite (raw features in; ai-edge-litert vs the SavedModel):",
             f"    {'model':<9}{'variant':<15}{'KB':>8}{'max |diff|':>12}{'agree':>8}{'TFMA ' + title:>10}  blessed"]
    for model, variants in summary.tflite.items():
        for variant, r in variants.items():
            auc = r.get("tfma", {}).get(key)
            lines.append(f"    {model:<9}{variant:<15}{r['bytes'] / 1024:>8.1f}{r['max_abs_diff']:>12.2e}"
                         f"{r['agreement']:>8.2%}{'-' if auc is None else f'{auc:.4f}':>10}  {r['blessed']}")
    return lines


def _format_variants(summary: RunSummary) -> list[str]:
    split, metric = summary.variants_split, task_lib.PRIMARY[summary.task]
    lines = [f"  model variants (on {split}; ratios vs trained):",
             f"    {'variant':<9}{'params':>9}{'x':>7}{'gzip KB':>9}{'x':>7}{'sparsity':>9}{metric:>11}"
             f"{'Δ':>11}{'ms/ex':>7}  blessed  pushed"]
    for r in summary.variants:
        auc, change = r.get(f"{metric}_{split}"), r.get(f"{metric}_change")
        pushed = "-" if r["variant"] == "trained" else (summary.variants_pushed.get(r["variant"]) or "no")
        lines.append(
            f"    {r['variant']:<9}{r['parameters']:>9,}{r['parameter_ratio']:>7.2f}"
            f"{r['weights_gzip_bytes'] / 1024:>9.1f}{r['gzip_ratio']:>7.2f}{r['sparsity']:>9.2f}"
            f"{'' if auc is None else f'{auc:.4f}':>11}{'' if change is None else f'{change:+.4f}':>11}"
            f"{r['latency_ms']:>7.2f}  {'-' if r['blessed'] is None else str(r['blessed']):<7}  {pushed}")
    return lines


def latest_output_uri(store: mlmd.MetadataStore, pipeline: str, node_id: str, type_name: str) -> str | None:
    execution = latest_execution(store, pipeline, node_id)
    if execution is None:
        return None
    for artifact in output_artifacts(store, execution.id):
        if store.get_artifact_types_by_id([artifact.type_id])[0].name == type_name:
            return artifact.uri
    return None


def class_names(store: mlmd.MetadataStore, cfg: PipelineConfig) -> list[str]:
    """Multiclass: the latest Transform's class vocabulary (class id -> name); [] if none."""
    transform = latest_output_uri(store, cfg.name, "Transform", "TransformGraph")
    vocab = Path(transform or "") / "transform_fn" / "assets" / task_lib.CLASS_VOCABULARY
    return vocab.read_text().splitlines() if transform and vocab.exists() else []


def write_pictures(cfg: PipelineConfig, report_dir: Path) -> list[Path]:
    """Training curves and AUC per slice of the latest run, as PNGs in the report folder."""
    from pipeline import report
    from pipeline.pipeline_def import EVALUATOR_ID

    store = open_store(cfg)
    pictures = []
    run_dir = latest_output_uri(store, cfg.name, "Trainer", "ModelRun")
    if run_dir and (Path(run_dir) / "training.json").exists():
        pictures.append(report.training_curves(Path(run_dir) / "training.json", report_dir / "training.png"))
    evaluation = latest_output_uri(store, cfg.name, EVALUATOR_ID, "ModelEvaluation")
    metric = task_lib.PRIMARY[cfg.label.task]
    if evaluation and cfg.evaluation.slices:
        pictures.append(report.slice_metrics(evaluation, metric, report_dir / f"slices_{metric}.png",
                                             higher_is_better=task_lib.metric_direction(cfg.label.task, metric)))
    if evaluation and cfg.label.task == task_lib.MULTICLASS:
        pictures.append(report.confusion_matrix(evaluation, class_names(store, cfg),
                                                report_dir / "confusion_matrix.png"))
    comparison = latest_output_uri(store, cfg.name, "VariantComparison", "VariantTable")
    if cfg.optimization is not None and comparison and (Path(comparison) / "comparison.png").exists():
        pictures.append(Path(shutil.copyfile(Path(comparison) / "comparison.png", report_dir / "variants.png")))
    return pictures
