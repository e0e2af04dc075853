"""Declarative preprocessing steps: the one registry that config validation,
``preprocessing_fn`` and the model builder all read.

A feature's steps run in order on a column that starts as the raw CSV value
(which may be missing). Each step declares which column kinds it accepts and
produces, so a config is checked before any TFX component starts. Every fitted
parameter (means, medians, quantiles, λ, vocabularies, bounds) is a
tf.Transform analyzer: computed on the analyze split (train) only and baked into
the transform graph that training, evaluation and serving share.

Column kinds:
  ``raw``          the value as parsed from the data, possibly missing
  ``numeric``      dense float32, one value per row
  ``string``       dense string, one value per row
  ``categorical``  dense int64 index in ``[0, cardinality)``
  ``vector``       dense float32 [size] (one-hot)
  ``tokens``       dense string [max_tokens] (text, features/text.py)
  ``sequence``     dense int64 token ids [max_tokens], 0 = padding (text, features/text.py)
  ``image``        dense float32 [height, width, channels] (features/image.py)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from features import image, text
from features.image import IMAGE

RAW, NUMERIC, STRING, CATEGORICAL, VECTOR = "raw", "numeric", "string", "categorical", "vector"
VALUE_TYPES = ("float", "int", "string")
VALUE_TYPES += (IMAGE,)
CYCLICAL_PARTS = {"hour": 24, "weekday": 7, "month": 12}
TOKENS, SEQUENCE = "tokens", "sequence"  # text features: features/text.py


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
    produces: str | None  # None: the dense kind of its input
    args: Mapping[str, ArgSpec] = field(default_factory=dict)
    doc: str = ""
    needs_positive: bool = False  # the data must be > 0 where this step applies
    needs_above_minus_one: bool = False


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _at_least_two(v: Any) -> str | None:
    return None if v >= 2 else "must be >= 2"


def _fraction(v: Any) -> str | None:
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _one_of(*options: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


IMPUTE_STRATEGIES = ("mean", "median", "most_frequent", "constant")
CLIP_METHODS = ("quantile", "iqr", "z_score")
ENCODINGS = ("index", "one_hot")
_NUM = frozenset({NUMERIC})

STEPS: dict[str, StepSpec] = {
    s.name: s
    for s in (
        StepSpec("impute", frozenset({RAW}), None, {
            "strategy": ArgSpec((str,), default="constant", check=_one_of(*IMPUTE_STRATEGIES)),
            "value": ArgSpec((int, float, str)),
            "indicator": ArgSpec((bool,), default=False),
        }, "fill missing values (mean/median/most frequent of train, or a constant); "
           "indicator: true adds <name>_missing"),
        StepSpec("clip", _NUM, NUMERIC, {
            "method": ArgSpec((str,), required=True, check=_one_of(*CLIP_METHODS)),
            "lower": ArgSpec((int, float), default=0.01, check=_fraction),
            "upper": ArgSpec((int, float), default=0.99, check=_fraction),
            "k": ArgSpec((int, float), default=1.5, check=_positive),
        }, "clip to train quantiles [lower, upper], IQR fences (k), or mean ± k·std"),
        StepSpec("log", _NUM, NUMERIC, {}, "natural log (data must be > 0)", needs_positive=True),
        StepSpec("log1p", _NUM, NUMERIC, {}, "log(1 + x) (data must be > -1)", needs_above_minus_one=True),
        StepSpec("box_cox", _NUM, NUMERIC, {}, "Box-Cox with λ by maximum likelihood on train (data > 0)",
                 needs_positive=True),
        StepSpec("yeo_johnson", _NUM, NUMERIC, {}, "Yeo-Johnson with λ by maximum likelihood on train"),
        StepSpec("z_score", _NUM, NUMERIC, {}, "(x - mean) / std of train"),
        StepSpec("min_max", _NUM, NUMERIC, {"min": ArgSpec((int, float), default=0.0),
                                           "max": ArgSpec((int, float), default=1.0)},
                 "scale train's [min, max] to the given range"),
        StepSpec("robust", _NUM, NUMERIC, {}, "(x - median) / IQR of train"),
        StepSpec("max_abs", _NUM, NUMERIC, {}, "x / max|x| of train"),
        StepSpec("vocabulary", frozenset({STRING, NUMERIC, TOKENS}), CATEGORICAL, {
            "top_k": ArgSpec((int,), required=True, check=_positive),
            "oov_buckets": ArgSpec((int,), default=1, check=_positive),
            "frequency_threshold": ArgSpec((int,), default=0, check=_non_negative),
            "encoding": ArgSpec((str,), default="index", check=_one_of(*ENCODINGS)),
        }, "train vocabulary: index (label/ordinal encoding) or one_hot; unseen values go to OOV buckets"),
        StepSpec("hash", frozenset({STRING, NUMERIC}), CATEGORICAL,
                 {"buckets": ArgSpec((int,), required=True, check=_at_least_two)},
                 "hash into buckets (high-cardinality columns; nothing fitted)"),
        StepSpec("bucketize", frozenset({RAW, NUMERIC}), CATEGORICAL,
                 {"num_buckets": ArgSpec((int,), required=True, check=_at_least_two)},
                 "quantile buckets of train; on a raw column, missing values get their own bucket"),
        StepSpec("categorical_identity", _NUM, CATEGORICAL,
                 {"num_buckets": ArgSpec((int,), required=True, check=_positive)},
                 "an integer already in [0, num_buckets) used as a category (clipped)"),
        StepSpec("tokenize", frozenset({STRING}), TOKENS,
                 {"max_tokens": ArgSpec((int,), required=True, check=_positive)},
                 "text -> ASCII-lower-cased tokens split on whitespace/punctuation, first max_tokens, "
                 "padded with \"\" (features/text.py); then a vocabulary gives token ids"),
        # Image features (type: image; TF side in features/image.py).
        StepSpec("decode_image", frozenset({RAW}), IMAGE, {
            "height": ArgSpec((int,), required=True, check=_positive),
            "width": ArgSpec((int,), required=True, check=_positive),
            "channels": ArgSpec((int,), default=1, check=lambda v: None if v in (1, 3) else "must be 1 or 3"),
            "resize": ArgSpec((str,), default="bilinear", check=_one_of("bilinear", "nearest", "area")),
        }, "decode PNG/JPEG bytes to channels (1: greyscale), resize to height x width, scale to [0, 1]"),
        StepSpec("per_channel_standardize", frozenset({IMAGE}), IMAGE, {},
                 "(x - mean) / std per channel, over every train pixel"),
    )
}


@dataclass(frozen=True)
class OutputSpec:
    """One transformed column the model receives."""

    name: str
    kind: str  # NUMERIC, CATEGORICAL, VECTOR, SEQUENCE or IMAGE
    size: int = 1  # cardinality: CATEGORICAL, SEQUENCE (ids); length: VECTOR; pixels x channels: IMAGE
    shape: tuple[int, ...] = ()  # SEQUENCE: (max_tokens,); IMAGE: (height, width, channels)

    @property
    def length(self) -> int:
        """SEQUENCE: ids per row (max_tokens)."""
        return self.shape[0] if self.kind == SEQUENCE else 0


@dataclass(frozen=True)
class FeatureDef:
    """A feature as module files see it (built from the config's JSON form)."""

    name: str
    type: str
    steps: tuple[tuple[str, dict], ...] = ()
    ratio: tuple[str, str] | None = None  # numerator, denominator columns
    cross: tuple[str, ...] | None = None  # columns joined into one string
    cyclical: dict | None = None  # {"column": ts, "parts": [...]}

    @classmethod
    def from_json(cls, d: dict) -> FeatureDef:
        return cls(d["name"], d["type"], tuple((s, dict(a)) for s, a in d.get("steps", [])),
                   tuple(d["ratio"]) if d.get("ratio") else None,
                   tuple(d["cross"]) if d.get("cross") else None, d.get("cyclical"))

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "steps": [[s, a] for s, a in self.steps],
                "ratio": list(self.ratio) if self.ratio else None,
                "cross": list(self.cross) if self.cross else None, "cyclical": self.cyclical}

    @property
    def source_columns(self) -> tuple[str, ...]:
        if self.ratio:
            return self.ratio
        if self.cross:
            return self.cross
        if self.cyclical:
            return (self.cyclical["column"],)
        return (self.name,)

    @property
    def transformed_name(self) -> str:
        return f"{self.name}_xf"

    def outputs(self) -> list[OutputSpec]:
        if self.cyclical:
            return [OutputSpec(f"{self.name}_{part}_{fn}_xf", NUMERIC)
                    for part in self.cyclical["parts"] for fn in ("sin", "cos")]
        if self.type == IMAGE:
            shape = image.output_shape(self.steps)
            return [OutputSpec(self.transformed_name, IMAGE, shape[0] * shape[1] * shape[2], shape)]
        kind, size, extra = dense_kind(self.type), 1, []
        raw = True
        length = 0
        for name, args in self.steps:
            if name == "tokenize":  # text: then vocabulary ids, 0 = padding (features/text.py)
                length = args["max_tokens"]
            if name == "vocabulary" and length:
                kind, size = SEQUENCE, args["top_k"] + args.get("oov_buckets", 1) + 1
                continue
            if name == "impute" and args.get("indicator"):
                extra.append(OutputSpec(f"{self.name}_missing_xf", NUMERIC))
            if name == "vocabulary":
                size = args["top_k"] + args.get("oov_buckets", 1)
                kind = VECTOR if args.get("encoding") == "one_hot" else CATEGORICAL
            elif name == "hash":
                kind, size = CATEGORICAL, args["buckets"]
            elif name == "bucketize":
                kind, size = CATEGORICAL, args["num_buckets"] + (1 if raw else 0)
            elif name == "categorical_identity":
                kind, size = CATEGORICAL, args["num_buckets"]
            raw = False
        if kind == STRING:
            raise ValueError(f"{self.name}: a string feature must end in a categorical step")
        return [OutputSpec(self.transformed_name, kind, size, (length,) if kind == SEQUENCE else ()), *extra]


