"""Predict, classify and regress on a loaded servable: the part REST and gRPC share.

Classify and regress follow TF Serving's rules with its default (no method-name check): the
signature takes one string tensor of serialized tf.Examples; classify reads the outputs
``classes`` and/or ``scores`` ([batch, classes]), regress reads ``outputs`` ([batch] or [batch, 1]).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np
import tensorflow as tf

from serving.batching import Arrays, Batcher
from serving.manager import ModelManager, Servable, Signature
from serving.metrics import Metrics
from serving.status import ServingError, deadline_exceeded, invalid

log = logging.getLogger("serving")
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _tf_message(exc: tf.errors.OpError) -> str:
    # Keep the cause (which feature, which type); drop TF's graph-node and op suffixes.
    return exc.message.split("\n\t [[")[0].split(" [Op:")[0].strip()


def call_signature(signature: Signature, inputs: Arrays) -> Arrays:
    try:
        outputs = signature.fn(**{k: tf.constant(v, dtype=signature.inputs[k].dtype) for k, v in inputs.items()})
    except tf.errors.OpError as exc:
        raise ServingError(_CODES.get(exc.error_code, grpc.StatusCode.INTERNAL), _tf_message(exc)) from None
    except (TypeError, ValueError) as exc:
        raise invalid(f"signature '{signature.name}': {exc}") from None
    return {k: v.numpy() for k, v in outputs.items()}


class Service:
    def __init__(self, manager: ModelManager, metrics: Metrics, batcher: Batcher | None = None):
        self.manager, self.metrics, self.batcher = manager, metrics, batcher

    @contextmanager
    def observe(self, model: str, api: str, entrypoint: str) -> Iterator[dict]:
        """Counts and times one request; turns unexpected exceptions into INTERNAL errors."""
        info: dict[str, Any] = {"version": ""}
        started, status = time.perf_counter(), "OK"
        try:
            yield info
        except ServingError as exc:
            status = exc.code.name
            raise
        except Exception as exc:
            status = "INTERNAL"
            log.exception("%s %s failed", api, model)
            raise ServingError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}") from None
        finally:
            self.metrics.request(model or "", str(info["version"]), api, entrypoint, status,
                                 time.perf_counter() - started)

    def run(self, servable: Servable, signature: Signature, inputs: Arrays,
            timeout_s: float | None = None) -> Arrays:
        """``timeout_s`` (REST: --rest_api_timeout_in_ms; gRPC: the client's deadline) bounds the
        call as TF Serving's RunOptions.timeout_in_ms does: past it the request fails with
        DEADLINE_EXCEEDED. A batched request stops waiting at the deadline (and is skipped if still
        queued); a direct call cannot be interrupted in Python, so its late result is discarded."""
        def direct(arrays: Arrays) -> Arrays:
            return call_signature(signature, arrays)
        if self.batcher is None:
            started = time.monotonic()
            outputs = direct(inputs)
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise deadline_exceeded(timeout_s)
            return outputs
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        return self.batcher.run(servable, signature.name, inputs, direct, deadline)

    @staticmethod
    def filter_outputs(signature: Signature, outputs: Arrays, wanted: list[str]) -> Arrays:
        if not wanted:
            return outputs
        unknown = [w for w in wanted if w not in outputs]
        if unknown:
            raise invalid(f"output tensor alias not found in signature: {', '.join(unknown)}. Outputs expected "
                          f"to be in the set {{{', '.join(signature.outputs)}}}.")
        return {w: outputs[w] for w in wanted}

    def _examples_signature(self, servable: Servable, name: str, kind: str) -> tuple[Signature, str]:
        signature = servable.signature(name)
        if len(signature.inputs) != 1:
            raise invalid(f"Expected one input Tensor (serialized tf.Examples) for {kind} with signature "
                          f"'{signature.name}', which has {len(signature.inputs)}.")
        (input_name, spec), = signature.inputs.items()
        if spec.dtype != tf.string:
            raise invalid(f"signature '{signature.name}' input '{input_name}' is {spec.dtype.name}: "
                          f"{kind} needs a string input of serialized tf.Examples")
        return signature, input_name

    def classify(self, servable: Servable, signature_name: str, examples: list[bytes],
                 timeout_s: float | None = None) -> tuple[np.ndarray | None, np.ndarray]:
        """(classes [n, k] or None, scores [n, k])."""
        signature, input_name = self._examples_signature(servable, signature_name, "classify")
        if "classes" not in signature.outputs and "scores" not in signature.outputs:
            raise invalid(f'Expected classification signature outputs to contain at least one of "classes", '
                          f'"scores"; signature \'{signature.name}\' has outputs {{{", ".join(signature.outputs)}}}. '
                          "Use :predict for it.")
        out = self.run(servable, signature, {input_name: _examples_array(examples)}, timeout_s)
        classes, scores = out.get("classes"), out.get("scores")
        n = len(examples)
        if scores is not None and (scores.ndim != 2 or scores.shape[0] != n):
            raise invalid(f"Expected Tensor shape: [batch_size num_classes] but got {list(scores.shape)} (scores)")
        if classes is not None and (classes.ndim != 2 or classes.shape[0] != n):
            raise invalid(f"Expected Tensor shape: [batch_size num_classes] but got {list(classes.shape)} (classes)")
        if scores is None:
            scores = np.full(classes.shape, np.nan, np.float32)  # type: ignore[union-attr]
        return classes, scores

    def regress(self, servable: Servable, signature_name: str, examples: list[bytes],
                timeout_s: float | None = None) -> np.ndarray:
        signature, input_name = self._examples_signature(servable, signature_name, "regress")
        if "outputs" not in signature.outputs:
            raise invalid(f"No output Tensor with name 'outputs' in signature '{signature.name}' (has "
                          f"{{{', '.join(signature.outputs)}}}): regress needs one. Use :predict for it.")
        values = self.run(servable, signature, {input_name: _examples_array(examples)}, timeout_s)["outputs"]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1 or values.shape[0] != len(examples):
            raise invalid(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
                          f"but got {list(values.shape)}")
        return values


def _examples_array(examples: list[bytes]) -> np.ndarray:
    if not examples:
        raise invalid("Input is empty: no examples")
    array = np.empty(len(examples), dtype=object)
    array[:] = examples
    return array


def input_to_examples(input_proto: Any) -> list[bytes]:
    """tensorflow_serving.Input -> serialized tf.Examples (context merged into each, as TF Serving does)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        ctx = input_proto.example_list_with_context.context.SerializeToString()
        # Concatenated serializations parse as a merge: an example's features override the context's.
        return [ctx + e.SerializeToString() for e in input_proto.example_list_with_context.examples]
    raise invalid("Input is empty: set example_list or example_list_with_context")

