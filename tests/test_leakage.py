"""Every fitted parameter comes from the train split: a real pipeline run (cleaning, feature
selection and Transform on the shipped taxi config) whose eval rows are changed produces
exactly the same transformed train rows and the same fitted cleaning bounds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components.temporal_csv_example_gen.component import epoch_seconds
from pipeline.config import load_config
from pipeline.summary import latest_execution, open_store, output_artifacts
from serving import processes
from tests.conftest import ROOT, derived_config, sample_rows, write_csv

pytestmark = pytest.mark.e2e
EVAL_FROM, TEST_FROM = "2016-01-01", "2016-07-01"


def _outputs(cfg, node_id):
    store = open_store(cfg)
    execution = latest_execution(store, cfg.name, node_id)
    return {store.get_artifact_types_by_id([a.type_id])[0].name: Path(a.uri)
            for a in output_artifacts(store, execution.id)}


def _columns(split_dir: Path) -> dict[str, np.ndarray]:
    """Each transformed column's values, sorted (row order and a proto map's field order are not fixed)."""
    columns: dict[str, list] = {}
    for path in sorted(split_dir.glob("*.gz")):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            for k, v in tf.train.Example.FromString(record.numpy()).features.feature.items():
                columns.setdefault(k, []).append(tuple(v.float_list.value) or tuple(v.int64_list.value))
    return {k: np.array(sorted(v)) for k, v in columns.items()}


def assert_same_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a and sorted(a) == sorted(b)
    for key in a:
        # Sums in Beam combiners run in no fixed order: allow float32 rounding, nothing more.
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6, err_msg=key)


def _command(tmp: Path, name: str, rows, header) -> tuple[list[str], Path, Path]:
    """The CLI command running the pipeline up to Transform on ``rows``, its config and output root."""
    data = tmp / name / "data"
    write_csv(data / "trips.csv", header, rows)
    config = derived_config(tmp / name, data, name="leak",
                            data={"csv_dir": str(data), "split_by": {"timestamp_column": "trip_start_timestamp",
                                                                     "eval_from": EVAL_FROM, "test_from": TEST_FROM}})
    out = tmp / name / "out"
    return ([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--output-root", str(out),
             "--until", "Transform"], config, out)


def _run_side_by_side(runs, timeout: int = 1200):
    """Run independent pipelines (own data, outputs and ML Metadata) at the same time: most of a run
    is single-threaded (Beam in_memory, one worker), so two take little more than one."""
    procs, logs = [], []
    try:
        for cmd, _, out in runs:
            out.mkdir(parents=True, exist_ok=True)
            logs.append(out / "console.txt")
            with logs[-1].open("w") as console:  # a file, not a pipe: neither run waits on a reader
                procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=console, stderr=subprocess.STDOUT, text=True))
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            processes.stop(p)
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log.read_text()[-4000:]
    return [load_config(config, output_root=out) for _, config, out in runs]


def test_changing_eval_rows_leaves_train_transform_unchanged(tmp_path):
    header, rows = sample_rows(2500, seed=21)
    lo, hi = epoch_seconds(EVAL_FROM), epoch_seconds(TEST_FROM)

    def alter(row):  # an eval row: change everything but its time
        return dict(row, fare=str(float(row["fare"]) * 10 + 50), trip_miles=str(float(row["trip_miles"]) + 100),
                    company="A Company Nobody Has Seen", payment_type="Cash", trip_start_hour="3")

    changed = [alter(r) if lo <= int(r["trip_start_timestamp"]) < hi else r for r in rows]
    assert 50 < sum(lo <= int(r["trip_start_timestamp"]) < hi for r in rows) < 1000

    a, b = _run_side_by_side([_command(tmp_path, "original", rows, header),
                              _command(tmp_path, "changed", changed, header)])

    ta, tb = _outputs(a, "Transform"), _outputs(b, "Transform")
    assert_same_columns(_columns(ta["Examples"] / "Split-train"), _columns(tb["Examples"] / "Split-train"))
    with pytest.raises(AssertionError):  # not vacuous: the eval rows did change
        assert_same_columns(_columns(ta["Examples"] / "Split-eval"), _columns(tb["Examples"] / "Split-eval"))

    ca, cb = _outputs(a, "DataCleaner"), _outputs(b, "DataCleaner")
    fitted_a = json.loads((ca["CleaningReport"] / "report.json").read_text())["fitted"]
    fitted_b = json.loads((cb["CleaningReport"] / "report.json").read_text())["fitted"]
    assert fitted_a == fitted_b
    sa, sb = _outputs(a, "FeatureSelector"), _outputs(b, "FeatureSelector")
    assert (sa["FeatureScores"] / "scores.json").read_text() == (sb["FeatureScores"] / "scores.json").read_text()
