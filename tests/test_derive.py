"""pipeline.derive: configs derived from a shipped one load, whatever sections are dropped (the
benchmarks broke when dropping `optimization` left `deployment.models: [trained, qat]`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.derive import derive, write

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "pipeline" / "configs").glob("*/pipeline.yaml"))
OPTIONAL = ("cleaning", "feature_selection", "tuning", "optimization", "deployment", "schema")


@pytest.mark.parametrize("base", CONFIGS, ids=lambda p: p.parent.name)
def test_every_shipped_config_loads_with_optional_sections_dropped(base, tmp_path):
    # taxi has every section: each alone, then all; the others all at once (each load reads the CSV)
    drops = [(s,) for s in OPTIONAL] + [OPTIONAL] if base.parent.name == "taxi" else [OPTIONAL]
    for drop in drops:
        # write() loads the config back: a section left naming a dropped one fails here
        write(derive(base, drop=drop), tmp_path / "c.yaml", output_root=tmp_path / "out")


def test_dropping_optimization_keeps_only_the_trained_model_in_deployment(tmp_path):
    base = Path(__file__).resolve().parent.parent / "pipeline" / "configs" / "taxi" / "pipeline.yaml"
    assert "qat" in derive(base)["deployment"]["models"]  # the shipped config deploys a variant
    cfg = load_config(write(derive(base, drop=("optimization",)), tmp_path / "c.yaml"), output_root=tmp_path)
    assert list(cfg.deployment.models) == ["trained"]


def test_paths_are_absolute_and_overrides_merge(tmp_path):
    base = Path(__file__).resolve().parent.parent / "pipeline" / "configs" / "taxi" / "pipeline.yaml"
    cfg = derive(base, name="x", training={"train_steps": 7}, tuning=None)
    assert Path(cfg["data"]["csv_dir"]).is_absolute() and Path(cfg["data"]["csv_dir"]).exists()
    assert Path(cfg["schema"]).is_absolute() and Path(cfg["schema"]).exists()
    assert cfg["name"] == "x" and "tuning" not in cfg
    assert cfg["training"]["train_steps"] == 7 and cfg["training"]["epochs"] == 5  # merged, not replaced
