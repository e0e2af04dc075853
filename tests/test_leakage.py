"""Every fitted parameter comes from the train split: a real pipeline run (cleaning, feature
selection and Transform on the shipped taxi config) whose eval rows are changed produces
exactly the same transformed train rows and the same fitted cleaning bounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components.temporal_csv_example_gen.component import epoch_seconds
from pipeline.summary import latest_execution, open_store, output_artifacts
from tests.runs import LEAK_EVAL_FROM, LEAK_TEST_FROM, leak_rows

pytestmark = [pytest.mark.e2e, pytest.mark.runs("leak_original", "leak_changed")]


def _outputs(cfg, node_id):
    store = open_store(cfg)
    execution = latest_execution(store, cfg.name, node_id)
    return {store.get_artifact_types_by_id([a.type_id])[0].name: Path(a.uri)
            for a in output_artifacts(store, execution.id)}


def _columns(split_dir: Path) -> dict[str, np.ndarray]:
    """Each transformed column's values, sorted (row order and a proto map's field order are not fixed)."""
    columns: dict[str, list] = {}
    for path in sorted(split_dir.glob("*.gz")):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            for k, v in tf.train.Example.FromString(record.numpy()).features.feature.items():
                columns.setdefault(k, []).append(tuple(v.float_list.value) or tuple(v.int64_list.value))
    return {k: np.array(sorted(v)) for k, v in columns.items()}


def assert_same_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a and sorted(a) == sorted(b)
    for key in a:
        # Sums in Beam combiners run in no fixed order: allow float32 rounding, nothing more.
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6, err_msg=key)


def test_changing_eval_rows_leaves_train_transform_unchanged(pipeline_runs):
    # Two runs up to Transform (tests/runs.py leak_original, leak_changed): the same rows, then with
    # every eval row's values changed but its time.
    _, rows = leak_rows(changed=False)
    lo, hi = epoch_seconds(LEAK_EVAL_FROM), epoch_seconds(LEAK_TEST_FROM)
    assert 50 < sum(lo <= int(r["trip_start_timestamp"]) < hi for r in rows) < 1000
    a, b = pipeline_runs.wait("leak_original").cfg, pipeline_runs.wait("leak_changed").cfg

    ta, tb = _outputs(a, "Transform"), _outputs(b, "Transform")
    assert_same_columns(_columns(ta["Examples"] / "Split-train"), _columns(tb["Examples"] / "Split-train"))
    with pytest.raises(AssertionError):  # not vacuous: the eval rows did change
        assert_same_columns(_columns(ta["Examples"] / "Split-eval"), _columns(tb["Examples"] / "Split-eval"))

    ca, cb = _outputs(a, "DataCleaner"), _outputs(b, "DataCleaner")
    fitted_a = json.loads((ca["CleaningReport"] / "report.json").read_text())["fitted"]
    fitted_b = json.loads((cb["CleaningReport"] / "report.json").read_text())["fitted"]
    assert fitted_a == fitted_b
    sa, sb = _outputs(a, "FeatureSelector"), _outputs(b, "FeatureSelector")
    assert (sa["FeatureScores"] / "scores.json").read_text() == (sb["FeatureScores"] / "scores.json").read_text()
