"""The test session's entry (loaded by pytest before any test module, for every test path in this
checkout): the project's Keras flavour, before anything imports TensorFlow (model/keras_env.py), and
Beam's local runner for the components tests run in this process, as `pipeline run` has it
(beam_local/__init__.py), and the session's pipeline runs (tests/runs.py, started by the
tests/run_registry.py plugin)."""

import os

import beam_local
from model import keras_env

keras_env.apply()
beam_local.install()
# The suite runs several TensorFlow processes at once on few cores (two pytest processes, a pipeline
# run per core, their servers and Beam workers): each with one intra-op and one inter-op thread, so
# their thread pools do not fight over the cores. Measured: three tiny pipeline runs at once on 2
# cores took 281 CPU-s (146 s wall) with TensorFlow's default pools and 241 CPU-s (123 s) with
# these, the same AUC (docs/testing.md). Set before TensorFlow loads; inherited by what the session
# starts; a developer's own setting wins.
for _var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_var, "1")

pytest_plugins = ["tests.run_registry"]
