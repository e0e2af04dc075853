from components.temporal_csv_example_gen.component import TemporalCsvExampleGen

__all__ = ["TemporalCsvExampleGen"]
