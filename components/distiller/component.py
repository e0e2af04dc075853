"""Distiller component: trained (teacher) Model -> smaller student Model."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.distiller import executor

Model = standard_artifacts.Model


@component
def Distiller(
    model: InputArtifact[Model],
    examples: InputArtifact[standard_artifacts.Examples],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    student_model: OutputArtifact[Model],
    config: Parameter[str],
) -> None:
    """Trains the student architecture in JSON ``config`` (student: hidden_units, embedding_dim,
    ...; temperature; alpha: weight of the labels; train_steps; learning_rate; batch_size;
    custom_config) on the teacher ``model``'s softened outputs plus the labels. ``student_model``
    has the same serving signatures; ``variant.json`` records both parameter counts."""
    executor.run(model, examples, transform_graph, student_model, config)
