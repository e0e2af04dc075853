"""On-device and in-browser models side by side: size and latency of the SavedModel in-process,
each TFLite variant in ai-edge-litert and the TF.js model in Node, printed as ratios.

Runs the shipped taxi pipeline (its deployment section: TFLite and TF.js for the trained and the
QAT model) on the full taxi CSV, unless --output-root points at a finished run of it, then
measures every converted model on the same raw test rows:

* size: bytes of the .tflite file (or TF.js weights + model.json) / bytes of the SavedModel's
  variables; goal: int8 <= 0.3x
* latency: per example (one row per call, p50 of 200 calls) and per batch of 256 rows (p50 of
  20 calls); goal: TFLite per-example p50 <= 0.2x the SavedModel's (serving_raw, in-process)

    python benchmarks/bench_deployment.py [--workdir DIR | --output-root outputs]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401  (Keras flavour before TensorFlow)
from benchmarks.taxi_run import TAXI, output_uri, run_pipeline  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.summary import latest_output_uri, open_store  # noqa: E402

SINGLE_RUNS, BATCH, BATCH_RUNS = 200, 256, 20


def _p50_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_model(cfg, name: str, model_uri: str, examples_uri: str) -> list[dict]:
    import numpy as np
    import tensorflow as tf
    from tfx.utils import path_utils

    from components.ondevice import data
    from components.ondevice import tflite as lite
    from components.tfjs_converter.bench import tfjs_measurements

    suffix = "" if name == "trained" else f"_{name}"
    mobile = Path(output_uri(cfg, f"TFLiteConverter{suffix}", "Model"))
    spec = json.loads((mobile / "Format-Serving" / "preprocessing_spec.json").read_text())
    saved = Path(path_utils.serving_model_path(model_uri))
    fn = tf.saved_model.load(str(saved)).signatures["serving_raw"]
    columns = list(fn.structured_input_signature[1])
    rows = data.raw_rows(examples_uri, "test", 2000, spec, columns)
    n = len(next(iter(rows.values())))

    def saved_feed(lo: int, hi: int) -> dict:
        feeds = {}
        for c, s in fn.structured_input_signature[1].items():
            v = rows[c][lo:hi]
            if s.dtype == tf.string:
                feeds[c] = tf.constant(v.astype(str).astype(object))
            elif v.dtype == np.int64:
                feeds[c] = tf.constant(np.where(v >= 0, v, np.nan), s.dtype)
            else:
                feeds[c] = tf.constant(v, s.dtype)
        return feeds

    singles = [saved_feed(i % n, i % n + 1) for i in range(SINGLE_RUNS)]
    batch = saved_feed(0, BATCH)
    it = iter(range(10**9))
    variables = _dir_bytes(saved / "variables")
    out = [{"model": name, "runtime": "SavedModel (serving_raw, in-process)", "bytes": variables,
            "single_ms": _p50_ms(lambda: fn(**singles[next(it) % SINGLE_RUNS]), SINGLE_RUNS),
            "batch_ms": _p50_ms(lambda: fn(**batch), BATCH_RUNS)}]
    for path in sorted((mobile / "candidates").glob("model_*.tflite")):
        content = path.read_bytes()
        runner = lite.interpreter(content).get_signature_runner(lite.SIGNATURE)
        feeds = [lite.encoded(data.feed(rows, spec, i % n, i % n + 1)) for i in range(SINGLE_RUNS)]
        batch_feed = lite.encoded(data.feed(rows, spec, 0, BATCH))
        k = iter(range(10**9))
        validation = json.loads((mobile / "validation.json").read_text())["variants"][path.stem[len("model_"):]]
        out.append({"model": name, "runtime": f"TFLite {path.stem[len('model_'):]} (ai-edge-litert)",
                    "bytes": len(content), "blessed": validation["blessed"],
                    "agreement": validation["agreement"],
                    "single_ms": _p50_ms(lambda runner=runner, feeds=feeds, k=k: runner(**feeds[next(k) % SINGLE_RUNS]),
                                         SINGLE_RUNS),
                    "batch_ms": _p50_ms(lambda runner=runner, b=batch_feed: runner(**b), BATCH_RUNS)})
    web = latest_output_uri(open_store(cfg), cfg.name, f"TFJSConverter{suffix}", "Model")
    if web:
        m = tfjs_measurements(web, single_runs=SINGLE_RUNS, batch=BATCH, repeats=BATCH_RUNS)
        out.append({"model": name, "runtime": f"TF.js {m['quantization']} ({m['runtime']})",
                    "bytes": m.get("weights_bytes", 0) + m.get("model_json_bytes", 0),
                    "agreement": m["validation"]["agreement"],
                    "single_ms": m["per_example_ms"]["p50_ms"], "batch_ms": m[f"batch_{BATCH}_ms"]["p50_ms"]})
    for r in out:
        r["size_x"] = r["bytes"] / variables
        r["single_x"] = r["single_ms"] / out[0]["single_ms"]
        r["batch_x"] = r["batch_ms"] / out[0]["batch_ms"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="run the pipeline here (default: a temp dir)")
    parser.add_argument("--output-root", type=Path, default=None,
                        help="measure a finished run of the shipped taxi config under this root instead")
    args = parser.parse_args()
    if args.output_root:
        cfg = load_config(TAXI, output_root=args.output_root)
    else:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_deployment_"))
        work.mkdir(parents=True, exist_ok=True)
        cfg = load_config(run_pipeline(work, 'bench_deployment', 'deployment'), output_root=work / "outputs")
    examples = output_uri(cfg, "DataCleaner", "Examples")
    models = {"trained": output_uri(cfg, "Trainer", "Model")}
    if "qat" in cfg.deployment.models:
        models["qat"] = output_uri(cfg, "QuantizationAwareTrainer", "Model")
    rows = [r for name, uri in models.items() for r in measure_model(cfg, name, uri, examples)]
    print(f"\nsizes vs the SavedModel's variables; latency p50, per example ({SINGLE_RUNS} single-row calls) "
          f"and per batch of {BATCH} ({BATCH_RUNS} calls), as ratios to the SavedModel in-process")
    print(f"  {'model':<8}{'runtime':<64}{'bytes':>9}{'size x':>8}{'1-row ms':>10}{'x':>7}{'256 ms':>9}{'x':>7}"
          f"  blessed")
    for r in rows:
        print(f"  {r['model']:<8}{r['runtime'][:63]:<64}{r['bytes']:>9,}{r['size_x']:>8.2f}{r['single_ms']:>10.3f}"
              f"{r['single_x']:>7.2f}{r['batch_ms']:>9.2f}{r['batch_x']:>7.2f}  {r.get('blessed', '-')}")
    int8 = [r for r in rows if "int8" in r["runtime"] and r.get("blessed")]
    tflite = [r for r in rows if r["runtime"].startswith("TFLite") and r.get("blessed")]
    goals = [
        ("a blessed int8 TFLite model <= 0.3x the SavedModel's variables",
         min((r["size_x"] for r in int8), default=float("inf")), lambda v: v <= 0.3),
        ("TFLite per-example latency <= 0.2x SavedModel (slowest blessed variant)",
         max((r["single_x"] for r in tflite), default=float("inf")), lambda v: v <= 0.2),
    ]
    print("\ngoals:")
    for name, value, check in goals:
        print(f"  {'PASS' if check(value) else 'FAIL'}  {name}: {value:.3f}")
    (Path(cfg.output_dir) / "bench_deployment.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(check(v) for _, v, check in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
