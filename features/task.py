"""The label and the task: the one definition that config, Transform, Trainer, Tuner, Evaluator,
FeatureSelector, the model variants and the converters share.

Three tasks (config ``label.task``):

* ``binary_classification``: a 0/1 label, from a numeric threshold rule (``positive_when``) or
  from a class value of a string or integer column (``positive_class``; the rest negative).
  The model outputs P(positive) [batch, 1].
* ``multiclass_classification``: a string or integer column; the class vocabulary is fitted by
  Transform on train only (vocabulary file ``label_classes``, most frequent class first) and
  the label is its index. The model outputs class probabilities [batch, K] (softmax).
* ``regression``: a numeric column, optionally transformed for training (``log1p`` or
  ``z_score`` fitted on train); the served model inverts it, so it answers in the target's units.

A class value is compared as text: strings as they are, integral numbers without a fraction
("7", not "7.0"), as ``features.feature_steps`` tokenizes numbers for vocabularies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BINARY, MULTICLASS, REGRESSION = "binary_classification", "multiclass_classification", "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)
TARGET_TRANSFORMS = ("none", "log1p", "z_score")
CLASS_VOCABULARY = "label_classes"  # Transform's vocabulary file of the multiclass label

# Serving outputs (TF Serving's names, so :classify and :regress work on the default signature).
PROBABILITIES, CLASSES, SCORES, OUTPUTS = "probabilities", "classes", "scores", "outputs"


@dataclass(frozen=True)
class Label:
    name: str  # the transformed label's name (Transform output, TFMA label_key)
    column: str  # the raw column it comes from
    task: str = BINARY
    # binary, threshold rule: positive when column > factor * greater_than_column, or column > greater_than
    greater_than_column: str | None = None
    factor: float = 1.0
    greater_than: float | None = None
    # binary, class rule: positive when the column's value is this class
    positive_class: str | None = None
    # regression: how the target is transformed for training (inverted inside the served model)
    transform: str = "none"

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Every raw column the label is computed from."""
        return (self.column,) + ((self.greater_than_column,) if self.greater_than_column else ())

    @property
    def threshold_rule(self) -> bool:
        return self.task == BINARY and self.positive_class is None

    @property
    def drops_missing(self) -> bool:
        """Rows missing the label are deleted (by DataCleaner) before Transform. The threshold
        rule instead counts a missing input as negative, as upstream TFX's taxi example does."""
        return not self.threshold_rule

    @property
    def classification(self) -> bool:
        return self.task != REGRESSION

    @property
    def prediction_key(self) -> str:
        """The served model's output TFMA and the converters compare."""
        return OUTPUTS if self.task == REGRESSION else PROBABILITIES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Label:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


def label_of(custom_config: dict[str, Any]) -> Label:
    return Label.from_json(custom_config["label"])


