"""Compares a new span's statistics with the previous span's (drift) and the training data's
(skew) through TFDV, writes a report and turns exceeded thresholds into a readable verdict.

Each comparison is one ``tfdv.validate_statistics`` call on a copy of the schema carrying
only that comparison's comparators (``drift_comparator`` with ``previous_statistics``,
``skew_comparator`` with ``serving_statistics``): the measured distances are TFDV's
``drift_skew_info``, and a feature exceeds its threshold when TFDV reports a
comparator-high anomaly for it. Schema anomalies (types, presence, domains) are
ExampleValidator's job and are ignored here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components.drift_skew_gate.thresholds import CATEGORICAL, HISTOGRAMS, NUMERIC, Limit, Thresholds

STATS_FILE = "FeatureStats.pb"  # StatisticsGen's file name inside Split-<name>/
SCHEMA_FILE = "schema.pbtxt"  # SchemaGen's / ImportSchemaGen's file name
REPORT_JSON, REPORT_MD = "report.json", "report.md"
# TFX deletes a failed component's output folder; the report of a failed run is also kept here.
KEPT_SUFFIX = ".failed"

_Reason = anomalies_pb2.AnomalyInfo
_HIGH = {CATEGORICAL: _Reason.COMPARATOR_L_INFTY_HIGH, NUMERIC: _Reason.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH}
_DATA_MISSING = {_Reason.COMPARATOR_CONTROL_DATA_MISSING, _Reason.COMPARATOR_TREATMENT_DATA_MISSING}
_STATS_ONEOF = {CATEGORICAL: "string_stats", NUMERIC: "num_stats"}


class DriftSkewExceeded(RuntimeError):
    """The new span moved further from the previous span or the training data than allowed."""


@dataclass(frozen=True)
class StatsSource:
    """One ExampleStatistics artifact: its folder and split names (empty if not recorded)."""

    uri: str
    split_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    name: str  # drift | skew
    baseline: str  # what the new span is compared with
    comparator: str  # schema Feature field
    measurements: str  # DriftSkewInfo field
    tfdv_arg: str  # validate_statistics keyword of the baseline

    @property
    def label(self) -> str:
        return f"{self.name} vs {self.baseline}"


DRIFT = Comparison("drift", "previous span", "drift_comparator", "drift_measurements", "previous_statistics")
SKEW = Comparison("skew", "training data", "skew_comparator", "skew_measurements", "serving_statistics")


@dataclass(frozen=True)
class FeatureResult:
    feature: str
    limit: Limit
    measured: float | None  # TFDV's value; None when TFDV could not measure it
    exceeded: bool
    note: str = ""  # TFDV's explanation of an anomaly, or why nothing was measured

    def line(self, comparison: Comparison) -> str:
        measured, threshold = format_pair(self.measured, self.limit.threshold)
        return (f"{comparison.label}: column '{self.feature}': {self.limit.metric_name} "
                f"{measured} > {threshold}")

    def to_json(self) -> dict:
        out = {"kind": self.limit.kind, "metric": self.limit.metric, "measured": self.measured,
               "threshold": self.limit.threshold, "exceeded": self.exceeded}
        if self.limit.histogram:
            out["histogram"] = self.limit.histogram
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class ComparisonResult:
    comparison: Comparison
    compared: bool
    features: list[FeatureResult] = field(default_factory=list)
    note: str = ""

    @property
    def exceeded(self) -> list[FeatureResult]:
        return [f for f in self.features if f.exceeded]


def format_pair(measured: float | None, threshold: float) -> tuple[str, str]:
    """Both numbers with 2 decimals, or more until the measured value visibly exceeds the threshold."""
    if measured is None:
        return "not measured", f"{threshold:.2f}"
    for digits in range(2, 7):
        if round(measured, digits) != round(threshold, digits):
            break
    return f"{measured:.{digits}f}", f"{threshold:.{digits}f}"


def load_statistics(source: StatsSource, split: str, what: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    if source.split_names and split not in source.split_names:
        raise ValueError(f"{what} ({source.uri}) have no split '{split}' (splits: {', '.join(source.split_names)}); "
                         "set \"split\" in the thresholds")
    path = os.path.join(source.uri, f"Split-{split}", STATS_FILE)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"{what}: no {path}; set \"split\" in the thresholds to a split the artifact has")
    return tfdv.load_stats_binary(path)


def load_schema(uri: str) -> schema_pb2.Schema:
    import tensorflow_data_validation as tfdv

    return tfdv.load_schema_text(os.path.join(uri, SCHEMA_FILE))


def schema_with_comparators(schema: schema_pb2.Schema, limits: dict[str, Limit],
                            comparison: Comparison) -> schema_pb2.Schema:
    """A copy of ``schema`` whose only comparators are ``comparison``'s, with ``limits``' thresholds."""
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    for feature in out.feature:
        feature.ClearField("drift_comparator")
        feature.ClearField("skew_comparator")
        limit = limits.get(feature.name)
        if limit is None:
            continue
        metric = getattr(getattr(feature, comparison.comparator), limit.metric)
        metric.threshold = limit.threshold
        if limit.kind == NUMERIC:
            metric.source.type = HISTOGRAMS[limit.histogram]
    return out


def _feature_stats(stats: statistics_pb2.DatasetFeatureStatisticsList,
                   ) -> dict[str, statistics_pb2.FeatureNameStatistics]:
    """The default slice's statistics of each feature, by name."""
    import tensorflow_data_validation as tfdv

    dataset = tfdv.DatasetListView(stats).get_default_slice_or_die().proto()
    return {(f.name or ".".join(f.path.step)): f for f in dataset.features}


