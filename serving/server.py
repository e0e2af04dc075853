"""``python -m pipeline serve``: wires options, models, batching, metrics, REST and gRPC.

Like ``tensorflow_model_server`` it loads the configured models first, then opens the ports
and logs ``Running gRPC ModelServer at HOST:PORT`` and ``Exporting HTTP/REST API at:HOST:PORT``
(with the bound ports, so ``--port=0`` can be used by scripts that read them back).

``--num_server_processes=N`` (not a TF Serving flag; default 1) runs N server processes behind
the same gRPC and REST ports: the first binds them with SO_REUSEPORT, then starts N-1 workers
(``python -m pipeline serve`` with the same flags and the bound ports) that bind them too, and
logs the two lines above once every worker is serving. The kernel spreads *connections* over the
processes, so one gRPC channel (one HTTP/2 connection) stays on one process: clients that want
the throughput of several open several channels (or HTTP connections). Python's GIL limits one
process to about one core of request handling; N processes use N. Every process loads every
model and polls the model directories itself, so versions appear and retire in each; the
``--model_config_file`` poll runs in each; a ReloadConfig RPC is applied by the process that
gets it and forwarded to the others (on private loopback ports) before it returns. Metrics
(``--monitoring_config_file``) are per process. SIGTERM to the first process stops them all;
a worker exits with it.

Shutdown. SIGTERM or SIGINT stops the server within SHUTDOWN_SECONDS: in-flight RPCs get
GRACE_SECONDS, then the process leaves with ``os._exit``. It does not wait for the interpreter's
own exit, which joins every gRPC handler thread (a model call in flight holds it until the call
returns, whatever the gRPC grace) and tears down TensorFlow and the loaded models (about a second
of CPU, many seconds for a niced process on busy cores).
``--parent_pid=PID`` (not a TF Serving flag) makes the server shut down the same way once PID is
no longer its parent, however that process ended (SIGKILL included): a program that starts a
server passes its own pid, and the server never outlives it (InfraValidator's runner does).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from serving.batching import Batcher
from serving.grpc_api import GrpcServer
from serving.inference import Service
from serving.manager import ModelManager
from serving.metrics import Metrics
from serving.options import (
    NotAllowedError,
    OptionsError,
    ServerOptions,
    check_allowed,
    default_allowlist,
    load_model_config_file,
    parse_options,
)
from serving.rest import RestServer

log = logging.getLogger("serving")


class ModelServer:
    """The server in this process (tests, benchmarks); ``serve()`` runs it as a command."""

    def __init__(self, opts: ServerOptions):
        self.opts = opts
        self.metrics = Metrics()
        self.batcher = Batcher(opts.batching, on_batch=self.metrics.batch) if opts.batching else None
        self.manager = ModelManager(
            opts.models, poll_seconds=opts.file_system_poll_wait_seconds, on_load=self.metrics.load,
            on_unload=self.batcher.drop if self.batcher else None)
        self.service = Service(self.manager, self.metrics, self.batcher)
        self.grpc: GrpcServer | None = None
        self.rest: RestServer | None = None
        self._stop = threading.Event()
        self._config_thread: threading.Thread | None = None
        self.allowlist = opts.model_base_path_allowlist or default_allowlist(opts.models)

    def start(self) -> None:
        import tensorflow as tf

        if self.opts.intra_op_parallelism:
            tf.config.threading.set_intra_op_parallelism_threads(self.opts.intra_op_parallelism)
        if self.opts.inter_op_parallelism:
            tf.config.threading.set_inter_op_parallelism_threads(self.opts.inter_op_parallelism)
        self.manager.start()
        group = self.opts.worker_dir is not None  # one of --num_server_processes processes
        self.grpc = GrpcServer(self.service, self.opts.bind_address, self.opts.port, self.opts.grpc_max_threads,
                               self.opts.rest_api_max_body_bytes, reuse_port=group,
                               peers=(lambda: worker_ports(self.opts.worker_dir)) if group else None,
                               allowlist=self.allowlist)
        self.grpc.start()
        if self.opts.rest_api_port:
            self.rest = RestServer(self.service, self.opts.bind_address, self.opts.rest_api_port,
                                   self.opts.rest_api_max_body_bytes, self.opts.rest_api_timeout_in_ms / 1000,
                                   self.opts.metrics_path, reuse_port=group,
                                   max_handlers=self.opts.rest_api_num_threads)
            self.rest.start()
        if group:
            port_file = self.opts.worker_dir / f"{os.getpid()}.port"  # type: ignore[operator]
            port_file.with_suffix(".tmp").write_text(str(self.grpc.private_port))
            port_file.with_suffix(".tmp").rename(port_file)
        if self.opts.model_config_file and self.opts.model_config_file_poll_wait_seconds > 0:
            self._config_thread = threading.Thread(target=self._poll_config, daemon=True, name="config-poller")
            self._config_thread.start()

    def announce(self, processes: int = 1) -> None:
        """The lines scripts wait for (tensorflow_model_server's): every port is serving."""
        extra = f" ({processes} server processes)" if processes > 1 else ""
        log.info("Running gRPC ModelServer at %s:%d ...%s", self.opts.bind_address, self.grpc.port, extra)  # type: ignore[union-attr]
        if self.rest:
            log.info("Exporting HTTP/REST API at:%s:%d ...", self.opts.bind_address, self.rest.port)

    def _poll_config(self) -> None:
        path: Path = self.opts.model_config_file  # type: ignore[assignment]
        last = path.read_text()
        while not self._stop.wait(self.opts.model_config_file_poll_wait_seconds):
            try:
                text = path.read_text()
                if text != last:
                    models = load_model_config_file(path)
                    check_allowed(models, self.allowlist, f"--model_config_file {path}")
                    self.manager.apply_config(models)
                    last = text
                    log.info("Applied the changed --model_config_file %s", path)
            except NotAllowedError as exc:  # refused as a whole; logged once per change of the file
                last = text
                log.error("Refusing the changed --model_config_file (PERMISSION_DENIED): %s", exc)
            except (OSError, OptionsError) as exc:  # keep serving the last good config
                log.error("Ignoring --model_config_file change: %s", exc)

    def stop(self, grace: float = 2.0, timeout: float = 30.0) -> None:
        """In-flight RPCs get ``grace`` seconds; the version poller ``timeout`` to finish a load."""
        self._stop.set()
        if self.rest:
            self.rest.stop()
        if self.grpc:
            self.grpc.stop(grace)
        self.manager.stop(timeout)


WORKER_READY = "model server worker ready"


def worker_ports(worker_dir: Path | None) -> list[int]:
    """The private gRPC ports of the other processes of this server (ReloadConfig forwarding)."""
    if worker_dir is None:
        return []
    return [int(p.read_text()) for p in sorted(worker_dir.glob("*.port")) if p.stem != str(os.getpid())]


GRACE_SECONDS = 2.0         # after SIGTERM, in-flight RPCs get this long, then they are cancelled
SHUTDOWN_SECONDS = 5.0      # SIGTERM to exit, at most; past it the process exits at once (status 1)
PARENT_POLL_SECONDS = 0.2   # how often --parent_pid is checked


def _set_parent_death_signal() -> None:
    """In a worker: SIGTERM when the thread that started it ends (prctl PR_SET_PDEATHSIG). The first
    process starts its workers from its main thread, which lives as long as the process."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _watch_parent(parent_pid: int) -> None:
    """--parent_pid: SIGTERM to this process once ``parent_pid`` is no longer its parent.

    A dead process's children are re-parented (to init or a subreaper), so getppid() changes
    however the parent ended, SIGKILL included, and whichever of its threads started this process
    (PR_SET_PDEATHSIG fires when that *thread* ends, and TFX/Beam may run an executor in a thread).
    A parent already gone when this starts is seen on the first check. Before the SIGTERM handler
    is installed (models still loading) the signal ends the process at once; after, it shuts down
    as on any SIGTERM."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        log.warning("Parent process %d is gone: shutting down the model server", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watcher", daemon=True).start()


