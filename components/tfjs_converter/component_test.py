"""TFJSConverter in a real TFX pipeline (LocalDagRunner, sqlite MLMD): Importer nodes bring in the
session's real trained model, its Transform graph and its examples (tests/serving_fixtures.py: the
pipeline run up to Trainer on a taxi sample); the model is converted twice, float32 (blessed,
pushed to web/) and uint8 with a threshold it cannot meet (not blessed, not pushed). The pushed
web model then runs in TF.js (Node, @tensorflow/tfjs) on real test rows against the SavedModel's
serving_raw signature. Bad inputs (no model, an op TF.js lacks, a broken web model) fail with the
file, op or command named and leave nothing behind."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.tfjs_converter import TFJSConverter, bench, executor, runtime
from pipeline.config import load_config
from tests.serving_fixtures import needs_model, session_model

PAGE = ["app.js", "index.html", "metadata.json", "model", "model_runtime.js", "preprocessing_spec.json", "text.js",
        "tf.min.js", "ui.js"]
N_ROWS = 120


def _newest(folder: Path) -> Path:
    return max((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


@pytest.fixture(scope="module")
def run(tmp_path_factory, pipeline_runs) -> dict:
    model = session_model(pipeline_runs)
    model_root = model.model_artifact.parents[2]  # <pipeline_root>/Trainer/model/<id>
    cfg = load_config(model_root.parents[2] / "pipeline.yaml", output_root=model_root.parents[2] / "outputs")
    transform_graph = _newest(model_root / "Transform" / "transform_graph")
    root = tmp_path_factory.mktemp("tfjs_converter")
    imports = {
        "model": tfx.dsl.Importer(source_uri=str(model.model_artifact), artifact_type=standard_artifacts.Model
                                  ).with_id("import_model"),
        "transform_graph": tfx.dsl.Importer(source_uri=str(transform_graph),
                                            artifact_type=standard_artifacts.TransformGraph).with_id("import_graph"),
        "examples": tfx.dsl.Importer(
            source_uri=str(model.examples), artifact_type=standard_artifacts.Examples,
            properties={"split_names": '["train", "eval", "test"]'}).with_id("import_examples"),
    }
    components: list = list(imports.values())
    inputs = {k: v.outputs["result"] for k, v in imports.items()}
    cases = {"web": ("none", {"max_abs_diff": 1e-5}), "web_strict": ("uint8", {"max_abs_diff": 1e-9})}
    for name, (quantization, thresholds) in cases.items():
        config = {"custom_config": cfg.trainer_custom_config(), "quantization": quantization, "thresholds": thresholds,
                  "split": "test", "validation_examples": N_ROWS, "model_name": "trained"}
        converter = TFJSConverter(**inputs, config=json.dumps(config)).with_id(f"TFJSConverter_{name}")
        pusher = tfx.components.Pusher(
            model=converter.outputs["web_model"], model_blessing=converter.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=str(root / "pushed" / name)))).with_id(f"Pusher_{name}")
        components += [converter, pusher]
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="tfjs_converter_test", pipeline_root=str(root / "pipeline_root"), components=components,
        enable_cache=False, metadata_connection_config=connection))
    store = metadata_store.MetadataStore(connection)
    artifacts = {}
    for type_name in ("Model", "ModelBlessing"):
        for a in store.get_artifacts_by_type(type_name):
            node = Path(a.uri).parts[-3]  # <pipeline_root>/<node id>/<output key>/<execution id>
            if node.startswith("TFJSConverter_"):
                artifacts[(node.removeprefix("TFJSConverter_"), type_name)] = a
    return {"root": root, "model": model, "cfg": cfg, "artifacts": artifacts}


def _pushed(run: dict, name: str) -> list[Path]:
    base = run["root"] / "pushed" / name
    return sorted(base.iterdir()) if base.exists() else []


@needs_model  # reads the session's serving model (tests/runs.py)
def test_blessed_web_model_is_pushed_with_its_page_and_spec(run):
    (version,) = _pushed(run, "web")
    assert sorted(p.name for p in version.iterdir()) == PAGE
    assert (version / "model" / "model.json").exists() and list((version / "model").glob("group1-shard*.bin"))
    metadata = json.loads((version / "metadata.json").read_text())
    spec = json.loads((version / "preprocessing_spec.json").read_text())
    assert [i["name"] for i in metadata["inputs"]] == [i["name"] for i in spec["inputs"]]
    v = metadata["validation"]
    assert v["blessed"] and v["examples"] > 50 and v["max_abs_diff"] <= 1e-5 and v["agreement"] == 1.0, v
    assert metadata["thresholds"] == {"max_abs_diff": 1e-5} and metadata["quantization"] == "none"
    assert metadata["sizes"]["model_bytes"] > metadata["sizes"]["weights_bytes"] > 0
    blessing = run["artifacts"][("web", "ModelBlessing")]
    assert blessing.custom_properties["blessed"].int_value == 1
    assert (Path(blessing.uri) / "BLESSED").exists()
    web_model = run["artifacts"][("web", "Model")]
    assert web_model.custom_properties["max_abs_diff"].double_value == pytest.approx(v["max_abs_diff"], abs=1e-6)
    # Only Format-Serving is pushed; the converted SavedModel and per-row results stay in the artifact.
    assert sorted(p.name for p in Path(web_model.uri).iterdir()) == ["Format-Serving", "raw_saved_model",
                                                                      "validation.json"]


@needs_model  # reads the session's serving model (tests/runs.py)
def test_pushed_web_model_in_node_matches_the_saved_model_on_real_rows(run):
    from ondevice import data

    (version,) = _pushed(run, "web")
    spec = json.loads((version / "preprocessing_spec.json").read_text())
    rows = data.raw_rows(str(run["model"].examples), "test", N_ROWS, spec)
    # Missing values too (imputed inside both models): every column blanked in a third of the rows.
    for k, (name, dtype) in enumerate(data.raw_columns(spec).items()):
        blank = np.arange(len(rows[name])) % 3 == k % 3
        rows[name] = np.where(blank, "" if dtype == "string" else (-1 if dtype.startswith("int") else np.nan),
                              rows[name]).astype(rows[name].dtype)
    reference = data.reference_predictions(str(run["model"].model_artifact), rows, spec)
    out = runtime.node_predict(str(version), rows, list(data.raw_columns(spec)))
    assert out["backend"] == "cpu" and out["tfjs_version"] == runtime.tfjs_version()
    measured = executor.parity(spec["task"], reference, np.array(out["predictions"]))
    assert measured["max_abs_diff"] <= 1e-5 and measured["agreement"] == 1.0, measured


@needs_model  # reads the session's serving model (tests/runs.py)
def test_model_outside_its_thresholds_is_not_blessed_nor_pushed(run):
    assert _pushed(run, "web_strict") == []
    blessing = run["artifacts"][("web_strict", "ModelBlessing")]
    assert blessing.custom_properties["blessed"].int_value == 0
    reason = (Path(blessing.uri) / "NOT_BLESSED").read_text()
    assert reason.startswith("max_abs_diff ") and "> 1e-09" in reason
    metadata = json.loads((Path(run["artifacts"][("web_strict", "Model")].uri) / "Format-Serving"
                           / "metadata.json").read_text())
    # uint8 only for the model's weights: the preprocessing constants (means, boundaries) stay float32.
    assert metadata["quantized_weights"]["uint8"] > 0 and metadata["quantized_weights"]["float32"] > 0
    assert metadata["validation"]["agreement"] >= 0.98
    assert metadata["sizes"]["weights_bytes"] < 0.4 * json.loads(
        (_pushed(run, "web")[0] / "metadata.json").read_text())["sizes"]["weights_bytes"]


@needs_model  # reads the session's serving model (tests/runs.py)
def test_benchmark_measures_sizes_and_node_latency(run):
    (version,) = _pushed(run, "web")
    m = bench.tfjs_measurements(version, single_runs=20, batch=256, repeats=3)
    assert m["model_gzip_bytes"] < m["model_bytes"] and m["tfjs_bundle_bytes"] > 100_000
    assert 0 < m["per_example_ms"]["p50_ms"] < 1000 and 0 < m["batch_256_ms"]["p50_ms"] < 5000
    assert m["runtime"].startswith(f"@tensorflow/tfjs {runtime.tfjs_version()} in Node")


def _artifact(cls, uri: Path):
    a = cls()
    a.uri = str(uri)
    return a


@needs_model  # reads the session's serving model (tests/runs.py)
def test_missing_model_is_named_and_nothing_is_written(run, tmp_path):
    out = tmp_path / "web_model" / "1"
    out.mkdir(parents=True)
    config = {"custom_config": run["cfg"].trainer_custom_config(), "quantization": "none",
              "thresholds": {"max_abs_diff": 1e-5}, "split": "test", "validation_examples": 10}
    transform_graph = _newest(run["model"].model_artifact.parents[2] / "Transform" / "transform_graph")
    missing = tmp_path / "no_model" / "Format-Serving" / "saved_model.pb"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing} does not exist")):
        executor.run(_artifact(standard_artifacts.Model, tmp_path / "no_model"),
                     _artifact(standard_artifacts.TransformGraph, transform_graph),
                     _artifact(standard_artifacts.Examples, run["model"].examples),
                     _artifact(standard_artifacts.Model, out),
                     _artifact(standard_artifacts.ModelBlessing, tmp_path / "b"), json.dumps(config))
    assert list((tmp_path / "web_model").iterdir()) == [out] and not list(out.iterdir())
    with pytest.raises(ValueError, match="quantization must be one of none, float16, uint8"):
        executor.parse_config(json.dumps({**config, "quantization": "int4"}))


def test_an_op_tfjs_lacks_is_named(tmp_path):
    import tensorflow as tf

    class Lengths(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="company")])
        def serve(self, company):
            return {"probabilities": tf.reshape(tf.cast(tf.strings.length(company), tf.float32), [-1, 1])}

    module = Lengths()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": module.serve})
    with pytest.raises(runtime.TFJSError, match=r"TF.js has no kernel for op\(s\) StringLength in .*saved"):
        runtime.convert(str(tmp_path / "saved"), str(tmp_path / "web"))
    with pytest.raises(runtime.TFJSError, match=r"no SavedModel to convert: .*nothing/saved_model\.pb"):
        runtime.convert(str(tmp_path / "nothing"), str(tmp_path / "web2"))


@needs_model  # reads the session's serving model (tests/runs.py)
def test_a_broken_web_model_names_the_command_and_file(run, tmp_path):
    (version,) = _pushed(run, "web")
    broken = tmp_path / "broken"
    shutil.copytree(version, broken)
    for shard in (broken / "model").glob("*.bin"):
        shard.unlink()  # a half-copied model: graph without weights
    rows = {c["name"]: np.array([c["value"]]) for c in [{"name": "x", "value": 1.0}]}
    with pytest.raises(runtime.TFJSError, match=r"(?s)web/src/predict.js.*cannot read weights .*group1-shard1of"):
        runtime.node_predict(str(broken), rows)


# Features the on-device graph cannot compute (spec ``builtin: false``) are computed by the app:
# here by model_runtime.js, the page's code. Each kind against the NumPy reference of the spec.
APP_SIDE_FEATURES = [
    {"name": "payment_x_hour", "type": "string", "builtin": False,
     "source": {"cross": ["payment_type", "trip_start_hour"], "separator": "_x_"},
     "steps": [{"op": "impute", "fill": "", "indicator": False}, {"op": "hash", "buckets": 64}]},
    {"name": "company", "type": "string", "builtin": False, "source": {"column": "company"},
     "steps": [{"op": "impute", "fill": "", "indicator": True},
               {"op": "vocabulary", "keys": ["Flash Cab", "Taxi Affiliation Services"], "oov_buckets": 5,
                "encoding": "index", "size": 7, "numeric": False}]},
    {"name": "area", "type": "int", "builtin": False, "source": {"column": "pickup_community_area"},
     "steps": [{"op": "impute", "fill": 0.0, "indicator": False},
               {"op": "vocabulary", "keys": [8.0, 32.0, 76.0], "oov_buckets": 3, "encoding": "one_hot", "size": 6,
                "numeric": True}]},
    {"name": "fare_per_mile", "type": "float", "builtin": False, "source": {"ratio": ["fare", "trip_miles"]},
     "steps": [{"op": "impute", "fill": 4.5, "indicator": True}, {"op": "clip", "lower": 1.0, "upper": 20.0},
               {"op": "yeo_johnson", "lambda": 0.3}, {"op": "z_score", "mean": 1.2, "std": 0.7}]},
    {"name": "seconds", "type": "int", "builtin": False, "source": {"column": "trip_seconds"},
     "steps": [{"op": "impute", "fill": 300.0, "indicator": False}, {"op": "bucketize",
               "boundaries": [60.0, 300.0, 900.0], "missing_bucket": None}, {"op": "categorical_identity",
                                                                             "num_buckets": 4}]},
]


def test_app_side_preprocessing_in_js_matches_the_numpy_reference(tmp_path):
    from ondevice import reference
    from tests.conftest import sample_rows

    _, raw = sample_rows(300, seed=3)
    dtypes = {"payment_type": "string", "company": "string", "trip_start_hour": "float32", "fare": "float32",
              "trip_miles": "float32", "pickup_community_area": "float32", "trip_seconds": "float32"}
    rows = {}
    for k, (name, dtype) in enumerate(dtypes.items()):
        values = [r[name] if i % 7 != k else "" for i, r in enumerate(raw)]  # and some more missing values
        rows[name] = (np.array(values, dtype=object) if dtype == "string" else
                      np.array([float(v) if v != "" else np.nan for v in values], dtype=np.float32))
    expected = {}
    for feature in APP_SIDE_FEATURES:
        expected.update(reference.transform_feature(feature, rows))
    (tmp_path / "in.json").write_text(json.dumps({"features": APP_SIDE_FEATURES, "dtypes": dtypes,
                                                  **runtime.rows_json(rows)}))
    proc = subprocess.run([runtime.node(), str(runtime.WEB_DIR / "test" / "transform.js"), str(tmp_path / "in.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(got) == sorted(expected)
    for name, want in expected.items():
        want = np.asarray(want, np.float64)
        # float32 at the model's input: the JS values must round to the same float32 values.
        np.testing.assert_array_equal(np.asarray(got[name], np.float32), want.astype(np.float32), err_msg=name)
