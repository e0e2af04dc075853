"""On-device and in-browser models side by side: size and latency of the SavedModel in-process,
each TFLite variant in ai-edge-litert and the TF.js model in Node, printed as ratios.

Measures a finished run of the shipped taxi config (its deployment section: TFLite and TF.js for
the trained and the QAT model): ``--output-root`` (and ``--config``) name it; without them the
shipped config runs first under ``--workdir``. Every runtime is timed on the same raw test rows
through the same path an app takes, inside the timed call: raw columns -> the runtime's own
preprocessing of what its graph lacks (SavedModel: none; TFLite: the spec's app-side features in
Python; TF.js: the same in JS, model_runtime.js) -> the model -> the prediction.

* size: whole files, preprocessing included (the .tflite file; TF.js model.json + weights; the
  SavedModel folder: graph, variables and assets), as a ratio to the float32 .tflite of the same
  model: what quantization saves on the same raw-in graph
* latency: one row per call (p50 over the rows) and a batch of 256 rows (p50 of 20 calls);
  goal: TFLite per-example p50 <= 0.2x the SavedModel's (serving_raw, in-process)

    python benchmarks/bench_deployment.py [--workdir DIR | --output-root ROOT [--config CONFIG]] [--quick]
"""

from __future__ import annotations

import json
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

from benchmarks import harness
from benchmarks.harness import output_uri
from pipeline.summary import latest_output_uri, open_store

ROOT = Path(__file__).resolve().parent.parent

SINGLE_RUNS, BATCH, BATCH_RUNS, ROWS = 200, 256, 20, 2000
QUICK = (20, 16, 3, 64)


def _p50_ms(fn, runs: int) -> float:
    """p50 wall ms of fn(i), i = 0 .. runs-1, after one warm-up call."""
    fn(0)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_model(cfg, name: str, model_uri: str, examples_uri: str, runs: tuple[int, int, int, int]) -> list[dict]:
    """Every runtime of model ``name`` on the same raw rows; sizes and p50 latencies."""
    import numpy as np
    import tensorflow as tf
    from tfx.utils import path_utils

    from components.tfjs_converter.bench import tfjs_measurements
    from ondevice import data, reference
    from ondevice import tflite as lite

    single_runs, batch, batch_runs, n_rows = runs
    suffix = "" if name == "trained" else f"_{name}"
    mobile = Path(output_uri(cfg, f"TFLiteConverter{suffix}", "Model"))
    spec = json.loads((mobile / "Format-Serving" / "preprocessing_spec.json").read_text())
    saved = Path(path_utils.serving_model_path(model_uri))
    fn = tf.saved_model.load(str(saved)).signatures["serving_raw"]
    signature = fn.structured_input_signature[1]
    raw_names = sorted(set(data.raw_columns(spec, list(signature))))
    prepared = data.raw_rows(examples_uri, "test", n_rows, spec, list(signature))
    rows = {c: prepared[c] for c in raw_names}  # raw columns only: each runtime prepares its own inputs
    n = len(next(iter(rows.values())))
    batch = min(batch, n)

    def saved_call(lo: int, hi: int):
        feeds = {}
        for c, s in signature.items():
            v = rows[c][lo:hi]
            if s.dtype == tf.string:
                feeds[c] = tf.constant(v.astype(str).astype(object))
            elif v.dtype == np.int64:  # timestamps: negative = missing
                feeds[c] = tf.constant(np.where(v >= 0, v, np.nan), s.dtype)
            else:
                feeds[c] = tf.constant(v, s.dtype)
        return fn(**feeds)

    def lite_call(runner, lo: int, hi: int):
        part = {c: v[lo:hi] for c, v in rows.items()}
        for f in spec["features"]:  # what the .tflite lacks, computed as an app would
            if not f["builtin"]:
                part.update(reference.transform_feature(f, part))
        for i in spec["inputs"]:
            if i.get("transformed"):
                part[i["name"]] = part[i["name"]].astype(np.int64 if i["dtype"] == "int64" else np.float32)
        return runner(**lite.encoded(data.feed(part, spec)))

    out = [{"model": name, "runtime": "SavedModel serving_raw (in-process)", "bytes": _dir_bytes(saved),
            "counted": "saved_model.pb + variables + assets",
            "single_ms": _p50_ms(lambda i: saved_call(i % n, i % n + 1), single_runs),
            "batch_ms": _p50_ms(lambda i: saved_call(0, batch), batch_runs)}]
    for path in sorted((mobile / "candidates").glob("model_*.tflite")):
        variant = path.stem[len("model_"):]
        runner = lite.interpreter(path.read_bytes()).get_signature_runner(lite.SIGNATURE)
        validation = json.loads((mobile / "validation.json").read_text())["variants"][variant]
        out.append({"model": name, "runtime": f"TFLite {variant} (ai-edge-litert)", "variant": variant,
                    "bytes": path.stat().st_size, "counted": ".tflite file (model + embedded preprocessing)",
                    "blessed": validation["blessed"], "agreement": validation["agreement"],
                    "single_ms": _p50_ms(lambda i, r=runner: lite_call(r, i % n, i % n + 1), single_runs),
                    "batch_ms": _p50_ms(lambda i, r=runner: lite_call(r, 0, batch), batch_runs)})
    web = latest_output_uri(open_store(cfg), cfg.name, f"TFJSConverter{suffix}", "Model")
    if web:
        m = tfjs_measurements(web, rows, single_runs=single_runs, batch=batch, repeats=batch_runs)
        out.append({"model": name, "runtime": f"TF.js {m['quantization']} ({m['runtime']})",
                    "bytes": m.get("weights_bytes", 0) + m.get("model_json_bytes", 0),
                    "counted": "model.json + weights (JS preprocessing not counted)",
                    "agreement": m["validation"]["agreement"],
                    "single_ms": m["per_example_ms"]["p50_ms"], "batch_ms": m[f"batch_{batch}_ms"]["p50_ms"]})
    float32 = next((r["bytes"] for r in out if r.get("variant") == "float32"), float("nan"))
    for r in out:
        r["size_x"] = r["bytes"] / float32
        r["single_x"] = r["single_ms"] / out[0]["single_ms"]
        r["batch_x"] = r["batch_ms"] / out[0]["batch_ms"]
        r["rows"], r["batch"] = n, batch
    return out


