"""QuantizationAwareTrainer component: trained Model -> quantization-aware fine-tuned Model."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.quantization_aware_trainer import executor

Model = standard_artifacts.Model


@component
def QuantizationAwareTrainer(
    model: InputArtifact[Model],
    examples: InputArtifact[standard_artifacts.Examples],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    qat_model: OutputArtifact[Model],
    config: Parameter[str],
) -> None:
    """Quantization-aware fine-tuning of ``model`` from its trained weights (JSON ``config``:
    fine_tune_steps, learning_rate, batch_size, custom_config); ``qat_model`` has the same
    serving signatures and is ready for int8 TFLite conversion."""
    executor.run(model, examples, transform_graph, qat_model, config)