def dense_kind(value_type: str) -> str:
    return STRING if value_type == "string" else NUMERIC


def check_steps(value_type: str, steps: list[tuple[str, dict]]) -> list[str]:
    """Human-readable problems with a feature's step list (empty if fine)."""
    problems = []
    if value_type == IMAGE or any(s in ("decode_image", "per_channel_standardize") for s, _ in steps):
        if image_problems := image.check(value_type, steps):
            return image_problems
    kind = RAW
    for i, (name, args) in enumerate(steps):
        where = f"steps[{i}] ({name})"
        spec = STEPS.get(name)
        if spec is None:
            problems.append(f"{where}: unknown step; known steps: {', '.join(sorted(STEPS))}")
            return problems
        if name == "impute" and i != 0:
            problems.append(f"{where}: impute must be the first step")
            continue
        if kind == RAW and RAW not in spec.accepts:
            kind = dense_kind(value_type)  # implicit constant imputation (0 or "")
        if name == "vocabulary" and kind == TOKENS:  # text: token ids (features/text.py)
            problems += [f"{where}: {p}" for p in text.vocabulary_problems(args)]
        if kind not in spec.accepts:
            problems.append(f"{where}: expects a {' or '.join(sorted(spec.accepts - {RAW}))} column, "
                            f"but the column is {kind} at this point")
        for key, value in args.items():
            arg = spec.args.get(key)
            if arg is None:
                problems.append(f"{where}: unknown argument '{key}'; allowed: {', '.join(spec.args) or 'none'}")
            elif not isinstance(value, arg.types) or (isinstance(value, bool) and bool not in arg.types):
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
            if "value" in args and strategy != "constant":
                problems.append(f"{where}: 'value' goes with strategy 'constant'")
            if "value" in args and isinstance(args["value"], str) != (value_type == "string"):
                problems.append(f"{where}: constant {args['value']!r} does not match type {value_type}")
            kind = dense_kind(value_type)
        elif name == "clip" and args.get("method") == "quantile" and args.get("lower", 0.01) >= args.get("upper", 0.99):
            problems.append(f"{where}: 'lower' must be < 'upper'")
        elif name == "min_max" and args.get("min", 0.0) >= args.get("max", 1.0):
            problems.append(f"{where}: 'min' must be < 'max'")
        if (spec.needs_positive or spec.needs_above_minus_one) and any(
                s not in ("impute", "clip") for s, _ in steps[:i]):
            problems.append(f"{where}: needs the column's own values; put it before "
                            f"{', '.join(s for s, _ in steps[:i] if s not in ('impute', 'clip'))}")
        if spec.produces is not None:
            kind = SEQUENCE if (name == "vocabulary" and kind == TOKENS) else spec.produces
    if not problems and kind == TOKENS:
        problems.append("tokenized text must end in a vocabulary step (token ids)")
    if not problems and kind in (RAW, STRING) and value_type == "string":
        problems.append("a string feature must end in a categorical step (e.g. vocabulary or hash)")
    return problems


