"""Clients for TF Serving's REST and gRPC APIs (this server or real TF Serving), and
``python -m pipeline predict --csv rows.csv --server host:port [--grpc]``.

The CSV client asks the server for the signature's inputs (metadata), so it needs nothing
but the server: each input is one CSV column, numbers as floats with NaN for an empty cell,
strings with "" (the model's ``serving_raw`` signature).
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SIGNATURE = "serving_raw"


class ClientError(Exception):
    """A failed call; ``status`` is the HTTP status or the gRPC code name."""

    def __init__(self, status: Any, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RestClient:
    """One keep-alive connection per thread."""

    def __init__(self, server: str, model_name: str, timeout: float = 60.0):
        self.host, _, port = server.rpartition(":")
        self.port, self.model_name, self.timeout = int(port), model_name, timeout
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        for attempt in (0, 1):  # a kept-alive connection the server closed is retried once
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        if response.will_close:
            conn.close()
            self._local.conn = None
        text = payload.decode()
        parsed = json.loads(text) if response.headers.get("Content-Type", "").startswith("application/json") else text
        if response.status != 200:
            raise ClientError(response.status, parsed.get("error", text) if isinstance(parsed, dict) else text)
        return parsed

    def _model_path(self, version: int | None = None, label: str | None = None) -> str:
        path = f"/v1/models/{self.model_name}"
        if version is not None:
            path += f"/versions/{version}"
        elif label:
            path += f"/labels/{label}"
        return path

    def status(self, **spec: Any) -> dict:
        return self.request("GET", self._model_path(**spec))

    def metadata(self, **spec: Any) -> dict:
        return self.request("GET", self._model_path(**spec) + "/metadata")

    def signature_io(self, signature: str) -> tuple[dict[str, str], list[str]]:
        """({input name: dtype name ("DT_FLOAT", ...)}, output names) from the model's metadata."""
        defs = self.metadata()["metadata"]["signature_def"]["signature_def"]
        if signature not in defs:
            raise ClientError(404, f"model '{self.model_name}' has no signature '{signature}' "
                              f"(has {', '.join(sorted(defs))})")
        return {k: v["dtype"] for k, v in defs[signature]["inputs"].items()}, sorted(defs[signature]["outputs"])

    def predict(self, body: dict, **spec: Any) -> dict:
        return self.request("POST", self._model_path(**spec) + ":predict", body)


