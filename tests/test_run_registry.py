"""The guard of the suite's shape (issue 25): every pipeline run of a test session is declared once in
tests/runs.py and started by tests/run_registry.py; no test module starts one of its own, and the
registry stays within ``RUN_BUDGET``. Fast: reads source files, starts nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests import run_registry
from tests.conftest import ROOT
from tests.run_registry import Run, family, needed_runs, order_items
from tests.runs import RUN_BUDGET, RUNS

# The only files that may start a pipeline run: the declarations and the machinery that runs them.
REGISTRY_FILES = {ROOT / "tests" / "runs.py", ROOT / "tests" / "run_registry.py"}
RUNNER_CLASSES = {"LocalDagRunner", "BeamDagRunner", "KubeflowV2DagRunner", "AirflowDagRunner"}


def _strings(node: ast.AST) -> list[str]:
    """The string constants of a call argument, lists and tuples flattened, in order."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.List | ast.Tuple):
        return [s for element in node.elts for s in _strings(element)]
    if isinstance(node, ast.Starred):
        return _strings(node.value)
    return []


def _name(func: ast.AST) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def run_starts(source: str) -> list[tuple[int, str]]:
    """(line, what) for every place ``source`` starts a pipeline run: ``python -m pipeline run`` as a
    command list, the CLI helper called with "run", ``airflow dags test``, or a TFX runner's ``run``
    given the product's pipeline (``create_pipeline``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        words = [s for arg in node.args for s in _strings(arg)]
        text = " ".join(words)
        name = _name(node.func)
        if re.search(r"(^| )pipeline run( |$)", text) or re.search(r"(^| )dags test( |$)", text):
            found.append((node.lineno, text))
        elif name in ("run_cli", "_cli") and words[:1] == ["run"]:
            found.append((node.lineno, f"{name}({text})"))
        elif name == "run" and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call) \
                and _name(node.func.value.func) in RUNNER_CLASSES \
                and any(isinstance(n, ast.Call) and _name(n.func) == "create_pipeline"
                        for arg in node.args for n in ast.walk(arg)):
            found.append((node.lineno, f"{_name(node.func.value.func)}().run(create_pipeline(...))"))
    return found


def test_modules_outside_the_registry_start_no_pipeline_run():
    # Checks every test module and test helper of the checkout: a run started anywhere but
    # tests/runs.py is named with its file and line.
    paths = {*ROOT.glob("tests/**/*.py"), *ROOT.glob("components/**/*_test.py"), *ROOT.glob("csvio/**/*test*.py"),
             *ROOT.glob("model/**/*test*.py"), ROOT / "conftest.py"} - REGISTRY_FILES
    offenders = [f"{p.relative_to(ROOT)}:{line}: {what}" for p in sorted(paths) for line, what in
                 run_starts(p.read_text())]
    assert not offenders, ("these start a pipeline run of their own; declare it in tests/runs.py and read it "
                           "with pytest.mark.runs + pipeline_runs.wait():\n" + "\n".join(offenders))


@pytest.mark.parametrize("source", [
    'subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(c)])',
    'subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--config", str(c)], cwd=ROOT)',
    'proc = run_cli("run", "--config", str(config), "--output-root", str(out), "--until", "Trainer")',
    'tfx.orchestration.LocalDagRunner().run(create_pipeline(cfg))',
    'subprocess.run([airflow_bin, "dags", "test", DAG_ID, DATE])',
])
def test_the_guard_finds_a_run_started_by_a_module(source):
    # Checks the detector on each way a module could start a run (so the scan above is not vacuous),
    # and that what modules legitimately do (other commands, a component pipeline) is not flagged.
    assert run_starts(source), source
    assert not run_starts('run_cli("compile", "--config", str(c)); run_cli("validate", "--config", str(c))')
    assert not run_starts("tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(components=[gen]))")


def test_registry_is_within_its_budget_and_every_run_is_read():
    # Checks the budget (raising it is an edit of tests/runs.py that gives its reason), that each run
    # a later one continues is declared before it, and that every declared run is named by a test.
    assert len(RUNS) <= RUN_BUDGET, f"{len(RUNS)} runs declared, budget {RUN_BUDGET} (tests/runs.py)"
    names = list(RUNS)
    for name, run in RUNS.items():
        assert run.after is None or names.index(run.after) < names.index(name), name
    sources = "\n".join(p.read_text() for p in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("components/**/*_test.py")])
    named = set(re.findall(r"""(?:runs\(|wait\()\s*((?:"[a-z_]+",?\s*)+)""", sources))
    named = {n for group in named for n in re.findall(r'"([a-z_]+)"', group)}
    unread = [n for n in RUNS if n not in named and not any(RUNS[m].after == n for m in RUNS)]
    assert not unread, f"declared in tests/runs.py but read by no test: {unread}"


class _Item:
    """What the registry reads of a pytest item: its node id and its runs marks."""

    def __init__(self, nodeid: str, *runs: str):
        self.nodeid, self._runs = nodeid, runs

    def iter_markers(self, name: str):
        return [pytest.mark.runs(*self._runs).mark] if name == "runs" and self._runs else []


def _runs(*specs: tuple) -> dict[str, Run]:
    """Runs from (name, the run it continues, minutes)."""
    return {n: Run(n, prepare=lambda ws: Path(), after=a, minutes=(m or [1.0])[0]) for n, a, *m in specs}


def test_only_the_selected_tests_runs_start_with_their_families():
    # Checks: a run nobody selected is not started (the unit half of `make test` starts none); a test
    # naming the second run of a family starts the first too; an unknown name is refused by name.
    runs = _runs(("a", None), ("b", None), ("b2", "b"), ("c", None))
    assert needed_runs([_Item("t.py::x")], runs) == []
    assert needed_runs([_Item("t.py::x", "b2"), _Item("u.py::y", "c")], runs) == ["b", "b2", "c"]
    assert family(runs, "b") == family(runs, "b2") == ["b", "b2"]
    with pytest.raises(ValueError, match=r"t\.py::x.*'nope'"):
        needed_runs([_Item("t.py::x", "nope")], runs)


def test_tests_are_ordered_by_when_their_runs_finish_and_modules_stay_together():
    # Checks: modules needing no run first; then by the expected finish of their runs' families (the
    # long run is declared, and starts, first, but the short family ends sooner on the other slot);
    # a module's tests stay together in their order. On one slot the long run ends first.
    runs = _runs(("long", None, 10.0), ("short", None, 1.0), ("short2", "short", 1.0))
    items = [_Item("m3.py::a", "long"), _Item("m1.py::a", "short2"), _Item("m1.py::b"), _Item("m2.py::a"),
             _Item("m3.py::b")]
    order_items(items, runs, slots=2)
    assert [i.nodeid for i in items] == ["m2.py::a", "m1.py::a", "m1.py::b", "m3.py::a", "m3.py::b"]
    order_items(items, runs, slots=1)
    assert [i.nodeid for i in items] == ["m2.py::a", "m3.py::a", "m3.py::b", "m1.py::a", "m1.py::b"]


def test_a_run_that_exits_otherwise_than_declared_fails_its_readers(tmp_path):
    # Checks the machinery on a real process (a command, not a pipeline): the exit code is compared
    # with the declared one and a reader gets the run's output in the error; the log names the run.
    ok = Run("ok", prepare=lambda ws: ws.folder / "c", command=lambda ws, c: ["sh", "-c", "echo fine"])
    bad = Run("bad", prepare=lambda ws: ws.folder / "c", command=lambda ws, c: ["sh", "-c", "echo broke >&2; exit 3"])
    runs = {"ok": ok, "bad": bad}
    scheduler = run_registry.Scheduler(runs, ["ok", "bad"], tmp_path, 2, tmp_path / "log")
    scheduler.start()
    assert scheduler.wait("ok", timeout=60).stdout == "fine\n"
    with pytest.raises(AssertionError, match=r"(?s)exited 3, expected 0.*broke"):
        scheduler.wait("bad", timeout=60)
    scheduler.close()
    assert "end   bad" in (tmp_path / "log").read_text()
    with pytest.raises(AssertionError, match="not started"):
        scheduler.wait("other")


def test_a_process_the_session_started_and_left_running_is_found(tmp_path):
    # Checks the end-of-session check (pytest_sessionfinish fails the session on what it finds): a
    # process started with the session's marker in its environment is found with its command line,
    # a process without it is not, and a process that exited is not.
    import os
    import subprocess
    import sys

    marker = f"test-{os.getpid()}"
    code = "import time; time.sleep(60)"
    ours = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, run_registry.SESSION_ENV: marker})
    other = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, run_registry.SESSION_ENV: "other"})
    try:
        left = run_registry.leftover_processes(marker, os.getpid())
        assert list(left) == [ours.pid] and "time.sleep(60)" in left[ours.pid], left
    finally:
        for p in (ours, other):
            p.kill()
            p.wait()
    assert run_registry.leftover_processes(marker, os.getpid()) == {}
