"""Our taxi pipeline vs the upstream TFX taxi example, back to back, same data and steps.

Both run under LocalDagRunner with the same Beam arguments, each in a fresh process, on
the same CSV, with upstream's training budget (1000 train / 150 eval steps). Ours is
configured with the same component set (one Evaluator, on eval; no DataCleaner or
FeatureSelector) and upstream's preprocessing, so both do the same work. Prints wall times,
per-component times from each run's ML Metadata, the ratio ours/upstream, and our
cached re-run time as a fraction of the first run.

    python benchmarks/bench_pipeline.py [--workdir DIR]
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

TRAIN_STEPS, EVAL_STEPS = 1000, 150  # upstream taxi_pipeline_native_keras.py's budget
# Upstream's preprocessing (taxi_utils_native_keras.preprocessing_fn) in our config language, so
# both pipelines do the same work: z-scores, vocabularies (top 1000 + 10 OOV), 10 quantile
# buckets, integer categories; missing values filled with 0 / "" as upstream does.
UPSTREAM_FEATURES = (
    [{"name": n, "type": t, "steps": ["z_score"]}
     for n, t in (("trip_miles", "float"), ("fare", "float"), ("trip_seconds", "int"))]
    + [{"name": n, "type": "string", "steps": [{"vocabulary": {"top_k": 1000, "oov_buckets": 10}}]}
       for n in ("payment_type", "company")]
    + [{"name": n, "type": "float", "steps": [{"impute": {"value": 0.0}}, {"bucketize": {"num_buckets": 10}}]}
       for n in ("pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude")]
    + [{"name": n, "type": "int", "steps": [{"categorical_identity": {"num_buckets": k}}]}
       for n, k in (("trip_start_hour", 24), ("trip_start_day", 31), ("trip_start_month", 13))]
)
BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]

UPSTREAM_RUNNER = """
import sys
from tfx import v1 as tfx
from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as up
import os
data, root, beam_args = sys.argv[1], sys.argv[2], sys.argv[3:]
p = up._create_pipeline(
    pipeline_name="upstream_taxi", pipeline_root=os.path.join(root, "pipeline_root"), data_root=data,
    module_file=os.path.join(os.path.dirname(up.__file__), "taxi_utils_native_keras.py"),
    serving_model_dir=os.path.join(root, "pushed"), metadata_path=os.path.join(root, "metadata.sqlite"),
    beam_pipeline_args=beam_args)
tfx.orchestration.LocalDagRunner().run(p)
"""


def timed(cmd: list[str], log: Path) -> float:
    start = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"benchmark run failed ({' '.join(cmd[:4])} ...); see {log}")
    return elapsed


def node_times(metadata: Path, pipeline_name: str) -> dict[str, float]:
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    conn = metadata_store_pb2.ConnectionConfig()
    conn.sqlite.filename_uri = str(metadata)
    store = mlmd.MetadataStore(conn)
    out = {}
    for ctx in store.get_contexts_by_type("node"):
        if not ctx.name.startswith(pipeline_name + "."):
            continue
        executions = store.get_executions_by_context(ctx.id)
        if executions:
            first = min(executions, key=lambda e: e.id)
            out[ctx.name.split(".", 1)[1]] = (first.last_update_time_since_epoch - first.create_time_since_epoch) / 1e3
    return out


# Our node ids next to upstream's for the same work.
PAIRS = [("CsvExampleGen", "CsvExampleGen"), ("StatisticsGen", "StatisticsGen"),
         ("ImportSchemaGen", "SchemaGen"), ("ExampleValidator", "ExampleValidator"),
         ("AnomalyGate", None), ("Transform", "Transform"), ("Trainer", "Trainer"),
         ("Evaluator", "Evaluator"), ("Pusher", "Pusher")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    for stale in ("upstream", "ours"):  # every run starts from an empty pipeline root and MLMD
        shutil.rmtree(work / stale, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    data.mkdir(exist_ok=True)
    shutil.copy(ROOT / "data" / "taxi" / "data.csv", data / "data.csv")  # upstream reads every file

    cfg = yaml.safe_load((ROOT / "pipeline/configs/taxi/pipeline.yaml").read_text())
    cfg.update(name="bench_taxi")
    cfg["data"]["csv_dir"] = str(data)
    cfg["schema"] = str(ROOT / "pipeline/configs/taxi/schema.pbtxt")
    cfg["training"].update(train_steps=TRAIN_STEPS, eval_steps=EVAL_STEPS)
    cfg["evaluation"]["splits"] = ["eval"]  # upstream has one Evaluator
    cfg["features"] = UPSTREAM_FEATURES
    for section in ("cleaning", "feature_selection", "tuning", "optimization"):  # not in upstream
        cfg.pop(section, None)
    cfg["runner"] = {"engine": "local", "beam_args": BEAM_ARGS}
    config_path = work / "bench_taxi.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    ours_cmd = [sys.executable, "-m", "pipeline", "run", "--config", str(config_path),
                "--output-root", str(work / "ours")]

    print(f"workdir {work}; {TRAIN_STEPS}/{EVAL_STEPS} train/eval steps; Beam {' '.join(BEAM_ARGS)}", flush=True)
    print("running upstream TFX taxi example ...", flush=True)
    t_up = timed([sys.executable, "-c", UPSTREAM_RUNNER, str(data), str(work / "upstream"), *BEAM_ARGS],
                 work / "upstream.log")
    print(f"  {t_up:.1f}s\nrunning ours ...", flush=True)
    t_ours = timed(ours_cmd, work / "ours.log")
    print(f"  {t_ours:.1f}s\nrunning ours again (cached) ...", flush=True)
    t_cached = timed(ours_cmd, work / "ours_cached.log")
    print(f"  {t_cached:.1f}s\n", flush=True)

    ours = node_times(work / "ours" / "bench_taxi" / "metadata.sqlite", "bench_taxi")
    up = node_times(work / "upstream" / "metadata.sqlite", "upstream_taxi")
    print(f"{'component':<18}{'ours s':>9}{'upstream s':>12}{'ratio':>8}")
    for mine, theirs in PAIRS:
        a, b = ours.get(mine, float("nan")), up.get(theirs, float("nan")) if theirs else float("nan")
        ratio = f"{a / b:8.2f}" if theirs and b > 0 else f"{'-':>8}"
        print(f"{mine:<18}{a:9.1f}{b:12.1f}{ratio}")
    print(f"\nwall time          ours {t_ours:.1f}s  upstream {t_up:.1f}s  ratio ours/upstream "
          f"{t_ours / t_up:.2f} (goal <= 1.0)")
    print(f"cached re-run      {t_cached:.1f}s = {t_cached / t_ours:.1%} of the first run (goal <= 15%)")


if __name__ == "__main__":
    main()
