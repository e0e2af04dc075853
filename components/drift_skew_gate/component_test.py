"""DriftSkewGate on real taxi spans: CsvExampleGen → StatisticsGen → DriftSkewGate under
LocalDagRunner (ML Metadata in sqlite), previous spans' statistics brought in by Importer,
and TFDV's own validate_statistics as the reference for the measured distances."""

from __future__ import annotations

import csv
import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tensorflow_data_validation as tfdv
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2

from components.drift_skew_gate import DriftSkewGate, executor
from components.drift_skew_gate.thresholds import Thresholds, ThresholdsError

ROOT = Path(__file__).resolve().parents[2]
TAXI_CSV = ROOT / "data" / "taxi" / "data.csv"
SCHEMA_FILE = ROOT / "pipeline" / "configs" / "taxi" / "schema.pbtxt"
SPAN_ROWS = 1500
# Between two random draws from the same months TFDV measures at most 0.07 (L-infinity 0.03),
# except on trip_miles and trip_seconds (0.14): a few very long trips stretch the equal-width
# buckets of the standard histogram. On quantile buckets those two measure 0.03, and fare x3
# 0.47 (0.27 on standard buckets).
QUANTILES = ("fare", "trip_miles", "trip_seconds")
THRESHOLDS = {"split": "train", "categorical_linf": 0.1, "numeric_js": 0.15,
              "features": {name: {"numeric_histogram": "quantiles"} for name in QUANTILES}, "skip": ["tips"]}
EXCEEDED = re.compile(r"^  - (drift vs previous span|skew vs training data): column '(\w+)': "
                      r"(L-infinity distance|Jensen-Shannon divergence) ([\d.]+) > ([\d.]+)$", re.M)


def _spans(out: Path) -> dict[str, Path]:
    """Two disjoint random draws of 2014's trips, and the second again with fare x3 and Cash and
    Credit Card swapped."""
    with TAXI_CSV.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    year = [r for r in rows if datetime.fromtimestamp(int(r["trip_start_timestamp"]), UTC).year == 2014]
    random.Random(2014).shuffle(year)
    parts = {name: year[i * SPAN_ROWS:(i + 1) * SPAN_ROWS] for i, name in enumerate(("training", "new"))}
    swap = {"Cash": "Credit Card", "Credit Card": "Cash"}
    parts["moved"] = [{**r, "fare": f"{float(r['fare']) * 3:.2f}",
                       "payment_type": swap.get(r["payment_type"], r["payment_type"])} for r in parts["new"]]
    dirs = {}
    for name, part in parts.items():
        dirs[name] = out / "spans" / name
        dirs[name].mkdir(parents=True)
        with (dirs[name] / "data.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(part)
    return dirs


def _metadata(root: Path):
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))


def _run(root: Path, span: Path, previous: str | None = None, training: str | None = None) -> None:
    """One run over a new span: its statistics, the reviewed schema, and the gate."""
    example_gen = tfx.components.CsvExampleGen(
        input_base=str(span),
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="train", pattern="*.csv")]),
        # All rows in "train": without this, one input split is hash-split 2:1 into train and eval.
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1)])))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(SCHEMA_FILE))
    components, baselines = [example_gen, statistics_gen, schema_gen], {}
    for key, uri in (("previous_statistics", previous), ("training_statistics", training)):
        if uri:
            importer = tfx.dsl.Importer(source_uri=uri, artifact_type=tfx.types.standard_artifacts.ExampleStatistics
                                        ).with_id(f"import_{key}")
            components.append(importer)
            baselines[key] = importer.outputs["result"]
    gate = DriftSkewGate(statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
                         thresholds=json.dumps(THRESHOLDS), **baselines)
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="drift_gate_test", pipeline_root=str(root / "pipeline_root"),
        components=[*components, gate], enable_cache=False, metadata_connection_config=_metadata(root),
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"]))


def _published(root: Path, type_name: str) -> list[metadata_store_pb2.Artifact]:
    """The LIVE artifacts of a type, oldest first (a failed execution publishes none)."""
    store = metadata_store.MetadataStore(_metadata(root))
    return sorted((a for a in store.get_artifacts_by_type(type_name) if a.state == a.LIVE), key=lambda a: a.id)


