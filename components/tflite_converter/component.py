"""TFLiteConverter: a Model (trained or a variant) -> .tflite models that take raw features."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.tflite_converter import executor

Model = standard_artifacts.Model


@component
def TFLiteConverter(
    model: InputArtifact[Model],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    examples: InputArtifact[standard_artifacts.Examples],
    mobile_model: OutputArtifact[Model],
    blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    config: Parameter[str],
    model_blessing: InputArtifact[standard_artifacts.ModelBlessing] = None,
) -> None:
    """Converts ``model`` with Transform's preprocessing embedded in built-in ops to each
    configured TFLite variant (float32, float16, dynamic_range, int8), runs every variant in
    ai-edge-litert on raw validation rows against the SavedModel's ``serving_raw`` signature,
    computes TFMA metrics of each (TFMA's tf_lite model type), and blesses the variants within
    their thresholds. ``mobile_model``'s Format-Serving folder (what Pusher copies) holds the
    blessed .tflite files, labels.txt, preprocessing_spec.json and metadata.json; ``blessing``
    is blessed when at least one variant is and, when ``model_blessing`` is given, the source
    model's Evaluator blessed it (JSON ``config``: custom_config, variants, thresholds,
    representative_examples, split, validation_examples)."""
    executor.run(model, transform_graph, examples, mobile_model, blessing, config, model_blessing)
