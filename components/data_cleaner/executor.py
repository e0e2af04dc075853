"""DataCleaner's logic: fit on the fit split (train) only, then filter every split the same way, on Beam.

Steps, in order: (1) drop columns whose missing fraction on train exceeds the threshold (never a
protected one); (2) delete rows missing any listed column; (3) delete rows with too many missing
values among listed columns; (4) outlier rules in order, each fitted on the train rows that survived
every previous step. Rules (2)-(4) read the input columns, including any that step (1) drops from
the output. A missing value (absent feature, empty list or float NaN) is never an outlier.

With ``label_classes``, the cleaned rows of every other split are checked against the classes of
the fit split: a class the model never saw in training stops the run with a named error.

Outputs are staged and moved into place only after the Beam pipeline succeeded.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.io import fileio
from tfx.utils import io_utils

from components.data_cleaner.rules import DropRowsMissing, MaxMissingPerRow, RemoveOutliers, Rules, parse_rules

SCHEMA_FILE = "schema.pbtxt"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
TFRECORD_PREFIX = "data_tfrecord"  # <uri>/Split-<name>/data_tfrecord-*.gz, as ExampleGen writes them
_ITEMS_FILE = "report_items.json"


# ---- reading values -------------------------------------------------------------------------------

def _values(example: tf.train.Example, column: str) -> Sequence[Any]:
    features = example.features.feature
    if column not in features:  # never index a missing key: that would insert it
        return ()
    feature = features[column]
    kind = feature.WhichOneof("kind")
    return getattr(feature, kind).value if kind else ()


def is_missing(example: tf.train.Example, column: str) -> bool:
    values = _values(example, column)
    return len(values) == 0 or (len(values) == 1 and isinstance(values[0], float) and math.isnan(values[0]))


def numeric_value(example: tf.train.Example, column: str) -> float | None:
    """The column's single value as a float, None when missing."""
    values = _values(example, column)
    if len(values) == 0:
        return None
    if len(values) > 1:
        raise ValueError(f"DataCleaner: column '{column}' has {len(values)} values in a row; expected 0 or 1")
    if isinstance(values[0], bytes):
        raise ValueError(f"DataCleaner: column '{column}' holds strings; outlier rules need a numeric column")
    value = float(values[0])
    return None if math.isnan(value) else value


def present_value(example: tf.train.Example, column: str) -> list[float]:
    value = numeric_value(example, column)
    return [] if value is None else [value]


# ---- fitting (plain functions and combiners) ------------------------------------------------------

class UnseenLabelClasses(ValueError):
    """Eval/test rows hold a label class that train does not have: the model cannot predict it."""


def class_token(example: tf.train.Example, column: str) -> list[str]:
    """The row's label as a class token (``features.task.token``), [] when missing."""
    from features.task import token

    values = _values(example, column)
    if len(values) == 0 or (isinstance(values[0], float) and math.isnan(values[0])):
        return []
    return [token(values[0])]


def unseen_classes(items: Iterable[Sequence[Any]], column: str, fit_split: str) -> str | None:
    """The error text when a split has classes the fit split lacks (from the report items)."""
    seen = next((set(item[1]) for item in items if item[0] == "classes"), set())
    unseen = {(item[1], item[2]): item[3] for item in items if item[0] == "unseen"}
    if not unseen:
        return None
    lines = [f"split '{split}': class {cls!r} in {n} row{'s' if n > 1 else ''}"
             for (split, cls), n in sorted(unseen.items())]
    return (f"DataCleaner: label column '{column}' has classes that the {fit_split} split never has, so the "
            f"model cannot learn them ({fit_split} classes: {', '.join(sorted(seen)) or 'none'}):\n  - "
            + "\n  - ".join(lines) + "\nAdd such rows to the data (the split is a hash of each row), merge "
            "the rare class into another, or remove its rows.")


class MissingFractionFn(beam.CombineFn):
    """Fraction of rows missing each column: {column: fraction}."""

    def __init__(self, columns: Sequence[str]):
        self._columns = list(columns)

    def create_accumulator(self) -> list[int]:
        return [0] * (len(self._columns) + 1)  # missing count per column, then row count

    def add_input(self, acc: list[int], example: tf.train.Example) -> list[int]:
        for i, column in enumerate(self._columns):
            acc[i] += is_missing(example, column)
        acc[-1] += 1
        return acc

    def merge_accumulators(self, accs: Iterable[list[int]]) -> list[int]:
        return [sum(parts) for parts in zip(*accs, strict=True)]

    def extract_output(self, acc: list[int]) -> dict[str, float]:
        rows = acc[-1]
        return {c: (acc[i] / rows if rows else 0.0) for i, c in enumerate(self._columns)}


