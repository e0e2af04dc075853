"""TF Serving's contract, end to end: `python -m pipeline serve` on a real trained model, called with
the real tensorflow-serving-api gRPC stubs and plain HTTP; every answer is compared with the same
SavedModel called in this process."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
import yaml
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from pipeline import raw_inputs
from serving import options
from tests.serving_fixtures import (
    ServerProcess,
    http,
    needs_model,
    publish,
    session_canary_model,
    session_model,
    wrap_for_classify_and_regress,
)

ROWS = 24
MANIFEST = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "tf-serving.yaml"


@pytest.fixture(scope="module")
def env(tmp_path_factory, pipeline_runs) -> dict:
    """One server with two models from a --model_config_file: `taxi` (versions 1 and 2, labels
    stable/canary; two different trainings, so each version answers differently) and `wrapped`
    (classify/regress/echo signatures), Prometheus metrics on."""
    model = session_model(pipeline_runs)
    canary = session_canary_model(pipeline_runs)
    root = tmp_path_factory.mktemp("serving_contract")
    publish(model, root / "taxi", 1)
    publish(canary, root / "taxi", 2)
    wrap_for_classify_and_regress(model.saved_model, root / "wrapped" / "1")
    config = root / "models.pbtxt"
    config.write_text(f"""
model_config_list {{
  config {{
    name: "taxi" base_path: "{root / 'taxi'}" model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{ name: "wrapped" base_path: "{root / 'wrapped'}" }}
}}
""")
    monitoring = root / "monitoring.pbtxt"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
    server = ServerProcess([f"--model_config_file={config}", f"--monitoring_config_file={monitoring}"],
                           root / "server.log")
    local = tf.saved_model.load(str(model.saved_model))
    local_canary = tf.saved_model.load(str(canary.saved_model))
    wrapped = tf.saved_model.load(str(root / "wrapped" / "1"))
    rows = list(model.rows[:ROWS])
    raw_spec = {name: tf.io.VarLenFeature(_example_dtype(spec.dtype))
                for name, spec in local.signatures["serving_raw"].structured_input_signature[1].items()}
    examples = raw_inputs.tf_examples(rows, raw_spec)
    channel = grpc.insecure_channel(server.grpc)
    yield {
        "server": server, "root": root, "rows": rows, "examples": examples, "local": local,
        "versions": {1: local, 2: local_canary}, "wrapped": wrapped,
        "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
        "models": model_service_pb2_grpc.ModelServiceStub(channel),
    }
    channel.close()
    server.stop()


def _example_dtype(serving_dtype: tf.DType) -> tf.DType:
    # serving_raw takes ints as float64 (NaN = missing); in tf.Examples they are int64.
    return {tf.float64: tf.int64}.get(serving_dtype, serving_dtype)


def _expected(env: dict, version: int) -> np.ndarray:
    """Probabilities of taxi version ``version``'s SavedModel, called in this process."""
    out = env["versions"][version].signatures["serving_default"](examples=tf.constant(env["examples"]))
    return out["probabilities"].numpy()


def _raw_json_rows(env: dict) -> list[dict]:
    cols = raw_inputs.raw_columns(env["rows"], env["local"].signatures["serving_raw"])
    as_lists = {k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().tolist()] for k, v in cols.items()}
    return [{k: as_lists[k][i] for k in as_lists} for i in range(len(env["rows"]))]


def _b64_instances(env: dict) -> list[dict]:
    return [{"b64": base64.b64encode(e).decode()} for e in env["examples"]]


