"""Every pipeline run of the test session, declared once (issue 25).

A test reads a run, it never starts one: it names the runs it needs with
``@pytest.mark.runs("tiny")`` (or in its module's ``pytestmark``) and gets each from the
``pipeline_runs`` fixture (``pipeline_runs.wait("tiny")``: config, stdout, facts). The session
starts the runs its selected tests name as soon as it starts, in the background, at most one per
core at a time, in the order they are declared here (the longest first); tests/run_registry.py is
the machinery. ``tests/test_run_registry.py`` fails when a test module starts a run of its own or
when this file declares more runs than ``RUN_BUDGET``.

To add a run: first look for one here that already has what your test needs (a config section, a
second run on the same store) and extend it instead; a new run costs every ``make test`` its
minutes. A run that continues another's output root (``after=``) reuses its cache. Hooks that are
about one module's checks (the webhook receiver, the Airflow DAG compile, the reliability store
reader) stay in that test module and are imported when the run starts, not when this file loads.
docs/testing.md has the table of runs and who reads them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import (
    E2E_SAMPLE_ROWS,
    ROOT,
    TAXI_CSV,
    derived_config,
    sample_rows,
    small_deployment,
    small_optimization,
    small_tuning,
    write_csv,
)
from tests.run_registry import Run, RunResult, Workspace
from tests.serving_fixtures import CANARY_TRAINING, LIGHT_FEATURES, TINY_TRAINING

# The most distinct pipeline runs one `make test` may start (len(RUNS)); tests/test_run_registry.py
# holds it. Each run costs its minutes on every `make test` (docs/setup.md lists them). Raise it only
# with the reason on the line below, and say what the new run proves that no declared run could.
RUN_BUDGET = 27
# 27: issue 25 (the suite reshaped around this registry): 27 runs declared, 4 of them the benchmark
# scripts that run pipelines of their own (they ran beside the registry before).

CONFIGS = ROOT / "pipeline" / "configs"


# --------------------------------------------------------------------------- the full pipeline --
def taxi_full(ws: Workspace) -> Path:
    """The whole pipeline on 4,000 taxi rows with tuning, the three model variants and on-device
    deployment (tests/test_pipeline_e2e.py, test_mobile_deployment.py, test_web_deployment.py,
    test_benchmarks.py)."""
    header, rows = sample_rows(E2E_SAMPLE_ROWS)
    data = write_csv(ws.folder / "data" / "data.csv", header, rows).parent
    optimization = small_optimization()
    optimization["thresholds"] = [{"metric": "auc", "max_decrease": 0.03}]  # a 400-row test split is noisy
    # A student that cannot reach this bound: a variant failing its thresholds is not pushed.
    optimization["distillation"]["thresholds"] = [{"metric": "auc", "lower_bound": 0.999}]
    return derived_config(ws.folder, data, name="taxi_e2e", tuning=small_tuning(), optimization=optimization,
                          deployment=small_deployment())


def taxi_full_facts(result: RunResult) -> dict:
    """What the cached re-run is compared with: the first run's summary (nodes, pushed path)."""
    from pipeline.pipeline_def import create_pipeline
    from pipeline.summary import summarize

    cfg = result.cfg
    summary = summarize(cfg, [c.id for c in create_pipeline(cfg).components])
    return {"summary": summary}


def same_config(ws: Workspace) -> Path:
    """The family's config again, nothing changed: every component must come from the cache."""
    return ws.folder / "pipeline.yaml"


# ------------------------------------------------------------------- images, text, the tasks --
DIGITS_PER_CLASS = 150  # of the 400 digits per class: 1,500 images (the run's cost is mostly per image)
DIGITS_TRAINING = {"train_steps": 300, "eval_steps": 4, "epochs": 2, "early_stopping_patience": 2}


def digits(ws: Workspace) -> Path:
    """The digits pipeline on the first DIGITS_PER_CLASS images of every class, with fewer train
    steps and without the optimization section (pruning is exercised by the full config's run;
    docs/images.md). tests/test_images_e2e.py."""
    config = CONFIGS / "digits" / "pipeline.yaml"
    data = ws.folder / "digits"
    for label in range(10):
        (data / str(label)).mkdir(parents=True)
        for src in sorted((ROOT / "data" / "digits" / str(label)).glob("*.png"))[:DIGITS_PER_CLASS]:
            shutil.copy2(src, data / str(label) / src.name)
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["image_dir"] = str(data)
    cfg["schema"] = str(config.parent / cfg["schema"])
    cfg["training"] = {**cfg["training"], **DIGITS_TRAINING}
    cfg.pop("optimization")
    path = ws.folder / "digits.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


