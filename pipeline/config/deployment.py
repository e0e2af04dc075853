"""The config's ``deployment`` section: on-device (TFLite) and in-browser (TF.js) models.

Each listed model (``trained`` or an optimization variant) gets a TFLiteConverter and/or a
TFJSConverter. Both embed the preprocessing fitted by Transform with built-in ops, so the
converted model takes raw features exactly as the serving API does; both validate the
converted model in its real runtime against the SavedModel and bless it per thresholds.
Blessed models are pushed to ``outputs/<name>/pushed/mobile[_<model>]/`` and
``.../web[_<model>]/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from features import task as task_lib
from pipeline.config.errors import Reader, positive

TFLITE_VARIANTS = ("float32", "float16", "dynamic_range", "int8")
TFJS_QUANTIZATION = ("none", "float16", "uint8")
THRESHOLD_KEYS = task_lib.THRESHOLD_KEYS


def default_thresholds(variant: str, task: str = task_lib.BINARY) -> dict[str, float]:
    """Parity with the SavedModel that blesses a converted model by default (``features.task``):
    float models must match closely; quantized ones must make the same decisions."""
    return task_lib.default_conversion_thresholds(task, exact=variant in ("float32", "none"),
                                                  loose=variant == "float16")


@dataclass(frozen=True)
class TFLiteConfig:
    variants: tuple[str, ...] = ("float32", "float16", "dynamic_range", "int8")
    thresholds: dict[str, dict[str, float]] = field(
        default_factory=lambda: {v: default_thresholds(v) for v in TFLITE_VARIANTS})
    representative_examples: int = 200  # drawn from train for int8 calibration

    def to_json(self) -> dict[str, Any]:
        return {"variants": list(self.variants), "thresholds": {v: self.thresholds[v] for v in self.variants},
                "representative_examples": self.representative_examples}


@dataclass(frozen=True)
class TFJSConfig:
    quantization: str = "none"
    thresholds: dict[str, float] = field(default_factory=lambda: default_thresholds("none"))

    def to_json(self) -> dict[str, Any]:
        return {"quantization": self.quantization, "thresholds": self.thresholds}


@dataclass(frozen=True)
class DeploymentConfig:
    models: tuple[str, ...] = ("trained",)  # trained and/or optimization variant names
    split: str = "test"  # validation examples come from here
    validation_examples: int = 500
    tflite: TFLiteConfig | None = None
    tfjs: TFJSConfig | None = None

    def common_json(self) -> dict[str, Any]:
        return {"split": self.split, "validation_examples": self.validation_examples}


def deployment_config(cfg: Any, target: str) -> dict[str, Any]:
    """The JSON parameter of the ``target`` ("tflite" or "tfjs") converter components."""
    d = cfg.deployment
    section = d.tflite if target == "tflite" else d.tfjs
    return {"custom_config": cfg.trainer_custom_config(), **d.common_json(), **section.to_json()}


def _thresholds(r: Reader, defaults: dict[str, float]) -> dict[str, float]:
    out = {k: float(r.get(k, (int, float), None, positive)) for k in THRESHOLD_KEYS if k in r.data}
    if "min_agreement" in out and out["min_agreement"] > 1:
        raise r.fail("must be in (0, 1]", "min_agreement")
    return out or dict(defaults)


def parse_deployment(top: Reader, split_names: tuple[str, ...], variant_names: tuple[str, ...],
                     task: str = task_lib.BINARY) -> DeploymentConfig:
    d = top.child("deployment")
    known = ("trained", *variant_names)
    models = d.get("models", (list,), ["trained"])
    for k, m in enumerate(models):
        if m not in known:
            raise d.fail(f"unknown model {m!r}; known: {', '.join(known)} (variants come from optimization)",
                         f"models[{k}]")
    if not models or len(set(models)) != len(models):
        raise d.fail("must list each model once (trained and/or optimization variants)", "models")
    split = d.get("split", (str,), "test",
                  lambda v: None if v in split_names else f"must be one of {', '.join(split_names)}")
    n = d.get("validation_examples", (int,), 500, positive)
    tflite = tfjs = None
    if "tflite" in d.data:
        t = d.child("tflite") if d.data["tflite"] is not None else Reader(d.source, {}, "deployment.tflite")
        variants = t.get("variants", (list,), list(TFLiteConfig.variants))
        for k, v in enumerate(variants):
            if v not in TFLITE_VARIANTS:
                raise t.fail(f"unknown variant {v!r}; known: {', '.join(TFLITE_VARIANTS)}", f"variants[{k}]")
        if not variants or len(set(variants)) != len(variants):
            raise t.fail("must list each variant once", "variants")
        thresholds = {v: default_thresholds(v, task) for v in variants}
        if "thresholds" in t.data:
            th = t.child("thresholds")
            th.mapping(set(variants))
            for v in th.data:
                thresholds[v] = _thresholds(th.child(v), default_thresholds(v, task))
        tflite = TFLiteConfig(tuple(variants), thresholds,
                              t.get("representative_examples", (int,), 200, positive))
    if "tfjs" in d.data:
        j = d.child("tfjs") if d.data["tfjs"] is not None else Reader(d.source, {}, "deployment.tfjs")
        q = j.get("quantization", (str,), "none",
                  lambda v: None if v in TFJS_QUANTIZATION else f"must be one of {', '.join(TFJS_QUANTIZATION)}")
        th = (_thresholds(j.child("thresholds"), default_thresholds(q, task)) if "thresholds" in j.data
              else default_thresholds(q, task))
        tfjs = TFJSConfig(q, th)
    if tflite is None and tfjs is None:
        raise d.fail("give tflite and/or tfjs")
    return DeploymentConfig(tuple(models), split, n, tflite, tfjs)
