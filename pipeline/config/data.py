"""The ``data`` section (CSV folder or image folder, splits, spans, CSV dialect) and ``drift``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from csvio import reader
from csvio.reader import Dialect
from pipeline.config import image, model
from pipeline.config.errors import Reader
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


def parse_data(data: Reader, m: model.Data, base: Path) -> tuple[Path, SplitConfig, Dialect, ImageData | None]:
    """(data_dir, split, dialect, image data); the folder must exist, its files are not read here."""
    image_data = None
    if m.image_dir is not None or m.labels is not None:  # a folder of images (image.py)
        image_data = image.parse_image_data(data, m, base)
    elif m.csv_dir is None:
        raise data.fail("missing required key (or image_dir for images)", "csv_dir")
    data_dir = image_data.image_dir if image_data else (base / m.csv_dir).resolve()
    if not data_dir.is_dir():
        raise data.fail(f"directory {data_dir} does not exist", "csv_dir")
    split = _split_config(data, m)
    if m.span_pattern is not None:
        if "{SPAN}" not in m.span_pattern:
            raise data.fail("must contain {SPAN}, e.g. span-{SPAN}/*.csv", "span_pattern")
        if split.temporal:
            raise data.fail("spans go with hash or column splits, not split_by.timestamp_column", "span_pattern")
        split = replace(split, span_pattern=m.span_pattern)
    return data_dir, split, _csv_dialect(data, m), image_data


DELIMITER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def _csv_dialect(data: Reader, m: model.Data) -> Dialect:
    """data.delimiter (absent: sniffed per file) and data.missing_values (absent: the reader's default)."""
    allowed = [*reader.DELIMITERS, *DELIMITER_NAMES]
    if m.delimiter is not None and m.delimiter not in allowed:
        raise data.fail(f"must be one of {', '.join(map(repr, allowed))} (omit it to detect)", "delimiter")
    missing = m.missing_values if m.missing_values is not None else list(reader.DEFAULT_MISSING_VALUES)
    if not all(isinstance(v, str) for v in missing):
        raise data.fail('must be a list of strings; quote tokens YAML reads as something else ("null", "")',
                        "missing_values")
    return Dialect(DELIMITER_NAMES.get(m.delimiter, m.delimiter), tuple(missing))


def _split_config(data: Reader, m: model.Data) -> SplitConfig:
    buckets = m.splits.model_dump() if m.splits else {"train": 8, "eval": 1, "test": 1}
    by = m.split_by
    if by is None:
        return SplitConfig(buckets)
    r = data.child("split_by")
    if by.column is not None:
        if by.timestamp_column is not None:
            raise r.fail("give either column (hash of a partition column) or timestamp_column (temporal)")
        return SplitConfig(buckets, partition_column=by.column)
    if by.timestamp_column is None:
        raise r.fail("missing required key (or column for a hash split)", "timestamp_column")
    dates = {}
    for key in ("eval_from", "test_from"):
        value = getattr(by, key)
        if value is None:
            raise r.fail("missing required key", key)
        try:
            dates[key] = value if isinstance(value, date) else date.fromisoformat(value)
        except ValueError:
            raise r.fail(f"must be an ISO date like 2016-01-01, got {value!r}", key) from None
    if dates["eval_from"] >= dates["test_from"]:
        raise r.fail("must be after eval_from", "test_from")
    return SplitConfig(buckets, timestamp_column=by.timestamp_column, eval_from=dates["eval_from"].isoformat(),
                       test_from=dates["test_from"].isoformat())


def parse_drift(top: Reader, d: model.Drift | None, split: SplitConfig) -> dict[str, Any] | None:
    """Thresholds for DriftSkewGate (components/drift_skew_gate/thresholds.py checks them again, against
    the schema); keys, types and bounds are model.Drift's."""
    if "drift" not in top.data:
        return None
    if split.span_pattern is None:
        raise top.fail("drift compares spans: set data.span_pattern (e.g. span-{SPAN}/*.csv)", "drift")
    return (d or model.Drift()).model_dump(exclude_none=True, exclude_defaults=True)
