"""The ``evaluation`` section: splits, slices and metric thresholds (per task)."""

from __future__ import annotations

from dataclasses import dataclass

from features import task as task_lib
from pipeline.config import model
from pipeline.config.errors import Reader

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


def parse_thresholds(r: Reader, items: list[model.Threshold], task: str) -> tuple[Threshold, ...]:
    """``items`` (at ``r``, a list): metrics must be the ``task``'s (``features.task.METRICS``), and a
    change limit must fit the metric's direction; types and signs are model.Threshold's."""
    known = task_lib.METRICS[task]
    thresholds = []
    for k, t in enumerate(items):
        th = r.child(k)
        if t.metric not in known:
            raise th.fail(f"unknown metric for {task}; known: {', '.join(known)}", "metric")
        if t.lower_bound is None and t.upper_bound is None and t.max_decrease is None and t.max_increase is None:
            raise th.fail("give lower_bound, upper_bound, max_decrease or max_increase")
        higher = known[t.metric].higher_is_better
        if t.max_decrease is not None and not higher:
            raise th.fail(f"'{t.metric}' is lower-is-better: limit its change with max_increase", "max_decrease")
        if t.max_increase is not None and higher:
            raise th.fail(f"'{t.metric}' is higher-is-better: limit its change with max_decrease", "max_increase")
        thresholds.append(Threshold(t.metric, t.lower_bound, t.upper_bound, t.max_decrease, t.max_increase))
    return tuple(thresholds)


def parse_evaluation(top: Reader, m: model.Evaluation | None, feature_names: list[str], task: str
                     ) -> EvaluationConfig:
    """Splits are typed by the pydantic model; slices must name features, thresholds the task's metrics."""
    if m is None:
        return EvaluationConfig()
    e = top.child("evaluation")
    slices = []
    for k, sl in enumerate(m.slices):
        cols = [sl] if isinstance(sl, str) else sl
        for c in cols:
            if c not in feature_names:
                raise e.fail(f"'{c}' is not a feature", f"slices[{k}]")
        slices.append(tuple(cols))
    return EvaluationConfig(tuple(m.splits), tuple(slices), parse_thresholds(e.child("thresholds"), m.thresholds, task)
                            if m.thresholds else ())
