"""The test session's entry (loaded by pytest before any test module, for every test path in this
checkout): the project's Keras flavour, before anything imports TensorFlow (model/keras_env.py), and
Beam's local runner for the components tests run in this process, as `pipeline run` has it
(beam_local/__init__.py), and the session's pipeline runs (tests/runs.py, started by the
tests/run_registry.py plugin)."""

import beam_local
from model import keras_env

keras_env.apply()
beam_local.install()

pytest_plugins = ["tests.run_registry"]
