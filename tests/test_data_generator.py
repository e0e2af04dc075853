"""data/generate.py: taxi-like data of any size keeps each column's distribution and missing
rate, with noise, split into monthly spans (every row in its month's span)."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT, TAXI_CSV, read_taxi_rows

N = 30_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "taxi"
    proc = subprocess.run([sys.executable, str(ROOT / "data" / "generate.py"), "--rows", "30k", "--out", str(out),
                           "--seed", "3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {N:,} rows" in proc.stdout
    return out


def read_spans(root: Path) -> dict[str, list[dict[str, str]]]:
    spans = {}
    for f in sorted(root.glob("span-*/data.csv")):
        with f.open(newline="") as fh:
            spans[f.parent.name] = list(csv.DictReader(fh))
    return spans


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(q * len(values)), len(values) - 1)]


def test_monthly_spans_hold_their_month(generated: Path) -> None:
    spans = read_spans(generated)
    assert sum(len(r) for r in spans.values()) == N
    _, source = read_taxi_rows()
    source_months = {datetime.fromtimestamp(int(r["trip_start_timestamp"]), UTC).strftime("%Y%m") for r in source}
    assert {s.removeprefix("span-") for s in spans} == source_months
    for span, rows in spans.items():
        months = {datetime.fromtimestamp(int(r["trip_start_timestamp"]), UTC).strftime("%Y%m") for r in rows}
        assert months == {span.removeprefix("span-")}


def test_columns_keep_distribution_and_missing_rate(generated: Path) -> None:
    header, source = read_taxi_rows()
    rows = [r for span in read_spans(generated).values() for r in span]
    assert list(rows[0]) == header
    for col in header:
        src_missing = sum(r[col] == "" for r in source) / len(source)
        gen_missing = sum(r[col] == "" for r in rows) / len(rows)
        # Binomial sampling error at 30k rows is < 0.003 for any rate; 0.01 is a generous bound.
        assert abs(gen_missing - src_missing) < 0.01, (col, src_missing, gen_missing)
    # Each generated quantile lies between the source's neighbouring quantiles (q ± 0.02: sampling;
    # coordinates sit in lumps at area centroids), widened by 3 noise sigmas (2% relative for
    # amounts, 2% of the column's std for coordinates).
    for col, relative in (("fare", True), ("trip_miles", True), ("tips", True), ("trip_seconds", False),
                          ("pickup_latitude", False), ("dropoff_longitude", False)):
        src = [float(r[col]) for r in source if r[col] != ""]
        gen = [float(r[col]) for r in rows if r[col] != ""]
        mean = sum(src) / len(src)
        std = (sum((v - mean) ** 2 for v in src) / len(src)) ** 0.5
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            lo, hi, g = quantile(src, q - 0.02), quantile(src, q + 0.02), quantile(gen, q)
            slack = 0.06 * max(abs(lo), abs(hi)) if relative else 0.06 * std
            assert lo - slack <= g <= hi + slack, (col, q, lo, g, hi)
        assert min(src) <= min(gen) and max(gen) <= max(src), col  # noise stays in the source range
    for col in ("payment_type", "company", "trip_start_hour", "pickup_community_area"):
        src, gen = Counter(r[col] for r in source), Counter(r[col] for r in rows)
        assert set(gen) <= set(src), col  # no invented categories
        linf = max(abs(gen[k] / len(rows) - src[k] / len(source)) for k in src)
        assert linf < 0.02, (col, linf)
    # Point masses survive: a zero tip stays zero (relative noise), so the label rate holds.
    src_zero = sum(float(r["tips"]) == 0 for r in source) / len(source)
    gen_zero = sum(float(r["tips"]) == 0 for r in rows) / len(rows)
    assert abs(gen_zero - src_zero) < 0.02


def test_rows_are_jittered_not_copied(generated: Path) -> None:
    _, source = read_taxi_rows()
    fares = {r["fare"] for r in source}
    rows = [r for span in read_spans(generated).values() for r in span]
    jittered = sum(r["fare"] not in fares for r in rows if r["fare"] not in ("", "0.00", "0.0"))
    assert jittered > 0.5 * len(rows)


def test_layouts_and_bad_input(tmp_path: Path) -> None:
    script = str(ROOT / "data" / "generate.py")
    out = tmp_path / "files"
    ok = subprocess.run([sys.executable, script, "--rows", "500", "--out", str(out), "--layout", "files"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    files = sorted(out.glob("data-*.csv"))
    assert files and sum(sum(1 for _ in f.open()) - 1 for f in files) == 500
    again = subprocess.run([sys.executable, script, "--rows", "10", "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "is not empty" in again.stderr
    bad = subprocess.run([sys.executable, script, "--rows", "1.5x", "--out", str(tmp_path / "b")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--rows: not a row count: '1.5x'" in bad.stderr
    missing = subprocess.run([sys.executable, script, "--rows", "10", "--out", str(tmp_path / "c"),
                              "--source", str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.csv: no such file" in missing.stderr
    assert TAXI_CSV.exists()
