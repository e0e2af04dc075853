"""The config's ``tuning`` and ``optimization`` sections, validated on load like the rest.

``tuning`` adds TFX's Tuner (KerasTuner) before Trainer; ``optimization`` adds model
variants made from the trained model (pruned, quantization-aware, distilled student),
each evaluated against the trained model and pushed only when blessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features import task as task_lib
from model import hyperparameters
from pipeline.config import model
from pipeline.config.errors import Reader
from pipeline.config.evaluation import Threshold, parse_thresholds

ALGORITHMS = ("random", "hyperband", "bayesian")
# Default thresholds of every variant, relative to the trained model, per task: AUC or accuracy
# may drop by at most 0.01. Regression errors have units: give max_increase per dataset.
DEFAULT_VARIANT_THRESHOLDS = {
    task_lib.BINARY: (Threshold("auc", max_decrease=0.01),),
    task_lib.MULTICLASS: (Threshold("accuracy", max_decrease=0.01),),
    task_lib.REGRESSION: (),  # no unit-free default: a variant is blessed unless thresholds are given
}


@dataclass(frozen=True)
class TuningConfig:
    search_space: dict[str, Any]
    algorithm: str = "random"
    max_trials: int = 4  # the trial budget of every algorithm
    epochs: int = 2
    steps_per_epoch: int = 100
    validation_steps: int = 20
    objective: str = "val_auc"
    direction: str = "max"  # of the objective: max (auc, accuracy) or min (loss, rmse, mae)
    seed: int = 42

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Variant:
    """One model variant: its name, the component that makes it, and that component's settings."""

    name: str  # pruned | qat | student
    component: str
    params: dict[str, Any]
    thresholds: tuple[Threshold, ...] = ()


@dataclass(frozen=True)
class OptimizationConfig:
    variants: tuple[Variant, ...] = ()
    split: str = "test"  # where each variant is evaluated against the trained model

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)


# config key -> (variant name, component id); each variant's settings, their types, bounds and
# defaults are model.py's (Pruning, QuantizationAware, Distillation).
VARIANTS: dict[str, tuple[str, str, type[model.Section]]] = {
    "pruning": ("pruned", "Pruner", model.Pruning),
    # QuantizationAware's learning rate is small: QAT should adapt to int8 without drifting from the
    # trained model's decisions (measured on taxi: 5e-4 kept 97.4% of them, 2e-5 kept 99.8%).
    "quantization_aware": ("qat", "QuantizationAwareTrainer", model.QuantizationAware),
    "distillation": ("student", "Distiller", model.Distillation),
}
DEFAULT_STUDENT = {"hidden_units": [16], "embedding_dim": 4}


def parse_tuning(top: Reader, t: model.Tuning, task: str = task_lib.BINARY) -> TuningConfig:
    r = top.child("tuning")
    if not t.search_space:
        raise r.fail("must name at least one hyperparameter to search", "search_space")
    if problem := hyperparameters.check_space(t.search_space):
        raise r.fail(problem, "search_space")
    default, _ = task_lib.MONITOR[task]
    objective = t.objective if t.objective is not None else default
    if not objective.startswith("val_"):
        raise r.fail(f"must be a validation metric, e.g. {default}", "objective")
    return TuningConfig(
        search_space=r.data["search_space"], algorithm=t.algorithm, max_trials=t.max_trials, epochs=t.epochs,
        steps_per_epoch=t.steps_per_epoch, validation_steps=t.validation_steps, objective=objective,
        direction="min" if objective.endswith(("loss", "rmse", "mae", "mse", "mape", "crossentropy")) else "max",
        seed=t.seed,
    )


def parse_optimization(top: Reader, o: model.Optimization, split_names: tuple[str, ...],
                       task: str = task_lib.BINARY) -> OptimizationConfig:
    r = top.child("optimization")
    if o.split not in split_names:
        raise r.fail(f"must be one of {', '.join(split_names)}", "split")
    default_thresholds = (parse_thresholds(r.child("thresholds"), o.thresholds, task) if o.thresholds is not None
                          else DEFAULT_VARIANT_THRESHOLDS[task])
    variants = []
    for key, (name, component, section_model) in VARIANTS.items():
        if key not in r.data:
            continue
        section = getattr(o, key) or section_model()  # `pruning:` alone: every default
        params = section.model_dump(exclude={"thresholds", "student"})
        if key == "distillation":  # the student as written (the Distiller fills in the rest)
            params = {"student": section.student.model_dump(exclude_unset=True) if section.student
                      else dict(DEFAULT_STUDENT), **params}
        thresholds = (parse_thresholds(r.child(key).child("thresholds"), section.thresholds, task)
                      if section.thresholds is not None else default_thresholds)
        variants.append(Variant(name, component, params, thresholds))
    if not variants:
        raise r.fail(f"name at least one of {', '.join(VARIANTS)}")
    return OptimizationConfig(tuple(variants), o.split)
