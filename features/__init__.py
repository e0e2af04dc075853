"""Feature definitions, the preprocessing step registry, the label/task type; no TFX."""
