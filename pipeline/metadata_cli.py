"""``runs``, ``lineage`` and ``compare``: ML Metadata read by a person (pipeline/lineage.py does the
reading), plus the per-run config snapshot that ``run`` writes so ``compare`` can show config changes.

Snapshot: ``<output_dir>/runs/<run_id>/config.yaml``, the resolved PipelineConfig of that run."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import ml_metadata as mlmd
import yaml

from pipeline import lineage as lin
from pipeline.config import PipelineConfig

RUNS_DIR = "runs"
SNAPSHOT = "config.yaml"
STATS_FILE = "FeatureStats.pb"  # StatisticsGen's file inside Split-<name>/
KEY_METRICS = ("auc", "binary_accuracy", "sparse_categorical_accuracy", "mean_absolute_error",
               "root_mean_squared_error", "example_count")


# ----------------------------------------------------------------------------- config snapshots --
def resolved_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as plain data (paths as strings): what ``compare`` diffs."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def snapshot_dir(cfg: PipelineConfig, run_id: str) -> Path:
    return cfg.output_dir / RUNS_DIR / run_id


def write_snapshots(cfg: PipelineConfig, store: mlmd.MetadataStore, since: float) -> list[Path]:
    """config.yaml for every run of ``cfg.name`` that started at or after ``since`` (epoch seconds):
    the run this process just made (the run lock keeps others out of this output folder). ``since``
    is taken on this host before the run; MLMD stamps its contexts with the store's clock (a MySQL
    server on another host with a skewed clock could put a run before it)."""
    written = []
    for run in lin.runs(store, cfg.name, metrics=False):
        if run.started >= since and not (snapshot_dir(cfg, run.run_id) / SNAPSHOT).exists():
            path = snapshot_dir(cfg, run.run_id) / SNAPSHOT
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(resolved_config(cfg), sort_keys=True))
            written.append(path)
    return written


def snapshot_after_run(cfg: PipelineConfig, since: float) -> None:
    """Called by ``run`` after the pipeline, finished or failed; a problem here never fails the run."""
    try:
        from pipeline.summary import open_store

        write_snapshots(cfg, open_store(cfg), since)
    except Exception as exc:  # a missing snapshot only limits `compare`
        print(f"warning: no config snapshot for this run: {exc}", file=sys.stderr)


def load_snapshot(cfg: PipelineConfig, run_id: str) -> dict[str, Any] | None:
    path = snapshot_dir(cfg, run_id) / SNAPSHOT
    return yaml.safe_load(path.read_text()) if path.exists() else None


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.0.c": leaf} for nested dicts and lists."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    if isinstance(data, list):
        out = {}
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}{i}."))
        return out or {prefix.rstrip("."): []}
    return {prefix.rstrip("."): data}


def config_diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (value in a, value in b) for every key whose values differ."""
    fa, fb = flatten(a or {}), flatten(b or {})
    missing = object()
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if fa.get(k, missing) != fb.get(k, missing)}


# ----------------------------------------------------------------------------------- statistics --
def run_statistics(store: mlmd.MetadataStore, run_id: str) -> dict[str, dict[str, Any]]:
    """split -> {"rows": n, "features": {name: {"mean": .., "missing": fraction}}} from the
    ExampleStatistics that StatisticsGen wrote (or re-published from cache) in this run."""
    import tensorflow_data_validation as tfdv

    artifacts, executions, events = lin.run_graph(store, run_id)
    producers = {e.id for e in executions if e.type.endswith("StatisticsGen")}
    ids = {ev.artifact_id for ev in events if ev.execution_id in producers and ev.type in lin.OUTPUT_EVENTS}
    uris = [a.uri for a in artifacts if a.id in ids]
    out: dict[str, dict[str, Any]] = {}
    for uri in uris[:1]:
        for split_dir in sorted(Path(uri).glob("Split-*")):
            stats = tfdv.load_stats_binary(str(split_dir / STATS_FILE)).datasets[0]
            rows = int(stats.num_examples)
            features: dict[str, dict[str, float | None]] = {}
            for f in stats.features:
                name = ".".join(f.path.step) or f.name
                kind = f.WhichOneof("stats")
                common = getattr(f, kind).common_stats if kind in ("num_stats", "string_stats") else None
                mean = f.num_stats.mean if kind == "num_stats" else None
                missing = common.num_missing / rows if common is not None and rows else None
                features[name] = {"mean": mean, "missing": missing}
            out[split_dir.name.removeprefix("Split-")] = {"rows": rows, "features": features}
    return out


