"""Incremental data: monthly spans of the taxi data arrive one run at a time. A span like the
previous one passes the drift (vs previous span) and skew (vs the training data) checks; a span
whose fares and payment types moved stops the run before Transform with a readable report."""

from __future__ import annotations

import csv
import shutil

import pytest

from pipeline.config import load_config
from pipeline.datasets import write_monthly_spans
from pipeline.summary import latest_execution, open_store
from tests.conftest import TAXI_CSV, derived_config, run_cli

pytestmark = pytest.mark.e2e

FEATURES = [
    {"name": "fare", "type": "float", "steps": [{"impute": {"strategy": "mean"}}, "z_score"]},
    {"name": "trip_miles", "type": "float", "steps": ["log1p", "z_score"]},
    {"name": "payment_type", "type": "string", "steps": [{"vocabulary": {"top_k": 10}}]},
    {"name": "trip_start_hour", "type": "int", "steps": [{"categorical_identity": {"num_buckets": 24}}]},
]


def test_spans_pass_then_drifted_span_stops(tmp_path):
    all_spans = {p.name: p for p in write_monthly_spans(TAXI_CSV, tmp_path / "all", "trip_start_timestamp")}
    data = tmp_path / "data"
    data.mkdir()
    config_path = derived_config(
        tmp_path, data, name="spans", cleaning=None, feature_selection=None, features=FEATURES,
        data={"csv_dir": str(data), "span_pattern": "span-{SPAN}/*.csv"},
        training={"train_steps": 40, "eval_steps": 5, "epochs": 2, "early_stopping_patience": 1},
        evaluation={"splits": ["eval"], "slices": ["payment_type"],
                    "thresholds": [{"metric": "auc", "lower_bound": 0.5}]},
        drift={"categorical_linf": 0.25, "numeric_js": 0.25, "numeric_histogram": "quantiles",
               "skip": ["trip_start_month", "trip_start_timestamp"]})
    out = tmp_path / "outputs"

    def run():
        return run_cli("run", "--config", str(config_path), "--output-root", str(out))

    shutil.copytree(all_spans["span-201405"], data / "span-201405")
    cfg = load_config(config_path, output_root=out)
    first = run()
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "blessed: True" in first.stdout

    shutil.copytree(all_spans["span-201406"], data / "span-201406")
    second = run()
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    store = open_store(cfg)
    gate = latest_execution(store, cfg.name, "DriftSkewGate")
    assert gate.last_known_state == 3  # COMPLETE: compared, within the thresholds

    # The next month arrives with fares tripled and payment types swapped.
    moved = data / "span-201407"
    moved.mkdir()
    with (all_spans["span-201406"] / "data.csv").open(newline="") as src, \
            (moved / "data.csv").open("w", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        swap = {"Cash": "Credit Card", "Credit Card": "Cash"}
        for row in reader:
            writer.writerow(dict(row, fare=str(float(row["fare"]) * 3),
                                 payment_type=swap.get(row["payment_type"], row["payment_type"])))
    transforms_before = len(store.get_executions_by_context(
        store.get_context_by_type_and_name("node", f"{cfg.name}.Transform").id))
    third = run()
    assert third.returncode == 1
    err = third.stderr
    assert "pipeline failed at DriftSkewGate" in err
    assert "drift vs previous span: column 'fare'" in err and "skew vs training data: column 'fare'" in err
    assert "column 'payment_type'" in err
    assert "Full report:" in err
    store = open_store(cfg)
    transforms_after = len(store.get_executions_by_context(
        store.get_context_by_type_and_name("node", f"{cfg.name}.Transform").id))
    assert transforms_after == transforms_before  # stopped before Transform
