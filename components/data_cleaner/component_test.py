"""DataCleaner on real taxi rows, run by LocalDagRunner after real CsvExampleGen/StatisticsGen/SchemaGen,
checked independently with pandas: fitted values, rows per rule per split, the written examples and schema."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.data_cleaner import DataCleaner, executor
from components.data_cleaner.rules import parse_rules

TAXI_CSV = Path(__file__).resolve().parents[2] / "data" / "taxi" / "data.csv"
SPLIT_BUCKETS = {"train": 6, "eval": 2, "test": 2}
SPLITS = tuple(SPLIT_BUCKETS)
RULES = {
    "drop_columns_missing_fraction": 0.25,  # drops the census tracts (~28% and ~100% missing) but not `company`
    "protected_columns": ["company", "tips"],  # `company` is ~34% missing: kept, reported
    "drop_rows_missing": ["trip_seconds", "pickup_latitude"],
    # dropoff_census_tract is dropped from the output by step (1) but still counted here.
    "max_missing_per_row": {"columns": ["dropoff_latitude", "dropoff_longitude", "dropoff_community_area",
                                        "dropoff_census_tract"], "max": 1},
    "remove_outliers": [
        {"column": "fare", "method": "iqr", "k": 1.5},
        {"column": "trip_miles", "method": "quantile", "lower": 0.01, "upper": 0.99},
        {"column": "trip_seconds", "method": "z_score", "k": 3.0},  # an INT column
    ],
}


# ---- the real pipeline, run once ----------------------------------------------------------------------

def _artifact(store: metadata_store.MetadataStore, type_name: str, producer: str) -> tfx.dsl.Artifact:
    [artifact] = [a for a in store.get_artifacts_by_type(type_name) if f"/{producer}/" in a.uri]
    return artifact


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("data_cleaner")
    with TAXI_CSV.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    (root / "data").mkdir()
    with (root / "data" / "data.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(random.Random(11).sample(rows, 3000))

    example_gen = tfx.components.CsvExampleGen(
        input_base=str(root / "data"),
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=b) for name, b in SPLIT_BUCKETS.items()])))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    cleaner = DataCleaner(examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
                          rules=json.dumps(RULES))
    # A stock TFX component reads the cleaned examples and schema.
    statistics_after = tfx.components.StatisticsGen(
        examples=cleaner.outputs["cleaned_examples"], schema=cleaner.outputs["cleaned_schema"],
    ).with_id("StatisticsGen_cleaned")
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="data_cleaner_test", pipeline_root=str(root / "pipeline_root"),
        components=[example_gen, statistics_gen, schema_gen, cleaner, statistics_after], enable_cache=False,
        metadata_connection_config=metadata, beam_pipeline_args=["--direct_num_workers=1"]))

    store = metadata_store.MetadataStore(metadata)
    artifacts = {
        "examples": _artifact(store, "Examples", "CsvExampleGen"),
        "schema": _artifact(store, "Schema", "SchemaGen"),
        "cleaned_examples": _artifact(store, "Examples", "DataCleaner"),
        "cleaned_schema": _artifact(store, "Schema", "DataCleaner"),
        "report": _artifact(store, "CleaningReport", "DataCleaner"),
        "statistics_after": _artifact(store, "ExampleStatistics", "StatisticsGen_cleaned"),
    }
    uris = {key: a.uri for key, a in artifacts.items()}
    report = json.loads((Path(uris["report"]) / "report.json").read_text())
    return {"uris": uris, "artifacts": artifacts, "report": report, "root": root,
            "schema": io_utils.SchemaReader().read(str(Path(uris["schema"]) / "schema.pbtxt"))}


# ---- reading examples back, and the pandas reference ----------------------------------------------------

def _records(uri: str, split: str) -> list[tf.train.Example]:
    files = sorted(str(p) for p in (Path(uri) / f"Split-{split}").glob("*.gz"))
    assert files, f"no gzipped TFRecords under {uri}/Split-{split}"
    return [tf.train.Example.FromString(r) for r in tf.data.TFRecordDataset(files, "GZIP").as_numpy_iterator()]


def _frame(examples: list[tf.train.Example], columns: list[str]) -> pd.DataFrame:
    rows = []
    for example in examples:
        row = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = getattr(feature, kind).value if kind else []
            if len(values):
                row[name] = values[0].decode() if kind == "bytes_list" else values[0]
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=columns)


@pytest.fixture(scope="module")
def frames(run):
    columns = [f.name for f in run["schema"].feature]
    return {s: _frame(_records(run["uris"]["examples"], s), columns) for s in SPLITS}


def pandas_clean(frames: dict[str, pd.DataFrame], rules: dict, fit: str = "train") -> dict:
    """The rules applied with pandas, independently of the executor."""
    missing = frames[fit].isna().mean()
    over = sorted(missing[missing > rules["drop_columns_missing_fraction"]].index)
    counts: dict[str, list[tuple[int, int]]] = {s: [] for s in frames}
    current = dict(frames)

    def apply(keep_by_split):
        for s, df in current.items():
            kept = df[keep_by_split(df)]
            counts[s].append((len(df), len(kept)))
            current[s] = kept

    apply(lambda df: df[rules["drop_rows_missing"]].notna().all(axis=1))
    spec = rules["max_missing_per_row"]
    apply(lambda df: df[spec["columns"]].isna().sum(axis=1) <= spec["max"])
    fitted = {}
    for rule in rules["remove_outliers"]:
        x = current[fit][rule["column"]].dropna().astype(float)
        if rule["method"] == "quantile":
            lower, upper = x.quantile(rule["lower"]), x.quantile(rule["upper"])
        elif rule["method"] == "iqr":
            q1, q3 = x.quantile(0.25), x.quantile(0.75)
            lower, upper = q1 - rule["k"] * (q3 - q1), q3 + rule["k"] * (q3 - q1)
        else:
            lower, upper = x.mean() - rule["k"] * x.std(ddof=0), x.mean() + rule["k"] * x.std(ddof=0)
        fitted[rule["column"]] = (lower, upper)
        apply(lambda df, c=rule["column"], lo=lower, hi=upper: df[c].isna() | df[c].between(lo, hi))
    return {"missing": missing, "over": over, "counts": counts, "fitted": fitted, "cleaned": current}


@pytest.fixture(scope="module")
def expected(frames):
    return pandas_clean(frames, RULES)


# ---- the pipeline run against pandas --------------------------------------------------------------------

def test_fitted_bounds_equal_pandas_on_train(run, expected):
    fitted = run["report"]["fitted"]
    assert list(expected["fitted"]) == ["fare", "trip_miles", "trip_seconds"]
    for column, (lower, upper) in expected["fitted"].items():
        assert fitted[column]["lower"] == pytest.approx(lower, rel=1e-6), column
        assert fitted[column]["upper"] == pytest.approx(upper, rel=1e-6), column
    missing = fitted["missing_fraction"]
    assert missing == pytest.approx(expected["missing"].to_dict(), rel=1e-9)


def test_dropped_and_protected_columns(run, expected):
    report = run["report"]
    assert expected["over"] == ["company", "dropoff_census_tract", "pickup_census_tract"]  # the sample is fixed
    assert report["dropped_columns"] == ["dropoff_census_tract", "pickup_census_tract"]
    assert report["kept_protected_columns"] == ["company"]
    schema = io_utils.SchemaReader().read(str(Path(run["uris"]["cleaned_schema"]) / "schema.pbtxt"))
    kept = [f.name for f in run["schema"].feature if f.name not in report["dropped_columns"]]
    assert [f.name for f in schema.feature] == kept


def test_rows_per_rule_per_split_equal_pandas(run, expected):
    report = run["report"]
    names = [r.name for r in parse_rules(json.dumps(RULES), run["schema"]).row_rules]
    for split in SPLITS:
        rows = report["splits"][split]
        assert [r["rule"] for r in rows] == names
        assert [(r["rows_in"], r["rows_out"]) for r in rows] == expected["counts"][split], split
        assert all(r["rows_removed"] == r["rows_in"] - r["rows_out"] for r in rows)
    train = [r["rows_removed"] for r in report["splits"]["train"]]
    assert all(n > 0 for n in train), train  # every rule does something on this sample
    assert report["totals"]["train"]["rows_out"] == len(expected["cleaned"]["train"])


def _row_multiset(df: pd.DataFrame) -> Counter:
    return Counter(tuple(None if pd.isna(v) else v for v in row) for row in df.itertuples(index=False))


def test_cleaned_examples_are_exactly_the_pandas_rows(run, expected):
    dropped = run["report"]["dropped_columns"]
    artifact = run["artifacts"]["cleaned_examples"]
    assert artifact_utils.decode_split_names(artifact.properties["split_names"].string_value) == list(SPLITS)
    for split in SPLITS:
        files = list((Path(run["uris"]["cleaned_examples"]) / f"Split-{split}").iterdir())
        assert files and all(f.name.startswith("data_tfrecord-") and f.suffix == ".gz" for f in files)
        examples = _records(run["uris"]["cleaned_examples"], split)
        assert not any(c in e.features.feature for e in examples for c in dropped)
        reference = expected["cleaned"][split].drop(columns=dropped)
        assert len(examples) == len(reference) == run["report"]["totals"][split]["rows_out"]
        assert _row_multiset(_frame(examples, list(reference.columns))) == _row_multiset(reference), split


def test_statistics_gen_reads_the_cleaned_examples(run):
    import tensorflow_data_validation as tfdv

    dropped = set(run["report"]["dropped_columns"])
    for split in SPLITS:
        path = Path(run["uris"]["statistics_after"]) / f"Split-{split}" / "FeatureStats.pb"
        stats = tfdv.load_stats_binary(str(path))
        [dataset] = stats.datasets
        assert dataset.num_examples == run["report"]["totals"][split]["rows_out"]
        features = {f.path.step[0] for f in dataset.features}
        assert features and not features & dropped


def test_report_markdown(run):
    text = (Path(run["uris"]["report"]) / "report.md").read_text()
    assert "| split | rule | rows in | removed | rows out |" in text
    assert "`remove_outliers[fare:iqr,k=1.5]`" in text
    assert "`dropoff_census_tract`, `pickup_census_tract`" in text


# ---- fitting sees the fit split only ----------------------------------------------------------------

def _write_split(uri: Path, split: str, examples: list[tf.train.Example]) -> None:
    (uri / f"Split-{split}").mkdir(parents=True)
    path = str(uri / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for example in examples:
            writer.write(example.SerializeToString())


def _run_executor(run, tmp_path: Path, split_data: dict[str, list[tf.train.Example]], rules: dict = RULES) -> dict:
    examples_uri = tmp_path / "examples"
    for split, data in split_data.items():
        _write_split(examples_uri, split, data)
    outs = {key: tmp_path / key for key in ("cleaned_examples", "cleaned_schema", "report")}
    for path in outs.values():
        path.mkdir()
    return executor.run(
        examples_uri=str(examples_uri), split_names=list(split_data), schema_uri=run["uris"]["schema"],
        cleaned_examples_uri=str(outs["cleaned_examples"]), cleaned_schema_uri=str(outs["cleaned_schema"]),
        report_uri=str(outs["report"]), rules_json=json.dumps(rules))


def test_eval_rows_never_influence_the_fit(run, tmp_path):
    train = _records(run["uris"]["examples"], "train")
    other = []
    for example in _records(run["uris"]["examples"], "eval") * 3:  # more rows, all of them far out
        altered = tf.train.Example()
        altered.CopyFrom(example)
        altered.features.feature["fare"].float_list.value[:] = [example.features.feature["fare"].float_list.value[0]
                                                                * 50 + 500]
        del altered.features.feature["company"]
        other.append(altered)
    alone = _run_executor(run, tmp_path / "alone", {"train": train})
    mixed = _run_executor(run, tmp_path / "mixed", {"eval": other, "train": train})
    for report in (alone, mixed):
        assert report["fitted"] == run["report"]["fitted"]
        assert report["dropped_columns"] == run["report"]["dropped_columns"]
        assert report["splits"]["train"] == run["report"]["splits"]["train"]
    # The altered eval rows were judged by train's fences: every one is a fare outlier.
    fare = next(r for r in mixed["splits"]["eval"] if r["rule"].startswith("remove_outliers[fare"))
    assert fare["rows_in"] > 0 and fare["rows_out"] == 0


# ---- a multiclass label's classes -----------------------------------------------------------------

def test_a_class_that_train_lacks_stops_the_run_by_name(run, tmp_path):
    train = _records(run["uris"]["examples"], "train")
    train_types = {e.features.feature["payment_type"].bytes_list.value[0].decode() for e in train
                   if e.features.feature["payment_type"].bytes_list.value}
    evaluation = _records(run["uris"]["examples"], "eval")[:30]
    rules = {"drop_rows_missing": ["payment_type"], "label_classes": "payment_type"}
    # Eval rows of train's classes pass and are published.
    report = _run_executor(run, tmp_path / "seen", {"train": train, "eval": evaluation}, rules)
    assert report["totals"]["eval"]["rows_out"] == sum(1 for e in evaluation
                                                      if e.features.feature["payment_type"].bytes_list.value)
    # Two eval rows of a class train never has: named with the split, class and count; nothing written.
    unseen = []
    for example in evaluation[:2]:
        altered = tf.train.Example()
        altered.CopyFrom(example)
        altered.features.feature["payment_type"].bytes_list.value[:] = [b"Bitcoin"]
        unseen.append(altered)
    with pytest.raises(executor.UnseenLabelClasses) as err:
        _run_executor(run, tmp_path / "unseen", {"train": train, "eval": evaluation + unseen}, rules)
    message = str(err.value)
    assert "label column 'payment_type'" in message and "split 'eval': class 'Bitcoin' in 2 rows" in message
    assert all(t in message for t in train_types)
    for key in ("cleaned_examples", "cleaned_schema", "report"):
        assert not any((tmp_path / "unseen" / key).iterdir()), key


# ---- rule errors -------------------------------------------------------------------------------------

def test_failure_inside_beam_writes_nothing(run, tmp_path):
    train = _records(run["uris"]["examples"], "train")
    bad = tf.train.Example()
    bad.CopyFrom(train[0])
    bad.features.feature["fare"].float_list.value[:] = [1.0, 2.0]  # two values in one cell
    with pytest.raises(Exception, match="column 'fare' has 2 values in a row"):
        _run_executor(run, tmp_path, {"train": [*train, bad]})
    for key in ("cleaned_examples", "cleaned_schema", "report"):
        assert not any((tmp_path / key).iterdir()), key  # staging removed, nothing published


@pytest.mark.parametrize(("rules", "message"), [
    ({"remove_outliers": [{"column": "fare"}]}, "remove_outliers[0]: 'method' must be one of quantile, iqr, z_score"),
    ({"remove_outliers": [{"column": "fare", "method": "iqr"}, {"column": "fair", "method": "z_score"}]},
     "remove_outliers[1] (z_score): column 'fair' does not exist in the data"),
    ({"drop_rows_missing": ["fare", "trip_mils"]}, "drop_rows_missing: column 'trip_mils' does not exist"),
    ({"max_missing_per_row": {"columns": ["pickup_lat"], "max": 0}},
     "max_missing_per_row.columns: column 'pickup_lat' does not exist"),
    ({"protected_columns": ["tip"]}, "protected_columns: column 'tip' does not exist"),
    ({"remove_outliers": [{"column": "company", "method": "quantile", "lower": 0.1, "upper": 0.9}]},
     "remove_outliers[0] (quantile): column 'company' is not numeric"),
    ({"remove_outliers": [{"column": "fare", "method": "iqr", "lower": 0.1}]}, "unknown key(s) lower"),
    ({"drop_column_missing_fraction": 0.5}, "unknown key(s) drop_column_missing_fraction"),
])
def test_bad_rules_fail_clearly_and_write_nothing(run, tmp_path, rules, message):
    with pytest.raises(ValueError) as err:
        _run_executor(run, tmp_path, {"train": _records(run["uris"]["examples"], "train")[:10]}, rules)
    assert message in str(err.value)
    for key in ("cleaned_examples", "cleaned_schema", "report"):
        assert not any((tmp_path / key).iterdir()), key


def test_unknown_column_fails_the_component_run(run, tmp_path):
    # Through TFX too: the component's run fails and names the rule and the column.
    importer = tfx.dsl.Importer(source_uri=run["uris"]["examples"], artifact_type=tfx.types.standard_artifacts.Examples,
                                properties={"split_names": '["train","eval","test"]'}).with_id("examples")
    schema = tfx.dsl.Importer(source_uri=run["uris"]["schema"],
                              artifact_type=tfx.types.standard_artifacts.Schema).with_id("schema")
    cleaner = DataCleaner(examples=importer.outputs["result"], schema=schema.outputs["result"],
                          rules=json.dumps({"remove_outliers": [{"column": "fare_usd", "method": "iqr"}]}))
    with pytest.raises(ValueError, match=r"remove_outliers\[0\] \(iqr\): column 'fare_usd' does not exist"):
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name="data_cleaner_bad", pipeline_root=str(tmp_path / "root"),
            components=[importer, schema, cleaner],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                str(tmp_path / "metadata.sqlite"))))


# ---- the fitting functions alone ------------------------------------------------------------------------

def test_fitting_functions_equal_numpy():
    from components.data_cleaner.rules import RemoveOutliers

    values = np.random.default_rng(0).lognormal(2.0, 1.0, 1001)
    q = executor.quantile_bounds(list(values), RemoveOutliers("x", "quantile", lower=0.013, upper=0.987))
    assert (q["lower"], q["upper"]) == tuple(np.quantile(values, [0.013, 0.987]))
    fn = executor.MomentsFn()
    parts = [fn.add_input(fn.create_accumulator(), v) for v in values[:1]]
    acc = fn.create_accumulator()
    for v in values[1:600]:
        acc = fn.add_input(acc, v)
    acc2 = fn.create_accumulator()
    for v in values[600:]:
        acc2 = fn.add_input(acc2, v)
    z = executor.z_score_bounds(fn.merge_accumulators([*parts, acc, fn.create_accumulator(), acc2]),
                                RemoveOutliers("x", "z_score", k=2.0))
    assert z["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert z["std"] == pytest.approx(values.std(ddof=0), rel=1e-12)
    assert executor.quantile_bounds([], RemoveOutliers("x", "iqr", k=1.5))["lower"] is None
