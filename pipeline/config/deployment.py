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
from pipeline.config import model
from pipeline.config.errors import Reader

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


def _thresholds(m: model.ConversionThresholds | None, defaults: dict[str, float]) -> dict[str, float]:
    out = {k: float(v) for k, v in (m.model_dump(exclude_none=True) if m else {}).items()}
    return out or dict(defaults)


def parse_deployment(top: Reader, d: model.Deployment, split_names: tuple[str, ...],
                     variant_names: tuple[str, ...], task: str = task_lib.BINARY) -> DeploymentConfig:
    """Keys, types and bounds: model.Deployment; here the models and splits the rest of the config has."""
    r = top.child("deployment")
    known = ("trained", *variant_names)
    models = d.models if d.models is not None else ["trained"]
    for k, m in enumerate(models):
        if m not in known:
            raise r.fail(f"unknown model {m!r}; known: {', '.join(known)} (variants come from optimization)",
                         f"models[{k}]")
    if not models or len(set(models)) != len(models):
        raise r.fail("must list each model once (trained and/or optimization variants)", "models")
    if d.split not in split_names:
        raise r.fail(f"must be one of {', '.join(split_names)}", "split")
    tflite = tfjs = None
    if "tflite" in r.data:  # `tflite:` alone: every default
        t = d.tflite or model.TFLite()
        variants = t.variants if t.variants is not None else list(TFLiteConfig.variants)
        if not variants or len(set(variants)) != len(variants):
            raise r.child("tflite").fail("must list each variant once", "variants")
        given = t.thresholds.model_dump(exclude_none=True) if t.thresholds else {}
        for v in given:
            if v not in variants:
                raise r.child("tflite").child("thresholds").fail(
                    f"unknown key '{v}'; allowed: {', '.join(sorted(variants))} (the listed variants)")
        thresholds = {v: _thresholds(getattr(t.thresholds, v) if t.thresholds else None, default_thresholds(v, task))
                      for v in variants}
        tflite = TFLiteConfig(tuple(variants), thresholds, t.representative_examples)
    if "tfjs" in r.data:
        j = d.tfjs or model.TFJS()
        tfjs = TFJSConfig(j.quantization, _thresholds(j.thresholds, default_thresholds(j.quantization, task)))
    if tflite is None and tfjs is None:
        raise r.fail("give tflite and/or tfjs")
    return DeploymentConfig(tuple(models), d.split, d.validation_examples, tflite, tfjs)
