"""Shared fixtures: real taxi rows and pipeline configs derived from the shipped one."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TAXI_CONFIG = ROOT / "pipeline" / "configs" / "taxi" / "pipeline.yaml"
TAXI_CSV = ROOT / "data" / "taxi" / "data.csv"


# -------------------------------------------------- skips that must fail under CI --
# Tests skip when a system package is missing (mariadb-server, chromium: `make system-deps`). On a
# developer machine that is a friendly note; on CI it would hide that those tests never ran, so
# under CI=true (what CI services set) such a skip is reported as a failure.
SYSTEM_DEPENDENCY_WORDS = ("chromium", "mariadb", "mysql")


def on_ci(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_hides_missing_system_dependency(reason: str) -> bool:
    return any(word in reason.lower() for word in SYSTEM_DEPENDENCY_WORDS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not on_ci():
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if skip_hides_missing_system_dependency(reason):
        report.outcome = "failed"
        report.longrepr = (f"CI=true: a system dependency is missing, so this test would only be skipped: {reason}\n"
                           "Install it (`make system-deps` as root) or run without CI=true to skip.")


def read_taxi_rows() -> tuple[list[str], list[dict[str, str]]]:
    with TAXI_CSV.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def sample_rows(n: int, seed: int = 7) -> tuple[list[str], list[dict[str, str]]]:
    header, rows = read_taxi_rows()
    return header, random.Random(seed).sample(rows, n)


def derived_config(tmp: Path, csv_dir: Path, **overrides) -> Path:
    """The shipped taxi config (pipeline.derive: absolute paths) with small budgets and ``overrides``
    merged in. Tuning, model variants and on-device deployment are left out unless ``overrides`` give
    them (see SMALL_TUNING, SMALL_OPTIMIZATION): most tests are about data, and they cost minutes."""
    from pipeline.derive import derive, merge

    cfg = derive(TAXI_CONFIG, drop=("tuning", "optimization", "deployment"), data={"csv_dir": str(csv_dir)})
    cfg["training"] = {"train_steps": 150, "eval_steps": 10, "epochs": 2, "early_stopping_patience": 1}
    merge(cfg, **overrides)
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def small_tuning() -> dict:
    """The shipped tuning section with a test-sized budget."""
    tuning = yaml.safe_load(TAXI_CONFIG.read_text())["tuning"]
    return {**tuning, "max_trials": 2, "epochs": 1, "steps_per_epoch": 40, "validation_steps": 5}


def small_optimization() -> dict:
    """The shipped optimization section with test-sized budgets."""
    opt = yaml.safe_load(TAXI_CONFIG.read_text())["optimization"]
    opt["pruning"]["fine_tune_steps"] = 160
    opt["quantization_aware"]["fine_tune_steps"] = 80
    opt["distillation"]["train_steps"] = 200
    return opt


def run_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """``python -m pipeline <args>`` called in this process (pipeline.cli.main), for commands a test
    repeats over many configs: each subprocess would load TensorFlow again (10-30 s on a busy
    machine). One subprocess call per command elsewhere checks the entry point itself."""
    import contextlib
    import io

    from pipeline import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["python", "-m", "pipeline", *args], code, out.getvalue(), err.getvalue())


E2E_SAMPLE_ROWS = 4000  # the rows of taxi_sample_dir (tests/test_mobile_deployment.py draws others)


@pytest.fixture(scope="session")
def taxi_sample_dir(tmp_path_factory) -> Path:
    header, rows = sample_rows(E2E_SAMPLE_ROWS)
    d = tmp_path_factory.mktemp("taxi_sample")
    write_csv(d / "data.csv", header, rows)
    return d


def small_deployment() -> dict:
    """The shipped deployment section with a test-sized validation set."""
    deployment = yaml.safe_load(TAXI_CONFIG.read_text())["deployment"]
    return {**deployment, "validation_examples": 300}


@pytest.fixture(scope="session")
def e2e_run(pipeline_runs):
    """(config, run) of the whole pipeline on 4,000 taxi rows with tuning, the three model variants and
    on-device deployment (tests/runs.py ``taxi_full``; a test reading it is marked runs("taxi_full"))."""
    run = pipeline_runs.wait("taxi_full")
    return run.cfg, run


def run_example_gen(tmp_path: Path, name: str, component) -> Path:
    """Runs one ExampleGen alone in a LocalDagRunner pipeline (sqlite MLMD); its examples folder."""
    from tfx import v1 as tfx

    p = tfx.dsl.Pipeline(
        pipeline_name=name, pipeline_root=str(tmp_path / name / "root"), components=[component],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / name / "m.sqlite")))
    tfx.orchestration.LocalDagRunner().run(p)
    (examples_dir,) = (tmp_path / name / "root" / component.id / "examples").iterdir()
    return examples_dir


def newest_version(folder: Path) -> Path:
    """The newest numbered subfolder (a pushed version or an artifact's execution id)."""
    return max((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def model_suffix(name: str) -> str:
    """"" for the trained model, "_<variant>" for a variant (component ids, pushed folders)."""
    return "" if name == "trained" else f"_{name}"
