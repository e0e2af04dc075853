"""TFLiteConverter's parts on real graphs: an op without a built-in kernel is named, the blessing
rule, and the fallback for steps built-in ops cannot express (hashes, hashed OOV buckets,
crosses): the spec says which and why, the NumPy reference reproduces Transform for them, and
the on-device graph takes them already transformed. The whole component, and every numeric
step on a real Transform graph, run in the pipeline (tests/test_mobile_deployment.py; the
in-memory tf.Transform harness used here does not run some numeric analyzer combinations on
Beam's DirectRunner.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from components.tflite_converter import executor
from features.fitted import fitted_values
from ondevice import builtin, reference
from ondevice import tflite as lite
from ondevice.spec import build_spec, not_builtin
from tests import tft_harness
from tests.conftest import sample_rows


def test_an_op_without_a_builtin_kernel_is_named(tmp_path):
    class Hashing(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="company")])
        def serve(self, company):
            return {"probabilities": tf.cast(tf.strings.to_hash_bucket_fast(company, 10), tf.float32)}

    module = Hashing()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    with pytest.raises(lite.NotBuiltinError, match="StringToHashBucketFast") as err:
        lite.convert(str(tmp_path), "float32")
    assert str(tmp_path) in str(err.value) and "built-in" in str(err.value)


def test_unknown_variant_and_missing_calibration_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown TFLite variant 'int4'"):
        lite.convert(str(tmp_path), "int4")
    with pytest.raises(ValueError, match="TFLiteConverter: config lacks variants, thresholds"):
        executor.run(None, None, None, None, None, json.dumps({"custom_config": {}}))


def _feature(name, type_, *steps, **derived):
    return {"name": name, "type": type_, "steps": [[s, a] for s, a in steps], **derived}


FALLBACK_FEATURES = [
    _feature("payment_x_hour", "string", ("hash", {"buckets": 64}), cross=["payment_type", "trip_start_hour"]),
    _feature("company", "string", ("impute", {"value": ""}), ("vocabulary", {"top_k": 20, "oov_buckets": 5})),
    _feature("payment_type", "string", ("impute", {"strategy": "most_frequent"}),
             ("vocabulary", {"top_k": 10, "encoding": "one_hot"})),
    _feature("dropoff_latitude", "float", ("bucketize", {"num_buckets": 8})),
    _feature("trip_start", "int", cyclical={"column": "trip_start_timestamp", "parts": ["hour", "weekday", "month"]}),
]


@pytest.fixture(scope="module")
def fallback():
    _, sample = sample_rows(2600, seed=21)
    _, (test_out,), out = tft_harness.run(FALLBACK_FEATURES, sample[:2200], sample[2200:])
    spec = build_spec({"features": FALLBACK_FEATURES, "label": tft_harness.LABEL}, out,
                      fitted_values(out.transform_savedmodel_dir))
    return spec, sample[2200:], test_out


def _rows(spec, csv_rows):
    """Raw columns as an app holds them (spec convention)."""
    kinds = {"payment_type": object, "company": object, "trip_start_timestamp": np.int64}
    out = {}
    for c in ("payment_type", "company", "trip_start_hour", "dropoff_latitude", "trip_start_timestamp"):
        values = [r.get(c, "") for r in csv_rows]
        kind = kinds.get(c, np.float32)
        if kind is object:
            out[c] = np.array(values, dtype=object)
        elif kind is np.int64:
            out[c] = np.array([int(float(v)) if v else -1 for v in values], np.int64)
        else:
            out[c] = np.array([float(v) if v else np.nan for v in values], np.float32)
    return out


def test_fallback_spec_names_what_builtin_ops_cannot_do(fallback):
    spec, _, _ = fallback
    reasons = not_builtin(spec)
    assert set(reasons) == {"payment_x_hour", "company"}
    assert any("cross" in r for r in reasons["payment_x_hour"])
    assert any("hash" in r for r in reasons["payment_x_hour"])
    assert any("oov_buckets=5" in r for r in reasons["company"])
    transformed = {i["name"]: i for i in spec["inputs"] if i.get("transformed")}
    assert set(transformed) == {"payment_x_hour_xf", "company_xf"}
    assert all(i["dtype"] == "int64" for i in transformed.values())
    raw = {i["name"] for i in spec["inputs"] if not i.get("transformed")}
    # company and trip_start_hour feed only fallback features: the app sends their transformed values.
    assert raw == {"payment_type", "dropoff_latitude", "trip_start_timestamp"}
    # Every raw column keeps its own dtype, also those only a fallback feature reads (an int
    # column crossed with a string is still a number).
    assert spec["columns"] == {"payment_type": "string", "trip_start_hour": "float32", "company": "string",
                               "dropoff_latitude": "float32", "trip_start_timestamp": "int64"}


def test_reference_reproduces_transform_including_hashes(fallback):
    spec, csv_rows, test_out = fallback
    ref = reference.transform(spec, _rows(spec, csv_rows))
    n = len(csv_rows)
    for name, got in ref.items():
        want = np.asarray(test_out[name]).reshape(n, -1).astype(np.float64)
        np.testing.assert_allclose(np.asarray(got, np.float64).reshape(n, -1), want, atol=1e-5, err_msg=name)
    assert len(np.unique(ref["payment_x_hour_xf"])) > 5  # real hashes, not a constant


def test_builtin_graph_takes_fallback_features_transformed(fallback):
    spec, csv_rows, test_out = fallback
    rows = _rows(spec, csv_rows)
    ref = reference.transform(spec, rows)
    inputs = {}
    for i in spec["inputs"]:
        v = ref[i["name"]].astype(np.int64) if i.get("transformed") else rows[i["name"]]
        inputs[i["name"]] = tf.constant(v.astype(str) if v.dtype == object else v)
    n = len(csv_rows)
    for target in builtin.TARGETS:
        graph = builtin.transformed_features(spec, inputs, builtin.vocabulary_tables(spec), target)
        for name, got in graph.items():
            want = np.asarray(test_out[name]).reshape(n, -1).astype(np.float64)
            np.testing.assert_allclose(got.numpy().astype(np.float64).reshape(n, -1), want, atol=1e-5,
                                       err_msg=f"{target} {name}")


class _VocabularyModel(tf.Module):
    """A string vocabulary (hash table, as builtin.py builds it) into an embedding and a Dense layer,
    with a raw number scaled on the way: the decision depends on the looked-up index."""

    def __init__(self):
        super().__init__()
        keys = tf.constant(["a", "b", "c", "d"])
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(4, dtype=tf.int64)), default_value=4)
        rng = np.random.default_rng(0)
        self.embedding = tf.Variable(np.array([[-3, 1], [-1, 2], [1, -2], [3, 1], [0, 0]], np.float32)
                                     + rng.normal(0, 0.1, (5, 2)).astype(np.float32))
        self.dense = tf.Variable(rng.normal(0, 1, (3, 16)).astype(np.float32))
        self.out = tf.Variable(np.abs(rng.normal(0, 1, (16, 1))).astype(np.float32) * np.sign(
            self.dense.numpy()[0:1].T))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="company"),
                                  tf.TensorSpec([None], tf.float32, name="seconds")])
    def serve(self, company, seconds):
        emb = tf.gather(self.embedding, self.table.lookup(company))
        x = tf.concat([emb, tf.reshape((seconds - 600.0) / 900.0, [-1, 1])], axis=1)
        hidden = tf.nn.relu(tf.matmul(x, self.dense))
        return {"probabilities": tf.sigmoid(tf.matmul(hidden, self.out) - 0.5)}


def test_int8_calibrates_with_initialized_tables_and_quantizes_the_model_part_only(tmp_path):
    """TFLite's calibrator leaves hash tables empty (every lookup is OOV while it records ranges);
    the int8 variant re-measures the ranges in LiteRT and keeps the preprocessing float. Before,
    this model's int8 output was clamped like taxi's (agreement ~0.5-0.7)."""
    module = _VocabularyModel()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    rng = np.random.default_rng(1)

    def rows(n):
        return {"company": rng.choice(np.array(["a", "b", "c", "d", "zz"], dtype=object), n),
                "seconds": rng.uniform(0, 3600, n).astype(np.float32)}

    train, test = rows(200), rows(1000)
    representative = [{k: v[i:i + 1] for k, v in train.items()} for i in range(200)]
    want = module.serve(tf.constant(test["company"].astype(str)), tf.constant(test["seconds"]))
    want = want["probabilities"].numpy().reshape(-1)
    assert 0.2 < (want > 0.5).mean() < 0.8  # both decisions occur
    content = lite.convert(str(tmp_path), "int8", representative)
    got = lite.predict(content, test)
    assert np.mean((got > 0.5) == (want > 0.5)) >= 0.99
    assert set(lite.quantized_ops(content)) <= {"FULLY_CONNECTED", "GATHER", "QUANTIZE"}
    assert "FULLY_CONNECTED" in lite.quantized_ops(content)