# -- status and metadata --------------------------------------------------------------------
@needs_model  # reads the session's serving model (tests/runs.py)
def test_model_status_rest_and_grpc(env):
    server = env["server"]
    status, body = http(server.rest, "GET", "/v1/models/taxi")
    assert status == 200
    assert body == {"model_version_status": [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}} for v in ("2", "1")]}
    assert http(server.rest, "GET", "/v1/models/taxi/versions/1")[1]["model_version_status"][0]["version"] == "1"
    assert http(server.rest, "GET", "/v1/models/taxi/labels/canary")[1]["model_version_status"][0]["version"] == "2"

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "taxi"
    response = env["models"].GetModelStatus(request)
    assert [(s.version, s.state) for s in response.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE), (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    request.model_spec.version_label = "stable"
    assert [s.version for s in env["models"].GetModelStatus(request).model_version_status] == [1]


@needs_model  # reads the session's serving model (tests/runs.py)
def test_metadata_rest_and_grpc_are_the_saved_models_signature_defs(env):
    from tensorflow.core.protobuf import saved_model_pb2

    pb = saved_model_pb2.SavedModel.FromString((env["root"] / "taxi" / "2" / "saved_model.pb").read_bytes())
    expected = pb.meta_graphs[0].signature_def
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "taxi"
    response = env["predict"].GetModelMetadata(request)
    assert response.model_spec.version.value == 2
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    assert dict(defs.signature_def) == dict(expected)

    status, body = http(env["server"].rest, "GET", "/v1/models/taxi/versions/1/metadata")
    assert status == 200 and body["model_spec"] == {"name": "taxi", "signature_name": "", "version": "1"}
    rest_defs = body["metadata"]["signature_def"]["signature_def"]
    assert set(rest_defs) == set(expected)
    assert rest_defs["serving_default"]["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert set(rest_defs["serving_raw"]["inputs"]) == set(expected["serving_raw"].inputs)


# -- predict --------------------------------------------------------------------------------
@needs_model  # reads the session's serving model (tests/runs.py)
def test_rest_predict_row_and_columnar_equal_in_process(env):
    # The default version is the newest (2); the label and version paths below ask for 1: each
    # answer is compared with its own version's SavedModel (they differ: see test_versions_...).
    rest, expected, latest = env["server"].rest, _expected(env, 1), _expected(env, 2)
    status, body = http(rest, "POST", "/v1/models/taxi:predict", {"instances": _b64_instances(env)})
    assert status == 200
    # Several outputs (probabilities, and classes/scores for :classify): one object per row.
    assert body["predictions"][0]["classes"] == ["not big_tipper", "big_tipper"]
    np.testing.assert_allclose(np.array([p["probabilities"] for p in body["predictions"]], np.float32), latest,
                               rtol=1e-6)
    # Named instances of serving_raw (NaN / "" for missing) and the columnar form, on a label.
    rows = _raw_json_rows(env)
    status, body = http(rest, "POST", "/v1/models/taxi/labels/stable:predict",
                        {"signature_name": "serving_raw", "instances": rows})
    assert status == 200, body
    np.testing.assert_allclose(np.array([p["probabilities"] for p in body["predictions"]], np.float32), expected,
                               rtol=1e-6)
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    status, body = http(rest, "POST", "/v1/models/taxi/versions/1:predict",
                        {"signature_name": "serving_raw", "inputs": columns})
    assert status == 200, body
    np.testing.assert_allclose(np.array(body["outputs"]["probabilities"], np.float32), expected, rtol=1e-6)
    # A signature with several outputs answers one object per row.
    status, body = http(rest, "POST", "/v1/models/taxi:predict",
                        {"signature_name": "transform_features", "instances": _b64_instances(env)[:2]})
    assert status == 200 and len(body["predictions"]) == 2 and "big_tipper" in body["predictions"][0]


@needs_model  # reads the session's serving model (tests/runs.py)
def test_grpc_predict_equal_in_process(env):
    expected = _expected(env, 1)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "taxi"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(env["examples"]))
    response = env["predict"].Predict(request)
    assert response.model_spec.version.value == 2 and response.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["probabilities"]), _expected(env, 2))

    raw = raw_inputs.raw_columns(env["rows"], env["local"].signatures["serving_raw"])
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "taxi", "serving_raw"
    request.model_spec.version.value = 1
    for name, tensor in raw.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
    request.output_filter.append("probabilities")
    response = env["predict"].Predict(request)
    assert response.model_spec.version.value == 1
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["probabilities"]), expected)


@needs_model  # reads the session's serving model (tests/runs.py)
def test_each_version_and_label_answers_with_its_own_model(env):
    """Routing: version 1 and label `stable` answer with the first training's SavedModel; version 2,
    label `canary` and no version with the second's. The two models differ on these rows (asserted
    first), so a server that ignored the version or label, or swapped them, fails here."""
    v1, v2 = _expected(env, 1), _expected(env, 2)
    assert np.abs(v1 - v2).max() > 1e-3, "the two versions must answer differently"
    routes = {"": 2, "/versions/1": 1, "/versions/2": 2, "/labels/stable": 1, "/labels/canary": 2}
    for route, version in routes.items():
        status, body = http(env["server"].rest, "POST", f"/v1/models/taxi{route}:predict",
                            {"instances": _b64_instances(env)})
        assert status == 200, body
        np.testing.assert_allclose(np.array([p["probabilities"] for p in body["predictions"]], np.float32),
                                   _expected(env, version), rtol=1e-6, err_msg=f"REST {route or 'default'}")
    for how, version in ((None, 2), (1, 1), (2, 2), ("stable", 1), ("canary", 2)):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "taxi"
        if isinstance(how, int):
            request.model_spec.version.value = how
        elif how:
            request.model_spec.version_label = how
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(env["examples"]))
        response = env["predict"].Predict(request)
        assert response.model_spec.version.value == version, how
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs["probabilities"]), _expected(env, version),
                                      err_msg=f"gRPC {how}")


