"""``python -m pipeline run``'s quiet console (pipeline.runners.console_to_log): what writes to file
descriptors 1 and 2 below Python (TensorFlow's C++ logging, child processes such as TFX's wheel
builds) goes to the run's log file, and only progress, summary and errors reach the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CHILD = r"""
import ctypes, os, subprocess, sys
from pathlib import Path
from pipeline.runners import console_to_log

log = Path(sys.argv[1])
print("before: on the console", flush=True)
with console_to_log(log) as console:
    os.write(2, b"NOISE fd2: cpu_feature_guard.cc:210] This TensorFlow binary is optimized\n")
    os.write(1, b"NOISE fd1: running bdist_wheel\n")
    ctypes.CDLL(None).write(2, b"NOISE libc write(2)\n", 20)
    subprocess.run([sys.executable, "-c",
                    "import sys; print('NOISE child stdout'); print('NOISE child stderr', file=sys.stderr)"])
    print("NOISE python print")
    print("NOISE python stderr", file=sys.stderr)
    print("PROGRESS (1/2) CsvExampleGen finished", file=console.out)
    print("ERROR: pipeline failed at X", file=console.err)
    if len(sys.argv) > 2:
        raise RuntimeError("BOOM in the block")
print("after: on the console again", flush=True)
os.write(2, b"after: fd2 on the console again\n")
"""
NOISE = ("NOISE fd2: cpu_feature_guard", "NOISE fd1: running bdist_wheel", "NOISE libc write(2)",
         "NOISE child stdout", "NOISE child stderr", "NOISE python print", "NOISE python stderr")


def _run(log: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(log), *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_noise_goes_to_the_log_and_progress_and_errors_to_the_console(tmp_path):
    log = tmp_path / "logs" / "run.log"
    proc = _run(log)
    assert proc.returncode == 0, proc.stderr
    console = proc.stdout + proc.stderr
    for noise in NOISE:
        assert noise not in console, (noise, console)
        assert noise in log.read_text(), noise
    assert proc.stdout.splitlines() == ["before: on the console", "PROGRESS (1/2) CsvExampleGen finished",
                                        "after: on the console again"]
    assert proc.stderr.splitlines() == ["ERROR: pipeline failed at X", "after: fd2 on the console again"]
    assert "PROGRESS" not in log.read_text() and "ERROR" not in log.read_text()


def test_an_exception_in_the_block_reaches_the_console_with_the_log_path(tmp_path):
    log = tmp_path / "run.log"
    proc = _run(log, "raise")
    assert proc.returncode == 1
    assert "RuntimeError: BOOM in the block" in proc.stderr and f"(full log: {log})" in proc.stderr
    assert not any(noise in proc.stdout + proc.stderr for noise in NOISE)
    assert "NOISE fd2" in log.read_text()
