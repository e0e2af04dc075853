"""Airflow: the DAG TFX's AirflowDagRunner builds from the config parses within Airflow's DAG import
timeout with the config's schedule, and runs every task to success under `airflow dags test`
(sqlite Airflow DB in a temporary AIRFLOW_HOME), each task in a process with the project's Keras
flavour; ML Metadata records every component's execution and the lineage between them."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.airflow_dag import KERAS_CHECK_LOG
from pipeline.config import load_config
from tests.conftest import E2E_SAMPLE_ROWS, ROOT, cli_in_process, derived_config, run_cli
from tests.serving_fixtures import LIGHT_FEATURES, TINY_TRAINING

UNTIL = "Trainer"  # through Transform and Trainer: the module files run under Airflow too
SCHEDULE = "0 3 * * *"
DAG_ID = "taxi_airflow"
LOGICAL_DATE = "2024-01-02"

# Parses the DAG folder the way Airflow's DAG processor does (DagBag) in a process that has not loaded
# TensorFlow yet, and reports what the scheduler would see. The parse's CPU seconds are what a DAG
# processor with a core of its own would wait: the wall time grows with this shared machine's load
# (11.6 s at a load of 1.5, 32.8 s at 8, docs/orchestration.md), so the probe runs with a long
# timeout and the test holds the CPU time to Airflow's default one.
PARSE_PROBE = """
import json, resource, sys
from airflow.configuration import conf
from airflow.models.dagbag import DagBag
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
before = cpu()
bag = DagBag(sys.argv[1], include_examples=False)
parse_cpu = cpu() - before
dag = bag.dags.get(sys.argv[2])
print(json.dumps({
    "import_errors": bag.import_errors,
    "parse_seconds": sum(s.duration.total_seconds() for s in bag.dagbag_stats),
    "parse_cpu_seconds": parse_cpu,
    "import_timeout": float(conf.get_default_value("core", "dagbag_import_timeout")),
    "schedule": dag and dag.timetable.description,
    "upstream": dag and {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
}))
"""


def airflow_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
    # A contrary setting in the environment: the DAG file (its KERAS_ENV) must override it in
    # every Airflow process that runs a task, or the tasks' pre_execute check fails.
    env["TF_USE_LEGACY_KERAS"] = "0"
    return env


def airflow(home: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    airflow_bin = Path(sys.executable).parent / "airflow"
    return subprocess.run([str(airflow_bin), *args], cwd=ROOT, env=airflow_env(home), capture_output=True,
                          text=True, timeout=timeout)


def task_logs(output: str) -> dict[str, str]:
    """Each task's log lines in `airflow dags test` output (between its start and end markers)."""
    logs = {}
    for m in re.finditer(r"\[DAG TEST\] starting task_id=(\S+) .*?\n(.*?)\[DAG TEST\] end task task_id=\1 ",
                         output, re.S):
        logs[m.group(1)] = m.group(2)
    return logs


def prepare(ws) -> Path:
    """tests/runs.py airflow: the config, its DAG file compiled into an AIRFLOW_HOME, Airflow's DB
    migrated; the run itself is `airflow dags test` (``dags_test_command``)."""
    from tests.conftest import sample_rows, write_csv

    home = ws.folder / "airflow_home"
    header, rows = sample_rows(E2E_SAMPLE_ROWS)
    data = write_csv(ws.folder / "data" / "data.csv", header, rows).parent
    # Light preprocessing and a tiny training budget: the test is about orchestration (Transform's time
    # is mostly fixed cost anyway). DataCleaner and FeatureSelector (custom components) stay in.
    config = derived_config(ws.folder, data, name=DAG_ID, features=LIGHT_FEATURES, training=TINY_TRAINING,
                            feature_selection={"method": "mutual_information", "top_k": 5},
                            runner={"airflow": {"schedule": SCHEDULE, "start_date": "2024-01-01"}})
    proc = run_cli("compile", "--config", str(config), "--output-root", str(ws.output_root), "--engine", "airflow",
                   "--output", str(home / "dags" / f"{DAG_ID}.py"), "--until", UNTIL)
    assert proc.returncode == 0, proc.stderr
    migrate = airflow(home, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    ws.env.update(airflow_env(home))
    return config


def dags_test_command(ws) -> list[str]:
    return [str(Path(sys.executable).parent / "airflow"), "dags", "test", DAG_ID, LOGICAL_DATE]


@pytest.mark.e2e
@pytest.mark.runs("airflow")
def test_airflow_dags_test_runs_every_task(pipeline_runs) -> None:
    from pipeline.pipeline_def import create_pipeline

    run = pipeline_runs.wait("airflow")
    home, out, cfg = run.workspace.folder / "airflow_home", run.output_root, run.cfg
    components = create_pipeline(cfg, UNTIL).components
    expected = sorted(c.id for c in components)

    parse = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(home / "dags"), DAG_ID], cwd=ROOT,
                           env={**airflow_env(home), "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600"},
                           capture_output=True, text=True, timeout=900)
    assert parse.returncode == 0, parse.stderr[-3000:]
    parsed = json.loads(parse.stdout.strip().splitlines()[-1])
    print(f"DAG file parse: {parsed['parse_cpu_seconds']:.1f} s CPU, {parsed['parse_seconds']:.1f} s wall "
          f"(Airflow's default import timeout {parsed['import_timeout']:.0f} s)")
    assert parsed["import_errors"] == {}, parsed["import_errors"]
    assert 0 < parsed["parse_cpu_seconds"] < parsed["import_timeout"], parsed
    assert parsed["schedule"] == "At 03:00", parsed["schedule"]  # Airflow's description of the config's cron
    assert sorted(parsed["upstream"]) == expected
    for c in components:  # one task per component, wired as the TFX pipeline
        assert parsed["upstream"][c.id] == sorted(u.id for u in c.upstream_nodes), c.id


    with sqlite3.connect(home / "airflow.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)))
        (run_id, run_state), = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (DAG_ID,))
    assert sorted(states) == expected
    assert set(states.values()) == {"success"}, states
    assert run_state == "success"

    logs = task_logs(run.stdout)
    assert sorted(logs) == expected
    for task_id, log in logs.items():  # the pre_execute check ran in the task's process and passed
        assert f"{KERAS_CHECK_LOG} TF_USE_LEGACY_KERAS=1, tf.keras is tf_keras 2." in log, task_id

    # ML Metadata (TFX's launcher under Airflow: one execution per component in the Airflow run's
    # context, inputs resolved from the upstream components' outputs of the same run).
    conn = metadata_store_pb2.ConnectionConfig()
    conn.sqlite.filename_uri = str(cfg.metadata_path)
    store = metadata_store.MetadataStore(conn)
    run_ctx = store.get_context_by_type_and_name("run", f"{cfg.name}.{run_id}")
    assert run_ctx is not None, [c.name for c in store.get_contexts()]
    executions = {e.properties["component_id"].string_value: e for e in store.get_executions_by_context(run_ctx.id)}
    assert sorted(executions) == expected
    outputs: dict[int, str] = {}
    for node, e in executions.items():
        assert e.last_known_state == metadata_store_pb2.Execution.COMPLETE, node
        assert e.properties["state"].string_value == "complete", node
    events = store.get_events_by_execution_ids([e.id for e in executions.values()])
    by_id = {e.id: node for node, e in executions.items()}
    for ev in events:
        if ev.type == metadata_store_pb2.Event.OUTPUT:
            outputs[ev.artifact_id] = by_id[ev.execution_id]
    for c in components:
        produced = [a for a, node in outputs.items() if node == c.id]
        assert len(produced) == len(c.outputs), f"{c.id}: {len(produced)} output artifacts, {len(c.outputs)} outputs"
        consumed = {outputs.get(ev.artifact_id) for ev in events
                    if ev.type == metadata_store_pb2.Event.INPUT and by_id[ev.execution_id] == c.id}
        producers = {ch.producer_component_id for ch in c.inputs.values()}
        assert consumed == producers, c.id  # lineage: every input is an upstream output of this run
    for artifact in store.get_artifacts_by_id(list(outputs)):
        assert Path(artifact.uri).exists(), artifact.uri
    model = out / cfg.name / "pipeline_root" / "Trainer" / "model"
    assert any(model.rglob("saved_model.pb")), "Trainer exported no model"