SPAM_EVERY = 2  # every 2nd e-mail (3,023 of 6,046): the run stays small
SPAM_TRAINING = {"train_steps": 200, "eval_steps": 5, "epochs": 2, "early_stopping_patience": 2}
# Shorter sequences and one LSTM direction (the shipped config: 64 tokens, bidirectional): the
# unrolled LSTM's graph is what Trainer, TFLiteConverter and TFJSConverter spend their time on.
# tests/test_text.py converts the bidirectional form to TFLite.
SPAM_MAX_TOKENS = 24
SPAM_SEQUENCE = {"embedding_dim": 16, "lstm_units": 16, "bidirectional": False}


def spam(ws: Workspace) -> Path:
    """Every SPAM_EVERY-th e-mail of the shipped CSV (rewritten by the csv module: the quoting of
    multi-line e-mails is kept), a small model and budget. tests/test_text_e2e.py."""
    (ws.folder / "data").mkdir()
    with (ROOT / "data" / "spam" / "spam.csv").open(newline="", encoding="utf-8") as src, \
            (ws.folder / "data" / "spam.csv").open("w", newline="", encoding="utf-8") as dst:
        rows = list(csv.reader(src))
        csv.writer(dst, lineterminator="\n").writerows([rows[0], *rows[1::SPAM_EVERY]])
    cfg = yaml.safe_load((CONFIGS / "spam" / "pipeline.yaml").read_text())
    cfg["data"]["csv_dir"] = str(ws.folder / "data")
    cfg["training"] = SPAM_TRAINING
    cfg["model"]["sequence"] = SPAM_SEQUENCE
    # One Evaluator (eval); the converters validate on eval too (the shipped config: on test).
    cfg["evaluation"]["splits"] = ["eval"]
    cfg["deployment"].update(split="eval", validation_examples=400)
    cfg["features"][0]["steps"][0]["tokenize"]["max_tokens"] = SPAM_MAX_TOKENS
    path = ws.folder / "spam.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _task_config(ws: Workspace, name: str, data_dir: Path, **overrides) -> Path:
    """The shipped config of ``name`` with absolute paths and ``overrides`` merged in."""
    cfg = yaml.safe_load((CONFIGS / name / "pipeline.yaml").read_text())
    cfg["data"]["csv_dir"] = str(data_dir)
    for key, value in overrides.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    path = ws.folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def chile(ws: Workspace) -> Path:
    """The whole multiclass pipeline on data/chile/Chile.csv as shipped. tests/test_tasks_e2e.py."""
    return _task_config(ws, "chile", ROOT / "data" / "chile", training={
        "train_steps": 450, "eval_steps": 10, "epochs": 3, "early_stopping_patience": 2})


DIAMONDS_EVERY = 8  # every 8th diamond (6,743 rows): the shipped file has 53,940


def diamonds(ws: Workspace) -> Path:
    """The whole regression pipeline on every 8th line of data/diamonds/diamonds.csv, the lines
    copied byte for byte (R's quoting and row names kept). tests/test_tasks_e2e.py."""
    lines = (ROOT / "data" / "diamonds" / "diamonds.csv").read_bytes().splitlines(keepends=True)
    (ws.folder / "data").mkdir()
    (ws.folder / "data" / "diamonds.csv").write_bytes(b"".join([lines[0], *lines[1::DIAMONDS_EVERY]]))
    return _task_config(ws, "diamonds", ws.folder / "data", training={
        "train_steps": 900, "eval_steps": 10, "epochs": 3, "early_stopping_patience": 2})


