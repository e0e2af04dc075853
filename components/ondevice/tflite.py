"""TFLite conversion with built-in ops only, and inference in ai-edge-litert (LiteRT).

Flex (Select TF) ops cannot run in the interpreters apps embed, so the converter is allowed
TFLITE_BUILTINS only; when an op has no built-in kernel the conversion fails naming it.
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

        # Integer kernels where an op has one (the model's layers); string and table ops stay as
        # they are, inputs and outputs stay float so apps pass raw values.
        converter.representative_dataset = samples
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises ConverterError with MLIR diagnostics
        ops = sorted(set(_NOT_BUILTIN.findall(str(exc))))
        if ops:
            raise NotBuiltinError(ops, saved_model_dir) from None
        raise


def interpreter(content: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=content)


def encoded(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """String columns as UTF-8 bytes: TFLite string tensors hold bytes (a str would not match
    the vocabulary)."""
    return {k: (np.array([s.encode() for s in v], dtype=object) if v.dtype == object else v) for k, v in feeds.items()}


def predict(content: bytes, feeds: dict[str, np.ndarray], runner: Any = None) -> np.ndarray:
    """The prediction ([n], or [n, K] class probabilities) of a .tflite model run in LiteRT on
    ``feeds`` (one batch); the model has one output (the spec's ``output``)."""
    from components.ondevice.data import flat

    runner = runner or interpreter(content).get_signature_runner(SIGNATURE)
    (values,) = runner(**encoded(feeds)).values()
    return flat(values)


def op_names(content: bytes) -> list[str]:
    """Distinct operator names used by a .tflite model (its built-in op codes)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=content)._get_ops_details()  # the only listing of a model's ops
    return sorted({d["op_name"] for d in details})
