"""Incremental data: monthly spans of the taxi data arrive one run at a time. A span like the
previous one passes the drift (vs previous span) and skew (vs the training data) checks; a span
whose fares and payment types moved stops the run before Transform with a readable report."""

from __future__ import annotations

import pytest

from pipeline.summary import open_store

pytestmark = pytest.mark.e2e

@pytest.mark.runs("spans_first")
def test_spans_pass_then_drifted_span_stops(pipeline_runs):
    # Three runs on one store (tests/runs.py): span 2014-05 until the Evaluator's blessing (the
    # blessed model's training data is what skew is measured against); + 2014-06 until the gate,
    # which must pass; + 2014-07 with fares tripled and payment types swapped, which the gate stops.
    first = pipeline_runs.wait("spans_first")
    assert "blessed: True" in first.stdout
    second = pipeline_runs.wait("spans_second")
    assert second.facts["gate_state"] == 3  # COMPLETE: compared, within the thresholds
    # ... against the previous span and the data run 1's blessed model was trained on.
    assert second.facts["compared"] == {"drift", "skew"}

    third = pipeline_runs.wait("spans_drifted")  # the whole pipeline: it must stop at the gate (exit 1)
    err = third.stderr
    assert "pipeline failed at DriftSkewGate" in err
    assert "drift vs previous span: column 'fare'" in err and "skew vs training data: column 'fare'" in err
    assert "column 'payment_type'" in err
    assert "Full report:" in err
    cfg = third.cfg
    store = open_store(cfg)
    transforms_after = len(store.get_executions_by_context(
        store.get_context_by_type_and_name("node", f"{cfg.name}.Transform").id))
    assert transforms_after == second.facts["transforms"]  # stopped before Transform
