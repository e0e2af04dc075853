"""Custom TFX components: one folder each with component.py, executor.py and tests."""
