"""``python -m pipeline serve``: wires options, models, batching, metrics, REST and gRPC.

Like ``tensorflow_model_server`` it loads the configured models first, then opens the ports
and logs ``Running gRPC ModelServer at HOST:PORT`` and ``Exporting HTTP/REST API at:HOST:PORT``
(with the bound ports, so ``--port=0`` can be used by scripts that read them back).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from pipeline.serving.batching import Batcher
from pipeline.serving.grpc_api import GrpcServer
from pipeline.serving.inference import Service
from pipeline.serving.manager import ModelManager
from pipeline.serving.metrics import Metrics
from pipeline.serving.options import OptionsError, ServerOptions, load_model_config_file, parse_options
from pipeline.serving.rest import RestServer

log = logging.getLogger("pipeline.serving")


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

    def start(self) -> None:
        import tensorflow as tf

        if self.opts.intra_op_parallelism:
            tf.config.threading.set_intra_op_parallelism_threads(self.opts.intra_op_parallelism)
        if self.opts.inter_op_parallelism:
            tf.config.threading.set_inter_op_parallelism_threads(self.opts.inter_op_parallelism)
        self.manager.start()
        self.grpc = GrpcServer(self.service, self.opts.bind_address, self.opts.port, self.opts.grpc_max_threads,
                               self.opts.rest_api_max_body_bytes)
        self.grpc.start()
        log.info("Running gRPC ModelServer at %s:%d ...", self.opts.bind_address, self.grpc.port)
        if self.opts.rest_api_port:
            self.rest = RestServer(self.service, self.opts.bind_address, self.opts.rest_api_port,
                                   self.opts.rest_api_max_body_bytes, self.opts.rest_api_timeout_in_ms / 1000,
                                   self.opts.metrics_path)
            self.rest.start()
            log.info("Exporting HTTP/REST API at:%s:%d ...", self.opts.bind_address, self.rest.port)
        if self.opts.model_config_file and self.opts.model_config_file_poll_wait_seconds > 0:
            self._config_thread = threading.Thread(target=self._poll_config, daemon=True, name="config-poller")
            self._config_thread.start()

    def _poll_config(self) -> None:
        path: Path = self.opts.model_config_file  # type: ignore[assignment]
        last = path.read_text()
        while not self._stop.wait(self.opts.model_config_file_poll_wait_seconds):
            try:
                text = path.read_text()
                if text != last:
                    self.manager.apply_config(load_model_config_file(path))
                    last = text
                    log.info("Applied the changed --model_config_file %s", path)
            except (OSError, OptionsError) as exc:  # keep serving the last good config
                log.error("Ignoring --model_config_file change: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self.rest:
            self.rest.stop()
        if self.grpc:
            self.grpc.stop()
        self.manager.stop()


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
    server = ModelServer(opts)
    try:
        server.start()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        server.stop()
        return 1
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    log.info("Shutting down the model server")
    server.stop()
    return 0
