"""The preprocessing spec as a TensorFlow graph of TFLite / TF.js built-in ops only.

Every constant comes from the spec (Transform's fitted values); the ops are chosen so the
TFLite converter maps each to a built-in kernel and TF.js has a kernel for each:
comparisons instead of ``is_nan`` / ``strings.length``, ``log(1 + x)`` instead of ``log1p``,
counting boundaries instead of ``searchsorted``, constant-initialized hash tables (string
vocabularies) or equality against a constant vector (integer vocabularies), int32 date
arithmetic for timestamps. Branches on fitted constants (a zero std, λ = 0) are resolved
here in Python, so the graph has none.

``target`` "tflite" buckets with TFLite's BUCKETIZE op, whose boundaries are an attribute:
float16 and int8 conversion round constant tensors, and a latitude's boundaries 0.01 apart
collapse at float16's 0.03 resolution (measured: 0.14 max |diff| on taxi, 5e-4 with
BUCKETIZE). TF.js has no Bucketize kernel, so "portable" compares with constant boundaries.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

from features.feature_steps import CYCLICAL_PARTS, civil_month
from ondevice.spec import FLOAT, STRING, TIMESTAMP


def input_signature(spec: dict[str, Any]) -> list[tf.TensorSpec]:
    dtypes = {FLOAT: tf.float32, STRING: tf.string, TIMESTAMP: tf.int64}
    return [tf.TensorSpec([None, *i.get("shape", [])], dtypes[i["dtype"]], name=i["name"]) for i in spec["inputs"]]


def vocabulary_tables(spec: dict[str, Any]) -> dict[str, tf.lookup.StaticHashTable]:
    """Constant-initialized string -> index tables, one per string vocabulary (created once, outside
    the serving function, so a SavedModel tracks them and TFLite imports them at init)."""
    tables = {}
    for f in spec["features"]:
        for step in f["steps"]:
            if f["builtin"] and step["op"] == "vocabulary" and not step["numeric"]:
                keys = tf.constant(step["keys"], tf.string)
                values = tf.range(len(step["keys"]), dtype=tf.int64)
                tables[f["name"]] = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(keys, values), default_value=len(step["keys"]))
    return tables


def _column(inputs: dict[str, tf.Tensor], name: str) -> tuple[tf.Tensor, tf.Tensor]:
    x = inputs[name]
    if x.dtype == tf.string:
        return x, tf.not_equal(x, "")
    if x.dtype.is_integer:  # int64 timestamps: int32 arithmetic (exact until 2038; TF.js has no int64)
        x = tf.cast(x, tf.int32)
        return x, x >= 0
    return x, tf.equal(x, x)  # NaN != NaN: present where the value equals itself


def _box_cox_like(v: tf.Tensor, lam: float) -> tf.Tensor:
    """((1 + v)^λ - 1) / λ, or log(1 + v) at λ = 0 (feature_steps._power)."""
    lg = tf.math.log(1.0 + v)
    return lg if abs(lam) < 1e-12 else (tf.exp(lam * lg) - 1.0) / lam


def _power(x: tf.Tensor, lam: float, kind: str) -> tf.Tensor:
    if kind == "box_cox":
        return _box_cox_like(x - 1.0, lam)
    pos = x >= 0
    zero = tf.zeros_like(x)
    return tf.where(pos, _box_cox_like(tf.where(pos, x, zero), lam),
                    -_box_cox_like(tf.where(pos, zero, -x), 2.0 - lam))


TARGETS = ("portable", "tflite")


def _bucket(x: tf.Tensor, boundaries: list[float], target: str) -> tf.Tensor:
    """Number of boundaries <= x: tft.apply_buckets (searchsorted, side right)."""
    if target == "tflite":
        return tf.cast(tf.raw_ops.Bucketize(input=x, boundaries=[float(b) for b in boundaries]), tf.int32)
    b = tf.constant(boundaries, tf.float32)
    return tf.reduce_sum(tf.cast(x[:, None] >= b[None, :], tf.int32), axis=1)


def _vocabulary(x: tf.Tensor, step: dict[str, Any], table: Any, present: tf.Tensor, fill: str | None
                ) -> tf.Tensor:
    if table is not None:
        index = tf.cast(table.lookup(x), tf.int32)
        if fill is None:
            return index
        # TFLite's select has no string kernel: impute after the lookup, on indices.
        fill_index = tf.cast(table.lookup(tf.constant([fill])), tf.int32)
        return tf.where(present, index, tf.broadcast_to(fill_index, tf.shape(index)))
    keys = tf.constant(step["keys"], x.dtype if x.dtype == tf.string else tf.float32)
    hits = tf.equal(tf.reshape(x, [-1, 1]), tf.reshape(keys, [1, -1]))
    index = tf.cast(tf.argmax(tf.cast(hits, tf.int32), axis=1), tf.int32)
    index = tf.where(tf.reduce_any(hits, axis=1), index, tf.fill(tf.shape(index), len(step["keys"])))
    if fill is None or x.dtype != tf.string:
        return index
    fill_index = step["keys"].index(fill) if fill in step["keys"] else len(step["keys"])
    return tf.where(present, index, tf.fill(tf.shape(index), fill_index))


def _cyclical(feature: dict[str, Any], inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    seconds, present = _column(inputs, feature["source"]["cyclical"]["column"])
    seconds = tf.where(present, seconds, tf.zeros_like(seconds))
    days = tf.math.floordiv(seconds, 86400)
    values = {
        "hour": tf.cast(tf.math.floormod(seconds, 86400), tf.float32) / 3600.0,
        "weekday": tf.cast(tf.math.floormod(days + 3, 7), tf.float32),
        "month": tf.cast(civil_month(days) - 1, tf.float32),
    }
    out = {}
    for part in feature["source"]["cyclical"]["parts"]:
        angle = (2.0 * math.pi / CYCLICAL_PARTS[part]) * values[part]
        for fn, op in (("sin", tf.sin), ("cos", tf.cos)):
            out[f"{feature['name']}_{part}_{fn}_xf"] = tf.where(present, op(angle), tf.zeros_like(angle))
    return out


def _feature(feature: dict[str, Any], inputs: dict[str, tf.Tensor], table: Any, target: str) -> dict[str, tf.Tensor]:
    source = feature["source"]
    from ondevice import text

    if text.is_text(feature):  # tokens in (the app tokenizes), ids out
        return text.builtin_feature(feature, inputs, table)
    if "cyclical" in source:
        return _cyclical(feature, inputs)
    if "ratio" in source:
        (num, num_ok), (den, den_ok) = (_column(inputs, c) for c in source["ratio"])
        ok = num_ok & den_ok & tf.not_equal(den, 0.0)
        x, present = tf.where(ok, num / tf.where(ok, den, tf.ones_like(den)), tf.zeros_like(num)), ok
    else:
        x, present = _column(inputs, source["column"])
    name, extra, string_fill = feature["name"], {}, None
    for step in feature["steps"]:
        op = step["op"]
        if op == "impute" and x.dtype == tf.string:
            string_fill = step["fill"]  # applied by the vocabulary lookup
            if step["indicator"]:
                extra[f"{name}_missing_xf"] = tf.cast(tf.logical_not(present), tf.float32)
        elif op == "impute":
            fill = tf.constant(step["fill"], x.dtype)
            x = tf.where(present, x, tf.fill(tf.shape(x), fill))
            if step["indicator"]:
                extra[f"{name}_missing_xf"] = tf.cast(tf.logical_not(present), tf.float32)
        elif op == "bucketize":
            x_b = _bucket(tf.where(present, x, tf.zeros_like(x)) if step["missing_bucket"] is not None else x,
                          step["boundaries"], target)
            x = (tf.where(present, x_b, tf.fill(tf.shape(x_b), step["missing_bucket"]))
                 if step["missing_bucket"] is not None else x_b)
        elif op == "clip":
            x = tf.minimum(tf.maximum(x, step["lower"]), step["upper"])
        elif op == "log":
            x = tf.math.log(x)
        elif op == "log1p":
            x = tf.math.log(1.0 + x)
        elif op in ("box_cox", "yeo_johnson"):
            x = _power(x, step["lambda"], op)
        elif op == "z_score":
            x = (x - step["mean"]) / step["std"] if step["std"] > 0 else x - step["mean"]
        elif op == "min_max":
            lo, hi = step["range"]
            span = step["max"] - step["min"]
            x = ((x - step["min"]) / span if span > 0 else tf.zeros_like(x)) * (hi - lo) + lo
        elif op == "robust":
            x = (x - step["median"]) / (step["iqr"] if step["iqr"] > 0 else 1.0)
        elif op == "max_abs":
            x = x / (step["max_abs"] if step["max_abs"] > 0 else 1.0)
        elif op == "categorical_identity":
            x = tf.clip_by_value(tf.cast(x, tf.int32), 0, step["num_buckets"] - 1)
        elif op == "vocabulary":
            x = _vocabulary(x, step, table, present, string_fill)
            if step["encoding"] == "one_hot":
                # Not ONE_HOT (nor a pattern the converter fuses into it): a quantization-aware model
                # quantizes its inputs, the converter pushes that into the producer, and ONE_HOT
                # takes no quantized on/off values.
                positions = tf.reshape(tf.range(step["size"], dtype=x.dtype), [1, step["size"]])
                x = 1.0 - tf.cast(tf.not_equal(tf.reshape(x, [-1, 1]), positions), tf.float32)
        else:  # hash and the like are marked builtin: false and never reach here
            raise ValueError(f"feature {name}: step {op} has no built-in form")
    return {f"{name}_xf": x, **extra}


def transformed_features(spec: dict[str, Any], inputs: dict[str, tf.Tensor],
                         tables: dict[str, Any], target: str = "portable") -> dict[str, tf.Tensor]:
    """{model input name: tensor} for every feature: built-in ones computed from raw inputs,
    the others taken as given (the app computed them from the spec)."""
    out: dict[str, tf.Tensor] = {}
    for feature in spec["features"]:
        if feature.get("type") == "image":  # pixels -> scaled, standardized (features/image.py)
            from features import image

            out[f"{feature['name']}_xf"] = image.builtin_feature(feature, inputs[feature["source"]["column"]])
        elif feature["builtin"]:
            out.update(_feature(feature, inputs, tables.get(feature["name"]), target))
        else:
            out.update({o["name"]: inputs[o["name"]] for o in feature["outputs"]})
    return out


def model_inputs(spec: dict[str, Any], transformed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Shaped and typed as the Keras model's inputs: [batch, 1] (categorical int64, numeric
    float32) or [batch, size] for one-hot vectors."""
    out = {}
    for feature in spec["features"]:
        for o in feature["outputs"]:
            t = transformed[o["name"]]
            if o["kind"] == "image":
                out[o["name"]] = tf.reshape(tf.cast(t, tf.float32), [-1, *o["shape"]])
            elif o["kind"] == "vector":
                out[o["name"]] = tf.reshape(tf.cast(t, tf.float32), [-1, o["size"]])
            elif o["kind"] == "sequence":  # text: token ids [max_tokens]
                out[o["name"]] = tf.reshape(tf.cast(t, tf.int64), [-1, *o["shape"]])
            else:
                dtype = tf.int64 if o["kind"] == "categorical" else tf.float32
                out[o["name"]] = tf.reshape(tf.cast(t, dtype), [-1, 1])
    return out
