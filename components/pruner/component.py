"""Pruner component: trained Model + transformed examples + transform graph -> pruned Model."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx import v1 as tfx

from components.pruner import executor

Model = tfx.types.standard_artifacts.Model


@tfx.dsl.components.component
def Pruner(
    model: tfx.dsl.components.InputArtifact[Model],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    pruned_model: tfx.dsl.components.OutputArtifact[Model],
    config: tfx.dsl.components.Parameter[str],
) -> None:
    """Magnitude-prunes ``model``'s Dense and Embedding layers to ``target_sparsity`` while
    fine-tuning on the train split (JSON ``config``: target_sparsity, fine_tune_steps,
    learning_rate, batch_size, custom_config). ``pruned_model`` has the same serving
    signatures; its ``variant.json`` records sparsity per layer, parameters and gzip size."""
    executor.run(model, examples, transform_graph, pruned_model, config)
