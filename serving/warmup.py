"""Warm-up: run every signature once while a version loads, before it is AVAILABLE.

A loaded SavedModel's first call builds and optimizes the function's graph: 0.6 s alone on the
taxi model, and 15-22 s when 32 request threads make that first call at once (measured in
benchmarks/bench_soak.py, docs/benchmarks.md). Traffic moves to a version only after that cost is
paid here, so a push never stalls the server.

As TF Serving: the SavedModel's ``assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
PredictionLog protos, at most 1000 records, each run once: ModelConfig's
``model_warmup_options.num_request_iterations`` default) is replayed,
and a request in it that fails makes the load fail. Predict logs are replayed through their
signature; classify, regress and multi-inference logs are not supported here and are skipped with
a warning. Without that file (what TF Serving would skip) each signature is called once with one
synthetic row (zeros, empty strings: an empty tf.Example for an Examples signature) and a failure
is only logged: the synthetic row may not be valid input for the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from serving.codec import proto_to_array

log = logging.getLogger("serving")

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's kMaxNumRecordsPerFile


def _call(signature: Any, arrays: dict[str, np.ndarray]) -> None:
    signature.fn(**{k: tf.constant(v, dtype=signature.inputs[k].dtype) for k, v in arrays.items()})


def synthetic_row(spec: tf.TensorSpec) -> np.ndarray:
    """One row for ``spec``: unknown dimensions become 1; zeros, or empty strings."""
    shape = [1 if d is None else d for d in spec.shape.as_list()] if spec.shape.rank is not None else [1]
    if spec.dtype == tf.string:
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dtype=spec.dtype.as_numpy_dtype)


def replay_file(servable: Any, path: Path) -> int:
    """Runs the Predict requests of a warm-up file; raises ValueError naming the record that fails."""
    from tensorflow_serving.apis import prediction_log_pb2

    runs = 0
    for index, record in enumerate(tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS)):
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = entry.WhichOneof("log_type")
        if kind != "predict_log":
            log.warning("%s record %d: %s warm-up is not supported here; skipped", path, index, kind)
            continue
        request = entry.predict_log.request
        try:
            signature = servable.signature(request.model_spec.signature_name or "serving_default")
            arrays = {k: proto_to_array(k, v, signature.inputs[k]) for k, v in request.inputs.items()}
            _call(signature, arrays)
            runs += 1
        except Exception as exc:  # the load fails, as in TF Serving, with the record named
            raise ValueError(f"{path} record {index}: warm-up request failed: {exc}") from None
    return runs


def warm_up(servable: Any) -> int:
    """Warms every signature of a freshly loaded servable; returns the number of calls made."""
    path = Path(servable.path) / WARMUP_FILE
    if path.is_file():
        return replay_file(servable, path)
    calls = 0
    for name, signature in servable.signatures.items():
        try:
            _call(signature, {k: synthetic_row(spec) for k, spec in signature.inputs.items()})
            calls += 1
        except Exception as exc:  # the synthetic row may be invalid input for this model
            log.info("Warm-up call of signature %s with a synthetic row failed: %s",
                     name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return calls
