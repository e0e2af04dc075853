"""Every preprocessing step, fitted by tf.Transform on real taxi rows, against reference
implementations nobody here wrote: scikit-learn, SciPy, NumPy and pandas.

Tolerances: float32 arithmetic gives ~1e-5 relative error, so exact steps are compared at
atol 1e-4 on standardized scales (mean imputation then z-score: 8.6e-5 measured at most, on
z-scores up to ~5; 1e-5 fails). tf.Transform's quantiles are approximate (a rank error
of at most epsilon = 0.001 of the rows): steps fitted from quantiles (median imputation,
robust scaling, IQR/quantile clipping, bucketizing) are checked against the exact
quantiles at q ± 0.005 and, for bucketizing, by the fraction of rows that land in a
different bucket than scikit-learn's (≤ 2%, never more than one bucket away).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.preprocessing import (
    KBinsDiscretizer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PowerTransformer,
    StandardScaler,
)

from features import feature_steps
from tests import tft_harness
from tests.conftest import sample_rows

RANK_TOLERANCE = 0.005


def _frame(rows):
    df = pd.DataFrame(rows).mask(lambda d: d == "")
    for col, dtype in tft_harness.TAXI_TYPES.items():
        if dtype.name != "string":
            df[col] = pd.to_numeric(df[col])
    return df


def _within_rank(value, data, q):
    lo, hi = np.quantile(data, [max(0.0, q - RANK_TOLERANCE), min(1.0, q + RANK_TOLERANCE)])
    return lo - 1e-6 <= value <= hi + 1e-6


def feature(name, type_, *steps, **derived):
    return {"name": name, "type": type_, "steps": [[s, a] if isinstance(s, str) else s for s, a in steps],
            **derived}


@pytest.fixture(scope="module")
def rows():
    _, sample = sample_rows(4500, seed=11)
    return sample[:4000], sample[4000:]


@pytest.fixture(scope="module")
def run_a(rows):
    train, other = rows
    features = [
        feature("dropoff_latitude", "float", ("impute", {"strategy": "mean", "indicator": True}), ("z_score", {})),
        feature("dropoff_longitude", "float", ("impute", {"strategy": "median"}), ("min_max", {"min": -1, "max": 1})),
        feature("company", "string", ("impute", {"strategy": "most_frequent"}), ("vocabulary", {"top_k": 20})),
        feature("payment_type", "string", ("vocabulary", {"top_k": 10, "oov_buckets": 2, "encoding": "one_hot"})),
        feature("dropoff_community_area", "int", ("impute", {"strategy": "most_frequent"}),
                ("categorical_identity", {"num_buckets": 100})),
        feature("trip_seconds", "int", ("impute", {"strategy": "constant", "value": 0}), ("max_abs", {})),
        feature("fare", "float", ("yeo_johnson", {})),
        feature("pickup_community_area", "int", ("impute", {"strategy": "mean"}), ("box_cox", {})),
        feature("trip_miles", "float", ("robust", {})),
        feature("pickup_longitude", "float", ("bucketize", {"num_buckets": 10})),
        feature("trip_start_hour", "int", ("hash", {"buckets": 16})),
    ]
    train_out, (other_out,), output = tft_harness.run(features, train, other)
    return _frame(train), train_out, _frame(other), other_out, output


@pytest.fixture(scope="module")
def run_b(rows):
    train, _ = rows
    features = [
        feature("fare", "float", ("clip", {"method": "iqr", "k": 1.5})),
        feature("trip_miles", "float", ("clip", {"method": "quantile", "lower": 0.01, "upper": 0.99})),
        feature("trip_seconds", "int", ("impute", {"strategy": "median"}), ("clip", {"method": "z_score", "k": 3})),
        feature("tips", "float", ("log1p", {})),
        feature("pickup_latitude", "float", ("impute", {"strategy": "mean"}), ("log", {})),
        feature("fare_per_mile", "float", ("impute", {"strategy": "constant", "value": -1.0}),
                ratio=["fare", "trip_miles"]),
        feature("pay_x_hour", "string", ("vocabulary", {"top_k": 500}), cross=["payment_type", "trip_start_hour"]),
        feature("start", "int", cyclical={"column": "trip_start_timestamp", "parts": ["hour", "weekday", "month"]}),
    ]
    train_out, _, output = tft_harness.run(features, train)
    return _frame(train), train_out, output


# ------------------------------------------------------------------ imputation and scaling
def test_mean_imputation_then_z_score_equals_sklearn(run_a):
    df, out, *_ = run_a
    col = df[["dropoff_latitude"]]
    assert col.isna().sum().item() > 0, "the sample must contain missing values"
    expected = StandardScaler().fit_transform(SimpleImputer(strategy="mean").fit_transform(col)).ravel()
    np.testing.assert_allclose(out["dropoff_latitude_xf"], expected, atol=1e-4)
    indicator = MissingIndicator(features="all").fit_transform(col).ravel().astype(float)
    np.testing.assert_array_equal(out["dropoff_latitude_missing_xf"], indicator)


def test_median_imputation_then_min_max(run_a):
    df, out, *_ = run_a
    col = df["dropoff_longitude"]
    missing = col.isna().to_numpy()
    fitted = out["dropoff_longitude_xf"][missing][0]
    assert np.all(out["dropoff_longitude_xf"][missing] == fitted)
    present = col.dropna().to_numpy()
    # Undo the min-max scaling with the exact min and max to recover the fitted median.
    lo, hi = present.min(), present.max()
    median = (fitted + 1) / 2 * (hi - lo) + lo
    assert _within_rank(median, present, 0.5), (median, np.median(present))
    expected = MinMaxScaler((-1, 1)).fit_transform(np.where(missing, median, col.to_numpy())[:, None]).ravel()
    np.testing.assert_allclose(out["dropoff_longitude_xf"], expected, atol=1e-4)


def test_most_frequent_imputation_equals_sklearn(run_a):
    df, out, *_, output = run_a
    company = SimpleImputer(strategy="most_frequent").fit_transform(df[["company"]].fillna(np.nan)).ravel()
    vocab = [t.decode() for t in output.vocabulary_by_name("vocab_company")]
    codes = out["company_xf"]
    decoded = np.array([vocab[c] if c < len(vocab) else "<oov>" for c in codes])
    expected = np.where(pd.Series(company).isin(vocab), company, "<oov>")
    np.testing.assert_array_equal(decoded, expected)
    area = SimpleImputer(strategy="most_frequent").fit_transform(df[["dropoff_community_area"]]).ravel()
    np.testing.assert_array_equal(out["dropoff_community_area_xf"], area.astype(np.int64))


def test_label_encoding_equals_ordinal_encoder_and_top_k_equals_pandas(run_a):
    df, out, *_, output = run_a
    vocab = [t.decode() for t in output.vocabulary_by_name("vocab_company")]
    filled = df["company"].fillna(df["company"].mode()[0])
    counts = filled.value_counts()
    assert len(vocab) == 20
    assert counts[vocab].min() >= counts.drop(vocab).max()  # a true top-20 (ties at the edge either way)
    seen = filled.isin(vocab).to_numpy()
    encoder = OrdinalEncoder(categories=[vocab]).fit(filled[seen].to_frame())
    np.testing.assert_array_equal(out["company_xf"][seen], encoder.transform(filled[seen].to_frame()).ravel())
    assert np.all(out["company_xf"][~seen] == 20)  # the OOV bucket


def test_one_hot_equals_one_hot_encoder(run_a):
    df, out, other_df, other_out, output = run_a
    vocab = [t.decode() for t in output.vocabulary_by_name("vocab_payment_type")]
    got = out["payment_type_xf"]
    assert got.shape == (len(df), 12)  # top_k 10 + 2 OOV buckets
    encoder = OneHotEncoder(categories=[vocab], sparse_output=False).fit(df[["payment_type"]])
    np.testing.assert_array_equal(got[:, : len(vocab)], encoder.transform(df[["payment_type"]]))
    assert got[:, len(vocab):].sum() == 0  # every train value is in the vocabulary
    np.testing.assert_array_equal(other_out["payment_type_xf"].sum(axis=1), np.ones(len(other_df)))


def test_constant_imputation_then_max_abs(run_a):
    df, out, *_ = run_a
    filled = SimpleImputer(strategy="constant", fill_value=0).fit_transform(df[["trip_seconds"]])
    np.testing.assert_allclose(out["trip_seconds_xf"], MaxAbsScaler().fit_transform(filled).ravel(), atol=1e-6)


# ---------------------------------------------------------------------- power transforms
def _recover_lambda(x, y, kind):
    """λ whose transform of x gives y (closed form per value, median over values)."""
    lams = np.linspace(-5, 5, 200001)
    best = min(lams[::1000], key=lambda lam: np.abs(_pt(x, lam, kind) - y).max())
    fine = lams[(lams > best - 0.05) & (lams < best + 0.05)]
    return min(fine, key=lambda lam: np.abs(_pt(x, lam, kind) - y).max())


def _pt(x, lam, kind):
    if kind == "box_cox":
        return scipy.stats.boxcox(x, lam)
    return scipy.stats.yeojohnson(x, lam)


def test_yeo_johnson_lambda_equals_scipy_and_sklearn(run_a):
    df, out, *_ = run_a
    x = df["fare"].to_numpy(dtype=np.float64)
    _, lam_scipy = scipy.stats.yeojohnson(x)
    sk = PowerTransformer(method="yeo-johnson", standardize=False).fit(x[:, None])
    lam = _recover_lambda(x[:50], out["fare_xf"][:50].astype(np.float64), "yeo_johnson")
    assert abs(lam - lam_scipy) < 1e-3, (lam, lam_scipy)
    assert abs(lam - sk.lambdas_[0]) < 1e-3, (lam, sk.lambdas_[0])
    np.testing.assert_allclose(out["fare_xf"], sk.transform(x[:, None]).ravel(), rtol=2e-3, atol=2e-3)


def test_box_cox_lambda_equals_scipy_and_sklearn(run_a):
    df, out, *_ = run_a
    x = SimpleImputer(strategy="mean").fit_transform(df[["pickup_community_area"]]).ravel()
    x = x.astype(np.float32).astype(np.float64)
    _, lam_scipy = scipy.stats.boxcox(x)
    sk = PowerTransformer(method="box-cox", standardize=False).fit(x[:, None])
    got = out["pickup_community_area_xf"].astype(np.float64)
    lam = _recover_lambda(x[:200], got[:200], "box_cox")
    assert abs(lam_scipy - sk.lambdas_[0]) < 1e-3
    assert abs(lam - lam_scipy) < 1e-3, (lam, lam_scipy)
    np.testing.assert_allclose(got, sk.transform(x[:, None]).ravel(), rtol=1e-4, atol=1e-4)


def test_power_lambda_analyzer_precision_on_skewed_data():
    """λ straight from the analyzer (float64 graph) on real skewed, positive data: within 1e-3 of SciPy."""
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata

    _, sample = sample_rows(3000, seed=5)
    fares = np.array([float(r["fare"]) for r in sample if float(r["fare"]) > 0])
    miles = np.array([float(r["trip_miles"]) for r in sample])
    spec = {"x": tf.io.FixedLenFeature([], tf.float32), "y": tf.io.FixedLenFeature([], tf.float32)}
    n = min(len(fares), len(miles))
    data = [{"x": float(a), "y": float(b)} for a, b in zip(fares[:n], miles[:n], strict=True)]

    def fn(inputs):
        lam_bc = feature_steps.power_lambda(inputs["x"], "box_cox")
        lam_yj = feature_steps.power_lambda(inputs["y"], "yeo_johnson")
        return {"bc": tf.zeros_like(inputs["x"]) + tf.cast(lam_bc, tf.float32),
                "yj": tf.zeros_like(inputs["y"]) + tf.cast(lam_yj, tf.float32)}

    import tempfile

    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (out, _), _ = ((data, dataset_metadata.DatasetMetadata.from_feature_spec(spec))
                       | tft_beam.AnalyzeAndTransformDataset(fn))
    x = np.array([d["x"] for d in data], np.float32).astype(np.float64)
    y = np.array([d["y"] for d in data], np.float32).astype(np.float64)
    assert abs(out[0]["bc"] - scipy.stats.boxcox(x)[1]) < 1e-3
    assert abs(out[0]["yj"] - scipy.stats.yeojohnson(y)[1]) < 1e-3


# ---------------------------------------------------------------- quantile-based steps
def test_robust_scaling_against_robust_scaler(run_a):
    df, out, *_ = run_a
    x = df["trip_miles"].to_numpy()
    got = out["trip_miles_xf"]
    # Recover the fitted centre and scale from two distinct values, then bound them by rank.
    i, j = np.argmin(x), np.argmax(x)
    scale = (x[j] - x[i]) / (got[j] - got[i])
    center = x[i] - got[i] * scale
    assert _within_rank(center, x, 0.5)
    q1_lo, q3_hi = np.quantile(x, [0.25 - RANK_TOLERANCE, 0.75 + RANK_TOLERANCE])
    q1_hi, q3_lo = np.quantile(x, [0.25 + RANK_TOLERANCE, 0.75 - RANK_TOLERANCE])
    assert q3_lo - q1_hi - 1e-6 <= scale <= q3_hi - q1_lo + 1e-6


def test_bucketize_against_kbins_quantile(run_a):
    df, out, *_ = run_a
    col = df["pickup_longitude"]
    present = col.notna().to_numpy()
    got = out["pickup_longitude_xf"]
    assert np.all(got[~present] == 10)  # missing values get their own bucket
    kb = KBinsDiscretizer(n_bins=10, encode="ordinal", strategy="quantile", subsample=None)
    expected = kb.fit_transform(col[present].to_numpy()[:, None]).ravel().astype(int)
    differ = got[present] != expected
    assert differ.mean() <= 0.02, differ.mean()
    assert np.abs(got[present] - expected).max() <= 1


def test_hash_is_deterministic_and_in_range(run_a):
    df, out, other_df, other_out, _ = run_a
    assert out["trip_start_hour_xf"].min() >= 0 and out["trip_start_hour_xf"].max() < 16
    by_hour = pd.Series(out["trip_start_hour_xf"]).groupby(df["trip_start_hour"].to_numpy()).nunique()
    assert (by_hour == 1).all()  # one bucket per value
    mapping = dict(zip(df["trip_start_hour"], out["trip_start_hour_xf"], strict=True))
    for hour, bucket in zip(other_df["trip_start_hour"], other_out["trip_start_hour_xf"], strict=True):
        assert mapping.get(hour, bucket) == bucket


def test_hash_buckets_equal_tensorflow_farmhash(run_a):
    """Each value's bucket is FarmHash64(token) mod 16 of its integer token ("7"), computed here with
    TF's own tf.strings.to_hash_bucket_fast: a step that hashed something else (the float "7.0", a
    salted hash, a constant bucket) fails. The 24 hours must also spread over several buckets."""
    import tensorflow as tf

    df, out, other_df, other_out, _ = run_a
    for frame, result in ((df, out), (other_df, other_out)):
        hours = frame["trip_start_hour"].to_numpy()
        assert not np.isnan(hours.astype(float)).any()  # no missing hour: every token is a number
        tokens = tf.constant([str(int(h)) for h in hours])
        expected = tf.strings.to_hash_bucket_fast(tokens, 16).numpy()
        np.testing.assert_array_equal(result["trip_start_hour_xf"].astype(np.int64).ravel(), expected)
    assert len(set(out["trip_start_hour_xf"].ravel().tolist())) >= 8, set(out["trip_start_hour_xf"].ravel().tolist())


def test_clipping_bounds(run_b):
    df, out, _ = run_b
    fare = df["fare"].to_numpy()
    hi = out["fare_xf"].max()
    q1, q3 = np.quantile(fare, [0.25, 0.75])
    exact_hi = q3 + 1.5 * (q3 - q1)
    loose = np.quantile(fare, [0.25 - RANK_TOLERANCE, 0.25 + RANK_TOLERANCE, 0.75 - RANK_TOLERANCE,
                               0.75 + RANK_TOLERANCE])
    assert loose[2] + 1.5 * (loose[2] - loose[1]) - 1e-4 <= hi <= loose[3] + 1.5 * (loose[3] - loose[0]) + 1e-4
    assert abs(hi - exact_hi) / exact_hi < 0.05
    np.testing.assert_allclose(out["fare_xf"], np.clip(fare, out["fare_xf"].min(), hi), atol=1e-4)

    miles = df["trip_miles"].to_numpy()
    assert _within_rank(out["trip_miles_xf"].max(), miles, 0.99)
    assert _within_rank(out["trip_miles_xf"].min(), miles, 0.01)

    seconds = df["trip_seconds"].to_numpy()
    median = out["trip_seconds_xf"][np.isnan(seconds)][0] if np.isnan(seconds).any() else np.nanmedian(seconds)
    filled = np.where(np.isnan(seconds), median, seconds)
    lo, hi = filled.mean() - 3 * filled.std(), filled.mean() + 3 * filled.std()
    np.testing.assert_allclose(out["trip_seconds_xf"], np.clip(filled, lo, hi), rtol=1e-4)


def test_logs(run_b):
    df, out, _ = run_b
    np.testing.assert_allclose(out["tips_xf"], np.log1p(df["tips"].to_numpy()), rtol=1e-5, atol=1e-6)
    lat = SimpleImputer(strategy="mean").fit_transform(df[["pickup_latitude"]]).ravel()
    np.testing.assert_allclose(out["pickup_latitude_xf"], np.log(lat), rtol=1e-5)


# -------------------------------------------------------------------- derived features
def test_ratio_feature_equals_pandas(run_b):
    df, out, _ = run_b
    ratio = (df["fare"] / df["trip_miles"]).where(df["trip_miles"] != 0)
    expected = ratio.fillna(-1.0).to_numpy()
    np.testing.assert_allclose(out["fare_per_mile_xf"], expected, rtol=1e-5)


def test_feature_cross_vocabulary_equals_pandas(run_b):
    df, out, output = run_b
    crossed = df["payment_type"] + "_x_" + df["trip_start_hour"].astype(int).astype(str)
    vocab = [t.decode() for t in output.vocabulary_by_name("vocab_pay_x_hour")]
    assert set(vocab) == set(crossed)
    np.testing.assert_array_equal(np.array(vocab)[out["pay_x_hour_xf"]], crossed.to_numpy())


def test_cyclical_time_features_equal_pandas(run_b):
    df, out, _ = run_b
    ts = pd.to_datetime(df["trip_start_timestamp"], unit="s")
    hour = ts.dt.hour + ts.dt.minute / 60 + ts.dt.second / 3600
    assert (ts.dt.hour == df["trip_start_hour"]).all()  # the data's own hour column agrees
    cases = {"hour": (hour, 24), "weekday": (ts.dt.dayofweek, 7), "month": (ts.dt.month - 1, 12)}
    for part, (value, period) in cases.items():
        angle = 2 * np.pi * value.to_numpy() / period
        np.testing.assert_allclose(out[f"start_{part}_sin_xf"], np.sin(angle), atol=1e-5)
        np.testing.assert_allclose(out[f"start_{part}_cos_xf"], np.cos(angle), atol=1e-5)


def test_fitted_on_train_only(rows):
    """Analysis sees only the train rows: any other rows transformed with the same fit leave the
    train outputs, and the fitted parameters, unchanged."""
    train, other = rows
    feats = [feature("dropoff_latitude", "float", ("impute", {"strategy": "mean"}), ("z_score", {})),
             feature("company", "string", ("vocabulary", {"top_k": 5}))]
    shifted = [dict(r, dropoff_latitude="99.0", company="NEW CO") for r in other]
    a, _, _ = tft_harness.run(feats, train, other)
    b, (b_other,), _ = tft_harness.run(feats, train, shifted)
    for key in a:
        # Beam combines partial sums in no fixed order: float32 rounding may differ, nothing more.
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6, err_msg=key)
    assert np.all(b_other["company_xf"] == 5)  # unseen company -> OOV, not a new vocabulary entry
