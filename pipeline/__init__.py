"""The TFX pipeline package: config, pipeline definition, runners and CLI."""

from modules import keras_env

keras_env.apply()  # every entry point imports this package before TensorFlow
