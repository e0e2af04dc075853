"""TF.js numbers for the deployment benchmark: a web model's sizes and its latency in Node
(@tensorflow/tfjs, cpu backend: the runtime the pipeline validates in), per example and per
batch of 256, through the same code the page runs (model_runtime.js: the app-side features
computed in JS, then the graph model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from components.tfjs_converter import executor, runtime


def web_model_dir(path: str | Path) -> Path:
    """The web deployment folder of ``path``: a TFJSConverter Model artifact (its Format-Serving),
    a pushed version folder (pushed/web/<version>), or the folder itself."""
    p = Path(path)
    if (p / executor.SERVING_DIR / executor.METADATA_FILE).exists():
        return p / executor.SERVING_DIR
    if (p / executor.METADATA_FILE).exists():
        return p
    raise FileNotFoundError(f"no web model at {p}: neither {p / executor.METADATA_FILE} nor "
                            f"{p / executor.SERVING_DIR / executor.METADATA_FILE} exists")


def _metadata_rows(metadata: dict[str, Any]) -> dict[str, np.ndarray]:
    """The validation rows kept in metadata.json, as arrays (null -> NaN for numbers)."""
    columns = {c["name"]: c["dtype"] for c in metadata["raw_columns"]}
    rows = {}
    for name, dtype in columns.items():
        values = [e["values"][name] for e in metadata["examples"]]
        if dtype == "string":
            rows[name] = np.array(values, dtype=object)
        elif dtype.startswith("int"):
            rows[name] = np.array(values, dtype=np.int64)
        else:
            rows[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
    return rows


def tfjs_measurements(web_model: str | Path, rows: dict[str, np.ndarray] | None = None, *,
                      single_runs: int = 200, batch: int = 256, repeats: int = 20) -> dict[str, Any]:
    """Sizes (bytes: model.json, weights, both raw and gzipped, the page's tfjs bundle) and
    TF.js-in-Node latency of the web model at ``web_model`` (see ``web_model_dir``).

    ``rows``: raw columns as ``ondevice.data.raw_rows`` returns them; by default the
    validation rows kept in metadata.json. Per-example latency cycles through the rows one at a
    time (``single_runs`` calls after 5 warm-up calls); batch latency predicts ``batch`` rows
    (the rows repeated) ``repeats`` times after 2 warm-up calls. Latencies are wall-clock
    milliseconds of one ``predict`` call (feeds built, graph executed, probabilities read)."""
    folder = web_model_dir(web_model)
    metadata = json.loads((folder / executor.METADATA_FILE).read_text())
    rows = rows if rows is not None else _metadata_rows(metadata)
    columns = [c["name"] for c in metadata["raw_columns"]]
    out = runtime.node_predict(str(folder), rows, columns, bench_single=single_runs + 5, bench_batch=batch,
                               bench_repeats=repeats)
    single, batched = out["bench"]["per_example"], out["bench"][f"batch_{batch}"]
    sizes = executor.sizes(folder)
    return {
        "model": metadata.get("model"),
        "quantization": metadata.get("quantization"),
        "runtime": f"@tensorflow/tfjs {out['tfjs_version']} in Node {out['node_version']} ({out['backend']} backend)",
        **sizes,
        "load_ms": out["load_ms"],
        "per_example_ms": {k: single[k] for k in ("p50_ms", "mean_ms", "p90_ms", "runs")},
        f"batch_{batch}_ms": {k: batched[k] for k in ("p50_ms", "mean_ms", "p90_ms", "runs")},
        f"batch_{batch}_per_example_ms": batched["p50_ms"] / batch,
        "validation": {k: metadata["validation"][k] for k in ("max_abs_diff", "agreement", "examples")},
    }
