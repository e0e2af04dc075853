"""DriftSkewGate on real taxi spans: CsvExampleGen → StatisticsGen → DriftSkewGate under
LocalDagRunner (ML Metadata in sqlite), previous spans' statistics brought in by Importer,
and TFDV's own validate_statistics as the reference for the measured distances."""

from __future__ import annotations

import pipeline  # noqa: F401  (sets the Keras flavour before TensorFlow loads)

# isort: split
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

from components.drift_gate import DriftSkewGate, executor
from components.drift_gate.thresholds import Thresholds, ThresholdsError

ROOT = Path(__file__).resolve().parents[2]
TAXI_CSV = ROOT / "data" / "taxi" / "data.csv"
SCHEMA_FILE = ROOT / "pipeline" / "configs" / "taxi" / "schema.pbtxt"
SPAN_ROWS = 1500
# Sampling noise between random draws from the same months stays well below these; TFDV's
# default (standard) histograms stretch over outliers and are much noisier on trip_seconds
# and trip_miles, hence quantiles. Census tracts are a handful of integer codes, whose
# quantile histograms are step-like: they keep the standard histogram.
THRESHOLDS = {
    "split": "train", "categorical_linf": 0.1, "numeric_js": 0.15, "numeric_histogram": "quantiles",
    "features": {f"{end}_census_tract": {"numeric_histogram": "standard"} for end in ("pickup", "dropoff")},
    "skip": ["tips"],
}
EXCEEDED = re.compile(r"^  - (drift vs previous span|skew vs training data): column '(\w+)': "
                      r"(L-infinity distance|Jensen-Shannon divergence) ([\d.]+) > ([\d.]+)$", re.M)


def _spans(out: Path) -> dict[str, Path]:
    """Disjoint random draws of 2014's trips, and the last one with fare x3 and payment types swapped."""
    with TAXI_CSV.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    year = [r for r in rows if datetime.fromtimestamp(int(r["trip_start_timestamp"]), UTC).year == 2014]
    random.Random(2014).shuffle(year)
    parts = {name: year[i * SPAN_ROWS:(i + 1) * SPAN_ROWS] for i, name in enumerate(("training", "previous", "new"))}
    swap = {"Cash": "Credit Card", "Credit Card": "Cash"}
    parts["moved"] = [{**r, "fare": f"{float(r['fare']) * 3:.2f}", "payment_type": swap.get(r["payment_type"],
                                                                                           r["payment_type"])}
                      for r in parts["new"]]
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


def _run(root: Path, span: Path, previous: str | None = None, training: str | None = None,
         thresholds: dict | None = None) -> None:
    """One run over a new span: its statistics, the reviewed schema, and the gate."""
    example_gen = tfx.components.CsvExampleGen(
        input_base=str(span),
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="train", pattern="*.csv")]))
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
                         thresholds=json.dumps(thresholds or THRESHOLDS), **baselines)
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
    """Four monthly runs: the first span (the training data), the previous span, a new span from the
    same months, and a span that moved; each new one compared with the one before and with training."""
    root = tmp_path_factory.mktemp("drift_gate")
    spans = _spans(root)
    out: dict = {"root": root}
    _run(root, spans["training"])
    out["training"] = _published(root, "ExampleStatistics")[-1].uri
    out["first_report"] = _published(root, "DriftReport")[-1].uri
    _run(root, spans["previous"], previous=out["training"], training=out["training"])
    out["previous"] = _published(root, "ExampleStatistics")[-1].uri
    _run(root, spans["new"], previous=out["previous"], training=out["training"])
    out["new"] = _published(root, "ExampleStatistics")[-1].uri
    out["new_report"] = _published(root, "DriftReport")[-1].uri
    out["reports_before_moved"] = len(_published(root, "DriftReport"))
    with pytest.raises(executor.DriftSkewExceeded) as err:
        _run(root, spans["moved"], previous=out["previous"], training=out["training"])
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
    expected = {f.name for f in schema.feature} - {"tips"}
    assert report["skipped"] == ["tips"]
    for name in ("drift", "skew"):
        features = report["comparisons"][name]["features"]
        assert report["comparisons"][name]["compared"] and set(features) == expected
        for feature, result in features.items():
            assert result["measured"] is not None and not result["exceeded"], (name, feature, result)
            assert 0 <= result["measured"] <= result["threshold"]
    assert features["company"]["kind"] == "categorical" and features["company"]["metric"] == "infinity_norm"
    assert features["fare"] == {**features["fare"], "kind": "numeric", "metric": "jensen_shannon_divergence",
                                "histogram": "quantiles", "threshold": 0.15}
    assert features["pickup_census_tract"]["histogram"] == "standard"
    markdown = (Path(runs["new_report"]) / executor.REPORT_MD).read_text()
    assert "**PASSED**" in markdown and "| fare | numeric | jensen_shannon_divergence (quantiles histogram) |" in markdown


