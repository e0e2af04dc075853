"""NumPy reference implementation of the preprocessing spec (``spec.py``).

What an app does to turn raw values into the model's inputs, in plain array code: the
executable form of the spec for features the on-device model takes already transformed
(hashes, hashed OOV buckets, crosses), and the check that the spec reproduces Transform.
The math of every step is ``ops.py``'s, run here with ``NUMPY`` (float64); only what has no
built-in counterpart (string lookups, FarmHash, crosses, tokenizing) is written here.
FarmHash fingerprints come from TensorFlow's ``tf.strings.to_hash_bucket_fast``, the
function tf.Transform uses (Fingerprint64 of the UTF-8 bytes, modulo the bucket count).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ondevice import ops


def _hash_buckets(tokens: np.ndarray, buckets: int) -> np.ndarray:
    import tensorflow as tf

    return tf.strings.to_hash_bucket_fast(tf.constant(tokens.astype(object), tf.string), buckets).numpy()


def _tokens(x: np.ndarray) -> np.ndarray:
    """feature_steps.as_tokens: integers print without a fraction, other floats as %f."""
    if x.dtype == object:
        return x
    return np.array([str(int(v)) if v == round(v) else f"{v:f}" for v in x.astype(np.float64)], dtype=object)


class NumpyArrays:
    """``ops.Arrays`` in NumPy: strings as object arrays, numbers as float64 (NaN: missing),
    timestamps as int64 (negative: missing)."""

    where = staticmethod(np.where)
    zeros_like = staticmethod(np.zeros_like)
    ones_like = staticmethod(np.ones_like)
    not_equal = staticmethod(np.not_equal)
    logical_not = staticmethod(np.logical_not)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    clip = staticmethod(np.clip)
    floordiv = staticmethod(np.floor_divide)
    floormod = staticmethod(np.mod)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    expm1 = staticmethod(np.expm1)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)

    @staticmethod
    def column(rows: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
        x = rows[name]
        if x.dtype == object:
            return x, np.array([v != "" for v in x], dtype=bool)
        if np.issubdtype(x.dtype, np.integer):
            return x.astype(np.int64), x >= 0
        x = x.astype(np.float64)
        return x, ~np.isnan(x)

    @staticmethod
    def is_string(x: np.ndarray) -> bool:
        return x.dtype == object

    @staticmethod
    def full_like(x: np.ndarray, value: Any) -> np.ndarray:
        return np.full(np.shape(x), value, np.result_type(x, value))  # an int column imputed with 1.5: float

    @staticmethod
    def to_float(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64)

    @staticmethod
    def to_float32(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32)

    @staticmethod
    def to_int(x: np.ndarray) -> np.ndarray:
        return np.trunc(x).astype(np.int64)

    @staticmethod
    def constant32(values: Any) -> np.ndarray:
        return np.asarray(values, np.float32)

    @staticmethod
    def reshape(x: np.ndarray, shape: list[int]) -> np.ndarray:
        return np.reshape(x, shape)

    @staticmethod
    def arange(n: int, like: np.ndarray) -> np.ndarray:
        return np.arange(n, dtype=like.dtype)

    @staticmethod
    def civil_month(days: np.ndarray) -> np.ndarray:
        from features.feature_steps import civil_month  # Transform's own definition, run eagerly

        return np.asarray(civil_month(days))

    @staticmethod
    def bucketize(x: np.ndarray, boundaries: list[float], target: str) -> np.ndarray:
        return np.searchsorted(np.asarray(boundaries), x, side="right")

    @staticmethod
    def impute_strings(x: np.ndarray, present: np.ndarray, fill: str) -> np.ndarray:
        return np.where(present, x, fill)

    @staticmethod
    def vocabulary(x: np.ndarray, step: dict[str, Any], table: Any, present: np.ndarray, fill: str | None
                   ) -> np.ndarray:
        """Index in ``keys``; unseen: len(keys), or len(keys) + FarmHash bucket with oov_buckets > 1
        (strings already imputed by ``impute_strings``)."""
        keys = step["keys"]
        tokens = _tokens(x)
        if step["numeric"] and not all(isinstance(k, str) for k in keys):
            lookup: dict[Any, int] = {float(k): i for i, k in enumerate(keys)}
            idx = np.array([lookup.get(float(t), -1) for t in x])
        else:
            lookup = {k: i for i, k in enumerate(keys)}
            idx = np.array([lookup.get(t, -1) for t in tokens])
        oov = step["oov_buckets"]
        unseen = len(keys) + (_hash_buckets(tokens, oov) if oov > 1 else np.zeros(len(idx), np.int64))
        return np.where(idx >= 0, idx, unseen).astype(np.int64)

    @staticmethod
    def hash(x: np.ndarray, step: dict[str, Any], feature: str) -> np.ndarray:
        return _hash_buckets(_tokens(x), step["buckets"])

    @staticmethod
    def cross(source: dict[str, Any], rows: dict[str, np.ndarray], feature: str) -> tuple[np.ndarray, np.ndarray]:
        parts = [NumpyArrays.column(rows, c) for c in source["cross"]]
        tokens = [_tokens(np.where(p, v, "" if v.dtype == object else 0)) for v, p in parts]
        x = np.array([source["separator"].join(t) for t in zip(*tokens, strict=True)], dtype=object)
        return x, np.logical_and.reduce([p for _, p in parts])

    @staticmethod
    def text(feature: dict[str, Any], rows: dict[str, np.ndarray], table: Any) -> dict[str, np.ndarray]:
        from ondevice import text

        return text.reference_feature(feature, rows)


NUMPY = NumpyArrays()


def transform_feature(feature: dict[str, Any], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One feature's model inputs from raw columns (strings as object arrays, numbers as floats
    with NaN for missing, timestamps as integers with negative for missing)."""
    return ops.feature_outputs(NUMPY, feature, rows)


def transform(spec: dict[str, Any], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every feature's model inputs (the spec's ``outputs``) from raw columns."""
    out: dict[str, np.ndarray] = {}
    for feature in spec["features"]:
        out.update(transform_feature(feature, rows))
    return out
