"""Child processes the project starts (model servers, a test database)."""

from __future__ import annotations

import subprocess


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
