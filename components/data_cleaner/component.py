"""DataCleaner: removes columns and rows between ExampleGen and Transform, fitted on train only."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

import apache_beam as beam
from tfx.components.util import examples_utils
from tfx.dsl.component.experimental.annotations import BeamComponentParameter, InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.artifact import Artifact

from components.data_cleaner import executor

Examples = standard_artifacts.Examples
Schema = standard_artifacts.Schema


class CleaningReport(Artifact):
    """DataCleaner's report: `report.json` (rows in/out per rule per split, fitted values) and `report.md`."""

    TYPE_NAME = "CleaningReport"


@component(use_beam=True)
def DataCleaner(
    examples: InputArtifact[Examples],
    schema: InputArtifact[Schema],
    cleaned_examples: OutputArtifact[Examples],
    cleaned_schema: OutputArtifact[Schema],
    report: OutputArtifact[CleaningReport],
    rules: Parameter[str],
    fit_split: Parameter[str] = "train",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Drops columns and rows by `rules` (JSON, see rules.py), every statistic fitted on `fit_split` only.

    `cleaned_examples` has the same splits and format as `examples` (gzipped TFRecords of tf.Example),
    `cleaned_schema` is `schema` minus the dropped columns.
    """
    if examples_utils.get_payload_format(examples) != example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE:
        raise ValueError(f"DataCleaner reads tf.Example payloads, got "
                         f"{examples_utils.get_payload_format_string(examples)}")
    split_names = artifact_utils.decode_split_names(examples.split_names)
    executor.run(
        examples_uri=examples.uri, split_names=split_names, schema_uri=schema.uri,
        cleaned_examples_uri=cleaned_examples.uri, cleaned_schema_uri=cleaned_schema.uri, report_uri=report.uri,
        rules_json=rules, fit_split=fit_split, beam_pipeline=beam_pipeline)
    cleaned_examples.split_names = artifact_utils.encode_split_names(split_names)
    cleaned_examples.span = examples.span
    cleaned_examples.version = examples.version
    examples_utils.set_payload_format(cleaned_examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
