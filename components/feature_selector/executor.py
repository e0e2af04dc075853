"""FeatureSelector's executor: sample the fit split with Beam, score candidates, write outputs.

Steps, in order, each failing with a ValueError that names the culprit:
  1. ``parse_config``: the JSON config (exactly one of top_k / threshold, known keys, types).
  2. ``check_schema``: every candidate and label column is a column of the data.
  3. ``sample_records``: a uniform sample of at most ``sample_size`` rows of the fit split
     (train), gathered with Beam and put in a canonical order (sorted serialized records).
  4. ``scoring.score`` / ``scoring.select``: MI and |r| against the label, then selection.
  5. ``write_outputs``: the selected schema and the score table, written only now.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import apache_beam as beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types.artifact import Artifact
from tfx.utils import io_utils

from components.feature_selector import report, scoring
from components.feature_selector.scoring import Candidate, FeatureScore
from features import task as task_lib
from features.task import Label

SCHEMA_FILE = "schema.pbtxt"
STAGING_DIR = ".staging"  # inside the scores artifact while Beam runs; removed before outputs are written
DEFAULT_SAMPLE_SIZE = 50000
CONFIG_KEYS = {"method", "top_k", "threshold", "candidates", "label", "always_keep", "sample_size", "seed"}
LABEL_KEYS = set(Label.__dataclass_fields__)


@dataclass(frozen=True)
class SelectorConfig:
    candidates: tuple[Candidate, ...]
    label: Label
    method: str = scoring.MUTUAL_INFORMATION
    top_k: int | None = None
    threshold: float | None = None
    always_keep: tuple[str, ...] = ()
    sample_size: int = DEFAULT_SAMPLE_SIZE
    seed: int = 0

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column read from the data: candidates, then the label's source columns."""
        names = [c.name for c in self.candidates]
        return tuple(names + [c for c in self.label.source_columns if c not in names])

    @property
    def mode(self) -> str:
        return f"top_k={self.top_k}" if self.top_k is not None else f"threshold={self.threshold:g}"


@dataclass(frozen=True)
class Selection:
    config: SelectorConfig
    table: list[FeatureScore]
    schema: schema_pb2.Schema  # the input schema minus the unselected candidates
    rows: int  # rows scored (the sample)
    positives: int | None  # rows with label 1 (binary); None for multiclass and regression