class MomentsFn(beam.CombineFn):
    """(count, mean, sum of squared deviations) with Chan et al.'s parallel merge: no data gathering."""

    def create_accumulator(self) -> tuple[int, float, float]:
        return 0, 0.0, 0.0

    def add_input(self, acc: tuple[int, float, float], x: float) -> tuple[int, float, float]:
        n, mean, m2 = acc
        n += 1
        delta = x - mean
        mean += delta / n
        return n, mean, m2 + delta * (x - mean)

    def merge_accumulators(self, accs: Iterable[tuple[int, float, float]]) -> tuple[int, float, float]:
        n, mean, m2 = 0, 0.0, 0.0
        for nb, mean_b, m2_b in accs:
            if nb:
                total = n + nb
                delta = mean_b - mean
                mean += delta * nb / total
                m2 += m2_b + delta * delta * n * nb / total
                n = total
        return n, mean, m2

    def extract_output(self, acc: tuple[int, float, float]) -> tuple[int, float, float]:
        return acc


def columns_to_drop(missing_fraction: Mapping[str, float], rules: Rules) -> dict[str, list[str]]:
    """Columns over the missing-fraction threshold: dropped, or kept because protected."""
    threshold = rules.drop_columns_missing_fraction
    over = [] if threshold is None else sorted(c for c, f in missing_fraction.items() if f > threshold)
    return {"dropped": [c for c in over if c not in rules.protected_columns],
            "kept_protected": [c for c in over if c in rules.protected_columns]}


def _fitted(rule: RemoveOutliers, n: int, lower: float | None, upper: float | None, **stats: float) -> dict:
    return {"rule": rule.name, "method": rule.method, "n": n, "lower": lower, "upper": upper,
            **{k: float(v) for k, v in stats.items()}}