def _unmeasurable(limits: dict[str, Limit], datasets: dict[str, statistics_pb2.DatasetFeatureStatisticsList],
                  ) -> dict[str, str]:
    """Features whose statistics are not of their kind's: a column without any value (typed as a
    string when read from CSV), or a categorical INT feature whose statistics were computed without
    the schema. TFDV would measure nothing, or a meaningless 0, for them."""
    notes: dict[str, str] = {}
    for what, stats in datasets.items():
        features = _feature_stats(stats)
        for name, limit in limits.items():
            feature = features.get(name)
            found = feature.WhichOneof("stats") if feature is not None else None
            if found is None or name in notes:  # absent: TFDV reports it (control/treatment data missing)
                continue
            if getattr(feature, found).common_stats.num_non_missing == 0:
                notes[name] = f"not measured: the column has no values in the {what}"
            elif found != _STATS_ONEOF[limit.kind]:
                notes[name] = (f"not measured: the {what} statistics hold {found} for this {limit.kind} feature, "
                               f"not {_STATS_ONEOF[limit.kind]} (compute statistics with the schema)")
    return notes


def compare(statistics: statistics_pb2.DatasetFeatureStatisticsList,
            baseline: statistics_pb2.DatasetFeatureStatisticsList,
            schema: schema_pb2.Schema, limits: dict[str, Limit], comparison: Comparison) -> ComparisonResult:
    """Measures every feature of ``limits`` between ``statistics`` and ``baseline`` with TFDV."""
    import tensorflow_data_validation as tfdv

    unmeasurable = _unmeasurable(limits, {"new span": statistics, comparison.baseline: baseline})
    measured_limits = {n: lim for n, lim in limits.items() if n not in unmeasurable}
    anomalies = tfdv.validate_statistics(statistics, schema_with_comparators(schema, measured_limits, comparison),
                                         **{comparison.tfdv_arg: baseline})
    values = {}
    for info in anomalies.drift_skew_info:
        for m in getattr(info, comparison.measurements):
            values[".".join(info.path.step)] = m.value
    features = []
    for name, limit in sorted(limits.items()):
        if name in unmeasurable:
            features.append(FeatureResult(name, limit, None, False, unmeasurable[name]))
            continue
        reasons = anomalies.anomaly_info[name].reason if name in anomalies.anomaly_info else []
        high = [r.description for r in reasons if r.type == _HIGH[limit.kind]]
        missing = [r.description for r in reasons if r.type in _DATA_MISSING]
        note = "; ".join(high) or ("not measured: " + "; ".join(missing) if missing else "")
        if name not in values and not note:
            note = "not measured: TFDV reported no value"
        features.append(FeatureResult(name, limit, values.get(name), bool(high), note))
    return ComparisonResult(comparison, True, features)


def not_compared(comparison: Comparison) -> ComparisonResult:
    return ComparisonResult(comparison, False, note=f"no {comparison.baseline} statistics given: nothing compared")


