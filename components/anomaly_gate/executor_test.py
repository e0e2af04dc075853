"""AnomalyGate executor on real TFDV anomaly protos, as ExampleValidator writes them."""

from __future__ import annotations

import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from components.anomaly_gate import executor


def _write(uri, split, anomalies):
    d = uri / f"Split-{split}"
    d.mkdir(parents=True)
    (d / executor.SCHEMA_DIFF_FILE).write_bytes(anomalies.SerializeToString())


def _anomalies(schema_rows, data_rows):
    import pandas as pd

    schema = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(pd.DataFrame(schema_rows)))
    stats = tfdv.generate_statistics_from_dataframe(pd.DataFrame(data_rows))
    return tfdv.validate_statistics(stats, schema), schema


def test_clean_splits_pass(tmp_path):
    clean, _ = _anomalies({"fare": [1.0, 2.0]}, {"fare": [3.0, 4.0]})
    for split in ("train", "eval"):
        _write(tmp_path, split, clean)
    executor.check(str(tmp_path), ["train", "eval"])


def test_anomalies_name_split_and_column(tmp_path):
    bad, schema = _anomalies({"fare": [1.0, 2.0], "company": ["a", "b"]},
                             {"fare": ["x", "y"]})
    assert isinstance(schema, schema_pb2.Schema)
    clean, _ = _anomalies({"fare": [1.0]}, {"fare": [2.0]})
    _write(tmp_path, "train", clean)
    _write(tmp_path, "eval", bad)
    with pytest.raises(executor.AnomaliesFound) as err:
        executor.check(str(tmp_path), ["train", "eval"])
    message = str(err.value)
    assert "stops before Transform" in message
    assert "split 'eval', column 'fare'" in message
    assert "split 'eval', column 'company'" in message
    assert "split 'train'" not in message
