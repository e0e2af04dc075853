"""Scale: ExampleGen + StatisticsGen + DataCleaner + Transform at 150k and 1.5M rows.

Generates taxi-like data (``data/generate.py``: real rows resampled with noise, one CSV per
month in one folder), runs the shipped taxi config up to Transform (feature selection left out:
it scores a fixed-size sample) with the DirectRunner in ``in_memory`` and ``multi_processing``
(2 workers) mode, reads each component's time from ML Metadata and samples the memory of the
whole run (the sum of RSS over the pipeline process and all its children, every 0.2 s).
Prints rows/s, the time ratio of the large to the small run (goal <= 11x for 10x rows) and
the peak-memory ratio (goal: well under 10x; the data is streamed, never held whole).

    python benchmarks/bench_scale.py [--sizes 150k,1.5M] [--modes in_memory,multi_processing]
                                     [--workdir DIR] [--workers 2] [--reuse] [--quick]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, when run as a script

from model.keras_env import KERAS_ENV

# This script is a process entry (model/keras_env.py): the Keras flavour before TensorFlow loads;
# the pipeline runs and servers it starts inherit it.
os.environ.update(KERAS_ENV)

from benchmarks import harness
from pipeline.derive import derive

ROOT = Path(__file__).resolve().parent.parent

MEASURED = ("CsvExampleGen", "StatisticsGen", "DataCleaner", "Transform")
BEAM_ARGS = {"in_memory": harness.BEAM_ARGS,
             "multi_processing": [harness.BEAM_ARGS[0], "--direct_running_mode=multi_processing",
                                  "--direct_num_workers={workers}"]}
MEMORY_GOAL = 5.0  # peak memory for 10x rows: streamed, so well under 10x


def run(work: Path, data: Path, rows: int, mode: str, workers: int, until: str) -> tuple[dict[str, float], float, int]:
    name = f"scale_{rows}_{mode}" + ("" if until == "Transform" else f"_{until}")
    # feature selection is left out: it scores a fixed-size sample whatever the data size
    cfg = derive(harness.TAXI, drop=("feature_selection", "tuning", "optimization", "deployment"), name=name,
                 data={"csv_dir": str(data)},
                 runner={"engine": "local", "beam_args": [a.format(workers=workers) for a in BEAM_ARGS[mode]]})
    result = harness.run_ours(work, cfg, until=until)
    return {n: result.nodes[n] for n in MEASURED[: MEASURED.index(until) + 1]}, result.wall, result.peak_bytes


def add_args(parser) -> None:
    parser.add_argument("--sizes", default="150k,1.5M", help="two row counts, small then large")
    parser.add_argument("--modes", default="in_memory,multi_processing")
    parser.add_argument("--workers", type=int, default=2, help="multi_processing workers")
    parser.add_argument("--reuse", action="store_true", help="reuse results a previous run saved in --workdir")
    parser.add_argument("--until", choices=MEASURED, default="Transform",
                        help="stop after this component (a shorter run of the first stages)")


def main() -> int:
    b = harness.bench("bench_scale", __doc__, add_args)
    args = b.args
    sizes = [300, 3000] if args.quick else [harness.row_count(s) for s in args.sizes.split(",")]
    modes = ["in_memory"] if args.quick else args.modes.split(",")
    until = "CsvExampleGen" if args.quick else args.until
    for m in modes:
        if m not in BEAM_ARGS:
            sys.exit(f"--modes: unknown mode {m!r}; known: {', '.join(BEAM_ARGS)}")
    results = {}
    for rows in sizes:
        data = harness.scaled_taxi(b.work, rows)
        for mode in modes:
            saved = b.work / (f"result_{rows}_{mode}" + ("" if until == "Transform" else f"_{until}") + ".json")
            if args.reuse and saved.exists():
                results[rows, mode] = tuple(json.loads(saved.read_text()))
                print(f"reusing {saved.name}", flush=True)
                continue
            print(f"ExampleGen .. {until} on {rows:,} rows, {mode}:", flush=True)
            results[rows, mode] = run(b.work, data, rows, mode, args.workers, until)
            saved.write_text(json.dumps(results[rows, mode]))

    measured = MEASURED[: MEASURED.index(until) + 1]
    table = []
    for (rows, mode), (times, wall, peak) in results.items():
        total = sum(times.values())
        table.append({"rows": rows, "mode": mode, **times, "total_s": total, "rows_s": rows / total, "wall_s": wall,
                      "peak_gib": peak / 2**30})
    print("\n" + harness.table(table, [("rows", "rows", ">10,"), ("mode", "mode", "<17"),
                                      *[(n, n[:13], ">15.1f") for n in measured], ("total_s", "total s", ">10.1f"),
                                      ("rows_s", "rows/s", ">9,.0f"), ("wall_s", "wall s", ">8.0f"),
                                      ("peak_gib", "peak GiB", ">10.2f")]))
    b.tables = {"runs": table, "until": until}
    goals = []
    if len(sizes) == 2:
        small, large = sizes
        factor = large / small
        for mode in modes:
            (ts, _, ms), (tl, _, ml) = results[small, mode], results[large, mode]
            goals.append(harness.Goal(f"{mode}: time for {factor:.0f}x rows", sum(tl.values()) / sum(ts.values()),
                                      "<=", factor + 1))
            goals.append(harness.Goal(f"{mode}: peak memory for {factor:.0f}x rows", ml / ms, "<=", MEMORY_GOAL))
    return b.report(goals)


if __name__ == "__main__":
    sys.exit(main())
