"""Preprocessing throughput: DataCleaner + Transform on the taxi data and on a 10x resample.

Runs the shipped taxi config's pipeline up to Transform (real components, LocalDagRunner,
the config's Beam arguments) on the 15,002-row taxi CSV and on a 10x resample of it
(real rows drawn with replacement, float columns jittered by 2%), reads each component's
time from ML Metadata, and prints rows/s and the ratio of the two times
(goal: <= 11x time for 10x rows).

    python benchmarks/bench_preprocessing.py [--workdir DIR] [--factor 10]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401  (Keras flavour before TensorFlow)
from pipeline.config import load_config  # noqa: E402
from pipeline.datasets import resample  # noqa: E402
from pipeline.summary import latest_execution, open_store  # noqa: E402

TAXI = ROOT / "pipeline/configs/taxi/pipeline.yaml"
MEASURED = ("DataCleaner", "Transform")


def run_until_transform(work: Path, name: str, csv: Path) -> tuple[dict[str, float], float]:
    cfg = yaml.safe_load(TAXI.read_text())
    cfg["name"] = name
    cfg["data"]["csv_dir"] = str(csv.parent)
    cfg["schema"] = str(TAXI.parent / cfg["schema"])
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    shutil.rmtree(work / "outputs" / name, ignore_errors=True)
    start = time.monotonic()
    with (work / f"{name}.log").open("w") as log:
        proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(path), "--output-root",
                               str(work / "outputs"), "--until", "Transform"], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{name} failed; see {work / f'{name}.log'}")
    loaded = load_config(path, output_root=work / "outputs")
    store = open_store(loaded)
    times = {}
    for node in MEASURED:
        e = latest_execution(store, loaded.name, node)
        times[node] = (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
    return times, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_preprocessing_"))
    small = work / "x1" / "data.csv"
    small.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "data/taxi/data.csv", small)
    big = resample(small, work / f"x{args.factor}" / "data.csv", args.factor, seed=1)
    rows = {1: sum(1 for _ in small.open()) - 1, args.factor: sum(1 for _ in big.open()) - 1}
    print(f"workdir {work}", flush=True)
    results = {}
    for factor, csv in ((1, small), (args.factor, big)):
        print(f"running ExampleGen .. Transform on {rows[factor]:,} rows ...", flush=True)
        results[factor] = run_until_transform(work, f"bench_pre_x{factor}", csv)
        times, wall = results[factor]
        print(f"  done in {wall:.0f}s wall", flush=True)
    print(f"\n{'rows':>10}{'DataCleaner s':>15}{'Transform s':>13}{'both s':>9}{'rows/s':>10}")
    for factor in (1, args.factor):
        times, _ = results[factor]
        both = sum(times.values())
        print(f"{rows[factor]:>10,}{times['DataCleaner']:>15.1f}{times['Transform']:>13.1f}{both:>9.1f}"
              f"{rows[factor] / both:>10,.0f}")
    t1, tn = (sum(results[f][0].values()) for f in (1, args.factor))
    print(f"\ntime ratio x{args.factor}/x1 = {tn / t1:.2f} for {rows[args.factor] / rows[1]:.0f}x rows "
          f"(goal <= {args.factor + 1})")


if __name__ == "__main__":
    main()
