"""Declarative preprocessing steps: the one registry that config validation,
``preprocessing_fn`` and the model builder all read.

A feature's steps run in order on a column that starts as the raw (possibly
sparse, possibly missing) CSV value. Each step declares which column kinds it
accepts and which it produces, so a config can be checked before any TFX
component starts. Every fitted parameter is a tf.Transform analyzer, so it is
computed on the analyze split (train) only and baked into the transform graph
that training, evaluation and serving all share.

Column kinds:
  ``raw``          the value as parsed from the data: sparse, may be missing
  ``numeric``      dense float32, one value per row
  ``string``       dense string, one value per row
  ``categorical``  dense int64 index in ``[0, cardinality)``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

RAW, NUMERIC, STRING, CATEGORICAL = "raw", "numeric", "string", "categorical"
VALUE_TYPES = ("float", "int", "string")


@dataclass(frozen=True)
class ArgSpec:
    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    check: Callable[[Any], str | None] | None = None  # returns an error text or None


@dataclass(frozen=True)
class StepSpec:
    name: str
    accepts: frozenset[str]
    produces: str | None  # None: the kind of its input (after raw -> dense)
    args: Mapping[str, ArgSpec] = field(default_factory=dict)
    doc: str = ""


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _at_least_two(v: Any) -> str | None:
    return None if v >= 2 else "must be >= 2"


IMPUTE_STRATEGIES = ("mean", "median", "constant")

STEPS: dict[str, StepSpec] = {
    s.name: s
    for s in (
        StepSpec(
            "impute",
            frozenset({RAW}),
            None,
            {
                "strategy": ArgSpec((str,), default="constant",
                                    check=lambda v: None if v in IMPUTE_STRATEGIES
                                    else f"must be one of {', '.join(IMPUTE_STRATEGIES)}"),
                "value": ArgSpec((int, float, str)),
            },
            "fill missing values (mean/median of the train split, or a constant)",
        ),
        StepSpec("z_score", frozenset({NUMERIC}), NUMERIC, {},
                 "(x - mean) / std, fitted on train"),
        StepSpec("min_max", frozenset({NUMERIC}), NUMERIC,
                 {"min": ArgSpec((int, float), default=0.0),
                  "max": ArgSpec((int, float), default=1.0)},
                 "scale to [min, max] with the train split's range"),
        StepSpec("vocabulary", frozenset({STRING, NUMERIC}), CATEGORICAL,
                 {"top_k": ArgSpec((int,), required=True, check=_positive),
                  "oov_buckets": ArgSpec((int,), default=1, check=_positive),
                  "frequency_threshold": ArgSpec((int,), default=0, check=_non_negative)},
                 "index in the train split's vocabulary; unseen values go to OOV buckets"),
        StepSpec("bucketize", frozenset({NUMERIC}), CATEGORICAL,
                 {"num_buckets": ArgSpec((int,), required=True, check=_at_least_two)},
                 "quantile buckets of the train split"),
        StepSpec("categorical_identity", frozenset({NUMERIC}), CATEGORICAL,
                 {"num_buckets": ArgSpec((int,), required=True, check=_positive)},
                 "an integer already in [0, num_buckets) used as a category (clipped)"),
    )
}


@dataclass(frozen=True)
class OutputSpec:
    kind: str  # NUMERIC or CATEGORICAL
    cardinality: int | None = None


def dense_kind(value_type: str) -> str:
    return STRING if value_type == "string" else NUMERIC


def output_spec(value_type: str, steps: list[tuple[str, dict]]) -> OutputSpec:
    """What a feature becomes after its steps: the model builder's only input about it."""
    kind = dense_kind(value_type)
    cardinality = None
    for name, args in steps:
        spec = STEPS[name]
        if spec.produces is None:
            continue
        kind = spec.produces
        if name == "vocabulary":
            cardinality = args["top_k"] + args.get("oov_buckets", STEPS[name].args["oov_buckets"].default)
        elif name in ("bucketize", "categorical_identity"):
            cardinality = args["num_buckets"]
    if kind == STRING:
        raise ValueError("a string feature must end in a categorical step (e.g. vocabulary)")
    return OutputSpec(kind, cardinality)


