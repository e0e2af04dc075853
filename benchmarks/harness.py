"""What every benchmark shares: the shipped taxi config and data, pipeline runs timed from ML
Metadata with their peak memory, the upstream TFX taxi example, and the goal table every script
ends with (printed, and written as JSON to ``outputs/bench/<script>.json``).

Every script takes ``--quick``: tiny data and budgets, the same code path. tests/test_benchmarks.py
runs each one that way so a broken benchmark fails ``make test``; the measurements are ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from beam_local import LOCAL_RUNNER

ROOT = Path(__file__).resolve().parent.parent
TAXI = ROOT / "pipeline" / "configs" / "taxi" / "pipeline.yaml"
TAXI_CSV = ROOT / "data" / "taxi" / "data.csv"
OUT = ROOT / "outputs" / "bench"
# The taxi config's Beam arguments, spelled out so both sides of a comparison get the same ones: the
# local runner (no Prism attempt) and no TFX package built for its workers (beam_local/__init__.py).
BEAM_ARGS = [f"--runner={LOCAL_RUNNER}", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


# --- the goal table -----------------------------------------------------------------------------

@dataclass
class Goal:
    """One goal: ``measured`` against ``bound`` in the direction ``op`` ('<=' or '>=')."""

    name: str
    measured: float
    op: str
    bound: float
    unit: str = "x"
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.measured != self.measured:  # NaN: not measured
            return False
        return self.measured <= self.bound if self.op == "<=" else self.measured >= self.bound

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "status": "PASS" if self.passed else "MISS"}


@dataclass
class Bench:
    """A benchmark's command line and its final report."""

    name: str
    args: argparse.Namespace
    tables: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def work(self) -> Path:
        return self.args.workdir

    def report(self, goals: list[Goal]) -> int:
        """Print goal / measured / PASS or MISS and write the same, with the tables, as JSON.
        A MISS is a measurement, not an error: the exit code is 0 so `make bench` goes on."""
        width = max([len(g.name) for g in goals] + [4])
        print(f"\n{self.name}: goals{' (quick: code path only, not a measurement)' if self.args.quick else ''}")
        print(f"  {'goal':<{width}}  {'measured':>10}  {'bound':>9}  result")
        for g in goals:
            value = "n/a" if g.measured != g.measured else f"{g.measured:.3f}{g.unit}"
            print(f"  {g.name:<{width}}  {value:>10}  {g.op + ' ' + f'{g.bound:g}{g.unit}':>9}  "
                  f"{'PASS' if g.passed else 'MISS'}{'  (' + g.note + ')' if g.note else ''}")
        out = self.args.out / f"{self.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "benchmark": self.name, "command": " ".join(["python", *sys.argv]), "quick": self.args.quick,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.monotonic() - self.started, 1),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1m": round(os.getloadavg()[0], 2)},
            "goals": [g.row() for g in goals], "tables": self.tables}, indent=1, default=float))
        print(f"  written: {out}")
        return 0


