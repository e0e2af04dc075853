from model import keras_env

keras_env.apply()  # before TFX loads TensorFlow, whoever imports this package first (as `import pipeline` does)

from components.data_cleaner.component import CleaningReport, DataCleaner  # noqa: E402

__all__ = ["CleaningReport", "DataCleaner"]
