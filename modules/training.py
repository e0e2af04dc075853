"""Trainer's module file: ``run_fn`` builds, trains and exports the Keras model (model/training.py)."""

from __future__ import annotations

import json
import os
from typing import Any

from model.keras_env import KERAS_ENV

# TFX may load this file in a fresh executor process (a container, a Beam worker): the Keras
# flavour is set before TensorFlow loads (model/keras_env.py).
os.environ.update(KERAS_ENV)

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging

from features import image
from model import signatures
from model.training import (
    build_model,
    hyperparameters_from,
    input_fn,
    model_head,
    model_outputs,
    start_at_the_mean_target,
)


def run_fn(fn_args: Any) -> None:
    config = fn_args.custom_config
    hp = hyperparameters_from(config, fn_args.hyperparameters)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    label = config["label"]["name"]
    keras.utils.set_random_seed(42)
    outputs = model_outputs(config, tf_transform_output)
    train = input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output, label, hp["batch_size"],
                     outputs, image.augmenter(config["training"].get("augmentation"), outputs))
    evaluation = input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, label,
                          hp["batch_size"], outputs)

    head = model_head(config, tf_transform_output)
    model = build_model(outputs, hp, head)
    start_at_the_mean_target(model, head, train)
    model.summary(print_fn=logging.info)
    epochs = config["training"]["epochs"]
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=head.monitor, mode=head.monitor_mode, restore_best_weights=True,
                                      patience=config["training"]["early_stopping_patience"]),
        keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
    ]
    history = model.fit(
        train, epochs=epochs, steps_per_epoch=max(1, fn_args.train_steps // epochs),
        validation_data=evaluation, validation_steps=fn_args.eval_steps,
        callbacks=callbacks, verbose=2,
    )
    signatures.export(model, tf_transform_output, config, outputs, fn_args.serving_model_dir)
    # The hyperparameters and training curve travel with the model.
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "training.json"), "w") as fh:
        json.dump({"hyperparameters": hp,
                   "history": {k: [float(x) for x in v] for k, v in history.history.items()}}, fh, indent=1)