def check_steps(value_type: str, steps: list[tuple[str, dict]]) -> list[str]:
    """Return human-readable problems with a feature's step list (empty if fine)."""
    problems = []
    kind = RAW
    for i, (name, args) in enumerate(steps):
        where = f"steps[{i}] ({name})"
        spec = STEPS.get(name)
        if spec is None:
            problems.append(f"{where}: unknown step; known steps: {', '.join(sorted(STEPS))}")
            return problems
        if kind == RAW and RAW not in spec.accepts:
            kind = dense_kind(value_type)  # implicit constant imputation
        if kind not in spec.accepts:
            problems.append(f"{where}: expects a {' or '.join(sorted(spec.accepts))} column, "
                            f"but the column is {kind} at this point")
        for key, value in args.items():
            arg = spec.args.get(key)
            if arg is None:
                problems.append(f"{where}: unknown argument '{key}'; allowed: {', '.join(spec.args) or 'none'}")
            elif not isinstance(value, arg.types) or isinstance(value, bool):
                problems.append(f"{where}: '{key}' must be {'/'.join(t.__name__ for t in arg.types)}, got {value!r}")
            elif arg.check and (err := arg.check(value)):
                problems.append(f"{where}: '{key}' {err}")
        for key, arg in spec.args.items():
            if arg.required and key not in args:
                problems.append(f"{where}: missing required argument '{key}'")
        if name == "impute":
            strategy = args.get("strategy", "constant")
            if value_type == "string" and strategy in ("mean", "median"):
                problems.append(f"{where}: strategy '{strategy}' needs a numeric column")
            if strategy == "constant" and "value" in args:
                ok = isinstance(args["value"], str) == (value_type == "string")
                if not ok:
                    problems.append(f"{where}: constant {args['value']!r} does not match type {value_type}")
            kind = dense_kind(value_type)
        elif spec.produces is not None:
            kind = spec.produces
    if not problems and kind in (RAW, STRING) and value_type == "string":
        problems.append("a string feature must end in a categorical step (e.g. vocabulary)")
    return problems


# ----------------------------------------------------------- TF implementations
# TensorFlow is imported lazily so config validation stays light.

def to_dense(x: Any, value_type: str, fill: Any = None) -> Any:
    """Sparse [batch, 1] (missing = absent) -> dense [batch], filling missing with ``fill``."""
    import tensorflow as tf

    if fill is None:
        fill = "" if value_type == "string" else 0
    if isinstance(x, tf.SparseTensor):
        fill = tf.constant(fill, dtype=x.dtype)
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), fill)
    x = tf.reshape(x, [-1])
    return tf.cast(x, tf.float32) if value_type != "string" else x


def _impute(x: Any, value_type: str, strategy: str = "constant", value: Any = None) -> Any:
    import tensorflow as tf
    import tensorflow_transform as tft

    if strategy == "constant":
        return to_dense(x, value_type, value)
    values = tf.cast(x.values if isinstance(x, tf.SparseTensor) else tf.reshape(x, [-1]), tf.float32)
    if strategy == "mean":
        fitted = tft.mean(values)
    else:  # median: the 2-bucket quantile boundary of the present values
        fitted = tf.reshape(tft.quantiles(values, num_buckets=2, epsilon=0.001), [-1])[0]
    if isinstance(x, tf.SparseTensor):
        dense = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), [x.dense_shape[0], 1]),
            default_value=float("nan"))
        dense = tf.reshape(dense, [-1])
    else:
        dense = tf.reshape(tf.cast(x, tf.float32), [-1])
    return tf.where(tf.math.is_nan(dense), fitted, dense)


def apply_steps(x: Any, value_type: str, steps: list[tuple[str, dict]], name: str) -> Any:
    """Build the transform graph of one feature (called inside ``preprocessing_fn``)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    dense = False
    for name_, args in steps:
        if name_ == "impute":
            x = _impute(x, value_type, **args)
            dense = True
            continue
        if not dense:
            x, dense = to_dense(x, value_type), True
        if name_ == "z_score":
            x = tft.scale_to_z_score(x)
        elif name_ == "min_max":
            x = tft.scale_by_min_max(x, output_min=args.get("min", 0.0), output_max=args.get("max", 1.0))
        elif name_ == "vocabulary":
            if x.dtype != tf.string:
                x = tf.strings.as_string(tf.cast(x, tf.int64))
            x = tft.compute_and_apply_vocabulary(
                x, top_k=args["top_k"], num_oov_buckets=args.get("oov_buckets", 1),
                frequency_threshold=args.get("frequency_threshold", 0),
                vocab_filename=f"vocab_{name}")
        elif name_ == "bucketize":
            x = tft.bucketize(x, args["num_buckets"])
        elif name_ == "categorical_identity":
            x = tf.clip_by_value(tf.cast(x, tf.int64), 0, args["num_buckets"] - 1)
        else:  # pragma: no cover - check_steps rejects unknown names first
            raise ValueError(f"unknown step {name_}")
    if not dense:
        x = to_dense(x, value_type)
    return x
