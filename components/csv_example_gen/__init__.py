"""CsvExampleGen reading through reader.py. The reader is importable without TFX (config validation uses
it); the component, which imports TFX, loads on first use of ``CsvExampleGen``."""

from typing import Any

from components.csv_example_gen.reader import CsvFormatError, Dialect

__all__ = ["CsvExampleGen", "CsvFormatError", "Dialect"]


def __getattr__(name: str) -> Any:
    if name == "CsvExampleGen":
        from components.csv_example_gen.component import CsvExampleGen

        return CsvExampleGen
    raise AttributeError(name)
