"""Request and response encodings: TF Serving's REST JSON and TensorProtos <-> numpy arrays.

JSON follows TF Serving's REST API: ``{"b64": "..."}`` for binary strings, NaN/Infinity
literals for floats, row (``instances``) and columnar (``inputs``) formats, and tf.Examples for
classify/regress as ``{"feature": value or [values]}``.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving.status import invalid


def _dtype_name(dtype: tf.DType) -> str:
    return "string" if dtype == tf.string else dtype.name


# -- JSON -> arrays ----------------------------------------------------------------------------
def _string_leaf(name: str, value: Any) -> bytes:
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise invalid(f"input '{name}': a binary value must be {{\"b64\": \"<base64>\"}}, got {value}")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"input '{name}': invalid base64 in {{\"b64\": ...}}") from None
    if isinstance(value, str):
        return value.encode()
    raise invalid(f"input '{name}': expects string values, got {json_type(value)} {value!r}")


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _numeric_leaf(name: str, value: Any, dtype: tf.DType) -> Any:
    if dtype == tf.bool:
        if isinstance(value, bool):
            return value
        raise invalid(f"input '{name}': expects bool values, got {json_type(value)} {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"input '{name}': expects {dtype.name} values, got {json_type(value)} {value!r}")
    if dtype.is_integer and (isinstance(value, float) and not value.is_integer()):
        raise invalid(f"input '{name}': expects {dtype.name} values, got {value!r}")
    return value


def _map_leaves(name: str, value: Any, leaf: Any) -> Any:
    if isinstance(value, list):
        return [_map_leaves(name, v, leaf) for v in value]
    return leaf(name, value)


def json_to_array(name: str, value: Any, spec: tf.TensorSpec) -> np.ndarray:
    """One input's JSON value -> an array of the signature's dtype, shape checked against it."""
    if spec.dtype == tf.string:
        leaves = _map_leaves(name, value, _string_leaf)
        np_dtype: Any = object
    else:
        leaves = _map_leaves(name, value, lambda n, v: _numeric_leaf(n, v, spec.dtype))
        np_dtype = spec.dtype.as_numpy_dtype
    try:
        with np.errstate(over="raise"):
            array = np.array(leaves, dtype=np_dtype)
    except (ValueError, OverflowError, FloatingPointError) as exc:
        raise invalid(f"input '{name}': cannot make a {_dtype_name(spec.dtype)} tensor: {exc}") from None
    if spec.dtype == tf.string and array.dtype == object and array.ndim and any(
            isinstance(x, (list, np.ndarray)) for x in array.ravel()):
        raise invalid(f"input '{name}': ragged lists (rows of different lengths) are not supported")
    check_shape(name, array, spec)
    return array


def check_shape(name: str, array: np.ndarray, spec: tf.TensorSpec) -> None:
    if not spec.shape.is_compatible_with(array.shape):
        raise invalid(f"input '{name}': shape {list(array.shape)} does not match the signature's "
                      f"{spec.shape.as_list() if spec.shape.rank is not None else 'shape'} "
                      f"(None = any size)")


def check_inputs(given: set[str], signature: Any) -> None:
    expected = set(signature.inputs)
    if given != expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        parts = []
        if missing:
            parts.append(f"missing input(s): {', '.join(missing)}")
        if extra:
            parts.append(f"unknown input(s): {', '.join(extra)}")
        raise invalid(f"signature '{signature.name}' takes inputs {{{', '.join(sorted(expected))}}}; "
                      + "; ".join(parts))


def predict_inputs(body: dict, signature: Any) -> tuple[dict[str, np.ndarray], bool]:
    """The ``instances`` (row) or ``inputs`` (columnar) part of a predict body -> arrays, is_row."""
    if ("instances" in body) == ("inputs" in body):
        raise invalid("JSON object must have exactly one of 'instances' (row format) or 'inputs' "
                      "(columnar format)")
    specs = signature.inputs
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise invalid("'instances' must be a non-empty list")
        named = all(isinstance(i, dict) and set(i) != {"b64"} for i in instances)
        if named:
            check_inputs(set(instances[0]), signature)
            columns: dict[str, list] = {}
            for n, instance in enumerate(instances):
                if set(instance) != set(instances[0]):
                    raise invalid(f"instances[{n}] has keys {sorted(instance)}, instances[0] has "
                                  f"{sorted(instances[0])}: every instance needs the same inputs")
                for key, value in instance.items():
                    columns.setdefault(key, []).append(value)
        else:
            if len(specs) != 1:
                raise invalid(f"signature '{signature.name}' takes {len(specs)} inputs "
                              f"({', '.join(sorted(specs))}): each instance must be an object naming them")
            columns = {next(iter(specs)): instances}
        return {k: json_to_array(k, v, specs[k]) for k, v in columns.items()}, True
    inputs = body["inputs"]
    if isinstance(inputs, dict) and set(inputs) != {"b64"}:
        check_inputs(set(inputs), signature)
        return {k: json_to_array(k, v, specs[k]) for k, v in inputs.items()}, False
    if len(specs) != 1:
        raise invalid(f"signature '{signature.name}' takes {len(specs)} inputs ({', '.join(sorted(specs))}): "
                      "'inputs' must be an object naming them")
    name = next(iter(specs))
    return {name: json_to_array(name, inputs, specs[name])}, False


# -- arrays -> JSON ----------------------------------------------------------------------------
def _json_leaf(name: str, value: Any) -> Any:
    if isinstance(value, bytes):
        if name.endswith("_bytes"):  # TF Serving's convention for binary outputs
            return {"b64": base64.b64encode(value).decode()}
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return value  # json.dumps writes NaN / Infinity, as TF Serving does
    return value


def array_to_json(name: str, array: np.ndarray) -> Any:
    if array.dtype == object:
        return _map_leaves(name, array.tolist(), _json_leaf)
    return array.tolist()


def predict_response(outputs: dict[str, np.ndarray], row: bool) -> dict:
    if row:
        if len(outputs) == 1:
            (name, array), = outputs.items()
            return {"predictions": array_to_json(name, array)}
        n = {len(a) if a.ndim else 0 for a in outputs.values()}
        if len(n) != 1:
            raise invalid("outputs have different batch sizes; use the columnar format ('inputs')")
        cols = {k: array_to_json(k, a) for k, a in outputs.items()}
        return {"predictions": [{k: cols[k][i] for k in cols} for i in range(n.pop())]}
    if len(outputs) == 1:
        (name, array), = outputs.items()
        return {"outputs": array_to_json(name, array)}
    return {"outputs": {k: array_to_json(k, a) for k, a in outputs.items()}}


# -- tf.Example JSON (classify / regress) ------------------------------------------------------
def json_to_feature(name: str, value: Any) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    if not values:
        return tf.train.Feature()
    if all(isinstance(v, (str, dict)) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[_string_leaf(name, v) for v in values]))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    raise invalid(f"feature '{name}': values must be all numbers or all strings, got {value!r}")


def json_to_example(obj: Any, where: str) -> tf.train.Example:
    if not isinstance(obj, dict):
        raise invalid(f"{where} must be an object of feature name -> value(s), got {json_type(obj)}")
    return tf.train.Example(features=tf.train.Features(
        feature={k: json_to_feature(k, v) for k, v in obj.items()}))


# -- TensorProto <-> arrays --------------------------------------------------------------------
def _string_array(proto: Any) -> np.ndarray | None:
    """A DT_STRING TensorProto's values (what make_ndarray gives, at a quarter of its cost), or None
    for what make_ndarray must judge (a broadcast single value, a size mismatch, unknown shape)."""
    shape = [d.size for d in proto.tensor_shape.dim]
    values = proto.string_val
    if proto.tensor_shape.unknown_rank or len(values) != math.prod(shape):
        return None
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array.reshape(shape)


def proto_to_array(name: str, proto: Any, spec: tf.TensorSpec) -> np.ndarray:
    array = _string_array(proto) if proto.dtype == types_pb2.DT_STRING else None
    if array is None:
        try:
            array = tf.make_ndarray(proto)
        except Exception as exc:  # malformed TensorProto (bad dtype, content size vs shape)
            raise invalid(f"input '{name}': malformed TensorProto: {exc}") from None
    try:
        given = tf.dtypes.as_dtype(proto.dtype) if proto.dtype else None
    except TypeError:
        given = None
    if given != spec.dtype:
        raise invalid(f"input '{name}': expects {_dtype_name(spec.dtype)} but "
                      f"{_dtype_name(given) if given else 'an unset dtype'} is provided")
    check_shape(name, array, spec)
    return array


def array_to_proto(array: np.ndarray) -> Any:
    if array.dtype == object and all(isinstance(v, bytes) for v in array.flat):
        # Strings (what TF returns for tf.string): string_val directly, a sixth of make_tensor_proto's cost.
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=array.ravel().tolist())
        proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape)
        return proto
    if array.dtype == object:
        return tf.make_tensor_proto(array)
    # Numeric arrays as raw tensor_content: what make_tensor_proto produces, without its checks' cost.
    proto = tensor_pb2.TensorProto(dtype=tf.as_dtype(array.dtype).as_datatype_enum,
                                   tensor_content=np.ascontiguousarray(array).tobytes())
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape)
    return proto
