"""TFJSConverter's work: the trained model (or a variant) with Transform's preprocessing rebuilt in
built-in ops (``ondevice.raw_model``), converted to a TF.js graph model by
``tensorflowjs_converter`` (its own venv), then run by TF.js in Node on validation rows of the
examples and compared with the SavedModel's own ``serving_raw`` answers on the same rows.

The output Model artifact is laid out for TFX's Pusher, which copies ``<uri>/Format-Serving/``
(``path_utils.serving_model_path``) to ``<base_directory>/<version>/``: that folder is the whole
web deployment, the model and a page that uses it::

    <uri>/Format-Serving/        what is pushed (pushed/web[_<variant>]/<version>/)
        model/model.json, model/group1-shard*.bin    the TF.js graph model
        preprocessing_spec.json                        Transform's fitted preprocessing
        metadata.json              inputs, raw columns, thresholds, parity, sizes, example rows
        index.html, app.js, model_runtime.js, text.js, ui.js, tf.min.js   the demo page (npm's tfjs bundle)
    <uri>/raw_saved_model/       the raw-features SavedModel that was converted
    <uri>/validation.json        every validation row: reference and TF.js probability

Everything is written to a staging folder and moved into place only when it is complete: a
failure (missing model, an op TF.js lacks, the converter or Node failing) leaves nothing behind
but the error, which names the file, op or command.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from components.tfjs_converter import runtime
from ondevice import validation

SERVING_DIR = "Format-Serving"  # tfx path_constants.SERVING_MODEL_DIR: what Pusher copies
MODEL_SUBDIR = "model"
METADATA_FILE = "metadata.json"
SPEC_FILE = "preprocessing_spec.json"
VALIDATION_FILE = "validation.json"
RAW_SAVED_MODEL = "raw_saved_model"
DEMO_DIR = runtime.WEB_DIR / "demo"
PAGE_FILES = ("index.html", "app.js")
DEMO_EXAMPLES = 5  # validation rows offered by the page's "example" menu
REQUIRED = ("custom_config", "quantization", "thresholds", "split", "validation_examples")
MISSING = {"float32": "NaN (empty field)", "string": "\"\" (empty field)"}  # integers (timestamps): negative
MISSING["image"] = "none: decoded pixels are required (preprocessing_spec.json features[].pixels)"


def parse_config(config_json: str) -> dict[str, Any]:
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TFJSConverter: config is not valid JSON: {exc}") from None
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise ValueError(f"TFJSConverter: config lacks {', '.join(missing)}")
    if config["quantization"] not in runtime.QUANTIZATION_FLAGS:
        raise ValueError(f"TFJSConverter: quantization must be one of {', '.join(runtime.QUANTIZATION_FLAGS)}, "
                         f"got {config['quantization']!r}")
    validation.check_thresholds(config["thresholds"], "TFJSConverter")
    if int(config["validation_examples"]) < 1:
        raise ValueError("TFJSConverter: validation_examples must be positive")
    return config


def check_inputs(model_uri: str, transform_graph_uri: str, examples_uri: str, split: str) -> None:
    """Name the missing file before any work starts."""
    saved_model = os.path.join(model_uri, SERVING_DIR, "saved_model.pb")
    if not os.path.exists(saved_model):
        raise FileNotFoundError(f"TFJSConverter: no SavedModel in the model artifact: {saved_model} does not exist")
    transform_fn = os.path.join(transform_graph_uri, "transform_fn", "saved_model.pb")
    if not os.path.exists(transform_fn):
        raise FileNotFoundError(f"TFJSConverter: no Transform graph: {transform_fn} does not exist")
    split_dir = os.path.join(examples_uri, f"Split-{split}")
    if not os.path.isdir(split_dir) or not os.listdir(split_dir):
        raise FileNotFoundError(f"TFJSConverter: no '{split}' examples to validate on: {split_dir} is missing or empty")


# The converters' one parity rule (ondevice/validation.py); these names are what tests and docs call.
def parity(kind: str, reference: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """How closely the TF.js outputs (flattened) follow the SavedModel's, with the mean |diff|."""
    return validation.parity(kind, reference, predicted, summary=True)


judge = validation.failures


def sizes(serving_dir: Path) -> dict[str, int]:
    """Bytes of the graph model (model.json + weight shards), raw and gzipped as a server would
    send them, and of the page's tfjs bundle."""
    model_files = sorted((serving_dir / MODEL_SUBDIR).iterdir())
    weights = [f for f in model_files if f.suffix == ".bin"]
    return {
        "model_json_bytes": (serving_dir / MODEL_SUBDIR / "model.json").stat().st_size,
        "weights_bytes": sum(f.stat().st_size for f in weights),
        "weight_shards": len(weights),
        "model_bytes": sum(f.stat().st_size for f in model_files),
        "model_gzip_bytes": sum(len(gzip.compress(f.read_bytes(), compresslevel=9)) for f in model_files),
        "tfjs_bundle_bytes": (serving_dir / runtime.TFJS_BUNDLE.name).stat().st_size,
    }


