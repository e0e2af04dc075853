"""The test session's entry (loaded by pytest before any test module, for every test path in this
checkout): the project's Keras flavour, before anything imports TensorFlow (model/keras_env.py)."""

from model import keras_env

keras_env.apply()
