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
from sklearn.metrics import roc_auc_score

from features import task as task_lib
from model import signatures
from model.training import model_outputs
from pipeline import raw_inputs
from pipeline.pipeline_def import create_pipeline
from pipeline.summary import latest_output_uri, open_store, summarize
from tests.conftest import read_taxi_rows

pytestmark = [pytest.mark.e2e, pytest.mark.runs("taxi_full")]


@pytest.fixture(scope="module")
def first_run(e2e_run):
    return e2e_run  # tests/conftest.py: one full run shared with the deployment tests


def _node_ids(cfg):
    return [c.id for c in create_pipeline(cfg).components]


def _artifact_uri(cfg, node_id, type_name):
    uri = latest_output_uri(open_store(cfg), cfg.name, node_id, type_name)
    assert uri, f"no {type_name} output of {node_id}"
    return uri


def test_every_component_completes_and_model_is_pushed(first_run):
    cfg, proc = first_run
    summary = proc.facts["summary"]  # read right after the first run (tests/runs.py taxi_full_facts)
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
    assert 0.05 < expected.mean() < 0.95
    # A real model, not a constant: a constant output (any value) has std 0 and one distinct
    # value, and a model that ignores its inputs ranks the label at AUC 0.5.
    assert expected.std() > 0.01 and len(np.unique(expected)) > 50, (expected.std(), len(np.unique(expected)))
    label = task_lib.label_values([float(r[cfg.label.column]) if r[cfg.label.column] else None for r in rows],
                                  cfg.label, [float(r[cfg.label.greater_than_column])
                                              if r[cfg.label.greater_than_column] else None for r in rows])
    assert 0 < label.sum() < len(label)
    assert roc_auc_score(label, expected) > 0.7, roc_auc_score(label, expected)


def test_serving_imputes_missing_values(first_run):
    cfg, _ = first_run
    pushed = tf.saved_model.load(summarize(cfg, _node_ids(cfg)).pushed_path)
    _, rows = read_taxi_rows()
    row = dict(rows[0])
    blank = {k: "" for k in row}
    cols = raw_inputs.raw_columns([row, blank], pushed.signatures["serving_raw"])
    out = pushed.signatures["serving_raw"](**cols)["probabilities"].numpy().ravel()
    assert out.shape == (2,) and np.all(np.isfinite(out))


@pytest.mark.runs("taxi_full_cached")
def test_second_run_is_fully_cached(first_run, pipeline_runs):
    cfg, _ = first_run
    before = pipeline_runs.wait("taxi_full").facts["summary"]  # taken before the second run
    pipeline_runs.wait("taxi_full_cached")  # the same config again, on the same store
    after = summarize(cfg, _node_ids(cfg))
    # The second run's executions, not the first's (a cached execution is a new one in MLMD).
    assert {n.execution_id for n in after.nodes}.isdisjoint(n.execution_id for n in before.nodes)
    states = {n.node_id: n.state for n in after.nodes}
    components = {n for n in states if not n.endswith("resolver")}
    assert {states[n] for n in components} == {"CACHED"}, states
    # Cached outputs are the first run's: same pushed model, nothing pushed twice.
    assert after.pushed_path == before.pushed_path
    assert len(list(cfg.pushed_dir("serving").iterdir())) == 1


# --- Tuner and model variants (issue 4) --------------------------------------------------

def _uri(cfg, node_id, type_name):
    return Path(_artifact_uri(cfg, node_id, type_name))


def test_tuned_hyperparameters_reach_the_trained_model(first_run):
    from model import hyperparameters

    cfg, proc = first_run
    best = json.loads((_uri(cfg, "Tuner", "HyperParameters") / "best_hyperparameters.txt").read_text())["values"]
    expected = hyperparameters.resolve(best, cfg.trainer_custom_config()["model"])
    # Read back from the model Trainer exported, not from any log.
    model = tf_keras.models.load_model(_uri(cfg, "Trainer", "Model") / "Format-Serving")
    dense = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    assert [layer.units for layer in dense] == expected["hidden_units"]
    embeddings = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.Embedding)]
    assert embeddings and {layer.output_dim for layer in embeddings} == {expected["embedding_dim"]}
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, tf_keras.layers.Dropout)]
    assert dropouts == ([expected["dropout"]] * len(dense) if expected["dropout"] else [])
    assert float(model.optimizer.learning_rate) == pytest.approx(expected["learning_rate"], rel=1e-6)
    # The trial table is an artifact: one row per completed trial, best first.
    trials = json.loads((_uri(cfg, "Tuner", "TunerResults") / "tuner_results.json").read_text())
    assert len(trials) == cfg.tuning.max_trials
    assert trials[0]["score"] == max(t["score"] for t in trials)
    assert {"trial_id", "score", "num_layers", "learning_rate"} <= set(trials[0])
    assert "tuned: " in proc.stdout


