"""Multiclass and regression end to end, from the shipped configs and the bundled R write.csv files
(quoted header, a "" row-names column, NA): real TFX components, LocalDagRunner, sqlite MLMD,
then the pushed models served over REST and gRPC, on TFLite and in TF.js.

What is checked per task is what would break if the task were routed as binary: the class names
the served model answers with (fitted on train), the target in its own units (the inverse of the
log1p transform inside the served model), TFMA's per-task metrics, and the converters' parity.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from features import task
from pipeline import raw_inputs
from pipeline.pipeline_def import create_pipeline
from pipeline.summary import latest_output_uri, open_store, summarize
from tests.conftest import ROOT, newest_version
from tests.serving_fixtures import ServerProcess, http

pytestmark = [pytest.mark.e2e, pytest.mark.runs("chile", "diamonds")]

CONFIGS = ROOT / "pipeline" / "configs"


@pytest.fixture(scope="module")
def chile(pipeline_runs):
    """The whole multiclass pipeline on data/chile/Chile.csv as shipped (tests/runs.py)."""
    result = pipeline_runs.wait("chile")
    return result.cfg, result


@pytest.fixture(scope="module")
def diamonds(pipeline_runs):
    """The regression pipeline on every 8th diamond, R's quoting and row names kept (tests/runs.py)."""
    result = pipeline_runs.wait("diamonds")
    return result.cfg, result


def _pushed(cfg, target: str) -> Path:
    return newest_version(cfg.pushed_dir(target))


def _test_rows(cfg, n: int = 200) -> list[dict]:
    """Raw test-split rows (the cleaned examples) as {column: value} dicts, the label included."""
    uri = latest_output_uri(open_store(cfg), cfg.name, "DataCleaner", "Examples")
    files = sorted((Path(uri) / "Split-test").glob("*"))
    rows = []
    for record in tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP").take(n):
        example = tf.train.Example.FromString(record.numpy())
        row = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            if values:
                v = values[0]
                row[name] = v.decode() if isinstance(v, bytes) else str(v)
        rows.append(row)
    return rows


def _served_inputs(saved_model, rows: list[dict]) -> dict:
    return raw_inputs.raw_columns(rows, saved_model.signatures["serving_raw"])


@pytest.mark.parametrize("name", ["chile", "diamonds"])
def test_every_component_completes_is_blessed_and_pushed_everywhere(name, request):
    cfg, proc = request.getfixturevalue(name)
    ids = [c.id for c in create_pipeline(cfg).components]
    summary = summarize(cfg, ids)
    assert {n.node_id: n.state for n in summary.nodes} == dict.fromkeys(ids, "COMPLETE")
    assert summary.blessed is True and summary.pushed is True
    assert f"task: {cfg.label.task}" in proc.stdout
    for target in ("serving", "mobile", "web"):
        assert any(_pushed(cfg, target).iterdir()), target
    # ExampleGen dropped R's row-names column ("") and unquoted the header: the inferred schema
    # has exactly the named columns.
    schema_uri = latest_output_uri(open_store(cfg), cfg.name, "SchemaGen", "Schema")
    columns = re.findall(r'feature \{\s*name: "([^"]*)"', (Path(schema_uri) / "schema.pbtxt").read_text())
    header = (ROOT / "data" / name).glob("*.csv").__next__().open().readline().strip().split(",")
    assert header[0] == '""' and sorted(columns) == sorted(c.strip('"') for c in header[1:])