def domain_requirement(steps: list[tuple[str, dict]]) -> tuple[str, float] | None:
    """('> 0' | '> -1', bound) if some step needs the raw values in a domain (checked on the data)."""
    for name, _ in steps:
        spec = STEPS[name]
        if spec.needs_positive:
            return (name, 0.0)
    for name, _ in steps:
        if STEPS[name].needs_above_minus_one:
            return (name, -1.0)
    return None


# ====================================================== TF implementations ==
# TensorFlow is imported lazily so config validation stays light.

# Every fitted parameter passes through an Identity op named fitted__<feature>__<step>__<key>, so
# the on-device exporter (ondevice/fitted.py) can read the values Transform baked
# into the transform graph instead of re-deriving them (one fit, no skew).
FITTED_PREFIX = "fitted__"
Fit = Callable[[str, Any], Any]


def fitted_name(feature: str, step: int, key: str) -> str:
    return f"{FITTED_PREFIX}{feature}__{step}__{key}"


def fitted_recorder(feature: str, step: int) -> Fit:
    def fit(key: str, tensor: Any) -> Any:
        import tensorflow as tf

        return tf.identity(tensor, name=fitted_name(feature, step, key))
    return fit


def _no_fit(key: str, tensor: Any) -> Any:
    return tensor


class Raw:
    """A raw column as dense values plus a presence mask (missing = not present)."""

    def __init__(self, values: Any, present: Any):
        self.values, self.present = values, present