def _variant_rows(cfg):
    table = json.loads((_uri(cfg, "VariantComparison", "VariantTable") / "comparison.json").read_text())
    return {r["variant"]: r for r in table["rows"]}


def test_pruned_model_reaches_target_sparsity_and_is_pushed(first_run):
    from components.pruner.executor import prunable_layers
    from model import model_io

    cfg, _ = first_run
    target = cfg.optimization.variant("pruned").params["target_sparsity"]
    pruned = model_io.load_model(str(_uri(cfg, "Pruner", "Model")))
    layers = prunable_layers(pruned)
    assert "probability" not in layers and len(layers) > 3  # every Dense/Embedding but the output
    achieved = model_io.sparsity(pruned, layers)
    assert abs(achieved["overall"] - target) <= 0.01, achieved
    assert all(abs(v - target) <= 0.02 for v in achieved.values()), achieved
    rows = _variant_rows(cfg)
    assert rows["pruned"]["sparsity_per_layer"] == pytest.approx(achieved)
    assert rows["pruned"]["gzip_ratio"] < 0.6 and rows["pruned"]["sparsity"] > target - 0.05
    assert rows["pruned"]["blessed"] is True
    pushed = list(cfg.pushed_dir("serving_pruned").iterdir())
    assert len(pushed) == 1 and (pushed[0] / "saved_model.pb").exists()


def _predict_both_ways(model_dir, rows, cfg, raw_spec):
    model = tf.saved_model.load(str(model_dir))
    serving_raw = model.signatures["serving_raw"]
    from_raw = serving_raw(**raw_inputs.raw_columns(rows, serving_raw))["probabilities"].numpy().ravel()
    examples = raw_inputs.tf_examples(rows, raw_spec, exclude=cfg.serving_excluded_columns)
    from_examples = model.signatures["serving_default"](examples=tf.constant(examples))["probabilities"]
    return from_raw, from_examples.numpy().ravel()


@pytest.mark.parametrize("node_id", ["Pruner", "QuantizationAwareTrainer", "Distiller"])
def test_every_variant_serves_raw_features_like_the_trained_model(first_run, node_id):
    """Same signatures as Trainer's model: raw rows in, the Transform graph inside."""
    cfg, _ = first_run
    _, rows = read_taxi_rows()
    rows = rows[:200]
    raw_spec = tft.TFTransformOutput(_artifact_uri(cfg, "Transform", "TransformGraph")).raw_feature_spec()
    from_raw, from_examples = _predict_both_ways(_uri(cfg, node_id, "Model") / "Format-Serving", rows, cfg, raw_spec)
    trained, _ = _predict_both_ways(_uri(cfg, "Trainer", "Model") / "Format-Serving", rows, cfg, raw_spec)
    np.testing.assert_allclose(from_raw, from_examples, rtol=0, atol=1e-6)
    # A variant of the trained model: mostly the same decisions.
    assert np.mean((from_raw > 0.5) == (trained > 0.5)) > 0.85


def test_qat_model_is_quantization_aware_evaluated_and_pushed(first_run):
    cfg, _ = first_run
    model = tf_keras.models.load_model(_uri(cfg, "QuantizationAwareTrainer", "Model") / "Format-Serving")
    quantized = [layer.name for layer in model.layers if type(layer).__name__ == "QuantizeWrapperV2"]
    assert {"quant_hidden_0", "quant_probability"} <= set(quantized)
    rows = _variant_rows(cfg)
    assert rows["qat"]["auc_test"] > 0.7 and rows["qat"]["blessed"] is True
    assert len(list(cfg.pushed_dir("serving_qat").iterdir())) == 1


def test_student_is_smaller_evaluated_and_not_pushed_when_it_fails_its_threshold(first_run):
    cfg, proc = first_run
    rows = _variant_rows(cfg)
    student, trained = rows["student"], rows["trained"]
    assert student["parameters"] < 0.5 * trained["parameters"]
    assert student["teacher_parameters"] == trained["parameters"]
    assert 0.5 < student["auc_test"] < 0.999  # evaluated, and below its configured lower bound
    assert student["blessed"] is False
    assert not cfg.pushed_dir("serving_student").exists() or not any(cfg.pushed_dir("serving_student").iterdir())
    summary = summarize(cfg, _node_ids(cfg))
    assert summary.variants_pushed["student"] is None and summary.variants_pushed["pruned"]
    # The comparison table is in the CLI summary and the run report.
    assert "model variants (on test" in proc.stdout
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  model variants (on test"))
    table = []  # the rows under the header, up to the next section (e.g. the TFLite table)
    for line in lines[start + 2:]:
        if not line.startswith("    "):
            break
        table.append(line.split()[0])
    assert table == ["trained", "pruned", "qat", "student"]
    assert (cfg.output_dir / "report" / "variants.png").read_bytes()[:4] == b"\x89PNG"
