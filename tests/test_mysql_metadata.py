"""ML Metadata in MySQL: the pipeline runs against a real MariaDB server (started from Debian's
packages on localhost, data in a temp dir) and its lineage is read back from that server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config
from tests.conftest import derived_config
from tests.mysql_server import server_binary
from tests.runs import MYSQL_PASSWORD_ENV as PASSWORD_ENV

needs_server = pytest.mark.skipif(
    server_binary() is None,
    reason="no MySQL-compatible server: mariadb-server is not installed and `make system-deps` could not "
           "install it here (needs root and apt); install it to run this test")


@pytest.mark.e2e
@pytest.mark.runs("mysql")
@needs_server
def test_pipeline_lineage_in_mysql(pipeline_runs, monkeypatch) -> None:
    # tests/runs.py mysql: the pipeline up to FeatureSelector, ML Metadata in a MariaDB server.
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.summary import open_store

    run = pipeline_runs.wait("mysql")
    mysql = run.workspace.resources["server"]
    monkeypatch.setenv(PASSWORD_ENV, mysql.password)
    cfg = run.cfg
    assert not cfg.metadata_path.exists(), "ran against sqlite, not MySQL"
    assert ("mlmd_taxi",) in mysql.query("SHOW DATABASES")
    store = open_store(cfg)  # over TCP with the user and password, as in production

    # Lineage: FeatureSelector's examples <- DataCleaner <- CsvExampleGen, through the events in MySQL.
    # (Up to FeatureSelector: Transform's minute adds nothing to what MLMD in MySQL must show.)
    def producer(artifact_id: int) -> metadata_store_pb2.Execution:
        (event,) = [ev for ev in store.get_events_by_artifact_ids([artifact_id])
                    if ev.type == metadata_store_pb2.Event.OUTPUT]
        return store.get_executions_by_id([event.execution_id])[0]

    def inputs(execution: metadata_store_pb2.Execution) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for ev in store.get_events_by_execution_ids([execution.id]):
            if ev.type == metadata_store_pb2.Event.INPUT:
                out.setdefault(ev.path.steps[0].key, []).append(ev.artifact_id)
        return out

    def node(execution: metadata_store_pb2.Execution) -> str:
        ctxs = store.get_contexts_by_execution(execution.id)
        types = {c.type_id: store.get_context_types_by_id([c.type_id])[0].name for c in ctxs}
        return next(c.name.split(".")[-1] for c in ctxs if types[c.type_id] == "node")

    executions = {node(e): e for e in store.get_executions()}
    assert set(executions) >= {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                               "AnomalyGate", "DataCleaner", "FeatureSelector"}
    assert all(e.last_known_state == metadata_store_pb2.Execution.COMPLETE for e in executions.values())
    selector = executions["FeatureSelector"]
    cleaner = producer(inputs(selector)["examples"][0])
    assert node(cleaner) == "DataCleaner"
    example_gen = producer(inputs(cleaner)["examples"][0])
    assert node(example_gen) == "CsvExampleGen"
    scores = [a for a in store.get_artifacts_by_context(
        next(c.id for c in store.get_contexts_by_execution(selector.id)))
        if store.get_artifact_types_by_id([a.type_id])[0].name == "FeatureScores"]
    assert scores and (Path(scores[0].uri) / "scores.json").is_file()
    # The same rows are what MLMD's tables in the server hold.
    (count,) = mysql.query("SELECT COUNT(*) FROM mlmd_taxi.Execution")[0]
    assert count == len(store.get_executions())


def test_missing_password_variable_is_named(tmp_path: Path, taxi_sample_dir: Path) -> None:
    from pipeline.config import metadata_connection_config

    config = derived_config(tmp_path, taxi_sample_dir, runner={"metadata": {"mysql": {
        "host": "db", "password_env": "NO_SUCH_PASSWORD_VARIABLE_XYZ"}}})
    os.environ.pop("NO_SUCH_PASSWORD_VARIABLE_XYZ", None)
    with pytest.raises(ValueError, match="NO_SUCH_PASSWORD_VARIABLE_XYZ is not set"):
        metadata_connection_config(load_config(config))
    bad = derived_config(tmp_path, taxi_sample_dir, runner={"metadata": {"mysql": {"port": 0}}})
    with pytest.raises(ConfigError, match=r"runner\.metadata\.mysql\.port: must be a TCP port"):
        load_config(bad)