# ------------------------------------------------------------------ config --
def _fail(key: str, msg: str) -> ValueError:
    return ValueError(f"FeatureSelector config: {key}: {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _mapping(value: Any, key: str, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise _fail(key, f"expected a JSON object, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(key, f"unknown key '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}")
    return value


def _candidates(raw: Any) -> tuple[Candidate, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail("candidates", "must be a non-empty list of {name, type}")
    out = []
    for i, item in enumerate(raw):
        key = f"candidates[{i}]"
        item = _mapping(item, key, {"name", "type"})
        name, vtype = item.get("name"), item.get("type")
        if not isinstance(name, str) or not name:
            raise _fail(f"{key}.name", f"must be a column name, got {name!r}")
        if vtype not in scoring.VALUE_TYPES:
            raise _fail(f"{key}.type", f"'{name}': must be one of {', '.join(scoring.VALUE_TYPES)}, got {vtype!r}")
        if any(c.name == name for c in out):
            raise _fail(key, f"'{name}' is listed twice")
        out.append(Candidate(name, vtype))
    return tuple(out)


def _label(raw: Any) -> Label:
    """The label as ``features.task.Label.to_json`` writes it (the config's one definition)."""
    raw = _mapping(raw, "label", LABEL_KEYS)
    column, task = raw.get("column"), raw.get("task", task_lib.BINARY)
    if not isinstance(column, str) or not column:
        raise _fail("label.column", f"must be a column name, got {column!r}")
    if task not in task_lib.TASKS:
        raise _fail("label.task", f"must be one of {', '.join(task_lib.TASKS)}, got {task!r}")
    gt_col, gt, positive = raw.get("greater_than_column"), raw.get("greater_than"), raw.get("positive_class")
    factor = raw.get("factor", 1.0)
    if task == task_lib.BINARY and positive is None:
        if (gt_col is None) == (gt is None):
            raise _fail("label", "give exactly one of greater_than_column or greater_than (the other null), "
                                 "or positive_class")
        if gt_col is not None and (not isinstance(gt_col, str) or not gt_col):
            raise _fail("label.greater_than_column", f"must be a column name, got {gt_col!r}")
        if gt is not None and not _is_number(gt):
            raise _fail("label.greater_than", f"must be a number, got {gt!r}")
    if positive is not None and not isinstance(positive, str):
        raise _fail("label.positive_class", f"must be a class token (a string), got {positive!r}")
    if factor is None:
        factor = 1.0
    if not _is_number(factor):
        raise _fail("label.factor", f"must be a number, got {factor!r}")
    return Label(raw.get("name") or column, column, task, gt_col, float(factor),
                 None if gt is None else float(gt), positive, raw.get("transform") or "none")


def parse_config(text: str) -> SelectorConfig:
    """The component's ``config`` parameter (JSON), validated; errors name the key::

        {"method": "mutual_information" | "correlation",       (default mutual_information)
         "top_k": int >= 1 | null, "threshold": number | null,  (exactly one of them)
         "candidates": [{"name": str, "type": "float" | "int" | "string"}, ...],
         "label": features.task.Label as JSON: {"column": str, "task": ..., and for the binary
                   threshold rule exactly one of "greater_than_column" / "greater_than",
                   or "positive_class"},
         "always_keep": [str, ...],   (kept whatever their score; non-candidates are kept anyway)
         "sample_size": int >= 4 (50000), "seed": int (0)}
    """
    try:
        raw = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"FeatureSelector config: not valid JSON: {exc}") from None
    raw = _mapping(raw, "<top level>", CONFIG_KEYS)
    for key in ("candidates", "label"):
        if key not in raw:
            raise _fail(key, "missing required key")
    method = raw.get("method", scoring.MUTUAL_INFORMATION)
    if method not in scoring.METHODS:
        raise _fail("method", f"must be one of {', '.join(scoring.METHODS)}, got {method!r}")
    top_k, threshold = raw.get("top_k"), raw.get("threshold")
    if (top_k is None) == (threshold is None):
        raise _fail("top_k/threshold", f"give exactly one of top_k or threshold (the other null); "
                                       f"got top_k={top_k!r}, threshold={threshold!r}")
    if top_k is not None and not (_is_int(top_k) and top_k >= 1):
        raise _fail("top_k", f"must be an integer >= 1, got {top_k!r}")
    if threshold is not None and not _is_number(threshold):
        raise _fail("threshold", f"must be a number, got {threshold!r}")
    candidates = _candidates(raw["candidates"])
    label = _label(raw["label"])
    if any(c.name == label.column for c in candidates):
        raise _fail("candidates", f"'{label.column}' is the label column: scoring it against its own label "
                                  "would be target leakage")
    always_keep = raw.get("always_keep") or []
    if not isinstance(always_keep, list) or not all(isinstance(n, str) for n in always_keep):
        raise _fail("always_keep", f"must be a list of column names, got {always_keep!r}")
    sample_size = raw.get("sample_size", DEFAULT_SAMPLE_SIZE)
    if not (_is_int(sample_size) and sample_size >= scoring.MIN_ROWS):
        raise _fail("sample_size", f"must be an integer >= {scoring.MIN_ROWS}, got {sample_size!r}")
    seed = raw.get("seed", 0)
    if not (_is_int(seed) and 0 <= seed < 2**32):
        raise _fail("seed", f"must be an integer in [0, 2**32), got {seed!r}")
    return SelectorConfig(candidates, label, method, top_k, None if threshold is None else float(threshold),
                          tuple(always_keep), sample_size, seed)


# ------------------------------------------------------------------ schema --
def check_schema(cfg: SelectorConfig, schema: schema_pb2.Schema) -> None:
    """Every candidate and label column must be a column of the data (the examples' schema)."""
    types = {f.name: f.type for f in schema.feature}
    columns = ", ".join(sorted(types))
    for c in cfg.candidates:
        if c.name not in types:
            raise ValueError(f"FeatureSelector: candidate '{c.name}' is not in the data (not a column of the "
                             f"examples' schema; columns: {columns})")
        if c.numeric and types[c.name] == schema_pb2.BYTES:
            raise ValueError(f"FeatureSelector: candidate '{c.name}' is declared {c.type} but holds strings "
                             "in the data; declare it 'string'")
    label_keys = {cfg.label.column: "label.column", cfg.label.greater_than_column: "label.greater_than_column"}
    for col in cfg.label.source_columns:
        if col not in types:
            raise ValueError(f"FeatureSelector: label column '{col}' ({label_keys[col]}) is not in the data "
                             f"(not a column of the examples' schema; columns: {columns})")
        if types[col] == schema_pb2.BYTES and (cfg.label.threshold_rule or cfg.label.task == task_lib.REGRESSION):
            raise ValueError(f"FeatureSelector: label column '{col}' ({label_keys[col]}) holds strings; "
                             f"{'the label rule compares' if cfg.label.threshold_rule else 'regression needs'} "
                             "numbers")


def selected_schema(schema: schema_pb2.Schema, drop: set[str]) -> schema_pb2.Schema:
    """``schema`` without the features in ``drop`` (and string domains only they used)."""
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    dropped_domains = {f.domain for f in schema.feature if f.name in drop and f.HasField("domain")}
    kept = [f for f in schema.feature if f.name not in drop]
    del out.feature[:]
    out.feature.extend(kept)
    used = {f.domain for f in kept if f.HasField("domain")}
    unused = dropped_domains - used
    domains = [d for d in out.string_domain if d.name not in unused]
    del out.string_domain[:]
    out.string_domain.extend(domains)
    for group in out.tensor_representation_group.values():
        for name in [n for n in group.tensor_representation if n in drop]:
            del group.tensor_representation[name]
    return out


# -------------------------------------------------------------------- data --
def _unlist(sample: list[bytes]) -> list[bytes]:
    return sample


def sample_records(pipeline: beam.Pipeline, split_uri: str, sample_size: int, staging_dir: str) -> list[bytes]:
    """A uniform sample of at most ``sample_size`` examples of one split, in canonical order.

    The sample is gathered to one place on purpose: mutual information is estimated from
    the joint sample (k-nearest neighbours across all rows), which cannot be computed from
    per-worker partial results; Beam does the part that scales (reading every row, uniform
    reservoir sampling).

    Canonical order: the examples re-serialized deterministically (map keys sorted), then
    sorted. The MI estimator's tie-breaking jitter is assigned by row position, so the order
    must depend on the rows' values only: neither on the order Beam emits them in nor on the
    (unspecified) map order ExampleGen serialized them with.
    """
    import tensorflow as tf
    from tensorflow.core.example import example_pb2

    pattern = os.path.join(split_uri, "*")
    if not fileio.glob(pattern):
        raise ValueError(f"FeatureSelector: no example files in {split_uri}")
    prefix = os.path.join(staging_dir, "sample")
    with pipeline as p:
        _ = (p
             | "ReadSplit" >> beam.io.ReadFromTFRecord(pattern)
             | "Sample" >> beam.combiners.Sample.FixedSizeGlobally(sample_size)
             | "Unlist" >> beam.FlatMap(_unlist)
             | "Stage" >> beam.io.WriteToTFRecord(prefix, file_name_suffix=".gz"))
    files = sorted(fileio.glob(prefix + "*"))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return sorted(example_pb2.Example.FromString(r).SerializeToString(deterministic=True)
                  for r in dataset.as_numpy_iterator())


def parse_records(records: Sequence[bytes], columns: Sequence[str]) -> dict[str, list[Any]]:
    """Columns of serialized ``tf.train.Example``s: one value per row, None when missing."""
    from tensorflow.core.example import example_pb2

    out: dict[str, list[Any]] = {c: [] for c in columns}
    seen: set[str] = set()  # ExampleGen writes every column in every row, empty when missing
    for raw in records:
        features = example_pb2.Example.FromString(raw).features.feature
        for c in columns:
            values: Sequence[Any] = ()
            if c in features:
                seen.add(c)
                kind = features[c].WhichOneof("kind")
                values = getattr(features[c], kind).value if kind else ()
            if len(values) > 1:
                raise ValueError(f"FeatureSelector: column '{c}' has {len(values)} values in one row; "
                                 "only single-valued columns can be scored")
            out[c].append(values[0] if values else None)
    absent = [c for c in columns if c not in seen]
    if records and absent:
        raise ValueError(f"FeatureSelector: column '{absent[0]}' is not in the data: the schema lists it, "
                         f"but none of the {len(records)} sampled rows has it")
    return out


def _check_payload(examples: Artifact, fit_split: str) -> str:
    splits = artifact_utils.decode_split_names(examples.split_names)
    if fit_split not in splits:
        raise ValueError(f"FeatureSelector: fit_split '{fit_split}' is not a split of the examples "
                         f"(splits: {', '.join(splits)})")
    payload = examples_utils.get_payload_format(examples)
    if payload != example_gen_pb2.FORMAT_TF_EXAMPLE:
        raise ValueError(f"FeatureSelector: examples must hold tf.Example records, not "
                         f"{example_gen_pb2.PayloadFormat.Name(payload)}")
    return artifact_utils.get_split_uri([examples], fit_split)


# ------------------------------------------------------------------- steps --
def compute(pipeline: beam.Pipeline, examples: Artifact, schema: schema_pb2.Schema, cfg: SelectorConfig,
            fit_split: str, staging_dir: str) -> Selection:
    """Scores and selection from the ``fit_split`` rows only; writes nothing but staging files."""
    split_uri = _check_payload(examples, fit_split)
    check_schema(cfg, schema)
    records = sample_records(pipeline, split_uri, cfg.sample_size, staging_dir)
    if len(records) < scoring.MIN_ROWS:
        raise ValueError(f"FeatureSelector: split '{fit_split}' has {len(records)} rows; "
                         f"need at least {scoring.MIN_ROWS} to score")
    columns = parse_records(records, cfg.columns)
    mi, corr, y = scoring.score(columns, cfg.candidates, cfg.label, cfg.seed)
    table = scoring.select(cfg.candidates, mi, corr, method=cfg.method, top_k=cfg.top_k,
                           threshold=cfg.threshold, always_keep=cfg.always_keep)
    # The label is computed from its source columns downstream: an unselected candidate that is
    # one of them (e.g. fare in "tips > 0.2 * fare") stays in the schema, though not as a feature.
    label_columns = set(cfg.label.source_columns)
    table = [replace(r, reason=f"{r.reason}; kept in the schema: the label needs it")
             if not r.selected and r.feature in label_columns else r for r in table]
    drop = {r.feature for r in table if not r.selected} - label_columns
    return Selection(cfg, table, selected_schema(schema, drop), len(records),
                     int(y.sum()) if cfg.label.task == task_lib.BINARY else None)


def write_outputs(selection: Selection, selected_schema_uri: str, scores_uri: str) -> None:
    """Renders everything in memory first, then writes the schema and the score table."""
    cfg = selection.config
    title = f"FeatureSelector: {cfg.method} ({cfg.mode}, {selection.rows} rows)"
    files = {
        report.JSON_FILE: report.to_json(selection.table),
        report.CSV_FILE: report.to_csv(selection.table),
        report.PNG_FILE: report.to_png(selection.table, cfg.method, title, cfg.threshold),
    }
    io_utils.write_pbtxt_file(os.path.join(selected_schema_uri, SCHEMA_FILE), selection.schema)
    fileio.makedirs(scores_uri)
    for name, data in files.items():
        with fileio.open(os.path.join(scores_uri, name), "wb") as fh:
            fh.write(data)


def run(pipeline: beam.Pipeline, examples: Artifact, schema_uri: str, selected_schema_uri: str, scores_uri: str,
        config: str, fit_split: str = "train") -> Selection:
    """The component's body: config and schema checks, Beam sampling, scoring, then outputs."""
    cfg = parse_config(config)
    schema = io_utils.SchemaReader().read(os.path.join(schema_uri, SCHEMA_FILE))
    staging = os.path.join(scores_uri, STAGING_DIR)
    try:
        selection = compute(pipeline, examples, schema, cfg, fit_split, staging)
    finally:
        if fileio.exists(staging):
            fileio.rmtree(staging)
    write_outputs(selection, selected_schema_uri, scores_uri)
    return selection