# ------------------------------------------------------------------ the shared tiny pipeline --
# One tiny real run (1,500 rows, TINY_TRAINING, LIGHT_FEATURES) with every section the run-level
# features read: cleaning and feature selection (the report), per-slice evaluation with thresholds
# (report, card, registry), a TFLite target (card beside each push), a webhook (the blessed event).
# Then a second run on the same store with more training and a bound it cannot pass: REJECTED,
# nothing pushed, Transform and what precedes it cached. Read by test_run_report.py,
# test_metadata_cli.py, test_model_card.py, test_registry_e2e.py.
TINY_ROWS = 1500
TINY_DESCRIPTION = "Card test: does a taxi passenger tip more than 20%?"
TINY_THRESHOLD = {"metric": "auc", "lower_bound": 0.5}  # a 40-step model passes it; a real threshold all the same
TINY_SECOND = {"training": {**TINY_TRAINING, "train_steps": 90},
               "evaluation": {"splits": ["eval"], "thresholds": [{"metric": "auc", "lower_bound": 0.9999}]}}


def _tiny_config(folder: Path, data: Path, receiver_url: str, **overrides) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"training": TINY_TRAINING,
                "evaluation": {"splits": ["eval"], "thresholds": [TINY_THRESHOLD]}, **overrides}
    return derived_config(
        folder, data, name="tiny", description=TINY_DESCRIPTION, features=LIGHT_FEATURES, tuning=None,
        optimization=None, feature_selection={"method": "mutual_information", "top_k": 5},
        deployment={"models": ["trained"], "split": "eval", "validation_examples": 200,
                    "tflite": {"variants": ["float32"]}},
        notifications={"webhook": {"url": receiver_url, "on": ["failure", "blessed"]}}, **settings)


def tiny(ws: Workspace) -> Path:
    from tests.test_notify import Receiver

    receiver = Receiver()
    ws.resources["receiver"] = receiver
    ws.closers.append(receiver.close)
    header, rows = sample_rows(TINY_ROWS, seed=17)
    data = write_csv(ws.folder / "data" / "data.csv", header, rows).parent
    return _tiny_config(ws.folder / "first", data, receiver.url)


def tiny_first_facts(result: RunResult) -> dict:
    """What the tests compare the second run with: the first run's summary, report page and pushes."""
    cfg = result.cfg
    keep = result.workspace.folder / "first"
    shutil.copyfile(cfg.output_dir / "report" / "index.html", keep / "index.html")
    return {"summary": json.loads((cfg.output_dir / "report" / "summary.json").read_text()),
            "page": keep / "index.html", "posts": list(result.workspace.resources["receiver"].posts)}


def tiny_second(ws: Workspace) -> Path:
    return _tiny_config(ws.folder / "second", ws.folder / "data", ws.resources["receiver"].url, **TINY_SECOND)


def tiny_second_facts(result: RunResult) -> dict:
    cfg = result.cfg
    return {"summary": json.loads((cfg.output_dir / "report" / "summary.json").read_text())}


# ------------------------------------------------------------- kill -9 and resume, in sequence --
# One tiny pipeline (always blessed, one TFLite target) run on one output root and killed in turn
# while Transform (a Beam job), then InfraValidator (its model server running) executes, then by the
# Pusher test hook between copy and rename, then while TFLiteConverter (our own component) executes,
# then plainly to the end. Trainer and Evaluator follow Transform's rule (an executor in the run's
# process whose outputs are published only when it completes), so they are not killed separately.
# The first run also meets a second `run` on its output root, which must be refused.
# tests/test_run_reliability.py.
RELIABILITY = "reliability"
# node: seconds inside it before the kill (Transform: well inside its Beam job; InfraValidator: serving)
KILLED_WHILE_RUNNING = {"Transform": 3.0, "InfraValidator": 1.0, "TFLiteConverter": 0.0}
OLDER_VERSION = b"an older version"


def _serving_config(folder: Path, data: Path, name: str, **sections) -> Path:
    base = {"training": TINY_TRAINING, "features": LIGHT_FEATURES, "cleaning": None, "feature_selection": None,
            "tuning": None, "optimization": None}
    return derived_config(folder, data, name=name, **{**base, **sections})