def quantized_weights(model_json: Path) -> dict[str, list[str]]:
    """Weight names by stored dtype: quantized ones (float16 / uint8) and float32 ones."""
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    out: dict[str, list[str]] = {}
    for group in manifest:
        for w in group["weights"]:
            if w["dtype"] == "float32":
                out.setdefault(w.get("quantization", {}).get("dtype", "float32"), []).append(w["name"])
    return out


# Ops TF.js accepts but runs as identity (tfjs-converter's graph executor: "currently ignored").
IGNORED_OPS = {"FakeQuantWithMinMaxVars": "fake quantization of a quantization-aware model is skipped, so it "
                                          "runs as its float model"}


def ignored_ops(model_json: Path) -> dict[str, int]:
    """{op: count} of the graph's ops that TF.js runs as identity."""
    topology = json.loads(model_json.read_text())["modelTopology"]
    nodes = list(topology.get("node", []))
    for function in topology.get("library", {}).get("function", []):
        nodes += function.get("nodeDef", [])
    counts: dict[str, int] = {}
    for node in nodes:
        if node["op"] in IGNORED_OPS:
            counts[node["op"]] = counts.get(node["op"], 0) + 1
    return counts


def _example_rows(rows: dict[str, np.ndarray], columns: list[str], reference: np.ndarray, predicted: np.ndarray,
                  k: int) -> list[dict[str, Any]]:
    js = runtime.rows_json({c: rows[c][:k] for c in columns}, columns)["columns"]
    return [{"values": {c: js[c][i] for c in columns}, "saved_model": reference[i].tolist(),
             "tfjs": predicted[i].tolist()} for i in range(min(k, len(reference)))]


def write_page(serving_dir: Path) -> None:
    """The demo page, the runtime module it shares with Node, and npm's tfjs bundle."""
    for name in PAGE_FILES:
        shutil.copy2(DEMO_DIR / name, serving_dir / name)
    shutil.copy2(runtime.WEB_DIR / "src" / "model_runtime.js", serving_dir / "model_runtime.js")
    shutil.copy2(runtime.WEB_DIR / "src" / "text.js", serving_dir / "text.js")  # its tokenizer (text features)
    shutil.copy2(runtime.WEB_DIR / "src" / "ui.js", serving_dir / "ui.js")  # answers and errors on the page
    spec = serving_dir / SPEC_FILE
    if spec.exists() and any(i.get("pixels") for i in json.loads(spec.read_text())["inputs"]):
        shutil.copy2(runtime.WEB_DIR / "src" / "image.js", serving_dir / "image.js")  # draw / upload page
    shutil.copy2(runtime.TFJS_BUNDLE, serving_dir / runtime.TFJS_BUNDLE.name)


def _publish(staging: Path, uri: Path) -> None:
    """Move the finished parts into the artifact folder; Format-Serving last."""
    uri.mkdir(parents=True, exist_ok=True)
    leftovers = [p.name for p in uri.iterdir()]
    if leftovers:
        raise FileExistsError(f"TFJSConverter: output folder {uri} is not empty: {', '.join(sorted(leftovers))}")
    for part in sorted(staging.iterdir(), key=lambda p: p.name == SERVING_DIR):
        os.rename(part, uri / part.name)


