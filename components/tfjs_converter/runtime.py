"""The TF.js tools outside this venv: ``tensorflowjs_converter`` (its own venv, ``.venv-tfjs``:
tensorflowjs 4.22 pins TensorFlow 2.19, TFX 1.21 needs 2.21) and Node with the npm-installed
``@tensorflow/tfjs`` (``web/``). Both are installed by ``make setup``; both run as subprocesses,
and a failure names the command and the tail of its stderr.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "web"
TFJS_VENV = Path(os.environ.get("TFJS_VENV", ROOT / ".venv-tfjs"))
CONVERTER = TFJS_VENV / "bin" / "tensorflowjs_converter"
PREDICT_JS = WEB_DIR / "src" / "predict.js"
BROWSER_JS = WEB_DIR / "test" / "browser_predict.js"  # the pushed page in headless Chromium
TFJS_BUNDLE = WEB_DIR / "node_modules" / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"
QUANTIZATION_FLAGS = {"none": None, "float16": "--quantize_float16", "uint8": "--quantize_uint8"}
# Weights quantized: the Keras model's (its variables frozen into constants: embedding tables
# captured as "unknown_<k>", Dense kernels and biases as ".../ReadVariableOp"). The preprocessing
# constants (means, stds, bucket boundaries, vocabularies) stay float32: bucket boundaries of a
# latitude in float16 (0.03 apart at 41°) move rows across buckets (measured on taxi: max abs diff
# 0.13 with every weight in float16, 1e-3 with the model's only).
MODEL_WEIGHT_PATTERNS = ("unknown*", "*/ReadVariableOp")
SETUP_HINT = "run `make setup` (it creates .venv-tfjs and runs `npm ci` in web/)"


class TFJSError(RuntimeError):
    """A TF.js tool failed or is missing; the message names the command or file."""


_NOISE = ("WARNING: All log messages", "I0000 ", "W0000 ", "E0000 ", "To enable the following instructions")


def _tail(text: str, lines: int = 25) -> str:
    """The last ``lines`` lines of a tool's output, TensorFlow's start-up chatter left out."""
    kept = [line for line in text.strip().splitlines() if not line.startswith(_NOISE) and "cuInit" not in line]
    return "\n".join(kept[-lines:])


def _run(cmd: list[str], what: str, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise TFJSError(f"{what}: `{' '.join(cmd)}` did not finish in {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise TFJSError(f"{what} failed (exit {proc.returncode}): `{' '.join(cmd)}`\n"
                        f"{_tail(proc.stderr or proc.stdout)}")
    return proc


def node() -> str:
    path = shutil.which("node")
    if path is None:
        raise TFJSError(f"node is not on PATH: the TF.js runtime needs Node.js >= 18; {SETUP_HINT}")
    return path


def check_installed() -> None:
    """Raise (naming what is missing and how to install it) unless the converter and tfjs are there."""
    if not os.access(CONVERTER, os.X_OK):
        raise TFJSError(f"{CONVERTER} not found: {SETUP_HINT}")
    if not TFJS_BUNDLE.exists():
        raise TFJSError(f"{TFJS_BUNDLE} not found (@tensorflow/tfjs is not installed): {SETUP_HINT}")
    node()


def unsupported_ops(stderr: str) -> list[str]:
    """The op names of the converter's 'Unsupported Ops in the model ...' error, if that was it."""
    lines = stderr.splitlines()
    for k in range(len(lines) - 2, -1, -1):
        if lines[k].startswith("ValueError: Unsupported Ops in the model"):
            return [op.strip() for op in lines[k + 1].split(",") if op.strip()]
    return []


def convert(saved_model_dir: str, out_dir: str, quantization: str = "none", timeout: float = 600) -> list[str]:
    """``saved_model_dir``'s serving_default as a TF.js graph model in ``out_dir`` (model.json +
    weight shards); returns the command. Weights quantized per ``quantization``."""
    if quantization not in QUANTIZATION_FLAGS:
        raise ValueError(f"unknown TF.js quantization {quantization!r}; known: {', '.join(QUANTIZATION_FLAGS)}")
    if not os.path.exists(os.path.join(saved_model_dir, "saved_model.pb")):
        raise TFJSError(f"no SavedModel to convert: {os.path.join(saved_model_dir, 'saved_model.pb')} does not exist")
    check_installed()
    for path in (saved_model_dir, out_dir):  # the converter re-splits its arguments on spaces
        if any(c.isspace() for c in path):
            raise TFJSError(f"tensorflowjs_converter cannot take a path with spaces: {path!r}")
    # The paths after "--": the quantize flags take an optional value, which must not be a path.
    cmd = [str(CONVERTER), "--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
           "--signature_name=serving_default", "--saved_model_tags=serve"]
    if QUANTIZATION_FLAGS[quantization]:
        cmd.append(f"{QUANTIZATION_FLAGS[quantization]}={','.join(MODEL_WEIGHT_PATTERNS)}")
    cmd += ["--", saved_model_dir, out_dir]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("PYTHONPATH", None)  # the converter's venv must not see this venv's packages
    try:
        _run(cmd, "tensorflowjs_converter", timeout, env=env)
    except TFJSError as exc:
        ops = unsupported_ops(str(exc))
        if ops:
            raise TFJSError(f"TF.js has no kernel for op(s) {', '.join(ops)} in {saved_model_dir} "
                            f"(signature serving_default): {exc}") from None
        raise
    if not os.path.exists(os.path.join(out_dir, "model.json")):
        raise TFJSError(f"`{' '.join(cmd)}` exited 0 but wrote no {os.path.join(out_dir, 'model.json')}")
    return cmd


