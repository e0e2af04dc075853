"""Tuner's module file: ``tuner_fn`` searches the configured space with KerasTuner.

KerasTuner 1.4.8 builds only Keras 3 models, so the search builds the same architecture
(``training.build_model``) with Keras 3; Trainer then builds the tf_keras model from the
best values (``hyperparameters.resolve``). The search space, algorithm and budget come
from the config's ``tuning`` section in ``custom_config``.
"""

from __future__ import annotations

import os
from typing import Any

from model.keras_env import KERAS_ENV

# TFX may load this file in a fresh executor process (a container, a Beam worker): the Keras
# flavour is set before TensorFlow loads (model/keras_env.py).
os.environ.update(KERAS_ENV)

import keras  # Keras 3, whatever TF_USE_LEGACY_KERAS says about tf.keras
import keras_tuner
import tensorflow_transform as tft
from tfx.components.tuner.component import TunerFnResult

from model import hyperparameters
from model.training import build_model, input_fn, model_head, model_outputs, start_at_the_mean_target

ALGORITHMS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
}


class TaxiHyperModel(keras_tuner.HyperModel):
    """Builds a trial's model and fits it with the trial's batch size (a searchable value)."""

    def __init__(self, fn_args: Any, config: dict):
        super().__init__()
        self.fn_args, self.config = fn_args, config
        self.tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
        self.outputs = model_outputs(config, self.tf_transform_output)
        self.head = model_head(config, self.tf_transform_output)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        model_hp = hyperparameters.sample(hp, self.config["tuning"]["search_space"], self.config["model"])
        return build_model(self.outputs, model_hp, self.head, keras=keras)

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        batch_size = int(hp.values.get("batch_size", self.config["model"]["batch_size"]))
        label = self.config["label"]["name"]
        train, evaluation = (
            input_fn(files, self.fn_args.data_accessor, self.tf_transform_output, label, batch_size, self.outputs)
            for files in (self.fn_args.train_files, self.fn_args.eval_files))
        start_at_the_mean_target(model, self.head, train)
        return model.fit(train, validation_data=evaluation, verbose=2, **kwargs)


def tuner_fn(fn_args: Any) -> TunerFnResult:
    config = fn_args.custom_config
    tuning = config["tuning"]
    keras.utils.set_random_seed(tuning["seed"])
    common = {
        "hypermodel": TaxiHyperModel(fn_args, config),
        "objective": keras_tuner.Objective(tuning["objective"], direction=tuning.get("direction", "max")),
        "seed": tuning["seed"],
        "directory": fn_args.working_dir,
        "project_name": "search",
        "overwrite": True,
    }
    algorithm = ALGORITHMS[tuning["algorithm"]]
    if algorithm is keras_tuner.Hyperband:
        tuner = algorithm(max_epochs=tuning["epochs"], factor=3, hyperband_iterations=1, **common)
        # Hyperband's oracle has no trial cap, and TFX's Tuner executor needs one to list the
        # trials (get_best_trials(None) fails): max_trials is the budget for every algorithm.
        tuner.oracle.max_trials = tuning["max_trials"]
    else:
        tuner = algorithm(max_trials=tuning["max_trials"], **common)
    return TunerFnResult(tuner=tuner, fit_kwargs={
        "epochs": tuning["epochs"],
        "steps_per_epoch": tuning["steps_per_epoch"],
        "validation_steps": tuning["validation_steps"],
    })