def bench(name: str, doc: str, add_args=None) -> Bench:
    """Parse the common flags (--workdir, --out, --quick) and the script's own."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="work folder (default: a new temp folder)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON report goes (default: outputs/bench)")
    parser.add_argument("--quick", action="store_true", help="tiny data and budgets: the code path, not a measurement")
    if add_args:
        add_args(parser)
    args = parser.parse_args()
    if args.workdir is None:
        import tempfile

        args.workdir = Path(tempfile.mkdtemp(prefix=f"{name}_"))
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"{name}: workdir {args.workdir}", flush=True)
    return Bench(name, args)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """rows as text: columns are (key, header, format), format like '>9.1f' (its width pads the
    header; a missing value prints as '-')."""
    widths = [fmt.split(".")[0].rstrip("sdf,") for _, _, fmt in columns]
    lines = ["  " + " ".join(f"{h:{w}}" for (_, h, _), w in zip(columns, widths, strict=True))]
    for r in rows:
        cells = []
        for (key, _, fmt), w in zip(columns, widths, strict=True):
            v = r.get(key)
            cells.append(f"{'-':{w}}" if v is None or (isinstance(v, float) and v != v) else f"{v:{fmt}}")
        lines.append("  " + " ".join(cells))
    return "\n".join(lines)


# --- data ---------------------------------------------------------------------------------------

def taxi_sample(folder: Path, rows: int, seed: int = 7) -> Path:
    """The first rows of a seeded shuffle of the taxi CSV, as ``folder``/data.csv (quick runs)."""
    import random

    lines = TAXI_CSV.read_text().splitlines(keepends=True)
    body = lines[1:]
    random.Random(seed).shuffle(body)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.csv").write_text(lines[0] + "".join(body[:rows]))
    return folder


def scaled_taxi(work: Path, rows: int) -> Path:
    """A folder with ``rows`` taxi rows: the real CSV when rows is its size, else real rows resampled
    with noise (pipeline.datasets.generate, one CSV per month). Kept in ``work`` for the next run."""
    from pipeline.datasets import generate

    folder, done = work / f"data_{rows}", work / f"data_{rows}.complete"  # beside it: upstream reads every file
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    real = sum(1 for _ in TAXI_CSV.open()) - 1
    if rows == real:
        folder.mkdir(parents=True)
        shutil.copy(TAXI_CSV, folder / "data.csv")
    elif rows < real:
        taxi_sample(folder, rows)
    else:
        print(f"generating {rows:,} rows ...", flush=True)
        generate(TAXI_CSV, folder, rows, layout="files", seed=1)
    done.touch()
    return folder


def row_count(text: str) -> int:
    """'15k' / '1.5M' / '2000' -> rows."""
    text = text.strip()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return round(float(text[:-1] if scale > 1 else text) * scale)


# --- timed runs ---------------------------------------------------------------------------------

class PeakMemory(threading.Thread):
    """Peak of the summed RSS of a process and all its descendants, sampled every 0.2 s."""

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


@dataclass
class Run:
    wall: float  # seconds, process start to exit
    peak_bytes: int
    nodes: dict[str, float]  # component id -> seconds, from ML Metadata


def timed(cmd: list[str], log: Path, what: str) -> tuple[float, int]:
    """Run ``cmd`` (output to ``log``); (wall seconds, peak memory). Exits naming the log on failure."""
    print(f"  {what} (log: {log}) ...", flush=True)
    start = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        memory = PeakMemory(proc.pid)
        memory.start()
        code = proc.wait()
        memory.done.set()
        memory.join()
    wall = time.monotonic() - start
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        sys.exit(f"{what} failed (exit {code}); see {log}\n{tail}")
    print(f"    {wall:.1f}s, peak memory {memory.peak / 2**30:.2f} GiB", flush=True)
    return wall, memory.peak


def node_times(metadata: Path, pipeline_name: str, latest: bool = True) -> dict[str, float]:
    """Seconds per component of ``pipeline_name`` in the sqlite MLMD at ``metadata`` (its latest or
    first execution), from the execution's create and last-update times."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    conn = metadata_store_pb2.ConnectionConfig()
    conn.sqlite.filename_uri = str(metadata)
    conn.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = mlmd.MetadataStore(conn)
    out = {}
    for ctx in store.get_contexts_by_type("node"):
        if not ctx.name.startswith(pipeline_name + "."):
            continue
        executions = store.get_executions_by_context(ctx.id)
        if executions:
            e = (max if latest else min)(executions, key=lambda e: e.id)
            out[ctx.name.split(".", 1)[1]] = (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1e3
    return out


def run_ours(work: Path, cfg: dict, until: str | None = None, tag: str = "") -> Run:
    """Run the config dict ``cfg`` (validated first) with ``python -m pipeline run`` from an empty
    pipeline root under ``work``/outputs, unless ``tag`` asks to re-run it as it is (cached)."""
    from pipeline.derive import write

    name = cfg["name"]
    outputs = work / "outputs"
    path = write(cfg, work / f"{name}.yaml", output_root=outputs)
    if not tag:
        shutil.rmtree(outputs / name, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline", "run", "--config", str(path), "--output-root", str(outputs)]
    if until:
        cmd += ["--until", until]
    wall, peak = timed(cmd, work / f"{name}{tag}.log", f"ours: {name}{' ' + tag if tag else ''}")
    return Run(wall, peak, node_times(outputs / name / "metadata.sqlite", name))


# Upstream's own pipeline (tfx/examples/chicago_taxi_pipeline/taxi_pipeline_native_keras.py, as
# installed with tfx) in a fresh process: `until` keeps its components up to and including one.
UPSTREAM_RUNNER = """
import os, sys
from tfx import v1 as tfx
from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as up
import json
import beam_local
beam_local.install()  # as `pipeline run` does: the same Beam set-up both sides
data, root, until, train_steps, eval_steps, splits, beam_args = (
    sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), json.loads(sys.argv[6]), sys.argv[7:])
from tfx.proto import example_gen_pb2, trainer_pb2
from tfx.utils.proto_utils import proto_to_json  # exec_properties hold protos as JSON
p = up._create_pipeline(
    pipeline_name="upstream_taxi", pipeline_root=os.path.join(root, "pipeline_root"), data_root=data,
    module_file=os.path.join(os.path.dirname(up.__file__), "taxi_utils_native_keras.py"),
    serving_model_dir=os.path.join(root, "pushed"), metadata_path=os.path.join(root, "metadata.sqlite"),
    beam_pipeline_args=beam_args)
for c in p.components:
    if c.id == "CsvExampleGen" and splits:  # upstream's default is 2:1 train/eval
        c.exec_properties["output_config"] = proto_to_json(example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(splits=[
                example_gen_pb2.SplitConfig.Split(name=k, hash_buckets=v) for k, v in splits.items()])))
    if c.id == "Trainer":  # upstream's budget is 1000 / 150; quick runs shrink it
        c.exec_properties["train_args"] = proto_to_json(trainer_pb2.TrainArgs(num_steps=train_steps))
        c.exec_properties["eval_args"] = proto_to_json(trainer_pb2.EvalArgs(num_steps=eval_steps))
if until != "all":
    ids = [c.id for c in p.components]
    kept = p.components[: ids.index(until) + 1]  # upstream's list is in topological order
    for node in kept:
        for down in [d for d in node.downstream_nodes if d not in kept]:
            node.remove_downstream_node(down)
    p.components = kept
tfx.orchestration.LocalDagRunner().run(p)
"""
UPSTREAM_STEPS = (1000, 150)  # taxi_pipeline_native_keras.py's TrainArgs / EvalArgs


def run_upstream(work: Path, data: Path, until: str = "all", steps: tuple[int, int] = UPSTREAM_STEPS,
                 splits: dict[str, int] | None = None, tag: str = "upstream") -> Run:
    """Upstream's pipeline on ``data`` from an empty root ``work``/``tag``; ``splits``: hash buckets
    for its ExampleGen (default: upstream's own 2:1 train/eval)."""
    root = work / tag
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cmd = [sys.executable, "-c", UPSTREAM_RUNNER, str(data), str(root), until, str(steps[0]), str(steps[1]),
           json.dumps(splits or {}), *BEAM_ARGS]
    wall, peak = timed(cmd, work / f"{tag}.log", f"upstream TFX taxi example ({tag})")
    return Run(wall, peak, node_times(root / "metadata.sqlite", "upstream_taxi"))


# Upstream's preprocessing (taxi_utils_native_keras.preprocessing_fn) in our config language:
# z-scores, vocabularies (top 1000 + 10 OOV), 10 quantile buckets, integer categories, missing
# values filled with 0 / "" as upstream does.
UPSTREAM_FEATURES = (
    [{"name": n, "type": t, "steps": [{"impute": {"value": 0}}, "z_score"]}
     for n, t in (("trip_miles", "float"), ("fare", "float"), ("trip_seconds", "int"))]
    + [{"name": n, "type": "string", "steps": [{"impute": {"value": ""}},
                                              {"vocabulary": {"top_k": 1000, "oov_buckets": 10}}]}
       for n in ("payment_type", "company")]
    + [{"name": n, "type": "float", "steps": [{"impute": {"value": 0.0}}, {"bucketize": {"num_buckets": 10}}]}
       for n in ("pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude")]
    + [{"name": n, "type": "int", "steps": [{"impute": {"value": 0}}, {"categorical_identity": {"num_buckets": k}}]}
       for n, k in (("trip_start_hour", 24), ("trip_start_day", 31), ("trip_start_month", 13))]
)


# --- a finished run of the shipped config (what the optimization and deployment benchmarks read) ------

def finished_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-root", type=Path, default=None,
                        help="measure a finished run under this output root instead of running the pipeline")
    parser.add_argument("--config", type=Path, default=TAXI, help="the config of that run (default: shipped taxi)")


def finished_run(b: Bench, name: str) -> Any:
    """The loaded config of the run to measure: ``--output-root`` (with ``--config``) if given, else
    the shipped taxi config run now under the work folder (``--quick``: on 2,000 rows with the
    test-sized budgets tests use)."""
    from pipeline.config import load_config

    if b.args.output_root is not None:
        return load_config(b.args.config, output_root=b.args.output_root.resolve())
    from pipeline.derive import derive

    overrides: dict[str, Any] = {"name": name}
    if b.args.quick:
        overrides.update(data={"csv_dir": str(taxi_sample(b.work / "data", 2000))},
                         training={"train_steps": 100, "eval_steps": 10, "epochs": 1},
                         tuning={"max_trials": 1, "epochs": 1, "steps_per_epoch": 20, "validation_steps": 5})
    cfg = derive(TAXI, **overrides)
    run_ours(b.work, cfg)
    return load_config(b.work / f"{name}.yaml", output_root=b.work / "outputs")


def output_uri(cfg: Any, node_id: str, type_name: str) -> str:
    """The latest ``type_name`` output of ``node_id`` in the run's ML Metadata."""
    from pipeline.summary import latest_output_uri, open_store

    uri = latest_output_uri(open_store(cfg), cfg.name, node_id, type_name)
    if uri is None:
        raise SystemExit(f"no {type_name} output of {node_id} in {cfg.output_dir}: run the pipeline first")
    return uri


# --- the README's tables ------------------------------------------------------------------------

def markdown(reports: list[Path]) -> str:
    """The goal table of each JSON report as Markdown, with the command that produced it."""
    out = []
    for path in reports:
        r = json.loads(path.read_text())
        m = r["machine"]
        out.append(f"`{r['command']}` ({r['finished']}, {r['seconds']:.0f} s, {m['cpus']} cores, "
                   f"load {m['load_average_1m']}{'; QUICK: not a measurement' if r['quick'] else ''})\n")
        out.append("| goal | measured | bound | result |\n| --- | --- | --- | --- |")
        for g in r["goals"]:
            value = "n/a" if g["measured"] != g["measured"] else f"{g['measured']:.3f}{g['unit']}"
            note = f" ({g['note']})" if g["note"] else ""
            out.append(f"| {g['name']}{note} | {value} | {g['op']} {g['bound']:g}{g['unit']} | {g['status']} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # python benchmarks/harness.py [REPORT.json ...]: the tables as Markdown
    print(markdown([Path(p) for p in sys.argv[1:]] or sorted(OUT.glob("*.json"))))
