"""A model server ends with the process that started it, and promptly on SIGTERM (issue 25).

Fast: no pipeline run. The model is the tiny real SavedModel of tests/test_serving_hardening.py
(``s = "sleep:<ms>"`` makes a call take that long). The servers are real ``python -m pipeline
serve`` processes, started by ``serving.processes.start_server`` (what InfraValidator's
LocalProcessRunner calls) or by tests/serving_fixtures.ServerProcess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import psutil
import pytest

from tests.serving_fixtures import ServerProcess
from tests.test_serving_hardening import _build_model, _grpc_predict, _predict_request

ROOT = Path(__file__).resolve().parent.parent
# Seconds. Measured on 2 busy cores: the server was gone 0.08-0.14 s after its parent's SIGKILL
# (--parent_pid is checked every 0.2 s) and exited 2.1 s after SIGTERM with a call in flight (the
# 2 s gRPC grace), 0.07 s when idle. Its own bound is serving.server.SHUTDOWN_SECONDS (5 s).
WITHIN = 8.0

# A parent that starts the server as InfraValidator's LocalProcessRunner.Start does (same call,
# same flags), from a thread that has ended by then (TFX/Beam may run an executor in a thread).
PARENT = """
import sys, threading, time
from pathlib import Path
from serving import processes

base, port, log = sys.argv[1:]
def start():
    processes.start_server([f"--port={port}", "--model_name=m", f"--model_base_path={base}",
                            "--file_system_poll_wait_seconds=1"], Path(log))
thread = threading.Thread(target=start)
thread.start()
thread.join()
while "Running gRPC ModelServer at" not in Path(log).read_text(errors="replace"):
    time.sleep(0.1)
print("serving", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lifetime")
    _build_model(root / "m" / "1")
    return root


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_server_ends_when_the_process_that_started_it_is_killed_alone(root):
    from serving.client import free_port

    log = root / "orphan.log"
    # A session of its own only so that the finally below can sweep up whatever is left.
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(root / "m"), str(free_port()), str(log)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = parent.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "serving", f"parent exited {parent.poll()}:\n{log.read_text(errors='replace')[-3000:]}"
        (server,) = psutil.Process(parent.pid).children()
        assert server.cmdline()[1:4] == ["-m", "pipeline", "serve"], server.cmdline()
        time.sleep(1.0)
        assert not _gone(server), "the server ended with the thread that started it, not with its process"
        os.kill(parent.pid, signal.SIGKILL)  # the parent alone, not its process group
        parent.wait()
        killed = time.monotonic()
        while not _gone(server) and time.monotonic() - killed < WITHIN:
            time.sleep(0.05)
        assert _gone(server), (f"model server {server.pid} still running {WITHIN:.0f} s after its parent died:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        assert "Parent process" in log.read_text(errors="replace")
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        parent.wait()


def test_sigterm_stops_the_server_within_seconds_with_a_model_call_in_flight(root):
    server = ServerProcess([f"--model_base_path={root / 'm'}", "--model_name=m"], root / "sigterm.log")
    try:
        call: list = []
        caller = threading.Thread(target=lambda: call.append(
            _grpc_predict(server, _predict_request([1.0], ["sleep:60000"]), timeout=120)))
        caller.start()
        time.sleep(1.0)
        assert caller.is_alive(), f"the 60 s call returned at once: {call}"
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(timeout=WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"model server still running {WITHIN:.0f} s after SIGTERM:\n"
                                 f"{server.log.read_text(errors='replace')[-3000:]}") from None
        seconds = time.monotonic() - started
        assert code == 0, server.log.read_text(errors="replace")[-3000:]
        caller.join(30)
        assert call and call[0][0] != grpc.StatusCode.OK, call  # ended with the server, not answered
        assert "Model server stopped" in server.log.read_text(errors="replace"), f"after {seconds:.1f} s"
    finally:
        server.stop()


def test_server_whose_parent_is_already_gone_exits_before_loading(root):
    """--parent_pid names a process that is not the parent (it died before the server could look):
    the first check sees it, and SIGTERM ends the server before any model loads."""
    not_the_parent = subprocess.Popen([sys.executable, "-c", ""])
    not_the_parent.wait()
    proc = subprocess.run([sys.executable, "-m", "pipeline", "serve", "--port=0", "--model_name=m",
                           f"--model_base_path={root / 'm'}", f"--parent_pid={not_the_parent.pid}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGTERM, proc.stderr[-3000:]
    assert f"Parent process {not_the_parent.pid} is gone" in proc.stderr
    assert "Successfully loaded servable" not in proc.stderr