# -- classify and regress -------------------------------------------------------------------
@needs_model  # reads the session's serving model (tests/runs.py)
def test_classify_and_regress_rest_and_grpc(env):
    p = _expected(env, 1)[:, 0]  # `wrapped` is taxi version 1's model
    inputs = tf.constant(env["examples"])
    local_scores = env["wrapped"].signatures["classify"](inputs=inputs)["scores"].numpy()
    np.testing.assert_allclose(local_scores[:, 1], p, rtol=1e-6)

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "wrapped", "classify"
    request.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in env["examples"])
    result = env["predict"].Classify(request).result
    assert [[c.label for c in row.classes] for row in result.classifications] == [["0", "1"]] * ROWS
    np.testing.assert_array_equal([[c.score for c in row.classes] for row in result.classifications], local_scores)

    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "wrapped", "regress"
    request.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in env["examples"])
    values = [r.value for r in env["predict"].Regress(request).result.regressions]
    np.testing.assert_array_equal(np.array(values, np.float32), p)

    # The pipeline's own model answers :classify on its default signature: the class names
    # from the config's label and [1 - p, p] as scores (TF Serving's classes/scores outputs).
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "taxi"
    request.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in env["examples"])
    result = env["predict"].Classify(request).result
    names = [[c.label for c in row.classes] for row in result.classifications]
    assert names == [["not big_tipper", "big_tipper"]] * ROWS
    np.testing.assert_allclose([[c.score for c in row.classes][1] for row in result.classifications],
                               _expected(env, 2)[:, 0], rtol=1e-6)

    # REST: tf.Examples as JSON objects (numbers, strings), with a shared context.
    rows = env["rows"][:3]
    objs = [{"fare": float(r["fare"]), "trip_miles": float(r["trip_miles"]), "payment_type": r["payment_type"]}
            for r in rows]
    status, body = http(env["server"].rest, "POST", "/v1/models/wrapped:classify",
                        {"signature_name": "classify", "context": {"company": "Flash Cab"}, "examples": objs})
    assert status == 200, body
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "fare": tf.train.Feature(float_list=tf.train.FloatList(value=[o["fare"]])),
        "trip_miles": tf.train.Feature(float_list=tf.train.FloatList(value=[o["trip_miles"]])),
        "payment_type": tf.train.Feature(bytes_list=tf.train.BytesList(value=[o["payment_type"].encode()])),
        "company": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Flash Cab"])),
    })).SerializeToString() for o in objs]
    scores = env["wrapped"].signatures["classify"](inputs=tf.constant(examples))["scores"].numpy()
    assert [[c[0] for c in row] for row in body["results"]] == [["0", "1"]] * 3
    np.testing.assert_allclose([[c[1] for c in row] for row in body["results"]], scores, rtol=1e-6)
    status, body = http(env["server"].rest, "POST", "/v1/models/wrapped:regress",
                        {"signature_name": "regress", "context": {"company": "Flash Cab"}, "examples": objs})
    assert status == 200
    np.testing.assert_allclose(body["results"], scores[:, 1], rtol=1e-6)


