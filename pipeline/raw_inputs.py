"""Raw CSV rows -> the inputs a served model takes (and what Transform sees).

A missing value is an empty CSV cell. It becomes an absent feature in a
tf.Example, NaN/"" in the raw-tensor signature, and an absent entry of a sparse
tensor for tf.Transform; the model imputes it in all three the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

Row = dict[str, str]


def _parse(value: str, dtype: tf.DType) -> Any:
    if dtype == tf.string:
        return value.encode()
    return int(float(value)) if dtype == tf.int64 else float(value)


def tf_examples(rows: Sequence[Row], raw_spec: dict[str, Any], exclude: Sequence[str] = ()) -> list[bytes]:
    """Serialized tf.Examples with the columns of ``raw_spec`` (empty cells left out)."""
    out = []
    for row in rows:
        feats = {}
        for name, spec in raw_spec.items():
            value = row.get(name, "")
            if name in exclude or value == "":
                continue
            parsed = _parse(value, spec.dtype)
            if spec.dtype == tf.string:
                feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[parsed]))
            elif spec.dtype == tf.int64:
                feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[parsed]))
            else:
                feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[parsed]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    return out


def raw_columns(rows: Sequence[Row], signature: Any) -> dict[str, tf.Tensor]:
    """Inputs of a model's ``serving_raw`` signature, built from CSV rows: one dense tensor per
    input the signature declares (NaN / "" for missing)."""
    cols = {}
    for name, spec in signature.structured_input_signature[1].items():
        values = [row.get(name, "") for row in rows]
        if spec.dtype == tf.string:
            cols[name] = tf.constant(values, tf.string)
        else:
            cols[name] = tf.constant([float(v) if v != "" else np.nan for v in values], spec.dtype)
    return cols


def sparse_features(rows: Sequence[Row], raw_spec: dict[str, Any]) -> dict[str, tf.SparseTensor]:
    """What tf.Transform's graph takes for VarLen raw columns: [batch, 1] sparse tensors."""
    out = {}
    for name, spec in raw_spec.items():
        present = [(i, row[name]) for i, row in enumerate(rows) if row.get(name, "") != ""]
        indices = np.array([[i, 0] for i, _ in present], np.int64).reshape(-1, 2)
        values = tf.constant([_parse(v, spec.dtype) for _, v in present], spec.dtype, shape=[len(present)])
        out[name] = tf.SparseTensor(indices, values, [len(rows), 1])
    return out
