"""The project's Keras flavour, decided once per process: tf_keras (Keras 2) behind ``tf.keras``.

tensorflow-transform sets TF_USE_LEGACY_KERAS=1 on import only if it is unset, and
TensorFlow reads it when ``tf.keras`` is first used, so without a decision at the start
what ``tf.keras`` means would depend on import order. The decision is made at the
process entries, never as an import side effect of library code:

* the CLI: ``python -m pipeline`` (pipeline/__main__.py) and ``tfx-pipeline``
  (``pipeline.cli:main``), before anything imports TensorFlow;
* the test session: the checkout's conftest.py (pytest loads it before any test module);
* the TFX module files (modules/*.py): TFX may load them in a fresh executor process;
* the benchmark scripts (benchmarks/bench_*.py): their first statements, beside ``sys.path``;
* Beam workers (DirectRunner multi_processing, a subprocess per worker) and every other
  child process inherit the environment of the entry that started them;
* Airflow: the DAG file pipeline/airflow_dag.py writes sets it in every process that parses it;
* containers: kubeflow/Dockerfile has ``ENV TF_USE_LEGACY_KERAS=1``.

Library code (model/, components/, ondevice/) does not set it; where it matters it calls
``require()`` at use time, which fails with the fix named.
"""

from __future__ import annotations

import os

KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1"}


def apply() -> None:
    """Set the flavour for this process and its children; call before TensorFlow is imported."""
    os.environ.update(KERAS_ENV)


def require() -> None:
    """Raise unless ``tf.keras`` is tf_keras in this process (the entry did not call ``apply()``)."""
    import tensorflow as tf
    import tf_keras

    if tf.keras.Model is not tf_keras.Model:
        raise RuntimeError(
            "tf.keras is not tf_keras (Keras 2) in this process: TF_USE_LEGACY_KERAS="
            f"{os.environ.get('TF_USE_LEGACY_KERAS')!r}. Start it through an entry that sets the Keras flavour "
            "(python -m pipeline, pytest, a module file) or call model.keras_env.apply() before TensorFlow is "
            "imported (or export TF_USE_LEGACY_KERAS=1)")