def serving_model(ws: Workspace, name: str = "serving_model", **sections) -> Path:
    """The cheapest pipeline that still imputes, scales, looks up vocabularies and buckets (1,500 taxi
    rows, LIGHT_FEATURES, 40 steps; no cleaning, feature selection, tuning or variants), its rows kept
    in ``ws.resources["rows"]``. Alone (``--until Trainer``) it is the serving benchmark's model
    (tests/serving_fixtures.trained_model); with ``sections`` it is the reliability sequence's pipeline,
    whose model the serving tests read."""
    config = ws.folder / "pipeline.yaml"
    if config.exists():  # a later run of the family: same config, rows already drawn
        return config
    header, rows = sample_rows(1500, seed=11)
    ws.resources["rows"] = tuple(rows)
    data = write_csv(ws.folder / "data" / "data.csv", header, rows).parent
    return _serving_config(ws.folder, data, name, **sections)


SERVING_MODEL = Run("serving_model", serving_model, args=("--until", "Trainer"), minutes=1.5)  # outside pytest


RELIABILITY_SECTIONS = {
    "evaluation": {"splits": ["eval"], "slices": [], "thresholds": [{"metric": "auc", "lower_bound": 0.0}]},
    "deployment": {"models": ["trained"], "split": "eval", "validation_examples": 100,
                   "tflite": {"variants": ["float32"]}},
}


def reliability_config(ws: Workspace) -> Path:
    """``serving_model``'s pipeline, always blessed, with one on-device target (a converter and its
    Pusher), and an older pushed version no run may touch."""
    config = ws.folder / "pipeline.yaml"
    if not config.exists():
        older = ws.output_root / RELIABILITY / "pushed" / "serving" / "1"
        older.mkdir(parents=True)
        (older / "saved_model.pb").write_bytes(OLDER_VERSION)
    return serving_model(ws, RELIABILITY, **RELIABILITY_SECTIONS)


def refused_run(config: Path, output_root: Path) -> subprocess.CompletedProcess:
    """A ``run`` on an output root whose lock another process holds: refused at once (exit 3), before
    it touches ML Metadata or the pipeline root, so not a pipeline run of its own."""
    return subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--output-root",
                           str(output_root)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def _kill_while(node: str, refuse_second: bool = False):
    """The run killed (SIGKILL to its process group) once ML Metadata shows ``node`` executing and
    ``settle`` seconds have passed; first, if asked, a second run on its output root is refused."""
    def during(proc: subprocess.Popen, ws: Workspace) -> dict:
        from tests.test_run_reliability import lock_note, running_execution, wait_for

        config, out, facts = ws.folder / "pipeline.yaml", ws.output_root / RELIABILITY, {}
        if refuse_second:
            wait_for(lambda: lock_note(out).get("pid") == proc.pid, 120, "the run holds the lock", proc)
            facts["refused"] = refused_run(config, ws.output_root)
            facts["holder_log"], facts["holder_pid"] = lock_note(out)["log_file"], proc.pid
        wait_for(lambda: running_execution(config, ws.output_root, node), 900, f"{node} to execute", proc)
        time.sleep(KILLED_WHILE_RUNNING[node])  # well inside the executor (Transform: its Beam job)
        os.killpg(proc.pid, signal.SIGKILL)
        return facts
    return during


def _reliability_facts(node: str):
    """After the run killed in ``node`` (or the final one): the store's executions at that point,
    the killed execution and its outputs; after the Pusher kill, what pushed/serving/ held."""
    def then(result: RunResult) -> dict:
        from tests.test_run_reliability import OUTPUTS, Store

        store = Store(result.config, result.output_root)
        facts: dict = {"after": store.all_execution_ids(), "output": result.stdout + result.stderr}
        if node == "Pusher":
            serving = result.output_root / RELIABILITY / "pushed" / "serving"
            facts["pushed"] = sorted(p.name for p in serving.iterdir())
        if node != "final":
            facts["killed"] = store.executions(node)[-1]
            facts["killed_outputs"] = store.artifacts(facts["killed"].id, *OUTPUTS)
        return facts
    return then


def _pusher_fault(ws: Workspace) -> Path:
    ws.env["PIPELINE_FAULT_KILL_AT"] = "pusher:after_copy"
    return reliability_config(ws)


def _plain(ws: Workspace) -> Path:
    ws.env.pop("PIPELINE_FAULT_KILL_AT", None)
    return reliability_config(ws)


