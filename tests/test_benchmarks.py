"""Every benchmark script runs to its goal table with ``--quick`` (tiny data and budgets, the same
code path as ``make bench``), so a benchmark that breaks fails ``make test``. Nothing here is timed:
the tests check that each script measured both sides of its comparison and that the goal it reports
is computed from what it measured. The measurements themselves are ``make bench``."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import Bench, Goal, markdown

ROOT = Path(__file__).resolve().parent.parent


Started = tuple[Path, dict[str, subprocess.Popen]]


def start_benches(tmp: Path, scripts: dict[str, list[str]]) -> Started:
    """Start each benchmarks/<script>.py --quick with its args, side by side; output to files (a
    full pipe would stall the script)."""
    procs = {}
    for script, args in scripts.items():
        out = tmp / script
        out.mkdir(parents=True)
        with (out / "stdout").open("w") as stdout, (out / "stderr").open("w") as stderr:
            procs[script] = subprocess.Popen(
                [sys.executable, f"benchmarks/{script}.py", "--quick", "--workdir", str(out / "work"), "--out",
                 str(out), *args], cwd=ROOT, stdout=stdout, stderr=stderr, text=True)
    return tmp, procs


def collect(started: Started, timeout: int = 1800) -> dict[str, dict]:
    """{script: its JSON report} once each has exited, each checked complete."""
    tmp, procs = started
    reports, failures = {}, []
    for script, proc in procs.items():
        proc.wait(timeout=timeout)
        stdout = (tmp / script / "stdout").read_text()
        if proc.returncode != 0:
            stderr = (tmp / script / "stderr").read_text()
            failures.append(f"{script} exited {proc.returncode}:\n{stdout[-2000:]}{stderr[-3000:]}")
            continue
        reports[script] = checked_report(script, stdout, tmp / script / f"{script}.json")
    assert not failures, "\n\n".join(failures)
    return reports


def checked_report(script: str, stdout: str, path: Path) -> dict:
    """A script's JSON report, checked complete against what it printed."""
    report = json.loads(path.read_text())
    assert report["benchmark"] == script and report["quick"] is True
    assert report["goals"], "a benchmark ends with its goals"
    for g in report["goals"]:
        assert math.isfinite(g["measured"]), (script, g)  # every goal was measured
        assert g["status"] == ("PASS" if g["passed"] else "MISS")
        # PASS / MISS recomputed here from measured, op and bound (not read back from Goal.passed)
        assert g["op"] in ("<=", ">="), (script, g)
        met = g["measured"] <= g["bound"] if g["op"] == "<=" else g["measured"] >= g["bound"]
        assert g["passed"] is met and g["status"] == ("PASS" if met else "MISS"), (script, g)
        assert g["name"] in stdout  # and printed in the final table, with that result
        assert printed_status(stdout, script, g["name"]) == g["status"], (script, g)
    return report


@pytest.fixture(scope="module")
def own_runs(pipeline_runs) -> dict[str, dict]:
    """The scripts that run their own pipelines on tiny data (tests/runs.py OWN_PIPELINE_BENCHES,
    started with the session's other runs)."""
    from tests.runs import OWN_PIPELINE_BENCHES

    reports = {}
    for script in OWN_PIPELINE_BENCHES:
        run = pipeline_runs.wait(script)
        reports[script] = checked_report(script, run.stdout, run.workspace.folder / f"{script}.json")
    return reports


@pytest.fixture(scope="module")
def finished_run(e2e_run, tmp_path_factory) -> tuple[object, dict[str, dict]]:
    """The scripts that measure a finished run: the e2e run (tuning, variants, TFLite, TF.js, pushed)."""
    cfg, _ = e2e_run
    args = ["--config", str(cfg.path), "--output-root", str(cfg.output_dir.parent)]
    return cfg, collect(start_benches(tmp_path_factory.mktemp("bench_finished"), {
        s: args for s in ("bench_optimization", "bench_deployment", "bench_tflite_int8", "bench_serving")}))