def test_multiclass_classes_are_fitted_on_train_and_served_by_name(chile):
    cfg, proc = chile
    store = open_store(cfg)
    transform = latest_output_uri(store, cfg.name, "Transform", "TransformGraph")
    classes = (Path(transform) / "transform_fn" / "assets" / task.CLASS_VOCABULARY).read_text().split()
    assert sorted(classes) == ["A", "N", "U", "Y"] == list(cfg.label_classes)
    model = tf.saved_model.load(str(_pushed(cfg, "serving")))
    rows = _test_rows(cfg)
    out = model.signatures["serving_raw"](**_served_inputs(model, rows))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (len(rows), 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert out["classes"].numpy().astype(str).tolist() == [classes] * len(rows)
    np.testing.assert_array_equal(out["scores"].numpy(), probabilities)
    # Better than always answering the most frequent class (35% of the labelled rows).
    predicted = np.array(classes)[probabilities.argmax(axis=1)]
    accuracy = np.mean(predicted == np.array([r["vote"] for r in rows]))
    assert accuracy > 0.5, accuracy
    # TFMA: accuracy, the macro average and one-vs-rest metrics per class, a confusion matrix.
    metrics = summarize(cfg, ["Transform", "Evaluator"]).metrics["eval"]
    assert 0.5 < metrics["accuracy"] <= 1.0
    for k in range(4):
        assert 0.0 <= metrics[f"recall@{k}"] <= 1.0 and 0.0 <= metrics[f"auc@{k}"] <= 1.0
    assert min(metrics[f"recall@{k}"] for k in range(4)) <= metrics["recall"] <= max(
        metrics[f"recall@{k}"] for k in range(4))
    assert "per class on eval" in proc.stdout and "\n    Y " in proc.stdout
    assert (cfg.output_dir / "report" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_regression_is_served_in_the_targets_units(diamonds):
    cfg, proc = diamonds
    model = tf.saved_model.load(str(_pushed(cfg, "serving")))
    rows = _test_rows(cfg)
    out = model.signatures["serving_raw"](**_served_inputs(model, rows))
    assert set(out) == {"outputs"}
    predicted = out["outputs"].numpy().reshape(-1)
    price = np.array([float(r["price"]) for r in rows])
    # Dollars, not log-dollars: the log1p inverse runs inside the served model.
    assert 200 < predicted.min() and predicted.max() < 40_000
    assert np.median(np.abs(predicted - price) / price) < 0.25
    # TFMA compares that answer with the untransformed price (transform_features' label).
    metrics = summarize(cfg, ["Evaluator"]).metrics["eval"]
    assert metrics["r2"] > 0.85 and 0 < metrics["mae"] < metrics["rmse"] < 2000
    assert "rmse" in proc.stdout and "r2" in proc.stdout


def _json_value(feature: tf.train.Feature) -> list:
    """A tf.Example feature as TF Serving's JSON example value (int, float or string)."""
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value)
    return [v.decode() if isinstance(v, bytes) else v for v in values]


@pytest.mark.parametrize("name", ["chile", "diamonds"])
def test_model_server_classifies_and_regresses_like_the_saved_model(name, request, tmp_path):
    import grpc
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc, regression_pb2

    cfg, _ = request.getfixturevalue(name)
    pushed = _pushed(cfg, "serving")
    model = tf.saved_model.load(str(pushed))
    rows = _test_rows(cfg, 20)
    transform = latest_output_uri(open_store(cfg), cfg.name, "Transform", "TransformGraph")
    raw_spec = tft.TFTransformOutput(transform).raw_feature_spec()
    examples = raw_inputs.tf_examples(rows, raw_spec, exclude=cfg.label.source_columns)
    local = model.signatures["serving_default"](examples=tf.constant(examples))
    server = ServerProcess([f"--model_name={name}", f"--model_base_path={pushed.parent}"], tmp_path / "server.log")
    try:
        instances = [{k: _json_value(v) for k, v in tf.train.Example.FromString(e).features.feature.items()}
                     for e in examples]
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc))
        if cfg.label.task == task.MULTICLASS:
            status, body = http(server.rest, "POST", f"/v1/models/{name}:classify", {"examples": instances})
            assert status == 200, body
            names = local["classes"].numpy().astype(str)
            got = np.array([[score for _, score in result] for result in body["results"]])
            assert [[c for c, _ in result] for result in body["results"]] == names.tolist()
            np.testing.assert_allclose(got, local["scores"].numpy(), rtol=1e-5)
            req = classification_pb2.ClassificationRequest()
            req.model_spec.name = name
            req.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in examples)
            result = stub.Classify(req, timeout=60).result
            assert [[c.label for c in r.classes] for r in result.classifications] == names.tolist()
        else:
            status, body = http(server.rest, "POST", f"/v1/models/{name}:regress", {"examples": instances})
            assert status == 200, body
            expected = local["outputs"].numpy().reshape(-1)
            np.testing.assert_allclose(body["results"], expected, rtol=1e-5)
            req = regression_pb2.RegressionRequest()
            req.model_spec.name = name
            req.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in examples)
            values = [r.value for r in stub.Regress(req, timeout=60).result.regressions]
            np.testing.assert_allclose(values, expected, rtol=1e-5)
        # The predict CLI prints class names with their probabilities, or the target's values.
        csv_path = tmp_path / "rows.csv"
        columns = list(model.signatures["serving_raw"].structured_input_signature[1])
        csv_path.write_text(",".join(columns) + "\n" + "\n".join(",".join(r.get(c, "") for c in columns)
                                                                 for r in rows) + "\n")
        proc = subprocess.run([sys.executable, "-m", "pipeline", "predict", "--csv", str(csv_path),
                               "--model_name", name, f"--server={server.rest}"],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = proc.stdout.splitlines()
        if cfg.label.task == task.MULTICLASS:
            assert lines[0] == "predicted_class," + ",".join(names[0])
            assert {line.split(",")[0] for line in lines[1:]} <= set(names[0])
        else:
            assert lines[0] == "outputs"
            assert 200 < min(float(v) for v in lines[1:])
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["chile", "diamonds"])
def test_tflite_and_tfjs_answer_like_the_saved_model_per_task(name, request):
    cfg, _ = request.getfixturevalue(name)
    mobile = json.loads((_pushed(cfg, "mobile") / "metadata.json").read_text())
    web = json.loads((_pushed(cfg, "web") / "metadata.json").read_text())
    assert web["task"] == cfg.label.task
    float32 = mobile["variants"]["float32"]
    assert float32["blessed"] and float32["agreement"] == 1.0
    if cfg.label.task == task.MULTICLASS:
        assert mobile["output"]["shape"] == [-1, 4]
        assert (_pushed(cfg, "mobile") / "labels.txt").read_text().split() == web["classes"]
        assert float32["max_abs_diff"] <= 1e-5 and web["validation"]["max_abs_diff"] <= 1e-5
    else:
        # Relative to the price: float32 arithmetic on a ~10,000 dollar value differs by ~1e-3.
        assert float32["max_rel_diff"] <= 1e-4 and web["validation"]["max_rel_diff"] <= 1e-4
        assert not (_pushed(cfg, "mobile") / "labels.txt").exists()
    # A quantized variant is judged by the task's rule and shipped only when blessed (int8 weights
    # cost a classifier nothing here; on a log-price regression they cost more than 1% on most rows).
    quantized = mobile["variants"]["dynamic_range"]
    assert quantized["blessed"] == task.blessed(quantized, quantized["thresholds"])[0]
    assert (_pushed(cfg, "mobile") / "model_dynamic_range.tflite").exists() == quantized["blessed"]
    if cfg.label.task == task.MULTICLASS:
        assert quantized["blessed"] and quantized["agreement"] >= 0.99


