"""Raw validation rows for on-device models, and the SavedModel's own answers on them.

Rows are read from an Examples artifact (raw tf.Examples, as ExampleGen/DataCleaner wrote
them) in the on-device input convention of ``spec.py``: strings ("" = missing), numbers as
float32 (NaN = missing), timestamps as int64 seconds (negative = missing). The returned dict
holds every raw column the served model needs, plus, for features the on-device model takes
already transformed, those inputs computed by the reference implementation.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import numpy as np
import tensorflow as tf

from ondevice import image, reference
from ondevice.spec import FLOAT, STRING, TIMESTAMP


def _split_files(examples_uri: str, split: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        have = sorted(d.removeprefix("Split-") for d in os.listdir(examples_uri)) if os.path.isdir(examples_uri) else []
        raise ValueError(f"examples {examples_uri}: no '{split}' split (have {have})")
    return files


def _value(feature: Any, dtype: str) -> Any:
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if dtype == STRING:
        return values[0].decode() if values else ""
    if dtype == TIMESTAMP:
        return int(values[0]) if values else -1
    return float(values[0]) if values else np.nan


def raw_columns(spec: dict[str, Any], serving_columns: list[str] | None = None) -> dict[str, str]:
    """{raw column: on-device dtype} of the spec's features (and any extra serving columns)."""
    columns = dict(spec["columns"])
    for c in serving_columns or []:
        columns.setdefault(c, FLOAT)
    return columns


def raw_rows(examples_uri: str, split: str, n: int, spec: dict[str, Any],
             serving_columns: list[str] | None = None) -> dict[str, np.ndarray]:
    """The first ``n`` rows of ``split`` as arrays keyed by raw column and transformed input name."""
    columns = raw_columns(spec, serving_columns)
    images = {c for c, dtype in columns.items() if dtype == image.IMAGE}  # encoded bytes -> pixels
    rows: dict[str, list] = {c: [] for c in columns}
    dataset = tf.data.TFRecordDataset(_split_files(examples_uri, split), compression_type="GZIP").take(n)
    for record in dataset:
        example = tf.train.Example.FromString(record.numpy())
        features = example.features.feature
        for c, dtype in columns.items():
            if c in images:
                rows[c].append(image.raw_bytes(features[c]) if c in features else b"")
                continue
            rows[c].append(_value(features[c], dtype) if c in features else _value(tf.train.Feature(), dtype))
    out = {c: np.array(v, dtype={FLOAT: np.float32, STRING: object, TIMESTAMP: np.int64}[columns[c]])
           for c, v in rows.items() if c not in images}
    for c in images:
        out.update(image.rows_for(spec, c, rows[c]))
    for f in spec["features"]:
        if not f["builtin"]:
            out.update(reference.transform_feature(f, out))
    from ondevice import text

    out.update(text.token_inputs(spec, out))  # text: the tokens the app computes
    for i in spec["inputs"]:
        if i.get("transformed"):
            out[i["name"]] = out[i["name"]].astype(np.int64 if i["dtype"] == "int64" else np.float32)
    return out


def feed(rows: dict[str, np.ndarray], spec: dict[str, Any], start: int = 0, stop: int | None = None
         ) -> dict[str, np.ndarray]:
    """The on-device model's inputs (by name) for rows[start:stop]."""
    return {i["name"]: rows[i["name"]][start:stop] for i in spec["inputs"]}


def reference_predictions(model_uri: str, rows: dict[str, np.ndarray], spec: dict[str, Any]) -> np.ndarray:
    """The SavedModel's ``serving_raw`` signature (Transform graph inside) on ``rows``, its
    ``spec["output"]``: shape [n], or [n, K] for multiclass probabilities."""
    from tfx.utils import path_utils

    path = path_utils.serving_model_path(model_uri)
    loaded = tf.saved_model.load(path)
    fn = loaded.signatures["serving_raw"]
    feeds = {}
    for name, tspec in fn.structured_input_signature[1].items():
        if name not in rows:
            raise ValueError(f"{path}: serving_raw needs column '{name}', which the rows lack")
        v = rows.get(image.encoded_key(name), rows[name])  # images: the encoded bytes, as served
        if v.dtype == object and len(v) and isinstance(v[0], bytes):
            feeds[name] = tf.constant(list(v), tf.string)
        elif v.dtype == object:
            feeds[name] = tf.constant(v.astype(str).astype(object), tf.string)
        elif np.issubdtype(v.dtype, np.integer):  # timestamps: negative = missing -> NaN
            feeds[name] = tf.constant(np.where(v >= 0, v.astype(np.float64), np.nan), tspec.dtype)
        else:
            feeds[name] = tf.constant(v.astype(np.float64), tspec.dtype)
    return flat(fn(**feeds)[spec["output"]].numpy())


def flat(values: np.ndarray) -> np.ndarray:
    """[n, 1] -> [n]; [n, K] stays."""
    values = np.asarray(values)
    values = values.reshape(values.shape[0], -1)
    return values[:, 0] if values.shape[1] == 1 else values


def labels(model_uri: str, examples_uri: str, split: str, n: int, label: str) -> np.ndarray:
    """The label of the first ``n`` rows of ``split``, computed by the model's own Transform graph
    (its ``transform_features`` signature), so the label rule lives in one place."""
    from tfx.utils import path_utils

    fn = tf.saved_model.load(path_utils.serving_model_path(model_uri)).signatures["transform_features"]
    dataset = tf.data.TFRecordDataset(_split_files(examples_uri, split), compression_type="GZIP").take(n)
    return np.concatenate([fn(examples=batch)[label].numpy().reshape(-1) for batch in dataset.batch(1024)])


def write_examples(rows: dict[str, np.ndarray], spec: dict[str, Any], extra: dict[str, np.ndarray], path: str) -> None:
    """The on-device inputs (and ``extra`` columns, e.g. the label) as tf.Examples with every
    value explicit (NaN, "", negative), for tools that read examples, such as TFMA."""
    columns = {**feed(rows, spec), **extra}
    n = len(next(iter(columns.values())))
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(n):
            feature = {}
            for name, values in columns.items():
                v = values[i]
                if values.dtype == object:
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[str(t).encode() for t in np.ravel(v)]))
                elif np.issubdtype(values.dtype, np.integer):
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=np.ravel(v).tolist()))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(v).tolist()))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
