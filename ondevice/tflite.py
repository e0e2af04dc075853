"""TFLite conversion with built-in ops only, and inference in ai-edge-litert (LiteRT).

Flex (Select TF) ops cannot run in the interpreters apps embed, so the converter is allowed
TFLITE_BUILTINS only; when an op has no built-in kernel the conversion fails naming it.

Post-training int8 of a raw-in graph (``_int8_model_part``): TFLite's calibrator runs the graph
without initializing its hash tables, so every string vocabulary lookup returns the OOV index
while it records ranges (measured on taxi: the company embedding saw one row, the logit's
recorded max was 0, every int8 output was clamped at <= 0.5: 68.5% decision agreement). The
ranges are therefore measured again in LiteRT, tables initialized, on the same rows; and only
the model's weight layers (FULLY_CONNECTED, GATHER of embeddings) are quantized: the embedded
preprocessing stays float (raw values such as seconds or coordinates have no useful per-tensor
int8 scale).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

VARIANTS = ("float32", "float16", "dynamic_range", "int8")
SIGNATURE = "serving_default"
_NOT_BUILTIN = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")


class NotBuiltinError(ValueError):
    """The model uses ops TFLite has no built-in kernel for."""

    def __init__(self, ops: list[str], where: str):
        self.ops = ops
        super().__init__(f"{where}: TFLite has no built-in op for {', '.join(ops)}; on-device models may use "
                         "built-in ops only (Flex/Select TF ops cannot run in the interpreters apps embed)")


def convert(saved_model_dir: str, variant: str, representative: list[dict[str, np.ndarray]] | None = None,
            quantization_aware: bool = False) -> bytes:
    """The ``variant`` .tflite of the SavedModel's serving_default signature. A
    ``quantization_aware`` model carries its own int8 ranges: its int8 variant uses them
    instead of calibrating (calibrated ranges of the preprocessing outputs would contradict
    the model's input quantizers)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; known: {', '.join(VARIANTS)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8" and not quantization_aware:
        if not representative:
            raise ValueError("int8 needs a representative dataset (rows from the train split)")

        def samples() -> Iterator[dict[str, np.ndarray]]:
            for sample in representative:
                yield encoded(sample)

        converter.representative_dataset = samples
        converter._experimental_calibrate_only = True  # quantized by _int8_model_part
    try:
        content = converter.convert()
    except Exception as exc:  # the converter raises ConverterError with MLIR diagnostics
        ops = sorted(set(_NOT_BUILTIN.findall(str(exc))))
        if ops:
            raise NotBuiltinError(ops, saved_model_dir) from None
        raise
    if variant == "int8" and not quantization_aware:
        content = _int8_model_part(_measured_ranges(content, representative))
    return content


# The model's weight layers: Dense (FULLY_CONNECTED) and Embedding lookups (GATHER). The
# preprocessing graph uses neither (builtin.py); every other op stays float.
QUANTIZED_OPS = ("FULLY_CONNECTED", "GATHER", "CONV_2D", "MAX_POOL_2D")  # the last two: image models


def _measured_ranges(calibrated: bytes, representative: list[dict[str, np.ndarray]]) -> bytes:
    """``calibrated`` with the min/max of every calibrated tensor replaced by the range it takes in
    LiteRT on the representative rows (one batch), hash tables initialized as apps run it."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    graph = model.subgraphs[0]
    batch = {k: np.concatenate([r[k] for r in representative]) for k in representative[0]}
    interp = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
    interp.get_signature_runner(SIGNATURE)(**encoded(batch))
    for index, tensor in enumerate(graph.tensors):
        q = tensor.quantization
        if q is None or q.min is None or len(q.min) != 1:
            continue
        try:
            values = interp.get_tensor(index)
        except ValueError:  # not readable (freed or never computed): keep the calibrator's range
            continue
        if values.size and np.issubdtype(values.dtype, np.floating):
            q.min = np.array([min(float(np.nanmin(values)), 0.0)], np.float32)
            q.max = np.array([max(float(np.nanmax(values)), 0.0)], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _int8_model_part(calibrated: bytes) -> bytes:
    """int8 weights and activations for QUANTIZED_OPS only, float everywhere else (inputs and
    outputs included, so apps pass raw values)."""
    from tensorflow.lite.python import convert as tflite_convert

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    present = {names.get(max(c.builtinCode, c.deprecatedBuiltinCode)) for c in model.operatorCodes}
    denied = sorted(op for op in present if op and op not in QUANTIZED_OPS)
    return tflite_convert.mlir_quantize(calibrated, denylisted_ops=denied)


def quantized_ops(content: bytes) -> list[str]:
    """Distinct op names of a .tflite model that run on int8 tensors (an int8 output)."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = set()
    for g in model.subgraphs or []:
        for op in g.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            if any(g.tensors[t].type == schema.TensorType.INT8 for t in op.outputs):
                out.add(names.get(max(code.builtinCode, code.deprecatedBuiltinCode)))
    return sorted(out)


def interpreter(content: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=content)


def encoded(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """String columns as UTF-8 bytes: TFLite string tensors hold bytes (a str would not match
    the vocabulary)."""
    return {k: (np.array([s.encode() for s in v.ravel()], dtype=object).reshape(v.shape) if v.dtype == object else v)
            for k, v in feeds.items()}


def predict(content: bytes, feeds: dict[str, np.ndarray], runner: Any = None) -> np.ndarray:
    """The prediction ([n], or [n, K] class probabilities) of a .tflite model run in LiteRT on
    ``feeds`` (one batch); the model has one output (the spec's ``output``)."""
    from ondevice.data import flat

    runner = runner or interpreter(content).get_signature_runner(SIGNATURE)
    (values,) = runner(**encoded(feeds)).values()
    return flat(values)


def op_names(content: bytes) -> list[str]:
    """Distinct operator names used by a .tflite model (its built-in op codes)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=content)._get_ops_details()  # the only listing of a model's ops
    return sorted({d["op_name"] for d in details})


def _schema() -> Any:
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def size_breakdown(content: bytes) -> dict[str, Any]:
    """Where a .tflite file's bytes go: constant data per dtype and per consuming op (the model's
    weights feed FULLY_CONNECTED / GATHER, the preprocessing's vocabularies feed HASHTABLE_IMPORT),
    tensor names, quantization parameters, metadata, and the flatbuffer's own structure (tables,
    shapes, operators: the rest). Counts too: tensors, operators, quantized tensors."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    buffers = model.buffers or []

    def buf_len(i: int) -> int:
        b = buffers[i] if 0 < i < len(buffers) else None
        return 0 if b is None else (len(b.data) if b.data is not None else int(b.size or 0))

    metadata = {_text(m.name): buf_len(m.buffer) for m in model.metadata or []}
    constants: dict[str, int] = {}
    by_dtype: dict[str, int] = {}
    name_bytes = quant_bytes = tensors = quantized = operators = 0
    seen: set[int] = set()
    for g in model.subgraphs or []:
        consumer: dict[int, str] = {}
        for op in g.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            op_name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode))
            for t in op.inputs if op.inputs is not None else []:
                consumer.setdefault(int(t), op_name)
            operators += 1
        for k, t in enumerate(g.tensors or []):
            tensors += 1
            name_bytes += len(t.name or b"")
            q = t.quantization
            if q is not None and q.scale is not None and len(q.scale):
                quantized += 1
                quant_bytes += 4 * len(q.scale) + 8 * len(q.zeroPoint if q.zeroPoint is not None else [])
            n = buf_len(t.buffer)
            if n and t.buffer not in seen:
                seen.add(t.buffer)
                dtype = types.get(t.type, str(t.type))
                key = f"{consumer.get(k, 'graph output')} <- {dtype}"
                constants[key] = constants.get(key, 0) + n
                by_dtype[dtype] = by_dtype.get(dtype, 0) + n
    const_total = sum(constants.values())
    meta_total = sum(metadata.values())
    return {"bytes": len(content), "tensors": tensors, "operators": operators, "quantized_tensors": quantized,
            "constant_bytes": const_total, "constant_bytes_by_dtype": dict(sorted(by_dtype.items())),
            "constant_bytes_by_consumer": dict(sorted(constants.items(), key=lambda kv: -kv[1])),
            "tensor_name_bytes": name_bytes, "quantization_param_bytes": quant_bytes,
            "metadata_bytes": metadata,
            "structure_bytes": len(content) - const_total - meta_total - name_bytes - quant_bytes}