def printed_status(stdout: str, script: str, name: str) -> str:
    """The result (PASS / MISS) that the goal table at the end of ``stdout`` prints for goal ``name``."""
    _, _, table = stdout.rpartition(f"{script}: goals")
    (line,) = [line for line in table.splitlines() if line.startswith(f"  {name}  ")]
    (status,) = re.findall(r"  (PASS|MISS)(?=  \(|$)", line[len(name) + 2:])
    return status


def goal(report: dict, prefix: str) -> float:
    (value,) = [g["measured"] for g in report["goals"] if g["name"].startswith(prefix)]
    return value


def _files_bytes(paths) -> int:
    return sum(os.path.getsize(p) for p in paths)


def bytes_on_disk(saved_model: Path, candidates: Path, web_model: Path) -> dict[str, int]:
    """What each runtime of bench_deployment loads, measured on disk: {"SavedModel": the whole
    folder, "TFLite <variant>": candidates/model_<variant>.tflite, "TF.js": model.json + weight shards}."""
    out = {"SavedModel": _files_bytes(os.path.join(d, f) for d, _, files in os.walk(saved_model) for f in files)}
    for path in candidates.glob("model_*.tflite"):
        out[f"TFLite {path.stem.removeprefix('model_')}"] = path.stat().st_size
    out["TF.js"] = _files_bytes([web_model / "model.json", *web_model.glob("*.bin")])
    return out


def deployment_bytes_on_disk(cfg, model: str) -> dict[str, int]:
    """bytes_on_disk of ``model`` (trained or qat) in the finished run: its SavedModel, the TFLite
    candidates its TFLiteConverter wrote and its TF.js model, found from the run's ML Metadata."""
    from tfx.utils import path_utils

    from pipeline.summary import latest_output_uri, open_store

    store, suffix = open_store(cfg), "" if model == "trained" else f"_{model}"
    uris = {node: latest_output_uri(store, cfg.name, node, "Model") for node in (
        "Trainer" if model == "trained" else "QuantizationAwareTrainer", f"TFLiteConverter{suffix}",
        f"TFJSConverter{suffix}")}
    assert None not in uris.values(), uris
    trainer, mobile, web = uris.values()
    return bytes_on_disk(Path(path_utils.serving_model_path(trainer)), Path(mobile) / "candidates",
                         Path(web) / "Format-Serving" / "model")


def runtime_kind(row: dict) -> str:
    """bytes_on_disk's key for a row of bench_deployment's runtimes table."""
    if row["runtime"].startswith("TFLite"):
        return f"TFLite {row['variant']}"
    return row["runtime"].split()[0]  # "SavedModel" or "TF.js"


def check_sizes(rows: list[dict], on_disk: dict[str, int]) -> None:
    """One model's runtime rows: one per runtime whose files are on disk, each with those files'
    bytes and their ratio to the float32 .tflite's bytes on disk."""
    by_kind = {runtime_kind(r): r for r in rows}
    assert len(by_kind) == len(rows) and set(by_kind) == set(on_disk), (sorted(by_kind), sorted(on_disk))
    float32 = on_disk["TFLite float32"]
    for kind, r in by_kind.items():
        assert r["bytes"] == on_disk[kind], (kind, r["bytes"], on_disk[kind])
        assert r["size_x"] == pytest.approx(on_disk[kind] / float32), (kind, r["size_x"], on_disk[kind], float32)


def split_rows_on_disk(cfg) -> int:
    """Records in the test split of the run's DataCleaner Examples (what bench_deployment reads)."""
    import tensorflow as tf

    from pipeline.summary import latest_output_uri, open_store

    examples = latest_output_uri(open_store(cfg), cfg.name, "DataCleaner", "Examples")
    assert examples is not None
    files = sorted(str(p) for p in (Path(examples) / "Split-test").iterdir())
    assert files, examples
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


