"""Warm-up on load (serving/warmup.py): a version is called before it becomes AVAILABLE.

Fast: a tiny real SavedModel counts its own calls in a variable, so the tests read how many
warm-up calls the load made, and that a failing warm-up file fails the load (TF Serving's rule).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.manager import AVAILABLE, END, MAX_LOAD_ATTEMPTS, ModelManager, load_servable
from serving.warmup import WARMUP_FILE


def _build_counting_model(target: Path) -> None:
    class Module(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.string, name="s")])
        def serve(self, x, s):
            self.calls.assign_add(1)
            return {"y": x * 2.0, "n": tf.strings.length(s)}

    module = Module()
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})


def _write_warmup(model_dir: Path, requests: list[dict[str, tf.Tensor]]) -> None:
    path = model_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            writer.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())


def test_without_a_warmup_file_every_signature_is_called_once_with_a_synthetic_row(tmp_path):
    # Deleting the warm-up (or skipping it for a signature) leaves the counter at 0.
    _build_counting_model(tmp_path / "1")
    servable = load_servable("m", 1, tmp_path / "1")
    assert int(servable.loaded.calls.numpy()) == 1


def test_the_warmup_file_is_replayed_request_by_request(tmp_path):
    # Three records -> three calls (not the synthetic single call): the file's requests are what ran.
    _build_counting_model(tmp_path / "1")
    row = {"x": tf.constant([1.0, 2.0]), "s": tf.constant([b"a", b"bc"])}
    _write_warmup(tmp_path / "1", [row, row, row])
    servable = load_servable("m", 1, tmp_path / "1")
    assert int(servable.loaded.calls.numpy()) == 3


def test_a_failing_warmup_request_fails_the_load_and_names_the_record(tmp_path):
    # TF Serving refuses a version whose warm-up request fails; the manager keeps it out of service
    # (END with the error after its retries) instead of serving a model that cannot answer.
    _build_counting_model(tmp_path / "m" / "1")
    good = {"x": tf.constant([1.0]), "s": tf.constant([b"a"])}
    wrong_dtype = {"x": tf.constant([1], dtype=tf.int64), "s": tf.constant([b"a"])}
    _write_warmup(tmp_path / "m" / "1", [good, wrong_dtype])
    with pytest.raises(ValueError, match=r"tf_serving_warmup_requests record 1: warm-up request failed"):
        load_servable("m", 1, tmp_path / "m" / "1")

    config = model_server_config_pb2.ModelConfig(name="m", base_path=str(tmp_path / "m"), model_platform="tensorflow")
    manager = ModelManager((config,))
    for _ in range(MAX_LOAD_ATTEMPTS):
        manager.poll()
    (state,) = manager.status("m")
    assert state.state == END and "record 1" in state.error, (state.state, state.error)
    assert state.state != AVAILABLE