# --------------------------------------------------------------------- spans and the drift gate --
SPAN_FEATURES = [
    {"name": "fare", "type": "float", "steps": [{"impute": {"strategy": "mean"}}, "z_score"]},
    {"name": "trip_miles", "type": "float", "steps": ["log1p", "z_score"]},
    {"name": "payment_type", "type": "string", "steps": [{"vocabulary": {"top_k": 10}}]},
    {"name": "trip_start_hour", "type": "int", "steps": [{"categorical_identity": {"num_buckets": 24}}]},
]


def _spans_config(ws: Workspace, span: str) -> Path:
    from pipeline.datasets import write_monthly_spans

    every = ws.folder / "all"
    if not every.exists():
        write_monthly_spans(TAXI_CSV, every, "trip_start_timestamp")
    data = ws.folder / "data"
    data.mkdir(exist_ok=True)
    if span == "span-201407":  # the next month arrives with fares tripled and payment types swapped
        moved = data / span
        moved.mkdir()
        with (every / "span-201406" / "data.csv").open(newline="") as src, \
                (moved / "data.csv").open("w", newline="") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
            writer.writeheader()
            swap = {"Cash": "Credit Card", "Credit Card": "Cash"}
            for row in reader:
                writer.writerow(dict(row, fare=str(float(row["fare"]) * 3),
                                     payment_type=swap.get(row["payment_type"], row["payment_type"])))
    else:
        shutil.copytree(every / span, data / span)
    return derived_config(
        ws.folder, data, name="spans", cleaning=None, feature_selection=None, features=SPAN_FEATURES,
        data={"csv_dir": str(data), "span_pattern": "span-{SPAN}/*.csv"},
        training={"train_steps": 40, "eval_steps": 5, "epochs": 2, "early_stopping_patience": 1},
        evaluation={"splits": ["eval"], "slices": ["payment_type"],
                    "thresholds": [{"metric": "auc", "lower_bound": 0.5}]},
        drift={"categorical_linf": 0.25, "numeric_js": 0.25, "numeric_histogram": "quantiles",
               "skip": ["trip_start_month", "trip_start_timestamp"]},
        deployment=None)


def _spans_gate_facts(result: RunResult) -> dict:
    from pipeline.summary import latest_execution, open_store, output_artifacts

    cfg = result.cfg
    store = open_store(cfg)
    gate = latest_execution(store, cfg.name, "DriftSkewGate")
    (report,) = [a for a in output_artifacts(store, gate.id) if Path(a.uri, "report.json").exists()]
    comparisons = json.loads(Path(report.uri, "report.json").read_text())["comparisons"]
    transform = store.get_context_by_type_and_name("node", f"{cfg.name}.Transform")
    return {"gate_state": gate.last_known_state, "compared": {n for n, c in comparisons.items() if c["compared"]},
            "transforms": len(store.get_executions_by_context(transform.id))}


# ------------------------------------------------------- time-split leakage (two data sets) --
LEAK_EVAL_FROM, LEAK_TEST_FROM = "2016-01-01", "2016-07-01"


def leak_rows(changed: bool) -> tuple[list[str], list[dict]]:
    from components.temporal_csv_example_gen.component import epoch_seconds

    header, rows = sample_rows(2500, seed=21)
    if not changed:
        return header, rows
    lo, hi = epoch_seconds(LEAK_EVAL_FROM), epoch_seconds(LEAK_TEST_FROM)

    def alter(row):  # an eval row: change everything but its time
        return dict(row, fare=str(float(row["fare"]) * 10 + 50), trip_miles=str(float(row["trip_miles"]) + 100),
                    company="A Company Nobody Has Seen", payment_type="Cash", trip_start_hour="3")
    return header, [alter(r) if lo <= int(r["trip_start_timestamp"]) < hi else r for r in rows]


def _leak(changed: bool):
    def prepare(ws: Workspace) -> Path:
        header, rows = leak_rows(changed)
        data = ws.folder / "data"
        write_csv(data / "trips.csv", header, rows)
        return derived_config(ws.folder, data, name="leak", data={
            "csv_dir": str(data), "split_by": {"timestamp_column": "trip_start_timestamp",
                                               "eval_from": LEAK_EVAL_FROM, "test_from": LEAK_TEST_FROM}})
    return prepare


