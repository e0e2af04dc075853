"""What the benchmarks share: run the shipped taxi config on the full taxi CSV in a work folder,
and find a component's latest output in that run's ML Metadata."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TAXI = ROOT / "pipeline/configs/taxi/pipeline.yaml"


def run_pipeline(work: Path, name: str, what: str) -> Path:
    """Run the taxi config as pipeline ``name`` under ``work``/outputs; returns its config path."""
    cfg = yaml.safe_load(TAXI.read_text())
    cfg["name"] = name
    cfg["data"]["csv_dir"] = str(ROOT / "data" / "taxi")
    cfg["schema"] = str(TAXI.parent / cfg["schema"])
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    shutil.rmtree(work / "outputs" / name, ignore_errors=True)
    print(f"running the taxi pipeline with {what} (log: {work / 'run.log'}) ...", flush=True)
    start = time.monotonic()
    with (work / "run.log").open("w") as log:
        proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(path), "--output-root",
                               str(work / "outputs")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"pipeline failed; see {work / 'run.log'}")
    print(f"pipeline finished in {time.monotonic() - start:.0f}s")
    return path


def output_uri(cfg, node_id: str, type_name: str) -> str:
    from pipeline.summary import latest_output_uri, open_store

    uri = latest_output_uri(open_store(cfg), cfg.name, node_id, type_name)
    if uri is None:
        raise SystemExit(f"no {type_name} output of {node_id} in {cfg.output_dir}: run the pipeline first")
    return uri
