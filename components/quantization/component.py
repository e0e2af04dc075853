"""QuantizationAwareTrainer component: trained Model -> quantization-aware fine-tuned Model."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx import v1 as tfx

from components.quantization import executor

Model = tfx.types.standard_artifacts.Model


@tfx.dsl.components.component
def QuantizationAwareTrainer(
    model: tfx.dsl.components.InputArtifact[Model],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    qat_model: tfx.dsl.components.OutputArtifact[Model],
    config: tfx.dsl.components.Parameter[str],
) -> None:
    """Quantization-aware fine-tuning of ``model`` from its trained weights (JSON ``config``:
    fine_tune_steps, learning_rate, batch_size, custom_config); ``qat_model`` has the same
    serving signatures and is ready for int8 TFLite conversion."""
    executor.run(model, examples, transform_graph, qat_model, config)
