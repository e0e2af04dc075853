"""The JSON Schema of the pipeline YAML (``python -m pipeline config-schema``, from the pydantic
models in pipeline/config/model.py) accepts every shipped config and rejects what load_config rejects."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date

import jsonschema
import pytest
import yaml

from pipeline.config import ConfigError, load_config
from pipeline.config.model import Sequence
from pipeline.config.text import DEFAULT_SEQUENCE
from tests.conftest import ROOT, TAXI_CONFIG

SHIPPED = sorted((ROOT / "pipeline" / "configs").glob("*/pipeline.yaml"))


def _json(raw):
    """The YAML as JSON sees it: an unquoted date is a string there."""
    return json.loads(json.dumps(raw, default=lambda v: v.isoformat() if isinstance(v, date) else str(v)))


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("schema") / "pipeline.schema.json"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "config-schema", "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(out.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def test_schema_accepts_every_shipped_config(schema):
    assert len(SHIPPED) >= 5
    validator = jsonschema.Draft202012Validator(schema)
    for path in SHIPPED:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_json(yaml.safe_load(
            path.read_text())))]
        assert not errors, (path, errors)
    assert schema["additionalProperties"] is False
    assert {"data", "label", "features", "model", "runner", "deployment"} <= set(schema["properties"])


def _taxi(mutate):
    raw = yaml.safe_load(TAXI_CONFIG.read_text())
    raw["data"]["csv_dir"] = str(ROOT / "data" / "taxi")
    raw["schema"] = str(TAXI_CONFIG.parent / "schema.pbtxt")
    mutate(raw)
    return raw


@pytest.mark.parametrize("mutate, path, message", [
    (lambda c: c["model"].update(hiden_units=[8]), "model", "unknown key 'hiden_units'"),
    (lambda c: c["runner"].update(enigne="beam"), "runner",
     "unknown key 'enigne'"),
    (lambda c: c["model"].update(batch_size="128"), "model.batch_size", "must be int, got '128'"),
    (lambda c: c["model"].update(hidden_units=[64, 0]), "model.hidden_units[1]", "must be > 0"),
    (lambda c: c["model"].update(dropout=True), "model.dropout", "must be int/float, got True"),
    (lambda c: c["data"]["splits"].update(eval=1.5), "data.splits.eval", "must be int, got 1.5"),
    (lambda c: c["deployment"]["tfjs"].update(quantization="int4"), "deployment.tfjs.quantization",
     "must be one of none, float16, uint8"),
    (lambda c: c["features"][2].update(steps="z_score"), "features[2].steps", "must be a list"),
])
def test_schema_and_load_config_reject_the_same(schema, tmp_path, mutate, path, message):
    raw = _taxi(mutate)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_json(raw), schema, cls=jsonschema.Draft202012Validator)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(config, check_data=False)
    assert f"{config}: {path}: {message}" in str(err.value), str(err.value)


def test_model_defaults_follow_the_code_they_configure():
    assert Sequence().model_dump() == DEFAULT_SEQUENCE


def test_model_enums_are_the_codes_own():
    """model.py spells enums as Literals for the schema; they must stay the lists the code acts on."""
    import typing

    from components.drift_skew_gate.thresholds import DEFAULTS, HISTOGRAMS
    from features import feature_steps
    from features import task as task_lib
    from pipeline.config import deployment, model, optimization, orchestration

    def literal(m, key):
        """The Literal's values in field ``key`` of ``m``, through Optional and list."""
        todo, found = [m.model_fields[key].annotation], []
        while todo:
            ann = todo.pop()
            if typing.get_origin(ann) is typing.Literal:
                found.append(typing.get_args(ann))
            else:
                todo.extend(typing.get_args(ann))
        (values,) = found
        return values

    assert literal(model.Feature, "type") == feature_steps.VALUE_TYPES
    assert literal(model.OutlierRule, "method") == feature_steps.CLIP_METHODS
    assert set(literal(model.Cyclical, "parts")) == set(feature_steps.CYCLICAL_PARTS)
    assert literal(model.Label, "task") == task_lib.TASKS
    assert literal(model.Label, "transform") == task_lib.TARGET_TRANSFORMS
    assert tuple(model.ConversionThresholds.model_fields) == task_lib.THRESHOLD_KEYS
    assert tuple(model.TFLiteThresholds.model_fields) == deployment.TFLITE_VARIANTS
    assert literal(model.TFJS, "quantization") == deployment.TFJS_QUANTIZATION
    assert literal(model.Tuning, "algorithm") == optimization.ALGORITHMS
    assert set(model.Optimization.model_fields) == {"split", "thresholds", *optimization.VARIANTS}
    assert literal(model.Beam, "runner") == orchestration.BEAM_RUNNERS
    assert literal(model.Direct, "mode") == orchestration.DIRECT_MODES
    assert literal(model.Flink, "environment_type") == orchestration.ENVIRONMENT_TYPES
    assert literal(model.Runner, "engine") == orchestration.ENGINES
    assert set(model.Drift.model_fields) == {*DEFAULTS, "features", "skip"}
    assert set(literal(model.Drift, "numeric_histogram")) == set(HISTOGRAMS)
    for key, (_, _, section) in optimization.VARIANTS.items():
        assert model.Optimization.model_fields[key].annotation == section | None, key


def test_the_shipped_schema_is_current_and_every_shipped_config_uses_it(schema):
    # pipeline/configs/pipeline.schema.json is what editors load (each shipped config's first line
    # points at it): it must be what `config-schema` generates now, or completion would lie.
    shipped = ROOT / "pipeline" / "configs" / "pipeline.schema.json"
    assert json.loads(shipped.read_text()) == schema, (
        "pipeline/configs/pipeline.schema.json is stale: "
        "python -m pipeline config-schema --output pipeline/configs/pipeline.schema.json")
    for config in SHIPPED:
        assert config.read_text().splitlines()[0] == "# yaml-language-server: $schema=../pipeline.schema.json", config