def _report(uri: str) -> dict:
    return json.loads((Path(uri) / executor.REPORT_JSON).read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Three monthly runs: the first span (then used for training), a span from the same months,
    and a span that moved; each compared with the span before it and with the training span."""
    root = tmp_path_factory.mktemp("drift_gate")
    spans = _spans(root)
    out: dict = {"root": root}
    _run(root, spans["training"])
    out["training"] = _published(root, "ExampleStatistics")[-1].uri
    out["first_report"] = _published(root, "DriftReport")[-1].uri
    _run(root, spans["new"], previous=out["training"], training=out["training"])
    out["new"] = _published(root, "ExampleStatistics")[-1].uri
    out["new_report"] = _published(root, "DriftReport")[-1].uri
    out["reports_before_moved"] = len(_published(root, "DriftReport"))
    with pytest.raises(executor.DriftSkewExceeded) as err:
        _run(root, spans["moved"], previous=out["new"], training=out["training"])
    out["moved_error"] = str(err.value)
    out["moved"] = _published(root, "ExampleStatistics")[-1].uri
    out["schema"] = _published(root, "Schema")[-1].uri
    return out


def test_first_span_passes_and_says_nothing_was_compared(runs):
    report = _report(runs["first_report"])
    assert report["passed"] and report["exceeded"] == []
    for name, baseline in (("drift", "previous span"), ("skew", "training data")):
        comparison = report["comparisons"][name]
        assert not comparison["compared"] and comparison["features"] == {}
        assert comparison["note"] == f"no {baseline} statistics given: nothing compared"
    markdown = (Path(runs["first_report"]) / executor.REPORT_MD).read_text()
    assert "PASSED (nothing compared: no previous span or training statistics)" in markdown


def test_span_from_the_same_months_passes(runs):
    report = _report(runs["new_report"])
    assert report["passed"], report["exceeded"]
    schema = tfdv.load_schema_text(str(SCHEMA_FILE))
    assert report["skipped"] == ["tips"]
    drift, skew = (report["comparisons"][name]["features"] for name in ("drift", "skew"))
    assert set(drift) == set(skew) == {f.name for f in schema.feature} - {"tips"}
    assert drift == skew  # the previous span is the training span here
    for feature, result in drift.items():
        if feature == "pickup_census_tract":  # empty in the taxi data: no numbers to compare
            assert result["measured"] is None and not result["exceeded"]
            assert result["note"] == "not measured: the column has no values in the new span"
            continue
        assert result["measured"] is not None and 0 <= result["measured"] <= result["threshold"], (feature, result)
        assert not result["exceeded"]
    assert drift["company"] == {"kind": "categorical", "metric": "infinity_norm", "threshold": 0.1, "exceeded": False,
                                "measured": drift["company"]["measured"]}
    assert {k: drift["fare"][k] for k in ("kind", "metric", "histogram", "threshold")} == {
        "kind": "numeric", "metric": "jensen_shannon_divergence", "histogram": "quantiles", "threshold": 0.15}
    assert drift["pickup_latitude"]["histogram"] == "standard"
    markdown = (Path(runs["new_report"]) / executor.REPORT_MD).read_text()
    assert "**PASSED**" in markdown
    assert "| fare | numeric | jensen_shannon_divergence (quantiles histogram) |" in markdown


def _kept_report_dir(message: str) -> Path:
    return Path(re.search(r"^Full report: (.+)$", message, re.M).group(1)).parent


def test_moved_span_stops_the_run_naming_columns_and_distances(runs):
    message = runs["moved_error"]
    exceeded = EXCEEDED.findall(message)
    assert {(comparison, column) for comparison, column, *_ in exceeded} == {
        (c, column) for c in ("drift vs previous span", "skew vs training data") for column in ("fare", "payment_type")
    }, message
    for _, column, metric, measured, threshold in exceeded:
        assert metric == ("L-infinity distance" if column == "payment_type" else "Jensen-Shannon divergence")
        assert float(measured) > float(threshold)
    # TFX deletes the output folder of a failed component: the report is kept beside it, and named.
    kept = _kept_report_dir(message)
    assert kept.name.endswith(executor.KEPT_SUFFIX) and kept.parent.name == "report"
    assert "**FAILED: 4 thresholds exceeded**" in (kept / executor.REPORT_MD).read_text()
    report = _report(str(kept))
    assert not report["passed"] and len(report["exceeded"]) == 4
    drift = report["comparisons"]["drift"]["features"]
    assert drift["fare"]["exceeded"] and drift["fare"]["measured"] > drift["fare"]["threshold"] == 0.15
    assert f"drift vs previous span: column 'fare': Jensen-Shannon divergence {drift['fare']['measured']:.2f} > 0.15" \
        in message
    assert "The feature value with maximum difference is:" in drift["payment_type"]["note"]  # TFDV's explanation
    # Drift is measured against the previous span, which differs only in fare and payment_type.
    assert {f for f, r in drift.items() if r["measured"]} == {"fare", "payment_type"}
    assert len(_published(runs["root"], "DriftReport")) == runs["reports_before_moved"]  # nothing published
    store = metadata_store.MetadataStore(_metadata(runs["root"]))
    failed = [e for e in store.get_executions() if e.last_known_state == metadata_store_pb2.Execution.FAILED]
    assert [store.get_execution_types_by_id([e.type_id])[0].name for e in failed] == [
        "components.drift_skew_gate.component.DriftSkewGate"]


def _tfdv_distances(runs: dict, stats: str, previous: str, quantiles: tuple[str, ...]) -> tuple[dict, dict]:
    """TFDV's own drift and skew measurements, with comparators set here by hand on the reviewed schema."""

    def load(name: str):
        return tfdv.load_stats_binary(str(Path(runs[name]) / "Split-train" / "FeatureStats.pb"))

    schema = tfdv.load_schema_text(str(SCHEMA_FILE))
    for feature in schema.feature:
        if feature.name == "tips":
            continue
        for comparator in (feature.drift_comparator, feature.skew_comparator):
            if feature.type == schema_pb2.BYTES:
                comparator.infinity_norm.threshold = 1.0
            else:
                comparator.jensen_shannon_divergence.threshold = 1.0
                comparator.jensen_shannon_divergence.source.type = (
                    schema_pb2.HistogramSelection.QUANTILES if feature.name in quantiles
                    else schema_pb2.HistogramSelection.STANDARD)
    anomalies = tfdv.validate_statistics(load(stats), schema, previous_statistics=load(previous),
                                         serving_statistics=load("training"))
    return ({i.path.step[0]: i.drift_measurements[0].value for i in anomalies.drift_skew_info},
            {i.path.step[0]: i.skew_measurements[0].value for i in anomalies.drift_skew_info})


def _measured(report: dict, name: str) -> dict:
    return {f: r["measured"] for f, r in report["comparisons"][name]["features"].items() if r["measured"] is not None}


@pytest.mark.parametrize(("stats", "previous"), [("new", "training"), ("moved", "new")])
def test_measured_distances_are_tfdvs(runs, stats, previous):
    """The report's numbers are what TFDV itself reports on the same statistics and schema."""
    drift, skew = _tfdv_distances(runs, stats, previous, QUANTILES)
    columns = {f.name for f in tfdv.load_schema_text(str(SCHEMA_FILE)).feature}
    assert set(drift) == set(skew) == columns - {"tips", "pickup_census_tract"}  # skipped; empty in the taxi data
    # The pipeline's report (for the moved span, the copy kept after the failure).
    report = _report(runs["new_report"]) if stats == "new" else _report(str(_kept_report_dir(runs["moved_error"])))
    assert _measured(report, "drift") == drift and _measured(report, "skew") == skew

    # The executor run directly, on standard histograms only (TFDV's default).
    drift, skew = _tfdv_distances(runs, stats, previous, ())
    report = executor.check(
        executor.StatsSource(runs[stats], ["train"]), runs["schema"], str(runs["root"] / f"direct_{stats}"),
        json.dumps({"categorical_linf": 1.0, "numeric_js": 1.0, "skip": ["tips"]}),
        previous=executor.StatsSource(runs[previous]), training=executor.StatsSource(runs["training"]))
    assert _measured(report, "drift") == drift and _measured(report, "skew") == skew
    assert report["comparisons"]["drift"]["features"]["fare"]["histogram"] == "standard"


def test_per_feature_override_and_skip(runs, tmp_path):
    def check(thresholds: dict, name: str) -> dict:
        return executor.check(executor.StatsSource(runs["moved"], ["train"]), runs["schema"], str(tmp_path / name),
                              json.dumps({**THRESHOLDS, **thresholds}),
                              previous=executor.StatsSource(runs["new"], ["train"]),
                              training=executor.StatsSource(runs["training"], ["train"]))

    loose = {"fare": {"numeric_js": 0.9}, "payment_type": {"categorical_linf": 0.9}}
    report = check({"features": {**THRESHOLDS["features"], **loose}}, "loose")
    assert report["passed"]
    drift = report["comparisons"]["drift"]["features"]
    assert drift["fare"]["threshold"] == 0.9 and drift["payment_type"]["threshold"] == 0.9
    assert drift["company"]["threshold"] == 0.1 and drift["trip_miles"]["threshold"] == 0.15

    report = check({"skip": ["tips", "fare", "payment_type"]}, "skipped")
    assert report["passed"] and report["skipped"] == ["fare", "payment_type", "tips"]
    assert not {"fare", "payment_type", "tips"} & set(report["comparisons"]["skew"]["features"])
    markdown = (tmp_path / "skipped" / executor.REPORT_MD).read_text()
    assert "Skipped (never compared): fare, payment_type, tips" in markdown

    with pytest.raises(executor.DriftSkewExceeded) as err:
        check({"features": {"company": {"categorical_linf": 0.0}}, "skip": ["tips", "fare", "payment_type"]}, "tight")
    # company is identical to the previous span's (distance 0, not above 0) but not to training's.
    [(comparison, column, metric, measured, threshold)] = EXCEEDED.findall(str(err.value))
    assert (comparison, column, metric) == ("skew vs training data", "company", "L-infinity distance")
    assert float(measured) > 0 and float(threshold) == 0
    assert _report(str(tmp_path / "tight"))["comparisons"]["drift"]["features"]["company"]["measured"] == 0
    assert (tmp_path / "tight.failed" / executor.REPORT_JSON).exists()


def test_categorical_int_without_categorical_statistics_is_not_measured(runs, tmp_path):
    """An INT feature marked categorical needs statistics computed with the schema (string_stats);
    on plain numeric statistics TFDV's L-infinity would be a meaningless 0."""
    schema = tfdv.load_schema_text(str(SCHEMA_FILE))
    next(f for f in schema.feature if f.name == "trip_start_hour").int_domain.is_categorical = True
    (tmp_path / "schema").mkdir()
    tfdv.write_schema_text(schema, str(tmp_path / "schema" / executor.SCHEMA_FILE))
    report = executor.check(executor.StatsSource(runs["new"], ["train"]), str(tmp_path / "schema"),
                            str(tmp_path / "report"), json.dumps(THRESHOLDS),
                            previous=executor.StatsSource(runs["training"], ["train"]))
    hour = report["comparisons"]["drift"]["features"]["trip_start_hour"]
    assert hour["kind"] == "categorical" and hour["measured"] is None and not hour["exceeded"]
    assert hour["note"] == ("not measured: the new span statistics hold num_stats for this categorical feature, "
                            "not string_stats (compute statistics with the schema)")


def test_missing_split_is_named(runs, tmp_path):
    with pytest.raises(ValueError, match=r"the new span's statistics \(.+\) have no split 'eval' \(splits: train\); "
                                         r'set "split" in the thresholds'):
        executor.check(executor.StatsSource(runs["new"], ["train"]), runs["schema"], str(tmp_path),
                       json.dumps({**THRESHOLDS, "split": "eval"}))


@pytest.mark.parametrize(("thresholds", "message"), [
    ('{"numeric_js": 0.1, "numric_js": 0.2}', "thresholds: unknown key 'numric_js'; allowed: split, "),
    ('{"numeric_js": 1.5}', "thresholds: numeric_js: must be a number in [0, 1], got 1.5"),
    ('{"numeric_histogram": "deciles"}', "numeric_histogram: must be one of standard, quantiles, got 'deciles'"),
    ('{"features": {"company": {"numeric_js": 0.2}}}',
     "features.company: 'company' is a categorical feature: numeric_js does not apply; use categorical_linf"),
    ('{"features": {"fares": {"numeric_js": 0.2}}}', "features.fares: not a comparable feature of the schema"),
    ('{"skip": ["tip"]}', "thresholds: skip: 'tip' is not a feature of the schema"),
    ('{"split": "train",}', "thresholds: not valid JSON"),
])
def test_bad_thresholds_name_the_key(thresholds, message):
    with pytest.raises(ThresholdsError) as err:
        Thresholds.from_json(thresholds).limits(tfdv.load_schema_text(str(SCHEMA_FILE)))
    assert message in str(err.value)
