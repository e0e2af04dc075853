"""FeatureSelector: scores candidate features against the label on the train split and drops
the unselected ones from the schema that Transform reads."""

# No `from __future__ import annotations`: the component decorator reads these annotations
# as objects at import time.

import apache_beam as beam
from tfx.dsl.component.experimental.annotations import BeamComponentParameter, InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact

from components.feature_selector import executor

InputArtifact = InputArtifact
OutputArtifact = OutputArtifact
Parameter = Parameter
BeamComponentParameter = BeamComponentParameter
Examples = standard_artifacts.Examples
Schema = standard_artifacts.Schema


class FeatureScores(Artifact):
    """The score table: scores.json, scores.csv and a bar chart scores.png."""

    TYPE_NAME = "FeatureScores"


@component(use_beam=True)
def FeatureSelector(
    examples: InputArtifact[Examples],
    schema: InputArtifact[Schema],
    selected_schema: OutputArtifact[Schema],
    scores: OutputArtifact[FeatureScores],
    config: Parameter[str],
    fit_split: Parameter[str] = "train",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Keeps the top_k candidates (or those scoring >= threshold) by mutual information or |r|
    with the label, computed on a sample of ``fit_split``; see executor.parse_config for the
    JSON ``config``. ``selected_schema`` is ``schema`` minus the unselected candidates (a label
    source column stays even when unselected as a feature: the label needs it)."""
    selection = executor.run(beam_pipeline if beam_pipeline is not None else beam.Pipeline(), examples,
                             schema.uri, selected_schema.uri, scores.uri, config, fit_split)
    scores.set_string_custom_property("method", selection.config.method)
    scores.set_string_custom_property("fit_split", fit_split)
    scores.set_int_custom_property("sample_rows", selection.rows)
    scores.set_int_custom_property("num_selected", sum(r.selected for r in selection.table))
    scores.set_string_custom_property("selected", ",".join(r.feature for r in selection.table if r.selected))
