"""Child processes the project starts (model servers, a test database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def start_server(flags: list[str], log: Path) -> subprocess.Popen:
    """``python -m pipeline serve`` with ``flags`` as a child of this process, its output in ``log``.

    It is given ``--parent_pid`` (this process): it shuts down by itself once this process is gone,
    however that ended (a SIGKILLed pipeline run never calls ``stop``). It stays in this process's
    group, so a signal to the group reaches it too."""
    command = [sys.executable, "-m", "pipeline", "serve", *flags, f"--parent_pid={os.getpid()}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def stop(process: subprocess.Popen | None, timeout: float = 30) -> None:
    """Terminate ``process``; kill it if it has not exited after ``timeout`` seconds. Always reaped."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