def quantile_bounds(values: Sequence[float], rule: RemoveOutliers) -> dict[str, Any]:
    """quantile / iqr bounds from all present values, exactly as np.quantile (linear interpolation)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return _fitted(rule, 0, None, None)
    if rule.method == "quantile":
        lower, upper = np.quantile(arr, [rule.lower, rule.upper])
        return _fitted(rule, arr.size, float(lower), float(upper))
    q1, q3 = np.quantile(arr, [0.25, 0.75])
    iqr = q3 - q1
    return _fitted(rule, arr.size, float(q1 - rule.k * iqr), float(q3 + rule.k * iqr), q1=q1, q3=q3)


def z_score_bounds(moments: tuple[int, float, float], rule: RemoveOutliers) -> dict[str, Any]:
    """[mean - k*std, mean + k*std] with the population std (ddof=0)."""
    n, mean, m2 = moments
    if n == 0:
        return _fitted(rule, 0, None, None)
    std = math.sqrt(m2 / n)
    return _fitted(rule, n, mean - rule.k * std, mean + rule.k * std, mean=mean, std=std)


# ---- filters ----------------------------------------------------------------------------------------

def keep_row(example: tf.train.Example, rule: DropRowsMissing | MaxMissingPerRow) -> bool:
    if isinstance(rule, DropRowsMissing):
        return not any(is_missing(example, c) for c in rule.columns)
    return sum(is_missing(example, c) for c in rule.columns) <= rule.max_missing


def within_bounds(example: tf.train.Example, column: str, fitted: Mapping[str, Any]) -> bool:
    value = numeric_value(example, column)
    if value is None or fitted["lower"] is None:  # missing is never an outlier; nothing fitted, nothing removed
        return True
    return fitted["lower"] <= value <= fitted["upper"]


def drop_features(example: tf.train.Example, columns: Mapping[str, list[str]]) -> tf.train.Example:
    if not columns["dropped"]:
        return example
    out = tf.train.Example()
    out.CopyFrom(example)  # Beam elements are immutable
    for column in columns["dropped"]:
        if column in out.features.feature:
            del out.features.feature[column]
    return out


# ---- the Beam graph -----------------------------------------------------------------------------------

def clean_splits(splits: Mapping[str, beam.PCollection], rules: Rules, columns: Sequence[str],
                 fit_split: str) -> tuple[dict[str, beam.PCollection], beam.PCollection]:
    """Fits on splits[fit_split] only and cleans every split identically.

    Returns the cleaned examples per split and one PCollection of report items:
    ("missing_fraction", {...}), ("columns", {"dropped", "kept_protected"}), ("fitted", i, {...}) and
    ("count", split, stage, rows) where stage 0 is the input and stage i the rows left after row rule i.
    """
    train = splits[fit_split]
    missing = train | "FitMissingFraction" >> beam.CombineGlobally(MissingFractionFn(columns))
    dropped = missing | "ChooseColumns" >> beam.Map(columns_to_drop, rules)
    items = [missing | "ItemMissing" >> beam.Map(lambda f: ("missing_fraction", f)),
             dropped | "ItemColumns" >> beam.Map(lambda d: ("columns", d))]

    current = dict(splits)
    stages = {split: [pcoll] for split, pcoll in splits.items()}
    for i, rule in enumerate(rules.row_rules):
        if isinstance(rule, RemoveOutliers):
            values = current[fit_split] | f"Values[{i}]" >> beam.FlatMap(present_value, rule.column)
            if rule.method == "z_score":
                fitted = (values | f"Moments[{i}]" >> beam.CombineGlobally(MomentsFn())
                          | f"ZBounds[{i}]" >> beam.Map(z_score_bounds, rule))
            else:
                # Exact quantiles (= np.quantile): one column's present train values are gathered on one
                # worker, a Python float each: some tens of MB per million rows, fine for one numeric column.
                fitted = (values | f"Gather[{i}]" >> beam.combiners.ToList()
                          | f"QBounds[{i}]" >> beam.Map(quantile_bounds, rule))
            items.append(fitted | f"ItemFitted[{i}]" >> beam.Map(lambda b, i=i: ("fitted", i, b)))
            bounds = beam.pvalue.AsSingleton(fitted)
            for split in current:
                current[split] = current[split] | f"Filter[{i}][{split}]" >> beam.Filter(
                    within_bounds, rule.column, bounds)
        else:
            for split in current:
                current[split] = current[split] | f"Filter[{i}][{split}]" >> beam.Filter(keep_row, rule)
        for split in current:
            stages[split].append(current[split])

    for split, pcolls in stages.items():
        for stage, pcoll in enumerate(pcolls):
            items.append(pcoll | f"Count[{split}][{stage}]" >> beam.combiners.Count.Globally()
                         | f"ItemCount[{split}][{stage}]" >> beam.Map(lambda n, s=split, j=stage: ("count", s, j, n)))

    if rules.label_classes:
        column = rules.label_classes
        classes = (current[fit_split] | "FitClasses" >> beam.FlatMap(class_token, column)
                   | "DistinctClasses" >> beam.Distinct() | "ClassList" >> beam.combiners.ToList())
        items.append(classes | "ItemClasses" >> beam.Map(lambda c: ("classes", sorted(c))))
        known = beam.pvalue.AsSingleton(classes)
        for split in current:
            if split != fit_split:
                items.append(
                    current[split] | f"Classes[{split}]" >> beam.FlatMap(class_token, column)
                    | f"Unseen[{split}]" >> beam.Filter(lambda c, k: c not in k, known)
                    | f"CountUnseen[{split}]" >> beam.combiners.Count.PerElement()
                    | f"ItemUnseen[{split}]" >> beam.Map(lambda kv, s=split: ("unseen", s, kv[0], kv[1])))

    drop = beam.pvalue.AsSingleton(dropped)
    cleaned = {split: pcoll | f"DropColumns[{split}]" >> beam.Map(drop_features, drop)
               for split, pcoll in current.items()}
    return cleaned, items | "FlattenItems" >> beam.Flatten()


# ---- report -------------------------------------------------------------------------------------------

def build_report(items: Iterable[Sequence[Any]], rules: Rules, split_names: Sequence[str],
                 fit_split: str) -> dict[str, Any]:
    counts: dict[tuple[str, int], int] = {}
    fitted: dict[str, Any] = {}
    columns: dict[str, list[str]] = {}
    missing_fraction: dict[str, float] = {}
    for item in items:
        if item[0] == "count":
            counts[(item[1], item[2])] = item[3]
        elif item[0] == "fitted":
            fitted[item[2]["rule"]] = item[2]
        elif item[0] == "columns":
            columns = item[1]
        elif item[0] == "missing_fraction":
            missing_fraction = item[1]
    last = len(rules.row_rules)
    splits = {split: [{"rule": rule.name, "rows_in": counts[(split, i)],
                       "rows_removed": counts[(split, i)] - counts[(split, i + 1)],
                       "rows_out": counts[(split, i + 1)]} for i, rule in enumerate(rules.row_rules)]
              for split in split_names}
    return {
        "fit_split": fit_split,
        "totals": {s: {"rows_in": counts[(s, 0)], "rows_out": counts[(s, last)]} for s in split_names},
        "splits": splits,
        "dropped_columns": columns["dropped"],
        "kept_protected_columns": columns["kept_protected"],
        "fitted": {**{r.column: fitted[r.name] for r in rules.outlier_rules}, "missing_fraction": missing_fraction},
        "drop_columns_missing_fraction": rules.drop_columns_missing_fraction,
    }


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _names(columns: Sequence[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns) or "none"


def report_markdown(report: Mapping[str, Any]) -> str:
    lines = [f"# DataCleaner report (fitted on `{report['fit_split']}`)", "",
             f"- dropped columns (missing fraction > {report['drop_columns_missing_fraction']}): "
             f"{_names(report['dropped_columns'])}",
             f"- protected, kept despite the threshold: {_names(report['kept_protected_columns'])}", "",
             "| split | rule | rows in | removed | rows out |", "| --- | --- | ---: | ---: | ---: |"]
    for split, rows in report["splits"].items():
        lines += [f"| {split} | `{r['rule']}` | {r['rows_in']} | {r['rows_removed']} | {r['rows_out']} |" for r in rows]
        total = report["totals"][split]
        lines.append(f"| {split} | **total** | {total['rows_in']} | {total['rows_in'] - total['rows_out']} "
                     f"| {total['rows_out']} |")
    outliers = {c: f for c, f in report["fitted"].items() if c != "missing_fraction"}
    if outliers:
        lines += ["", "| column | method | lower | upper | train values |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {c} | {f['method']} | {_fmt(f['lower'])} | {_fmt(f['upper'])} | {f['n']} |"
                  for c, f in outliers.items()]
    return "\n".join(lines) + "\n"


# ---- the component's body -----------------------------------------------------------------------------

def cleaned_schema(schema: schema_pb2.Schema, dropped: Sequence[str]) -> schema_pb2.Schema:
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    del out.feature[:]
    out.feature.extend(f for f in schema.feature if f.name not in dropped)
    return out


def _split_dir(uri: str, split: str) -> str:
    return os.path.join(uri, f"Split-{split}")


def run(*, examples_uri: str, split_names: Sequence[str], schema_uri: str, cleaned_examples_uri: str,
        cleaned_schema_uri: str, report_uri: str, rules_json: str, fit_split: str = "train",
        beam_pipeline: beam.Pipeline | None = None) -> dict[str, Any]:
    """Reads, cleans and writes every split; returns the report. Nothing is written unless Beam succeeded."""
    schema = io_utils.SchemaReader().read(os.path.join(schema_uri, SCHEMA_FILE))
    rules = parse_rules(rules_json, schema)
    if fit_split not in split_names:
        raise ValueError(f"DataCleaner: fit_split '{fit_split}' is not a split of the examples ({list(split_names)})")
    staging = os.path.join(cleaned_examples_uri, f".staging-{uuid.uuid4().hex}")
    try:
        with beam_pipeline or beam.Pipeline() as p:
            splits = {s: (p | f"Read[{s}]" >> beam.io.ReadFromTFRecord(os.path.join(_split_dir(examples_uri, s), "*"))
                          | f"Parse[{s}]" >> beam.Map(tf.train.Example.FromString).with_output_types(tf.train.Example))
                      for s in split_names}
            cleaned, items = clean_splits(splits, rules, [f.name for f in schema.feature], fit_split)
            for s, pcoll in cleaned.items():
                _ = (pcoll | f"Serialize[{s}]" >> beam.Map(lambda e: e.SerializeToString())
                     | f"Write[{s}]" >> beam.io.WriteToTFRecord(
                            os.path.join(_split_dir(staging, s), TFRECORD_PREFIX), file_name_suffix=".gz"))
            _ = (items | "GatherItems" >> beam.combiners.ToList() | "ItemsJson" >> beam.Map(json.dumps)
                 | "WriteItems" >> beam.io.WriteToText(os.path.join(staging, _ITEMS_FILE),
                                                       num_shards=1, shard_name_template=""))
        # The pipeline succeeded: check the label's classes, then publish.
        with fileio.open(os.path.join(staging, _ITEMS_FILE)) as fh:
            items = json.loads(fh.read())
        if rules.label_classes and (problem := unseen_classes(items, rules.label_classes, fit_split)):
            raise UnseenLabelClasses(problem)
        report = build_report(items, rules, split_names, fit_split)
        for s in split_names:
            fileio.makedirs(_split_dir(cleaned_examples_uri, s))
            for path in fileio.glob(os.path.join(_split_dir(staging, s), "*")):
                fileio.rename(path, os.path.join(_split_dir(cleaned_examples_uri, s), os.path.basename(path)))
    finally:
        if fileio.exists(staging):
            fileio.rmtree(staging)
    io_utils.write_pbtxt_file(os.path.join(cleaned_schema_uri, SCHEMA_FILE),
                              cleaned_schema(schema, report["dropped_columns"]))
    io_utils.write_string_file(os.path.join(report_uri, REPORT_JSON), json.dumps(report, indent=2))
    io_utils.write_string_file(os.path.join(report_uri, REPORT_MD), report_markdown(report))
    return report
