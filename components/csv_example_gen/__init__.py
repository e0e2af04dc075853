"""CsvExampleGen: CSV files as people export them, read through csvio.reader."""

from components.csv_example_gen.component import CsvExampleGen

__all__ = ["CsvExampleGen"]