def main() -> int:
    b = harness.bench("bench_deployment", __doc__, harness.finished_run_args)
    runs = QUICK if b.args.quick else (SINGLE_RUNS, BATCH, BATCH_RUNS, ROWS)
    cfg = harness.finished_run(b, "bench_deployment")
    examples = output_uri(cfg, "DataCleaner", "Examples")
    models = {"trained": output_uri(cfg, "Trainer", "Model")}
    if "qat" in cfg.deployment.models:
        models["qat"] = output_uri(cfg, "QuantizationAwareTrainer", "Model")
    rows = [r for name, uri in models.items() for r in measure_model(cfg, name, uri, examples, runs)]
    print(f"\nthe same {rows[0]['rows']:,} raw test rows for every runtime; latency p50 of one row per call "
          f"({runs[0]} calls) and of a batch of {rows[0]['batch']} ({runs[2]} calls), ratio to the SavedModel; "
          "size: whole files, ratio to the float32 .tflite of the same model")
    print(harness.table(rows, [("model", "model", "<8"), ("runtime", "runtime", "<48"), ("bytes", "bytes", ">10,"),
                               ("size_x", "size x", ">8.2f"), ("single_ms", "1-row ms", ">10.3f"),
                               ("single_x", "x", ">7.2f"), ("batch_ms", "batch ms", ">10.2f"),
                               ("batch_x", "x", ">7.2f"), ("agreement", "agree", ">8.4f")]))
    for r in rows:
        r["runtime"] = r["runtime"][:80]
    b.tables = {"runtimes": rows}
    tflite = [r for r in rows if r["runtime"].startswith("TFLite") and r.get("blessed")]
    return b.report([
        harness.Goal("TFLite per-example p50 / SavedModel (slowest blessed variant)",
                     max((r["single_x"] for r in tflite), default=float("nan")), "<=", 0.2),
    ])


if __name__ == "__main__":
    sys.exit(main())
