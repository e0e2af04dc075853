"""The machinery behind tests/runs.py: every pipeline run of a test session started once, early, in
the background, at most ``slots`` at a time, and handed to the tests that declared they need it.

- A test names the runs it reads with ``@pytest.mark.runs("name", ...)`` (or a module's
  ``pytestmark``) and gets each with the ``pipeline_runs`` fixture: ``pipeline_runs.wait("name")``.
  Only runs a *selected* test names are started, so ``-m "not e2e"`` or ``-k`` starts none it
  does not need.
- A run declared ``after=`` another continues that run's output root (its ML Metadata and cache):
  a family of such runs executes in order in one thread, and ``wait`` returns when the whole family
  has finished, so no test reads a store that a later run of the family is still writing. What a
  test needs from between two runs is taken by the earlier run's ``then`` hook (``facts``).
- Runs start in declaration order (tests/runs.py lists the longest first) and the test items are
  ordered by when their runs are expected to finish (``order_items``, from each run's measured
  ``minutes``), so the tests whose runs finish first run first.
- Each run is its own process group at nice 10: the tests in the foreground keep priority, and a
  run killed at the end of the session takes its children (a model server) with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Workspace:
    """What a run's hooks get: its family's folder (shared by the runs of one family), the output
    root, environment added to the run's process, objects the tests read (``resources``: a server,
    a receiver) and what to close when the session ends."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def output_root(self) -> Path:
        return self.folder / "outputs"


@dataclass(frozen=True)
class Run:
    """One ``python -m pipeline run`` (or ``command``) of the session.

    prepare: writes the run's data and config into the workspace, just before it starts; the config path.
    args: extra CLI arguments (``--until Trainer``). expect: the exit code the run must end with.
    after: the run this one continues (same workspace and output root, after it finished).
    during: called while the run executes, with its process (kill it, probe its lock); facts.
    then: called once it exited, before the next run of its family; facts.
    command: the argv instead of ``python -m pipeline run --config C --output-root O <args>``.
    minutes: what it takes on this machine alone, measured (the docs/setup.md table).
    """

    name: str
    prepare: Callable[[Workspace], Path]
    args: tuple[str, ...] = ()
    expect: int = 0
    after: str | None = None
    during: Callable[[subprocess.Popen, Workspace], dict] | None = None
    then: Callable[[RunResult], dict] | None = None
    command: Callable[[Workspace, Path], list[str]] | None = None
    minutes: float = 1.0


@dataclass
class RunResult:
    name: str
    config: Path
    workspace: Workspace
    returncode: int | None = None
    seconds: float = 0.0
    waited: float = 0.0  # how long the tests waited for it (0: it was ready)
    facts: dict = field(default_factory=dict)
    error: str = ""

    @property
    def output_root(self) -> Path:
        return self.workspace.output_root

    @property
    def stdout(self) -> str:
        return _read(self.workspace.folder / f"{self.name}.stdout")

    @property
    def stderr(self) -> str:
        return _read(self.workspace.folder / f"{self.name}.stderr")

    @property
    def cfg(self):
        from pipeline.config import load_config

        return load_config(self.config, output_root=self.output_root)

    def tail(self, n: int = 3000) -> str:
        return f"{self.error}\n--- stdout\n{self.stdout[-n:]}\n--- stderr\n{self.stderr[-n:]}"


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _root(runs: Mapping[str, Run], name: str) -> str:
    while runs[name].after:
        name = runs[name].after
    return name


def family(runs: Mapping[str, Run], name: str) -> list[str]:
    """The root of ``name``'s family and every run continuing it, in declaration order."""
    root = _root(runs, name)
    return [n for n in runs if _root(runs, n) == root]


