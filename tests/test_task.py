"""features.task: the one label/task definition. The numpy label (FeatureSelector) must equal the
TF label (Transform) for every rule; heads, parity and thresholds differ per task as documented."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from features import task
from features.task import BINARY, MULTICLASS, REGRESSION, Label


def _sparse(values: list, dtype: tf.DType) -> tf.SparseTensor:
    """A raw column as Transform receives it: [batch, 1] sparse, missing = absent."""
    present = [i for i, v in enumerate(values) if v is not None]
    return tf.SparseTensor([[i, 0] for i in present], tf.constant([values[i] for i in present], dtype),
                           [len(values), 1])


@pytest.mark.parametrize("values,dtype,label", [
    (["yes", "no", None, "yes", "maybe"], tf.string, Label("y", "c", BINARY, positive_class="yes")),
    ([1, 0, 2, None, 1], tf.int64, Label("y", "c", BINARY, positive_class="1")),
])
def test_positive_class_label_is_the_same_in_numpy_and_tf(values, dtype, label):
    # A missing value is never positive; the numpy and TF rules agree row by row.
    ours = task.label_values(values, label)
    theirs = task.label_tensor({"c": _sparse(values, dtype)}, label).numpy()
    np.testing.assert_array_equal(ours, theirs)
    assert ours.tolist() == [int(v is not None and task.token(v) == label.positive_class) for v in values]


def test_class_tokens_match_the_graph_tokens():
    # Integers print without a fraction and floats as %f in both, so a numeric class column
    # gives the same class names to the config check, DataCleaner and Transform.
    from features.feature_steps import as_tokens

    values = [7.0, 2.5, -1.0, 0.0]
    graph = [t.decode() for t in as_tokens(tf.constant(values, tf.float32)).numpy()]
    assert [task.token(v) for v in values] == graph == ["7", "2.500000", "-1", "0"]
    assert task.token(b"setosa") == "setosa" and task.token(3) == "3"


def test_threshold_rule_counts_missing_as_negative():
    label = Label("big_tipper", "tips", BINARY, greater_than=1.0)
    assert task.label_values([2.0, None, 0.5], label).tolist() == [1, 0, 0]


def test_heads_per_task():
    assert task.head(Label("y", "c", BINARY, positive_class="a")).activation == "sigmoid"
    multi = task.head(Label("y", "c", MULTICLASS), num_classes=4)
    assert (multi.units, multi.activation, multi.loss, multi.monitor_mode) == (
        4, "softmax", "sparse_categorical_crossentropy", "max")
    reg = task.head(Label("y", "c", REGRESSION))
    assert (reg.units, reg.activation, reg.loss, reg.monitor, reg.monitor_mode) == (1, None, "mse", "val_rmse", "min")
    with pytest.raises(ValueError, match="at least 2 classes"):
        task.head(Label("y", "species", MULTICLASS), num_classes=1)


def test_parity_per_task():
    # binary: p > 0.5 decides; an output of exactly 0.5 is negative (as TFMA).
    b = task.parity(BINARY, np.array([0.1, 0.5, 0.5, 0.9]), np.array([0.1, 0.6, 0.5, 0.9]))
    assert b["max_abs_diff"] == pytest.approx(0.1) and b["agreement"] == 0.75
    assert task.blessed(b, {"max_abs_diff": 0.2}) == (True, [])
    ok, failures = task.blessed(b, {"max_abs_diff": 0.01, "min_agreement": 0.99})
    assert not ok and len(failures) == 2 and "agreement 0.7500 < 0.99" in failures[1]
    # multiclass: the same argmax, whatever the probabilities' small differences.
    ref = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3]])
    m = task.parity(MULTICLASS, np.array([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25]]), ref)
    assert m["agreement"] == 0.5 and m["max_abs_diff"] == pytest.approx(0.1)
    # regression: relative error; 1% decides agreement.
    r = task.parity(REGRESSION, np.array([1000.5, 20.0, 5.0]), np.array([1000.0, 20.0, 5.2]))
    assert r["max_abs_diff"] == pytest.approx(0.5) and r["max_rel_diff"] == pytest.approx(0.2 / 5.2)
    assert r["agreement"] == pytest.approx(2 / 3)
    assert task.blessed(r, {"max_rel_diff": 1e-2})[1] == ["max_rel_diff 0.0385 > 0.01"]


def test_regression_target_inverse_undoes_the_transform():
    label = Label("price_label", "price", REGRESSION, transform="z_score")
    inverse = task.target_inverse(label, {("price_label", 0, "mean"): 100.0, ("price_label", 0, "std"): 20.0})
    np.testing.assert_allclose(inverse(tf.constant([[0.0], [1.5]])).numpy(), [[100.0], [130.0]])
    log = task.target_inverse(Label("p", "price", REGRESSION, transform="log1p"), {})
    np.testing.assert_allclose(log(tf.math.log1p(tf.constant([326.0, 18823.0]))).numpy(), [326.0, 18823.0],
                               rtol=1e-5)


def test_serving_outputs_follow_tf_serving_names():
    probs = tf.constant([[0.2], [0.9]])
    out = task.serving_outputs(Label("y", "c", BINARY, positive_class="yes"), probs, ["not yes", "yes"])
    assert out["classes"].numpy().tolist() == [[b"not yes", b"yes"]] * 2
    np.testing.assert_allclose(out["scores"].numpy(), [[0.8, 0.2], [0.1, 0.9]], rtol=1e-6)
    multi = task.serving_outputs(Label("y", "c", MULTICLASS), tf.constant([[0.1, 0.9]]), ["a", "b"])
    assert set(multi) == {"probabilities", "classes", "scores"} and multi["classes"].shape == (1, 2)
    reg = task.serving_outputs(Label("y", "c", REGRESSION), tf.constant([[1.0]]), [], lambda y: y * 2)
    assert set(reg) == {"outputs"} and float(reg["outputs"][0, 0]) == 2.0


# --- the label through real tf.Transform (fit on train rows, applied to others) ---------------
def _taxi_rows(values: list[str | None], column: str = "payment_type") -> list[dict[str, str]]:
    return [{column: "" if v is None else v, "fare": "1.0"} for v in values]


FARE = [{"name": "fare", "type": "float", "steps": [["z_score", {}]]}]


def test_multiclass_classes_come_from_train_only_and_unseen_is_minus_one():
    from tests import tft_harness

    label = Label("payment_label", "payment_type", MULTICLASS).to_json()
    train = _taxi_rows(["Cash", "Credit Card", "Cash", "Cash", "Credit Card", "Dispute"])
    evaluation = _taxi_rows(["Dispute", "Mobile", "Cash"])
    out, (other,), tft_out = tft_harness.run(FARE, train, evaluation, label=label)
    classes = task.class_names(Label.from_json(label), tft_out)
    assert classes == ["Cash", "Credit Card", "Dispute"]  # most frequent first; "Mobile" is not in train
    assert task.num_classes(Label.from_json(label), tft_out) == 3
    assert [classes[i] for i in out["payment_label"]] == ["Cash", "Credit Card", "Cash", "Cash", "Credit Card",
                                                          "Dispute"]
    assert other["payment_label"].tolist() == [2, -1, 0]  # DataCleaner stops a run before this reaches Trainer


def test_positive_class_label_through_transform_matches_feature_selectors():
    from tests import tft_harness

    label = Label("cash", "payment_type", BINARY, positive_class="Cash")
    values = ["Cash", "Credit Card", None, "Cash"]
    out, _, _ = tft_harness.run(FARE, _taxi_rows(values), label=label.to_json())
    assert out["cash"].tolist() == task.label_values(values, label).tolist() == [1, 0, 0, 1]


def test_regression_z_score_target_is_fitted_on_train_and_named_for_the_inverse():
    from features.fitted import fitted_values
    from tests import tft_harness

    label = Label("tips_label", "tips", REGRESSION, transform="z_score")
    train = [{"tips": t, "fare": "1.0"} for t in ("1.0", "3.0", "5.0", "7.0")]
    out, (other,), tft_out = tft_harness.run(FARE, train, [{"tips": "9.0", "fare": "1.0"}], label=label.to_json())
    np.testing.assert_allclose(out["tips_label"], [-1.3416, -0.4472, 0.4472, 1.3416], atol=1e-4)
    fitted = fitted_values(tft_out.transform_savedmodel_dir)
    assert float(fitted[("tips_label", 0, "mean")]) == pytest.approx(4.0)
    inverse = task.target_inverse(label, fitted)
    np.testing.assert_allclose(inverse(tf.constant(other["tips_label"])).numpy(), [9.0], rtol=1e-5)
