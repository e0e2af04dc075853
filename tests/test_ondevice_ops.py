"""Every on-device preprocessing operation run both ways on the same inputs: the NumPy reference
(what an app and the tests compute) and the built-in-op graph (inside the TFLite / TF.js model)
must agree, so the two cannot drift apart. The spec here is written by hand (no Transform run):
it reaches every step, every fitted-constant branch (zero std, zero span, λ = 0, a missing
bucket) and every kind of source (column, ratio, cyclical timestamp, image pixels, text tokens)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ondevice import builtin, reference
from ondevice import text as ondevice_text


def _num(name, *steps, source=None, outputs=None):
    return {"name": name, "type": "float", "source": source or {"column": name}, "steps": list(steps),
            "builtin": True, "outputs": outputs or [{"name": f"{name}_xf", "kind": "numeric", "size": 1}]}


VOCAB = ["a", "b", "c"]
FEATURES = [
    _num("x", {"op": "impute", "fill": 1.5, "indicator": True}, {"op": "clip", "lower": -2.0, "upper": 3.0},
         {"op": "z_score", "mean": 0.5, "std": 2.0}),
    _num("x_zstd", {"op": "impute", "fill": 0.0, "indicator": False}, {"op": "z_score", "mean": 0.5, "std": 0.0},
         source={"column": "x"}),
    _num("pos_log", {"op": "log"}, source={"column": "pos"}),
    _num("pos_log1p", {"op": "log1p"}, source={"column": "pos"}),
    _num("pos_bc", {"op": "box_cox", "lambda": 0.37}, source={"column": "pos"}),
    _num("pos_bc0", {"op": "box_cox", "lambda": 0.0}, source={"column": "pos"}),
    _num("y_yj", {"op": "yeo_johnson", "lambda": 1.3}, source={"column": "y"}),
    _num("y_yj0", {"op": "yeo_johnson", "lambda": 0.0}, source={"column": "y"}),
    _num("y_yj2", {"op": "yeo_johnson", "lambda": 2.0}, source={"column": "y"}),
    _num("y_mm", {"op": "min_max", "min": -4.0, "max": 6.0, "range": [-1.0, 1.0]}, source={"column": "y"}),
    _num("y_mm0", {"op": "min_max", "min": 2.0, "max": 2.0, "range": [0.0, 1.0]}, source={"column": "y"}),
    _num("y_rob", {"op": "robust", "median": 0.25, "iqr": 3.0}, source={"column": "y"}),
    _num("y_rob0", {"op": "robust", "median": 0.25, "iqr": 0.0}, source={"column": "y"}),
    _num("y_abs", {"op": "max_abs", "max_abs": 7.5}, source={"column": "y"}),
    _num("y_abs0", {"op": "max_abs", "max_abs": 0.0}, source={"column": "y"}),
    _num("y_bkt", {"op": "bucketize", "boundaries": [-3.0, -0.5, 0.0, 1.25, 4.0], "missing_bucket": None},
         source={"column": "y"}),
    _num("x_bkt", {"op": "bucketize", "boundaries": [-1.0, 0.0, 2.0], "missing_bucket": 4}, source={"column": "x"}),
    _num("x_ibkt", {"op": "impute", "fill": 2.5, "indicator": False},  # imputed, then bucketized
         {"op": "bucketize", "boundaries": [-1.0, 0.0, 2.0], "missing_bucket": None}, source={"column": "x"}),
    _num("area", {"op": "impute", "fill": 3.0, "indicator": False},
         {"op": "categorical_identity", "num_buckets": 10}),
    _num("area_vocab", {"op": "impute", "fill": 7.0, "indicator": False},
         {"op": "vocabulary", "keys": [7.0, 3.0, 12.0], "oov_buckets": 1, "encoding": "index",
                        "size": 4, "numeric": True}, source={"column": "area"}),
    _num("ratio", {"op": "impute", "fill": -1.0, "indicator": True}, source={"ratio": ["y", "x"]}),
    {**_num("s", {"op": "impute", "fill": "b", "indicator": True},
            {"op": "vocabulary", "keys": VOCAB, "oov_buckets": 1, "encoding": "index", "size": 4, "numeric": False}),
     "type": "string"},
    {**_num("s_hot", {"op": "vocabulary", "keys": VOCAB, "oov_buckets": 1, "encoding": "one_hot", "size": 4,
                      "numeric": False}, source={"column": "s"}), "type": "string"},
    _num("t", source={"cyclical": {"column": "ts", "parts": ["hour", "weekday", "month"]}}),
    {"name": "img", "type": "image", "source": {"column": "img"}, "builtin": True,
     "steps": [{"op": "scale", "factor": 1.0 / 255.0},
               {"op": "per_channel_standardize", "mean": [0.2, 0.5, 0.7], "std": [0.3, 0.25, 0.1]}],
     "outputs": [{"name": "img_xf", "kind": "image", "size": 12, "shape": [2, 2, 3]}]},
    {"name": "doc", "type": "string", "source": {"column": "doc"}, "builtin": True,
     "steps": [ondevice_text.tokenize_step({"max_tokens": 5}),
               ondevice_text.vocabulary_step({"op": "vocabulary", "keys": ["the", "cat", "sat"], "oov_buckets": 1,
                                              "encoding": "index", "size": 4, "numeric": False})],
     "outputs": [{"name": "doc_xf", "kind": "sequence", "size": 5, "shape": [5]}]},
]
SPEC = {"features": FEATURES}


def _rows() -> dict[str, np.ndarray]:
    """Raw columns as an app holds them: NaN / "" / negative for missing; float32-exact numbers."""
    rng = np.random.default_rng(5)
    n = 64
    x = rng.normal(0.5, 2.0, n).astype(np.float32)
    x[::7] = np.nan
    x[3] = 0.0
    x[5] = 2.0  # on a bucket boundary
    y = rng.normal(0.0, 3.0, n).astype(np.float32)
    y[1], y[2], y[4] = 0.0, -0.5, 4.0
    pos = rng.uniform(0.05, 50.0, n).astype(np.float32)
    area = rng.integers(0, 14, n).astype(np.float32)
    area[::9] = np.nan
    area[2] = 12.0
    s = np.array([["a", "b", "c", "zz", ""][i % 5] for i in range(n)], dtype=object)
    ts = rng.integers(0, 2_000_000_000, n).astype(np.int64)
    ts[::11] = -1
    img = rng.integers(0, 256, (n, 2, 2, 3)).astype(np.float32)
    words = ["The", "cat", "sat", "on", "the", "mat,", "a", "CAT"]
    doc = np.array([" ".join(words[(i + j) % len(words)] for j in range(i % 9)) for i in range(n)], dtype=object)
    return {"x": x, "y": y, "pos": pos, "area": area, "s": s, "ts": ts, "img": img, "doc": doc}


def _reference() -> dict[str, np.ndarray]:
    return reference.transform(SPEC, _rows())


def _builtin(target: str) -> dict[str, np.ndarray]:
    rows = {**_rows(), **ondevice_text.token_inputs(SPEC, _rows())}
    inputs = {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in rows.items()}
    out = builtin.transformed_features(SPEC, inputs, builtin.vocabulary_tables(SPEC), target)
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("target", builtin.TARGETS)
def test_every_operation_gives_the_same_values_both_ways(target):
    want, got = _reference(), _builtin(target)
    assert set(got) == set(want)
    for name in want:
        w, g = np.asarray(want[name], np.float64), np.asarray(got[name], np.float64).reshape(np.shape(want[name]))
        assert np.isfinite(w).all() or "log" not in name, name
        # float32 (graph) against float64 (reference): a few float32 ulps.
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=2e-6, err_msg=f"{target} {name}")


def test_the_spec_here_reaches_every_operation_of_the_table():
    """An operation added to ops.STEPS without a case here fails (hash: no built-in form; the
    reference's FarmHash is checked against Transform in components/tflite_converter)."""
    from ondevice import ops

    used = {s["op"] for f in FEATURES for s in f["steps"]}
    assert set(ops.STEPS) - used == {"hash"}
    with pytest.raises(ValueError, match="feature h: step hash has no built-in form"):
        ops.feature_outputs(builtin.TF, _num("h", {"op": "hash", "buckets": 4}, source={"column": "s"}),
                            {"s": tf.constant(["a"])})
