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
from datetime import UTC, datetime
from pathlib import Path


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
