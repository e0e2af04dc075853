"""The Keras model: inputs from Transform's outputs, the architecture, the task head, the input pipeline.

Keras flavour: tf_keras (Keras 2) everywhere, imported explicitly and never via
``tf.keras``, because tensorflow-model-optimization only handles tf_keras models
and what ``tf.keras`` means depends on TF_USE_LEGACY_KERAS at first use.
Categorical features enter through Embeddings, numeric ones directly: Dense and
Embedding layers are what pruning/quantization tooling and TFLite int8 handle well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tfx_bsl.public.tfxio import TensorFlowDatasetOptions

from features import feature_steps, task
from features.feature_steps import FeatureDef
from model import hyperparameters, signatures


def hyperparameters_from(custom_config: dict, tuned: dict | None = None) -> dict[str, Any]:
    """Model hyperparameters: config defaults, or a Tuner's best (its HyperParameters config)."""
    if not tuned:
        return dict(custom_config["model"])
    return hyperparameters.resolve(tuned["values"], custom_config["model"])


def model_outputs(custom_config: dict, tf_transform_output: Any) -> list[feature_steps.OutputSpec]:
    """The transformed columns the model takes: those of the configured features that Transform
    produced (features dropped by cleaning or feature selection are absent)."""
    produced = tf_transform_output.transformed_feature_spec()
    specs = [o for f in custom_config["features"] for o in FeatureDef.from_json(f).outputs()]
    return [o for o in specs if o.name in produced]


def build_model(outputs: list[feature_steps.OutputSpec], hp: dict[str, Any], head: task.Head,
                keras: Any = keras) -> Any:
    """The model on Transform's outputs with the task's ``head`` (``task.head``: sigmoid,
    softmax over K classes, or a linear output). ``keras`` is tf_keras (Trainer, optimization)
    or Keras 3 (KerasTuner builds only Keras 3 models); the layers used exist alike in both."""
    from features import image

    inputs, parts = {}, []
    for out in outputs:
        if out.kind == feature_steps.IMAGE:  # Conv2D + MaxPool blocks (features/image.py)
            inputs[out.name], part = image.conv_input(out, hp, keras)
            parts.append(part)
            continue
        if out.kind == feature_steps.SEQUENCE:  # text: Embedding + LSTM (features/text.py)
            from features import text

            inputs[out.name], part = text.sequence_input(out, hp, keras)
            parts.append(part)
            continue
        if out.kind == feature_steps.CATEGORICAL:
            inp = keras.Input(shape=(1,), dtype="int64", name=out.name)
            emb = keras.layers.Embedding(out.size, hp["embedding_dim"], name=f"{out.name}_embedding")(inp)
            parts.append(keras.layers.Flatten(name=f"{out.name}_flat")(emb))
        else:
            inp = keras.Input(shape=(out.size,), dtype="float32", name=out.name)
            parts.append(inp)
        inputs[out.name] = inp
    x = keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]
    for i, units in enumerate(hp["hidden_units"]):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
        if hp.get("dropout"):
            x = keras.layers.Dropout(hp["dropout"], name=f"dropout_{i}")(x)
    output = keras.layers.Dense(head.units, activation=head.activation,
                                name="probability" if head.activation else "prediction")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    compile_model(model, head, hp["learning_rate"], keras)
    return model


def compile_model(model: Any, head: task.Head, learning_rate: float, keras: Any = keras) -> None:
    """Adam with the task's loss and metrics (also for fine-tuning a variant)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=head.loss,
                  metrics=task.keras_metrics(head.task, keras))


def start_at_the_mean_target(model: Any, head: task.Head, dataset: tf.data.Dataset, batches: int = 20) -> None:
    """Regression: set the output layer's bias to the mean (transformed) target of the first
    ``batches`` train batches, so training starts from the mean instead of 0 (a log-price is
    about 8: Adam at lr 1e-3 would spend thousands of steps just walking the bias there)."""
    if head.task != task.REGRESSION:
        return
    labels = np.concatenate([y.numpy().reshape(-1) for _, y in dataset.take(batches)])
    model.layers[-1].bias.assign(np.full(model.layers[-1].bias.shape, labels.mean(), np.float32))


def model_head(custom_config: dict, tf_transform_output: Any) -> task.Head:
    """The task's output layer; K for multiclass is the size of Transform's class vocabulary."""
    label = task.label_of(custom_config)
    return task.head(label, task.num_classes(label, tf_transform_output))


def input_fn(files: list[str], data_accessor: Any, tf_transform_output: Any, label: str,
             batch_size: int, outputs: list[feature_steps.OutputSpec], augment: Any = None) -> tf.data.Dataset:
    dataset = data_accessor.tf_dataset_factory(
        files, TensorFlowDatasetOptions(batch_size=batch_size, label_key=label),
        tf_transform_output.transformed_metadata.schema)
    dataset = dataset.map(lambda f, y: (signatures.model_inputs(f, outputs), tf.reshape(y, [-1, 1])))
    if augment is not None:  # train batches only (features/image.py augmenter)
        dataset = dataset.map(augment)
    return dataset.repeat()
