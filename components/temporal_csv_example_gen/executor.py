"""CsvExampleGen executor (components/csv_example_gen, reading through its reader.py) that splits by
time instead of by hash.

Rows whose timestamp column is before ``eval_from`` go to the first split (train), rows
before ``test_from`` to the second (eval), the rest to the third (test): train on earlier
months, evaluate on later ones. A row without a timestamp cannot be placed in time and
goes to train; the count is logged. Boundaries are Unix seconds (UTC).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.csv_example_gen import executor as csv_executor


def split_params(exec_properties: dict[str, Any]) -> dict[str, Any]:
    params = csv_executor.custom_params(exec_properties)
    if "timestamp_column" not in params or "boundaries" not in params:
        raise ValueError("TemporalCsvExampleGen needs a custom_config Struct with timestamp_column and boundaries")
    return params


def partition_index(example: tf.train.Example, column: str, boundaries: list[float]) -> int:
    feature = example.features.feature.get(column)
    values = []
    if feature is not None:
        values = list(feature.int64_list.value) or list(feature.float_list.value)
    if not values:
        beam.metrics.Metrics.counter("temporal_split", "rows_without_timestamp").inc()
        return 0
    return sum(values[0] >= b for b in boundaries)


class Executor(csv_executor.Executor):
    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
                               ) -> dict[str, beam.pvalue.PCollection]:
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_names = utils.generate_output_split_names(input_config, output_config)
        params = split_params(exec_properties)
        column, boundaries = params["timestamp_column"], [float(b) for b in params["boundaries"]]
        if len(split_names) != len(boundaries) + 1:
            raise ValueError(f"{len(boundaries)} time boundaries need {len(boundaries) + 1} output splits, "
                             f"got {split_names}")
        exec_properties["_beam_pipeline_args"] = self._beam_pipeline_args or []
        logging.info("Temporal split on %s at %s into %s", column, boundaries, split_names)
        parts = (pipeline
                 | "InputToRecord" >> self.GetInputSourceToExamplePTransform()(  # pylint: disable=no-value-for-parameter
                     exec_properties, input_config.splits[0].pattern)
                 | "SplitByTime" >> beam.Partition(
                     lambda ex, _n: partition_index(ex, column, boundaries), len(split_names)))
        return dict(zip(split_names, parts, strict=True))
