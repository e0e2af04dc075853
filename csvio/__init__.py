"""The CSV dialect reader shared by CsvExampleGen, config checks and the prediction client."""
