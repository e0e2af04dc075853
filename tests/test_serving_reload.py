"""Hot reload under concurrent load, server-side batching, version policies and the body limit,
on `python -m pipeline serve` with a real trained model (gRPC stubs of tensorflow-serving-api and
plain HTTP)."""

from __future__ import annotations

import base64
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from pipeline import raw_inputs
from serving.manager import wanted_versions
from tests.serving_fixtures import ServerProcess, http, needs_model, publish, session_model

MAX_BODY = 200_000


@pytest.fixture(scope="module")
def env(tmp_path_factory, pipeline_runs):
    model = session_model(pipeline_runs)
    root = tmp_path_factory.mktemp("serving_reload")
    publish(model, root / "taxi", 1)
    batching = root / "batching.pbtxt"
    batching.write_text("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 2000 }\n"
                        "num_batch_threads { value: 2 }\nmax_enqueued_batches { value: 100 }\n")
    server = ServerProcess([f"--model_base_path={root / 'taxi'}", "--model_name=taxi",
                            "--file_system_poll_wait_seconds=0.2", "--enable_batching",
                            f"--batching_parameters_file={batching}", f"--rest_api_max_body_bytes={MAX_BODY}"],
                           root / "server.log")
    local = tf.saved_model.load(str(model.saved_model))
    raw_spec = {name: tf.io.VarLenFeature({tf.float64: tf.int64}.get(spec.dtype, spec.dtype))
                for name, spec in local.signatures["serving_raw"].structured_input_signature[1].items()}
    examples = raw_inputs.tf_examples(list(model.rows[:64]), raw_spec)
    channel = grpc.insecure_channel(server.grpc)
    yield {"server": server, "root": root, "model": model, "local": local, "examples": examples,
           "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
           "models": model_service_pb2_grpc.ModelServiceStub(channel)}
    channel.close()
    server.stop()


def _request(examples: list[bytes]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "taxi"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples))
    return request


def _wait_for(condition, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _states(env) -> dict[str, str]:
    status, body = http(env["server"].rest, "GET", "/v1/models/taxi")
    assert status == 200, body
    return {s["version"]: s["state"] for s in body["model_version_status"]}


@needs_model  # reads the session's serving model (tests/runs.py)
def test_batched_predictions_equal_in_process(env):
    """Concurrent requests of different sizes are merged into batches; each gets its own rows back."""
    examples, results, errors = env["examples"], {}, []
    slices = [(i, i + 1 + i % 3) for i in range(0, 48, 3)]
    barrier = threading.Barrier(len(slices))

    def call(lo: int, hi: int) -> None:
        try:
            barrier.wait()
            response = env["predict"].Predict(_request(examples[lo:hi]), timeout=120)
            results[(lo, hi)] = tf.make_ndarray(response.outputs["probabilities"])
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=s) for s in slices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    expected = env["local"].signatures["serving_default"](examples=tf.constant(examples))["probabilities"].numpy()
    for (lo, hi), got in results.items():
        np.testing.assert_allclose(got, expected[lo:hi], rtol=1e-5, atol=1e-7)
    # No --monitoring_config_file: no metrics endpoint.
    assert http(env["server"].rest, "GET", "/monitoring/prometheus/metrics")[0] == 404


