"""TFJSConverter component: a Model (+ its TransformGraph) -> a TF.js web model, validated in
TF.js against the SavedModel on real examples, with a blessing for Pusher."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.tfjs_converter import executor

Model = standard_artifacts.Model
ModelBlessing = standard_artifacts.ModelBlessing


@component
def TFJSConverter(
    model: InputArtifact[Model],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    examples: InputArtifact[standard_artifacts.Examples],
    web_model: OutputArtifact[Model],
    blessing: OutputArtifact[ModelBlessing],
    config: Parameter[str],
    model_blessing: InputArtifact[ModelBlessing] = None,
) -> None:
    """Rebuilds Transform's preprocessing in built-in ops in front of ``model`` (raw features in),
    converts it with ``tensorflowjs_converter`` and runs it with @tensorflow/tfjs in Node on
    ``validation_examples`` rows of ``split`` of ``examples``, against the SavedModel's
    ``serving_raw`` answers. JSON ``config``: custom_config, quantization (none|float16|uint8),
    thresholds ({max_abs_diff} and/or {min_agreement}), split, validation_examples, model_name.

    ``web_model/Format-Serving/`` is the web deployment (graph model, preprocessing_spec.json,
    metadata.json with parity and sizes, and a demo page); ``blessing`` is blessed only if the
    parity is within the thresholds and, when ``model_blessing`` is given, the source model is
    blessed too."""
    executor.run(model, transform_graph, examples, web_model, blessing, config, model_blessing)
