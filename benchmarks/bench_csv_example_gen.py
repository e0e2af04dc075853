"""ExampleGen time: ours (components/csv_example_gen) vs stock tfx CsvExampleGen, side by side.

Each run is a one-component pipeline under LocalDagRunner (DirectRunner in memory, like the taxi
config) on the same CSV with the taxi split (8:1:1); the two alternate ``--repeats`` times and the
median wall time of each is printed, with the number of examples written (equal: same rows).

    python benchmarks/bench_csv_example_gen.py [--csv data/taxi/data.csv] [--repeats 3] [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, when run as a script

from model.keras_env import KERAS_ENV

# This script is a process entry (model/keras_env.py): the Keras flavour before TensorFlow loads;
# the pipeline runs and servers it starts inherit it.
os.environ.update(KERAS_ENV)

import beam_local
from benchmarks import harness
from components.csv_example_gen import CsvExampleGen

ROOT = Path(__file__).resolve().parent.parent

GOAL = 1.1  # ours may cost at most 10% more than stock for what it adds (quoted newlines, tokens, checks)


def run_once(kind: str, csv: Path, work: Path) -> tuple[float, int]:
    import tensorflow as tf
    from tfx import v1 as tfx
    from tfx.proto import example_gen_pb2

    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split",
                                                                            pattern=csv.name)])
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=s, hash_buckets=b) for s, b in (("train", 8), ("eval", 1),
                                                                             ("test", 1))]))
    args = {"input_base": str(csv.parent), "input_config": input_config, "output_config": output_config}
    gen = CsvExampleGen(**args) if kind == "ours" else tfx.components.CsvExampleGen(**args)
    p = tfx.dsl.Pipeline(pipeline_name=kind, pipeline_root=str(work / "root"), components=[gen],
                         metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                             str(work / "m.sqlite")), beam_pipeline_args=harness.BEAM_ARGS)
    beam_local.install()
    start = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(p)
    seconds = time.perf_counter() - start
    files = [str(f) for f in (work / "root" / "CsvExampleGen" / "examples").glob("*/Split-*/*.gz")]
    count = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    return seconds, count


def add_args(parser) -> None:
    parser.add_argument("--csv", type=Path, default=harness.TAXI_CSV)
    parser.add_argument("--repeats", type=int, default=3)


def main() -> int:
    b = harness.bench("bench_csv_example_gen", __doc__.split("\n\n")[0], add_args)
    csv = b.args.csv.resolve()
    if b.args.quick:
        csv, b.args.repeats = harness.taxi_sample(b.work / "data", 500) / "data.csv", 1
    times: dict[str, list[float]] = {"stock": [], "ours": []}
    counts: dict[str, int] = {}
    for r in range(b.args.repeats):
        for kind in times:
            seconds, counts[kind] = run_once(kind, csv, b.work / f"{kind}{r}")
            times[kind].append(seconds)
    print(f"{csv}: ExampleGen wall time, median of {b.args.repeats} (LocalDagRunner, DirectRunner in memory)")
    rows = [{"kind": kind, "median_s": statistics.median(ts), "runs_s": ts, "examples": counts[kind]}
            for kind, ts in times.items()]
    print(harness.table(rows, [("kind", "kind", "<7"), ("median_s", "median s", ">10.2f"),
                               ("examples", "examples", ">10,")]))
    b.tables = {"runs": rows, "csv": str(csv)}
    ratio = rows[1]["median_s"] / rows[0]["median_s"]
    same = counts["ours"] == counts["stock"]
    return b.report([harness.Goal("ExampleGen time, ours / stock CsvExampleGen", ratio, "<=", GOAL,
                                  note="same examples" if same else "EXAMPLE COUNTS DIFFER")])


if __name__ == "__main__":
    sys.exit(main())
