"""Transform's module file: ``preprocessing_fn`` built from the pipeline config.

The feature list and each feature's steps arrive in ``custom_config`` (written by
``pipeline.config``); nothing about the data is hard-coded here.
"""

from __future__ import annotations

from typing import Any

from modules import keras_env

keras_env.apply()  # before TensorFlow is imported in this process

import tensorflow as tf  # noqa: E402

from modules import feature_steps  # noqa: E402


def label_fn(inputs: dict[str, Any], label: dict[str, Any]) -> tf.Tensor:
    """0/1 label; a row whose label inputs are missing counts as negative (as upstream TFX)."""
    value = feature_steps.to_dense(inputs[label["column"]], "float", float("nan"))
    if label.get("greater_than_column"):
        other = feature_steps.to_dense(inputs[label["greater_than_column"]], "float", float("nan"))
        positive = value > other * label.get("factor", 1.0)
        known = ~(tf.math.is_nan(value) | tf.math.is_nan(other))
    else:
        positive = value > label["greater_than"]
        known = ~tf.math.is_nan(value)
    return tf.cast(positive & known, tf.int64)


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    outputs = {}
    for feature in custom_config["features"]:
        name = feature["name"]
        steps = [(step, dict(args)) for step, args in feature["steps"]]
        outputs[f"{name}_xf"] = feature_steps.apply_steps(inputs[name], feature["type"], steps, name)
    label = custom_config["label"]
    outputs[label["name"]] = label_fn(inputs, label)
    return outputs