def _json_value(v: Any) -> Any:
    if isinstance(v, np.float32):  # the shortest decimal that reads back as the same float32
        return None if math.isnan(v) else float(str(v))
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):  # an image's pixels: one flat list (model_runtime.js reshapes)
        return [float(x) for x in v.reshape(-1)]
    return v


def rows_json(rows: dict[str, np.ndarray], columns: list[str] | None = None) -> dict[str, Any]:
    """Rows as predict.js and the page read them: {"columns": {name: [values]}}, NaN as null,
    float32 values as the shortest decimal that reads back as the same float32 (as a person
    would type them: 1.1, not 1.100000023841858)."""
    names = columns if columns is not None else list(rows)
    return {"columns": {c: [_json_value(v) for v in np.asarray(rows[c])] for c in names}}


def node_predict(model_dir: str, rows: dict[str, np.ndarray], columns: list[str] | None = None, *,
                 bench_single: int = 0, bench_batch: int = 0, bench_repeats: int = 20,
                 timeout: float = 600) -> dict[str, Any]:
    """Runs web/src/predict.js (TF.js in Node, cpu backend) on ``rows`` with the web model in
    ``model_dir``; returns its JSON: predictions, backend, load time, benchmarks if asked."""
    check_installed()
    with tempfile.TemporaryDirectory(prefix="tfjs_rows_") as tmp:
        rows_file, out_file = os.path.join(tmp, "rows.json"), os.path.join(tmp, "out.json")
        with open(rows_file, "w") as fh:
            json.dump(rows_json(rows, columns), fh)
        cmd = [node(), str(PREDICT_JS), "--model", model_dir, "--rows", rows_file, "--out", out_file]
        if bench_single:
            cmd += ["--bench-single", str(bench_single)]
        if bench_batch:
            cmd += ["--bench-batch", str(bench_batch), "--bench-repeats", str(bench_repeats)]
        _run(cmd, "TF.js in Node (web/src/predict.js)", timeout, cwd=str(WEB_DIR))
        with open(out_file) as fh:
            return json.load(fh)


def browser_predict(page_dir: str, rows: dict[str, np.ndarray], columns: dict[str, str], chromium: str, *,
                    screenshot: str | None = None, timeout: float = 300) -> dict[str, Any]:
    """Serves the pushed web folder ``page_dir`` on localhost and runs web/test/browser_predict.js:
    Chromium opens the demo page, fills its form with each row (``columns``: {raw column: dtype};
    missing values as empty fields) and reads what the page shows. Returns its JSON: predictions
    (one list of values per row), errors, console lines, subtitle, backend."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=page_dir))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory(prefix="tfjs_browser_") as tmp:
            rows_file, out_file = os.path.join(tmp, "rows.json"), os.path.join(tmp, "out.json")
            with open(rows_file, "w") as fh:
                json.dump({**rows_json(rows, list(columns)), "dtypes": columns}, fh)
            cmd = [node(), str(BROWSER_JS), "--url", f"http://127.0.0.1:{server.server_port}/index.html",
                   "--rows", rows_file, "--out", out_file, "--chromium", chromium,
                   *(["--screenshot", screenshot] if screenshot else [])]
            _run(cmd, "the web page in Chromium (web/test/browser_predict.js)", timeout, cwd=str(WEB_DIR),
                 env={**os.environ, "HOME": tmp})
            with open(out_file) as fh:
                return json.load(fh)
    finally:
        server.shutdown()
        thread.join(timeout=10)


def converter_version() -> str:
    """tensorflowjs's version in its venv (from the package metadata; no TensorFlow import)."""
    for meta in (TFJS_VENV / "lib").glob("python3*/site-packages/tensorflowjs-*.dist-info/METADATA"):
        for line in meta.read_text().splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def tfjs_version() -> str:
    package = WEB_DIR / "node_modules" / "@tensorflow" / "tfjs" / "package.json"
    return json.loads(package.read_text())["version"] if package.exists() else "unknown"
