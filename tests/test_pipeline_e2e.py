"""End to end on real taxi rows: real TFX components, LocalDagRunner, sqlite MLMD."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras

from modules import signatures
from modules.training import model_outputs
from pipeline import raw_inputs
from pipeline.config import load_config
from pipeline.pipeline_def import create_pipeline
from pipeline.summary import latest_execution, open_store, output_artifacts, summarize
from tests.conftest import derived_config, read_taxi_rows, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, taxi_sample_dir):
    work = tmp_path_factory.mktemp("e2e")
    config_path = derived_config(work, taxi_sample_dir, name="taxi_e2e")
    proc = run_cli("run", "--config", str(config_path), "--output-root", str(work / "outputs"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cfg = load_config(config_path, output_root=work / "outputs")
    return cfg, proc


def _node_ids(cfg):
    return [c.id for c in create_pipeline(cfg).components]


def _artifact_uri(cfg, node_id, type_name):
    store = open_store(cfg)
    execution = latest_execution(store, cfg.name, node_id)
    for artifact in output_artifacts(store, execution.id):
        if store.get_artifact_types_by_id([artifact.type_id])[0].name == type_name:
            return artifact.uri
    raise AssertionError(f"no {type_name} output of {node_id}")


def test_every_component_completes_and_model_is_pushed(first_run):
    cfg, proc = first_run
    summary = summarize(cfg, _node_ids(cfg))
    states = {n.node_id: n.state for n in summary.nodes}
    assert set(states) == set(_node_ids(cfg))
    assert all(state == "COMPLETE" for state in states.values()), states
    assert summary.blessed is True
    assert summary.pushed is True
    pushed = Path(summary.pushed_path)
    assert pushed.parent == cfg.pushed_dir("serving")
    assert (pushed / "saved_model.pb").exists()
    # Progress lines and the final summary reach the user.
    assert f"(1/{len(_node_ids(cfg))}) CsvExampleGen started" in proc.stdout
    assert "Pusher finished in" in proc.stdout
    assert "blessed: True" in proc.stdout
    # Metrics for every configured evaluation split, all in range.
    assert set(summary.metrics) == {"eval", "test"}
    for split, metrics in summary.metrics.items():
        assert metrics["auc"] > 0.7, (split, metrics)
        for name in ("binary_accuracy", "precision", "recall", "f1_score", "auc"):
            assert 0.0 <= metrics[name] <= 1.0 and not math.isnan(metrics[name])
    report = json.loads((cfg.output_dir / "report" / "summary.json").read_text())
    assert report["pushed_path"] == summary.pushed_path
    for picture in ("training.png", "slices_auc.png"):  # the run report's plots
        assert (cfg.output_dir / "report" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plot:    {cfg.output_dir / 'report' / picture}" in proc.stdout
    # DataCleaner and FeatureSelector ran and the served model asks only for what is used.
    assert all(c["rows_out"] <= c["rows_in"] for c in summary.cleaning.values())
    assert sum(c["rows_in"] - c["rows_out"] for c in summary.cleaning.values()) > 0
    assert "cleaning: rows train" in proc.stdout
    raw_inputs_served = set(tf.saved_model.load(summary.pushed_path).signatures["serving_raw"]
                            .structured_input_signature[1])
    assert summary.dropped_features and not raw_inputs_served & set(summary.dropped_features)
    assert "trip_start_timestamp" in raw_inputs_served  # the cyclical feature's source column
    # Everything lives under outputs/<pipeline>/.
    assert cfg.metadata_path.exists() and cfg.pipeline_root.is_dir()


def test_evaluation_is_sliced_by_two_features(first_run):
    import tensorflow_model_analysis as tfma

    cfg, _ = first_run
    result = tfma.load_eval_result(_artifact_uri(cfg, "Evaluator", "ModelEvaluation"))
    sliced_columns = {key[0][0] for key, _ in result.slicing_metrics if key}
    assert sliced_columns == {"payment_type", "trip_start_hour"}


def test_pushed_model_matches_trainer_model_after_transform(first_run):
    """No training/serving skew: raw rows through the pushed model's two signatures give the
    Trainer model's predictions on the same rows transformed by the Transform graph."""
    cfg, _ = first_run
    _, rows = read_taxi_rows()
    rows = rows[:400]  # includes rows with missing coordinates and community areas
    assert any(r["pickup_latitude"] == "" for r in rows)

    transform_output = tft.TFTransformOutput(_artifact_uri(cfg, "Transform", "TransformGraph"))
    raw_spec = transform_output.raw_feature_spec()
    transformed = transform_output.transform_raw_features(raw_inputs.sparse_features(rows, raw_spec))
    trainer_model = tf_keras.models.load_model(
        Path(_artifact_uri(cfg, "Trainer", "Model")) / "Format-Serving")
    expected = trainer_model(signatures.model_inputs(transformed, model_outputs(
        cfg.trainer_custom_config(), transform_output))).numpy().ravel()

    summary = summarize(cfg, _node_ids(cfg))
    pushed = tf.saved_model.load(summary.pushed_path)
    serving_raw = pushed.signatures["serving_raw"]
    from_raw = serving_raw(**raw_inputs.raw_columns(rows, serving_raw))
    examples = raw_inputs.tf_examples(rows, raw_spec, exclude=cfg.serving_excluded_columns)
    from_examples = pushed.signatures["serving_default"](examples=tf.constant(examples))
    np.testing.assert_allclose(from_raw["probabilities"].numpy().ravel(), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(from_examples["probabilities"].numpy().ravel(), expected, rtol=0, atol=1e-6)
    assert 0.05 < expected.mean() < 0.95  # a real model, not a constant


def test_serving_imputes_missing_values(first_run):
    cfg, _ = first_run
    pushed = tf.saved_model.load(summarize(cfg, _node_ids(cfg)).pushed_path)
    _, rows = read_taxi_rows()
    row = dict(rows[0])
    blank = {k: "" for k in row}
    cols = raw_inputs.raw_columns([row, blank], pushed.signatures["serving_raw"])
    out = pushed.signatures["serving_raw"](**cols)["probabilities"].numpy().ravel()
    assert out.shape == (2,) and np.all(np.isfinite(out))


def test_second_run_is_fully_cached(first_run):
    cfg, _ = first_run
    before = summarize(cfg, _node_ids(cfg))
    proc = run_cli("run", "--config", str(cfg.path), "--output-root", str(cfg.output_root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = summarize(cfg, _node_ids(cfg))
    states = {n.node_id: n.state for n in after.nodes}
    components = {n for n in states if not n.endswith("resolver")}
    assert {states[n] for n in components} == {"CACHED"}, states
    # Cached outputs are the first run's: same pushed model, nothing pushed twice.
    assert after.pushed_path == before.pushed_path
    assert len(list(cfg.pushed_dir("serving").iterdir())) == 1
