"""ExampleGen time: ours (components/csv_example_gen) vs stock tfx CsvExampleGen, side by side.

Each run is a one-component pipeline under LocalDagRunner (DirectRunner in memory, like the taxi
config) on the same CSV with the taxi split (8:1:1); the two alternate ``--repeats`` times and the
median wall time of each is printed, with the number of examples written (equal: same rows).

    python benchmarks/bench_csv_example_gen.py [--csv data/taxi/data.csv] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401  (Keras flavour before TensorFlow, which run_once imports)
from components.csv_example_gen import CsvExampleGen  # noqa: E402

BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


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
                             str(work / "m.sqlite")), beam_pipeline_args=BEAM_ARGS)
    start = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(p)
    seconds = time.perf_counter() - start
    files = [str(f) for f in (work / "root" / "CsvExampleGen" / "examples").glob("*/Split-*/*.gz")]
    count = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    return seconds, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=ROOT / "data" / "taxi" / "data.csv")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"stock": [], "ours": []}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for kind in times:
                seconds, counts[kind] = run_once(kind, args.csv.resolve(), Path(tmp) / f"{kind}{r}")
                times[kind].append(seconds)
    print(f"{args.csv}: ExampleGen wall time, median of {args.repeats} (LocalDagRunner, DirectRunner in memory)")
    for kind, ts in times.items():
        print(f"  {kind:5}  {statistics.median(ts):6.2f} s  ({', '.join(f'{t:.2f}' for t in ts)})  "
              f"{counts[kind]} examples")
    print(f"  ours / stock: {statistics.median(times['ours']) / statistics.median(times['stock']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