# -------------------------------------------------------------- runs that must stop, and MySQL --
def anomaly(ws: Workspace) -> Path:
    """Data outside the reviewed schema: the run stops at the AnomalyGate (BeamDagRunner with two
    multi-processing workers). tests/test_anomaly_stop.py."""
    header, rows = sample_rows(1500, seed=3)
    for i, row in enumerate(rows):
        if i % 50 == 0:
            # Outside the reviewed schema's domain, which only the schema knows: `validate` stops a
            # wrong type (text in a float feature) before the run, this the AnomalyGate must catch.
            row["payment_type"] = "Bitcoin"
    header = [h for h in header if h != "dropoff_census_tract"]  # a required column goes missing
    write_csv(ws.folder / "data" / "trips.csv", header, rows)
    return derived_config(ws.folder, ws.folder / "data", name="taxi_anomaly")


NOTIFY_BAD_SCHEMA = "feature { name: 'fare' type: NOT_A_TYPE }\n"


def notify_failure(ws: Workspace) -> Path:
    """A run whose ImportSchemaGen is given a schema file that is not a Schema proto, with a
    webhook receiver for its failure event. tests/test_notify.py."""
    from tests.test_notify import Receiver

    receiver = Receiver()
    ws.resources["receiver"] = receiver
    ws.closers.append(receiver.close)
    header, rows = sample_rows(200)
    data = write_csv(ws.folder / "data" / "data.csv", header, rows).parent
    (ws.folder / "schema.pbtxt").write_text(NOTIFY_BAD_SCHEMA)
    return derived_config(ws.folder, data, name="notify", training=TINY_TRAINING, features=LIGHT_FEATURES,
                          cleaning=None, feature_selection=None, schema=str(ws.folder / "schema.pbtxt"),
                          notifications={"webhook": {"url": receiver.url}})


MYSQL_PASSWORD_ENV = "TFX_PIPELINE_TEST_MLMD_PASSWORD"
MYSQL_ROWS = 1500
MYSQL_UNTIL = "FeatureSelector"  # Transform's minute adds nothing to what MLMD in MySQL must show


def mysql(ws: Workspace) -> Path:
    """The pipeline up to FeatureSelector with ML Metadata in a real MariaDB server (Debian's
    packages, data in the workspace), kept running for the tests that read it back.
    tests/test_mysql_metadata.py, tests/test_metadata_cli.py."""
    from tests.mysql_server import start_server

    server = start_server(ws.folder / "mariadb")
    ws.resources["server"] = server
    ws.closers.append(server.stop)
    ws.env[MYSQL_PASSWORD_ENV] = server.password
    header, rows = sample_rows(MYSQL_ROWS, seed=5)
    data = write_csv(ws.folder / "data" / "data.csv", header, rows).parent
    return derived_config(ws.folder, data, name="taxi_mysql", runner={"metadata": {"mysql": {
        "host": "127.0.0.1", "port": server.port, "database": "mlmd_taxi", "user": server.user,
        "password_env": MYSQL_PASSWORD_ENV}}})


# ------------------------------------------------------------------------ Airflow, served models --
def airflow_prepare(ws: Workspace) -> Path:
    """Through Trainer under `airflow dags test` (tests/test_airflow.py compiles the DAG)."""
    from tests.test_airflow import prepare

    return prepare(ws)


def airflow_command(ws: Workspace, config: Path) -> list[str]:
    from tests.test_airflow import dags_test_command

    return dags_test_command(ws)


def _newest_model(result: RunResult) -> dict:
    from tests.serving_fixtures import newest_outputs

    model, examples = newest_outputs(result.workspace.folder, result.cfg.name)
    return {"model": model, "examples": examples}


def _final_facts(result: RunResult) -> dict:
    """The reliability sequence's end, and the model it trained (the serving tests' first version)."""
    return {**_reliability_facts("final")(result), **_newest_model(result)}


def serving_canary(ws: Workspace) -> Path:
    """A second Trainer run on the reliability store with other training settings (only Trainer runs
    again): the serving tests' second model version."""
    folder = ws.folder / "canary"
    folder.mkdir(exist_ok=True)
    return _serving_config(folder, ws.folder / "data", RELIABILITY, **RELIABILITY_SECTIONS,
                           training=CANARY_TRAINING)


