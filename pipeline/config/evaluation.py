"""The ``evaluation`` section: splits, slices and metric thresholds (per task)."""

from __future__ import annotations

from dataclasses import dataclass

from features import task as task_lib
from pipeline.config.errors import Reader, non_negative

SPLIT_NAMES = ("train", "eval", "test")


@dataclass(frozen=True)
class Threshold:
    metric: str
    lower_bound: float | None = None
    upper_bound: float | None = None
    max_decrease: float | None = None  # vs the baseline model (higher-is-better metrics)
    max_increase: float | None = None  # vs the baseline model (lower-is-better metrics: rmse, mse, ...)


@dataclass(frozen=True)
class EvaluationConfig:
    splits: tuple[str, ...] = ("eval", "test")
    slices: tuple[tuple[str, ...], ...] = ()
    thresholds: tuple[Threshold, ...] = ()


def parse_thresholds(parent: Reader, key: str, task: str) -> tuple[Threshold, ...]:
    """A list of {metric, lower_bound?, upper_bound?, max_decrease? | max_increase?} under
    ``parent[key]``; metrics are the ``task``'s (``features.task.METRICS``)."""
    if not isinstance(parent.data[key], list):
        raise parent.fail("must be a list of {metric, lower_bound, upper_bound, max_decrease, max_increase}", key)
    known = task_lib.METRICS[task]
    thresholds = []
    for k in range(len(parent.data[key])):
        th = parent.child(key).child(k)
        metric = th.get("metric", (str,), check=lambda v: None if v in known
                        else f"unknown metric for {task}; known: {', '.join(known)}")
        lb = th.get("lower_bound", (int, float), None)
        ub = th.get("upper_bound", (int, float), None)
        md = th.get("max_decrease", (int, float), None, non_negative)
        mi = th.get("max_increase", (int, float), None, non_negative)
        if lb is None and ub is None and md is None and mi is None:
            raise th.fail("give lower_bound, upper_bound, max_decrease or max_increase")
        higher = known[metric].higher_is_better
        if md is not None and not higher:
            raise th.fail(f"'{metric}' is lower-is-better: limit its change with max_increase", "max_decrease")
        if mi is not None and higher:
            raise th.fail(f"'{metric}' is higher-is-better: limit its change with max_decrease", "max_increase")
        thresholds.append(Threshold(metric, lb, ub, md, mi))
    return tuple(thresholds)


def parse_evaluation(top: Reader, feature_names: list[str], task: str) -> EvaluationConfig:
    """Splits are typed by the pydantic model; slices must name features, thresholds the task's metrics."""
    if "evaluation" not in top.data:
        return EvaluationConfig()
    e = top.child("evaluation")
    esplits = e.data.get("splits", list(EvaluationConfig.splits))
    slices = []
    for k, sl in enumerate(e.data.get("slices", [])):
        cols = [sl] if isinstance(sl, str) else sl
        for c in cols:
            if c not in feature_names:
                raise e.fail(f"'{c}' is not a feature", f"slices[{k}]")
        slices.append(tuple(cols))
    thresholds = parse_thresholds(e, "thresholds", task) if "thresholds" in e.data else ()
    return EvaluationConfig(tuple(esplits), tuple(slices), thresholds)
