"""Data utilities for bundled CSVs: resampling to any size and splitting into monthly spans.

``resample`` draws real rows with replacement and jitters float values with small
multiplicative noise (integer columns, often codes like hour or area, and missing cells
are kept as drawn), so each column keeps its distribution and missing rate. ``write_monthly_spans`` writes one
``span-YYYYMM/data.csv`` per month of a Unix-timestamp column, the layout that
ExampleGen's ``{SPAN}`` pattern reads.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _numeric_kinds(header: list[str], rows: list[dict[str, str]]) -> dict[str, str]:
    kinds = {}
    for col in header:
        kind = "int"
        for row in rows:
            v = row[col]
            if v == "":
                continue
            try:
                f = float(v)
            except ValueError:
                kind = "string"
                break
            if kind == "int" and (not f.is_integer() or "." in v):
                kind = "float"
        kinds[col] = kind
    return kinds


def resampled_rows(source: Path, n_rows: int, seed: int = 0, noise: float = 0.02) -> Iterator[dict[str, str]]:
    header, rows = _rows(source)
    kinds = _numeric_kinds(header, rows)
    rng = random.Random(seed)
    for _ in range(n_rows):
        row = dict(rng.choice(rows))
        for col, kind in kinds.items():
            v = row[col]
            if v != "" and kind == "float":
                row[col] = f"{float(v) * (1.0 + rng.gauss(0.0, noise)):.6g}"
        yield row


def resample(source: Path, dest: Path, factor: float, seed: int = 0, noise: float = 0.02) -> Path:
    """Write ``factor`` times as many rows as ``source`` has to ``dest`` (atomically)."""
    header, rows = _rows(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(resampled_rows(source, round(len(rows) * factor), seed, noise))
    tmp.replace(dest)
    return dest


def write_monthly_spans(source: Path, dest_dir: Path, timestamp_column: str) -> list[Path]:
    """One ``span-YYYYMM/data.csv`` per month; returns the span folders in time order."""
    header, rows = _rows(source)
    if timestamp_column not in header:
        raise ValueError(f"{source}: no column '{timestamp_column}'")
    by_month: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row[timestamp_column] == "":
            continue
        month = datetime.fromtimestamp(int(float(row[timestamp_column])), UTC).strftime("%Y%m")
        by_month.setdefault(month, []).append(row)
    out = []
    for month in sorted(by_month):
        folder = dest_dir / f"span-{month}"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "data.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(by_month[month])
        out.append(folder)
    return out


# ---------------------------------------------------------------- generator --
LAYOUTS = ("spans", "files", "single")


@dataclass(frozen=True)
class _Column:
    kind: str  # int | float | string
    std: float = 0.0  # of the source values (float columns)
    additive: bool = False  # noise of noise * std (coordinates) instead of a relative noise (amounts)
    low: float = float("-inf")  # jittered values stay in [low, high] of the source
    high: float = float("inf")
    decimals: int = 0


def _profile(header: list[str], rows: list[dict[str, str]]) -> list[_Column]:
    kinds = _numeric_kinds(header, rows)
    out = []
    for col in header:
        if kinds[col] != "float":
            out.append(_Column(kinds[col]))
            continue
        cells = [v for v in (row[col] for row in rows) if v != ""]
        values = [float(v) for v in cells]
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        decimals = max((len(v) - v.index(".") - 1 for v in cells if "." in v), default=2)
        # Small spread around a large value (coordinates): relative noise would move a point out of
        # town, so it is additive. Amounts (fares, miles) get relative noise, which keeps zeros at 0.
        additive = std < 0.1 * abs(mean)
        out.append(_Column("float", std, additive, min(values), max(values), min(max(decimals, 2), 10)))
    return out


def synthetic_rows(source: Path, n_rows: int, seed: int = 0, noise: float = 0.02) -> Iterator[list[str]]:
    """``n_rows`` rows like ``source``'s, one at a time: real rows drawn with replacement; a float
    cell gets Gaussian noise, relative (``noise``: a 10.00 fare becomes ~10.00 ± 0.20, a 0 tip
    stays 0) or, for columns with a small spread around a large value like coordinates, additive
    (``noise`` times the column's std), kept inside the column's source range. Integer codes,
    strings, timestamps and empty cells are kept as drawn, so every column keeps its
    distribution and missing rate."""
    header, rows = _rows(source)
    if not rows:
        raise ValueError(f"{source}: no data rows to resample")
    columns = _profile(header, rows)
    table = [[row[c] for c in header] for row in rows]
    floats = [(i, c) for i, c in enumerate(columns) if c.kind == "float" and c.std > 0]
    rng = random.Random(seed)
    for _ in range(n_rows):
        row = list(table[rng.randrange(len(table))])
        for i, c in floats:
            if row[i] != "":
                v = float(row[i])
                v = v + rng.gauss(0.0, noise * c.std) if c.additive else v * (1.0 + rng.gauss(0.0, noise))
                v = min(max(v, c.low), c.high)
                row[i] = f"{v:.{c.decimals}f}"
        yield row


def generate(source: Path, dest_dir: Path, n_rows: int, *, layout: str = "spans",
             timestamp_column: str = "trip_start_timestamp", seed: int = 0, noise: float = 0.02) -> list[Path]:
    """Write ``n_rows`` synthetic rows (``synthetic_rows``) under ``dest_dir``, streamed (the output
    is never held in memory). ``layout``: ``spans`` = ``span-YYYYMM/data.csv`` per month (for
    ``data.span_pattern``), ``files`` = ``data-YYYYMM.csv`` per month in one folder (one dataset,
    read in parallel), ``single`` = ``data.csv``. Returns the files written, in order."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if n_rows < 1:
        raise ValueError(f"rows must be >= 1, got {n_rows}")
    header, _ = _rows(source)
    if layout != "single" and timestamp_column not in header:
        raise ValueError(f"{source}: no column '{timestamp_column}' to split months by")
    ts = header.index(timestamp_column) if layout != "single" else -1
    dest_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, tuple[Any, Any, Path]] = {}

    def writer_for(month: str) -> Any:
        if month not in writers:
            path = (dest_dir / f"span-{month}" / "data.csv" if layout == "spans"
                    else dest_dir / (f"data-{month}.csv" if layout == "files" else "data.csv"))
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = path.open("w", newline="")
            w = csv.writer(fh)
            w.writerow(header)
            writers[month] = (fh, w, path)
        return writers[month][1]

    try:
        for row in synthetic_rows(source, n_rows, seed, noise):
            if layout == "single":
                month = "all"
            elif row[ts] == "":
                month = "unknown"  # no timestamp: kept, in its own file (never the case in taxi data)
            else:
                month = datetime.fromtimestamp(int(float(row[ts])), UTC).strftime("%Y%m")
            writer_for(month).writerow(row)
    finally:
        for fh, _, _ in writers.values():
            fh.close()
    return [writers[m][2] for m in sorted(writers)]