def test_moved_span_stops_the_run_naming_columns_and_distances(runs):
    message = runs["moved_error"]
    exceeded = EXCEEDED.findall(message)
    assert {(comparison, column) for comparison, column, *_ in exceeded} == {
        (c, column) for c in ("drift vs previous span", "skew vs training data") for column in ("fare", "payment_type")
    }, message
    for _, column, metric, measured, threshold in exceeded:
        assert metric == ("L-infinity distance" if column == "payment_type" else "Jensen-Shannon divergence")
        assert float(measured) > float(threshold)
    # TFX deletes the output folder of a failed component: the report is kept beside it and named.
    kept = Path(re.search(r"^Full report: (.+)$", message, re.M).group(1))
    assert kept.name == executor.REPORT_MD and kept.parent.name.endswith(executor.KEPT_SUFFIX)
    assert "**FAILED: 4 thresholds exceeded**" in kept.read_text()
    report = json.loads((kept.parent / executor.REPORT_JSON).read_text())
    assert not report["passed"] and len(report["exceeded"]) == 4
    fare = report["comparisons"]["drift"]["features"]["fare"]
    assert fare["exceeded"] and fare["measured"] > fare["threshold"] == 0.15
    assert f"Jensen-Shannon divergence {fare['measured']:.2f} > 0.15" in message
    assert "Credit Card" in report["comparisons"]["skew"]["features"]["payment_type"]["note"]  # TFDV's explanation
    assert len(_published(runs["root"], "DriftReport")) == runs["reports_before_moved"]  # nothing published


@pytest.mark.parametrize("stats", ["new", "moved"])
def test_measured_distances_are_tfdvs(runs, stats):
    """The report's numbers are what TFDV itself reports on the same statistics and schema."""

    def load(uri: str):
        return tfdv.load_stats_binary(str(Path(uri) / "Split-train" / "FeatureStats.pb"))

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
                    schema_pb2.HistogramSelection.STANDARD if feature.name.endswith("census_tract")
                    else schema_pb2.HistogramSelection.QUANTILES)
    anomalies = tfdv.validate_statistics(load(runs[stats]), schema, previous_statistics=load(runs["previous"]),
                                         serving_statistics=load(runs["training"]))
    drift = {i.path.step[0]: i.drift_measurements[0].value for i in anomalies.drift_skew_info}
    skew = {i.path.step[0]: i.skew_measurements[0].value for i in anomalies.drift_skew_info}
    assert len(drift) == len(skew) == len(schema.feature) - 1

    # The pipeline's report (for the moved span, the copy kept after the failure) ...
    pipeline_report = (_report(runs["new_report"]) if stats == "new" else
                       _report(runs["moved_error"].rsplit("Full report: ", 1)[1].rsplit("/", 1)[0]))
    # ... and the executor run directly with other thresholds: the same measurements.
    direct = executor.check(
        executor.StatsSource(runs[stats], ["train"]), runs["schema"], str(runs["root"] / f"direct_{stats}"),
        json.dumps({**THRESHOLDS, "categorical_linf": 1.0, "numeric_js": 1.0}),
        previous=executor.StatsSource(runs["previous"]), training=executor.StatsSource(runs["training"]))
    for report in (pipeline_report, direct):
        assert {f: r["measured"] for f, r in report["comparisons"]["drift"]["features"].items()} == drift
        assert {f: r["measured"] for f, r in report["comparisons"]["skew"]["features"].items()} == skew
    if stats == "moved":
        assert drift["fare"] > THRESHOLDS["numeric_js"] and skew["payment_type"] > THRESHOLDS["categorical_linf"]


def test_per_feature_override_and_skip(runs, tmp_path):
    def check(thresholds: dict, name: str) -> dict:
        return executor.check(executor.StatsSource(runs["moved"], ["train"]), runs["schema"], str(tmp_path / name),
                              json.dumps({**THRESHOLDS, **thresholds}),
                              previous=executor.StatsSource(runs["previous"], ["train"]),
                              training=executor.StatsSource(runs["training"], ["train"]))

    loose = {"fare": {"numeric_js": 0.9, "numeric_histogram": "quantiles"}, "payment_type": {"categorical_linf": 0.9}}
    report = check({"features": {**THRESHOLDS["features"], **loose}}, "loose")
    assert report["passed"]
    drift = report["comparisons"]["drift"]["features"]
    assert drift["fare"]["threshold"] == 0.9 and drift["payment_type"]["threshold"] == 0.9
    assert drift["company"]["threshold"] == 0.1 and drift["trip_miles"]["threshold"] == 0.15

    report = check({"skip": ["tips", "fare", "payment_type"]}, "skipped")
    assert report["passed"] and report["skipped"] == ["fare", "payment_type", "tips"]
    assert not {"fare", "payment_type", "tips"} & set(report["comparisons"]["skew"]["features"])

    with pytest.raises(executor.DriftSkewExceeded) as err:
        check({"features": {"company": {"categorical_linf": 0.0}}, "skip": ["tips", "fare", "payment_type"]}, "tight")
    lines = EXCEEDED.findall(str(err.value))
    assert {(comparison, column) for comparison, column, *_ in lines} == {
        ("drift vs previous span", "company"), ("skew vs training data", "company")}
    assert all(float(measured) > 0 and float(threshold) == 0 for *_, measured, threshold in lines)
    assert (tmp_path / "tight" / executor.REPORT_JSON).exists()  # written before failing


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