def _exit_now(code: int) -> None:
    """Leave without the interpreter's exit (see the module docstring); the logs are flushed first."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _shutdown_deadline() -> None:
    def expire() -> None:
        log.error("The model server did not stop within %.0f s of the signal; exiting now", SHUTDOWN_SECONDS)
        _exit_now(1)

    timer = threading.Timer(SHUTDOWN_SECONDS, expire)
    timer.daemon = True
    timer.start()


def _start_workers(argv: list[str], server: ModelServer) -> list[subprocess.Popen]:
    """Start and wait for --num_server_processes - 1 workers on the first process's ports."""
    opts = server.opts
    workers = []
    for _ in range(opts.num_server_processes - 1):
        # Later flags win in argparse: the bound ports replace --port=0 / --rest_api_port=0, and a
        # worker watches this process, not this process's parent.
        cmd = [sys.executable, "-m", "pipeline", "serve", *argv, f"--port={server.grpc.port}",  # type: ignore[union-attr]
               f"--rest_api_port={server.rest.port if server.rest else 0}",
               f"--internal_worker_dir={opts.worker_dir}", f"--parent_pid={os.getpid()}"]
        workers.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True))
    for worker in workers:  # a worker prints WORKER_READY on stdout once it serves; it logs to stderr
        for line in worker.stdout:  # type: ignore[union-attr]
            if line.strip() == WORKER_READY:
                break
        else:
            raise OSError(f"server worker process {worker.pid} exited with {worker.wait()} before serving")
    return workers