def _batch_histogram(text: str) -> dict[str, float]:
    """The taxi model's :tensorflow:serving:batch_size histogram: {"le=<bound>": cumulative, "sum", "count"}."""
    out = {}
    for line in text.splitlines():
        if line.startswith(':tensorflow:serving:batch_size_bucket{model_name="taxi",le="'):
            out["le=" + line.split('le="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(':tensorflow:serving:batch_size_sum{model_name="taxi"}') or \
                line.startswith(':tensorflow:serving:batch_size_count{model_name="taxi"}'):
            out[line.split("{")[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    return out


@needs_model  # reads the session's serving model (tests/runs.py)
def test_concurrent_one_row_requests_run_as_shared_batches(env, tmp_path):
    """Batching really happens: 3 bursts of 16 concurrent one-row gRPC requests on a server with
    batching and Prometheus metrics on. The server's batch_size histogram must account for every
    row (sum = 48) in fewer executed batches than requests, with at least one batch of more than
    one row: one-row requests only make such a batch if the server merged them. Without batching
    (or with a batcher that runs each task alone) count = 48 and every batch has 1 row."""
    batching = tmp_path / "batching.pbtxt"
    # A 50 ms wait for more rows: the 16 requests of a burst arrive well within it.
    batching.write_text("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 50000 }\n"
                        "num_batch_threads { value: 2 }\nmax_enqueued_batches { value: 100 }\n")
    monitoring = tmp_path / "monitoring.pbtxt"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
    server = ServerProcess([f"--model_base_path={env['root'] / 'taxi'}", "--model_name=taxi", "--enable_batching",
                            f"--batching_parameters_file={batching}", f"--monitoring_config_file={monitoring}"],
                           tmp_path / "server.log")
    requests, bursts, errors = 16, 3, []
    try:
        with grpc.insecure_channel(server.grpc) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            stub.Predict(_request(env["examples"][:1]), timeout=120)  # warm up: loaded, first call traced
            text = http(server.rest, "GET", "/monitoring/prometheus/metrics")[1]
            before = _batch_histogram(text)
            for _ in range(bursts):
                barrier = threading.Barrier(requests)

                def call(i: int, barrier: threading.Barrier) -> None:
                    try:
                        barrier.wait()
                        stub.Predict(_request(env["examples"][i:i + 1]), timeout=120)
                    except Exception as exc:  # collected, asserted below
                        errors.append(exc)

                threads = [threading.Thread(target=call, args=(i, barrier)) for i in range(requests)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            status, text = http(server.rest, "GET", "/monitoring/prometheus/metrics")
    finally:
        server.stop()
    assert not errors, errors
    assert status == 200
    after = _batch_histogram(text)
    rows = after["sum"] - before.get("sum", 0)
    batches = after["count"] - before.get("count", 0)
    single = after["le=1"] - before.get("le=1", 0)  # batches of exactly one row
    assert rows == requests * bursts, (before, after)
    assert batches < requests * bursts and single < batches, (before, after)


@needs_model  # reads the session's serving model (tests/runs.py)
def test_hot_reload_under_concurrent_load_fails_no_request(env):
    """v2 is pushed while gRPC and REST clients keep sending requests: v2 takes over, v1 is unloaded,
    no request fails. Then a corrupt v3 is pushed: it is reported, v2 keeps serving."""
    stop, errors, versions, counts = threading.Event(), [], set(), [0, 0]
    examples = env["examples"][:4]
    body = {"instances": [{"b64": base64.b64encode(e).decode()} for e in examples]}

    def grpc_worker() -> None:
        while not stop.is_set():
            try:
                response = env["predict"].Predict(_request(examples), timeout=120)
                versions.add(response.model_spec.version.value)
                counts[0] += 1
            except grpc.RpcError as exc:
                errors.append(f"gRPC {exc.code().name}: {exc.details()}")

    def rest_worker() -> None:
        while not stop.is_set():
            status, answer = http(env["server"].rest, "POST", "/v1/models/taxi:predict", body)
            if status != 200:
                errors.append(f"REST {status}: {answer}")
            counts[1] += 1

    workers = [threading.Thread(target=grpc_worker) for _ in range(3)] + \
              [threading.Thread(target=rest_worker) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        _wait_for(lambda: counts[0] > 10 and counts[1] > 10, "requests before the push")
        publish(env["model"], env["root"] / "taxi", 2)
        _wait_for(lambda: _states(env) == {"2": "AVAILABLE", "1": "END"}, "v2 to replace v1")
        before = list(counts)
        _wait_for(lambda: counts[0] > before[0] + 10 and counts[1] > before[1] + 10, "requests after the swap")
        broken = env["root"] / "broken"
        shutil.copytree(env["model"].saved_model, broken)
        (broken / "saved_model.pb").write_bytes(b"\x0a\xff truncated")  # a corrupt push
        broken.rename(env["root"] / "taxi" / "3")
        _wait_for(lambda: _states(env).get("3") == "END", "the broken v3 to fail")
        before = list(counts)
        _wait_for(lambda: counts[0] > before[0] + 5 and counts[1] > before[1] + 5, "requests after the bad push")
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert errors == []
    assert versions == {1, 2}
    body = http(env["server"].rest, "GET", "/v1/models/taxi/versions/3")[1]
    (v3,) = body["model_version_status"]
    assert v3["state"] == "END" and v3["status"]["error_code"] != "OK"
    assert "3/saved_model.pb: not a SavedModel" in v3["status"]["error_message"]
    assert _states(env)["2"] == "AVAILABLE"


@needs_model  # reads the session's serving model (tests/runs.py)
def test_reload_config_rpc_adds_a_model(env):
    config = model_server_config_pb2.ModelServerConfig()
    for name in ("taxi", "taxi_copy"):
        config.model_config_list.config.add(name=name, base_path=str(env["root"] / "taxi"), model_platform="tensorflow")
    config.model_config_list.config[1].model_version_policy.specific.versions.append(1)
    response = env["models"].HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config))
    assert response.status.error_code == 0, response.status.error_message
    _wait_for(lambda: http(env["server"].rest, "GET", "/v1/models/taxi_copy")[0] == 200, "taxi_copy")
    body = http(env["server"].rest, "GET", "/v1/models/taxi_copy")[1]
    assert [(s["version"], s["state"]) for s in body["model_version_status"]] == [("1", "AVAILABLE")]
    bad = model_server_config_pb2.ModelServerConfig()
    bad.model_config_list.config.add(name="no_path")
    response = env["models"].HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=bad))
    assert response.status.error_code == 3 and "base_path" in response.status.error_message


@needs_model  # reads the session's serving model (tests/runs.py)
def test_body_over_the_limit_gets_413_and_the_server_stays_up(env):
    status, body = http(env["server"].rest, "POST", "/v1/models/taxi:predict",
                        raw=b'{"instances": ["' + b"x" * (MAX_BODY + 100_000) + b'"]}')
    assert status == 413 and "--rest_api_max_body_bytes" in body["error"], body
    assert http(env["server"].rest, "GET", "/healthz") == (200, {"status": "SERVING"})


@pytest.mark.parametrize(("policy", "on_disk", "wanted"), [
    ("", [1, 3, 2], {3}),
    ("latest { num_versions: 2 }", [1, 3, 2], {2, 3}),
    ("all {}", [1, 3, 2], {1, 2, 3}),
    ("specific { versions: 1 versions: 7 }", [1, 3, 2], {1}),
])
def test_version_policy(policy, on_disk, wanted):
    from google.protobuf import text_format

    config = text_format.Parse(f"name: 'm' base_path: '/x' model_version_policy {{ {policy} }}",
                               model_server_config_pb2.ModelConfig())
    assert wanted_versions(config, on_disk) == wanted


@needs_model  # reads the session's serving model (tests/runs.py)
def test_pushed_layout_ignores_partial_and_non_numeric_folders(env, tmp_path):
    from serving.manager import ModelManager

    base = tmp_path / "base"
    (base / "5").mkdir(parents=True)              # no saved_model.pb yet (a copy in progress)
    (base / "tmp-123").mkdir()
    shutil.copytree(env["model"].saved_model, base / "4")
    config = model_server_config_pb2.ModelConfig(name="m", base_path=str(base))
    manager = ModelManager((config,), poll_seconds=0)
    manager.start()
    assert manager.resolve("m").version == 4
    assert [(s.version, s.state) for s in manager.status("m")] == [(4, "AVAILABLE")]
    manager.stop()

