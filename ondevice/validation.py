"""How a converted model is judged against the SavedModel it came from: one rule for the TFLite
and the TF.js converter.

Both run the converted model and the SavedModel's ``serving_raw`` signature on the same
validation rows and compare the outputs per task (``features.task``, where the task type and
its decision cut-off are defined): binary, P(positive) decided at ``DECISION``; multiclass, the
arg-max class; regression, agreement within a relative tolerance. A converted model is blessed
when every threshold it is given holds (``THRESHOLD_KEYS``: ``max_abs_diff``, ``max_rel_diff``,
``min_agreement``). The metric names are those the converters write to their JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features import task

DECISION = task.DECISION  # binary decisions: p > DECISION
THRESHOLD_KEYS = task.THRESHOLD_KEYS
METRICS = ("max_abs_diff", "max_rel_diff", "agreement")


def check_thresholds(thresholds: Any, who: str) -> None:
    """Raise unless ``thresholds`` is a non-empty {key of THRESHOLD_KEYS: number}."""
    if not isinstance(thresholds, dict) or not thresholds or set(thresholds) - set(THRESHOLD_KEYS):
        raise ValueError(f"{who}: thresholds must give {' and/or '.join(THRESHOLD_KEYS)}, got {thresholds!r}")


def parity(kind: str, reference: Any, predicted: Any, summary: bool = False) -> dict[str, float]:
    """``METRICS`` of ``predicted`` (the converted model's outputs, any shape of the same size,
    e.g. TF.js's flattened tensor) against ``reference`` ([n] or [n, K]); ``summary`` adds the
    mean absolute difference and the number of examples."""
    reference, predicted = np.asarray(reference, np.float64), np.asarray(predicted, np.float64)
    if reference.size != predicted.size:
        raise ValueError(f"the converted model returned {predicted.size} values for {reference.size} "
                         "reference values")
    predicted = predicted.reshape(reference.shape)
    out = task.parity(kind, predicted, reference)
    if summary:
        out.update(mean_abs_diff=float(np.mean(np.abs(reference - predicted))), examples=len(reference))
    return out


def unmeasured() -> dict[str, float]:
    """The metrics of a converted model its runtime could not run: no parity, no agreement."""
    return {"max_abs_diff": float("nan"), "max_rel_diff": float("nan"), "agreement": 0.0}


def blessed(measured: dict[str, float], thresholds: dict[str, float]) -> tuple[bool, list[str]]:
    """(blessed, the thresholds missed, as readable failures) of a parity measurement."""
    return task.blessed(measured, thresholds)


def failures(measured: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The thresholds ``measured`` misses (empty: blessed)."""
    return blessed(measured, thresholds)[1]
