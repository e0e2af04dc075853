"""Split by a partition column: every row sharing the column's value lands in the same split."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tfx import v1 as tfx

from pipeline.config import load_config
from pipeline.pipeline_def import example_gen
from tests.conftest import derived_config, sample_rows, write_csv


def _companies(split_dir: Path) -> list[bytes]:
    out = []
    for path in split_dir.glob("*.gz"):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature["company"]
            out.append(feature.bytes_list.value[0] if feature.bytes_list.value else b"")
    return out


def test_rows_of_one_company_stay_together(tmp_path):
    header, rows = sample_rows(2000, seed=4)
    rows = [r for r in rows if r["company"]]  # the partition feature must have a value
    write_csv(tmp_path / "data" / "trips.csv", header, rows)
    config = derived_config(tmp_path, tmp_path / "data", name="partition",
                            data={"csv_dir": str(tmp_path / "data"), "split_by": {"column": "company"}})
    cfg = load_config(config, output_root=tmp_path / "out")
    p = tfx.dsl.Pipeline(
        pipeline_name="partition", pipeline_root=str(cfg.pipeline_root), components=[example_gen(cfg)],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(cfg.metadata_path)))
    tfx.orchestration.LocalDagRunner().run(p)
    (examples,) = (cfg.pipeline_root / "CsvExampleGen" / "examples").iterdir()
    by_split = {s: _companies(examples / f"Split-{s}") for s in ("train", "eval", "test")}
    assert sum(len(v) for v in by_split.values()) == len(rows)
    seen: dict[bytes, str] = {}
    for split, companies in by_split.items():
        for company in companies:
            assert seen.setdefault(company, split) == split, company
    assert all(by_split.values())  # every split got some companies
