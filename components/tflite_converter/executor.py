"""TFLiteConverter's executor: convert, validate in LiteRT, evaluate with TFMA, bless, lay out.

Artifact layout (``mobile_model.uri``):
  Format-Serving/          what Pusher copies to pushed/mobile[_<model>]/<version>/:
    model_<variant>.tflite   the blessed variants only
    labels.txt, preprocessing_spec.json, metadata.json
  candidates/model_<variant>.tflite   every converted variant, blessed or not
  saved_model_raw/         the raw-features SavedModel that was converted
  validation.json          per variant: size, max |diff|, agreement, TFMA metrics, blessed
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from tfx.utils import path_utils

import beam_local
from features import task
from model import model_io
from ondevice import data, raw_model, validation
from ondevice import tflite as lite

COMPONENT = "TFLiteConverter"
# TFMA metrics of the shipped .tflite files, per task (TFMA computes them from the model's output).
TFLITE_METRICS = {
    task.BINARY: ("ExampleCount", "AUC", "BinaryAccuracy", "Precision", "Recall", "MeanPrediction", "MeanLabel"),
    task.MULTICLASS: ("ExampleCount", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy"),
    task.REGRESSION: ("ExampleCount", "MeanSquaredError", "MeanAbsoluteError", "MeanPrediction", "MeanLabel"),
}


def _log(msg: str) -> None:
    print(f"[{COMPONENT}] {msg}", flush=True)


def tfma_metrics(contents: dict[str, bytes], rows: dict[str, np.ndarray], spec: dict[str, Any],
                 label_values: np.ndarray, workdir: str) -> dict[str, dict[str, float]]:
    """TFMA metrics (model type tf_lite) of each .tflite model on ``rows`` with their labels:
    one Beam pipeline for all variants."""
    import tensorflow_model_analysis as tfma

    examples = os.path.join(workdir, "examples.tfrecord")
    label = spec["label"]
    values = label_values.astype(np.float32 if spec["task"] == task.REGRESSION else np.int64)
    data.write_examples(rows, spec, {label: values}, examples)
    specs, shared = [], []
    metrics = [tfma.MetricsSpec(model_names=list(contents), metrics=[
        tfma.MetricConfig(class_name=c) for c in TFLITE_METRICS[spec["task"]]])]
    for name in contents:
        specs.append(tfma.ModelSpec(name=name, model_type=tfma.TF_LITE, label_key=label))
    eval_config = tfma.EvalConfig(model_specs=specs, slicing_specs=[tfma.SlicingSpec()], metrics_specs=metrics)
    for name, content in contents.items():
        model_dir = os.path.join(workdir, name)
        os.makedirs(model_dir, exist_ok=True)
        with open(os.path.join(model_dir, "tflite"), "wb") as fh:  # the file name TFMA loads
            fh.write(content)
        shared.append(tfma.default_eval_shared_model(eval_saved_model_path=model_dir, model_name=name,
                                                     eval_config=eval_config))
    output = os.path.join(workdir, "tfma")
    # A few hundred validation rows: run here, whatever runner the pipeline's big jobs use.
    tfma.run_model_analysis(eval_shared_model=shared, eval_config=eval_config, data_location=examples,
                            output_path=output, pipeline_options=beam_local.local_options())
    out = {}
    for name in contents:
        # TFMA keys the results of a lone model spec by no name at all (a run with one blessed variant).
        result = tfma.load_eval_result(output, model_name=name if len(contents) > 1 else None)
        out[name] = next((task.flat_metrics(m) for key, m in result.slicing_metrics if key == ()), {})
    return out


def judge_variant(kind: str, predict: Callable[[], np.ndarray], reference: np.ndarray,
                  thresholds: dict[str, float]) -> tuple[dict[str, float], bool, list[str]]:
    """(parity metrics, blessed, failures) of one variant by the converters' rule (ondevice/validation.py)."""
    try:
        measured = validation.parity(kind, reference, predict())
    except RuntimeError as exc:  # a kernel refused the converted graph (e.g. int8 division by zero)
        return validation.unmeasured(), False, [f"LiteRT could not run it: {str(exc).splitlines()[0]}"]
    return (measured, *validation.blessed(measured, thresholds))


