"""Transform's module file: ``preprocessing_fn`` built from the pipeline config.

The feature list and each feature's steps arrive in ``custom_config`` (written by
``pipeline.config``); nothing about the data is hard-coded here. A configured
feature whose source columns are not in the schema Transform received (dropped
by DataCleaner or not selected by FeatureSelector) is skipped.
"""

from __future__ import annotations

import os
from typing import Any

from model.keras_env import KERAS_ENV

# TFX may load this file in a fresh executor process (a container, a Beam worker): the Keras
# flavour is set before TensorFlow loads (model/keras_env.py).
os.environ.update(KERAS_ENV)

import tensorflow as tf

from features import feature_steps, task
from features.feature_steps import active_features


def value_type_of(tensor: Any) -> str:
    """The config value type of a raw input tensor."""
    if tensor.dtype == tf.string:
        return "string"
    return "int" if tensor.dtype.is_integer else "float"


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    outputs = {}
    types = {name: value_type_of(t) for name, t in inputs.items()}
    for feature in active_features(custom_config, inputs):
        if feature.cyclical:
            outputs.update(feature_steps.cyclical_features(feature, inputs))
            continue
        raw = (feature_steps.derived_raw(feature, inputs, types) if feature.ratio or feature.cross
               else inputs[feature.name])
        outputs.update(feature_steps.apply_steps(raw, feature.type, list(feature.steps), feature.name))
    label = task.Label.from_json(custom_config["label"])
    outputs[label.name] = task.label_tensor(inputs, label)
    return outputs
