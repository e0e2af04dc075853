"""A real trained model and real examples for the serving tests, built once per test session.

The serving tests and the InfraValidator tests (in components/) share it: running the real
pipeline up to Trainer on a small taxi sample is the expensive part, so it happens once.
Trainer's ``Format-Serving`` directory is exactly what Pusher copies to ``pushed/serving/<ver>/``.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import derived_config, run_cli, sample_rows, write_csv

TINY_TRAINING = {"train_steps": 40, "eval_steps": 5, "epochs": 1, "early_stopping_patience": 1}


@dataclass(frozen=True)
class TrainedModel:
    saved_model: Path      # a SavedModel directory (Trainer's Format-Serving)
    model_artifact: Path   # Trainer's Model artifact (what InfraValidator takes)
    examples: Path         # CsvExampleGen's Examples artifact (Split-train/eval/test)
    rows: tuple = field(repr=False)  # raw CSV rows of the sample, as dicts


@functools.cache
def trained_model(root: Path) -> TrainedModel:
    header, rows = sample_rows(1500, seed=11)
    data = write_csv(root / "data" / "data.csv", header, rows).parent
    config = derived_config(root, data, name="serving_model", training=TINY_TRAINING)
    proc = run_cli("run", "--config", str(config), "--output-root", str(root / "outputs"), "--until", "Trainer")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pipeline_root = root / "outputs" / "serving_model" / "pipeline_root"
    (model,) = (pipeline_root / "Trainer" / "model").iterdir()
    (examples,) = (pipeline_root / "CsvExampleGen" / "examples").iterdir()
    return TrainedModel(model / "Format-Serving", model, examples, tuple(rows))


def session_model(tmp_path_factory) -> TrainedModel:
    """The session's model (built on first use under pytest's session temp dir)."""
    return trained_model(tmp_path_factory.getbasetemp() / "serving_model")


def publish(model: TrainedModel, base: Path, version: int) -> Path:
    """Copy the model to ``base/<version>/`` the way Pusher does (TF Serving's layout)."""
    target = base / str(version)
    tmp = base / f".{version}.tmp"
    shutil.copytree(model.saved_model, tmp)
    tmp.rename(target)  # atomic: a polling server never sees a half-copied version
    return target