def _metadata(model_uri: str, spec: dict[str, Any], results: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    k = len(spec["classes"]) if spec["task"] == task.MULTICLASS else 1
    meaning = {task.BINARY: f"P({spec['classes'][-1] if spec['classes'] else spec['label']})",
               task.MULTICLASS: f"P(class) for the classes of labels.txt, in order ({', '.join(spec['classes'])})",
               task.REGRESSION: f"{spec['label']} in its own units"}[spec["task"]]
    return {"source_model": model_uri, "inputs": spec["inputs"], "output": {"name": spec["output"],
            "shape": [-1, k], "meaning": meaning},
            "variants": results, "validation_split": cfg.get("split", "test"),
            "not_builtin": {f["name"]: f["not_builtin"] for f in spec["features"] if not f["builtin"]}}


def run(model: Any, transform_graph: Any, examples: Any, mobile_model: Any, blessing: Any, config_json: str,
        model_blessing: Any = None) -> None:
    cfg = model_io.parse_config(config_json, COMPONENT, ("variants", "thresholds"))
    split, n = cfg.get("split", "test"), int(cfg.get("validation_examples", 500))
    if not tf.io.gfile.exists(path_utils.serving_model_path(model.uri)):
        raise ValueError(f"{COMPONENT}: no SavedModel in {model.uri}")
    spec = raw_model.build_spec_for(transform_graph.uri, cfg["custom_config"])
    if not_builtin := {f["name"]: f["not_builtin"] for f in spec["features"] if not f["builtin"]}:
        _log("features the app must transform itself (see preprocessing_spec.json): "
             + "; ".join(f"{k}: {', '.join(v)}" for k, v in not_builtin.items()))
    saved = os.path.join(mobile_model.uri, "saved_model_raw")
    module = raw_model.build(model.uri, spec, target="tflite")
    tf.saved_model.save(module, saved, signatures={"serving_default": module.serve})

    import tensorflow_transform as tft

    from model.signatures import serving_columns

    raw_spec = tft.TFTransformOutput(transform_graph.uri).raw_feature_spec()
    columns = serving_columns(cfg["custom_config"], raw_spec)  # what serving_raw (the reference) needs
    rows = data.raw_rows(examples.uri, split, n, spec, columns)
    n = len(next(iter(rows.values())))
    reference = data.reference_predictions(model.uri, rows, spec)
    label_values = data.labels(model.uri, examples.uri, split, n, spec["label"])
    train = data.raw_rows(examples.uri, "train", int(cfg.get("representative_examples", 200)), spec, columns)
    representative = [data.feed(train, spec, i, i + 1) for i in range(len(next(iter(train.values()))))]

    candidates = os.path.join(mobile_model.uri, "candidates")
    serving = path_utils.serving_model_dir(mobile_model.uri)
    for d in (candidates, serving):
        tf.io.gfile.makedirs(d)
    results: dict[str, Any] = {}
    saved_bytes = _dir_bytes(os.path.join(path_utils.serving_model_path(model.uri), "variables"))
    contents: dict[str, bytes] = {}
    for variant in cfg["variants"]:
        _log(f"converting {variant} ...")
        content = contents[variant] = lite.convert(saved, variant, representative if variant == "int8" else None,
                                                   quantization_aware=module.quantization_aware)
        with tf.io.gfile.GFile(os.path.join(candidates, f"model_{variant}.tflite"), "wb") as fh:
            fh.write(content)
        measured, ok, failures = judge_variant(spec["task"], lambda c=content: lite.predict(c, data.feed(rows, spec)),
                                               reference, cfg["thresholds"][variant])
        results[variant] = {"bytes": len(content), "size_vs_saved_model_variables": len(content) / saved_bytes,
                            **measured, "thresholds": cfg["thresholds"][variant], "blessed": ok,
                            "failures": failures, "validation_examples": n,
                            "quantized_ops": lite.quantized_ops(content)}
        _log(f"{variant}: {len(content):,} B, max |diff| {measured['max_abs_diff']:.2e}, agreement "
             f"{measured['agreement']:.4f} -> {'blessed' if ok else 'NOT blessed: ' + '; '.join(failures)}")
        if ok:
            tf.io.gfile.copy(os.path.join(candidates, f"model_{variant}.tflite"),
                             os.path.join(serving, f"model_{variant}.tflite"), overwrite=True)
    # TFMA evaluates what ships: the blessed variants (a failed one may not even run).
    shipped = {v: c for v, c in contents.items() if results[v]["blessed"]}
    if shipped:
        _log(f"TFMA metrics (model type tf_lite) of {', '.join(shipped)} ...")
        with tempfile.TemporaryDirectory() as work:
            for variant, metrics in tfma_metrics(shipped, rows, spec, label_values, work).items():
                results[variant]["tfma"] = metrics
                _log(f"{variant}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
    metadata = _metadata(model.uri, spec, results, cfg)
    raw_model.write_spec(spec, os.path.join(serving, raw_model.SPEC_FILE))
    if spec["classes"]:  # classification: output index -> class name
        with tf.io.gfile.GFile(os.path.join(serving, "labels.txt"), "w") as fh:
            fh.write("".join(f"{c}\n" for c in spec["classes"]))
    for path in (os.path.join(serving, "metadata.json"), os.path.join(mobile_model.uri, "validation.json")):
        with tf.io.gfile.GFile(path, "w") as fh:
            json.dump(metadata, fh, indent=1)
    any_blessed = any(r["blessed"] for r in results.values())
    # A model its Evaluator did not bless is converted and measured, never shipped.
    source_blessed = model_blessing is None or model_blessing.get_int_custom_property("blessed") == 1
    if not source_blessed:
        _log(f"not blessed: the Evaluator did not bless {model.uri}")
    any_blessed = any_blessed and source_blessed
    for key, r in results.items():
        mobile_model.set_float_custom_property(f"{key}_bytes", float(r["bytes"]))
        mobile_model.set_float_custom_property(f"{key}_agreement", r["agreement"])
        mobile_model.set_int_custom_property(f"{key}_blessed", int(r["blessed"]))
    blessing.set_int_custom_property("blessed", int(any_blessed))
    blessing.set_string_custom_property("current_model", model.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "BLESSED" if any_blessed else "NOT_BLESSED"), "w") as fh:
        fh.write(json.dumps({k: r["blessed"] for k, r in results.items()}))


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) or 1