# The tests that need the finished run come first: the own-pipeline scripts run meanwhile.
@pytest.mark.e2e
@pytest.mark.runs("taxi_full")
def test_optimization_and_deployment_benches_measure_a_finished_run(finished_run):
    cfg, reports = finished_run
    optimization = reports["bench_optimization"]
    variants = {r["variant"] for r in optimization["tables"]["variants"]}
    assert {"trained", "pruned", "qat", "student"} <= variants
    assert optimization["tables"]["qat_int8"]["rows"] > 0

    deployment = reports["bench_deployment"]
    runtimes = deployment["tables"]["runtimes"]
    for model in cfg.deployment.models:
        mine = [r["runtime"] for r in runtimes if r["model"] == model]
        assert mine[0].startswith("SavedModel"), mine
        # every TFLite variant the converter wrote, and the TF.js model, timed on the same rows
        assert {r.split()[1] for r in mine if r.startswith("TFLite")} == set(cfg.deployment.tflite.variants), mine
        assert any(r.startswith("TF.js") for r in mine), mine
    assert len({(r["rows"], r["batch"]) for r in runtimes}) == 1  # the same raw rows for every runtime
    # ... and as many as the run's test split holds on disk, up to the --quick budget
    from benchmarks.bench_deployment import QUICK

    quick_batch, quick_rows = QUICK[1], QUICK[3]
    n = min(quick_rows, split_rows_on_disk(cfg))
    assert {(r["rows"], r["batch"]) for r in runtimes} == {(n, min(quick_batch, n))}, (n, runtimes)
    float32 = [r for r in runtimes if r.get("variant") == "float32"]
    assert all(r["size_x"] == 1 for r in float32)  # sizes are relative to the float32 .tflite
    for model in cfg.deployment.models:  # each runtime's bytes and size ratio, against its files on disk
        check_sizes([r for r in runtimes if r["model"] == model], deployment_bytes_on_disk(cfg, model))


@pytest.mark.e2e
@pytest.mark.runs("taxi_full")
def test_serving_bench_serves_the_model_a_finished_run_pushed(finished_run):
    cfg, reports = finished_run
    report = reports["bench_serving"]
    pushed = cfg.pushed_dir("serving")
    assert Path(report["tables"]["model"]).parent == pushed  # the run's own pushed model was served
    settings = {(r["setting"], r["api"], r["concurrency"]) for r in report["tables"]["settings"]}
    for c in (1, 32):  # in-process and both APIs with batching off and on, at each concurrency
        assert ("in-process", "-", c) in settings
        for mode in ("no batching", "batching"):
            assert {(mode, "gRPC", c), (mode, "REST", c)} <= settings, settings

@pytest.mark.e2e
@pytest.mark.runs("taxi_full")
def test_tflite_int8_bench_measures_a_finished_run(finished_run):
    cfg, reports = finished_run
    report = reports["bench_tflite_int8"]
    rows = report["tables"]["models"]
    for model in cfg.deployment.models:
        by = {r["variant"]: r for r in rows if r["model"] == model}
        # the raw-in graph and, for the profile, the model alone: each as float32 and int8
        assert {"float32", "int8", "float32 (alone)", "int8 (alone)"} <= set(by), model
        assert goal(report, f"{model}: int8 .tflite") == pytest.approx(by["int8"]["bytes"] / by["float32"]["bytes"])
        assert goal(report, f"{model}: int8 decision") == pytest.approx(by["int8"]["agreement"])
        assert "FULLY_CONNECTED" in by["int8"]["quantized_ops"] and "LOG" not in by["int8"]["quantized_ops"]
        parts = {p["file"]: p for p in report["tables"]["breakdown"]}[f"{model} int8"]
        assert parts["bytes"] == by["int8"]["bytes"] and parts["weights"] > 0 and parts["structure"] > 0

