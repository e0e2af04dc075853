"""VariantComparison's work: for the trained model and each variant, parameters, compressed
weight size, sparsity, the metrics of its Evaluator run (the variant's own and, from the same
run, the trained model's as baseline: same examples, same split), its blessing, and the
per-example serving latency measured here on the split's raw examples.

Writes ``comparison.json`` (rows), ``comparison.csv``, ``comparison.md`` and ``comparison.png``.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from typing import Any

import tensorflow as tf
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from features import task as task_lib
from model import model_io

TRAINED = "trained"
# The metrics of each row, per task; the first is the task's headline (``features.task.PRIMARY``).
METRICS = {task_lib.BINARY: ("auc", "binary_accuracy", "precision", "recall"),
           task_lib.MULTICLASS: ("accuracy", "crossentropy"),
           task_lib.REGRESSION: ("rmse", "mae", "r2")}


def evaluation_metrics(evaluation_uri: str, model_name: str) -> dict[str, float]:
    """Overall-slice metrics of one model of a TFMA evaluation (candidate or baseline)."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri, model_name=model_name)
    for slice_key, metrics in result.slicing_metrics:
        if slice_key == ():
            return task_lib.flat_metrics(metrics)
    return {}


def raw_examples(examples: Any, split: str, n: int) -> list[bytes]:
    uri = artifact_utils.get_split_uri([examples], split)
    files = tf.io.gfile.glob(io_utils.all_files_pattern(uri))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(n)
    return [r.numpy() for r in dataset]


def latency_ms(model_uri: str, records: list[bytes]) -> float:
    """Median wall time of one ``serving_default`` call on one serialized example."""
    serve = tf.saved_model.load(path_utils.serving_model_path(model_uri)).signatures["serving_default"]
    inputs = [tf.constant([r]) for r in records]
    for x in inputs[:20]:  # warm-up: tracing and first-call allocations
        serve(examples=x)
    times = []
    for x in inputs:
        t0 = time.perf_counter()
        serve(examples=x)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def row(name: str, model_uri: str, metrics: dict[str, float], blessed: bool | None, records: list[bytes],
        split: str, task: str) -> dict[str, Any]:
    keras_model = model_io.load_model(model_uri)
    return {
        "variant": name, **model_io.measure(keras_model),
        **{f"{m}_{split}": metrics.get(m) for m in METRICS[task]},
        "blessed": blessed, "latency_ms": latency_ms(model_uri, records), "model": model_uri,
    }


def add_ratios(rows: list[dict[str, Any]], split: str, task: str) -> None:
    """Each row relative to the trained model: size and parameter ratios, the headline metric's
    change (``<metric>_change``)."""
    base, metric = rows[0], METRICS[task][0]
    for r in rows:
        r["parameter_ratio"] = r["parameters"] / base["parameters"]
        r["gzip_ratio"] = r["weights_gzip_bytes"] / base["weights_gzip_bytes"]
        value, base_value = r.get(f"{metric}_{split}"), base.get(f"{metric}_{split}")
        r[f"{metric}_change"] = None if value is None or base_value is None else value - base_value


def markdown(rows: list[dict[str, Any]], split: str, task: str) -> str:
    metric, *others = METRICS[task]
    cols = ["variant", "parameters", "parameter_ratio", "weights_gzip_bytes", "gzip_ratio", "sparsity",
            f"{metric}_{split}", f"{metric}_change", *(f"{m}_{split}" for m in others[:1]), "latency_ms", "blessed"]
    fmt = {float: "{:.4f}".format}
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.get(type(r.get(c)), str)(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], split: str, path: str, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["variant"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    metric = METRICS[task][0]
    panels = [("parameter_ratio", "parameters (x trained)"), ("gzip_ratio", "gzip size (x trained)"),
              (f"{metric}_{split}", f"{metric} on {split}")]
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [r.get(key) or 0.0 for r in rows]
        ax.bar(names, values, color=["#555"] + ["#2a7" if r["blessed"] else "#c44" for r in rows[1:]])
        ax.set_title(title)
        if key.startswith(("auc", "accuracy")):
            ax.set_ylim(max(0.0, min(values) - 0.05), 1.0)
    fig.suptitle("Model variants (green: blessed, red: not blessed)")
    fig.tight_layout()
    with tf.io.gfile.GFile(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


def run(examples: Any, model: Any, variants: dict[str, tuple[Any, Any, Any]], split: str, output_uri: str,
        latency_examples: int, task: str = task_lib.BINARY) -> list[dict[str, Any]]:
    """``variants``: name -> (model, evaluation, blessing) artifacts."""
    if not variants:
        raise ValueError("VariantComparison: no variant to compare (give e.g. pruned_model and its evaluation)")
    records = raw_examples(examples, split, latency_examples)
    if not records:
        raise ValueError(f"VariantComparison: split '{split}' of {examples.uri} has no examples")
    first = next(iter(variants.values()))
    rows = [row(TRAINED, model.uri, evaluation_metrics(first[1].uri, "baseline"), None, records, split, task)]
    for name, (variant, evaluation, blessing) in variants.items():
        blessed = bool(blessing.get_int_custom_property("blessed"))
        rows.append(row(name, variant.uri, evaluation_metrics(evaluation.uri, "candidate"), blessed, records, split,
                        task))
        rows[-1].update({k: v for k, v in model_io.read_stats(variant.uri).items()
                         if k in ("target_sparsity", "sparsity_per_layer", "teacher_parameters")})
    add_ratios(rows, split, task)
    with tf.io.gfile.GFile(os.path.join(output_uri, "comparison.json"), "w") as fh:
        json.dump({"split": split, "task": task, "metric": METRICS[task][0], "rows": rows}, fh, indent=1)
    with tf.io.gfile.GFile(os.path.join(output_uri, "comparison.md"), "w") as fh:
        fh.write(markdown(rows, split, task))
    with tf.io.gfile.GFile(os.path.join(output_uri, "comparison.csv"), "w") as fh:
        flat = [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in rows]
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in flat for k in r)))
        writer.writeheader()
        writer.writerows(flat)
    plot(rows, split, os.path.join(output_uri, "comparison.png"), task)
    return rows
