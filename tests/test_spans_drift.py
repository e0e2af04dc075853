"""Incremental data: monthly spans of the taxi data arrive one run at a time. A span like the
previous one passes the drift (vs previous span) and skew (vs the training data) checks; a span
whose fares and payment types moved stops the run before Transform with a readable report."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.datasets import write_monthly_spans
from pipeline.pipeline_def import EVALUATOR_ID
from pipeline.summary import latest_execution, open_store, output_artifacts
from tests.conftest import TAXI_CSV, derived_config, run_cli

pytestmark = pytest.mark.e2e

FEATURES = [
    {"name": "fare", "type": "float", "steps": [{"impute": {"strategy": "mean"}}, "z_score"]},
    {"name": "trip_miles", "type": "float", "steps": ["log1p", "z_score"]},
    {"name": "payment_type", "type": "string", "steps": [{"vocabulary": {"top_k": 10}}]},
    {"name": "trip_start_hour", "type": "int", "steps": [{"categorical_identity": {"num_buckets": 24}}]},
]


def _compared(store, execution) -> set[str]:
    """What the gate compared the span with, from its report (drift: previous span, skew: training data)."""
    (report,) = [a for a in output_artifacts(store, execution.id) if Path(a.uri, "report.json").exists()]
    comparisons = json.loads(Path(report.uri, "report.json").read_text())["comparisons"]
    return {name for name, c in comparisons.items() if c["compared"]}


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
               "skip": ["trip_start_month", "trip_start_timestamp"]},
        deployment=None)
    out = tmp_path / "outputs"

    def run(*until: str):
        return run_cli("run", "--config", str(config_path), "--output-root", str(out), *until)

    shutil.copytree(all_spans["span-201405"], data / "span-201405")
    cfg = load_config(config_path, output_root=out)
    # Each run goes as far as what it proves needs: the first until the Evaluator's blessing (the
    # blessed model's training data is what skew is measured against), the second until the gate.
    first = run("--until", EVALUATOR_ID)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "blessed: True" in first.stdout

    shutil.copytree(all_spans["span-201406"], data / "span-201406")
    second = run("--until", "DriftSkewGate")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    store = open_store(cfg)
    gate = latest_execution(store, cfg.name, "DriftSkewGate")
    assert gate.last_known_state == 3  # COMPLETE: compared, within the thresholds
    # ... against the previous span and the data run 1's blessed model was trained on.
    assert _compared(store, gate) == {"drift", "skew"}

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
    third = run()  # the whole pipeline: it must stop at the gate
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