@pytest.mark.e2e
@pytest.mark.runs("bench_pipeline", "bench_preprocessing", "bench_scale", "bench_csv_example_gen")
def test_pipeline_bench_runs_ours_and_upstream_on_the_same_split(own_runs):
    report = own_runs["bench_pipeline"]
    components = {r["component"]: r for r in report["tables"]["components"]}
    # Both pipelines ran their whole length, each component timed from its own ML Metadata.
    for node in ("CsvExampleGen", "SchemaGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert components[node]["ours_s"] > 0 and components[node]["upstream_s"] > 0, node
    # The same split: upstream was given our 8:1:1 buckets, so about a tenth of 600 rows is evaluated
    # on each side (upstream's own default, 2:1, would evaluate about 200).
    eval_rows = report["tables"]["eval_rows"]
    assert 30 <= eval_rows["ours"] <= 100 and 30 <= eval_rows["upstream"] <= 100, eval_rows
    wall = components["wall (process)"]
    assert goal(report, "whole pipeline") == pytest.approx(wall["ours_s"] / wall["upstream_s"])
    assert goal(report, "cached re-run") == pytest.approx(report["tables"]["cached_s"] / wall["ours_s"])

@pytest.mark.e2e
@pytest.mark.runs("bench_pipeline", "bench_preprocessing", "bench_scale", "bench_csv_example_gen")
def test_preprocessing_bench_times_both_transforms(own_runs):
    report = own_runs["bench_preprocessing"]
    (row,) = report["tables"]["transform"]
    assert row["ours_transform_s"] > 0 and row["upstream_transform_s"] > 0
    assert row["ours_cleaner_s"] > 0  # ours ran its DataCleaner before Transform
    assert goal(report, "Transform time") == pytest.approx(row["ours_transform_s"] / row["upstream_transform_s"])

@pytest.mark.e2e
@pytest.mark.runs("bench_pipeline", "bench_preprocessing", "bench_scale", "bench_csv_example_gen")
def test_scale_bench_compares_two_sizes(own_runs):
    report = own_runs["bench_scale"]
    runs = {r["rows"]: r for r in report["tables"]["runs"]}
    assert sorted(runs) == [300, 3000]
    small, large = runs[300], runs[3000]
    assert goal(report, "in_memory: time") == pytest.approx(large["total_s"] / small["total_s"])
    assert goal(report, "in_memory: peak memory") == pytest.approx(large["peak_gib"] / small["peak_gib"])

@pytest.mark.e2e
@pytest.mark.runs("bench_pipeline", "bench_preprocessing", "bench_scale", "bench_csv_example_gen")
def test_csv_example_gen_bench_runs_ours_and_stock(own_runs):
    report = own_runs["bench_csv_example_gen"]
    runs = {r["kind"]: r for r in report["tables"]["runs"]}
    assert runs["ours"]["examples"] == runs["stock"]["examples"] == 500  # the same rows, all written
    assert goal(report, "ExampleGen time") == pytest.approx(runs["ours"]["median_s"] / runs["stock"]["median_s"])


def tiny_saved_model(path: Path) -> Path:
    """A real SavedModel small enough to load in a blink: serving_default parses tf.Examples (the
    taxi `fare` column) and answers sigmoid(0.1 * fare); serving_raw takes the column itself (the
    soak reads it to build its tf.Examples)."""
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(0.1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            fare = tf.io.parse_example(examples, {"fare": tf.io.FixedLenFeature([1], tf.float32, [0.0])})["fare"]
            return {"probabilities": tf.sigmoid(self.w * fare)}

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="fare")])
        def raw(self, fare):
            return {"probabilities": tf.sigmoid(self.w * fare)}

    module = Tiny()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve, "serving_raw": module.raw})
    return path


