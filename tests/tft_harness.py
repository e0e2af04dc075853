"""Run the project's real ``preprocessing_fn`` with tf.Transform on Beam over in-memory rows.

Used by the reference tests: analysis on one set of rows (the "train split"), then the
same fitted transform applied to others, exactly as the Transform component does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from modules.preprocessing import preprocessing_fn

TAXI_TYPES = {
    "pickup_community_area": tf.int64, "fare": tf.float32, "trip_start_month": tf.int64,
    "trip_start_hour": tf.int64, "trip_start_day": tf.int64, "trip_start_timestamp": tf.int64,
    "pickup_latitude": tf.float32, "pickup_longitude": tf.float32, "dropoff_latitude": tf.float32,
    "dropoff_longitude": tf.float32, "trip_miles": tf.float32, "pickup_census_tract": tf.int64,
    "dropoff_census_tract": tf.int64, "payment_type": tf.string, "company": tf.string,
    "trip_seconds": tf.int64, "dropoff_community_area": tf.int64, "tips": tf.float32,
}
LABEL = {"name": "big_tipper", "column": "tips", "greater_than_column": "fare", "factor": 0.2,
         "greater_than": None}


def _instances(rows: Sequence[dict[str, str]], spec: dict) -> list[dict]:
    out = []
    for row in rows:
        inst = {}
        for name, feature in spec.items():
            v = row.get(name, "")
            if v == "":
                inst[name] = []
            elif feature.dtype == tf.string:
                inst[name] = [v.encode()]
            elif feature.dtype == tf.int64:
                inst[name] = [int(float(v))]
            else:
                inst[name] = [float(v)]
        out.append(inst)
    return out


def run(features: list[dict], train: Sequence[dict[str, str]], *others: Sequence[dict[str, str]],
        label: dict | None = None) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]], tft.TFTransformOutput]:
    """Fit on ``train`` and transform ``train`` and each of ``others``; outputs as column arrays.
    ``label``: a ``features.task.Label`` as JSON (default: taxi's big_tipper rule)."""
    spec = {name: tf.io.VarLenFeature(dtype) for name, dtype in TAXI_TYPES.items()}
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(spec)
    config = {"features": features, "label": label or LABEL}
    temp = tempfile.mkdtemp(prefix="tft_harness_")
    with tft_beam.Context(temp_dir=temp):
        (train_out, _), transform_fn = ((_instances(train, spec), metadata)
                                        | tft_beam.AnalyzeAndTransformDataset(
                                            lambda inputs: preprocessing_fn(inputs, config)))
        others_out = [((_instances(rows, spec), metadata), transform_fn) | tft_beam.TransformDataset()
                      for rows in others]
        _ = transform_fn | tft_beam.WriteTransformFn(temp + "/out")
    # The raw metadata beside it, as the Transform component writes it (raw_feature_spec()).
    metadata_io.write_metadata(metadata, f"{temp}/out/{tft.TFTransformOutput.RAW_METADATA_DIR}")

    def columns(instances: list[dict]) -> dict[str, np.ndarray]:
        return {k: np.array([inst[k] for inst in instances]) for k in instances[0]}

    return columns(train_out), [columns(o[0]) for o in others_out], tft.TFTransformOutput(temp + "/out")
