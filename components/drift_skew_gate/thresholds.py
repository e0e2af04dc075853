"""The DriftSkewGate's ``thresholds`` parameter: parsing, validation, per-feature limits.

The parameter is a JSON object::

    {"split": "train",                 # which split of each statistics artifact to compare
     "categorical_linf": 0.1,          # default L-infinity limit of string (categorical) features
     "numeric_js": 0.1,                # default Jensen-Shannon limit of int/float features
     "numeric_histogram": "standard",  # histogram TFDV computes the divergence on: standard | quantiles
     "features": {"fare": {"numeric_js": 0.2}, "company": {"categorical_linf": 0.3}},
     "skip": ["tips"]}                 # features never compared

Every key is optional (defaults as above, no overrides, nothing skipped). A feature's kind
comes from the schema: BYTES, and INT with ``int_domain.is_categorical``, are categorical;
other INT and FLOAT features are numeric. Limits are in [0, 1]: both distances are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from tensorflow_metadata.proto.v0 import schema_pb2

CATEGORICAL, NUMERIC = "categorical", "numeric"
LIMIT_KEY = {CATEGORICAL: "categorical_linf", NUMERIC: "numeric_js"}
METRIC = {CATEGORICAL: "infinity_norm", NUMERIC: "jensen_shannon_divergence"}  # FeatureComparator fields
METRIC_NAME = {CATEGORICAL: "L-infinity distance", NUMERIC: "Jensen-Shannon divergence"}
HISTOGRAMS = {"standard": schema_pb2.HistogramSelection.STANDARD,
              "quantiles": schema_pb2.HistogramSelection.QUANTILES}
DEFAULTS = {"split": "train", "categorical_linf": 0.1, "numeric_js": 0.1, "numeric_histogram": "standard"}
FEATURE_KEYS = ("categorical_linf", "numeric_js", "numeric_histogram")


class ThresholdsError(ValueError):
    """The thresholds parameter is malformed or does not fit the schema."""


@dataclass(frozen=True)
class Limit:
    """What one feature is compared with, and the largest distance it may have."""

    kind: str
    threshold: float
    histogram: str | None = None  # numeric features only

    @property
    def metric(self) -> str:
        return METRIC[self.kind]

    @property
    def metric_name(self) -> str:
        return METRIC_NAME[self.kind]


def feature_kind(feature: schema_pb2.Feature) -> str | None:
    """categorical, numeric, or None for features no comparator applies to (STRUCT)."""
    if feature.type == schema_pb2.BYTES:
        return CATEGORICAL
    if feature.type == schema_pb2.INT:
        return CATEGORICAL if feature.int_domain.is_categorical else NUMERIC
    if feature.type == schema_pb2.FLOAT:
        return NUMERIC
    return None


def _limit(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or not 0 <= value <= 1:
        raise ThresholdsError(f"thresholds: {where}: must be a number in [0, 1], got {value!r}")
    return float(value)


def _histogram(value: object, where: str) -> str:
    if value not in HISTOGRAMS:
        raise ThresholdsError(f"thresholds: {where}: must be one of {', '.join(HISTOGRAMS)}, got {value!r}")
    return str(value)


def _unknown(keys: Mapping[str, object], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(keys) - set(allowed))
    if unknown:
        raise ThresholdsError(f"thresholds: {where}unknown key{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class Thresholds:
    split: str = DEFAULTS["split"]
    categorical_linf: float = DEFAULTS["categorical_linf"]
    numeric_js: float = DEFAULTS["numeric_js"]
    numeric_histogram: str = DEFAULTS["numeric_histogram"]
    features: Mapping[str, Mapping[str, float | str]] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, text: str) -> Thresholds:
        try:
            raw = json.loads(text)
        except (TypeError, json.JSONDecodeError) as e:
            raise ThresholdsError(f"thresholds: not valid JSON ({e}): {text!r}") from None
        if not isinstance(raw, dict):
            raise ThresholdsError(f"thresholds: must be a JSON object, got {text!r}")
        _unknown(raw, (*DEFAULTS, "features", "skip"), "")
        split = raw.get("split", DEFAULTS["split"])
        if not isinstance(split, str) or not split:
            raise ThresholdsError(f"thresholds: split: must be a split name such as 'train', got {split!r}")
        features = raw.get("features", {})
        if not isinstance(features, dict):
            raise ThresholdsError(f"thresholds: features: must be an object of feature -> limits, got {features!r}")
        for name, override in features.items():
            where = f"features.{name}"
            if not isinstance(override, dict):
                raise ThresholdsError(f"thresholds: {where}: must be an object such as "
                                      f'{{"numeric_js": 0.2}}, got {override!r}')
            _unknown(override, FEATURE_KEYS, f"{where}: ")
            for key, value in override.items():
                check = _histogram if key == "numeric_histogram" else _limit
                check(value, f"{where}.{key}")
        skip = raw.get("skip", [])
        if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
            raise ThresholdsError(f"thresholds: skip: must be a list of feature names, got {skip!r}")
        return cls(
            split=split,
            categorical_linf=_limit(raw.get("categorical_linf", DEFAULTS["categorical_linf"]), "categorical_linf"),
            numeric_js=_limit(raw.get("numeric_js", DEFAULTS["numeric_js"]), "numeric_js"),
            numeric_histogram=_histogram(raw.get("numeric_histogram", DEFAULTS["numeric_histogram"]),
                                         "numeric_histogram"),
            features=features,
            skip=frozenset(skip),
        )

    def limits(self, schema: schema_pb2.Schema) -> dict[str, Limit]:
        """The limit of every compared feature of ``schema`` (skipped ones left out), by name.

        Overrides and skips must name features of the schema, and an override must fit the
        feature's kind, so a typo cannot silently leave a feature on the default limit.
        """
        kinds = {f.name: feature_kind(f) for f in schema.feature}
        for name in sorted(self.skip):
            if name not in kinds:
                raise ThresholdsError(f"thresholds: skip: {name!r} is not a feature of the schema")
        limits = {}
        for name, override in sorted(self.features.items()):
            kind = kinds.get(name)
            if kind is None:
                raise ThresholdsError(f"thresholds: features.{name}: not a comparable feature of the schema")
            wrong = sorted(set(override) - ({"categorical_linf"} if kind == CATEGORICAL else
                                            {"numeric_js", "numeric_histogram"}))
            if wrong:
                raise ThresholdsError(f"thresholds: features.{name}: {name!r} is a {kind} feature: "
                                      f"{', '.join(wrong)} does not apply; use {LIMIT_KEY[kind]}")
        for name, kind in kinds.items():
            if kind is None or name in self.skip:
                continue
            override = self.features.get(name, {})
            threshold = float(override.get(LIMIT_KEY[kind], getattr(self, LIMIT_KEY[kind])))
            histogram = str(override.get("numeric_histogram", self.numeric_histogram)) if kind == NUMERIC else None
            limits[name] = Limit(kind, threshold, histogram)
        return limits
