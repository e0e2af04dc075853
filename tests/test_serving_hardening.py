"""The model server under overload and hostile clients, and the ReloadConfig allow-list (issue 16).

Fast: no pipeline run. A tiny real SavedModel is built here (``serving_default``: float32 ``x``
[None] and string ``s`` [None] -> ``y = 2 * sqrt(x)``, ``n = len(s)``); ``s[0] == "sleep:<ms>"``
makes a call sleep that long (tf.data's SleepDataset, which survives export), so queues and
in-flight limits fill deterministically. The servers are real ``python -m pipeline serve``
processes (tests/serving_fixtures.ServerProcess).
"""

from __future__ import annotations

import http.client as http_client
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from serving import options
from serving.batching import Batcher
from tests.serving_fixtures import ServerProcess

SLOW_MS = 800            # a "slow" call in the overload tests
A_TIMEOUT_MS = 2500      # server A (batching) --rest_api_timeout_in_ms
B_TIMEOUT_MS = 3000      # server B (no batching)
A_MAX_BODY = 4096        # server A --rest_api_max_body_bytes (also its gRPC receive limit)
FAST = 0.5               # "at once": a refusal must come well under the slow call's duration


def _build_model(target: Path, factor: float = 2.0) -> None:
    from tensorflow.python.data.experimental.ops.testing import sleep as sleep_dataset

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.string, name="s")])
        def serve(self, x, s):
            parts = tf.strings.split(s[0], ":")
            ms = tf.cond(tf.logical_and(tf.size(parts) == 2, tf.equal(parts[0], "sleep")),
                         lambda: tf.strings.to_number(parts[-1], tf.int64), lambda: tf.constant(0, tf.int64))
            # SleepDataset sleeps before the element and again before end-of-sequence: half each.
            slept = tf.data.Dataset.from_tensors(ms).apply(sleep_dataset(ms * 500)).get_single_element()
            y = tf.sqrt(x) * factor + tf.cast(slept, tf.float32) * 0.0
            return {"y": y, "n": tf.strings.length(s)}

    module = Module()
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hardening")
    _build_model(root / "m" / "1")
    shutil.copytree(root / "m" / "1", root / "m2" / "7")      # inside the allowed roots (a sibling)
    outside = tmp_path_factory.mktemp("outside")              # not under root: outside the allow-list
    shutil.copytree(root / "m" / "1", outside / "1")
    (root / "link").symlink_to(outside, target_is_directory=True)
    return root


def _server(root: Path, name: str, flags: list[str]) -> ServerProcess:
    return ServerProcess([f"--model_base_path={root / 'm'}", "--model_name=m",
                          "--file_system_poll_wait_seconds=0.2", *flags], root / f"{name}.log")


@pytest.fixture(scope="module")
def server_a(root):
    """Batching on: max_batch_size 2 x max_enqueued_batches 1 = 2 queued rows, one batch thread."""
    batching = root / "batching.pbtxt"
    batching.write_text("max_batch_size { value: 2 }\nbatch_timeout_micros { value: 0 }\n"
                        "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 1 }\n")
    server = _server(root, "a", ["--enable_batching", f"--batching_parameters_file={batching}",
                                 f"--rest_api_max_body_bytes={A_MAX_BODY}", f"--rest_api_timeout_in_ms={A_TIMEOUT_MS}"])
    _warm(server)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_b(root):
    """No batching: 2 REST handlers, 2 gRPC threads."""
    server = _server(root, "b", ["--rest_api_num_threads=2", "--grpc_max_threads=2",
                                 f"--rest_api_timeout_in_ms={B_TIMEOUT_MS}"])
    _warm(server)
    yield server
    server.stop()