# ------------------------------------------------------------------- class tokens (numpy side) --
def token(value: Any) -> str:
    """A raw value as a class token, as ``feature_steps.as_tokens`` makes it in the graph."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    x = float(value)
    return str(int(x)) if x == round(x) else f"{x:f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def label_values(values: Sequence[Any], label: Label, other: Sequence[Any] | None = None) -> np.ndarray:
    """The label of plain rows (``None`` = missing), as Transform computes it: 0/1 for binary
    (int64), class tokens (object) for multiclass, float64 for regression (untransformed).
    ``other`` is the threshold rule's second column. For the threshold rule a missing input is
    negative; for the other rules such rows are dropped before (see ``Label.drops_missing``)."""
    if label.threshold_rule:
        value = np.array([np.nan if _missing(v) else v for v in values], dtype=np.float32)
        if label.greater_than_column:
            assert other is not None
            bound = np.array([np.nan if _missing(v) else v for v in other], dtype=np.float32)
            positive = value > bound * np.float32(label.factor)
        else:
            positive = value > np.float32(label.greater_than)
        return positive.astype(np.int64)  # NaN compares False: missing -> 0
    if label.task == REGRESSION:
        return np.array([np.nan if _missing(v) else float(v) for v in values], dtype=np.float64)
    tokens = np.array(["" if _missing(v) else token(v) for v in values], dtype=object)
    if label.task == BINARY:
        return (tokens == label.positive_class).astype(np.int64)
    return tokens


# ------------------------------------------------------------------------ metrics and thresholds --
@dataclass(frozen=True)
class Metric:
    class_name: str  # TFMA metric class (or a Keras metric TFMA computes)
    higher_is_better: bool = True
    per_class: bool = False  # multiclass: one-vs-rest per class, plus the macro average


# config name -> TFMA metric, per task. Thresholds may name any metric of the config's task.
METRICS: dict[str, dict[str, Metric]] = {
    BINARY: {
        "example_count": Metric("ExampleCount"),
        "binary_crossentropy": Metric("BinaryCrossentropy", higher_is_better=False),
        "binary_accuracy": Metric("BinaryAccuracy"),
        "precision": Metric("Precision"),
        "recall": Metric("Recall"),
        "f1_score": Metric("F1Score"),
        "auc": Metric("AUC"),
    },
    MULTICLASS: {
        "example_count": Metric("ExampleCount"),
        "accuracy": Metric("SparseCategoricalAccuracy"),
        "crossentropy": Metric("SparseCategoricalCrossentropy", higher_is_better=False),
        "precision": Metric("Precision", per_class=True),
        "recall": Metric("Recall", per_class=True),
        "f1_score": Metric("F1Score", per_class=True),
        "auc": Metric("AUC", per_class=True),  # one-vs-rest
    },
    REGRESSION: {
        "example_count": Metric("ExampleCount"),
        "mse": Metric("MeanSquaredError", higher_is_better=False),
        "rmse": Metric("RootMeanSquaredError", higher_is_better=False),
        "mae": Metric("MeanAbsoluteError", higher_is_better=False),
        "mape": Metric("MeanAbsolutePercentageError", higher_is_better=False),
        "r2": Metric("SquaredPearsonCorrelation"),  # squared correlation of prediction and target
    },
}
# The metric a task is judged by: default variant threshold, the summary's headline; and its
# Keras validation metric with the better direction (early stopping, the Tuner's objective).
PRIMARY = {BINARY: "auc", MULTICLASS: "accuracy", REGRESSION: "rmse"}
MONITOR = {BINARY: ("val_auc", "max"), MULTICLASS: ("val_accuracy", "max"), REGRESSION: ("val_rmse", "min")}


def metric_direction(task: str, metric: str) -> bool:
    """True when higher is better."""
    return METRICS[task][metric].higher_is_better


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """{metric: value} of one slice's TFMA metrics: the overall sub-key (no class); a multiclass
    per-class value is ``<metric>@<class id>`` and the macro average ``<metric>`` itself."""
    out = {}
    for sub_key, values in (kv for output in metrics.values() for kv in output.items()):
        for name, value in values.items():
            if "doubleValue" in value:
                name = name.split("\n_")[-1]  # TFMA prefixes an aggregate: "macro_average: true\n_auc"
                class_id = sub_key.removeprefix("classId:") if sub_key.startswith("classId:") else None
                out[name if class_id is None else f"{name}@{class_id}"] = float(value["doubleValue"])
    return out


# ------------------------------------------------------------------------------ the model head --
@dataclass(frozen=True)
class Head:
    task: str
    units: int
    activation: str | None
    loss: str
    monitor: str  # Keras validation metric for early stopping and the Tuner objective
    monitor_mode: str  # max | min


def head(label: Label, num_classes: int | None = None) -> Head:
    monitor = MONITOR[label.task]
    if label.task == BINARY:
        return Head(BINARY, 1, "sigmoid", "binary_crossentropy", *monitor)
    if label.task == MULTICLASS:
        if not num_classes or num_classes < 2:
            raise ValueError(f"label '{label.column}': multiclass needs at least 2 classes in train, "
                             f"found {num_classes or 0}")
        return Head(MULTICLASS, num_classes, "softmax", "sparse_categorical_crossentropy", *monitor)
    return Head(REGRESSION, 1, None, "mse", *monitor)


def keras_metrics(task: str, keras: Any) -> list[Any]:
    """The training metrics (tf_keras or Keras 3: both have these classes)."""
    m = keras.metrics
    if task == BINARY:
        return [m.BinaryAccuracy(name="binary_accuracy"), m.AUC(name="auc")]
    if task == MULTICLASS:
        return [m.SparseCategoricalAccuracy(name="accuracy")]
    return [m.RootMeanSquaredError(name="rmse"), m.MeanAbsoluteError(name="mae")]


def num_classes(label: Label, tf_transform_output: Any) -> int | None:
    """K for multiclass (the size of Transform's class vocabulary), None otherwise."""
    if label.task != MULTICLASS:
        return None
    return int(tf_transform_output.vocabulary_size_by_name(CLASS_VOCABULARY))


def class_names(label: Label, tf_transform_output: Any) -> list[str]:
    """Names of the model's output classes in output order."""
    if label.task == MULTICLASS:
        return [v.decode() if isinstance(v, bytes) else str(v)
                for v in tf_transform_output.vocabulary_by_name(CLASS_VOCABULARY)]
    if label.task == BINARY:
        positive = label.positive_class if label.positive_class is not None else label.name
        return [f"not {positive}", positive]
    return []


# --------------------------------------------------------------------- parity of converted models --
# How a converted model (TFLite, TF.js) is compared with the SavedModel on the same raw rows.
# binary: P(positive), decisions at p > 0.5 (as TFMA's binary metrics); multiclass: the class
# probabilities, decisions by argmax; regression: values in the target's units, agreement =
# share of rows within 1% relative error.
DECISION = 0.5
REGRESSION_AGREEMENT_TOLERANCE = 0.01
THRESHOLD_KEYS = ("max_abs_diff", "max_rel_diff", "min_agreement")


def parity(task: str, predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """max |diff|, max relative diff and decision agreement of ``predicted`` vs ``reference``
    ([n] or [n, K])."""
    p, r = np.asarray(predicted, np.float64), np.asarray(reference, np.float64)
    if task == MULTICLASS:
        p, r = p.reshape(len(p), -1), r.reshape(len(r), -1)
        same = np.argmax(p, axis=1) == np.argmax(r, axis=1)
    else:
        p, r = p.reshape(-1), r.reshape(-1)
        if task == BINARY:
            same = (p > DECISION) == (r > DECISION)
    diff = np.abs(p - r)
    rel = diff / np.maximum(np.abs(r), 1e-6)
    if task == REGRESSION:
        same = rel <= REGRESSION_AGREEMENT_TOLERANCE
    return {"max_abs_diff": float(np.max(diff)), "max_rel_diff": float(np.max(rel)),
            "agreement": float(np.mean(same))}


def blessed(measured: dict[str, float], thresholds: dict[str, float]) -> tuple[bool, list[str]]:
    """(blessed, failures) of a parity measurement against its thresholds."""
    failures = []
    for key in ("max_abs_diff", "max_rel_diff"):
        if key in thresholds and not measured[key] <= thresholds[key]:
            failures.append(f"{key} {measured[key]:.3g} > {thresholds[key]:.3g}")
    if "min_agreement" in thresholds and not measured["agreement"] >= thresholds["min_agreement"]:
        failures.append(f"agreement {measured['agreement']:.4f} < {thresholds['min_agreement']}")
    return not failures, failures


def default_conversion_thresholds(task: str, exact: bool, loose: bool = False) -> dict[str, float]:
    """Default parity thresholds of a converted model: float32 (``exact``) must match closely,
    float16 (``loose``) nearly, quantized ones must make the same decisions. Regression is
    judged relative to the target's size (a price of 10,000 differs by 1e-3 in float32)."""
    if task == REGRESSION:
        return {"max_rel_diff": 1e-4} if exact else {"max_rel_diff": 1e-2} if loose else {"min_agreement": 0.9}
    return {"max_abs_diff": 1e-5} if exact else {"max_abs_diff": 1e-3} if loose else {"min_agreement": 0.99}


# ------------------------------------------------------------------------------- the TF side --
def label_tensor(inputs: dict[str, Any], label: Label, fit: Any = None) -> Any:
    """The transformed label inside ``preprocessing_fn`` (TF; tf.Transform analyzers on train)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from features import feature_steps

    x = inputs[label.column]
    if label.threshold_rule:
        value = feature_steps.to_raw(x, "float")
        if label.greater_than_column:
            other = feature_steps.to_raw(inputs[label.greater_than_column], "float")
            positive = value.values > other.values * label.factor
            known = value.present & other.present
        else:
            positive = value.values > label.greater_than
            known = value.present
        return tf.cast(positive & known, tf.int64)
    if label.task == REGRESSION:
        raw = feature_steps.to_raw(x, "float")
        y = tf.where(raw.present, raw.values, 0.0)
        if label.transform == "log1p":
            return tf.math.log1p(y)
        if label.transform == "z_score":
            fit = fit or feature_steps.fitted_recorder(label.name, 0)
            present = tf.boolean_mask(y, raw.present)
            mean, std = fit("mean", tft.mean(present)), fit("std", tf.sqrt(tft.var(present)))
            return (y - mean) / tf.where(std > 0, std, 1.0)
        return y
    value_type = "string" if x.dtype == tf.string else "int"
    raw = feature_steps.to_raw(x, value_type, keep_dtype=True)
    tokens = raw.values if value_type == "string" else tf.strings.as_string(tf.cast(raw.values, tf.int64))
    if x.dtype.is_floating:  # float classes: the same token as the numpy side
        tokens = feature_steps.as_tokens(tf.cast(raw.values, tf.float32))
    if label.task == BINARY:
        return tf.cast(tf.equal(tokens, label.positive_class) & raw.present, tf.int64)
    classes = tft.vocabulary(tf.boolean_mask(tokens, raw.present), vocab_filename=CLASS_VOCABULARY)
    # An unseen class maps to -1; DataCleaner stops the run before Transform if eval/test have one.
    return tft.apply_vocabulary(tokens, classes, default_value=-1)


def target_inverse(label: Label, fitted: dict[tuple[str, int, str], Any]) -> Any:
    """A function from the model's output to the target in its own units (regression), from the
    constants Transform fitted (``features.fitted.fitted_values``)."""
    import tensorflow as tf

    if label.transform == "log1p":
        return tf.math.expm1
    if label.transform == "z_score":
        mean = float(fitted[(label.name, 0, "mean")])
        std = float(fitted[(label.name, 0, "std")])
        std = std if std > 0 else 1.0
        return lambda y: y * std + mean
    return tf.identity


def serving_outputs(label: Label, model_output: Any, classes: list[str], inverse: Any = None) -> dict[str, Any]:
    """The served model's outputs from the Keras model's: ``probabilities`` (classification;
    TFMA and the converters read it), ``classes``/``scores`` (TF Serving's :classify), and
    ``outputs`` in the target's units (:regress)."""
    import tensorflow as tf

    if label.task == REGRESSION:
        return {OUTPUTS: inverse(model_output) if inverse is not None else model_output}
    n = tf.shape(model_output)[0]
    scores = model_output if label.task == MULTICLASS else tf.concat([1.0 - model_output, model_output], axis=1)
    names = tf.tile(tf.constant([classes], tf.string), tf.stack([n, 1]))
    return {PROBABILITIES: model_output, CLASSES: names, SCORES: scores}
