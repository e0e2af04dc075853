"""``--num_server_processes=2`` (not a TF Serving flag): two processes behind the same ports answer
requests, each picks up new versions, a ReloadConfig RPC reaches both, SIGTERM stops both."""

from __future__ import annotations

import base64
import http.client as http_client
import json
import time

import grpc
import psutil
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from pipeline import raw_inputs
from tests.serving_fixtures import ServerProcess, needs_model, publish, session_model

CONNECTIONS = 16  # new connections per check: all on one process by chance has probability 2**-15


@pytest.fixture(scope="module")
def env(tmp_path_factory, pipeline_runs):
    model = session_model(pipeline_runs)
    root = tmp_path_factory.mktemp("serving_workers")
    publish(model, root / "taxi", 1)
    server = ServerProcess([f"--model_base_path={root / 'taxi'}", "--model_name=taxi",
                            "--file_system_poll_wait_seconds=0.2", "--num_server_processes=2"], root / "server.log")
    local = tf.saved_model.load(str(model.saved_model))
    raw_spec = {name: tf.io.VarLenFeature({tf.float64: tf.int64}.get(spec.dtype, spec.dtype))
                for name, spec in local.signatures["serving_raw"].structured_input_signature[1].items()}
    examples = raw_inputs.tf_examples(list(model.rows[:4]), raw_spec)
    yield {"server": server, "root": root, "model": model, "examples": examples}
    server.stop()


def _pids(env) -> set[int]:
    parent = psutil.Process(env["server"].process.pid)
    return {parent.pid, *(c.pid for c in parent.children())}


def _owner(pids: set[int], server_port: int, client_port: int) -> int:
    """The server process holding the accepted end of the connection from ``client_port``."""
    for pid in pids:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == server_port and c.raddr and c.raddr.port == client_port:
                return pid
    raise AssertionError(f"no server process holds the connection from port {client_port}")


def _each_connection(env, method: str, path: str, body: object = None) -> list[tuple[int, int, object]]:
    """The request on CONNECTIONS new connections, all open at once: (owner pid, status, JSON)."""
    host, port = env["server"].rest.split(":")
    conns = [http_client.HTTPConnection(host, int(port), timeout=120) for _ in range(CONNECTIONS)]
    answers = []
    pids = _pids(env)
    try:
        for conn in conns:
            conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answers.append((_owner(pids, int(port), conn.sock.getsockname()[1]), response.status,
                            json.loads(response.read())))
    finally:
        for conn in conns:
            conn.close()
    return answers


def _wait_for(condition, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@needs_model  # reads the session's serving model (tests/runs.py)
def test_both_processes_listen_and_answer(env):
    pids = _pids(env)
    assert len(pids) == 2
    for port in (env["server"].grpc_port, env["server"].rest_port):
        listening = {pid for pid in pids for c in psutil.Process(pid).net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert listening == pids, port
    body = {"instances": [{"b64": base64.b64encode(e).decode()} for e in env["examples"]]}
    answers = _each_connection(env, "POST", "/v1/models/taxi:predict", body)
    assert {status for _, status, _ in answers} == {200}
    assert {owner for owner, _, _ in answers} == pids
    predictions = [answer["predictions"] for _, _, answer in answers]
    assert all(p == predictions[0] for p in predictions)
    assert env["server"].log.read_text().count("Running gRPC ModelServer at") == 1


@needs_model  # reads the session's serving model (tests/runs.py)
def test_each_process_serves_a_new_version_and_a_reloaded_config(env):
    def states() -> set[tuple]:
        return {(owner, status, tuple((s["version"], s["state"]) for s in body["model_version_status"]))
                for owner, status, body in _each_connection(env, "GET", "/v1/models/taxi")}

    publish(env["model"], env["root"] / "taxi", 2)
    _wait_for(lambda: {s[1:] for s in states()} == {(200, (("2", "AVAILABLE"), ("1", "END")))}, "v2 in both")
    assert {owner for owner, _, _ in states()} == _pids(env)

    config = model_server_config_pb2.ModelServerConfig()
    for name in ("taxi", "taxi_copy"):
        config.model_config_list.config.add(name=name, base_path=str(env["root"] / "taxi"), model_platform="tensorflow")
    with grpc.insecure_channel(env["server"].grpc) as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=300)
    assert response.status.error_code == 0, response.status.error_message
    # Applied by every process before the RPC returned: no waiting.
    answers = _each_connection(env, "GET", "/v1/models/taxi_copy")
    assert {owner for owner, _, _ in answers} == _pids(env)
    assert {(status, body["model_version_status"][0]["state"]) for _, status, body in answers} == {(200, "AVAILABLE")}


@needs_model  # reads the session's serving model (tests/runs.py)
def test_sigterm_stops_every_process(env):
    procs = [psutil.Process(pid) for pid in _pids(env)]
    env["server"].stop()
    _, alive = psutil.wait_procs(procs, timeout=60)
    assert alive == []
