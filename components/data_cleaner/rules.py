"""DataCleaner's `rules` parameter: JSON in, validated against the input schema, typed rules out.

Every key is optional; unknown keys are errors (a typo must not silently disable a rule):

    {
      "drop_columns_missing_fraction": 0.5,        # number in [0, 1]: drop columns whose missing
                                                   #   fraction on the fit split is > this
      "protected_columns": ["tips", "fare"],       # never dropped by the rule above (reported as kept)
      "drop_rows_missing": ["fare", "trip_miles"], # delete rows missing any of these
      "max_missing_per_row": {"columns": [...], "max": 1},   # delete rows with > max missing among columns
      "remove_outliers": [                         # applied in order, each fitted after the previous ones
        {"column": "fare", "method": "iqr", "k": 1.5},                        # k >= 0, default 1.5
        {"column": "trip_miles", "method": "quantile", "lower": 0.01, "upper": 0.99},  # 0 <= lower <= upper <= 1
        {"column": "trip_seconds", "method": "z_score", "k": 3.0}             # k >= 0, default 3.0
      ],
      "label_classes": "species"                   # a multiclass label: a class in another split that
                                                   #   the fit split never has stops the run (named)
    }

Every column must be in the schema; outlier columns must be INT or FLOAT, at most one outlier rule
per column. Every error is a ValueError naming the rule (by its key and index in the JSON) and the
column, raised before any data is read.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from tensorflow_metadata.proto.v0 import schema_pb2

METHODS = ("quantile", "iqr", "z_score")
DEFAULT_K = {"iqr": 1.5, "z_score": 3.0}
_TOP_KEYS = ("drop_columns_missing_fraction", "drop_rows_missing", "max_missing_per_row", "remove_outliers",
             "protected_columns", "label_classes")
_NUMERIC = (schema_pb2.INT, schema_pb2.FLOAT)


def _num(x: float) -> str:
    return f"{x:g}"


@dataclasses.dataclass(frozen=True)
class DropRowsMissing:
    """Delete rows missing any of `columns`."""

    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"drop_rows_missing[{','.join(self.columns)}]"


@dataclasses.dataclass(frozen=True)
class MaxMissingPerRow:
    """Delete rows with more than `max_missing` missing values among `columns`."""

    columns: tuple[str, ...]
    max_missing: int

    @property
    def name(self) -> str:
        return f"max_missing_per_row[{','.join(self.columns)};max={self.max_missing}]"


@dataclasses.dataclass(frozen=True)
class RemoveOutliers:
    """Delete rows whose present value of `column` is outside bounds fitted on the fit split."""

    column: str
    method: str  # one of METHODS
    k: float | None = None  # iqr, z_score
    lower: float | None = None  # quantile: the lower bound's quantile level
    upper: float | None = None  # quantile: the upper bound's quantile level

    @property
    def name(self) -> str:
        if self.method == "quantile":
            return f"remove_outliers[{self.column}:quantile,lower={_num(self.lower)},upper={_num(self.upper)}]"
        return f"remove_outliers[{self.column}:{self.method},k={_num(self.k)}]"


RowRule = DropRowsMissing | MaxMissingPerRow | RemoveOutliers


@dataclasses.dataclass(frozen=True)
class Rules:
    drop_columns_missing_fraction: float | None = None
    protected_columns: tuple[str, ...] = ()
    row_rules: tuple[RowRule, ...] = ()  # applied in this order: steps (2), (3), then (4) rule by rule
    label_classes: str | None = None  # checked on the cleaned rows: every class must occur in the fit split

    @property
    def outlier_rules(self) -> tuple[RemoveOutliers, ...]:
        return tuple(r for r in self.row_rules if isinstance(r, RemoveOutliers))


def _fail(where: str, message: str) -> None:
    raise ValueError(f"DataCleaner rules: {where}: {message}")


def _number(where: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(where, f"expected a number, got {value!r}")
    if not low <= value <= high:
        _fail(where, f"{value!r} is outside [{_num(low)}, {_num(high)}]")
    return float(value)


def _columns(where: str, value: Any, known: dict[str, int], non_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        _fail(where, f"expected a list of column names, got {value!r}")
    if non_empty and not value:
        _fail(where, "expected at least one column")
    for column in value:
        _known(where, column, known)
    return tuple(value)


def _known(where: str, column: str, known: dict[str, int]) -> None:
    if column not in known:
        _fail(where, f"column '{column}' does not exist in the data (columns: {', '.join(sorted(known))})")


def _object(where: str, value: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(where, f"expected an object, got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        _fail(where, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")
    missing = [key for key in required if key not in value]
    if missing:
        _fail(where, f"missing key(s) {', '.join(missing)}")
    return value


def _outlier_rule(where: str, spec: Any, known: dict[str, int]) -> RemoveOutliers:
    method = spec.get("method") if isinstance(spec, dict) else None
    if method not in METHODS:
        _fail(where, f"'method' must be one of {', '.join(METHODS)}, got {method!r}")
    where = f"{where} ({method})"
    if method == "quantile":
        spec = _object(where, spec, ("column", "method", "lower", "upper"), ("column", "lower", "upper"))
    else:
        spec = _object(where, spec, ("column", "method", "k"), ("column",))
    column = spec["column"]
    if not isinstance(column, str):
        _fail(where, f"'column' must be a column name, got {column!r}")
    _known(where, column, known)
    if known[column] not in _NUMERIC:
        _fail(where, f"column '{column}' is not numeric ({schema_pb2.FeatureType.Name(known[column])}); "
                     "outlier rules need an INT or FLOAT column")
    if method == "quantile":
        lower = _number(f"{where}.lower", spec["lower"], 0.0, 1.0)
        upper = _number(f"{where}.upper", spec["upper"], lower, 1.0)
        return RemoveOutliers(column, method, lower=lower, upper=upper)
    return RemoveOutliers(column, method, k=_number(f"{where}.k", spec.get("k", DEFAULT_K[method]), 0.0, math.inf))


def parse_rules(rules_json: str, schema: schema_pb2.Schema) -> Rules:
    """Parses and validates `rules_json` against the columns (and their types) of `schema`."""
    try:
        raw = json.loads(rules_json) if rules_json.strip() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"DataCleaner rules: not valid JSON: {err}") from err
    raw = _object("rules", raw, _TOP_KEYS)
    known = {f.name: f.type for f in schema.feature}

    threshold = raw.get("drop_columns_missing_fraction")
    if threshold is not None:
        threshold = _number("drop_columns_missing_fraction", threshold, 0.0, 1.0)
    protected = _columns("protected_columns", raw.get("protected_columns", []), known)

    row_rules: list[RowRule] = []
    if raw.get("drop_rows_missing"):
        row_rules.append(DropRowsMissing(_columns("drop_rows_missing", raw["drop_rows_missing"], known)))
    if "max_missing_per_row" in raw:
        spec = _object("max_missing_per_row", raw["max_missing_per_row"], ("columns", "max"), ("columns", "max"))
        columns = _columns("max_missing_per_row.columns", spec["columns"], known, non_empty=True)
        max_missing = spec["max"]
        if isinstance(max_missing, bool) or not isinstance(max_missing, int) or max_missing < 0:
            _fail("max_missing_per_row.max", f"expected an integer >= 0, got {max_missing!r}")
        row_rules.append(MaxMissingPerRow(columns, max_missing))
    outliers = raw.get("remove_outliers", [])
    if not isinstance(outliers, list):
        _fail("remove_outliers", f"expected a list of rules, got {outliers!r}")
    seen: set[str] = set()
    for i, spec in enumerate(outliers):
        rule = _outlier_rule(f"remove_outliers[{i}]", spec, known)
        if rule.column in seen:
            # One fitted entry per column in the report; chain methods in a later run if ever needed.
            _fail(f"remove_outliers[{i}] ({rule.method})", f"column '{rule.column}' already has an outlier rule")
        if rule.column == "missing_fraction":
            _fail(f"remove_outliers[{i}] ({rule.method})", "a column named 'missing_fraction' clashes with the "
                                                           "report's fitted.missing_fraction key")
        seen.add(rule.column)
        row_rules.append(rule)
    label_classes = raw.get("label_classes")
    if label_classes is not None:
        if not isinstance(label_classes, str):
            _fail("label_classes", f"expected a column name, got {label_classes!r}")
        _known("label_classes", label_classes, known)
    return Rules(threshold, protected, tuple(row_rules), label_classes)
