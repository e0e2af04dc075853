"""Our preprocessing vs upstream's: Transform time on the same rows, at 15k and at 150k rows.

Ours is the shipped taxi config (power transforms, quantile buckets, vocabularies, crosses and
derived features, DataCleaner before Transform); upstream is the TFX taxi example's own pipeline
and preprocessing_fn (z-scores, vocabularies, buckets). Both run ExampleGen .. Transform under
LocalDagRunner with the same Beam arguments, from empty roots, on the same CSV folder (15k: the
real taxi CSV; 150k: real rows resampled with noise), with the same 8:1:1 split. Transform's time
comes from each run's ML Metadata. Still different: upstream's Transform writes every split, ours
train and eval (Evaluator reads raw examples); ours reads DataCleaner's output (a few outlier rows
fewer).

    python benchmarks/bench_preprocessing.py [--sizes 15k,150k] [--workdir DIR] [--quick]
"""

from __future__ import annotations

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

SPLITS = {"train": 8, "eval": 1, "test": 1}  # the shipped config's, given to upstream too
GOAL = 1.5  # our Transform time <= 1.5x upstream's at the largest size


def main() -> int:
    b = harness.bench("bench_preprocessing", __doc__, lambda p: p.add_argument(
        "--sizes", default="15002,150k", help="row counts (15002: the real taxi CSV)"))
    sizes = [500] if b.args.quick else [harness.row_count(s) for s in b.args.sizes.split(",")]
    rows = []
    for n in sizes:
        data = harness.scaled_taxi(b.work, n)
        print(f"{n:,} rows:", flush=True)
        up = harness.run_upstream(b.work, data, until="Transform", splits=SPLITS, tag=f"upstream_{n}")
        cfg = derive(harness.TAXI, drop=("feature_selection", "tuning", "optimization", "deployment"),
                     name=f"bench_pre_{n}", data={"csv_dir": str(data)},
                     runner={"engine": "local", "beam_args": harness.BEAM_ARGS})
        ours = harness.run_ours(b.work, cfg, until="Transform")
        t_ours, t_up = ours.nodes["Transform"], up.nodes["Transform"]
        rows.append({"rows": n, "ours_transform_s": t_ours, "upstream_transform_s": t_up,
                     "ratio": t_ours / t_up, "ours_rows_s": n / t_ours, "upstream_rows_s": n / t_up,
                     "ours_cleaner_s": ours.nodes.get("DataCleaner"),
                     "ours_peak_gib": ours.peak_bytes / 2**30, "upstream_peak_gib": up.peak_bytes / 2**30})
    print("\n" + harness.table(rows, [
        ("rows", "rows", ">9,"), ("ours_transform_s", "ours s", ">9.1f"),
        ("upstream_transform_s", "upstream s", ">12.1f"),
        ("ratio", "ours/up", ">9.2f"), ("ours_rows_s", "ours rows/s", ">13,.0f"),
        ("upstream_rows_s", "up rows/s", ">11,.0f"), ("ours_cleaner_s", "DataCleaner s", ">15.1f")]))
    b.tables = {"transform": rows, "splits": SPLITS, "beam_args": harness.BEAM_ARGS}
    goals = [harness.Goal(f"Transform time at {r['rows']:,} rows, ours / upstream", r["ratio"], "<=", GOAL)
             for r in rows]
    if len(rows) == 2:
        growth = rows[1]["ours_transform_s"] / rows[0]["ours_transform_s"]
        goals.append(harness.Goal(f"our Transform time for {rows[1]['rows'] / rows[0]['rows']:.0f}x rows", growth,
                                  "<=", round(rows[1]["rows"] / rows[0]["rows"]) + 1))
    return b.report(goals)


if __name__ == "__main__":
    sys.exit(main())
