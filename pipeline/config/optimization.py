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
from pipeline.config.errors import Reader, positive
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


def _fraction_open(v: Any) -> str | None:
    return None if 0 < v < 1 else "must be in (0, 1)"


def _units(v: Any) -> str | None:
    ok = v and all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in v)
    return None if ok else "must be a non-empty list of positive integers"


NUMBER = (int, float)
# config key -> (variant name, component id, {param: (types, default, check)})
VARIANTS: dict[str, tuple[str, str, dict[str, tuple]]] = {
    "pruning": ("pruned", "Pruner", {
        "target_sparsity": (NUMBER, 0.8, _fraction_open),
        "fine_tune_steps": ((int,), 400, positive),
        "epochs": ((int,), 2, positive),
        "learning_rate": (NUMBER, 0.001, positive),
    }),
    "quantization_aware": ("qat", "QuantizationAwareTrainer", {
        "fine_tune_steps": ((int,), 200, positive),
        "epochs": ((int,), 2, positive),
        # Small: QAT should adapt to int8 without drifting from the trained model's decisions
        # (measured on taxi: 5e-4 kept 97.4% of them, 2e-5 kept 99.8%).
        "learning_rate": (NUMBER, 0.00002, positive),
    }),
    "distillation": ("student", "Distiller", {
        "student": ((dict,), {"hidden_units": [16], "embedding_dim": 4}, None),
        "temperature": (NUMBER, 2.0, positive),
        "alpha": (NUMBER, 0.5, lambda v: None if 0 <= v <= 1 else "must be in [0, 1]"),
        "train_steps": ((int,), 1000, positive),
        "learning_rate": (NUMBER, 0.003, positive),
    }),
}
STUDENT_KEYS = {"hidden_units": ((list,), _units), "embedding_dim": ((int,), positive),
                "dropout": (NUMBER, lambda v: None if 0 <= v < 1 else "must be in [0, 1)")}
# Image models: a smaller Conv2D stack for the student (filters, kernel_size, pool_size; model.py Conv).
STUDENT_KEYS["conv"] = ((dict,), lambda v: None if isinstance(v.get("filters"), list) and v["filters"] and all(
    isinstance(f, int) and f > 0 for f in v["filters"]) and set(v) <= {"filters", "kernel_size", "pool_size"}
    else "must be {filters: [positive ints], kernel_size, pool_size}")


def parse_tuning(top: Reader, task: str = task_lib.BINARY) -> TuningConfig:
    t = top.child("tuning")
    space = t.get("search_space", (dict,))
    if not space:
        raise t.fail("must name at least one hyperparameter to search", "search_space")
    if problem := hyperparameters.check_space(space):
        raise t.fail(problem, "search_space")
    default, _ = task_lib.MONITOR[task]
    d = TuningConfig(space)
    objective = t.get("objective", (str,), default,
                      lambda v: None if v.startswith("val_") else f"must be a validation metric, e.g. {default}")
    return TuningConfig(
        search_space=space,
        algorithm=t.get("algorithm", (str,), d.algorithm,
                        lambda v: None if v in ALGORITHMS else f"must be one of {', '.join(ALGORITHMS)}"),
        max_trials=t.get("max_trials", (int,), d.max_trials, positive),
        epochs=t.get("epochs", (int,), d.epochs, positive),
        steps_per_epoch=t.get("steps_per_epoch", (int,), d.steps_per_epoch, positive),
        validation_steps=t.get("validation_steps", (int,), d.validation_steps, positive),
        objective=objective,
        direction="min" if objective.endswith(("loss", "rmse", "mae", "mse", "mape", "crossentropy")) else "max",
        seed=t.get("seed", (int,), d.seed),
    )


def parse_optimization(top: Reader, split_names: tuple[str, ...], task: str = task_lib.BINARY
                       ) -> OptimizationConfig:
    o = top.child("optimization")
    split = o.get("split", (str,), "test",
                  lambda v: None if v in split_names else f"must be one of {', '.join(split_names)}")
    default_thresholds = (parse_thresholds(o, "thresholds", task) if "thresholds" in o.data
                          else DEFAULT_VARIANT_THRESHOLDS[task])
    variants = []
    for key, (name, component, spec) in VARIANTS.items():
        if key not in o.data:
            continue
        v = o.child(key) if o.data[key] is not None else Reader(o.source, {}, f"{o.where}.{key}")
        params = {p: v.get(p, types, default, check) for p, (types, default, check) in spec.items()}
        if "student" in params:
            s = v.child("student") if "student" in v.data else Reader(v.source, params["student"], "")
            for p, (types, check) in STUDENT_KEYS.items():
                s.get(p, types, None, check)
        thresholds = parse_thresholds(v, "thresholds", task) if "thresholds" in v.data else default_thresholds
        variants.append(Variant(name, component, params, thresholds))
    if not variants:
        raise o.fail(f"name at least one of {', '.join(VARIANTS)}")
    return OptimizationConfig(tuple(variants), split)

