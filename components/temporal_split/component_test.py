"""TemporalCsvExampleGen on real taxi rows: each split holds exactly its time range."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import tensorflow as tf
from tfx import v1 as tfx

import pipeline  # noqa: F401  (Keras flavour before TensorFlow)
from components.temporal_split import TemporalCsvExampleGen
from components.temporal_split.component import epoch_seconds
from tests.conftest import sample_rows, write_csv


def _timestamps(split_dir: Path) -> list[int]:
    out = []
    for path in split_dir.glob("*.gz"):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            ex = tf.train.Example.FromString(record.numpy())
            out.append(ex.features.feature["trip_start_timestamp"].int64_list.value[0])
    return out


def test_rows_split_by_time(tmp_path):
    header, rows = sample_rows(2000, seed=2)
    write_csv(tmp_path / "data" / "trips.csv", header, rows)
    gen = TemporalCsvExampleGen(str(tmp_path / "data"), "trip_start_timestamp", "2016-01-01", "2016-07-01")
    p = tfx.dsl.Pipeline(
        pipeline_name="temporal", pipeline_root=str(tmp_path / "root"), components=[gen],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "m.sqlite")))
    tfx.orchestration.LocalDagRunner().run(p)
    (examples_dir,) = (tmp_path / "root" / "CsvExampleGen" / "examples").iterdir()
    ts = pd.Series([int(r["trip_start_timestamp"]) for r in rows])
    a, b = epoch_seconds("2016-01-01"), epoch_seconds("2016-07-01")
    expected = {"train": ts[ts < a], "eval": ts[(ts >= a) & (ts < b)], "test": ts[ts >= b]}
    for split, want in expected.items():
        got = sorted(_timestamps(examples_dir / f"Split-{split}"))
        assert got == sorted(want.tolist()), split
        assert len(got) > 30, split  # every split holds real rows
