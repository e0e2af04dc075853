"""The preprocessing spec as a TensorFlow graph of TFLite / TF.js built-in ops only.

The math of every step is ``ops.py``'s, the same code the NumPy reference runs; ``TensorFlow``
here is its namespace of built-in ops. Every constant comes from the spec (Transform's fitted
values); the ops are chosen so the TFLite converter maps each to a built-in kernel and TF.js
has a kernel for each: comparisons instead of ``is_nan`` / ``strings.length``, ``log(1 + x)``
instead of ``log1p``, counting boundaries instead of ``searchsorted``, constant-initialized hash
tables (string vocabularies) or equality against a constant vector (integer vocabularies), int32
date arithmetic for timestamps. Branches on fitted constants (a zero std, λ = 0) are resolved in
Python (ops.py), so the graph has none.

``target`` "tflite" buckets with TFLite's BUCKETIZE op, whose boundaries are an attribute:
float16 and int8 conversion round constant tensors, and a latitude's boundaries 0.01 apart
collapse at float16's 0.03 resolution (measured: 0.14 max |diff| on taxi, 5e-4 with
BUCKETIZE). TF.js has no Bucketize kernel, so "portable" compares with constant boundaries.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from features.feature_steps import civil_month
from ondevice import ops
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


TARGETS = ("portable", "tflite")


class TensorFlow:
    """``ops.Arrays`` in TF ops with TFLite / TF.js built-in kernels: float32 numbers (``x == x``:
    present), int32 timestamps (negative: missing), strings ("" : missing)."""

    where = staticmethod(tf.where)
    zeros_like = staticmethod(tf.zeros_like)
    ones_like = staticmethod(tf.ones_like)
    not_equal = staticmethod(tf.not_equal)
    logical_not = staticmethod(tf.logical_not)
    minimum = staticmethod(tf.minimum)
    maximum = staticmethod(tf.maximum)
    clip = staticmethod(tf.clip_by_value)
    floordiv = staticmethod(tf.math.floordiv)
    floormod = staticmethod(tf.math.floormod)
    log = staticmethod(tf.math.log)
    sin = staticmethod(tf.sin)
    cos = staticmethod(tf.cos)
    reshape = staticmethod(tf.reshape)
    civil_month = staticmethod(civil_month)

    @staticmethod
    def column(inputs: dict[str, tf.Tensor], name: str) -> tuple[tf.Tensor, tf.Tensor]:
        x = inputs[name]
        if x.dtype == tf.string:
            return x, tf.not_equal(x, "")
        if x.dtype.is_integer:  # int64 timestamps: int32 arithmetic (exact until 2038; TF.js has no int64)
            x = tf.cast(x, tf.int32)
            return x, x >= 0
        return x, tf.equal(x, x)  # NaN != NaN: present where the value equals itself

    @staticmethod
    def is_string(x: tf.Tensor) -> bool:
        return x.dtype == tf.string

    @staticmethod
    def full_like(x: tf.Tensor, value: Any) -> tf.Tensor:
        return tf.fill(tf.shape(x), tf.constant(value, x.dtype))

    @staticmethod
    def log1p(x: tf.Tensor) -> tf.Tensor:
        return tf.math.log(1.0 + x)  # no LOG1P kernel

    @staticmethod
    def expm1(x: tf.Tensor) -> tf.Tensor:
        return tf.exp(x) - 1.0

    @staticmethod
    def to_float(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(x, tf.float32)

    to_float32 = to_float

    @staticmethod
    def to_int(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(x, tf.int32)

    @staticmethod
    def constant32(values: Any) -> tf.Tensor:
        return tf.constant(values, tf.float32)

    @staticmethod
    def arange(n: int, like: tf.Tensor) -> tf.Tensor:
        return tf.range(n, dtype=like.dtype)

    @staticmethod
    def bucketize(x: tf.Tensor, boundaries: list[float], target: str) -> tf.Tensor:
        """Number of boundaries <= x: BUCKETIZE (tflite) or a sum of comparisons (portable)."""
        if target == "tflite":
            return tf.cast(tf.raw_ops.Bucketize(input=x, boundaries=[float(b) for b in boundaries]), tf.int32)
        b = tf.constant(boundaries, tf.float32)
        return tf.reduce_sum(tf.cast(x[:, None] >= b[None, :], tf.int32), axis=1)

    @staticmethod
    def impute_strings(x: tf.Tensor, present: tf.Tensor, fill: str) -> tf.Tensor:
        return x  # TFLite's select has no string kernel: the vocabulary lookup imputes, on indices

    @staticmethod
    def vocabulary(x: tf.Tensor, step: dict[str, Any], table: Any, present: tf.Tensor, fill: str | None
                   ) -> tf.Tensor:
        """Index in ``keys``, len(keys) if unseen: the constant hash table (strings) or equality
        against the keys (numbers, or strings without a table)."""
        if table is not None:
            index = tf.cast(table.lookup(x), tf.int32)
            if fill is None:
                return index
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

    @staticmethod
    def hash(x: tf.Tensor, step: dict[str, Any], feature: str) -> tf.Tensor:
        raise ValueError(f"feature {feature}: step hash has no built-in form")  # builtin: false in the spec

    @staticmethod
    def cross(source: dict[str, Any], inputs: dict[str, tf.Tensor], feature: str) -> tuple[tf.Tensor, tf.Tensor]:
        raise ValueError(f"feature {feature}: cross has no built-in form")  # builtin: false in the spec

    @staticmethod
    def text(feature: dict[str, Any], inputs: dict[str, tf.Tensor], table: Any) -> dict[str, tf.Tensor]:
        from ondevice import text

        return text.builtin_feature(feature, inputs, table)


TF = TensorFlow()


def transformed_features(spec: dict[str, Any], inputs: dict[str, tf.Tensor],
                         tables: dict[str, Any], target: str = "portable") -> dict[str, tf.Tensor]:
    """{model input name: tensor} for every feature: built-in ones computed from raw inputs,
    the others taken as given (the app computed them from the spec)."""
    out: dict[str, tf.Tensor] = {}
    for feature in spec["features"]:
        if feature.get("type") == "image" or feature["builtin"]:  # images: pixels -> scaled, standardized
            out.update(ops.feature_outputs(TF, feature, inputs, tables.get(feature["name"]), target))
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