# ------------------------------------------------------------------------------------ commands --
def _time(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def lock_held(output_dir: Path) -> bool:
    """Is a ``run`` holding this output folder's run lock now (runners.run_lock)? A RUNNING run
    with no holder was killed: its executions will never finish."""
    from pipeline.runners import LOCK_NAME

    path = output_dir / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def with_liveness(output_dir: Path, all_runs: list[lin.RunInfo]) -> list[dict[str, Any]]:
    """Runs as dicts; a RUNNING run is "RUNNING" if a process holds the output folder's run lock,
    else "ABANDONED" (killed: no finish time). Only the newest run can be the live one. (A MySQL
    store shared by several output folders: only this folder's lock is seen.)"""
    live = lock_held(output_dir)
    out = []
    for i, r in enumerate(all_runs):
        d = r.to_dict()
        if r.status == "RUNNING" and not (live and i == len(all_runs) - 1):
            d["status"] = "ABANDONED"
        out.append(d)
    return out


def cmd_runs(cfg: PipelineConfig, as_json: bool, out: TextIO = sys.stdout) -> int:
    from pipeline.summary import open_store

    if cfg.runner.mysql is None and not cfg.metadata_path.exists():
        print(f"no metadata store at {cfg.metadata_path}: no run yet", file=sys.stderr)
        return 1
    rows = with_liveness(cfg.output_dir, lin.runs(open_store(cfg), cfg.name))
    if as_json:
        out.write(json.dumps(rows, indent=1) + "\n")
        return 0
    print(f"{'run id':<28} {'started':<19} {'seconds':>8} {'status':<10} {'blessed':<7} "
          f"{'metrics':<34} pushed", file=out)
    for r in rows:
        metrics = ", ".join(f"{k}={r['metrics'][k]:.4f}" for k in KEY_METRICS
                            if k in r["metrics"] and k != "example_count")[:34]
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        pushed = ", ".join(f"{t}/{v}" for t, v in sorted(r["pushed"].items())) or "-"
        blessed = "-" if r["blessed"] is None else str(r["blessed"])
        print(f"{r['run_id']:<28} {_time(r['started']):<19} {seconds:>8} {r['status']:<10} {blessed:<7} "
              f"{metrics:<34} {pushed}", file=out)
    return 0


def cmd_lineage(cfg: PipelineConfig, target: str, as_json: bool, out: TextIO = sys.stdout) -> int:
    from pipeline.summary import open_store

    store = open_store(cfg)
    if target.isdigit():
        artifact_id = int(target)
        if not store.get_artifacts_by_id([artifact_id]):
            print(f"no artifact {artifact_id} in the metadata store", file=sys.stderr)
            return 1
    else:
        artifact = lin.pushed_artifact(store, target)
        if artifact is None:
            print(f"{target}: no PushedModel artifact pushed there in this metadata store", file=sys.stderr)
            return 1
        artifact_id = artifact.id
    steps = lin.lineage(store, artifact_id)
    if as_json:
        out.write(json.dumps([dataclasses.asdict(s) for s in steps], indent=1) + "\n")
    else:
        print(lin.format_lineage(steps), file=out)
    return 0


def compare(cfg: PipelineConfig, ref_a: str, ref_b: str) -> dict[str, Any]:
    """Two runs side by side: metrics with deltas (b - a), config differences, data statistics."""
    from pipeline.summary import open_store

    store = open_store(cfg)
    all_runs = lin.runs(store, cfg.name)  # once: each run's metrics are a TFMA read
    a, b = lin.resolve_run(all_runs, cfg.name, ref_a), lin.resolve_run(all_runs, cfg.name, ref_b)
    metrics = {k: {"a": a.metrics.get(k), "b": b.metrics.get(k),
                   "delta": None if k not in a.metrics or k not in b.metrics else b.metrics[k] - a.metrics[k]}
               for k in sorted(set(a.metrics) | set(b.metrics))}
    snap_a, snap_b = load_snapshot(cfg, a.run_id), load_snapshot(cfg, b.run_id)
    stats_a, stats_b = run_statistics(store, a.run_id), run_statistics(store, b.run_id)
    statistics: dict[str, Any] = {}
    for split in sorted(set(stats_a) | set(stats_b)):
        sa, sb = stats_a.get(split, {}), stats_b.get(split, {})
        names = sorted(set(sa.get("features", {})) | set(sb.get("features", {})))
        statistics[split] = {"rows": {"a": sa.get("rows"), "b": sb.get("rows")},
                             "features": {n: {"a": sa.get("features", {}).get(n), "b": sb.get("features", {}).get(n)}
                                          for n in names}}
    return {"a": a.to_dict(), "b": b.to_dict(), "metrics": metrics,
            "config": {"a_snapshot": snap_a is not None, "b_snapshot": snap_b is not None,
                       "differences": {k: {"a": va, "b": vb} for k, (va, vb) in config_diff(snap_a, snap_b).items()}},
            "statistics": statistics}


def _num(v: Any, fmt: str = ".4f") -> str:
    return "-" if v is None else format(v, fmt) if isinstance(v, float) else str(v)


def format_compare(c: dict[str, Any]) -> str:
    a, b = c["a"], c["b"]
    def pushed(r: dict[str, Any]) -> str:
        return ", ".join(f"{t}/{v}" for t, v in sorted(r["pushed"].items())) or "-"

    lines = [f"a: {a['run_id']}  {a['status']}  blessed={a['blessed']}  pushed: {pushed(a)}",
             f"b: {b['run_id']}  {b['status']}  blessed={b['blessed']}  pushed: {pushed(b)}",
             "", f"{'metric':<28}{'a':>12}{'b':>12}{'b - a':>12}"]
    for k, m in c["metrics"].items():
        delta = "-" if m["delta"] is None else f"{m['delta']:+.4f}"
        lines.append(f"{k:<28}{_num(m['a']):>12}{_num(m['b']):>12}{delta:>12}")
    lines.append("")
    cfgd = c["config"]
    if not (cfgd["a_snapshot"] and cfgd["b_snapshot"]):
        lines.append("config: no snapshot for run " + " and ".join(
            r["run_id"] for r, ok in ((a, cfgd["a_snapshot"]), (b, cfgd["b_snapshot"])) if not ok))
    elif not cfgd["differences"]:
        lines.append("config: identical")
    else:
        lines.append("config differences:")
        for k, d in cfgd["differences"].items():
            lines.append(f"  {k}: {d['a']!r} -> {d['b']!r}")
    lines.append("")
    for split, s in c["statistics"].items():
        lines.append(f"data {split}: rows {_num(s['rows']['a'])} -> {_num(s['rows']['b'])}")
        lines.append(f"  {'feature':<24}{'mean a':>14}{'mean b':>14}{'missing a':>11}{'missing b':>11}")
        for name, f in s["features"].items():
            fa, fb = f["a"] or {}, f["b"] or {}
            lines.append(f"  {name:<24}{_num(fa.get('mean'), '.6g'):>14}{_num(fb.get('mean'), '.6g'):>14}"
                         f"{_num(fa.get('missing'), '.2%'):>11}{_num(fb.get('missing'), '.2%'):>11}")
    return "\n".join(lines)


def cmd_compare(cfg: PipelineConfig, ref_a: str, ref_b: str, as_json: bool, out: TextIO = sys.stdout) -> int:
    try:
        c = compare(cfg, ref_a, ref_b)
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    out.write(json.dumps(c, indent=1) + "\n" if as_json else format_compare(c) + "\n")
    return 0
