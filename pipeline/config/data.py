"""The ``data`` section (CSV folder or image folder, splits, spans, CSV dialect) and ``drift``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from csvio import reader
from csvio.reader import Dialect
from pipeline.config import image
from pipeline.config.errors import Reader, positive
from pipeline.config.evaluation import SPLIT_NAMES
from pipeline.config.image import ImageData


@dataclass(frozen=True)
class SplitConfig:
    """How ExampleGen splits: by hash of the row (default), of a partition column, or by time."""

    buckets: dict[str, int]
    partition_column: str | None = None
    timestamp_column: str | None = None
    eval_from: str | None = None  # ISO date: rows at or after it go to eval...
    test_from: str | None = None  # ...and at or after this one to test

    span_pattern: str | None = None  # e.g. "span-{SPAN}/*.csv": each run ingests the latest span

    @property
    def temporal(self) -> bool:
        return self.timestamp_column is not None

def parse_data(data: Reader, base: Path) -> tuple[Path, SplitConfig, Dialect, ImageData | None]:
    """(data_dir, split, dialect, image data); the folder must exist, its files are not read here."""
    image_data = None
    if "image_dir" in data.data or "labels" in data.data:  # a folder of images (pipeline/image.py)
        image_data = image.parse_image_data(data, base)
    data_dir = image_data.image_dir if image_data else (base / data.get("csv_dir", (str,))).resolve()
    if not data_dir.is_dir():
        raise data.fail(f"directory {data_dir} does not exist", "csv_dir")
    split = _split_config(data)
    if "span_pattern" in data.data:
        pattern = data.get("span_pattern", (str,), check=lambda v: None if "{SPAN}" in v
                           else "must contain {SPAN}, e.g. span-{SPAN}/*.csv")
        if split.temporal:
            raise data.fail("spans go with hash or column splits, not split_by.timestamp_column", "span_pattern")
        split = replace(split, span_pattern=pattern)

    return data_dir, split, _csv_dialect(data), image_data

DELIMITER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}

def _csv_dialect(data: Reader) -> Dialect:
    """data.delimiter (absent: sniffed per file) and data.missing_values (absent: the reader's default)."""
    allowed = [*reader.DELIMITERS, *DELIMITER_NAMES]
    delimiter = data.get("delimiter", (str,), None, lambda v: None if v in allowed else
                         f"must be one of {', '.join(map(repr, allowed))} (omit it to detect)")
    missing = data.get("missing_values", (list,), list(reader.DEFAULT_MISSING_VALUES))
    if not all(isinstance(m, str) for m in missing):
        raise data.fail('must be a list of strings; quote tokens YAML reads as something else ("null", "")',
                        "missing_values")
    return Dialect(DELIMITER_NAMES.get(delimiter, delimiter), tuple(missing))

def _split_config(data: Reader) -> SplitConfig:
    buckets = {"train": 8, "eval": 1, "test": 1}
    if "splits" in data.data:
        splits = data.child("splits")
        buckets = {s: splits.get(s, (int,), check=positive) for s in SPLIT_NAMES}
    if "split_by" not in data.data:
        return SplitConfig(buckets)
    by = data.child("split_by")
    if "column" in by.data:
        if "timestamp_column" in by.data:
            raise by.fail("give either column (hash of a partition column) or timestamp_column (temporal)")
        return SplitConfig(buckets, partition_column=by.get("column", (str,)))
    ts = by.get("timestamp_column", (str,))
    dates = {}
    for key in ("eval_from", "test_from"):
        value = by.get(key, (str, date))
        try:
            dates[key] = value if isinstance(value, date) else date.fromisoformat(value)
        except ValueError:
            raise by.fail(f"must be an ISO date like 2016-01-01, got {value!r}", key) from None
    if dates["eval_from"] >= dates["test_from"]:
        raise by.fail("must be after eval_from", "test_from")
    return SplitConfig(buckets, timestamp_column=ts, eval_from=dates["eval_from"].isoformat(),
                       test_from=dates["test_from"].isoformat())

def parse_drift(top: Reader, split: SplitConfig) -> dict[str, Any]:
    """Thresholds for DriftSkewGate (see components/drift_skew_gate/thresholds.py for the full form)."""
    from components.drift_skew_gate.thresholds import FEATURE_KEYS, HISTOGRAMS

    d = top.child("drift")
    if split.span_pattern is None:
        raise top.fail("drift compares spans: set data.span_pattern (e.g. span-{SPAN}/*.csv)", "drift")
    out: dict[str, Any] = {}
    for key in ("categorical_linf", "numeric_js"):
        if key in d.data:
            out[key] = float(d.get(key, (int, float), check=lambda v: None if 0 <= v <= 1 else "must be in [0, 1]"))
    if "numeric_histogram" in d.data:
        out["numeric_histogram"] = d.get("numeric_histogram", (str,), check=lambda v: None if v in HISTOGRAMS
                                         else f"must be one of {', '.join(HISTOGRAMS)}")
    if "split" in d.data:
        out["split"] = d.get("split", (str,), check=lambda v: None if v in SPLIT_NAMES else "unknown split")
    features = d.get("features", (dict,), {})
    for name, limits in features.items():
        if not isinstance(limits, dict) or set(limits) - set(FEATURE_KEYS):
            raise d.fail(f"'{name}': a mapping of {', '.join(FEATURE_KEYS)}", "features")
    if features:
        out["features"] = features
    skip = d.get("skip", (list,), [])
    if skip:
        out["skip"] = skip
    return out