# -- clients -----------------------------------------------------------------------------------
def _rest(server: ServerProcess, body: object, path: str = "/v1/models/m:predict",
          raw: bytes | None = None) -> tuple[int, object, float]:
    """(status, parsed body, seconds) of one POST on a new connection."""
    conn = http_client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    started = time.monotonic()
    try:
        conn.request("POST", path, body=raw if raw is not None else json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = text
    return response.status, parsed, time.monotonic() - started


def _raw(server: ServerProcess, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)
    sock.sendall(head)
    return sock


def _response(sock: socket.socket) -> tuple[int, str]:
    response = http_client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read().decode()


def _predict_request(x: list[float], s: list[str]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(x, np.float32)))
    request.inputs["s"].CopyFrom(tf.make_tensor_proto(s))
    return request


def _grpc_predict(server: ServerProcess, request: predict_pb2.PredictRequest,
                  timeout: float = 60) -> tuple[grpc.StatusCode, object, float]:
    """(code, response or details, seconds) on a channel of its own (a connection of its own)."""
    started = time.monotonic()
    with grpc.insecure_channel(server.grpc) as channel:
        try:
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
            return grpc.StatusCode.OK, reply, time.monotonic() - started
        except grpc.RpcError as exc:
            return exc.code(), exc.details(), time.monotonic() - started


def _good(server: ServerProcess) -> None:
    """The next good request is answered, right, on both APIs."""
    status, body, _ = _rest(server, {"instances": [{"x": 9.0, "s": "ab"}]})
    assert status == 200 and body == {"predictions": [{"y": 6.0, "n": 2}]}, body
    code, reply, _ = _grpc_predict(server, _predict_request([16.0], ["abc"]))
    assert code == grpc.StatusCode.OK, reply
    assert tf.make_ndarray(reply.outputs["y"]).tolist() == [8.0] and tf.make_ndarray(reply.outputs["n"]).tolist() == [3]
    assert server.process.poll() is None


def _warm(server: ServerProcess) -> None:
    _good(server)  # the first call traces the function; later timings are the model's
    assert _rest(server, {"instances": [{"x": 1.0, "s": "sleep:10"}]})[0] == 200


def _slow(ms: int = SLOW_MS) -> dict:
    return {"instances": [{"x": 1.0, "s": f"sleep:{ms}"}]}


def _concurrently(calls: list) -> list:
    """Runs the calls at once (a barrier); their results in order."""
    results: list = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


# -- 1. overload with batching -----------------------------------------------------------------
def test_full_batch_queue_is_refused_at_once_then_served(server_a):
    """Checks: with one batch running and max_enqueued_batches * max_batch_size rows queued, one
    more request gets REST 503 / gRPC UNAVAILABLE in well under the slow call's time (no hang),
    the queued ones still succeed, and the next good request is served. Without the queue bound
    the extra request would wait and succeed; without batching it would not be refused at all."""
    results: dict[str, tuple] = {}

    def rest(key: str, ms: int) -> threading.Thread:
        t = threading.Thread(target=lambda: results.__setitem__(key, _rest(server_a, _slow(ms))))
        t.start()
        return t

    running = rest("running", SLOW_MS)
    time.sleep(0.25)  # the batch thread has taken it: the queue is empty again
    queued = [rest("queued1", SLOW_MS), rest("queued2", SLOW_MS)]
    time.sleep(0.25)  # 2 rows queued = max_enqueued_batches (1) * max_batch_size (2)
    status, body, took = _rest(server_a, _slow(10))
    code, details, grpc_took = _grpc_predict(server_a, _predict_request([1.0], ["sleep:10"]))
    for t in [running, *queued]:
        t.join(60)
    print(f"queue full: REST {status} in {took * 1000:.0f} ms, gRPC {code.name} in {grpc_took * 1000:.0f} ms; "
          f"running call {results['running'][2] * 1000:.0f} ms")
    assert status == 503 and "queue" in body["error"] and took < FAST, (status, body, took)
    assert code == grpc.StatusCode.UNAVAILABLE and "queue" in details and grpc_took < FAST, (code, details, grpc_took)
    assert [results[k][0] for k in ("running", "queued1", "queued2")] == [200, 200, 200], results
    assert results["running"][2] >= SLOW_MS / 1000  # it really was slow: the refusal was not luck
    _good(server_a)


