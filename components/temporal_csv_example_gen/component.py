"""TemporalCsvExampleGen: TFX's FileBasedExampleGen with the temporal-split CSV executor (reads CSVs
through csvio/reader.py, like CsvExampleGen)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.csv_example_gen.component import COMPONENT_ID, dialect_params, pack_custom_config
from components.temporal_csv_example_gen import executor

SPLITS = ("train", "eval", "test")


def epoch_seconds(day: str) -> float:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp()


def TemporalCsvExampleGen(input_base: str, timestamp_column: str, eval_from: str, test_from: str,
                          pattern: str = "*.csv", delimiter: str | None = None,
                          missing_values: Sequence[str] | None = None) -> FileBasedExampleGen:
    """Rows before eval_from -> train, before test_from -> eval, the rest -> test (dates UTC).
    ``delimiter`` and ``missing_values``: the CSV dialect, as in CsvExampleGen."""
    params = {"timestamp_column": timestamp_column,
              "boundaries": [epoch_seconds(eval_from), epoch_seconds(test_from)],
              **dialect_params(delimiter, missing_values)}
    # hash_buckets only name the splits here; the executor assigns rows by time.
    output = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
        splits=[example_gen_pb2.SplitConfig.Split(name=s, hash_buckets=1) for s in SPLITS]))
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=pattern)]),
        output_config=output,
        custom_config=pack_custom_config(params),
        custom_executor_spec=executor_spec.BeamExecutorSpec(executor.Executor),
    ).with_id(COMPONENT_ID)