# -- bad input ------------------------------------------------------------------------------
BAD_REST = [
    # (method, path, body or raw bytes, status, words the error names)
    ("POST", "/v1/models/taxi:predict", b"{not json", 400, ["JSON Parse error"]),
    ("POST", "/v1/models/taxi:predict", b"[1, 2]", 400, ["JSON object"]),
    ("POST", "/v1/models/taxi:predict", {"instances": []}, 400, ["instances"]),
    ("POST", "/v1/models/taxi:predict", {"instances": [1], "inputs": [1]}, 400, ["exactly one of"]),
    ("POST", "/v1/models/nope:predict", {"instances": [{"b64": ""}]}, 404, ["nope"]),
    ("POST", "/v1/models/taxi/versions/7:predict", {"instances": [{"b64": ""}]}, 404, ["taxi", "7"]),
    ("POST", "/v1/models/taxi/labels/gold:predict", {"instances": [{"b64": ""}]}, 404, ["gold"]),
    ("POST", "/v1/models/taxi:predict", {"signature_name": "nope", "instances": [1]}, 404, ["nope"]),
    ("POST", "/v1/models/taxi:predict", {"signature_name": "serving_raw", "instances": [{"fare": 1.0}]}, 400,
     ["missing input(s)", "trip_miles"]),
    ("POST", "/v1/models/taxi:predict", {"instances": [{"b64": "!!!"}]}, 400, ["base64", "examples"]),
    ("POST", "/v1/models/taxi:predict", {"instances": [3.5]}, 400, ["examples", "string"]),
    ("POST", "/v1/models/taxi:predict", {"instances": [[{"b64": ""}]]}, 400, ["examples", "shape"]),
    ("POST", "/v1/models/taxi:frobnicate", {}, 404, ["Malformed request"]),
    ("GET", "/v1/models/nope", None, 404, ["nope"]),
    ("GET", "/v1/models/taxi/versions/x", None, 400, ["version"]),
    ("GET", "/v2/anything", None, 404, ["Malformed request"]),
    # The pipeline's signatures answer :classify; transform_features has no classes/scores outputs.
    ("POST", "/v1/models/taxi:classify", {"signature_name": "transform_features", "examples": [{"fare": 1.0}]}, 400,
     ["classes", "scores"]),
    ("POST", "/v1/models/wrapped:regress", {"signature_name": "regress", "examples": [{"fare": [1, "a"]}]}, 400,
     ["fare"]),
    ("POST", "/v1/models/wrapped:classify", {"signature_name": "classify", "examples": [3]}, 400, ["examples[0]"]),
]


@needs_model  # reads the session's serving model (tests/runs.py)
@pytest.mark.parametrize(("method", "path", "body", "status", "words"), BAD_REST,
                         ids=[f"{m} {p} {i}" for i, (m, p, *_) in enumerate(BAD_REST)])
def test_bad_rest_requests_get_named_errors(env, method, path, body, status, words):
    raw = body if isinstance(body, bytes) else None
    got, answer = http(env["server"].rest, method, path, None if raw else body, raw=raw)
    assert got == status, answer
    assert isinstance(answer, dict) and set(answer) == {"error"}, answer
    for word in words:
        assert word in answer["error"], answer


@needs_model  # reads the session's serving model (tests/runs.py)
def test_mistyped_feature_in_a_tf_example_is_named(env):
    example = tf.train.Example(features=tf.train.Features(feature={
        "fare": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"ten dollars"]))}))
    status, body = http(env["server"].rest, "POST", "/v1/models/taxi:predict",
                        {"instances": [{"b64": base64.b64encode(example.SerializeToString()).decode()}]})
    assert status == 400 and "fare" in body["error"], body


def _grpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request)
    return err.value