def serve(argv: list[str]) -> int:
    # gRPC's poller, the handler threads and batch threads hand the GIL around on every request;
    # Python's default 5 ms switch interval adds that much latency whenever one of them is busy.
    sys.setswitchinterval(0.0005)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        opts = parse_options(argv)
    except OptionsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worker = opts.worker_dir is not None
    if worker:
        _set_parent_death_signal()
    if opts.parent_pid is not None:  # after the death signal: no moment where neither is armed
        _watch_parent(opts.parent_pid)
    first = opts.num_server_processes > 1 and not worker
    if first:
        opts = dataclasses.replace(opts, worker_dir=Path(tempfile.mkdtemp(prefix="model-server-")))
    server = ModelServer(opts)
    workers: list[subprocess.Popen] = []
    try:
        server.start()
        if first:
            workers = _start_workers(argv, server)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        server.stop(GRACE_SECONDS, timeout=1.0)
        _stop_workers(workers, opts if first else None)
        return 1
    if worker:
        print(WORKER_READY, flush=True)
        os.dup2(2, 1)  # nobody reads the pipe any more: anything else printed goes to the log
        log.info("Server worker process %d serving (gRPC port %d)", os.getpid(), server.grpc.port)  # type: ignore[union-attr]
    else:
        server.announce(opts.num_server_processes)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    reported: set[int] = set()
    while not done.wait(1.0):
        for w in workers:
            if w.poll() is not None and w.pid not in reported:
                reported.add(w.pid)
                log.error("Server worker process %d exited with %d; the others keep serving", w.pid, w.returncode)
    log.info("Shutting down the model server")
    _shutdown_deadline()
    for w in workers:  # they shut down while this process does
        if w.poll() is None:
            w.terminate()
    server.stop(GRACE_SECONDS, timeout=1.0)
    _stop_workers(workers, opts if first else None, timeout=SHUTDOWN_SECONDS)
    log.info("Model server stopped")
    _exit_now(0)
    return 0  # not reached


def _stop_workers(workers: list[subprocess.Popen], opts: ServerOptions | None, timeout: float = 30) -> None:
    for w in workers:
        if w.poll() is None:
            w.terminate()
    for w in workers:
        try:
            w.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
    if opts is not None and opts.worker_dir is not None:
        shutil.rmtree(opts.worker_dir, ignore_errors=True)