def to_raw(x: Any, value_type: str, keep_dtype: bool = False) -> Raw:
    """Sparse [batch, 1] (missing = absent) or dense [batch] -> Raw; numbers become float32
    unless ``keep_dtype`` (timestamps need int64: float32 is 128 s coarse at 1.4e9)."""
    import tensorflow as tf

    is_string = value_type == "string"
    if isinstance(x, tf.SparseTensor):
        n = x.dense_shape[0]
        sp = tf.SparseTensor(x.indices, x.values, [n, 1])
        fill = tf.constant("" if is_string else 0, dtype=x.dtype)
        values = tf.reshape(tf.sparse.to_dense(sp, fill), [-1])
        present = tf.reshape(tf.sparse.to_dense(
            tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.bool), [n, 1]), False), [-1])
    else:
        values = tf.reshape(x, [-1])
        present = (tf.strings.length(values) > 0) if is_string else ~tf.math.is_nan(tf.cast(values, tf.float32))
    if not is_string and not keep_dtype:
        values = tf.cast(values, tf.float32)
    return Raw(values, present)


def _filled(raw: Raw, fill: Any) -> Any:
    import tensorflow as tf

    return tf.where(raw.present, raw.values, tf.cast(fill, raw.values.dtype))


def _most_frequent(values: Any, name: str) -> Any:
    """The train split's most frequent value (ties: the larger token, TFT's order)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    tokens = values if values.dtype == tf.string else tf.strings.as_string(values)
    path = tft.vocabulary(tokens, top_k=1, vocab_filename=f"most_frequent_{name}")
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(path, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                                      tf.string, tf.lookup.TextFileIndex.WHOLE_LINE), "")
    top = table.lookup(tf.constant(0, tf.int64))
    return top if values.dtype == tf.string else tf.strings.to_number(top, tf.float32)


class _Imputed:
    """An imputed numeric column that remembers its present values and the fill, so that a
    following z_score / min_max is fitted in the same analysis pass (exactly as on the
    imputed column) instead of a second pass over the data."""

    def __init__(self, raw: Raw, fill: Any):
        import tensorflow as tf

        self.raw, self.fill = raw, fill
        self.present_values = tf.boolean_mask(raw.values, raw.present)
        self.dense = _filled(raw, fill)


def _impute(raw: Raw, value_type: str, name: str, strategy: str = "constant", value: Any = None,
            indicator: bool = False, fit: Fit = _no_fit) -> tuple[Any, list[Any]]:
    import tensorflow as tf
    import tensorflow_transform as tft

    extra = [tf.cast(~raw.present, tf.float32)] if indicator else []
    if strategy == "constant":
        fill = value if value is not None else ("" if value_type == "string" else 0.0)
        fill = tf.constant(fill, raw.values.dtype)
    else:
        present = tf.boolean_mask(raw.values, raw.present)
        if strategy == "mean":  # summed in float64: float32 partial sums depend on Beam's combine order
            fill = fit("fill", tf.cast(tft.mean(tf.cast(present, tf.float64)), present.dtype))
        elif strategy == "median":  # tf.Transform's quantiles are approximate (rank error <= epsilon)
            fill = fit("fill", tf.reshape(tft.quantiles(present, num_buckets=2, epsilon=0.001), [-1])[0])
        else:  # read back from its vocabulary file (a table lookup, not a constant)
            fill = _most_frequent(present, name)
    if value_type == "string":
        return _filled(raw, fill), extra
    return _Imputed(raw, fill), extra


def _dense(x: Any) -> Any:
    return x.dense if isinstance(x, _Imputed) else x


def _z_score(x: Any, fit: Fit = _no_fit) -> Any:
    import tensorflow as tf
    import tensorflow_transform as tft

    if not isinstance(x, _Imputed):  # as tft.scale_to_z_score, with the moments named
        mean, std = fit("mean", tft.mean(x)), fit("std", tf.sqrt(tft.var(x)))
        centered = x - mean
        return tf.where(std > 0, centered / tf.where(std > 0, std, tf.ones_like(std)), centered)
    # Mean and population variance of the imputed column from the present values' moments
    # (law of total variance): one analysis pass, same numbers as fitting after imputation.
    v = tf.cast(x.present_values, tf.float64)
    n_present = tf.cast(tft.size(v), tf.float64)
    n = tf.cast(tft.size(tf.zeros_like(x.raw.values)), tf.float64)
    mean_p, var_p = tft.mean(v), tft.var(v)
    fill = tf.cast(x.fill, tf.float64)
    mean = (n_present * mean_p + (n - n_present) * fill) / n
    var = (n_present * (var_p + (mean_p - mean) ** 2) + (n - n_present) * (fill - mean) ** 2) / n
    mean, std = fit("mean", mean), fit("std", tf.sqrt(var))
    centered = tf.cast(x.dense, tf.float64) - mean
    return tf.cast(tf.where(std > 0, centered / tf.where(std > 0, std, tf.ones_like(std)), centered), tf.float32)


def _min_max(x: Any, lo: float, hi: float, fit: Fit = _no_fit) -> Any:
    import tensorflow as tf
    import tensorflow_transform as tft

    if isinstance(x, _Imputed):
        any_missing = tft.size(tf.zeros_like(x.raw.values)) > tft.size(x.present_values)
        mn, mx = tft.min(x.present_values), tft.max(x.present_values)
        mn = tf.where(any_missing, tf.minimum(mn, x.fill), mn)
        mx = tf.where(any_missing, tf.maximum(mx, x.fill), mx)
        dense = x.dense
    else:
        mn, mx, dense = tft.min(x), tft.max(x), x
    mn, mx = fit("min", mn), fit("max", mx)
    span = mx - mn
    scaled = tf.where(span > 0, (dense - mn) / tf.where(span > 0, span, 1.0), tf.zeros_like(dense))
    return scaled * (hi - lo) + lo


def _quartiles(x: Any) -> tuple[Any, Any, Any]:
    import tensorflow as tf
    import tensorflow_transform as tft

    q = tf.reshape(tft.quantiles(x, num_buckets=4, epsilon=0.001), [-1])
    return q[0], q[1], q[2]


def _clip(x: Any, method: str, lower: float = 0.01, upper: float = 0.99, k: float = 1.5,
          fit: Fit = _no_fit) -> Any:
    import tensorflow as tf
    import tensorflow_transform as tft

    if method == "quantile":
        # Quantile boundaries at `lower` and `upper` from a fine grid (approximate, rank error <= epsilon).
        grid = tf.reshape(tft.quantiles(x, num_buckets=1000, epsilon=0.0005), [-1])
        lo = grid[max(0, round(lower * 1000) - 1)] if lower > 0 else tft.min(x)
        hi = grid[min(998, round(upper * 1000) - 1)] if upper < 1 else tft.max(x)
    elif method == "iqr":
        q1, _, q3 = _quartiles(x)
        lo, hi = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    else:
        mean, std = tft.mean(x), tf.sqrt(tft.var(x))
        lo, hi = mean - k * std, mean + k * std
    return tf.clip_by_value(x, fit("lower", lo), fit("upper", hi))


# ------------------------------------------------------------ power transforms
# tf.Transform has no power transform; this analyzer finds λ by maximum likelihood in one
# pass: the log-likelihood of every λ on a fine grid from per-λ sums (Σy, Σy², one tft.sum
# over a [batch, grid] tensor), then a parabola through the best grid point and its
# neighbours. λ is searched in [-5, 5] (clamped there).
LAMBDA_GRID = (-5.0, 5.0, 2001)  # step 0.005


def _power(x64: Any, lam: Any, kind: str) -> Any:
    import tensorflow as tf

    def bc(v: Any, lmb: Any) -> Any:  # ((1 + v)^λ - 1) / λ, log1p(v) at λ = 0
        lg = tf.math.log1p(v)
        safe = tf.where(tf.abs(lmb) < 1e-12, tf.ones_like(lmb), lmb)
        return tf.where(tf.abs(lmb) < 1e-12, lg, tf.math.expm1(lmb * lg) / safe)

    if kind == "box_cox":
        return bc(x64 - 1.0, lam)
    pos = x64 >= 0
    zero = tf.zeros_like(x64)
    return tf.where(pos, bc(tf.where(pos, x64, zero), lam), -bc(tf.where(pos, zero, -x64), 2.0 - lam))


def power_lambda(x: Any, kind: str) -> Any:
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    x64 = tf.cast(tf.reshape(x, [-1]), tf.float64)
    grid = tf.constant(np.linspace(*LAMBDA_GRID), tf.float64)
    y = _power(x64[:, None], grid[None, :], kind)  # [batch, grid]
    s1 = tft.sum(y, reduce_instance_dims=False)
    s2 = tft.sum(y * y, reduce_instance_dims=False)
    jac = tf.math.log(x64) if kind == "box_cox" else tf.sign(x64) * tf.math.log1p(tf.abs(x64))
    s_jac = tft.sum(jac)
    n = tf.cast(tft.size(x64), tf.float64)
    mean = s1 / n
    var = tf.maximum(s2 / n - mean * mean, 1e-300)
    llf = (grid - 1.0) * s_jac - n / 2.0 * tf.math.log(var)
    i = tf.clip_by_value(tf.argmax(llf), 1, LAMBDA_GRID[2] - 2)
    f0, f1, f2 = llf[i - 1], llf[i], llf[i + 1]
    h = (LAMBDA_GRID[1] - LAMBDA_GRID[0]) / (LAMBDA_GRID[2] - 1)
    denom = f0 - 2.0 * f1 + f2
    offset = tf.where(denom < 0, 0.5 * h * (f0 - f2) / tf.where(denom < 0, denom, -tf.ones_like(denom)),
                      tf.zeros_like(denom))
    return tf.clip_by_value(grid[i] + tf.clip_by_value(offset, -h, h), LAMBDA_GRID[0], LAMBDA_GRID[1])


def _power_transform(x: Any, kind: str, fit: Fit = _no_fit) -> Any:
    import tensorflow as tf

    lam = fit("lambda", power_lambda(x, kind))
    return tf.cast(_power(tf.cast(x, tf.float64), lam, kind), tf.float32)


# ----------------------------------------------------------------- categorical
def as_tokens(x: Any) -> Any:
    import tensorflow as tf

    if x.dtype == tf.string:
        return x
    # Integral numbers print without a fraction ("7", not "7.000000").
    as_int = tf.strings.as_string(tf.cast(x, tf.int64))
    return tf.where(tf.equal(x, tf.round(x)), as_int, tf.strings.as_string(x))


def apply_steps(x: Any, value_type: str, steps: list[tuple[str, dict]], name: str) -> dict[str, Any]:
    """Build one feature's transform graph; returns {output name: tensor} (inside preprocessing_fn)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    raw = x if isinstance(x, Raw) else to_raw(x, "string" if value_type == IMAGE else value_type)
    if value_type == IMAGE:
        return image.apply_steps(raw, steps, name, fitted_recorder)
    col: Any = raw
    extra: list[Any] = []
    tokenized = False
    for i, (step, args) in enumerate(steps):
        fit = fitted_recorder(name, i)
        if step == "impute":
            col, extra = _impute(raw, value_type, name, **args, fit=fit)
            continue
        if step == "bucketize" and isinstance(col, Raw):
            # Quantiles of the present values; missing values get bucket num_buckets.
            present = tf.boolean_mask(col.values, col.present)
            boundaries = fit("boundaries", tft.quantiles(present, args["num_buckets"], epsilon=0.001))
            idx = tft.apply_buckets(col.values, boundaries)
            col = tf.where(col.present, idx, tf.cast(args["num_buckets"], tf.int64))
            continue
        if isinstance(col, Raw):
            col = _filled(col, "" if value_type == "string" else 0.0)
        if step == "tokenize" or (step == "vocabulary" and tokenized):  # text: features/text.py
            col, tokenized = text.apply_step(col, step, args, name), True
            continue
        if step == "z_score":
            col = _z_score(col, fit)
        elif step == "min_max":
            col = _min_max(col, float(args.get("min", 0.0)), float(args.get("max", 1.0)), fit)
        else:
            col = _dense(col)
            if step == "clip":
                col = _clip(col, **args, fit=fit)
            elif step == "log":
                col = tf.math.log(col)
            elif step == "log1p":
                col = tf.math.log1p(col)
            elif step in ("box_cox", "yeo_johnson"):
                col = _power_transform(col, step, fit)
            elif step == "robust":
                q1, median, q3 = _quartiles(col)
                median, iqr = fit("median", median), fit("iqr", q3 - q1)
                col = (col - median) / tf.where(iqr > 0, iqr, 1.0)
            elif step == "max_abs":
                m = fit("max_abs", tft.max(tf.abs(col)))
                col = col / tf.where(m > 0, m, 1.0)
            elif step == "vocabulary":
                size = args["top_k"] + args.get("oov_buckets", 1)
                col = tft.compute_and_apply_vocabulary(
                    as_tokens(col), top_k=args["top_k"], num_oov_buckets=args.get("oov_buckets", 1),
                    frequency_threshold=args.get("frequency_threshold") or None, vocab_filename=f"vocab_{name}")
                if args.get("encoding") == "one_hot":
                    col = tf.one_hot(col, size, dtype=tf.float32)
            elif step == "hash":
                col = tft.hash_strings(as_tokens(col), args["buckets"])
            elif step == "bucketize":  # tft.bucketize, with the boundaries named
                boundaries = fit("boundaries", tft.quantiles(col, args["num_buckets"], epsilon=0.001))
                col = tft.apply_buckets(col, boundaries)
            elif step == "categorical_identity":
                col = tf.clip_by_value(tf.cast(col, tf.int64), 0, args["num_buckets"] - 1)
            else:  # pragma: no cover - check_steps rejects unknown names first
                raise ValueError(f"unknown step {step}")
    if isinstance(col, Raw):
        col = _filled(col, "" if value_type == "string" else 0.0)
    col = _dense(col)
    out = {f"{name}_xf": col}
    if extra:
        out[f"{name}_missing_xf"] = extra[0]
    return out


