from components.temporal_split.component import TemporalCsvExampleGen

__all__ = ["TemporalCsvExampleGen"]
