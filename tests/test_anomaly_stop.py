"""Data that breaks the reviewed schema stops the run at the AnomalyGate, before Transform,
with a message naming split and column; nothing is pushed. Runs on BeamDagRunner with
multi-processing workers, so the runner choice and Beam argument pass-through are exercised."""

from __future__ import annotations

import pytest

from pipeline.summary import latest_execution, open_store

pytestmark = pytest.mark.e2e


@pytest.mark.runs("anomaly")
def test_schema_anomaly_stops_before_transform(pipeline_runs):
    # tests/runs.py anomaly: 1 row in 50 with a payment type outside the reviewed schema's domain
    # (which only the schema knows: `validate` stops a wrong type before the run, this the
    # AnomalyGate must catch) and a required column missing; BeamDagRunner, 2 workers.
    proc = pipeline_runs.wait("anomaly")
    assert proc.returncode == 1, proc.stdout[-2000:]
    err = proc.stderr
    assert "pipeline failed at AnomalyGate" in err
    assert "column 'payment_type'" in err and "Bitcoin" in err and "column 'dropoff_census_tract'" in err
    assert "stops before Transform" in err
    assert "Traceback" not in err.split("pipeline failed")[-1]
    assert ("with the beam runner (--runner=beam_local.runner.LocalRunner --direct_running_mode=multi_processing"
            " --direct_num_workers=2)") in proc.stdout

    cfg = proc.cfg
    store = open_store(cfg)
    assert latest_execution(store, cfg.name, "ExampleValidator").last_known_state == 3  # COMPLETE
    for node in ("Transform", "Trainer", "Evaluator", "Pusher"):
        assert latest_execution(store, cfg.name, node) is None, node
    assert not cfg.pushed_dir("serving").exists()