# ------------------------------------------------------------ derived columns
def derived_raw(feature: FeatureDef, inputs: dict[str, Any], types: dict[str, str]) -> Raw:
    """The raw column of a ratio or cross feature, computed from its source columns."""
    import tensorflow as tf

    if feature.ratio:
        num, den = (to_raw(inputs[c], "float") for c in feature.ratio)
        ok = num.present & den.present & tf.not_equal(den.values, 0.0)
        return Raw(tf.where(ok, num.values / tf.where(ok, den.values, 1.0), 0.0), ok)
    parts = [to_raw(inputs[c], types.get(c, "string")) for c in feature.cross]
    tokens = [p.values if p.values.dtype == tf.string else as_tokens(p.values) for p in parts]
    present = parts[0].present
    for p in parts[1:]:
        present = present & p.present
    return Raw(tf.strings.join(tokens, separator="_x_"), present)


def civil_month(days: Any) -> Any:
    """Month (1-12) of a count of days since 1970-01-01 (H. Hinnant's civil_from_days); any
    integer dtype (the on-device graph uses int32)."""
    import tensorflow as tf

    z = days + 719468
    era = tf.math.floordiv(z, 146097)
    doe = z - era * 146097
    yoe = tf.math.floordiv(doe - tf.math.floordiv(doe, 1460) + tf.math.floordiv(doe, 36524)
                           - tf.math.floordiv(doe, 146096), 365)
    doy = doe - (365 * yoe + tf.math.floordiv(yoe, 4) - tf.math.floordiv(yoe, 100))
    mp = tf.math.floordiv(5 * doy + 2, 153)
    return tf.where(mp < 10, mp + 3, mp - 9)


