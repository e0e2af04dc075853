"""NumPy reference implementation of the preprocessing spec (``spec.py``).

What an app does to turn raw values into the model's inputs, in plain array code: the
executable form of the spec for features the on-device model takes already transformed
(hashes, hashed OOV buckets, crosses), and the check that the spec reproduces Transform.
FarmHash fingerprints come from TensorFlow's ``tf.strings.to_hash_bucket_fast``, the
function tf.Transform uses (Fingerprint64 of the UTF-8 bytes, modulo the bucket count).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from features.feature_steps import CYCLICAL_PARTS


def _hash_buckets(tokens: np.ndarray, buckets: int) -> np.ndarray:
    import tensorflow as tf

    return tf.strings.to_hash_bucket_fast(tf.constant(tokens.astype(object), tf.string), buckets).numpy()


def _tokens(x: np.ndarray) -> np.ndarray:
    """feature_steps.as_tokens: integers print without a fraction, other floats as %f."""
    if x.dtype == object:
        return x
    return np.array([str(int(v)) if v == round(v) else f"{v:f}" for v in x.astype(np.float64)], dtype=object)


def _column(rows: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    x = rows[name]
    if x.dtype == object:
        return x, np.array([v != "" for v in x], dtype=bool)
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.int64), x >= 0
    x = x.astype(np.float64)
    return x, ~np.isnan(x)


def _power(x: np.ndarray, lam: float, kind: str) -> np.ndarray:
    def bc(v: np.ndarray, lmb: float) -> np.ndarray:
        return np.log1p(v) if abs(lmb) < 1e-12 else np.expm1(lmb * np.log1p(v)) / lmb

    if kind == "box_cox":
        return bc(x - 1.0, lam)
    pos = x >= 0
    return np.where(pos, bc(np.where(pos, x, 0.0), lam), -bc(np.where(pos, 0.0, -x), 2.0 - lam))


def _civil_month(days: np.ndarray) -> np.ndarray:
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    return np.where(mp < 10, mp + 3, mp - 9)


def _cyclical(feature: dict[str, Any], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    seconds, present = _column(rows, feature["source"]["cyclical"]["column"])
    seconds = np.where(present, seconds, 0).astype(np.int64)
    days = seconds // 86400
    values = {"hour": (seconds % 86400) / 3600.0, "weekday": ((days + 3) % 7).astype(np.float64),
              "month": (_civil_month(days) - 1).astype(np.float64)}
    out = {}
    for part in feature["source"]["cyclical"]["parts"]:
        angle = 2.0 * math.pi * values[part] / CYCLICAL_PARTS[part]
        for fn, op in (("sin", np.sin), ("cos", np.cos)):
            out[f"{feature['name']}_{part}_{fn}_xf"] = np.where(present, op(angle), 0.0)
    return out


def transform_feature(feature: dict[str, Any], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One feature's model inputs from raw columns (strings as object arrays, numbers as floats
    with NaN for missing, timestamps as integers with negative for missing)."""
    source, name = feature["source"], feature["name"]
    from ondevice import text

    if text.is_text(feature):  # token ids from the reference tokenizer
        return text.reference_feature(feature, rows)
    if feature.get("type") == "image":  # float32 pixels 0..255 -> model input (features/image.py)
        from features import image

        return {f"{name}_xf": image.reference_feature(feature, rows[source["column"]])}
    if "cyclical" in source:
        return _cyclical(feature, rows)
    if "ratio" in source:
        (num, num_ok), (den, den_ok) = (_column(rows, c) for c in source["ratio"])
        ok = num_ok & den_ok & (den != 0)
        x, present = np.where(ok, num / np.where(ok, den, 1.0), 0.0), ok
    elif "cross" in source:
        parts = [_column(rows, c) for c in source["cross"]]
        tokens = [_tokens(np.where(p, v, "" if v.dtype == object else 0)) for v, p in parts]
        x = np.array([source["separator"].join(t) for t in zip(*tokens, strict=True)], dtype=object)
        present = np.logical_and.reduce([p for _, p in parts])
    else:
        x, present = _column(rows, source["column"])
    extra = {}
    for step in feature["steps"]:
        op = step["op"]
        if op == "impute":
            x = np.where(present, x, step["fill"])
            if x.dtype != object:
                x = x.astype(np.float64)
            if step["indicator"]:
                extra[f"{name}_missing_xf"] = (~present).astype(np.float32)
        elif op == "bucketize":
            b = np.searchsorted(np.asarray(step["boundaries"]), np.where(present, x, 0.0), side="right")
            x = np.where(present, b, step["missing_bucket"]) if step["missing_bucket"] is not None else b
        elif op == "clip":
            x = np.clip(x, step["lower"], step["upper"])
        elif op == "log":
            x = np.log(x)
        elif op == "log1p":
            x = np.log1p(x)
        elif op in ("box_cox", "yeo_johnson"):
            x = _power(x, step["lambda"], op)
        elif op == "z_score":
            x = (x - step["mean"]) / step["std"] if step["std"] > 0 else x - step["mean"]
        elif op == "min_max":
            lo, hi = step["range"]
            span = step["max"] - step["min"]
            x = ((x - step["min"]) / span if span > 0 else np.zeros_like(x)) * (hi - lo) + lo
        elif op == "robust":
            x = (x - step["median"]) / (step["iqr"] if step["iqr"] > 0 else 1.0)
        elif op == "max_abs":
            x = x / (step["max_abs"] if step["max_abs"] > 0 else 1.0)
        elif op == "categorical_identity":
            x = np.clip(np.trunc(x).astype(np.int64), 0, step["num_buckets"] - 1)
        elif op == "hash":
            x = _hash_buckets(_tokens(x), step["buckets"])
        elif op == "vocabulary":
            keys = step["keys"]
            v = len(keys)
            if step["numeric"] and not all(isinstance(k, str) for k in keys):
                lookup = {float(k): i for i, k in enumerate(keys)}
                idx = np.array([lookup.get(float(t), -1) for t in x])
                tokens = _tokens(x)
            else:
                tokens = _tokens(x)
                lookup = {k: i for i, k in enumerate(keys)}
                idx = np.array([lookup.get(t, -1) for t in tokens])
            oov = step["oov_buckets"]
            unseen = v + (_hash_buckets(tokens, oov) if oov > 1 else np.zeros(len(idx), np.int64))
            x = np.where(idx >= 0, idx, unseen).astype(np.int64)
            if step["encoding"] == "one_hot":
                x = np.eye(step["size"], dtype=np.float32)[x]
        else:
            raise ValueError(f"feature {name}: unknown step {op}")
    return {f"{name}_xf": x, **extra}


def transform(spec: dict[str, Any], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every feature's model inputs (the spec's ``outputs``) from raw columns."""
    out: dict[str, np.ndarray] = {}
    for feature in spec["features"]:
        out.update(transform_feature(feature, rows))
    return out
