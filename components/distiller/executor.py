"""Distiller's work: knowledge distillation of the trained model into a smaller student.

The student is the project's own architecture (``training.build_model``) with the
configured, smaller hyperparameters. Its loss mixes the labels and the teacher's
softened outputs (Hinton et al.): for a sigmoid output,
``alpha * BCE(y, p_s) + (1 - alpha) * T² * BCE(σ(z_t / T), σ(z_s / T))`` with z the logits.
"""

from __future__ import annotations

from typing import Any

from components import model_io
from modules import keras_env

keras_env.apply()

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import logging  # noqa: E402

from modules import training  # noqa: E402

REQUIRED = ("student", "temperature", "alpha", "train_steps", "learning_rate", "batch_size")


def _logit(p: tf.Tensor) -> tf.Tensor:
    p = tf.clip_by_value(p, 1e-7, 1 - 1e-7)
    return tf.math.log(p) - tf.math.log1p(-p)


def distill(teacher: keras.Model, student: keras.Model, data: model_io.ModelData, config: dict) -> list[float]:
    temperature, alpha = float(config["temperature"]), float(config["alpha"])
    optimizer = keras.optimizers.Adam(learning_rate=config["learning_rate"])
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
    def step(features: dict, labels: tf.Tensor) -> tf.Tensor:
        soft_targets = tf.sigmoid(_logit(teacher(features, training=False)) / temperature)
        with tf.GradientTape() as tape:
            probabilities = student(features, training=True)
            soft = tf.sigmoid(_logit(probabilities) / temperature)
            loss = alpha * bce(labels, probabilities) + (1 - alpha) * temperature ** 2 * bce(soft_targets, soft)
        optimizer.apply_gradients(zip(tape.gradient(loss, student.trainable_variables),
                                      student.trainable_variables, strict=True))
        return loss

    losses = []
    batches = data.dataset("train", config["batch_size"]).take(config["train_steps"])
    for i, (features, labels) in enumerate(batches):
        losses.append(float(step(features, tf.cast(labels, tf.float32))))
        if (i + 1) % 100 == 0:
            logging.info("Distiller: step %d/%d, loss %.4f", i + 1, config["train_steps"], losses[-1])
    return losses


def run(model_artifact: Any, examples: Any, transform_graph: Any, output: Any, config_json: str) -> dict:
    config = model_io.parse_config(config_json, "Distiller", REQUIRED)
    keras.utils.set_random_seed(config.get("seed", 42))
    custom_config = config["custom_config"]
    data = model_io.ModelData.of(custom_config, transform_graph, examples)
    teacher = model_io.load_model(model_artifact.uri)
    student_hp = {**custom_config["model"], **config["student"], "learning_rate": config["learning_rate"]}
    student = training.build_model(data.outputs, student_hp)
    losses = distill(teacher, student, data, config)
    stats = {**model_io.measure(student), "teacher_parameters": int(teacher.count_params()),
             "student": config["student"], "temperature": config["temperature"], "alpha": config["alpha"],
             "final_loss": losses[-1] if losses else None}
    stats["parameter_ratio"] = stats["parameters"] / stats["teacher_parameters"]
    model_io.export(student, data, output, stats)
    return stats
