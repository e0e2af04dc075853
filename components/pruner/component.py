"""Pruner component: trained Model + transformed examples + transform graph -> pruned Model."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.pruner import executor

Model = standard_artifacts.Model


@component
def Pruner(
    model: InputArtifact[Model],
    examples: InputArtifact[standard_artifacts.Examples],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    pruned_model: OutputArtifact[Model],
    config: Parameter[str],
) -> None:
    """Magnitude-prunes ``model``'s Dense and Embedding layers to ``target_sparsity`` while
    fine-tuning on the train split (JSON ``config``: target_sparsity, fine_tune_steps,
    learning_rate, batch_size, custom_config). ``pruned_model`` has the same serving
    signatures; its ``variant.json`` records sparsity per layer, parameters and gzip size."""
    executor.run(model, examples, transform_graph, pruned_model, config)