@needs_model  # reads the session's serving model (tests/runs.py)
def test_bad_grpc_requests_get_codes_and_named_errors(env):
    stub = env["predict"]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "nope"
    assert _grpc_error(stub.Predict, request).code() == grpc.StatusCode.NOT_FOUND
    request.model_spec.name = "taxi"
    request.model_spec.version.value = 9
    assert _grpc_error(stub.Predict, request).code() == grpc.StatusCode.NOT_FOUND
    request.model_spec.ClearField("version")
    request.model_spec.signature_name = "nope"
    assert _grpc_error(stub.Predict, request).code() == grpc.StatusCode.NOT_FOUND
    request.model_spec.signature_name = "serving_raw"
    request.inputs["fare"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
    err = _grpc_error(stub.Predict, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "trip_miles" in err.details()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "taxi"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
    err = _grpc_error(stub.Predict, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "examples" in err.details() and "float" in err.details()
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(env["examples"][:1]))
    request.output_filter.append("nope")
    assert _grpc_error(stub.Predict, request).code() == grpc.StatusCode.INVALID_ARGUMENT
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "nope"
    assert _grpc_error(env["models"].GetModelStatus, status_request).code() == grpc.StatusCode.NOT_FOUND
    # Still serving after all of the above.
    assert http(env["server"].rest, "GET", "/healthz") == (200, {"status": "SERVING"})


# -- metrics, client, flags -----------------------------------------------------------------
@needs_model  # reads the session's serving model (tests/runs.py)
def test_prometheus_metrics_count_requests_errors_and_latency(env):
    http(env["server"].rest, "POST", "/v1/models/taxi/versions/1:predict", {"instances": _b64_instances(env)[:1]})
    http(env["server"].rest, "POST", "/v1/models/taxi:predict", {"instances": [3.5]})
    status, text = http(env["server"].rest, "GET", "/monitoring/prometheus/metrics")
    assert status == 200
    assert ':tensorflow:serving:request_count{model_name="taxi",model_version="1",API="Predict",entrypoint="REST",' \
           'status="OK"}' in text
    assert ':tensorflow:serving:request_error_count{model_name="taxi",model_version="2",API="Predict",' \
           'entrypoint="REST",status="INVALID_ARGUMENT"}' in text
    assert ':tensorflow:serving:request_latency_bucket{model_name="taxi",model_version="1",API="Predict",' \
           'entrypoint="REST",le="+Inf"}' in text
    assert ':tensorflow:serving:model_load_count{model_name="taxi",model_version="2",status="ok"} 1' in text


@needs_model  # reads the session's serving model (tests/runs.py)
def test_predict_cli_rest_and_grpc(env, tmp_path):
    header = list(env["rows"][0])
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text(",".join(header) + "\n" + "\n".join(",".join(r[h] for h in header) for r in env["rows"]) + "\n")
    expected = _expected(env, 2)[:, 0]  # no version asked: the newest
    for flags in ([f"--server={env['server'].rest}"], [f"--server={env['server'].grpc}", "--grpc"]):
        proc = subprocess.run([sys.executable, "-m", "pipeline", "predict", "--csv", str(csv_path),
                               "--model_name", "taxi", *flags], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        # The predicted class's name, then each class's probability under its name.
        lines = [line.split(",") for line in proc.stdout.splitlines()]
        assert lines[0] == ["predicted_class", "not big_tipper", "big_tipper"]
        np.testing.assert_allclose(np.array([float(r[2]) for r in lines[1:]]), expected, rtol=1e-5)
        assert [r[0] for r in lines[1:]] == ["big_tipper" if p > 0.5 else "not big_tipper" for p in expected]
    proc = subprocess.run([sys.executable, "-m", "pipeline", "predict", "--csv", str(tmp_path / "missing.csv"),
                           "--server", env["server"].rest], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "missing.csv" in proc.stderr and "Traceback" not in proc.stderr


def _reachable(host: str, port: int) -> bool:
    """A TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def _other_addresses() -> list[str]:
    """Addresses of this machine other than 127.0.0.1: 127.0.0.2 (loopback too, but a socket bound
    to 127.0.0.1 does not accept there) and the address of the default route's interface, if any."""
    addresses = ["127.0.0.2"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))  # a route lookup only: UDP connect sends nothing
            if not probe.getsockname()[0].startswith("127."):
                addresses.append(probe.getsockname()[0])
        except OSError:
            pass
    return addresses


@needs_model  # reads the session's serving model (tests/runs.py)
def test_server_binds_loopback_by_default(env, tmp_path):
    """The sockets, not the log: both ports accept on 127.0.0.1 and refuse every other address of
    the machine. The control: the same probe reaches a server started with --bind_address=0.0.0.0
    on those addresses, so a refused connection above means "not bound there", not a broken probe."""
    server = env["server"]
    assert f"Running gRPC ModelServer at 127.0.0.1:{server.grpc_port}" in server.log.read_text()
    others = _other_addresses()
    for port in (server.grpc_port, server.rest_port):
        assert _reachable("127.0.0.1", port), port
        for host in others:
            assert not _reachable(host, port), f"{host}:{port} accepts connections"
    wide = ServerProcess([f"--model_base_path={env['root'] / 'taxi'}", "--model_name=taxi", "--bind_address=0.0.0.0"],
                         tmp_path / "wide.log")
    try:
        for port in (wide.grpc_port, wide.rest_port):
            for host in ("127.0.0.1", *others):
                assert _reachable(host, port), f"control: {host}:{port} refused with --bind_address=0.0.0.0"
    finally:
        wide.stop()


def test_bad_flags_and_config_files_are_named(tmp_path):
    bad = tmp_path / "models.pbtxt"
    bad.write_text('model_config_list { config { name: "a" base_path: "/x" bogus: 1 } }\n')
    with pytest.raises(options.OptionsError, match=r"models\.pbtxt.*1:.*bogus"):
        options.parse_options([f"--model_config_file={bad}"])
    bad.write_text('model_config_list { config { name: "a" } }\n')
    with pytest.raises(options.OptionsError, match=r"config\[0\] \(a\): base_path is required"):
        options.parse_options([f"--model_config_file={bad}"])
    batching = tmp_path / "batching.pbtxt"
    batching.write_text("max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 16\n")
    with pytest.raises(options.OptionsError, match=r"batching\.pbtxt.*allowed_batch_sizes"):
        options.parse_options(["--model_base_path=/x", "--enable_batching", f"--batching_parameters_file={batching}"])
    batching.write_text("max_batch_size { value: 8 } batch_timeout_micros { value: 500 }\n"
                        "num_batch_threads { value: 2 }\n")
    opts = options.parse_options(["--model_base_path=/x", "--enable_batching=true",
                                  f"--batching_parameters_file={batching}"])
    assert (opts.batching.max_batch_size, opts.batching.batch_timeout_micros, opts.batching.num_batch_threads,
            opts.batching.max_enqueued_batches) == (8, 500, 2, 10)
    with pytest.raises(options.OptionsError, match="--model_base_path"):
        options.parse_options([])
    proc = subprocess.run([sys.executable, "-m", "pipeline", "serve", f"--model_config_file={tmp_path / 'no.pbtxt'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no.pbtxt" in proc.stderr and "Traceback" not in proc.stderr


@needs_model  # reads the session's serving model (tests/runs.py)
def test_rest_response_is_tf_serving_json(env):
    """NaN travels as TF Serving writes it (a bare NaN literal) and strings as UTF-8.

    Checks the values, not that a body exists: an all-missing row answers what the SavedModel
    answers in process; NaN, +-Infinity and non-ASCII strings come back unchanged through the
    `echo` signature (bare NaN/Infinity literals in the body), and bytes that are not UTF-8 come
    back as {"b64": ...}."""
    instance = dict.fromkeys(_raw_json_rows(env)[0], float("nan")) | {"company": "", "payment_type": ""}
    status, body = http(env["server"].rest, "POST", "/v1/models/taxi:predict",
                        {"signature_name": "serving_raw", "instances": [instance]})
    assert status == 200 and np.isfinite(body["predictions"][0]["probabilities"][0])
    assert json.dumps(body["predictions"])
    local = env["versions"][2].signatures["serving_raw"]  # no version asked: the newest
    specs = local.structured_input_signature[1]
    want = local(**{k: tf.constant([instance[k]], specs[k].dtype) for k in specs})["probabilities"].numpy()
    np.testing.assert_allclose(body["predictions"][0]["probabilities"], want[0], rtol=1e-6)

    floats = [float("nan"), float("inf"), float("-inf"), 1.5]
    strings = ["Café", "日本語", "🚕 taxi", "plain"]
    request = {"signature_name": "echo", "instances": [{"x": x, "s": t} for x, t in zip(floats, strings, strict=True)]
               + [{"x": 0.0, "s": {"b64": base64.b64encode(b"\xff\xfe").decode()}}]}
    with urllib.request.urlopen(urllib.request.Request(
            f"http://{env['server'].rest}/v1/models/wrapped:predict", data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"}), timeout=60) as response:
        assert response.status == 200
        raw = response.read()
    assert b"NaN" in raw and b"-Infinity" in raw  # bare literals, as TF Serving writes them
    predictions = json.loads(raw.decode("utf-8"))["predictions"]
    assert np.isnan(predictions[0]["x"])
    assert [p["x"] for p in predictions[1:]] == [float("inf"), float("-inf"), 1.5, 0.0]
    assert [p["s"] for p in predictions] == [*strings, {"b64": base64.b64encode(b"\xff\xfe").decode()}]


def test_kubernetes_manifest_runs_tf_serving_with_flags_and_configs_this_server_accepts(tmp_path):
    """The production manifest and `python -m pipeline serve` are interchangeable: its
    tensorflow_model_server arguments and ConfigMap files parse here unchanged."""
    docs = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}
    for name, text in docs["ConfigMap"]["data"].items():
        (tmp_path / name).write_text(text)
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("tensorflow/serving:")
    opts = options.parse_options([a.replace("/config/", f"{tmp_path}/") for a in container["args"]])
    assert [m.name for m in opts.models] == ["taxi"] and opts.models[0].base_path == "/models/taxi/serving"
    assert opts.batching.max_batch_size == 32 and opts.metrics_path == "/monitoring/prometheus/metrics"
    assert {p["port"] for p in docs["Service"]["spec"]["ports"]} == {opts.port, opts.rest_api_port}