def cyclical_features(feature: FeatureDef, inputs: dict[str, Any]) -> dict[str, Any]:
    """sin/cos of hour of day, day of week and month of a Unix timestamp (seconds, read as UTC);
    a missing timestamp maps to (0, 0), the centre of the circle."""
    import math

    import tensorflow as tf

    raw = to_raw(inputs[feature.cyclical["column"]], "int", keep_dtype=True)
    seconds = tf.where(raw.present, raw.values, tf.zeros_like(raw.values))
    if not seconds.dtype.is_integer:
        seconds = tf.cast(tf.cast(seconds, tf.float64), tf.int64)
    days = tf.math.floordiv(seconds, 86400)
    values = {
        "hour": tf.cast(tf.math.floormod(seconds, 86400), tf.float64) / 3600.0,  # fractional hour
        "weekday": tf.cast(tf.math.floormod(days + 3, 7), tf.float64),  # Monday = 0
        "month": tf.cast(civil_month(days) - 1, tf.float64),
    }
    out = {}
    for part in feature.cyclical["parts"]:
        angle = 2.0 * math.pi * values[part] / CYCLICAL_PARTS[part]
        for fn, op in (("sin", tf.sin), ("cos", tf.cos)):
            value = tf.where(raw.present, op(angle), tf.zeros_like(angle))
            out[f"{feature.name}_{part}_{fn}_xf"] = tf.cast(value, tf.float32)
    return out


def active_features(custom_config: dict, available: set[str] | dict) -> list[FeatureDef]:
    """Configured features whose source columns are all available."""
    features = [FeatureDef.from_json(f) for f in custom_config["features"]]
    return [f for f in features if all(c in available for c in f.source_columns)]
