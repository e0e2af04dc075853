"""Data that breaks the reviewed schema stops the run at the AnomalyGate, before Transform,
with a message naming split and column; nothing is pushed. Runs on BeamDagRunner with
multi-processing workers, so the runner choice and Beam argument pass-through are exercised."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from pipeline.summary import latest_execution, open_store
from tests.conftest import derived_config, run_cli, sample_rows, write_csv

pytestmark = pytest.mark.e2e


def test_schema_anomaly_stops_before_transform(tmp_path):
    header, rows = sample_rows(1500, seed=3)
    for i, row in enumerate(rows):
        if i % 50 == 0:
            # Outside the reviewed schema's domain, which only the schema knows: `validate` stops a
            # wrong type (text in a float feature) before the run, this the AnomalyGate must catch.
            row["payment_type"] = "Bitcoin"
    header = [h for h in header if h != "dropoff_census_tract"]  # a required column goes missing
    data_dir = tmp_path / "data"
    write_csv(data_dir / "trips.csv", header, rows)
    config_path = derived_config(tmp_path, data_dir, name="taxi_anomaly")
    out = tmp_path / "outputs"

    proc = run_cli("run", "--config", str(config_path), "--output-root", str(out), "--engine", "beam",
                   "--beam-arg=--direct_running_mode=multi_processing", "--beam-arg=--direct_num_workers=2")

    assert proc.returncode == 1, proc.stdout[-2000:]
    err = proc.stderr
    assert "pipeline failed at AnomalyGate" in err
    assert "column 'payment_type'" in err and "Bitcoin" in err and "column 'dropoff_census_tract'" in err
    assert "stops before Transform" in err
    assert "Traceback" not in err.split("pipeline failed")[-1]
    assert "with the beam runner (--direct_running_mode=multi_processing --direct_num_workers=2)" in proc.stdout

    cfg = load_config(config_path, output_root=out)
    store = open_store(cfg)
    assert latest_execution(store, cfg.name, "ExampleValidator").last_known_state == 3  # COMPLETE
    for node in ("Transform", "Trainer", "Evaluator", "Pusher"):
        assert latest_execution(store, cfg.name, node) is None, node
    assert not cfg.pushed_dir("serving").exists()
