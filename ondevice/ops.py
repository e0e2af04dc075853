"""One definition of every on-device preprocessing operation, run two ways.

Each operation of the preprocessing spec (``spec.py``) is written once, in ``STEPS`` and
``feature_outputs``, against a small array namespace (``Arrays``). Two namespaces run it:

* ``reference.NUMPY``: NumPy, float64: the reference an app or a test computes with;
* ``builtin.TensorFlow``: TF ops that TFLite and TF.js map to built-in kernels, float32 and
  int32 (TF.js has no int64): the graph inside the on-device model.

A namespace supplies the primitives whose built-in form differs from NumPy's (``log(1 + x)``
for ``log1p``, ``x == x`` for ``~isnan``, BUCKETIZE or counted comparisons for
``searchsorted``); the math is here. Where the two need genuinely different code (string
vocabularies: a constant hash table in the graph, a dict in the reference; FarmHash, string
crosses and tokenizing, which have no built-in op), each namespace has its own method and
tests/test_ondevice_ops.py runs both on the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from features.feature_steps import CYCLICAL_PARTS
from ondevice import text


class Arrays(Protocol):
    """The array namespace an operation is written against (NumPy or built-in TF ops)."""

    def column(self, inputs: dict[str, Any], name: str) -> tuple[Any, Any]: ...  # values, present
    def is_string(self, x: Any) -> bool: ...
    def where(self, cond: Any, x: Any, y: Any) -> Any: ...
    def zeros_like(self, x: Any) -> Any: ...
    def ones_like(self, x: Any) -> Any: ...
    def full_like(self, x: Any, value: Any) -> Any: ...  # x's shape and dtype
    def not_equal(self, x: Any, y: Any) -> Any: ...
    def logical_not(self, x: Any) -> Any: ...
    def minimum(self, x: Any, y: Any) -> Any: ...
    def maximum(self, x: Any, y: Any) -> Any: ...
    def clip(self, x: Any, lo: Any, hi: Any) -> Any: ...
    def floordiv(self, x: Any, y: Any) -> Any: ...
    def floormod(self, x: Any, y: Any) -> Any: ...
    def log(self, x: Any) -> Any: ...
    def log1p(self, x: Any) -> Any: ...
    def expm1(self, x: Any) -> Any: ...
    def sin(self, x: Any) -> Any: ...
    def cos(self, x: Any) -> Any: ...
    def to_float(self, x: Any) -> Any: ...  # the namespace's float (float64 / float32)
    def to_float32(self, x: Any) -> Any: ...
    def to_int(self, x: Any) -> Any: ...  # truncating
    def constant32(self, values: Any) -> Any: ...  # float32 constant
    def reshape(self, x: Any, shape: list[int]) -> Any: ...
    def arange(self, n: int, like: Any) -> Any: ...  # 0..n-1 of like's dtype
    def civil_month(self, days: Any) -> Any: ...
    def bucketize(self, x: Any, boundaries: list[float], target: str) -> Any: ...
    # Different code per namespace (checked against each other by tests/test_ondevice_ops.py):
    def impute_strings(self, x: Any, present: Any, fill: str) -> Any: ...
    def vocabulary(self, x: Any, step: dict[str, Any], table: Any, present: Any, fill: str | None) -> Any: ...
    def hash(self, x: Any, step: dict[str, Any], feature: str) -> Any: ...
    def cross(self, source: dict[str, Any], inputs: dict[str, Any], feature: str) -> tuple[Any, Any]: ...
    def text(self, feature: dict[str, Any], inputs: dict[str, Any], table: Any) -> dict[str, Any]: ...


@dataclass
class Context:
    """What a step may read besides its input: the feature, presence of the raw value, where it runs."""

    feature: str
    present: Any
    table: Any = None  # the feature's string vocabulary table (built-in graph)
    target: str = "portable"
    string_fill: str | None = None  # a string impute the vocabulary lookup applies (built-in graph)
    extra: dict[str, Any] = field(default_factory=dict)  # outputs besides <name>_xf (missing indicators)


Step = Callable[[Arrays, Any, dict[str, Any], Context], Any]


def _impute(xp: Arrays, x: Any, step: dict[str, Any], c: Context) -> Any:
    if step["indicator"]:
        c.extra[f"{c.feature}_missing_xf"] = xp.to_float32(xp.logical_not(c.present))
    if xp.is_string(x):
        c.string_fill = step["fill"]
        return xp.impute_strings(x, c.present, step["fill"])
    return xp.where(c.present, x, xp.full_like(x, step["fill"]))


def _bucketize(xp: Arrays, x: Any, step: dict[str, Any], c: Context) -> Any:
    """Number of boundaries <= x (tft.apply_buckets: searchsorted, side right); on a raw column,
    missing values go to the extra bucket ``missing_bucket``."""
    missing = step["missing_bucket"]
    if missing is None:
        return xp.bucketize(x, step["boundaries"], c.target)
    b = xp.bucketize(xp.where(c.present, x, xp.zeros_like(x)), step["boundaries"], c.target)
    return xp.where(c.present, b, xp.full_like(b, missing))


def _box_cox_like(xp: Arrays, v: Any, lam: float) -> Any:
    """((1 + v)^λ - 1) / λ, or log(1 + v) at λ = 0 (feature_steps._power); λ is resolved here, so
    the graph has no branch."""
    lg = xp.log1p(v)
    return lg if abs(lam) < 1e-12 else xp.expm1(lam * lg) / lam


def _power(xp: Arrays, x: Any, step: dict[str, Any], c: Context) -> Any:
    lam = step["lambda"]
    if step["op"] == "box_cox":
        return _box_cox_like(xp, x - 1.0, lam)
    pos = x >= 0
    zero = xp.zeros_like(x)
    return xp.where(pos, _box_cox_like(xp, xp.where(pos, x, zero), lam),
                    -_box_cox_like(xp, xp.where(pos, zero, -x), 2.0 - lam))


def _min_max(xp: Arrays, x: Any, step: dict[str, Any], c: Context) -> Any:
    lo, hi = step["range"]
    span = step["max"] - step["min"]
    return ((x - step["min"]) / span if span > 0 else xp.zeros_like(x)) * (hi - lo) + lo


def _vocabulary(xp: Arrays, x: Any, step: dict[str, Any], c: Context) -> Any:
    x = xp.vocabulary(x, step, c.table, c.present, c.string_fill)
    if step["encoding"] != "one_hot":
        return x
    # Not ONE_HOT (nor a pattern the converter fuses into it): a quantization-aware model quantizes
    # its inputs, the converter pushes that into the producer, and ONE_HOT takes no quantized on/off values.
    positions = xp.reshape(xp.arange(step["size"], like=x), [1, step["size"]])
    return 1.0 - xp.to_float32(xp.not_equal(xp.reshape(x, [-1, 1]), positions))


# Every step of the spec: op -> f(namespace, values, step, context) -> values. Fitted constants
# that would need a branch (a zero std, span or IQR) are resolved here in Python.
STEPS: dict[str, Step] = {
    "impute": _impute,
    "bucketize": _bucketize,
    "clip": lambda xp, x, s, c: xp.minimum(xp.maximum(x, s["lower"]), s["upper"]),
    "log": lambda xp, x, s, c: xp.log(x),
    "log1p": lambda xp, x, s, c: xp.log1p(x),
    "box_cox": _power,
    "yeo_johnson": _power,
    "z_score": lambda xp, x, s, c: (x - s["mean"]) / s["std"] if s["std"] > 0 else x - s["mean"],
    "min_max": _min_max,
    "robust": lambda xp, x, s, c: (x - s["median"]) / (s["iqr"] if s["iqr"] > 0 else 1.0),
    "max_abs": lambda xp, x, s, c: x / (s["max_abs"] if s["max_abs"] > 0 else 1.0),
    "categorical_identity": lambda xp, x, s, c: xp.clip(xp.to_int(x), 0, s["num_buckets"] - 1),
    "vocabulary": _vocabulary,
    "hash": lambda xp, x, s, c: xp.hash(x, s, c.feature),
    # Image features (pixels 0..255 in, float32): features/image.py spec_entry.
    "scale": lambda xp, x, s, c: x * xp.constant32(s["factor"]),
    "per_channel_standardize": lambda xp, x, s, c: (x - xp.constant32(s["mean"])) / xp.constant32(s["std"]),
}


def _cyclical(xp: Arrays, feature: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """sin / cos of hour, weekday and month of a Unix timestamp (integer date arithmetic: int32 in
    the graph, exact until 2038); a missing one maps to (0, 0) (feature_steps.cyclical_features)."""
    seconds, present = xp.column(inputs, feature["source"]["cyclical"]["column"])
    seconds = xp.where(present, seconds, xp.zeros_like(seconds))
    days = xp.floordiv(seconds, 86400)
    values = {
        "hour": xp.to_float(xp.floormod(seconds, 86400)) / 3600.0,
        "weekday": xp.to_float(xp.floormod(days + 3, 7)),
        "month": xp.to_float(xp.civil_month(days) - 1),
    }
    out = {}
    for part in feature["source"]["cyclical"]["parts"]:
        angle = (2.0 * math.pi / CYCLICAL_PARTS[part]) * values[part]
        for fn, op in (("sin", xp.sin), ("cos", xp.cos)):
            out[f"{feature['name']}_{part}_{fn}_xf"] = xp.where(present, op(angle), xp.zeros_like(angle))
    return out


def _source(xp: Arrays, feature: dict[str, Any], inputs: dict[str, Any]) -> tuple[Any, Any]:
    source = feature["source"]
    if "ratio" in source:
        (num, num_ok), (den, den_ok) = (xp.column(inputs, c) for c in source["ratio"])
        ok = num_ok & den_ok & xp.not_equal(den, 0.0)
        return xp.where(ok, num / xp.where(ok, den, xp.ones_like(den)), xp.zeros_like(num)), ok
    if "cross" in source:
        return xp.cross(source, inputs, feature["name"])
    return xp.column(inputs, source["column"])


def feature_outputs(xp: Arrays, feature: dict[str, Any], inputs: dict[str, Any], table: Any = None,
                    target: str = "portable") -> dict[str, Any]:
    """One feature's model inputs ({output name: values}) from the raw inputs, in namespace ``xp``."""
    name = feature["name"]
    if text.is_text(feature):  # tokens (the app tokenizes) -> ids
        return xp.text(feature, inputs, table)
    if "cyclical" in feature["source"]:
        return _cyclical(xp, feature, inputs)
    if feature.get("type") == "image":  # float32 pixels 0..255, always present
        x = xp.to_float32(inputs[feature["source"]["column"]])
        context = Context(name, None, table, target)
    else:
        x, present = _source(xp, feature, inputs)
        context = Context(name, present, table, target)
    for step in feature["steps"]:
        if step["op"] not in STEPS:
            raise ValueError(f"feature {name}: unknown step {step['op']}")
        x = STEPS[step["op"]](xp, x, step, context)
    return {f"{name}_xf": x, **context.extra}
