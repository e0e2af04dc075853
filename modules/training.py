"""Trainer's module file: ``run_fn`` builds, trains and exports the Keras model.

Keras flavour: tf_keras (Keras 2) everywhere, imported explicitly and never via
``tf.keras``, because tensorflow-model-optimization only handles tf_keras models
and what ``tf.keras`` means depends on TF_USE_LEGACY_KERAS at first use.
Categorical features enter through Embeddings, numeric ones directly: Dense and
Embedding layers are what pruning/quantization tooling and TFLite int8 handle well.
"""

from __future__ import annotations

import json
import os
from typing import Any

from modules import keras_env

keras_env.apply()  # before TensorFlow is imported in this process

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import logging  # noqa: E402
from tfx_bsl.public.tfxio import TensorFlowDatasetOptions  # noqa: E402

from modules import feature_steps, signatures  # noqa: E402


def hyperparameters_from(custom_config: dict, overrides: dict | None = None) -> dict[str, Any]:
    """Model hyperparameters: config defaults, overridden by e.g. a Tuner's best values."""
    hp = dict(custom_config["model"])
    hp.update(overrides or {})
    return hp


def build_model(custom_config: dict, hp: dict[str, Any]) -> keras.Model:
    inputs, parts = {}, []
    for feature in custom_config["features"]:
        name = f"{feature['name']}_xf"
        out = feature_steps.output_spec(feature["type"], [(s, a) for s, a in feature["steps"]])
        if out.kind == feature_steps.CATEGORICAL:
            inp = keras.Input(shape=(1,), dtype=tf.int64, name=name)
            emb = keras.layers.Embedding(out.cardinality, hp["embedding_dim"], name=f"{name}_embedding")(inp)
            parts.append(keras.layers.Flatten(name=f"{name}_flat")(emb))
        else:
            inp = keras.Input(shape=(1,), dtype=tf.float32, name=name)
            parts.append(inp)
        inputs[name] = inp
    x = keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(hp["hidden_units"]):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
        if hp.get("dropout"):
            x = keras.layers.Dropout(hp["dropout"], name=f"dropout_{i}")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hp["learning_rate"]),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="binary_accuracy"), keras.metrics.AUC(name="auc")],
    )
    return model


def input_fn(files: list[str], data_accessor: Any, tf_transform_output: Any, label: str,
             batch_size: int) -> tf.data.Dataset:
    dataset = data_accessor.tf_dataset_factory(
        files, TensorFlowDatasetOptions(batch_size=batch_size, label_key=label),
        tf_transform_output.transformed_metadata.schema)
    return dataset.map(
        lambda f, y: ({k: tf.reshape(v, [-1, 1]) for k, v in f.items()}, tf.reshape(y, [-1, 1]))
    ).repeat()


def run_fn(fn_args: Any) -> None:
    config = fn_args.custom_config
    hp = hyperparameters_from(config, getattr(fn_args, "hyperparameters", None) or {})
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    label = config["label"]["name"]
    keras.utils.set_random_seed(42)
    train = input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output, label, hp["batch_size"])
    evaluation = input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, label, hp["batch_size"])

    model = build_model(config, hp)
    model.summary(print_fn=logging.info)
    epochs = config["training"]["epochs"]
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", restore_best_weights=True,
                                      patience=config["training"]["early_stopping_patience"]),
        keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
    ]
    history = model.fit(
        train, epochs=epochs, steps_per_epoch=max(1, fn_args.train_steps // epochs),
        validation_data=evaluation, validation_steps=fn_args.eval_steps,
        callbacks=callbacks, verbose=2,
    )
    signatures.export(model, tf_transform_output, config, fn_args.serving_model_dir)
    # The hyperparameters and training curve travel with the model.
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "training.json"), "w") as fh:
        json.dump({"hyperparameters": hp,
                   "history": {k: [float(x) for x in v] for k, v in history.history.items()}}, fh, indent=1)
