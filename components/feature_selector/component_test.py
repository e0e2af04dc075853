"""FeatureSelector on real taxi data: a real CsvExampleGen -> StatisticsGen -> SchemaGen ->
FeatureSelector run (LocalDagRunner, sqlite MLMD), checked against scores recomputed here with
scikit-learn / numpy / pandas from the ExampleGen train split read back from disk."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from sklearn.feature_selection import mutual_info_classif
from tensorflow.core.example import example_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components.feature_selector import FeatureScores, FeatureSelector, executor, scoring

TAXI_CSV = Path(__file__).resolve().parents[2] / "data" / "taxi" / "data.csv"
CANDIDATES = [
    ("fare", "float"), ("trip_miles", "float"), ("trip_seconds", "int"), ("pickup_latitude", "float"),
    ("pickup_longitude", "float"), ("company", "string"), ("payment_type", "string"),
    ("trip_start_hour", "int"), ("trip_start_day", "int"), ("trip_start_month", "int"),
    ("pickup_community_area", "int"),
]
LABEL = {"column": "tips", "greater_than_column": "fare", "factor": 0.2, "greater_than": None}
SEED = 0


def selector_config(**overrides) -> dict:
    cfg = {"method": "mutual_information", "top_k": 5, "threshold": None,
           "candidates": [{"name": n, "type": t} for n, t in CANDIDATES], "label": dict(LABEL),
           "always_keep": ["trip_start_month"], "sample_size": 50000, "seed": SEED}
    return {**cfg, **overrides}


TOP_K = selector_config()
THRESHOLD = selector_config(method="correlation", top_k=None, threshold=0.05, always_keep=[])


def _only_dir(pattern: str) -> str:
    (match,) = glob.glob(pattern)
    return match


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    """One real pipeline run shared by the module: two selectors on the same examples."""
    tmp = tmp_path_factory.mktemp("feature_selector")
    csv_dir = tmp / "csv"
    csv_dir.mkdir()
    # 4000 real rows, values kept as the original strings (missing stays empty).
    rows = pd.read_csv(TAXI_CSV, dtype=str, keep_default_na=False).sample(n=4000, random_state=7)
    rows.to_csv(csv_dir / "data.csv", index=False)

    root = tmp / "pipeline_root"
    example_gen = tfx.components.CsvExampleGen(input_base=str(csv_dir))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=False)
    inputs = {"examples": example_gen.outputs["examples"], "schema": schema_gen.outputs["schema"]}
    top_k = FeatureSelector(**inputs, config=json.dumps(TOP_K))
    threshold = FeatureSelector(**inputs, config=json.dumps(THRESHOLD)).with_id("FeatureSelectorThreshold")
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp / "metadata.sqlite"))
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="feature_selector_test", pipeline_root=str(root),
        components=[example_gen, statistics_gen, schema_gen, top_k, threshold],
        metadata_connection_config=metadata, enable_cache=False,
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"]))

    def outputs(node: str) -> SimpleNamespace:
        scores = _only_dir(str(root / node / "scores" / "*"))
        return SimpleNamespace(
            scores_uri=scores, table=json.loads(Path(scores, "scores.json").read_text()),
            schema=io_utils.SchemaReader().read(_only_dir(str(root / node / "selected_schema" / "*" / "schema.pbtxt"))))

    return SimpleNamespace(
        tmp=tmp, metadata=metadata,
        examples_uri=_only_dir(str(root / "CsvExampleGen" / "examples" / "*")),
        schema_uri=_only_dir(str(root / "SchemaGen" / "schema" / "*")),
        top_k=outputs("FeatureSelector"), threshold=outputs("FeatureSelectorThreshold"))


# ------------------------------------------------------------ helpers (independent of the executor) --
def split_records(examples_uri: str, split: str) -> list[bytes]:
    """The split's examples in the component's canonical order: deterministic serialization, sorted."""
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    return sorted(example_pb2.Example.FromString(r).SerializeToString(deterministic=True)
                  for r in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


def to_frame(records: list[bytes]) -> pd.DataFrame:
    rows = []
    for raw in records:
        row = {}
        for name, feature in example_pb2.Example.FromString(raw).features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            row[name] = values[0].decode() if values and isinstance(values[0], bytes) else (values or [None])[0]
        rows.append(row)
    return pd.DataFrame(rows)


def expected_scores(df: pd.DataFrame, seed: int) -> tuple[dict[str, float], dict[str, float | None]]:
    """MI and |r| recomputed from the raw rows with pandas / scikit-learn / numpy."""
    tips, fare = df["tips"].astype("float32").to_numpy(), df["fare"].astype("float32").to_numpy()
    y = (tips > fare * np.float32(0.2)).astype(int)  # NaN (missing) compares False -> 0
    columns, corr = [], {}
    for name, vtype in CANDIDATES:
        if vtype == "string":
            codes = pd.factorize(df[name].fillna(scoring.MISSING_TOKEN), sort=True)[0]
            columns.append(codes.astype(float))
            corr[name] = None
            continue
        x = df[name].astype(float)
        x = x.fillna(x.median())
        corr[name] = abs(x.corr(pd.Series(y, index=x.index, dtype=float)))
        columns.append(pd.factorize(x, sort=True)[0].astype(float) if vtype == "int" else x.to_numpy())
    mask = np.array([t != "float" for _, t in CANDIDATES])
    mi = mutual_info_classif(np.column_stack(columns), y, discrete_features=mask, random_state=seed)
    return dict(zip([n for n, _ in CANDIDATES], mi, strict=True)), corr


def examples_artifact(uri: str, splits: list[str]) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = artifact_utils.encode_split_names(splits)
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    return examples


def read_schema(run) -> schema_pb2.Schema:
    return io_utils.SchemaReader().read(os.path.join(run.schema_uri, "schema.pbtxt"))


# ---------------------------------------------------------------------------------------- tests --
def test_scores_equal_sklearn_and_numpy_on_the_train_rows(run):
    train = to_frame(split_records(run.examples_uri, "train"))
    assert 2000 < len(train) < 4000  # the train split of 4000 rows, all of it sampled (sample_size 50000)
    mi, corr = expected_scores(train, SEED)
    for out in (run.top_k, run.threshold):
        assert [r["feature"] for r in out.table] == [n for n, _ in CANDIDATES]
        for row in out.table:
            assert row["mutual_information"] == pytest.approx(mi[row["feature"]], abs=1e-9), row
            if corr[row["feature"]] is None:
                assert row["correlation"] is None, row
            else:
                assert row["correlation"] == pytest.approx(corr[row["feature"]], abs=1e-9), row

    store = metadata_store.MetadataStore(run.metadata)
    scores = store.get_artifacts_by_type(FeatureScores.TYPE_NAME)
    assert {a.uri for a in scores} == {run.top_k.scores_uri, run.threshold.scores_uri}
    for artifact in scores:
        assert artifact.custom_properties["sample_rows"].int_value == len(train)
        assert artifact.custom_properties["fit_split"].string_value == "train"


def test_label_rule_is_the_transform_label(run):
    from features.task import Label, label_tensor

    records = split_records(run.examples_uri, "train")
    columns = executor.parse_records(records, ["tips", "fare"])
    dense = {c: tf.constant([np.nan if v is None else v for v in columns[c]], tf.float32) for c in columns}
    for rule in (LABEL, {"column": "tips", "greater_than_column": None, "factor": 1.0, "greater_than": 2.0}):
        ours = scoring.label_values(columns, executor.parse_config(json.dumps(selector_config(label=rule))).label)
        assert 0 < ours.sum() < len(ours)
        transform = label_tensor(dense, Label.from_json({**rule, "name": "label"}))
        np.testing.assert_array_equal(ours, transform.numpy())


def test_selected_schema_drops_exactly_the_unselected_candidates(run):
    schema = read_schema(run)
    names = [f.name for f in schema.feature]
    for out in (run.top_k, run.threshold):
        unselected = {r["feature"] for r in out.table if not r["selected"]}
        assert unselected
        assert [f.name for f in out.schema.feature] == [n for n in names if n not in unselected]
        assert {"tips", "fare", "trip_start_timestamp", "dropoff_latitude"} <= {f.name for f in out.schema.feature}
        for feature in out.schema.feature:  # kept features are unchanged
            assert feature == next(f for f in schema.feature if f.name == feature.name)
        # A dropped feature's string domain goes with it; the others stay.
        dropped_domains = {f.domain for f in schema.feature if f.name in unselected and f.HasField("domain")}
        assert {d.name for d in out.schema.string_domain} == {d.name for d in schema.string_domain} - dropped_domains


def test_top_k_selects_what_the_table_says(run):
    table = {r["feature"]: r for r in run.top_k.table}
    ranked = sorted(table, key=lambda n: (-table[n]["mutual_information"], n))
    assert [table[n]["rank"] for n in ranked] == list(range(1, len(ranked) + 1))
    assert {n for n in table if table[n]["selected"]} == set(ranked[:5]) | {"trip_start_month"}
    assert table["trip_start_month"]["rank"] > 5  # kept by always_keep only
    assert table["trip_start_month"]["reason"].startswith("always_keep")
    # Sanity on real data: cash payers are recorded with no tip, so payment type says the most
    # about "tip > 20% of the fare".
    assert table["payment_type"]["rank"] == 1 and table["payment_type"]["selected"]

    scores_dir = Path(run.top_k.scores_uri)
    assert sorted(p.name for p in scores_dir.iterdir()) == ["scores.csv", "scores.json", "scores.png"]
    assert (scores_dir / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (scores_dir / "scores.csv").open(newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [(r["feature"], r["selected"], r["rank"]) for r in csv_rows] == [
        (r["feature"], str(r["selected"]), str(r["rank"])) for r in run.top_k.table]
    assert [float(r["mutual_information"]) for r in csv_rows] == [r["mutual_information"] for r in run.top_k.table]


def test_threshold_selects_what_the_table_says(run):
    table = {r["feature"]: r for r in run.threshold.table}
    for name, vtype in CANDIDATES:
        row = table[name]
        if vtype == "string":  # correlation cannot score strings: kept, and the table says so
            assert row["selected"] and row["rank"] is None and "not scored" in row["reason"], row
        else:
            assert row["selected"] == (row["correlation"] >= 0.05), row
    assert 0 < sum(r["selected"] for r in table.values() if r["type"] != "string") < len(CANDIDATES) - 2


def test_only_the_fit_split_determines_the_scores(run, tmp_path):
    """Same train split, very different eval rows (payment types shuffled across rows):
    identical scores; scoring the altered eval split instead does change them."""
    copy = tmp_path / "examples"
    shutil.copytree(run.examples_uri, copy)
    shutil.rmtree(copy / "Split-eval")
    (copy / "Split-eval").mkdir()
    train = split_records(run.examples_uri, "train")
    examples = [example_pb2.Example.FromString(r) for r in train]
    payment = [e.features.feature["payment_type"].bytes_list.value[:] for e in examples]
    with tf.io.TFRecordWriter(str(copy / "Split-eval" / "data_tfrecord-00000-of-00001.gz"), "GZIP") as writer:
        for e, i in zip(examples, np.random.default_rng(0).permutation(len(examples)), strict=True):
            e.features.feature["payment_type"].bytes_list.value[:] = payment[i]
            writer.write(e.SerializeToString())
    artifact = examples_artifact(str(copy), ["train", "eval"])
    cfg = executor.parse_config(json.dumps(TOP_K))

    on_train = executor.compute(beam.Pipeline(), artifact, read_schema(run), cfg, "train", str(tmp_path / "s1"))
    assert [r.to_json() for r in on_train.table] == run.top_k.table

    on_eval = executor.compute(beam.Pipeline(), artifact, read_schema(run), cfg, "eval", str(tmp_path / "s2"))
    mi = {r.feature: r.mutual_information for r in on_eval.table}
    assert mi["payment_type"] < 0.1 * next(r["mutual_information"] for r in run.top_k.table
                                           if r["feature"] == "payment_type")


def _call(run, tmp_path, config: dict, schema_uri: str | None = None) -> tuple[Path, Path]:
    selected_schema, scores = standard_artifacts.Schema(), FeatureScores()
    selected_schema.uri, scores.uri = str(tmp_path / "selected_schema"), str(tmp_path / "scores")
    schema = standard_artifacts.Schema()
    schema.uri = schema_uri or run.schema_uri
    FeatureSelector.test_call(
        examples=examples_artifact(run.examples_uri, ["train", "eval"]), schema=schema,
        selected_schema=selected_schema, scores=scores, config=json.dumps(config), fit_split="train",
        beam_pipeline=beam.Pipeline())
    return Path(selected_schema.uri), Path(scores.uri)


def _nothing_written(tmp_path: Path) -> bool:
    return not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_unknown_candidate_fails_naming_it(run, tmp_path):
    cfg = selector_config(candidates=[{"name": "fare", "type": "float"}, {"name": "tip_percent", "type": "float"}])
    with pytest.raises(ValueError, match="candidate 'tip_percent' is not in the data"):
        _call(run, tmp_path, cfg)
    assert _nothing_written(tmp_path)


def test_unknown_label_column_fails_naming_it(run, tmp_path):
    cfg = selector_config(label={**LABEL, "greater_than_column": "fare_amount"})
    with pytest.raises(ValueError, match=r"label column 'fare_amount' \(label.greater_than_column\) is not in"):
        _call(run, tmp_path, cfg)
    assert _nothing_written(tmp_path)


def test_failure_after_sampling_leaves_no_output(run, tmp_path):
    """A column the schema lists but the data lacks is found only once Beam has run: the run
    fails naming it, and neither output nor the staging files are left behind."""
    schema = read_schema(run)
    schema.feature.add(name="ghost_column", type=schema_pb2.FLOAT)
    io_utils.write_pbtxt_file(str(tmp_path / "schema" / "schema.pbtxt"), schema)
    cfg = selector_config(candidates=[*TOP_K["candidates"], {"name": "ghost_column", "type": "float"}])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="column 'ghost_column' is not in the data"):
        _call(run, out, cfg, schema_uri=str(tmp_path / "schema"))
    assert _nothing_written(out)


def test_unselected_label_source_column_stays_in_the_schema(run, tmp_path):
    cfg = executor.parse_config(json.dumps(selector_config(top_k=None, threshold=1e6, always_keep=["company"])))
    selection = executor.compute(beam.Pipeline(), examples_artifact(run.examples_uri, ["train", "eval"]),
                                 read_schema(run), cfg, "train", str(tmp_path))
    table = {r.feature: r for r in selection.table}
    assert [n for n, r in table.items() if r.selected] == ["company"]
    assert "the label needs it" in table["fare"].reason
    kept = {f.name for f in selection.schema.feature}
    assert {"fare", "tips", "company"} <= kept
    assert not kept & {n for n, _ in CANDIDATES if n not in ("fare", "company")}
    # payment_type is dropped with its string domain; company keeps its own.
    assert {"company", "payment_type"} <= {d.name for d in read_schema(run).string_domain}
    assert "company" in {d.name for d in selection.schema.string_domain}
    assert "payment_type" not in {d.name for d in selection.schema.string_domain}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"top_k": 3, "threshold": 0.1}, "give exactly one of top_k or threshold"),
    ({"top_k": None, "threshold": None}, "give exactly one of top_k or threshold"),
    ({"top_k": 0}, "top_k: must be an integer >= 1"),
    ({"method": "chi2"}, "method: must be one of mutual_information, correlation"),
    ({"candidates": [{"name": "fare", "type": "double"}]}, r"candidates\[0\].type: 'fare'"),
    ({"candidates": [{"name": "tips", "type": "float"}]}, "'tips' is the label column"),
    ({"label": {"column": "tips", "greater_than_column": "fare", "greater_than": 1.0}},
     "exactly one of greater_than_column or greater_than"),
    ({"sampel_size": 10}, "unknown key 'sampel_size'"),
])
def test_bad_config_fails_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        executor.parse_config(json.dumps(selector_config(**overrides)))
