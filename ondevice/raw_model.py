"""A trained Keras model behind Transform's preprocessing rebuilt with built-in ops.

``export_raw_savedmodel`` writes a SavedModel whose ``serving_default`` takes raw columns
(one [batch] tensor each, the spec's input convention) and returns the task's prediction
(``spec["output"]``: ``probabilities`` [batch, 1] or [batch, K], or a regression target
``outputs`` [batch, 1] in its own units): the form TFLite and TF.js convert. Its preprocessing constants come from
Transform's graph (``fitted.py``), so it answers as the served model does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from features.fitted import fitted_values
from model import model_io
from ondevice import builtin
from ondevice.spec import build_spec

SPEC_FILE = "preprocessing_spec.json"


def target_units(y: tf.Tensor, target: dict[str, Any] | None) -> tf.Tensor:
    """A regression output in the target's units, with built-in ops (EXP, MUL, ADD)."""
    if not target or target["transform"] == "none":
        return y
    if target["transform"] == "log1p":
        return tf.exp(y) - 1.0  # expm1 has no TFLite built-in kernel
    return y * target["std"] + target["mean"]


class OnDeviceModel(tf.Module):
    """Raw inputs -> built-in preprocessing -> the Keras model -> the task's prediction."""

    def __init__(self, keras_model: Any, spec: dict[str, Any], target: str = "portable"):
        super().__init__()
        self.model = keras_model
        self.tables = builtin.vocabulary_tables(spec)
        names = [i["name"] for i in spec["inputs"]]

        @tf.function(input_signature=builtin.input_signature(spec))
        def serve(*values: tf.Tensor) -> dict[str, tf.Tensor]:
            inputs = dict(zip(names, values, strict=True))
            features = builtin.model_inputs(spec, builtin.transformed_features(spec, inputs, self.tables, target))
            return {spec["output"]: target_units(self.model(features, training=False), spec.get("target"))}

        self.serve = serve

    @property
    def quantization_aware(self) -> bool:
        """Whether the model was trained with fake quantization (tfmot's QuantizeWrapper layers)."""
        return any(type(layer).__name__.startswith("Quantize") for layer in self.model.layers)


@dataclass
class RawExport:
    saved_model_dir: str
    inputs: list[tuple[str, str]]  # (name, dtype) in signature order
    spec: dict[str, Any]


def build_spec_for(transform_graph_uri: str, custom_config: dict) -> dict[str, Any]:
    tft_output = tft.TFTransformOutput(transform_graph_uri)
    return build_spec(custom_config, tft_output, fitted_values(tft_output.transform_savedmodel_dir))


def build(model_uri: str, spec: dict[str, Any], target: str = "portable") -> OnDeviceModel:
    """``target``: "portable" (TF.js and TFLite) or "tflite" (TFLite's own ops, see builtin.py)."""
    return OnDeviceModel(model_io.load_model(model_uri), spec, target)


def write_spec(spec: dict[str, Any], path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as fh:
        json.dump(spec, fh, indent=1)


def export_raw_savedmodel(model_uri: str, transform_graph_uri: str, custom_config: dict, out_dir: str
                          ) -> RawExport:
    spec = build_spec_for(transform_graph_uri, custom_config)
    module = build(model_uri, spec)
    saved = os.path.join(out_dir, "saved_model")
    tf.saved_model.save(module, saved, signatures={"serving_default": module.serve})
    write_spec(spec, os.path.join(out_dir, SPEC_FILE))
    return RawExport(saved, [(i["name"], i["dtype"]) for i in spec["inputs"]], spec)
