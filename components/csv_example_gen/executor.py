"""CsvExampleGen executor that reads CSVs through reader.py (the CSV files people really have).

Same shape as TFX's csv_example_gen executor: ``GetInputSourceToExamplePTransform`` returns a
PTransform from the split pattern to tf.Examples, and the base executor does the splitting
(hash buckets, partition_feature_name) and the span/version resolution. Two passes over the rows,
as in TFX: the first infers each column's type over all rows (int ⊂ float ⊂ string), the second
writes typed tf.Examples. For clean data the examples are byte-identical to stock CsvExampleGen's,
so hash splits put every row in the same split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from csvio import reader


def custom_params(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The custom_config Struct as a dict ({} when none was given)."""
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return {}
    custom = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(raw, custom)
    if not custom.HasField("custom_config"):
        return {}
    params = struct_pb2.Struct()
    if not custom.custom_config.Unpack(params):
        raise ValueError(f"CsvExampleGen's custom_config must pack a Struct, got {custom.custom_config.type_url}")
    return json.loads(json_format.MessageToJson(params))


def _open(path: str):
    # Beam's filesystems: local paths and gs:// alike, as TFX's own CSV executor reads them.
    return beam.io.filesystems.FileSystems.open(path)


def _read_rows(header: reader.Header, dialect: reader.Dialect) -> Iterator[tuple[str, int, list[str | None]]]:
    for line, values in reader.read_rows(header, dialect, _open):
        yield header.path, line, values


class _InferTypes(beam.CombineFn):
    """First pass: reader.TypeStats over all rows."""

    def __init__(self, width: int):
        self._width = width

    def create_accumulator(self) -> reader.TypeStats:
        return reader.TypeStats.empty(self._width)

    def add_input(self, acc: reader.TypeStats, row: tuple[str, int, list[str | None]]) -> reader.TypeStats:
        acc.add(*row)
        return acc

    def merge_accumulators(self, accs: Any) -> reader.TypeStats:
        accs = iter(accs)
        out = next(accs)
        for acc in accs:
            out.merge(acc)
        return out

    def extract_output(self, acc: reader.TypeStats) -> reader.TypeStats:
        return acc


def _column_types(stats: reader.TypeStats, columns: tuple[str, ...], pattern: str) -> dict[str, str]:
    types = stats.column_types(columns)  # raises on inf in a numeric column
    empty = [c for c, t in types.items() if t == "unknown"]
    if empty:
        logging.warning("CsvExampleGen %s: column(s) %s have no value in any row: written without a type "
                        "(read downstream as absent), as stock CsvExampleGen does", pattern, ", ".join(empty))
    logging.info("CsvExampleGen %s: %d rows, column types %s", pattern, stats.rows, types)
    return types


def _feature(kind: str, value: str | None) -> tf.train.Feature:
    """One cell; a missing value is an empty list of the column's type (as stock CsvExampleGen writes it,
    so a schema's presence constraints read it the same way)."""
    if kind == "int":
        if value is None:
            return tf.train.Feature(int64_list=tf.train.Int64List())
        token = value.strip()
        try:
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(token)]))
        except ValueError:  # 'nan' in an int column (not a missing token): missing, as type inference said
            return tf.train.Feature(int64_list=tf.train.Int64List())
    if kind == "float":
        number = None if value is None else reader.parse_number(value)
        return tf.train.Feature(float_list=tf.train.FloatList(value=[] if number is None else [number]))
    if kind == "string":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[] if value is None else [value.encode()]))
    return tf.train.Feature()  # no value anywhere in the column: no type


def _to_example(row: tuple[str, int, list[str | None]], columns: tuple[str, ...], types: dict[str, str]
                ) -> tf.train.Example:
    _path, _line, values = row
    return tf.train.Example(features=tf.train.Features(feature={
        name: _feature(types[name], value) for name, value in zip(columns, values, strict=True)}))


@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
class _CsvToExample(beam.PTransform):
    """CSV files matching ``input_base/split_pattern`` -> tf.Examples."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        super().__init__()
        self._pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
        self._dialect = reader.Dialect.from_json(custom_params(exec_properties))

    def expand(self, pipeline: beam.Pipeline) -> beam.pvalue.PCollection:
        files = sorted(fileio.glob(self._pattern))
        if not files:
            raise reader.CsvFormatError(f"no CSV file matches {self._pattern}")
        # Headers are read here, before the pipeline runs: a mismatch across files fails at once.
        headers = reader.read_headers(files, self._dialect, _open)
        columns = headers[0].columns
        for h in headers:
            logging.info("CsvExampleGen: %s: delimiter %r, %d columns%s", h.path, h.delimiter, len(columns),
                         "; its unnamed first column is a row index (pandas/R) and is dropped"
                         if h.index_column else "")
        rows = (pipeline
                | "CreateFiles" >> beam.Create(headers)
                | "ReadRows" >> beam.FlatMap(_read_rows, self._dialect))
        types = (rows
                 | "InferColumnTypes" >> beam.CombineGlobally(_InferTypes(len(columns)))
                 | "ColumnTypes" >> beam.Map(_column_types, columns, self._pattern))
        return rows | "ToTFExample" >> beam.Map(_to_example, columns, beam.pvalue.AsSingleton(types))


class Executor(BaseExampleGenExecutor):
    """CsvExampleGen executor reading through csvio/reader.py."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToExample
