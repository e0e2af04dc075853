from components.data_cleaner.component import CleaningReport, DataCleaner

__all__ = ["CleaningReport", "DataCleaner"]
