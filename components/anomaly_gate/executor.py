"""Reads ExampleValidator's anomalies and turns them into a readable verdict.

TFX's ExampleValidator records anomalies but never stops a run; this gate runs
between it and Transform and fails the run when any split has an anomaly, with
one line per problem naming the split and the column.
"""

from __future__ import annotations

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2

SCHEMA_DIFF_FILE = "SchemaDiff.pb"  # ExampleValidator's file name inside Split-<name>/


class AnomaliesFound(RuntimeError):
    """The data does not match the reviewed schema."""


def load_anomalies(uri: str, split_names: list[str]) -> dict[str, anomalies_pb2.Anomalies]:
    import tensorflow as tf

    out = {}
    for split in split_names:
        path = os.path.join(uri, f"Split-{split}", SCHEMA_DIFF_FILE)
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(tf.io.gfile.GFile(path, "rb").read())
        out[split] = anomalies
    return out


def summarize(by_split: dict[str, anomalies_pb2.Anomalies]) -> list[str]:
    """One line per anomaly: split, column, what is wrong."""
    lines = []
    for split, anomalies in sorted(by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            details = "; ".join(r.description for r in info.reason) or info.description
            lines.append(f"split '{split}', column '{feature}': {info.short_description} — {details}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"split '{split}', whole dataset: {info.short_description} — {info.description}")
    return lines


def check(uri: str, split_names: list[str]) -> None:
    lines = summarize(load_anomalies(uri, split_names))
    if lines:
        raise AnomaliesFound(
            f"ExampleValidator found {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} "
            "against the reviewed schema; the run stops before Transform:\n  - " + "\n  - ".join(lines)
        )
