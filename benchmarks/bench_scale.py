"""Scale: ExampleGen + StatisticsGen + DataCleaner + Transform at 150k and 1.5M rows.

Generates taxi-like data (``data/generate.py``: real rows resampled with noise, one CSV per
month in one folder), runs the shipped taxi config up to Transform (feature selection left out:
it scores a fixed-size sample) with the DirectRunner in ``in_memory`` and ``multi_processing``
(2 workers) mode, reads each component's time from ML Metadata and samples the memory of the
whole run (the sum of RSS over the pipeline process and all its children, every 0.2 s).
Prints rows/s, the time ratio of the large to the small run (goal <= 11x for 10x rows) and
the peak-memory ratio (goal: well under 10x; the data is streamed, never held whole).

    python benchmarks/bench_scale.py [--sizes 150k,1.5M] [--modes in_memory,multi_processing]
                                     [--workdir DIR] [--workers 2] [--reuse]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401  (Keras flavour before TensorFlow)
from pipeline.config import load_config  # noqa: E402
from pipeline.datasets import generate  # noqa: E402
from pipeline.summary import latest_execution, open_store  # noqa: E402

TAXI = ROOT / "pipeline/configs/taxi/pipeline.yaml"
MEASURED = ("CsvExampleGen", "StatisticsGen", "DataCleaner", "Transform")
BEAM_ARGS = {"in_memory": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
             "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers={workers}"]}


class PeakMemory(threading.Thread):
    """Peak of the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)
            self.done.wait(0.2)


def row_count(text: str) -> int:
    """data/generate.py's '150k' / '1.5M' parser (data/ is a folder of datasets, not a package)."""
    spec = importlib.util.spec_from_file_location("generate", ROOT / "data" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.row_count(text)


def data_for(work: Path, rows: int) -> Path:
    folder = work / f"data_{rows}"
    if not (folder / ".complete").exists():
        print(f"generating {rows:,} rows ...", flush=True)
        generate(ROOT / "data/taxi/data.csv", folder, rows, layout="files", seed=1)
        (folder / ".complete").touch()
    return folder


def run(work: Path, data: Path, rows: int, mode: str, workers: int, until: str = "Transform"
        ) -> tuple[dict[str, float], float, int]:
    name = f"scale_{rows}_{mode}" + ("" if until == "Transform" else f"_{until}")
    cfg = yaml.safe_load(TAXI.read_text())
    cfg["name"] = name
    cfg["data"]["csv_dir"] = str(data)
    cfg["schema"] = str(TAXI.parent / cfg["schema"])
    for key in ("feature_selection", "tuning", "optimization"):
        cfg.pop(key, None)
    cfg["runner"] = {"engine": "local", "beam_args": [a.format(workers=workers) for a in BEAM_ARGS[mode]]}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    outputs = work / "outputs"
    subprocess.run(["rm", "-rf", str(outputs / name)], check=True)
    start = time.monotonic()
    with (work / f"{name}.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--config", str(path), "--output-root",
                                 str(outputs), "--until", until], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        memory = PeakMemory(proc.pid)
        memory.start()
        code = proc.wait()
        memory.done.set()
        memory.join()
    wall = time.monotonic() - start
    if code != 0:
        sys.exit(f"{name} failed; see {work / f'{name}.log'}")
    loaded = load_config(path, output_root=outputs)
    store = open_store(loaded)
    times = {}
    for node in MEASURED[: MEASURED.index(until) + 1]:
        e = latest_execution(store, loaded.name, node)
        times[node] = (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
    return times, wall, memory.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="150k,1.5M", help="two row counts, small then large")
    parser.add_argument("--modes", default="in_memory,multi_processing")
    parser.add_argument("--workers", type=int, default=2, help="multi_processing workers")
    parser.add_argument("--workdir", type=Path, default=None, help="kept between runs (data is reused)")
    parser.add_argument("--reuse", action="store_true", help="reuse results a previous run saved in --workdir")
    parser.add_argument("--until", choices=MEASURED, default="Transform",
                        help="stop after this component (a shorter run of the first stages)")
    args = parser.parse_args()
    sizes = [row_count(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    for m in modes:
        if m not in BEAM_ARGS:
            sys.exit(f"--modes: unknown mode {m!r}; known: {', '.join(BEAM_ARGS)}")
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work}", flush=True)
    results = {}
    for rows in sizes:
        data = data_for(work, rows)
        for mode in modes:
            saved = work / (f"result_{rows}_{mode}" + ("" if args.until == "Transform" else f"_{args.until}")
                            + ".json")
            if args.reuse and saved.exists():
                times, wall, peak = json.loads(saved.read_text())
                results[rows, mode] = times, wall, peak
                print(f"reusing {saved.name}", flush=True)
                continue
            print(f"running ExampleGen .. {args.until} on {rows:,} rows, {mode} ...", flush=True)
            results[rows, mode] = run(work, data, rows, mode, args.workers, args.until)
            times, wall, peak = results[rows, mode]
            saved.write_text(json.dumps([times, wall, peak]))
            print(f"  done in {wall:.0f}s wall, peak memory {peak / 2**30:.2f} GiB", flush=True)

    measured = MEASURED[: MEASURED.index(args.until) + 1]
    cols = "".join(f"{n[:13]:>15}" for n in measured)
    print(f"\n{'rows':>10} {'mode':<17}{cols}{'total s':>11}{'rows/s':>9}{'wall s':>8}{'peak GiB':>10}")
    for (rows, mode), (times, wall, peak) in results.items():
        total = sum(times.values())
        print(f"{rows:>10,} {mode:<17}" + "".join(f"{times[n]:>15.1f}" for n in measured)
              + f"{total:>11.1f}{rows / total:>9,.0f}{wall:>8.0f}{peak / 2**30:>10.2f}")
    if len(sizes) == 2:
        small, large = sizes
        print()
        for mode in modes:
            (ts, _, ms), (tl, _, ml) = results[small, mode], results[large, mode]
            print(f"{mode:<17} time ratio {large / small:.0f}x rows: {sum(tl.values()) / sum(ts.values()):.2f}x "
                  f"(goal <= {large / small + 1:.0f}x); peak memory ratio {ml / ms:.2f}x (goal well under "
                  f"{large / small:.0f}x)")


if __name__ == "__main__":
    main()