def test_soak_bench_pushes_versions_under_load(tmp_path):
    """The soak's guard (fast: a tiny model, 400 requests, batching phase only). What it really
    checks, from the JSON the script wrote: the load ran to the end with zero failed requests; the
    four pushes happened during it (versions 1..4 each answered, over gRPC and REST); the broken
    version 5 ended failed while 4 stayed the latest and answered every request of the last segment;
    RSS was sampled along the load and the goals are computed from those numbers. A soak that
    stopped pushing, served a wrong version, or failed requests fails here."""
    model = tiny_saved_model(tmp_path / "tiny")
    (report,) = collect(start_benches(tmp_path, {"bench_soak": ["--model", str(model), "--phases", "batching"]}),
                        timeout=600).values()
    (phase,) = report["tables"]["phases"]
    assert phase["phase"] == "batching" and phase["requests"] == 400 and phase["failed"] == 0, phase["failures"]
    assert {"1", "2", "3", "4"} <= set(phase["versions_grpc"]) and {"1", "2", "3", "4"} <= set(phase["versions_rest"])
    assert sum(phase["versions_grpc"].values()) + sum(phase["versions_rest"].values()) == 400  # every request
    assert [p["version"] for p in phase["pushes"]] == [2, 3, 4, 5]
    assert phase["final_status"]["5"]["state"] == "END" and "not a SavedModel" in phase["final_status"]["5"]["error"]
    assert phase["latest_available"] == 4 and set(phase["versions_grpc_per_segment"][-1]) == {"4"}
    assert len(phase["rss_samples"]) >= 2 and phase["rss_mib"]["at_25"] > 0
    goals = {g["name"]: g for g in report["goals"]}
    assert goals["batching: failed requests"]["status"] == "PASS"
    assert goals["batching: failed requests"]["measured"] == phase["failed"]  # collect() recomputed PASS from it
    assert goals["batching: versions 1..4 answered"]["measured"] == 4
    assert goals["batching: version 5 failed, 4 still served"]["status"] == "PASS"
    assert goals["batching: version 5 failed, 4 still served"]["measured"] == 1
    assert goals["batching: RSS growth 25% -> 100% of the load"]["measured"] == pytest.approx(
        100 * (phase["rss_mib"]["at_100"] / phase["rss_mib"]["at_25"] - 1))


NAN = float("nan")


@pytest.mark.parametrize(("op", "measured", "bound", "passed"), [
    ("<=", 0.19, 0.2, True), ("<=", 0.2, 0.2, True), ("<=", 0.21, 0.2, False),
    (">=", 0.21, 0.2, True), (">=", 0.2, 0.2, True), (">=", 0.19, 0.2, False),
    ("<=", 0, 0, True), ("<=", 1, 0, False), ("<=", -1e-9, 0, True),  # the soak's "failed requests <= 0"
    (">=", 4, 4, True), (">=", 3, 4, False), (">=", 5, 4, True),  # the soak's "versions 1..4 answered >= 4"
    ("<=", NAN, 0.2, False), (">=", NAN, 0.2, False),  # not measured: never a PASS
])
def test_goal_passes_only_on_its_side_of_the_bound(op, measured, bound, passed):
    goal = Goal("g", measured, op, bound)
    assert goal.passed is passed
    row = goal.row()
    assert row["passed"] is passed and row["status"] == ("PASS" if passed else "MISS")


def test_goal_table_prints_and_writes_each_goals_own_result(tmp_path, capsys):
    # Checks: what Bench.report prints, the JSON it writes and the README's Markdown from that JSON
    # give each goal its own result, a MISS and an unmeasured goal included; a MISS exits 0.
    goals = [Goal("fast enough", 0.1, "<=", 0.2), Goal("too slow", 0.3, "<=", 0.2, note="a note"),
             Goal("big enough", 5, ">=", 4, unit=""), Goal("too small", 3, ">=", 4, unit=""),
             Goal("not measured", NAN, "<=", 1)]
    expected = {"fast enough": "PASS", "too slow": "MISS", "big enough": "PASS", "too small": "MISS",
                "not measured": "MISS"}
    args = argparse.Namespace(out=tmp_path, quick=True, workdir=tmp_path)
    assert Bench("bench_x", args).report(goals) == 0
    stdout = capsys.readouterr().out
    assert {name: printed_status(stdout, "bench_x", name) for name in expected} == expected
    report = json.loads((tmp_path / "bench_x.json").read_text())
    assert {g["name"]: (g["status"], g["passed"]) for g in report["goals"]} == {
        name: (status, status == "PASS") for name, status in expected.items()}
    table = markdown([tmp_path / "bench_x.json"])
    for name, status in expected.items():
        (line,) = [line for line in table.splitlines() if line.startswith(f"| {name}")]
        assert line.endswith(f"| {status} |"), line
