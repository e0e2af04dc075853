"""Run a pipeline with the configured orchestrator, showing per-component progress.

Both runners log "Component X is running/finished" (LocalDagRunner) or
"node X is running/finished" (BeamDagRunner) through absl; a logging handler
turns those into progress lines. Full logs go to ``<output_dir>/logs/``.

TensorFlow's C++ logging, Beam workers and TFX's packaging of the module files (setuptools)
write straight to file descriptors 1 and 2, below Python's logging: ``console_to_log`` points
those descriptors at the run's log file and keeps a stream on the original terminal for the
progress lines, the summary and errors.

``run_lock`` makes a run the only one on its output folder: a second ``run`` of the same pipeline
on the same output root is refused before it touches MLMD or the pipeline root (docs/reliability.md).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from pipeline.config import ENGINES, PipelineConfig
from pipeline.config.orchestration import pin_local_runner

_EVENT = re.compile(r"^(?:Component|node) (\S+) is (running|finished)\.$")


@dataclass
class Progress(logging.Handler):
    total: int
    out: TextIO = sys.stdout
    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.INFO)

    def __hash__(self) -> int:  # logging keeps handlers in sets/dicts
        return id(self)

    @property
    def running(self) -> list[str]:
        return [n for n in self.started if n not in self.finished]

    def emit(self, record: logging.LogRecord) -> None:
        match = _EVENT.match(record.getMessage())
        if not match:
            return
        node, event = match.groups()
        now = time.monotonic()
        stamp = f"[{now - self.t0:7.1f}s]"
        if event == "running":
            self.started[node] = now
            print(f"{stamp} ({len(self.started)}/{self.total}) {node} started", file=self.out, flush=True)
        else:
            self.finished[node] = now - self.started.get(node, now)
            print(f"{stamp} ({len(self.finished)}/{self.total}) {node} finished in "
                  f"{self.finished[node]:.1f}s", file=self.out, flush=True)


class PipelineFailed(RuntimeError):
    def __init__(self, component: str | None, cause: BaseException, log_file: Path):
        self.component, self.cause, self.log_file = component, cause, log_file
        where = f"at {component}" if component else "before any component ran"
        super().__init__(f"pipeline failed {where}: {cause}\n(full log: {log_file})")


LOCK_NAME = ".run.lock"


class RunLocked(RuntimeError):
    """Another process holds the run lock of this pipeline's output folder."""

    def __init__(self, lock_file: Path, holder: dict):
        self.lock_file, self.holder = lock_file, holder
        if holder:
            who = (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}, "
                   f"log {holder.get('log_file')}")
        else:  # it has the lock and has not written its note yet
            who = "a run that is just starting"
        super().__init__(f"another run of this pipeline is using {lock_file.parent}: {who}. "
                         f"Wait for it to finish, or use another --output-root.")


def _read_note(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 65536, 0) or b"{}")
    except ValueError:  # half-written by a holder that is writing it right now
        return {}


@contextmanager
def run_lock(cfg: PipelineConfig, log_file: Path) -> Iterator[dict]:
    """Hold ``<output_dir>/.run.lock`` for the block, or raise RunLocked naming its holder at once.

    ``flock``: the kernel drops the lock when its holder exits or is killed (kill -9 leaves no stale
    lock to clean up). The file holds a JSON note of the holder (pid, host, start time, log file),
    emptied when the block ends. The lock guards the pipeline root, the pushed folders and a sqlite
    MLMD inside the output folder; a MySQL MLMD shared by several output roots is not covered."""
    path = cfg.output_dir / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)  # no O_TRUNC: the holder's note stays
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_note(fd)
            for _ in range(20):  # a holder between flock and its note: give it a moment
                if holder:
                    break
                time.sleep(0.05)
                holder = _read_note(fd)
            raise RunLocked(path, holder) from None
        note = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "log_file": str(log_file), "config": str(cfg.path)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode(), 0)
        try:
            yield note
        finally:
            os.ftruncate(fd, 0)  # no note of a finished run; the lock goes with the close below
    finally:
        os.close(fd)


def with_runner(cfg: PipelineConfig, engine: str | None = None,
                beam_args: list[str] | None = None) -> PipelineConfig:
    """The config with CLI overrides of the runner applied."""
    if engine is not None and engine not in ENGINES:
        raise ValueError(f"--engine must be one of {', '.join(ENGINES)}")
    runner = replace(cfg.runner, engine=engine or cfg.runner.engine,
                     beam_args=pin_local_runner(beam_args) if beam_args else cfg.runner.beam_args)
    return replace(cfg, runner=runner)


def new_log_file(cfg: PipelineConfig) -> Path:
    """A fresh log file path for one run: ``<output_dir>/logs/run-<timestamp>.log``."""
    return cfg.output_dir / "logs" / f"run-{datetime.now():%Y%m%d-%H%M%S}.log"


@dataclass
class Console:
    """The terminal as it was before ``console_to_log``: progress and summary to ``out``, errors to ``err``."""

    out: TextIO
    err: TextIO


@contextmanager
def console_to_log(log_file: Path) -> Iterator[Console]:
    """For the block, file descriptors 1 and 2 (C++ logs, child processes, print) append to
    ``log_file``; yields streams on the original stdout and stderr. Restored on exit, also when
    the block raises (then the console is told where the log is, and the traceback reaches it)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = Console(os.fdopen(os.dup(saved[0]), "w", buffering=1), os.fdopen(os.dup(saved[1]), "w", buffering=1))
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)  # append: Python's handler writes too
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
    finally:
        os.close(log_fd)
    try:
        yield console
    except BaseException:
        print(f"(full log: {log_file})", file=console.err, flush=True)
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in zip((1, 2), saved, strict=True):
            os.dup2(original, fd)
            os.close(original)
        console.out.close()
        console.err.close()


def _configure_logging(log_file: Path) -> list[logging.Handler]:
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.use_python_logging(quiet=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_file)
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    # Library chatter goes to the log file; the console shows progress and errors.
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            h.setLevel(logging.ERROR)
    root.addHandler(file_handler)
    return [file_handler]


def run(cfg: PipelineConfig, out: TextIO = sys.stdout, until: str | None = None,
        log_file: Path | None = None) -> Path:
    """Run the pipeline (up to ``until``); return the log file (``new_log_file`` unless given).
    Raises PipelineFailed naming the component."""
    import beam_local
    from pipeline.pipeline_def import create_pipeline

    beam_local.install()
    log_file = log_file or new_log_file(cfg)
    handlers = _configure_logging(log_file)
    pipeline = create_pipeline(cfg, until)
    progress = Progress(total=len(pipeline.components), out=out)
    logging.getLogger().addHandler(progress)
    print(f"Running pipeline '{cfg.name}' with the {cfg.runner.engine} runner "
          f"({' '.join(cfg.runner.beam_args)}); outputs in {cfg.output_dir}", file=out, flush=True)
    try:
        if cfg.runner.engine == "beam":
            from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

            BeamDagRunner().run(pipeline)  # its orchestrating job: beam_local's default runner
        else:
            from tfx.orchestration.local.local_dag_runner import LocalDagRunner

            LocalDagRunner().run(pipeline)
    except Exception as exc:
        logging.getLogger(__name__).exception("pipeline failed")
        running = progress.running
        raise PipelineFailed(running[-1] if running else None, exc, log_file) from exc
    finally:
        for h in (progress, *handlers):
            logging.getLogger().removeHandler(h)
            h.close()
    return log_file
