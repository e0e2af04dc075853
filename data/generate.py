"""Taxi-like data of any size: real rows resampled with noise, split into monthly spans.

    python data/generate.py --rows 1.5M --out data/taxi_1.5m                  # span-YYYYMM/data.csv
    python data/generate.py --rows 150k --out /tmp/taxi_150k --layout files   # data-YYYYMM.csv, one dataset

Rows are drawn with replacement from a real CSV (default: the bundled taxi data); float amounts
get 2% relative noise, coordinates a small additive one, and integer codes, strings, timestamps
and empty cells are kept as drawn, so each column keeps its distribution and missing rate
(``pipeline/datasets.py: synthetic_rows``). Output is streamed: any size fits in memory.
With ``--layout spans`` point a config at it with ``data.span_pattern: "span-{SPAN}/*.csv"``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, when run as a script

from pipeline.datasets import LAYOUTS, generate

ROOT = Path(__file__).resolve().parent.parent

SUFFIXES = {"k": 1_000, "m": 1_000_000}


def row_count(text: str) -> int:
    """'150000', '150k', '1.5M' -> rows."""
    t = text.strip().lower().replace("_", "").replace(",", "")
    try:
        n = float(t[:-1]) * SUFFIXES[t[-1]] if t and t[-1] in SUFFIXES else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rows: not a row count: {text!r} (e.g. 150000, 150k, 1.5M)") from None
    if n < 1 or n != int(n):
        raise argparse.ArgumentTypeError(f"--rows: must be a whole number >= 1, got {text!r}")
    return int(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=row_count, required=True, help="e.g. 150000, 150k, 1.5M")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "taxi" / "data.csv")
    parser.add_argument("--layout", choices=LAYOUTS, default="spans",
                        help="spans: span-YYYYMM/data.csv; files: data-YYYYMM.csv; single: data.csv")
    parser.add_argument("--timestamp-column", default="trip_start_timestamp", help="Unix seconds; months by it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.02, help="relative noise of float amounts")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"error: --source {args.source}: no such file", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: --out {args.out} is not empty (remove it or pick another folder)", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        files = generate(args.source, args.out, args.rows, layout=args.layout,
                         timestamp_column=args.timestamp_column, seed=args.seed, noise=args.noise)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.rows:,} rows to {len(files)} file(s) under {args.out} in {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
