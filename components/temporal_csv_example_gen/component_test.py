"""TemporalCsvExampleGen on real taxi rows: each split holds exactly its time range."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import tensorflow as tf
from tfx import v1 as tfx

from components.temporal_csv_example_gen import TemporalCsvExampleGen
from components.temporal_csv_example_gen.component import epoch_seconds
from tests.conftest import sample_rows, write_csv


def _timestamps(split_dir: Path) -> list[int]:
    out = []
    for path in split_dir.glob("*.gz"):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            ex = tf.train.Example.FromString(record.numpy())
            out.append(ex.features.feature["trip_start_timestamp"].int64_list.value[0])
    return out


def _run_alone(gen, tmp_path, name: str):
    """Runs the ExampleGen as a one-component pipeline (LocalDagRunner, sqlite MLMD); its examples folder."""
    p = tfx.dsl.Pipeline(
        pipeline_name=name, pipeline_root=str(tmp_path / "root"), components=[gen],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "m.sqlite")))
    tfx.orchestration.LocalDagRunner().run(p)
    (examples_dir,) = (tmp_path / "root" / "CsvExampleGen" / "examples").iterdir()
    return examples_dir


def test_rows_split_by_time(tmp_path):
    header, rows = sample_rows(2000, seed=2)
    write_csv(tmp_path / "data" / "trips.csv", header, rows)
    examples_dir = _run_alone(TemporalCsvExampleGen(str(tmp_path / "data"), "trip_start_timestamp", "2016-01-01",
                                                    "2016-07-01"), tmp_path, "temporal")
    ts = pd.Series([int(r["trip_start_timestamp"]) for r in rows])
    a, b = epoch_seconds("2016-01-01"), epoch_seconds("2016-07-01")
    expected = {"train": ts[ts < a], "eval": ts[(ts >= a) & (ts < b)], "test": ts[ts >= b]}
    for split, want in expected.items():
        got = sorted(_timestamps(examples_dir / f"Split-{split}"))
        assert got == sorted(want.tolist()), split
        assert len(got) > 30, split  # every split holds real rows


def test_reads_through_the_csv_reader(tmp_path):
    """An R write.csv2-style file (';', quoted header, "" index column, NA timestamps): stock CsvExampleGen
    cannot read it; through reader.py each row lands in its time range and NA (missing) goes to train."""
    a, b = epoch_seconds("2016-01-01"), epoch_seconds("2016-07-01")
    stamps = {1: int(a) - 60, 2: int(a) + 60, 3: int(b) + 60, 4: None, 5: int(b) - 60}
    lines = ['"";"trip_start_timestamp";"fare"'] + [
        f'"{i}";{"NA" if ts is None else ts};{i}.5' for i, ts in stamps.items()]
    data = tmp_path / "data"
    data.mkdir()
    (data / "trips.csv").write_text("\n".join(lines) + "\n")
    examples_dir = _run_alone(TemporalCsvExampleGen(str(data), "trip_start_timestamp", "2016-01-01", "2016-07-01"),
                              tmp_path, "temporal_r")
    fares = {}
    for split in ("train", "eval", "test"):
        for path in (examples_dir / f"Split-{split}").glob("*.gz"):
            for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
                ex = tf.train.Example.FromString(record.numpy())
                assert set(ex.features.feature) == {"trip_start_timestamp", "fare"}  # no index, no quotes
                fares[ex.features.feature["fare"].float_list.value[0]] = split
    assert fares == {1.5: "train", 2.5: "eval", 3.5: "test", 4.5: "train", 5.5: "eval"}