def needed_runs(items: Iterable, runs: Mapping[str, Run]) -> list[str]:
    """The runs the selected ``items`` name in their ``runs`` marks, with their families, in
    declaration order. An unknown name is an error naming the test."""
    names: set[str] = set()
    for item in items:
        for mark in item.iter_markers("runs"):
            for name in mark.args:
                if name not in runs:
                    raise ValueError(f"{item.nodeid}: pytest.mark.runs names {name!r}, which tests/runs.py "
                                     f"does not declare (declared: {', '.join(runs)})")
                names.update(family(runs, name))
    return [n for n in runs if n in names]


def expected_finish(runs: Mapping[str, Run], slots: int) -> dict[str, float]:
    """{run: the minute its family is expected to finish}, the families started in declaration
    order on ``slots`` slots, each taking the sum of its runs' ``minutes``."""
    free = [0.0] * max(1, slots)
    finish: dict[str, float] = {}
    for name, run in runs.items():
        if run.after:
            continue
        members = family(runs, name)
        start = min(free)
        free[free.index(start)] = end = start + sum(runs[m].minutes for m in members)
        finish.update({m: end for m in members})
    return finish


def order_items(items: list, runs: Mapping[str, Run], slots: int = 2) -> None:
    """Sorts ``items`` in place, a module's tests kept together and in their order: modules that
    need no run first, then by when the last run their tests need is expected to finish."""
    finish = expected_finish(runs, slots)

    def last_run(item) -> float:
        names = [n for mark in item.iter_markers("runs") for n in mark.args if n in runs]
        return max((finish[n] for n in names), default=-1.0)

    by_module: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for i, item in enumerate(items):
        key = item.nodeid.split("::")[0]
        by_module[key] = max(by_module.get(key, -1.0), last_run(item))
        first_seen.setdefault(key, i)
    items.sort(key=lambda it: (by_module[it.nodeid.split("::")[0]], first_seen[it.nodeid.split("::")[0]]))


def execute(run: Run, ws: Workspace, procs: dict | None = None,
            note: Callable[[str], None] = lambda text: None) -> RunResult:
    """Runs ``run`` in ``ws`` to its end (its hooks included); a failure is in ``error``, never raised.
    ``procs`` holds the process while it runs (so the session can end it)."""
    procs = {} if procs is None else procs
    result = RunResult(run.name, Path(), ws)
    ws.folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        result.config = run.prepare(ws)
        argv = (run.command(ws, result.config) if run.command else
                [sys.executable, "-m", "pipeline", "run", "--config", str(result.config),
                 "--output-root", str(ws.output_root), *run.args])
        note(f"start {run.name}: {' '.join(argv[1:])}")
        with (ws.folder / f"{run.name}.stdout").open("w") as out, \
                (ws.folder / f"{run.name}.stderr").open("w") as err:
            # nice(1) execs the command (same pid). Not preexec_fn=os.nice: a Python callable run in
            # the forked child of this many-threaded process can crash it (seen: SIGSEGV in the child).
            proc = subprocess.Popen(["nice", "-n", "10", *argv], cwd=ROOT, stdout=out, stderr=err, text=True,
                                    env={**os.environ, **ws.env}, start_new_session=True)
        procs[run.name] = proc
        try:
            if run.during:
                result.facts.update(run.during(proc, ws) or {})
            result.returncode = proc.wait(timeout=3600)
        finally:
            procs.pop(run.name, None)
            if proc.poll() is None:  # a hook failed: the run must not outlive it
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        result.seconds = time.monotonic() - started
        if result.returncode != run.expect:
            result.error = f"run {run.name!r} exited {result.returncode}, expected {run.expect}"
        elif run.then:
            result.facts.update(run.then(result) or {})
    except Exception as e:  # a hook's failure is the run's: the tests that read it say so
        import traceback

        result.error = f"run {run.name!r}: {type(e).__name__}: {e}\n{traceback.format_exc()}"
        result.seconds = time.monotonic() - started
    note(f"end   {run.name}: {result.seconds:.0f} s, exit {result.returncode}"
         + (f" ({result.error.splitlines()[0]})" if result.error else ""))
    return result


