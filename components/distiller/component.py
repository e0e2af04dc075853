"""Distiller component: trained (teacher) Model -> smaller student Model."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx import v1 as tfx

from components.distiller import executor

Model = tfx.types.standard_artifacts.Model


@tfx.dsl.components.component
def Distiller(
    model: tfx.dsl.components.InputArtifact[Model],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    student_model: tfx.dsl.components.OutputArtifact[Model],
    config: tfx.dsl.components.Parameter[str],
) -> None:
    """Trains the student architecture in JSON ``config`` (student: hidden_units, embedding_dim,
    ...; temperature; alpha: weight of the labels; train_steps; learning_rate; batch_size;
    custom_config) on the teacher ``model``'s softened outputs plus the labels. ``student_model``
    has the same serving signatures; ``variant.json`` records both parameter counts."""
    executor.run(model, examples, transform_graph, student_model, config)
