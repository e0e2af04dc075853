"""TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest) on the standard library.

    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]             status
    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]/metadata    signature defs
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict | :classify | :regress

Errors are ``{"error": "..."}`` with the HTTP status of the gRPC code (400, 404, 413, 503...).
``GET /healthz`` (200 once every model has an available version, else 503) and the Prometheus
path of ``--monitoring_config_file`` are extras of this server.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format

from serving import codec
from serving.inference import Service
from serving.manager import Servable
from serving.status import ServingError, invalid

log = logging.getLogger("serving")

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?$")


def _status_json(states: list) -> dict:
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": "OK" if not s.error else "UNKNOWN", "error_message": s.error}}
        for s in states]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse one connection
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    server_version = "pipeline-model-server"
    service: Service
    max_body: int
    metrics_path: str | None
    slots: threading.BoundedSemaphore  # one per request handled at once (--rest_api_num_threads)
    max_handlers: int
    deadline: float = 0.0  # monotonic time by which the request's body must have arrived
    _linger_after = False

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body, indent=None).encode()
        else:
            data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        if self.close_connection:  # refused, too large, too slow: the client must not reuse it
            self.send_header("Connection", "close")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: ServingError) -> None:
        self._send(err.http_status, {"error": err.message})

    # -- limits ----------------------------------------------------------------------------
    def handle_one_request(self) -> None:
        self._linger_after = False
        self.connection.settimeout(self.timeout)  # idle keep-alive / slow headers: per-recv timeout
        super().handle_one_request()
        if self._linger_after:
            self._linger()

    def _limited(self, handle: Callable[[], None]) -> None:
        """At most --rest_api_num_threads requests are handled at once (TF Serving's REST thread
        pool); the excess gets 503 at once rather than waiting in an unbounded line of threads:
        a client (or load balancer) can retry elsewhere, and latency stays bounded under overload."""
        if not self.slots.acquire(blocking=False):
            self._refuse(ServingError(grpc.StatusCode.UNAVAILABLE,
                                      f"The server is busy: {self.max_handlers} requests in flight "
                                      "(--rest_api_num_threads); retry later"))
            return
        try:
            self.deadline = time.monotonic() + self.timeout
            handle()
        finally:
            self.slots.release()

    def _refuse(self, err: ServingError) -> None:
        """Answer without reading the body, then close the connection (lingering: see _linger)."""
        self.close_connection = True
        self._linger_after = bool(self._content_length()) or "Transfer-Encoding" in self.headers
        self._error(err)

    def _linger(self) -> None:
        """After answering a request whose body was not read: stop sending, then read and drop what
        the client still sends (bounded in time and size), so the answer is not lost to the TCP
        reset that closing a socket with unread data causes. Runs outside the handler slots."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            end, left = time.monotonic() + self.timeout, _LINGER_BYTES
            while left > 0 and (remaining := end - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(1 << 16)
                if not chunk:
                    return
                left -= len(chunk)
        except OSError:
            pass

    # -- routing ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz" or (self.metrics_path and path == self.metrics_path):
            self._get()  # probes stay cheap and answered even when every handler slot is busy
        else:
            self._limited(self._get)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            ok = self.service.manager.all_available()
            self._send(200 if ok else 503, {"status": "SERVING" if ok else "NOT_SERVING"})
            return
        if self.metrics_path and path == self.metrics_path:
            self._send(200, self.service.metrics.render(), "text/plain; version=0.0.4")
            return
        match = _PATH.match(path)
        if not match or match["verb"]:
            self._error(ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: GET {path}"))
            return
        try:
            self._error_safe_get(match)
        except ServingError as err:
            self._error(err)

    def _error_safe_get(self, match: re.Match) -> None:
        name, version, label = match["name"], _version(match["version"]), match["label"]
        if match["metadata"]:
            with self.service.observe(name, "GetModelMetadata", "REST") as info:
                servable = self.service.manager.resolve(name, version, label)
                info["version"] = servable.version
                body = {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                        "metadata": {"signature_def": json_format.MessageToDict(
                            servable.signature_def_map, preserving_proto_field_name=True)}}
            self._send(200, body)
        else:
            with self.service.observe(name, "GetModelStatus", "REST"):
                body = _status_json(self.service.manager.status(name, version, label))
            self._send(200, body)

    def do_POST(self) -> None:
        self._limited(self._post)

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        match = _PATH.match(path)
        verb = match["verb"] if match else None
        if verb not in ("predict", "classify", "regress"):
            self._refuse(ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: POST {path}"))
            return
        try:
            body = self._read_json()
            unknown = sorted(set(body) - _FIELDS[verb])
            if unknown:
                raise invalid(f"Unknown field(s) in the request body: {', '.join(unknown)} ({verb} takes "
                              f"{', '.join(sorted(_FIELDS[verb]))})")
        except _RequestTimeout as err:  # the client is too slow: answer and close, no lingering
            self.close_connection = True
            self._error(err)
            return
        except ServingError as err:
            self._error(err)
            return
        name = match["name"]  # type: ignore[index]
        try:
            with self.service.observe(name, verb.capitalize(), "REST") as info:
                servable = self.service.manager.resolve(name, _version(match["version"]), match["label"])  # type: ignore[index]
                info["version"] = servable.version
                result = getattr(self, f"_{verb}")(servable, body)
        except ServingError as err:
            self._error(err)
            return
        self._send(200, result)

    def do_PUT(self) -> None:
        self._refuse(ServingError(grpc.StatusCode.UNIMPLEMENTED, f"Malformed request: PUT {self.path}"))

    do_DELETE = do_PUT  # noqa: N815  (http.server dispatches on this name)

    # -- bodies ----------------------------------------------------------------------------
    def _content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self._content_length()
        if length is None or length < 0:
            self.close_connection = True
            raise invalid("missing or invalid Content-Length header (or send Transfer-Encoding: chunked)")
        if length > self.max_body:
            self._linger_after = True  # the client gets the 413, not a reset
            self.close_connection = True
            raise _TooLarge(f"Request body of {length} bytes exceeds the limit of {self.max_body} bytes "
                            "(--rest_api_max_body_bytes)")
        return self._read_exact(length)

    def _read_exact(self, n: int) -> bytes:
        """``n`` body bytes, all within the request's deadline (--rest_api_timeout_in_ms): the socket
        timeout alone is per recv, so a client trickling a byte at a time would never trip it."""
        parts, left = [], n
        while left > 0:
            chunk = self.rfile.read1(min(left, 1 << 16)) if self._arm() else b""
            if not chunk:
                self.close_connection = True
                raise invalid(f"the connection closed {left} bytes before the end of the request body")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _read_line(self, limit: int = 4096) -> bytes:
        line = b""
        while not line.endswith(b"\n"):
            data = self.rfile.peek(1) if self._arm() else b""  # one recv at most when the buffer is empty
            if not data:
                self.close_connection = True
                raise invalid("the connection closed in the middle of a chunked request body")
            end = data.find(b"\n")
            line += self.rfile.read(end + 1 if end >= 0 else len(data))
            if len(line) > limit:
                self.close_connection = True
                raise invalid("malformed chunked request body: chunk header line too long")
        return line

    def _arm(self) -> bool:
        """Sets the socket timeout to what is left of the deadline; raises 408 when nothing is left."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _RequestTimeout(self.timeout)
        self.connection.settimeout(remaining)
        return True

    def _read_chunked(self) -> bytes:
        """A Transfer-Encoding: chunked body, refused with 413 as soon as it passes the limit (the
        rest is never parsed or kept)."""
        body = bytearray()
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self.close_connection = True
                raise invalid(f"malformed chunked request body: chunk size {size_text[:20]!r}") from None
            if size == 0:
                while self._read_line().strip():  # trailer fields up to the blank line: ignored
                    pass
                return bytes(body)
            if len(body) + size > self.max_body:
                self._linger_after = True
                self.close_connection = True
                raise _TooLarge(f"Chunked request body exceeds the limit of {self.max_body} bytes "
                                "(--rest_api_max_body_bytes)")
            body += self._read_exact(size)
            if self._read_exact(2) != b"\r\n":
                self.close_connection = True
                raise invalid("malformed chunked request body: no CRLF after a chunk")

    def _read_json(self) -> dict:
        try:
            raw = self._read_body()
        except TimeoutError:
            raise _RequestTimeout(self.timeout) from None
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise invalid(f"JSON Parse error: {exc}") from None
        if not isinstance(body, dict):
            raise invalid(f"JSON Value: {raw[:60]!r} Is not an object: the request body must be a JSON object")
        signature = body.get("signature_name", "serving_default")
        if not isinstance(signature, str):
            raise invalid("'signature_name' must be a string")
        return body

    # -- verbs -----------------------------------------------------------------------------
    def _predict(self, servable: Servable, body: dict) -> dict:
        signature = servable.signature(body.get("signature_name", ""))
        inputs, row = codec.predict_inputs(body, signature)
        outputs = self.service.run(servable, signature, inputs, timeout_s=self.timeout)
        return codec.predict_response(outputs, row)

    def _examples(self, body: dict) -> list[bytes]:
        examples = body.get("examples")
        if not isinstance(examples, list) or not examples:
            raise invalid("'examples' must be a non-empty list of objects (feature name -> value)")
        context = body.get("context")
        prefix = b"" if context is None else codec.json_to_example(context, "'context'").SerializeToString()
        return [prefix + codec.json_to_example(e, f"examples[{i}]").SerializeToString()
                for i, e in enumerate(examples)]

    def _classify(self, servable: Servable, body: dict) -> dict:
        classes, scores = self.service.classify(servable, body.get("signature_name", ""), self._examples(body),
                                                timeout_s=self.timeout)
        results = []
        for i in range(scores.shape[0]):
            labels = (classes[i] if classes is not None else [b""] * scores.shape[1])
            results.append([[label.decode() if isinstance(label, bytes) else str(label), float(score)]
                            for label, score in zip(labels, scores[i], strict=True)])
        return {"results": results}

    def _regress(self, servable: Servable, body: dict) -> dict:
        values = self.service.regress(servable, body.get("signature_name", ""), self._examples(body),
                                      timeout_s=self.timeout)
        return {"results": [float(v) for v in values]}


_FIELDS = {"predict": {"signature_name", "instances", "inputs"},
           "classify": {"signature_name", "examples", "context"},
           "regress": {"signature_name", "examples", "context"}}
_LINGER_BYTES = 64 << 20


class _RequestTimeout(ServingError):
    """The request body did not arrive within --rest_api_timeout_in_ms: 408, connection closed."""

    def __init__(self, timeout_s: float):
        super().__init__(grpc.StatusCode.DEADLINE_EXCEEDED,
                         f"Request body not received within {timeout_s * 1000:.0f} ms (--rest_api_timeout_in_ms)")

    @property
    def http_status(self) -> int:
        return HTTPStatus.REQUEST_TIMEOUT


class _TooLarge(ServingError):
    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.RESOURCE_EXHAUSTED, message)

    @property
    def http_status(self) -> int:
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise invalid(f"version must be a non-negative integer, got '{text}' (use /labels/{text} for a label)")
    return int(text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops connections when many clients connect at once
    reuse_port = False  # SO_REUSEPORT: one of --num_server_processes processes on the port

    def server_bind(self) -> None:
        if self.reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class RestServer:
    def __init__(self, service: Service, host: str, port: int, max_body: int, timeout_s: float,
                 metrics_path: str | None, reuse_port: bool = False, max_handlers: int = 32):
        handler = type("Handler", (_Handler,), {
            "service": service, "max_body": max_body, "metrics_path": metrics_path, "timeout": timeout_s,
            "slots": threading.BoundedSemaphore(max_handlers), "max_handlers": max_handlers})
        server = type("Server", (_Server,), {"reuse_port": reuse_port})
        self.httpd = server((host, port), handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