class Scheduler:
    """Runs the needed families in background threads, ``slots`` runs at a time."""

    def __init__(self, runs: Mapping[str, Run], needed: list[str], base: Path, slots: int, log: Path):
        self.runs, self.needed, self.base, self.log = runs, needed, base, log
        self.results: dict[str, RunResult] = {}
        self.done: dict[str, threading.Event] = {n: threading.Event() for n in needed}
        self._slots = threading.BoundedSemaphore(max(1, slots))
        self._procs: dict[str, subprocess.Popen] = {}
        self._workspaces: list[Workspace] = []
        self._lock = threading.Lock()
        self._closing = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        roots = [n for n in self.needed if not self.runs[n].after]
        for root in roots:  # declaration order: the semaphore hands slots out first come, first served
            t = threading.Thread(target=self._family, args=(root,), name=f"run-{root}", daemon=True)
            self._threads.append(t)
        threading.Thread(target=self._start_in_order, daemon=True).start()

    def _start_in_order(self) -> None:
        for t in self._threads:
            self._slots.acquire()  # released by the family's thread once its last run ended
            if self._closing:
                self._slots.release()
                return
            t.start()

    def _note(self, text: str) -> None:
        with self._lock, self.log.open("a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    def _family(self, root: str) -> None:
        ws = Workspace(self.base / root)
        ws.folder.mkdir(parents=True, exist_ok=True)
        self._workspaces.append(ws)
        members = [n for n in family(self.runs, root) if n in self.done]
        failed = ""
        try:
            for name in members:
                if failed:
                    self.results[name] = RunResult(name, Path(), ws, error=f"not run: {failed}")
                    continue
                result = self._one(self.runs[name], ws)
                self.results[name] = result
                if result.error:
                    failed = f"{name} before it failed: {result.error}"
        finally:
            self._slots.release()
            for name in members:
                self.done[name].set()

    def _one(self, run: Run, ws: Workspace) -> RunResult:
        if self._closing:
            return RunResult(run.name, Path(), ws, error="the session ended first")
        return execute(run, ws, self._procs, self._note)

    def wait(self, name: str, timeout: float = 5400) -> RunResult:
        if name not in self.done:
            raise AssertionError(f"run {name!r} was not started: name it in the test's pytest.mark.runs "
                                 "(tests/runs.py), so the session starts it early")
        started = time.monotonic()
        for member in family(self.runs, name):
            if member in self.done and not self.done[member].wait(timeout):
                raise AssertionError(f"run {member!r} did not finish within {timeout:.0f} s")
        result = self.results[name]
        result.waited = max(result.waited, time.monotonic() - started)
        if result.error:
            raise AssertionError(result.tail())
        return result

    def close(self) -> None:
        """Ends what still runs (its whole process group) and every workspace's resources."""
        self._closing = True
        for proc in list(self._procs.values()):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for ws in self._workspaces:
            for close in reversed(ws.closers):
                try:
                    close()
                except Exception as e:  # one failing closer must not keep the others from running
                    self._note(f"closing {ws.folder.name}: {e}")

    def summary(self) -> list[str]:
        lines = []
        for name in self.needed:
            r = self.results.get(name)
            if r is None:
                lines.append(f"  {name:<28} not finished")
                continue
            state = "ok" if not r.error else "FAILED"
            lines.append(f"  {name:<28} {r.seconds:7.0f} s  exit {r.returncode!s:<4} {state:<6} "
                         f"tests waited {r.waited:5.0f} s")
        return lines


# ------------------------------------------------------------- the session's pipeline runs --
# Declared in tests/runs.py, run by tests/py: started when the session starts, for the
# selected tests that name them (pytest.mark.runs), read through the ``pipeline_runs`` fixture.
_SCHEDULER_KEY = pytest.StashKey()
RUNS_LOG = "test-runs.log"  # under outputs/: each run's start, end, seconds and exit code


SESSION_ENV = "PIPELINE_TEST_SESSION"  # inherited by every process the session starts, to find them


def pytest_configure(config):
    config.addinivalue_line("markers", "runs(*names): the pipeline runs of tests/runs.py this test reads")
    os.environ[SESSION_ENV] = str(os.getpid())


def leftover_processes(marker: str, exclude: int) -> dict[int, str]:
    """{pid: command line} of live processes carrying ``SESSION_ENV=marker`` in their environment."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == exclude:
            continue
        try:
            if f"{SESSION_ENV}={marker}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":  # exited, not yet reaped
                continue
            found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited meanwhile, or not ours to read
            continue
    return found


def pytest_collection_modifyitems(session, config, items):
    from tests.runs import RUNS

    for item in items:
        if item.get_closest_marker("runs") and not item.get_closest_marker("e2e"):
            raise pytest.UsageError(f"{item.nodeid} reads a pipeline run (pytest.mark.runs) but is not marked e2e: "
                                    "`make test-fast` would wait for the run")
    order_items(items, RUNS, _slots())


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """Starts the runs the selected tests name, before the first test (the slots: one per core)."""
    from tests.runs import RUNS

    needed = needed_runs(session.items, RUNS)
    if not needed or session.config.option.collectonly:
        return
    base = Path(session.config._tmp_path_factory.mktemp("runs", numbered=True))
    log = ROOT / "outputs" / RUNS_LOG
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    scheduler = Scheduler(RUNS, needed, base, _slots(), log)
    session.config.stash[_SCHEDULER_KEY] = scheduler
    scheduler.start()


def _slots() -> int:
    """Runs at a time: one per core (TEST_RUN_SLOTS overrides)."""
    return int(os.environ.get("TEST_RUN_SLOTS", os.cpu_count() or 2))


@pytest.fixture(scope="session")
def pipeline_runs(request):
    """The session's runs (tests/runs.py): ``pipeline_runs.wait(name)`` once it (and its family) finished."""
    scheduler = request.config.stash.get(_SCHEDULER_KEY, None)
    if scheduler is None:
        pytest.fail("no pipeline run was started: name the runs this test reads in pytest.mark.runs")
    return scheduler


_LEFTOVER_KEY = pytest.StashKey()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Ends the runs still going, then fails the session if any process it started outlived it (a
    model server left behind by a killed run holds hundreds of MB and a port): each is named, then killed."""
    scheduler = session.config.stash.get(_SCHEDULER_KEY, None)
    if scheduler is not None:
        scheduler.close()
    marker, deadline = str(os.getpid()), time.monotonic() + 15  # a server notices its parent's end within seconds
    while (left := leftover_processes(marker, os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        session.config.stash[_LEFTOVER_KEY] = left
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_session_times: dict[str, float] = {}


def pytest_runtest_logreport(report):
    module = report.nodeid.split("::")[0]
    _session_times[module] = _session_times.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Each module's wall time and the session's pipeline runs, so growth shows in every run (the
    15 slowest tests: ``--durations=15`` in pyproject.toml)."""
    tr = terminalreporter
    left = config.stash.get(_LEFTOVER_KEY, None)
    if left:
        tr.section("processes left running by this session (killed now; the session fails)", red=True)
        for pid, cmd in left.items():
            tr.write_line(f"  pid {pid}: {cmd[:300]}")
    if _session_times:
        tr.section("wall time per test module (setup + call + teardown)")
        for module, seconds in sorted(_session_times.items(), key=lambda kv: -kv[1]):
            tr.write_line(f"  {seconds:8.1f} s  {module}")
    scheduler = config.stash.get(_SCHEDULER_KEY, None)
    if scheduler is not None:
        from tests.runs import RUN_BUDGET

        tr.section(f"pipeline runs (tests/runs.py): {len(scheduler.needed)} distinct runs this session, "
                   f"budget {RUN_BUDGET}; log outputs/{RUNS_LOG}")
        for line in scheduler.summary():
            tr.write_line(line)