@pytest.mark.parametrize("name", ["chile", "diamonds"])
def test_variants_are_made_and_judged_by_the_tasks_metric(name, request):
    # Distillation on softened softmax (multiclass) or the teacher's outputs (regression), pruning
    # of a regression model: each evaluated against the trained model by the task's metric.
    cfg, proc = request.getfixturevalue(name)
    summary = summarize(cfg, [c.id for c in create_pipeline(cfg).components])
    rows = {r["variant"]: r for r in summary.variants}
    metric = task.PRIMARY[cfg.label.task]
    assert f"{metric:>11}" in proc.stdout  # the variant table's headline column
    student = rows["student"]
    assert student["parameter_ratio"] < 0.5 and student[f"{metric}_test"] is not None
    if cfg.label.task == task.MULTICLASS:
        # A student that learnt the classes, not the majority class (35%).
        assert student["accuracy_test"] > 0.5 and student["blessed"] is True
    else:
        pruned = rows["pruned"]
        assert pruned["sparsity_per_layer"]["overall"] == pytest.approx(0.7, abs=0.01)
        # Dollars of error, not log-dollars: a student stuck at 0 would be off by the whole price.
        assert student["rmse_test"] < 2 * rows["trained"]["rmse_test"]


@pytest.mark.parametrize("name", ["chile", "diamonds"])
def test_web_page_answers_like_the_saved_model_in_chromium(name, request):
    # The pushed page itself (form -> model_runtime.js -> graph model): K class probabilities or
    # the target's value per row, as the SavedModel answers the same raw rows.
    from components.tfjs_converter import executor, runtime
    from ondevice import data

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"{chromium} is not installed (`make system-deps` installs Debian's chromium as root)")
    cfg, _ = request.getfixturevalue(name)
    web = _pushed(cfg, "web")
    spec = json.loads((web / "preprocessing_spec.json").read_text())
    metadata = json.loads((web / "metadata.json").read_text())
    examples = latest_output_uri(open_store(cfg), cfg.name, "DataCleaner", "Examples")
    rows = data.raw_rows(examples, "test", 8, spec)
    reference = data.reference_predictions(metadata["source_model"], rows, spec)
    out = runtime.browser_predict(str(web), rows, data.raw_columns(spec), str(chromium))
    assert out["errors"] == [] and not [c for c in out["console"] if c.startswith(("error", "pageerror"))], out
    predicted = np.array(out["predictions"], dtype=np.float64)
    assert predicted.shape == ((8, 4) if cfg.label.task == task.MULTICLASS else (8, 1))
    assert not executor.judge(executor.parity(spec["task"], reference, predicted), metadata["thresholds"])
