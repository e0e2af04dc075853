"""The project's Keras flavour, decided once: tf_keras (Keras 2) behind ``tf.keras``.

tensorflow-transform sets TF_USE_LEGACY_KERAS=1 on import only if it is unset,
so without this what ``tf.keras`` means would depend on import order. Every
process entry (CLI, tests, Beam workers, Airflow tasks, containers) applies it
before TensorFlow is imported; child processes inherit the environment.
"""

import os

KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1"}


def apply() -> None:
    os.environ.update(KERAS_ENV)
