"""Distiller's work: knowledge distillation of the trained model into a smaller student.

The student is the project's own architecture (``training.build_model``) with the
configured, smaller hyperparameters. Its loss mixes the labels and the teacher's outputs,
per task (``features.task``):

* binary (Hinton et al., sigmoid): ``α·BCE(y, p_s) + (1 − α)·T²·BCE(σ(z_t/T), σ(z_s/T))``;
* multiclass (softened softmax): ``α·CE(y, p_s) + (1 − α)·T²·CE(softmax(z_t/T), softmax(z_s/T))``;
* regression (the teacher's outputs as targets): ``α·MSE(y, ŷ_s) + (1 − α)·MSE(ŷ_t, ŷ_s)``;

with z the logits recovered from the probabilities.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras
from absl import logging

from features import task
from model import model_io, training

REQUIRED = ("student", "temperature", "alpha", "train_steps", "learning_rate", "batch_size")


def _logit(p: tf.Tensor) -> tf.Tensor:
    p = tf.clip_by_value(p, 1e-7, 1 - 1e-7)
    return tf.math.log(p) - tf.math.log1p(-p)


def distillation_loss(kind: str, temperature: float, alpha: float) -> Any:
    """loss(labels, teacher outputs, student outputs) for the task ``kind``."""
    t = temperature
    if kind == task.BINARY:
        bce = keras.losses.BinaryCrossentropy()
        return lambda y, p_t, p_s: (alpha * bce(y, p_s) + (1 - alpha) * t ** 2
                                    * bce(tf.sigmoid(_logit(p_t) / t), tf.sigmoid(_logit(p_s) / t)))
    if kind == task.MULTICLASS:
        sparse, dense = keras.losses.SparseCategoricalCrossentropy(), keras.losses.CategoricalCrossentropy()

        def soften(p: tf.Tensor) -> tf.Tensor:  # softmax(z / T) with log p as the logits z (up to a constant)
            return tf.nn.softmax(tf.math.log(tf.clip_by_value(p, 1e-7, 1.0)) / t)
        return lambda y, p_t, p_s: alpha * sparse(y, p_s) + (1 - alpha) * t ** 2 * dense(soften(p_t), soften(p_s))
    mse = keras.losses.MeanSquaredError()
    return lambda y, p_t, p_s: alpha * mse(y, p_s) + (1 - alpha) * mse(p_t, p_s)


def distill(teacher: keras.Model, student: keras.Model, data: model_io.ModelData, config: dict) -> list[float]:
    temperature, alpha = float(config["temperature"]), float(config["alpha"])
    optimizer = keras.optimizers.Adam(learning_rate=config["learning_rate"])
    loss_fn = distillation_loss(data.task, temperature, alpha)

    @tf.function
    def step(features: dict, labels: tf.Tensor) -> tf.Tensor:
        teacher_outputs = teacher(features, training=False)
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, teacher_outputs, student(features, training=True))
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
    student = training.build_model(data.outputs, student_hp, data.head)
    training.start_at_the_mean_target(student, data.head, data.dataset("train", config["batch_size"]))
    losses = distill(teacher, student, data, config)
    stats = {**model_io.measure(student), "teacher_parameters": int(teacher.count_params()),
             "student": config["student"], "temperature": config["temperature"], "alpha": config["alpha"],
             "final_loss": losses[-1] if losses else None}
    stats["parameter_ratio"] = stats["parameters"] / stats["teacher_parameters"]
    model_io.export(student, data, output, stats)
    return stats