# -- 2. bounded in-flight requests without batching --------------------------------------------
def test_rest_runs_at_most_rest_api_num_threads_requests(server_b):
    """Checks: 2 + 3 concurrent slow REST requests with --rest_api_num_threads=2 -> exactly 2 run
    (200 after the slow call) and 3 get 503 at once. A thread per connection (the old server)
    answers all 5 with 200."""
    results = _concurrently([lambda: _rest(server_b, _slow(1500)) for _ in range(5)])
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    print("REST 5 concurrent, 2 handlers:", [(r[0], round(r[2] * 1000)) for r in results])
    assert len(ok) == 2 and len(refused) == 3, results
    assert all(took >= 1.5 for _, _, took in ok), results
    assert all(took < FAST and "rest_api_num_threads" in body["error"] for _, body, took in refused), results
    _good(server_b)


def test_grpc_runs_at_most_grpc_max_threads_rpcs(server_b):
    """Checks: 2 + 3 concurrent slow Predicts with --grpc_max_threads=2 -> 2 succeed after the slow
    call, 3 get RESOURCE_EXHAUSTED at once (maximum_concurrent_rpcs). Without the bound the excess
    queues behind the pool and all 5 succeed."""
    results = _concurrently([lambda: _grpc_predict(server_b, _predict_request([1.0], ["sleep:1500"]))
                             for _ in range(5)])
    ok = [r for r in results if r[0] == grpc.StatusCode.OK]
    print("gRPC 5 concurrent, 2 threads:", [(r[0].name, round(r[2] * 1000)) for r in results])
    refused = [r for r in results if r[0] == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert len(ok) == 2 and len(refused) == 3, [(c, t) for c, _, t in results]
    assert all(took >= 1.5 for *_, took in ok) and all(took < FAST for *_, took in refused), results
    _good(server_b)


# -- 3. --rest_api_timeout_in_ms ---------------------------------------------------------------
def test_trickled_body_is_cut_off_at_the_timeout(server_b):
    """Checks: a client that sends headers, then a byte of the body every 0.3 s (each recv within
    the per-recv socket timeout), gets 408 once --rest_api_timeout_in_ms (3 s) has passed since
    the request began, and the server serves the next request. A per-recv timeout alone never
    fires for this client."""
    sock = _raw(server_b, b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 200\r\n\r\n{")
    started = time.monotonic()
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.3):
            try:
                sock.sendall(b" ")
            except OSError:
                return
    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        status, text = _response(sock)
    finally:
        stop.set()
        thread.join()
        sock.close()
    took = time.monotonic() - started
    print(f"trickled body: {status} after {took * 1000:.0f} ms")
    assert status == 408 and "rest_api_timeout_in_ms" in text, (status, text)
    assert B_TIMEOUT_MS / 1000 - 0.5 <= took < B_TIMEOUT_MS / 1000 + 2, took
    _good(server_b)


def test_inference_longer_than_the_timeout_is_deadline_exceeded(server_b, server_a):
    """Checks: a model call longer than --rest_api_timeout_in_ms fails with DEADLINE_EXCEEDED
    (HTTP 504), as TF Serving's RunOptions.timeout_in_ms does; batched, the answer comes at the
    deadline, before the call ends. Without the check both return 200."""
    status, body, took = _rest(server_b, _slow(B_TIMEOUT_MS + 800))
    print(f"direct call {B_TIMEOUT_MS + 800} ms, timeout {B_TIMEOUT_MS} ms: {status} after {took * 1000:.0f} ms")
    assert status == 504 and "Deadline exceeded" in body["error"], (status, body)
    assert took >= B_TIMEOUT_MS / 1000, took
    status, body, took = _rest(server_a, _slow(A_TIMEOUT_MS + 1500))
    print(f"batched call {A_TIMEOUT_MS + 1500} ms, timeout {A_TIMEOUT_MS} ms: {status} after {took * 1000:.0f} ms")
    assert status == 504 and "Deadline exceeded" in body["error"], (status, body)
    assert A_TIMEOUT_MS / 1000 <= took < (A_TIMEOUT_MS + 1500) / 1000, took
    time.sleep(1.6)  # the abandoned call finishes in the batch thread
    _good(server_b)
    _good(server_a)


# -- 4. body limit: Content-Length and chunked -------------------------------------------------
def _chunked(*chunks: bytes, end: bool = True) -> bytes:
    head = (b"POST /v1/models/m:predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return head + body + (b"0\r\n\r\n" if end else b"")


def test_chunked_bodies_accepted_up_to_the_limit_and_refused_past_it(server_a):
    """Checks: a chunked body under --rest_api_max_body_bytes is served (the right prediction); a
    chunked body past it gets 413 as soon as the limit is passed (the body is never finished:
    reading it all would wait for the end and time out with 408); a Content-Length over the limit
    gets 413 too; the next good request is served."""
    body = json.dumps({"instances": [{"x": 4.0, "s": "abc"}, {"x": 25.0, "s": ""}]}).encode()
    sock = _raw(server_a, _chunked(body[:10], body[10:30], body[30:]))
    status, text = _response(sock)
    sock.close()
    assert status == 200 and json.loads(text) == {"predictions": [{"y": 4.0, "n": 3}, {"y": 10.0, "n": 0}]}, text

    started = time.monotonic()
    sock = _raw(server_a, _chunked(*[b"[" * 1000] * 5, end=False))  # 5000 bytes > 4096, no last chunk
    status, text = _response(sock)
    sock.close()
    print(f"chunked over the limit, body unfinished: {status} after {(time.monotonic() - started) * 1000:.0f} ms")
    assert status == 413 and "rest_api_max_body_bytes" in text and time.monotonic() - started < FAST, text

    status, body_, _ = _rest(server_a, None, raw=b'{"instances": ["' + b"x" * (A_MAX_BODY * 3) + b'"]}')
    assert status == 413 and "rest_api_max_body_bytes" in body_["error"], body_
    _good(server_a)


# -- 5. gRPC message size ----------------------------------------------------------------------
def test_grpc_message_over_the_limit_is_resource_exhausted(server_a):
    """Checks: a Predict larger than the receive limit (--rest_api_max_body_bytes here) gets
    RESOURCE_EXHAUSTED and the server serves the next request."""
    code, details, _ = _grpc_predict(server_a, _predict_request([1.0], ["a" * (A_MAX_BODY * 2)]))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    _good(server_a)


# -- 6. hostile inputs -------------------------------------------------------------------------
def test_malformed_protobuf_is_an_error_not_a_crash(server_a):
    """Checks: bytes that are no PredictRequest (raw, through a generic stub) get an error status
    (grpc's INTERNAL "Exception deserializing request!"), a TensorProto whose content does not
    match its shape gets INVALID_ARGUMENT, and the server serves the next request."""
    with grpc.insecure_channel(server_a.grpc) as channel:
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")  # identity (de)serializers
        with pytest.raises(grpc.RpcError) as err:
            call(b"\xff\xff\xff\xff\x0f\x00garbage", timeout=30)
    assert err.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT), err.value
    request = _predict_request([1.0], ["a"])
    request.inputs["x"].tensor_content = b"\x00" * 5  # 5 bytes for one float32
    code, details, _ = _grpc_predict(server_a, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "x" in details, (code, details)
    _good(server_a)


def test_batch_over_max_batch_size_without_splitting_is_invalid(server_a):
    """Checks: 3 rows with max_batch_size 2 and no enable_large_batch_splitting -> 400 /
    INVALID_ARGUMENT naming the sizes (TF Serving's message), never a hang in the queue."""
    status, body, _ = _rest(server_a, {"instances": [{"x": 1.0, "s": "a"}] * 3})
    assert status == 400 and "Task size 3 is larger than maximum input batch size 2" in body["error"], body
    code, details, _ = _grpc_predict(server_a, _predict_request([1.0, 2.0, 3.0], ["a", "b", "c"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Task size 3" in details, details
    _good(server_a)


def test_large_batch_splitting_runs_pieces_and_reassembles_in_order():
    """Checks: with enable_large_batch_splitting a 5-row request runs as pieces of at most
    max_batch_size (2) and gets its 5 rows back in order (Batcher, the server's own code, with a
    plain numpy function as the model)."""
    sizes: list[int] = []

    def run(arrays: dict) -> dict:
        sizes.append(len(arrays["x"]))
        return {"y": arrays["x"] * 10}

    class Servable:
        retired, model = False, "m"
    batcher = Batcher(options.BatchingOptions(max_batch_size=2, num_batch_threads=1, max_enqueued_batches=4,
                                              enable_large_batch_splitting=True))
    out = batcher.run(Servable(), "serving_default", {"x": np.arange(5, dtype=np.float32)}, run)
    assert out["y"].tolist() == [0, 10, 20, 30, 40] and max(sizes) <= 2 and sum(sizes) == 5, sizes


@pytest.mark.parametrize("server_name", ["server_a", "server_b"])
def test_nan_and_infinity_inputs_give_nan_outputs(server_name, request):
    """Checks: REST JSON NaN / Infinity / -Infinity tokens (TF Serving accepts them) and gRPC
    float NaN reach the model and come back as the math gives (sqrt(-1) = NaN, sqrt(inf) = inf,
    sqrt(NaN) = NaN, written as NaN / Infinity tokens), batched and not, never a 500."""
    server = request.getfixturevalue(server_name)
    y = []
    for raw in (b'{"inputs": {"x": [NaN, Infinity], "s": ["a", "b"]}}',  # 2 rows: server A's max_batch_size
                b'{"inputs": {"x": [-Infinity, 4.0], "s": ["c", "d"]}}'):
        status, text, _ = _rest(server, None, raw=raw)
        assert status == 200, text
        y += text["outputs"]["y"]
    assert np.isnan(y[0]) and y[1] == float("inf") and np.isnan(y[2]) and y[3] == 4.0, y
    code, reply, _ = _grpc_predict(server, _predict_request([float("nan"), -1.0], ["a", "b"]))
    assert code == grpc.StatusCode.OK and np.isnan(tf.make_ndarray(reply.outputs["y"])).all(), reply
    _good(server)


@pytest.mark.parametrize(("body", "named"), [
    ({"instances": [{"x": 1.0, "s": "a"}], "instance": 1}, "instance"),
    ({"inputs": {"x": [1.0], "s": ["a"]}, "signature": "serving_default"}, "signature"),
    ({"instances": [{"x": 1.0, "s": "a", "zz": 2}]}, "zz"),
    ({"inputs": {"x": [1.0], "s": ["a"], "yy": [1]}}, "yy"),
])
def test_unknown_fields_and_inputs_are_400_naming_them(server_a, body, named):
    """Checks: an unknown top-level key (a typo of a real one would otherwise be silently ignored)
    or an unknown input name -> 400 whose message names it; the next request is served."""
    status, reply, _ = _rest(server_a, body)
    assert status == 400 and named in reply["error"], reply
    _good(server_a)


def test_unknown_input_over_grpc_is_invalid_argument(server_a):
    """Checks: a PredictRequest with an input the signature does not have -> INVALID_ARGUMENT naming it."""
    request = _predict_request([1.0], ["a"])
    request.inputs["zz"].CopyFrom(tf.make_tensor_proto([1.0]))
    code, details, _ = _grpc_predict(server_a, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "zz" in details, details


# -- 7. ReloadConfig allow-list ----------------------------------------------------------------
def _reload(server: ServerProcess, base_path: str) -> model_management_pb2.ReloadConfigResponse:
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="m", base_path=base_path, model_platform="tensorflow")
    with grpc.insecure_channel(server.grpc) as channel:
        return model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=60)


def _available(server: ServerProcess) -> list[int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "m"
    with grpc.insecure_channel(server.grpc) as channel:
        reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return [s.version for s in reply.model_version_status if s.state == available]


def _wait_available(server: ServerProcess, versions: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _available(server) != versions:
        assert time.monotonic() < deadline, f"versions {versions} not available: {_available(server)}"
        time.sleep(0.2)


def test_reload_outside_the_allowlist_is_permission_denied(server_b, root):
    """Checks: ReloadConfig naming a directory outside the allowed roots (directly, through '..',
    through a symlink inside a root) is refused as a whole with status 7 (PERMISSION_DENIED),
    version 1 keeps serving; a sibling directory inside the roots is accepted (its version 7 is
    loaded, proving the refusals were the allow-list and not a broken reload)."""
    outside = (root / "link").resolve()
    for base in (str(outside), f"{root}/m/../../{outside.name}", str(root / "link")):
        reply = _reload(server_b, base)
        assert reply.status.error_code == 7 and "allowlist" in reply.status.error_message, (base, reply)
        assert _available(server_b) == [1]
        _good(server_b)
    assert "ReloadConfig refused" in server_b.log.read_text()
    try:
        reply = _reload(server_b, str(root / "m2"))
        assert reply.status.error_code == 0, reply
        _wait_available(server_b, [7])
        _good(server_b)
    finally:
        assert _reload(server_b, str(root / "m")).status.error_code == 0
        _wait_available(server_b, [1])


def test_changed_model_config_file_outside_the_allowlist_is_refused(root):
    """Checks: with --model_config_file polling, a file edited to point outside the allowed roots
    is refused (logged, version 1 keeps serving); edited to a sibling inside them it is applied."""
    config = root / "models.pbtxt"

    def write(base: Path | str) -> None:
        config.write_text(f'model_config_list {{ config {{ name: "m" base_path: "{base}" '
                          'model_platform: "tensorflow" } }\n')
    write(root / "m")
    server = ServerProcess([f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=0.2",
                            "--file_system_poll_wait_seconds=0.2"], root / "c.log")
    try:
        write(root / "link")
        deadline = time.monotonic() + 30
        while "Refusing the changed --model_config_file" not in server.log.read_text():
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.2)
        assert _available(server) == [1]
        _good(server)
        write(root / "m2")
        _wait_available(server, [7])
    finally:
        server.stop()


def test_allowlist_flag_default_explicit_and_resolution(tmp_path):
    """Checks: the default allow-list is the start base paths and their parents; an explicit
    --model_base_path_allowlist must contain them; '..' and symlinks are resolved before the check;
    --help says it is not a TF Serving flag."""
    base = tmp_path / "models" / "taxi"
    base.mkdir(parents=True)
    opts = options.parse_options([f"--model_base_path={base}"])
    assert opts.model_base_path_allowlist == (base.resolve(), base.resolve().parent)
    model = model_server_config_pb2.ModelConfig
    allowed = opts.model_base_path_allowlist
    options.check_allowed((model(name="t", base_path=str(tmp_path / "models" / "other")),), allowed, "t")
    (tmp_path / "models" / "escape").symlink_to(tmp_path, target_is_directory=True)
    for bad in (str(tmp_path), f"{base}/../../elsewhere", str(tmp_path / "models" / "escape")):
        with pytest.raises(options.NotAllowedError, match="allowlist"):
            options.check_allowed((model(name="t", base_path=bad),), allowed, "t")
    with pytest.raises(options.OptionsError, match="model_base_path_allowlist"):
        options.parse_options([f"--model_base_path={base}", f"--model_base_path_allowlist={tmp_path / 'x'}"])
    opts = options.parse_options([f"--model_base_path={base}", f"--model_base_path_allowlist={tmp_path}"])
    assert opts.model_base_path_allowlist == (tmp_path.resolve(),)
    (flag,) = [a for a in options.build_parser()._actions if "--model_base_path_allowlist" in a.option_strings]
    assert "not a TF Serving flag" in flag.help