def build_report(split: str, results: list[ComparisonResult], skipped: list[str]) -> dict:
    exceeded = [f.line(r.comparison) for r in results for f in r.exceeded]
    return {
        "split": split,
        "passed": not exceeded,
        "exceeded": exceeded,
        "comparisons": {
            r.comparison.name: {"baseline": r.comparison.baseline, "compared": r.compared, "note": r.note,
                                "features": {f.feature: f.to_json() for f in r.features}}
            for r in results},
        "skipped": skipped,
    }


def report_markdown(report: dict) -> str:
    n = len(report["exceeded"])
    verdict = "PASSED" if report["passed"] else f"FAILED: {n} threshold{'s' if n > 1 else ''} exceeded"
    if not any(c["compared"] for c in report["comparisons"].values()):
        verdict += " (nothing compared: no previous span or training statistics)"
    lines = [f"# Drift and skew report (split `{report['split']}`)", "", f"**{verdict}**", ""]
    lines += [f"- {line}" for line in report["exceeded"]] + ([""] if n else [])
    for name, comp in report["comparisons"].items():
        lines += [f"## {name.capitalize()} vs {comp['baseline']}", ""]
        if not comp["compared"]:
            lines += [comp["note"].capitalize() + ".", ""]
            continue
        lines += ["| feature | kind | metric | measured | threshold | result |",
                  "| --- | --- | --- | ---: | ---: | --- |"]
        for feature, f in comp["features"].items():
            measured, threshold = format_pair(f["measured"], f["threshold"])
            metric = f["metric"] + (f" ({f['histogram']} histogram)" if "histogram" in f else "")
            result = "**EXCEEDED**" if f["exceeded"] else ("not measured" if f["measured"] is None else "ok")
            lines.append(f"| {feature} | {f['kind']} | {metric} | {measured} | {threshold} | {result} |")
        notes = [(feature, f["note"]) for feature, f in comp["features"].items() if "note" in f]
        lines += [""] + [f"- `{feature}`: {note}" for feature, note in notes] + ([""] if notes else [])
    if report["skipped"]:
        lines += [f"Skipped (never compared): {', '.join(report['skipped'])}", ""]
    return "\n".join(lines)


def write_report(report: dict, uri: str) -> None:
    import tensorflow as tf

    tf.io.gfile.makedirs(uri)
    with tf.io.gfile.GFile(os.path.join(uri, REPORT_JSON), "w") as fh:
        fh.write(json.dumps(report, indent=2) + "\n")
    with tf.io.gfile.GFile(os.path.join(uri, REPORT_MD), "w") as fh:
        fh.write(report_markdown(report))


def check(statistics: StatsSource, schema_uri: str, report_uri: str, thresholds_json: str,
          previous: StatsSource | None = None, training: StatsSource | None = None) -> dict:
    """Compares, writes the report to ``report_uri`` and raises DriftSkewExceeded if a threshold is exceeded.

    On failure the report is also written to ``<report_uri>.failed``, which TFX does not delete.
    """
    thresholds = Thresholds.from_json(thresholds_json)
    schema = load_schema(schema_uri)
    limits = thresholds.limits(schema)
    current = load_statistics(statistics, thresholds.split, "the new span's statistics")
    results = []
    for comparison, source in ((DRIFT, previous), (SKEW, training)):
        if source is None:
            results.append(not_compared(comparison))
            continue
        baseline = load_statistics(source, thresholds.split, f"the {comparison.baseline} statistics")
        results.append(compare(current, baseline, schema, limits, comparison))
    report = build_report(thresholds.split, results, sorted(thresholds.skip))
    write_report(report, report_uri)
    lines = report["exceeded"]
    if lines:
        kept = report_uri.rstrip("/") + KEPT_SUFFIX
        write_report(report, kept)
        raise DriftSkewExceeded(
            f"{len(lines)} drift/skew threshold{'s' if len(lines) > 1 else ''} exceeded on split "
            f"'{thresholds.split}'; the run stops here:\n  - " + "\n  - ".join(lines)
            + f"\nFull report: {os.path.join(kept, REPORT_MD)}")
    compared = [f"{r.comparison.label}: {len(r.features)} features within thresholds" if r.compared else
                f"{r.comparison.name}: {r.note}" for r in results]
    logging.info("DriftSkewGate passed on split '%s': %s", thresholds.split, "; ".join(compared))
    return report
