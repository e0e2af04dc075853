"""The Evaluator's thresholds per task, judged by TFMA's own validator: lower-is-better metrics
(regression errors) bless a model whose error grew by at most ``max_increase`` and stayed under
``upper_bound``; higher-is-better ones use ``max_decrease`` / ``lower_bound``."""

from __future__ import annotations

from tensorflow_model_analysis.evaluators.metrics_validator import validate_metrics
from tensorflow_model_analysis.metrics import metric_specs

from pipeline.config import Threshold, load_config
from pipeline.pipeline_def import eval_config
from tests.conftest import ROOT


def _judge(cfg, thresholds, values: dict[str, tuple[float, float]]) -> bool:
    """TFMA's verdict on candidate/baseline values {metric: (candidate, baseline)}, with the
    candidate and baseline model specs TFX's Evaluator uses when a baseline was resolved."""
    config = eval_config(cfg, thresholds)
    candidate = config.model_specs[0]
    candidate.name = "candidate"
    baseline = config.model_specs.add()
    baseline.CopyFrom(candidate)
    baseline.name, baseline.is_baseline = "baseline", True
    keys = metric_specs.metric_thresholds_from_metrics_specs(config.metrics_specs, eval_config=config)
    metrics = {}
    for key in keys:
        new, old = values[key.name]
        metrics[key] = new - old if key.is_diff else new
    return validate_metrics(((), metrics), config).validation_ok


def test_regression_errors_may_grow_by_max_increase_and_stay_under_upper_bound():
    cfg = load_config(ROOT / "pipeline" / "configs" / "diamonds" / "pipeline.yaml")
    thresholds = (Threshold("rmse", upper_bound=2000, max_increase=200), Threshold("r2", lower_bound=0.85))
    assert _judge(cfg, thresholds, {"rmse": (900, 800), "r2": (0.9, 0.9)})  # +100 <= 200
    assert _judge(cfg, thresholds, {"rmse": (700, 800), "r2": (0.9, 0.9)})  # better
    assert not _judge(cfg, thresholds, {"rmse": (1100, 800), "r2": (0.9, 0.9)})  # +300 > 200
    assert not _judge(cfg, thresholds, {"rmse": (2100, 2050), "r2": (0.9, 0.9)})  # over the bound
    assert not _judge(cfg, thresholds, {"rmse": (900, 800), "r2": (0.8, 0.9)})  # R² under its bound


def test_multiclass_accuracy_may_drop_by_max_decrease():
    cfg = load_config(ROOT / "pipeline" / "configs" / "chile" / "pipeline.yaml")
    thresholds = (Threshold("accuracy", lower_bound=0.55, max_decrease=0.05),)
    assert _judge(cfg, thresholds, {"accuracy": (0.66, 0.70)})
    assert not _judge(cfg, thresholds, {"accuracy": (0.64, 0.70)})
    assert not _judge(cfg, thresholds, {"accuracy": (0.54, 0.55)})
