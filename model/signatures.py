"""Serving signatures shared by every exported model (trained, and later variants).

* ``serving_default``: serialized ``tf.Example`` in (TF Serving predict/classify/regress
  clients, TFMA).
* ``serving_raw``: one named tensor per raw column the features use (numbers as
  floats with NaN for missing, strings with "" for missing).
* ``transform_features``: serialized ``tf.Example`` in, transformed features and
  label out (TFMA's preprocessing function for the label; a regression target in its own
  units, as the served model answers).

Outputs by task (``features.task.serving_outputs``): classification ``probabilities``
([batch, 1] P(positive), or [batch, K]) with TF Serving's ``classes`` (names) and ``scores``
for :classify; regression ``outputs`` [batch, 1] in the target's units for :regress.

All three apply the Transform graph inside the model, so training and serving
cannot skew; a missing value at serving time is imputed exactly as in training.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from features import feature_steps, task


def raw_input_dtype(value_type: str) -> tf.DType:
    # int columns travel as float64 so NaN can mean "missing" and ints up to 2**53 stay exact.
    return {"float": tf.float32, "int": tf.float64, "string": tf.string}[value_type]


def spec_value_type(spec: Any) -> str:
    if spec.dtype == tf.string:
        return "string"
    return "int" if spec.dtype.is_integer else "float"


def serving_columns(custom_config: dict, raw_spec: dict) -> list[str]:
    """Raw columns the served model needs: the sources of every active feature, in config order."""
    from features.feature_steps import active_features

    columns: list[str] = []
    for feature in active_features(custom_config, raw_spec):
        columns += [c for c in feature.source_columns if c not in columns]
    return columns


def _dense_to_raw(value: tf.Tensor, spec: Any) -> Any:
    """A dense [batch] column with NaN/"" for missing -> the raw spec's tensor form."""
    if value.dtype == tf.string:
        present = tf.strings.length(value) > 0
    else:
        present = ~tf.math.is_nan(value)
    if isinstance(spec, tf.io.VarLenFeature):
        idx = tf.where(present)
        indices = tf.concat([idx, tf.zeros_like(idx)], axis=1)
        values = tf.cast(tf.boolean_mask(value, present), spec.dtype)
        return tf.SparseTensor(indices, values, tf.stack([tf.shape(value, out_type=tf.int64)[0], 1]))
    if value.dtype != tf.string:
        value = tf.where(present, value, tf.zeros_like(value))
    return tf.reshape(tf.cast(value, spec.dtype), [-1, *spec.shape])


def model_inputs(transformed: dict[str, tf.Tensor], outputs: list) -> dict[str, tf.Tensor]:
    """Transformed columns shaped as the model's inputs ([batch, 1], or [batch, size] for vectors)."""
    return {o.name: tf.reshape(transformed[o.name], [-1, *o.shape] if o.shape
                               else [-1, o.size if o.kind == "vector" else 1]) for o in outputs}


def build_signatures(model: Any, tf_transform_output: Any, custom_config: dict, outputs: list) -> dict:
    label = task.label_of(custom_config)
    label_name = label.name
    classes = task.class_names(label, tf_transform_output)
    inverse = None
    if label.task == task.REGRESSION:
        fitted = {}
        if label.transform == "z_score":
            from features.fitted import fitted_values

            fitted = fitted_values(tf_transform_output.transform_savedmodel_dir)
        inverse = task.target_inverse(label, fitted)

    def answer(transformed: dict) -> dict:
        return task.serving_outputs(label, model(model_inputs(transformed, outputs)), classes, inverse)
    excluded = set(custom_config.get("serving_excluded_columns", []))
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k not in excluded}
    columns = serving_columns(custom_config, raw_spec)
    # Keep the layer on the model so its resources are tracked by the SavedModel.
    model.tft_layer = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return answer(model.tft_layer(tf.io.parse_example(serialized, serving_spec)))

    raw_specs = [tf.TensorSpec([None], raw_input_dtype(spec_value_type(raw_spec[c])), name=c) for c in columns]

    @tf.function(input_signature=raw_specs)
    def serve_raw(*values):
        raw = {c: _dense_to_raw(v, raw_spec[c]) for c, v in zip(columns, values, strict=True)}
        return answer(model.tft_layer(raw))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        parsed = tf.io.parse_example(serialized, raw_spec)
        transformed = model.tft_layer(parsed)
        out = model_inputs(transformed, outputs)
        if label.task == task.REGRESSION:  # the target in its own units, as the model answers
            out[label_name] = tf.reshape(feature_steps.to_raw(parsed[label.column], "float").values, [-1, 1])
        else:
            out[label_name] = tf.reshape(transformed[label_name], [-1, 1])
        return out

    return {
        "serving_default": serve_examples,
        "serving_raw": serve_raw,
        "transform_features": transform_features,
    }


def export(model: Any, tf_transform_output: Any, custom_config: dict, outputs: list, path: str) -> None:
    signatures = build_signatures(model, tf_transform_output, custom_config, outputs)
    model.save(path, save_format="tf", signatures=signatures)
