"""The web (TF.js) half of deployment in the real pipeline run (tests/conftest.py ``e2e_run``: the
shipped taxi config with its deployment section): every deployed model is converted, validated in
TF.js and pushed to pushed/web[_<variant>]/<version>/ when blessed; the pushed model predicts
like the SavedModel in Node and in headless Chromium, where the demo page's form is filled with
real rows (missing values as empty fields) as a person would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.tfjs_converter import executor, runtime
from tests.conftest import model_suffix, newest_version

pytestmark = [pytest.mark.e2e, pytest.mark.runs("taxi_full")]

CHROMIUM = Path("/usr/bin/chromium")
PAGE = ["app.js", "index.html", "metadata.json", "model", "model_card.html", "model_card.md", "model_runtime.js",
        "preprocessing_spec.json", "text.js", "tf.min.js", "ui.js"]  # model_card.*: ModelCard_web[_<variant>]


@pytest.fixture(scope="module")
def web(e2e_run) -> dict:
    cfg, _ = e2e_run
    assert cfg.deployment is not None and cfg.deployment.tfjs is not None, "the e2e config deploys no TF.js model"
    converted = {name: newest_version(cfg.pipeline_root / f"TFJSConverter{model_suffix(name)}" / "web_model")
                 for name in cfg.deployment.models}
    cleaned = cfg.pipeline_root / "DataCleaner" / "cleaned_examples"
    examples = newest_version(cleaned if cleaned.exists() else cfg.pipeline_root / "CsvExampleGen" / "examples")
    return {"cfg": cfg, "converted": converted, "examples": examples}


def _pushed_version(cfg, name: str) -> Path | None:
    base = cfg.pushed_dir(f"web{model_suffix(name)}")
    versions = sorted(base.iterdir()) if base.exists() else []
    assert len(versions) <= 1, versions
    return versions[0] if versions else None


def test_every_deployed_model_is_validated_in_tfjs_and_pushed_when_blessed(web):
    cfg = web["cfg"]
    thresholds = cfg.deployment.tfjs.thresholds
    for name, artifact in web["converted"].items():
        metadata = json.loads((artifact / "Format-Serving" / "metadata.json").read_text())
        v = metadata["validation"]
        assert metadata["model"] == name and metadata["thresholds"] == thresholds
        assert v["examples"] >= 100 and v["split"] == cfg.deployment.split
        within = not executor.judge(v, thresholds)
        assert v["blessed"] == (within and v["source_model_blessed"] is not False), v
        version = _pushed_version(cfg, name)
        if not v["blessed"]:
            assert version is None, f"{name}: not blessed ({v['failures']}) but pushed to {version}"
            continue
        assert version is not None, f"{name}: blessed but not pushed to {cfg.pushed_dir('web' + model_suffix(name))}"
        assert sorted(p.name for p in version.iterdir()) == PAGE
        assert (version / "metadata.json").read_text() == (artifact / "Format-Serving" / "metadata.json").read_text()
    # The trained model passes its Evaluator and, float32 in TF.js, its parity thresholds.
    assert _pushed_version(cfg, "trained") is not None


def _rows(web, spec: dict, n: int) -> dict[str, np.ndarray]:
    from ondevice import data

    rows = data.raw_rows(str(web["examples"]), web["cfg"].deployment.split, n, spec)
    for k, (name, dtype) in enumerate(data.raw_columns(spec).items()):  # missing values in every column
        blank = np.arange(len(rows[name])) % 4 == k % 4
        rows[name] = np.where(blank, "" if dtype == "string" else (-1 if dtype.startswith("int") else np.nan),
                              rows[name]).astype(rows[name].dtype)
    return rows


def test_pushed_web_model_in_node_matches_the_saved_model(web):
    from ondevice import data

    version = _pushed_version(web["cfg"], "trained")
    metadata = json.loads((version / "metadata.json").read_text())
    spec = json.loads((version / "preprocessing_spec.json").read_text())
    rows = _rows(web, spec, 300)
    reference = data.reference_predictions(metadata["source_model"], rows, spec)
    out = runtime.node_predict(str(version), rows, list(data.raw_columns(spec)))
    measured = executor.parity(spec["task"], reference, np.array(out["predictions"]))
    assert not executor.judge(measured, metadata["thresholds"]), measured
    assert measured["agreement"] == 1.0


def test_web_demo_in_chromium_predicts_like_the_saved_model(web, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (`make system-deps` installs Debian's chromium as root)")
    from ondevice import data

    version = _pushed_version(web["cfg"], "trained")
    metadata = json.loads((version / "metadata.json").read_text())
    spec = json.loads((version / "preprocessing_spec.json").read_text())
    rows = _rows(web, spec, 12)
    reference = data.reference_predictions(metadata["source_model"], rows, spec)
    out = runtime.browser_predict(str(version), rows, data.raw_columns(spec), str(CHROMIUM),
                                  screenshot=str(tmp_path / "page.png"))
    assert out["errors"] == [] and out["backend"] == "cpu", out
    assert not [line for line in out["console"] if line.startswith(("error", "pageerror"))], out["console"]
    assert "Model loaded" in out["subtitle"]
    measured = executor.parity(spec["task"], reference, np.array(out["predictions"], dtype=np.float64))
    assert not executor.judge(measured, metadata["thresholds"]), measured
    assert (tmp_path / "page.png").stat().st_size > 10_000
