"""CsvExampleGen: TFX's FileBasedExampleGen with the executor that reads through reader.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import any_pb2, struct_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2

from components.csv_example_gen import executor
from csvio import reader

COMPONENT_ID = "CsvExampleGen"  # stock CsvExampleGen's id: MLMD lineage and downstream stay stable


def dialect_params(delimiter: str | None = None, missing_values: Sequence[str] | None = None) -> dict[str, Any]:
    """The custom_config entries of a dialect (validated here, at pipeline definition)."""
    dialect = reader.Dialect(delimiter, reader.DEFAULT_MISSING_VALUES if missing_values is None
                             else tuple(missing_values))
    return {k: v for k, v in dialect.to_json().items() if v is not None}


def pack_custom_config(params: dict[str, Any]) -> example_gen_pb2.CustomConfig:
    struct = struct_pb2.Struct()
    struct.update(params)
    packed = any_pb2.Any()
    packed.Pack(struct)
    return example_gen_pb2.CustomConfig(custom_config=packed)


def CsvExampleGen(input_base: str, input_config: example_gen_pb2.Input | None = None,
                  output_config: example_gen_pb2.Output | None = None,
                  range_config: range_config_pb2.RangeConfig | None = None,
                  delimiter: str | None = None, missing_values: Sequence[str] | None = None) -> FileBasedExampleGen:
    """Drop-in for ``tfx.components.CsvExampleGen`` (same arguments, same id, same splits), plus the
    dialect: ``delimiter`` (None: sniffed per file) and ``missing_values`` (None: reader's default)."""
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=input_config,
        output_config=output_config,
        range_config=range_config,
        custom_config=pack_custom_config(dialect_params(delimiter, missing_values)),
        custom_executor_spec=executor_spec.BeamExecutorSpec(executor.Executor),
    ).with_id(COMPONENT_ID)