def convert_and_validate(model_uri: str, transform_graph_uri: str, examples_uri: str, config: dict[str, Any],
                         staging: Path, upstream_blessed: bool | None = None) -> dict[str, Any]:
    """Everything but publishing: builds ``staging`` in the artifact layout, returns the metadata."""
    from ondevice import data
    from ondevice.raw_model import export_raw_savedmodel

    timings: dict[str, float] = {}
    t = time.monotonic()
    export = export_raw_savedmodel(model_uri, transform_graph_uri, config["custom_config"],
                                   str(staging / RAW_SAVED_MODEL))
    timings["export_s"] = time.monotonic() - t
    serving = staging / SERVING_DIR
    serving.mkdir()
    t = time.monotonic()
    command = runtime.convert(export.saved_model_dir, str(serving / MODEL_SUBDIR), config["quantization"])
    timings["convert_s"] = time.monotonic() - t
    spec = export.spec
    (serving / SPEC_FILE).write_text(json.dumps(spec, indent=1))
    write_page(serving)

    # Validation: the web path (raw columns -> model_runtime.js -> graph model) vs serving_raw.
    split, n = config["split"], int(config["validation_examples"])
    raw_columns = data.raw_columns(spec)
    rows = data.raw_rows(examples_uri, split, n, spec)
    t = time.monotonic()
    reference = np.asarray(data.reference_predictions(model_uri, rows, spec), np.float64)
    timings["reference_s"] = time.monotonic() - t
    t = time.monotonic()
    node = runtime.node_predict(str(serving), rows, list(raw_columns))
    timings["tfjs_node_s"] = time.monotonic() - t
    predicted = np.asarray(node["predictions"], np.float64).reshape(reference.shape)
    measured = parity(spec["task"], reference, predicted)
    failures = judge(measured, config["thresholds"])
    ignored = ignored_ops(serving / MODEL_SUBDIR / "model.json")
    notes = [f"TF.js runs {op} as identity ({n} nodes): {IGNORED_OPS[op]}" for op, n in ignored.items()]
    if failures and notes:
        failures = [*failures, *notes]
    if upstream_blessed is False:
        failures.append("the source model is not blessed by its Evaluator")
    stored = quantized_weights(serving / MODEL_SUBDIR / "model.json")

    metadata = {
        "format": "tfx-reference-pipeline/web-model",
        "version": 1,
        "model": config.get("model_name", "trained"),
        "source_model": model_uri,
        "output": spec["output"],
        "task": spec["task"],
        "classes": spec["classes"],
        "model_json": f"{MODEL_SUBDIR}/model.json",
        # The graph model's inputs (signature order): raw columns and app-transformed features.
        "inputs": [{"name": i["name"], "dtype": i["dtype"], "shape": [None, *i.get("shape", [])],
                    **({"transformed": True, "feature": i["feature"]} if i.get("transformed") else
                       {"missing": i.get("missing")})} for i in spec["inputs"]],
        # What an app (the page's form) supplies: raw columns; model_runtime.js does the rest.
        "raw_columns": [{"name": c, "dtype": d, "missing": MISSING.get(d, "negative (empty)")}
                        for c, d in raw_columns.items()],
        "app_transformed": {f["name"]: f.get("not_builtin", []) for f in spec["features"] if not f["builtin"]},
        "quantization": config["quantization"],
        "quantized_weights": {k: len(v) for k, v in stored.items()},
        "thresholds": config["thresholds"],
        "validation": {**measured, "split": split,
                       "runtime": f"@tensorflow/tfjs {node['tfjs_version']} in Node {node['node_version']} "
                                  f"({node['backend']} backend)",
                       "reference": "SavedModel serving_raw signature (Transform graph inside)",
                       "blessed": not failures, "failures": failures, "source_model_blessed": upstream_blessed,
                       "notes": notes},
        "sizes": sizes(serving),
        "converter": {"command": [Path(command[0]).name, *command[1:-2]], "tensorflowjs": runtime.converter_version(),
                      "tfjs": runtime.tfjs_version()},
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "examples": _example_rows(rows, list(raw_columns), reference, predicted, DEMO_EXAMPLES),
    }
    (serving / METADATA_FILE).write_text(json.dumps(metadata, indent=1))
    (staging / VALIDATION_FILE).write_text(json.dumps(
        {"split": split, "saved_model": reference.tolist(), "tfjs": predicted.tolist()}))
    return metadata


def run(model: Any, transform_graph: Any, examples: Any, web_model: Any, blessing: Any, config_json: str,
        model_blessing: Any = None) -> dict[str, Any]:
    config = parse_config(config_json)
    check_inputs(model.uri, transform_graph.uri, examples.uri, config["split"])
    runtime.check_installed()
    upstream = None
    if model_blessing is not None:
        upstream = model_blessing.get_int_custom_property("blessed") == 1
    uri = Path(web_model.uri)
    staging = Path(tempfile.mkdtemp(prefix=f".{uri.name}.staging-", dir=uri.parent))
    try:
        metadata = convert_and_validate(model.uri, transform_graph.uri, examples.uri, config, staging, upstream)
        _publish(staging, uri)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    v, s = metadata["validation"], metadata["sizes"]
    for key in ("max_abs_diff", "mean_abs_diff", "agreement"):
        web_model.set_float_custom_property(key, v[key])
    for key in ("model_bytes", "model_gzip_bytes"):
        web_model.set_int_custom_property(key, s[key])
    web_model.set_string_custom_property("quantization", config["quantization"])
    blessed = v["blessed"]
    Path(blessing.uri).mkdir(parents=True, exist_ok=True)
    (Path(blessing.uri) / ("BLESSED" if blessed else "NOT_BLESSED")).write_text("\n".join(v["failures"]))
    blessing.set_int_custom_property("blessed", 1 if blessed else 0)
    blessing.set_string_custom_property("current_model", web_model.uri)
    if v["failures"]:
        blessing.set_string_custom_property("reason", "; ".join(v["failures"]))
    return metadata
