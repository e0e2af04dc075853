"""A ModelServerRunner that starts ``python -m pipeline serve`` as a local process.

It plays the part of TFX's LocalDockerRunner where there is no Docker: same interface, same
TF Serving gRPC contract, so TFX's own TensorFlowServingClient checks the model's status and
sends the requests.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from tfx.components.infra_validator import error_types
from tfx.components.infra_validator.model_server_runners import base_runner

from serving import processes
from serving.client import free_port

READY_LINE = "Running gRPC ModelServer at"


class LocalProcessRunner(base_runner.BaseModelServerRunner):
    def __init__(self, model_path: str, model_name: str, extra_flags: tuple[str, ...] = ()):
        # model_path is TF Serving-flavoured: <base>/<model_name>/<version>.
        self._base_path = str(Path(model_path).parent)
        self._model_name = model_name
        self._extra_flags = extra_flags
        self._process: subprocess.Popen | None = None
        self._port: int | None = None
        self._log = Path(tempfile.mkstemp(prefix="infra_validator_server_", suffix=".log")[1])

    def __repr__(self) -> str:
        return f"LocalProcessRunner(model_base_path={self._base_path}, port={self._port})"

    def GetEndpoint(self) -> str:
        if self._port is None:
            raise error_types.JobAborted("model server not started")
        return f"127.0.0.1:{self._port}"

    def Start(self) -> None:
        self._port = free_port()
        # The server shuts down by itself once this process is gone (processes.start_server).
        self._process = processes.start_server(
            [f"--port={self._port}", f"--model_name={self._model_name}", f"--model_base_path={self._base_path}",
             "--file_system_poll_wait_seconds=1", *self._extra_flags], self._log)

    def WaitUntilRunning(self, deadline: float) -> None:
        assert self._process is not None, "Start() first"
        while time.time() < deadline:
            if self._process.poll() is not None:
                raise error_types.JobAborted(
                    f"model server exited with status {self._process.returncode}:\n{self.GetLogs()}")
            if READY_LINE in self._log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise error_types.DeadlineExceeded("Deadline exceeded while waiting for the model server to start.")

    def Stop(self) -> None:
        processes.stop(self._process, timeout=20)

    def GetLogs(self) -> str | None:
        try:
            return self._log.read_text(errors="replace")[-20000:]
        except OSError:
            return None
