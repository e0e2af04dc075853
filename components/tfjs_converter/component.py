"""TFJSConverter component: a Model (+ its TransformGraph) -> a TF.js web model, validated in
TF.js against the SavedModel on real examples, with a blessing for Pusher."""

# No `from __future__ import annotations`: the component decorator reads these annotations.

from tfx import v1 as tfx

from components.tfjs_converter import executor

Model = tfx.types.standard_artifacts.Model
ModelBlessing = tfx.types.standard_artifacts.ModelBlessing


@tfx.dsl.components.component
def TFJSConverter(
    model: tfx.dsl.components.InputArtifact[Model],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    web_model: tfx.dsl.components.OutputArtifact[Model],
    blessing: tfx.dsl.components.OutputArtifact[ModelBlessing],
    config: tfx.dsl.components.Parameter[str],
    model_blessing: tfx.dsl.components.InputArtifact[ModelBlessing] = None,
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
