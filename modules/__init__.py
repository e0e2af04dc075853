"""TFX module files (preprocessing_fn, run_fn) and the preprocessing step registry.

Transform and Trainer load ``preprocessing.py`` and ``training.py`` by path, so
TFX fingerprints this whole folder: editing any file here invalidates the cache
of the components that use it.
"""