def test_dag_file_needs_py_suffix(tmp_path: Path, taxi_sample_dir: Path) -> None:
    config = derived_config(tmp_path, taxi_sample_dir)
    proc = run_cli("compile", "--config", str(config), "--engine", "airflow", "--output", str(tmp_path / "dag.txt"))
    assert proc.returncode == 2 and "an Airflow DAG file is a .py file" in proc.stderr


CONFIGS = sorted((ROOT / "pipeline" / "configs").glob("*/pipeline.yaml"))
# Every DAG of a folder as the DAG processor parses them: {dag_id: {task: its upstream tasks}}.
PARSE_ALL_PROBE = """
import json, sys
from airflow.models.dagbag import DagBag
bag = DagBag(sys.argv[1], include_examples=False)
print(json.dumps({"import_errors": bag.import_errors, "dags": {
    dag_id: {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} for dag_id, dag in bag.dags.items()}}))
"""


def test_every_shipped_config_compiles_to_a_dag_airflow_parses(tmp_path: Path) -> None:
    """Each shipped config (tabular, images, text) compiles to a DAG file that Airflow's DagBag parses
    with no import error, one task per component wired as the TFX pipeline. One DagBag parse of the
    folder holding every DAG (each parse imports TFX: seconds apiece)."""
    from pipeline.pipeline_def import create_pipeline

    home = tmp_path / "airflow_home"
    expected = {}
    for config in CONFIGS:
        cfg = load_config(config, output_root=tmp_path / "out")
        proc = cli_in_process("compile", "--config", str(config), "--output-root", str(tmp_path / "out"),
                              "--engine", "airflow", "--output", str(home / "dags" / f"{cfg.name}.py"))
        assert proc.returncode == 0, f"{config}: {proc.stderr[-3000:]}"
        expected[cfg.name] = {c.id: sorted(u.id for u in c.upstream_nodes)
                              for c in create_pipeline(cfg).components}
    # Airflow's 30 s import timeout is wall time, which a loaded machine exceeds: the CPU time the
    # taxi DAG's parse takes is held to it in test_airflow_dags_test_runs_every_task above.
    parse = subprocess.run([sys.executable, "-c", PARSE_ALL_PROBE, str(home / "dags")], cwd=ROOT,
                           env={**airflow_env(home), "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600"},
                           capture_output=True, text=True, timeout=900)
    assert parse.returncode == 0, parse.stderr[-3000:]
    parsed = json.loads(parse.stdout.strip().splitlines()[-1])
    assert parsed["import_errors"] == {}, parsed["import_errors"]
    assert parsed["dags"] == expected  # every config's DAG, every component a task with its upstreams