class GrpcClient:
    """tensorflow-serving-api's PredictionService and ModelService stubs on one channel."""

    def __init__(self, server: str, model_name: str, timeout: float = 60.0):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(server, options=[("grpc.max_receive_message_length", -1)])
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.model_name, self.timeout = model_name, timeout

    def _call(self, fn: Any, request: Any) -> Any:
        import grpc

        try:
            return fn(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise ClientError(exc.code().name, exc.details()) from None

    def signature_io(self, signature: str) -> tuple[dict[str, str], list[str]]:
        from tensorflow.core.framework import types_pb2
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        response = self._call(self.prediction.GetModelMetadata, request)
        defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(defs)
        if signature not in defs.signature_def:
            raise ClientError("NOT_FOUND", f"model '{self.model_name}' has no signature '{signature}' "
                              f"(has {', '.join(sorted(defs.signature_def))})")
        sdef = defs.signature_def[signature]
        return {k: types_pb2.DataType.Name(v.dtype) for k, v in sdef.inputs.items()}, sorted(sdef.outputs)

    def predict(self, inputs: dict[str, np.ndarray], signature: str = "serving_default",
                version: int | None = None, label: str | None = None) -> dict[str, np.ndarray]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = self.model_name, signature
        if version is not None:
            request.model_spec.version.value = version
        elif label:
            request.model_spec.version_label = label
        for name, array in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        response = self._call(self.prediction.Predict, request)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


_NUMPY = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT64": np.int64, "DT_INT32": np.int32}


def csv_columns(path: Path, inputs: dict[str, str]) -> tuple[int, dict[str, list]]:
    """CSV rows -> one list per signature input (NaN / "" for missing), read exactly as the pipeline
    reads its data (``csvio/reader.py``: delimiter detected, BOM, CRLF, quoted
    headers, a row-names column, ``NA`` and the other missing-value tokens); errors name line and column."""
    from csvio import reader

    try:
        (header,) = reader.read_headers([str(path)])
        missing = [name for name in inputs if name not in header.columns]
        if missing:
            hint = (f"; the header reads as {len(header.columns)} column(s) split at {header.delimiter!r}"
                    if len(header.columns) < 2 else "")
            raise ValueError(f"{path}: no column {', '.join(repr(m) for m in sorted(missing))} (the signature's "
                             f"inputs: {', '.join(sorted(inputs))}){hint}")
        at = {name: header.columns.index(name) for name in inputs}
        columns: dict[str, list] = {name: [] for name in inputs}
        n = 0
        for line, values in reader.read_rows(header):
            n += 1
            for name, dtype in inputs.items():
                cell = values[at[name]]
                if dtype == "DT_STRING":
                    columns[name].append("" if cell is None else cell)
                    continue
                try:
                    number = None if cell is None else reader.parse_number(cell)
                except ValueError:
                    raise ValueError(f"{path} line {line}: column '{name}': {cell!r} is not a number") from None
                columns[name].append(math.nan if number is None else number)
    except reader.CsvFormatError as exc:
        raise ValueError(str(exc)) from None
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    return n, columns


def predict_csv(path: Path, server: str, use_grpc: bool, model_name: str = "default",
                signature: str = DEFAULT_SIGNATURE, batch_size: int = 256) -> dict[str, np.ndarray]:
    """{output name: one row per CSV row} of every output of ``signature``, from a running server."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")
    client: Any = GrpcClient(server, model_name) if use_grpc else RestClient(server, model_name)
    inputs, output_names = client.signature_io(signature)
    n, columns = csv_columns(path, inputs)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n, batch_size):
        chunk = {k: v[start:start + batch_size] for k, v in columns.items()}
        if use_grpc:
            arrays = {k: np.array(v, dtype=object if inputs[k] == "DT_STRING" else _NUMPY.get(inputs[k], np.float32))
                      for k, v in chunk.items()}
            parts.append(client.predict(arrays, signature))
        else:
            # Columnar format: a single output comes back unnamed, several as an object.
            out = client.predict({"signature_name": signature, "inputs": chunk})["outputs"]
            parts.append({k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict)
                         else {output_names[0]: np.asarray(out)})
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def prediction_table(outputs: dict[str, np.ndarray]) -> list[str]:
    """CSV lines of the predictions: for a classifier (TF Serving's ``classes`` and ``scores``)
    the predicted class's name and each class's probability under its name; for a regression
    model its ``outputs`` (the target in its own units); otherwise every value of the one output."""
    if "classes" in outputs and "scores" in outputs:
        classes, scores = outputs["classes"], np.asarray(outputs["scores"], np.float64)
        names = [c.decode() if isinstance(c, bytes) else str(c) for c in classes[0]]
        best = np.argmax(scores, axis=1)
        return [",".join(["predicted_class", *names])] + [
            ",".join([names[b], *(f"{v:.6g}" for v in row)]) for b, row in zip(best, scores, strict=True)]
    name = "outputs" if "outputs" in outputs else next(iter(outputs))
    if len(outputs) > 1 and name != "outputs":
        raise ValueError(f"the signature has outputs {', '.join(outputs)}; this client prints classes/scores, "
                         "outputs, or a single output")
    return [name] + [",".join(f"{v:.6g}" for v in np.ravel(row)) for row in outputs[name]]


def predict_command(csv_path: Path, server: str, use_grpc: bool, model_name: str, signature: str,
                    batch_size: int, out: Path | None) -> int:
    import grpc  # noqa: F401  (fail early if missing)

    try:
        lines = prediction_table(predict_csv(csv_path, server, use_grpc, model_name, signature, batch_size))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"error: the server at {server} answered {exc.status}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot reach a model server at {server} ({'gRPC' if use_grpc else 'REST'}): {exc}",
              file=sys.stderr)
        return 1
    text = "\n".join(lines) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {len(lines) - 1} predictions to {out}", file=sys.stderr)
    return 0
