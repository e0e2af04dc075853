"""QuantizationAwareTrainer's work: fine-tune the trained model with fake-quantization of
its Dense layers (weights per-channel int8, activations int8) so that a later int8 TFLite
conversion keeps its decisions, then export with the pipeline's serving signatures.

tfmot's default 8-bit scheme rejects Embedding, so only Dense layers are annotated
(cloned with a per-layer function); embeddings stay float here and are quantized by the
TFLite converter, which handles their lookups well.
"""

from __future__ import annotations

from typing import Any

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from model import model_io

REQUIRED = ("fine_tune_steps", "learning_rate", "batch_size")


def quantize_aware(model: keras.Model) -> keras.Model:
    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.layers.Dense | keras.layers.Conv2D):  # Conv2D: image models
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        return layer

    annotated = keras.models.clone_model(model, clone_function=annotate)
    return tfmot.quantization.keras.quantize_apply(annotated)


def run(model_artifact: Any, examples: Any, transform_graph: Any, output: Any, config_json: str) -> dict:
    config = model_io.parse_config(config_json, "QuantizationAwareTrainer", REQUIRED)
    keras.utils.set_random_seed(config.get("seed", 42))
    data = model_io.ModelData.of(config["custom_config"], transform_graph, examples)
    qat = quantize_aware(model_io.load_model(model_artifact.uri))
    model_io.compile_for_task(qat, data, config["learning_rate"])
    steps, epochs = config["fine_tune_steps"], config.get("epochs", 2)
    qat.fit(data.dataset("train", config["batch_size"]), epochs=epochs, steps_per_epoch=max(1, steps // epochs),
            validation_data=data.dataset("eval", config["batch_size"]), validation_steps=config.get("eval_steps", 20),
            verbose=2)
    quantized = [layer.name for layer in qat.layers if "quant" in type(layer).__name__.lower()]
    stats = {**model_io.measure(qat), "quantized_layers": quantized, "fine_tune_steps": steps}
    model_io.export(qat, data, output, stats)
    return stats
