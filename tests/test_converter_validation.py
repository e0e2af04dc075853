"""The TFLite and the TF.js converter judge a converted model by one rule (ondevice/validation.py):
the same outputs give the same parity metrics and the same blessing, per task, and the one
decision cut-off (features/task.py) moves both verdicts together."""

from __future__ import annotations

import numpy as np
import pytest

from components.tfjs_converter import executor as tfjs_executor
from components.tflite_converter import executor as tflite_executor
from features import task
from ondevice import validation

CASES = {  # task: (reference, converted outputs)
    task.BINARY: (np.array([0.1, 0.52, 0.5, 0.9, 0.3]), np.array([0.1, 0.48, 0.5, 0.9001, 0.3])),
    task.MULTICLASS: (np.array([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25], [0.2, 0.2, 0.6]]),
                      np.array([[0.6, 0.3, 0.1], [0.34, 0.41, 0.25], [0.2, 0.2, 0.6]])),
    task.REGRESSION: (np.array([1000.0, 20.0, 5.2, 3.0]), np.array([1000.5, 20.0, 5.0, 3.0])),
}
THRESHOLDS = [{"max_abs_diff": 1e-3}, {"max_abs_diff": 1.0}, {"max_rel_diff": 1e-2}, {"min_agreement": 0.7},
              {"min_agreement": 0.5, "max_abs_diff": 0.5}, {"max_rel_diff": 0.1, "min_agreement": 0.99}]


def _tflite(kind, reference, predicted, thresholds):
    return tflite_executor.judge_variant(kind, lambda: predicted, reference, thresholds)


def _tfjs(kind, reference, predicted, thresholds):
    measured = tfjs_executor.parity(kind, reference, predicted.reshape(-1))  # TF.js answers flattened
    failures = tfjs_executor.judge(measured, thresholds)
    return measured, not failures, failures


@pytest.mark.parametrize("kind", list(CASES))
@pytest.mark.parametrize("thresholds", THRESHOLDS, ids=lambda t: ",".join(t))
def test_both_converters_judge_the_same_outputs_the_same_way(kind, thresholds):
    reference, predicted = CASES[kind]
    lite, js = _tflite(kind, reference, predicted, thresholds), _tfjs(kind, reference, predicted, thresholds)
    assert set(lite[0]) == set(validation.METRICS)  # TFLite's validation.json keys, unchanged
    assert {k: js[0][k] for k in validation.METRICS} == lite[0]
    assert js[0]["examples"] == len(reference) and js[0]["mean_abs_diff"] > 0  # TF.js metadata's extras
    assert js[1:] == lite[1:]


def test_the_verdicts_differ_between_thresholds():
    """The cases above are not all blessed or all rejected (else the comparison would say little)."""
    verdicts = {_tflite(k, *CASES[k], t)[1] for k in CASES for t in THRESHOLDS}
    assert verdicts == {True, False}


def test_one_decision_cut_off_moves_both(monkeypatch):
    reference, predicted = np.array([0.8, 0.2]), np.array([0.6, 0.2])
    thresholds = {"min_agreement": 1.0}
    assert _tflite(task.BINARY, reference, predicted, thresholds)[1]
    assert _tfjs(task.BINARY, reference, predicted, thresholds)[1]
    monkeypatch.setattr(task, "DECISION", 0.7)  # 0.6 and 0.8 now fall on different sides
    assert not _tflite(task.BINARY, reference, predicted, thresholds)[1]
    assert not _tfjs(task.BINARY, reference, predicted, thresholds)[1]
    assert validation.DECISION == 0.5 and not hasattr(tflite_executor, "THRESHOLD")
    assert not hasattr(tfjs_executor, "DECISION") and not hasattr(tfjs_executor, "THRESHOLD_KEYS")


def test_a_model_its_runtime_cannot_run_is_not_blessed():
    def refuses():
        raise RuntimeError("division by zero\nmore")

    measured, ok, failures = tflite_executor.judge_variant(task.BINARY, refuses, np.zeros(3), {"min_agreement": 0.5})
    assert not ok and failures == ["LiteRT could not run it: division by zero"]
    assert measured["agreement"] == 0.0 and np.isnan(measured["max_abs_diff"])


def test_threshold_keys_are_checked_by_the_shared_rule():
    for bad in ({}, {"max_diff": 0.1}, [0.1]):
        with pytest.raises(ValueError, match="TFJSConverter: thresholds must give max_abs_diff"):
            validation.check_thresholds(bad, "TFJSConverter")
    validation.check_thresholds({k: 0.1 for k in validation.THRESHOLD_KEYS}, "TFJSConverter")


def test_sizes_that_differ_are_named():
    with pytest.raises(ValueError, match="returned 2 values for 3 reference values"):
        validation.parity(task.BINARY, np.zeros(3), np.zeros(2))