# ------------------------------------------------ benchmark scripts that run pipelines of their own --
# Each benchmark script in --quick mode (tiny data, the code path of `make bench`): ours and upstream
# pipelines side by side. tests/test_benchmarks.py checks their reports.
OWN_PIPELINE_BENCHES = ("bench_pipeline", "bench_preprocessing", "bench_scale", "bench_csv_example_gen")


def _bench_folder(ws: Workspace) -> Path:
    return ws.folder  # no config: the script builds its own pipelines


def _bench(script: str):
    def command(ws: Workspace, config: Path) -> list[str]:
        return [sys.executable, f"benchmarks/{script}.py", "--quick", "--workdir", str(ws.folder / "work"),
                "--out", str(ws.folder)]
    return command


# ---------------------------------------------------------------------------------- the list --
# Start order: the longest family first (minutes: each run's wall time in a whole `make test` here,
# both pytest processes sharing the 2 cores; docs/testing.md), so the short ones fill the gaps at the
# end. The tests are ordered by when their runs should finish (tests/run_registry.order_items).
RUNS: dict[str, Run] = {r.name: r for r in [
    Run("taxi_full", taxi_full, then=taxi_full_facts, minutes=6.6),
    Run("taxi_full_cached", same_config, after="taxi_full", minutes=0.2),
    Run("bench_pipeline", _bench_folder, command=_bench("bench_pipeline"), minutes=3.7),
    Run("diamonds", diamonds, minutes=3.5),
    Run("reliability_transform", reliability_config, during=_kill_while("Transform", refuse_second=True),
        then=_reliability_facts("Transform"), expect=-9, minutes=0.4),
    Run("reliability_infra", reliability_config, after="reliability_transform",
        during=_kill_while("InfraValidator"), then=_reliability_facts("InfraValidator"), expect=-9, minutes=1.1),
    Run("reliability_pusher", _pusher_fault, after="reliability_infra", then=_reliability_facts("Pusher"),
        expect=-9, minutes=0.5),
    Run("reliability_tflite", _plain, after="reliability_pusher", during=_kill_while("TFLiteConverter"),
        then=_reliability_facts("TFLiteConverter"), expect=-9, minutes=0.2),
    Run("reliability_final", reliability_config, after="reliability_tflite", then=_final_facts, minutes=0.7),
    Run("serving_canary", serving_canary, args=("--until", "Trainer"), after="reliability_final",
        then=_newest_model, minutes=0.4),
    Run("chile", chile, minutes=3.2),
    Run("tiny", tiny, then=tiny_first_facts, minutes=2.1),
    Run("tiny_second", tiny_second, after="tiny", then=tiny_second_facts, minutes=1.1),
    Run("bench_preprocessing", _bench_folder, command=_bench("bench_preprocessing"), minutes=2.8),
    Run("spam", spam, minutes=2.4),
    Run("digits", digits, minutes=2.1),
    Run("spans_first", lambda ws: _spans_config(ws, "span-201405"), args=("--until", "Evaluator"), minutes=1.2),
    Run("spans_second", lambda ws: _spans_config(ws, "span-201406"), args=("--until", "DriftSkewGate"),
        after="spans_first", then=_spans_gate_facts, minutes=0.3),
    Run("spans_drifted", lambda ws: _spans_config(ws, "span-201407"), after="spans_second", expect=1, minutes=0.3),
    Run("airflow", airflow_prepare, command=airflow_command, minutes=1.5),
    Run("leak_changed", _leak(True), args=("--until", "Transform"), minutes=1.2),
    Run("leak_original", _leak(False), args=("--until", "Transform"), minutes=1.2),
    Run("anomaly", anomaly, args=("--engine", "beam", "--beam-arg=--direct_running_mode=multi_processing",
                                  "--beam-arg=--direct_num_workers=2"), expect=1, minutes=0.8),
    Run("mysql", mysql, args=("--until", MYSQL_UNTIL), minutes=0.5),
    Run("bench_scale", _bench_folder, command=_bench("bench_scale"), minutes=0.5),
    Run("notify_failure", notify_failure, expect=1, minutes=0.3),
    Run("bench_csv_example_gen", _bench_folder, command=_bench("bench_csv_example_gen"), minutes=0.3),
]}

