"""A real trained model and real examples for the serving tests, built once per test session.

The serving tests and the InfraValidator tests (in components/) share it: running the real
pipeline up to Trainer on a small taxi sample is the expensive part, so it happens once.
Trainer's ``Format-Serving`` directory is exactly what Pusher copies to ``pushed/serving/<ver>/``.
"""

from __future__ import annotations

import http.client as http_client
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from serving import processes

TINY_TRAINING = {"train_steps": 40, "eval_steps": 5, "epochs": 1, "early_stopping_patience": 1}
# Every kind of raw input (float, int, string; missing values imputed) with the cheapest analyzers:
# Transform dominates the build, and serving does not care how rich the preprocessing is.
LIGHT_FEATURES = [
    {"name": "trip_miles", "type": "float", "steps": [{"impute": {"strategy": "median"}}, "log1p", "z_score"]},
    {"name": "fare", "type": "float", "steps": [{"impute": {"strategy": "mean"}}, "z_score"]},
    {"name": "trip_seconds", "type": "int", "steps": [{"impute": {"strategy": "median"}}, "z_score"]},
    {"name": "payment_type", "type": "string", "steps": [{"vocabulary": {"top_k": 10, "oov_buckets": 1}}]},
    {"name": "company", "type": "string", "steps": [{"vocabulary": {"top_k": 20, "oov_buckets": 1}}]},
    {"name": "trip_start_hour", "type": "int", "steps": [{"categorical_identity": {"num_buckets": 24}}]},
    {"name": "pickup_latitude", "type": "float", "steps": [{"bucketize": {"num_buckets": 4}}]},
]


@dataclass(frozen=True)
class TrainedModel:
    saved_model: Path      # a SavedModel directory (Trainer's Format-Serving)
    model_artifact: Path   # Trainer's Model artifact (what InfraValidator takes)
    examples: Path         # CsvExampleGen's Examples artifact (Split-train/eval/test)
    rows: tuple = field(repr=False)  # raw CSV rows of the sample, as dicts


# A second Trainer run on the same pipeline root with other training settings: Transform and
# everything before it come from the cache, only Trainer runs again. Its weights differ from the
# first model's, so a server that routes a version or label to the wrong model answers wrongly.
CANARY_TRAINING = {**TINY_TRAINING, "train_steps": 90}


def _model(result, rows: tuple) -> TrainedModel:
    model, examples = result.facts["model"], result.facts["examples"]
    return TrainedModel(model / "Format-Serving", model, examples, rows)


def trained_model(root: Path) -> TrainedModel:
    """The serving model built outside a test session (benchmarks/bench_serving.py), from the same
    declaration as the session's run (tests/runs.py ``serving_model``)."""
    from tests.run_registry import Workspace, execute
    from tests.runs import SERVING_MODEL

    ws = Workspace(root)
    result = execute(SERVING_MODEL, ws)
    assert not result.error, result.tail()
    model, examples = newest_outputs(root)
    return TrainedModel(model / "Format-Serving", model, examples, ws.resources["rows"])


def newest_outputs(root: Path, name: str = "serving_model") -> tuple[Path, Path]:
    """The newest Trainer model and CsvExampleGen examples of pipeline ``name`` under ``root`` (a
    re-run adds new ones when the module files changed)."""
    pipeline_root = root / "outputs" / name / "pipeline_root"

    def newest(folder: Path) -> Path:
        return max((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return newest(pipeline_root / "Trainer" / "model"), newest(pipeline_root / "CsvExampleGen" / "examples")


def needs_model(test):
    """Marks a test that reads the session's serving models (tests/runs.py: the reliability sequence's
    model, then ``serving_canary``)."""
    return pytest.mark.e2e(pytest.mark.runs("reliability_final", "serving_canary")(test))


def session_model(pipeline_runs) -> TrainedModel:
    """The session's model: Trainer's of the reliability sequence (tests/runs.py ``serving_model``'s
    pipeline, run to the end after the kills)."""
    result = pipeline_runs.wait("reliability_final")
    return _model(result, result.workspace.resources["rows"])


def session_canary_model(pipeline_runs) -> TrainedModel:
    """A second model of the session's pipeline (other training settings; see CANARY_TRAINING)."""
    first = pipeline_runs.wait("reliability_final")
    canary = pipeline_runs.wait("serving_canary")
    assert canary.facts["model"] != first.facts["model"], "Trainer did not run again"
    return _model(canary, first.workspace.resources["rows"])


def publish(model: TrainedModel, base: Path, version: int) -> Path:
    """Copy the model to ``base/<version>/`` the way Pusher does (TF Serving's layout)."""
    target = base / str(version)
    tmp = base / f".{version}.tmp"
    shutil.copytree(model.saved_model, tmp)
    tmp.rename(target)  # atomic: a polling server never sees a half-copied version
    return target


class ServerProcess:
    """``python -m pipeline serve`` as a child process on free ports, stopped by its pid."""

    def __init__(self, flags: list[str], log: Path, timeout: float = 120.0):
        from serving.client import free_port

        self.grpc_port, self.rest_port = free_port(), free_port()
        while self.rest_port == self.grpc_port:
            self.rest_port = free_port()
        self.log = log
        # As InfraValidator starts it: it ends by itself if the test session dies without stopping it.
        self.process = processes.start_server([f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
                                               *flags], log)
        deadline = time.monotonic() + timeout
        while "Exporting HTTP/REST API at" not in log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"model server did not start:\n{log.read_text(errors='replace')[-5000:]}")
            time.sleep(0.2)
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.rest = f"127.0.0.1:{self.rest_port}"

    def stop(self) -> None:
        processes.stop(self.process)


def http(server: str, method: str, path: str, body: object = None,
         raw: bytes | None = None) -> tuple[int, object]:
    """A plain HTTP call: (status, parsed JSON or text)."""
    host, port = server.split(":")
    conn = http_client.HTTPConnection(host, int(port), timeout=120)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    try:
        return response.status, json.loads(text)
    except json.JSONDecodeError:
        return response.status, text


def wrap_for_classify_and_regress(saved_model: Path, target: Path) -> None:
    """The model re-exported with TF Serving's classify and regress signatures on top of its
    serving_default: classify -> classes ["0", "1"] and scores [1 - p, p]; regress -> p; and
    echo -> its inputs x (float) and s (string) unchanged."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    module = tf.saved_model.load(str(saved_model))
    predict = module.signatures["serving_default"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(inputs):
        p = predict(examples=inputs)["probabilities"]
        classes = tf.tile(tf.constant([[b"0", b"1"]]), [tf.shape(p)[0], 1])
        return {"classes": classes, "scores": tf.concat([1.0 - p, p], axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(inputs):
        return {"outputs": predict(examples=inputs)["probabilities"]}

    # Echoes its inputs: how the REST JSON writes NaN/Infinity and non-ASCII or non-UTF-8 strings.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.string, name="s")])
    def echo(x, s):
        return {"x": tf.identity(x), "s": tf.identity(s)}

    module.classify_fn, module.regress_fn, module.echo_fn = classify, regress, echo
    tf.saved_model.save(module, str(target), signatures={"classify": classify, "regress": regress, "echo": echo})
    # The method names TF's classification/regression signature builders set.
    proto = saved_model_pb2.SavedModel.FromString((target / "saved_model.pb").read_bytes())
    for name, method in (("classify", "tensorflow/serving/classify"), ("regress", "tensorflow/serving/regress")):
        proto.meta_graphs[0].signature_def[name].method_name = method
    (target / "saved_model.pb").write_bytes(proto.SerializeToString())
