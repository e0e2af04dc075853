"""Config validation: the shipped config loads; every bad config names file, key and problem."""

from __future__ import annotations

import pytest
import yaml

from csvio.reader import CsvFormatError
from features import feature_steps
from pipeline.config import ConfigError, load_config
from tests.conftest import ROOT, TAXI_CONFIG


def test_shipped_config_loads():
    cfg = load_config(TAXI_CONFIG)
    assert cfg.name == "taxi"
    assert cfg.label.name == "big_tipper"
    assert cfg.schema_path.exists()
    assert cfg.data_dir == (ROOT / "data" / "taxi").resolve()
    assert cfg.split_buckets == {"train": 8, "eval": 1, "test": 1}
    assert {f.name for f in cfg.features} >= {"fare", "company", "trip_start_hour"}
    assert cfg.serving_excluded_columns == ("tips",)  # label-only column, never asked at serving
    assert cfg.output_dir.name == "taxi"
    company = next(f for f in cfg.features if f.name == "company")
    assert company.outputs() == [feature_steps.OutputSpec("company_xf", "categorical", 101)]
    fare = next(f for f in cfg.features if f.name == "fare")
    assert fare.outputs() == [feature_steps.OutputSpec("fare_xf", "numeric", 1)]


def _write(tmp_path, mutate):
    cfg = yaml.safe_load(TAXI_CONFIG.read_text())
    cfg["data"]["csv_dir"] = str(ROOT / "data" / "taxi")
    cfg["schema"] = str(TAXI_CONFIG.parent / "schema.pbtxt")
    mutate(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _feature(cfg, name):
    return next(f for f in cfg["features"] if f["name"] == name)


BAD = {
    "unknown top-level key": (lambda c: c.update(modle={}), ["<top level>", "unknown key 'modle'"]),
    "missing name": (lambda c: c.pop("name"), ["name", "missing required key"]),
    "bad split bucket": (lambda c: c["data"]["splits"].update(train=0), ["data.splits.train", "> 0"]),
    "missing data dir": (lambda c: c["data"].update(csv_dir="/nonexistent/dir"),
                         ["data.csv_dir", "does not exist"]),
    "unknown step": (lambda c: _feature(c, "fare")["steps"].append("zscore"),
                     ["features[1] (fare)", "unknown step", "z_score"]),
    "unknown step argument": (lambda c: _feature(c, "company")["steps"][1]["vocabulary"].update(topk=3),
                              ["(company)", "unknown argument 'topk'"]),
    "missing step argument": (lambda c: _feature(c, "pickup_latitude").update(steps=[{"bucketize": {}}]),
                              ["(pickup_latitude)", "missing required argument 'num_buckets'"]),
    "bad argument type": (lambda c: _feature(c, "company")["steps"][1]["vocabulary"].update(top_k="ten"),
                          ["(company)", "'top_k' must be int"]),
    "string feature without encoding": (lambda c: _feature(c, "company").update(steps=[]),
                                        ["(company)", "must end in a categorical step"]),
    "numeric step on a string": (lambda c: _feature(c, "company")["steps"].insert(1, "z_score"),
                                 ["(company)", "expects a numeric column"]),
    "mean of a string": (lambda c: _feature(c, "company")["steps"].__setitem__(0, {"impute": {"strategy": "mean"}}),
                         ["(company)", "needs a numeric column"]),
    "bad type": (lambda c: _feature(c, "fare").update(type="double"), ["features[1].type", "float, int, string"]),
    "feature not in data": (lambda c: c["features"].append({"name": "surge", "type": "float"}),
                            ["features (surge)", "column 'surge' is not in the data"]),
    "label column not in data": (lambda c: c["label"].update(column="tip_amount"),
                                 ["label.column", "'tip_amount' is not in the data"]),
    "duplicate feature": (lambda c: c["features"].append(dict(_feature(c, "fare"))),
                          ["feature 'fare' is listed twice"]),
    "unknown metric": (lambda c: c["evaluation"]["thresholds"].append({"metric": "aucc", "lower_bound": 0.5}),
                       ["evaluation.thresholds[2].metric", "unknown metric"]),
    "threshold without bound": (lambda c: c["evaluation"]["thresholds"].append({"metric": "auc"}),
                                ["evaluation.thresholds[2]", "lower_bound"]),
    "slice on unknown feature": (lambda c: c["evaluation"].update(slices=["hour"]),
                                 ["evaluation.slices[0]", "'hour' is not a feature"]),
    "bad engine": (lambda c: c["runner"].update(engine="spark"), ["runner.engine", "local, beam"]),
    "bad beam arg": (lambda c: c["runner"].update(beam_args=["direct_num_workers=2"]), ["runner.beam_args"]),
    "steps fewer than epochs": (lambda c: c["training"].update(train_steps=2, epochs=5), ["training.train_steps"]),
    "both label rules": (lambda c: c["label"]["positive_when"].update(greater_than=1.0),
                         ["label.positive_when", "exactly one"]),
    # issue 3: data-dependent step checks, derived features, cleaning, selection, splitting
    "box-cox on non-positive data": (lambda c: _feature(c, "fare").update(
        steps=[{"impute": {"strategy": "mean"}}, "box_cox"]),
                                     ["features[1] (fare)", "'box_cox' needs values > 0", "the data has 0"]),
    "log of a column filled with 0": (lambda c: _feature(c, "dropoff_latitude").update(steps=["log"]),
                                      ["(dropoff_latitude)", "'log' needs values > 0", "filled with 0"]),
    "log after a scaling step": (lambda c: _feature(c, "trip_miles").update(steps=["z_score", "log1p"]),
                                 ["(trip_miles)", "log1p", "put it before z_score"]),
    "numeric step after encoding": (lambda c: _feature(c, "company")["steps"].append("z_score"),
                                    ["(company)", "steps[2] (z_score)", "expects a numeric column"]),
    "impute not first": (lambda c: _feature(c, "fare")["steps"].append({"impute": {"strategy": "mean"}}),
                         ["(fare)", "impute must be the first step"]),
    "ratio of three columns": (lambda c: c["features"].append({"name": "r", "type": "float",
                                                                "ratio": ["fare", "tips", "trip_miles"]}),
                               ["features[16].ratio", "[numerator, denominator]"]),
    "cross typed float": (lambda c: c["features"].append({"name": "x", "type": "float",
                                                           "cross": ["company", "payment_type"]}),
                          ["features[16].type", "a cross is a string feature"]),
    "cyclical unknown part": (lambda c: c["features"].append({"name": "t", "type": "int", "cyclical": {
        "column": "trip_start_timestamp", "parts": ["minute"]}}), ["features[16].cyclical.parts", "hour"]),
    "derived reuses a column name": (lambda c: c["features"].append({"name": "pickup_census_tract", "type": "float",
                                                                      "ratio": ["trip_miles", "fare"]}),
                                     ["(pickup_census_tract)", "cannot reuse the column name"]),
    "derived source not in data": (lambda c: c["features"].append({"name": "r", "type": "float",
                                                                    "ratio": ["fare", "distance"]}),
                                   ["features (r)", "column 'distance' is not in the data"]),
    "cleaning unknown column": (lambda c: c.update(cleaning={"drop_rows_missing": ["fares"]}),
                                ["cleaning.drop_rows_missing", "'fares' is not in the data"]),
    "cleaning bad method": (lambda c: c.update(cleaning={"remove_outliers": [{"column": "fare", "method": "mad"}]}),
                            ["cleaning.remove_outliers[0].method", "quantile, iqr, z_score"]),
    "cleaning bounds reversed": (lambda c: c.update(cleaning={"remove_outliers": [
        {"column": "fare", "method": "quantile", "lower": 0.9, "upper": 0.1}]}),
        ["cleaning.remove_outliers[0].upper", "must be > lower"]),
    "selection both modes": (lambda c: c.update(feature_selection={"top_k": 3, "threshold": 0.1}),
                             ["feature_selection", "exactly one of top_k or threshold"]),
    "selection keeps unknown": (lambda c: c.update(feature_selection={"top_k": 3, "always_keep": ["tip"]}),
                                ["feature_selection.always_keep", "'tip' is not a feature"]),
    "split by two things": (lambda c: c["data"].update(split_by={"column": "company",
                                                                 "timestamp_column": "trip_start_timestamp"}),
                            ["data.split_by", "either column"]),
    "split date not ISO": (lambda c: c["data"].update(split_by={"timestamp_column": "trip_start_timestamp",
                                                                "eval_from": "Jan 2016", "test_from": "2016-07-01"}),
                           ["data.split_by.eval_from", "ISO date"]),
    "split dates reversed": (lambda c: c["data"].update(split_by={"timestamp_column": "trip_start_timestamp",
                                                                  "eval_from": "2016-07-01",
                                                                  "test_from": "2016-01-01"}),
                             ["data.split_by.test_from", "after eval_from"]),
    "split column not in data": (lambda c: c["data"].update(split_by={"column": "driver"}),
                                 ["data.split_by.column", "'driver' is not in the data"]),
    # issue 4: tuning and model variants
    "unknown tuning algorithm": (lambda c: c["tuning"].update(algorithm="grid"),
                                 ["tuning.algorithm", "random, hyperband, bayesian"]),
    "unknown search key": (lambda c: c["tuning"]["search_space"].update(layers=[1, 2]),
                           ["tuning.search_space", "unknown key 'layers'", "num_layers"]),
    "search range reversed": (lambda c: c["tuning"]["search_space"].update(learning_rate={"min": 0.1, "max": 0.01}),
                              ["tuning.search_space", "'learning_rate': min must be < max"]),
    "units not integers": (lambda c: c["tuning"]["search_space"].update(units=[32, 0.5]),
                           ["tuning.search_space", "'units': choices must be positive integers"]),
    "objective not validation": (lambda c: c["tuning"].update(objective="auc"),
                                 ["tuning.objective", "val_auc"]),
    "sparsity out of range": (lambda c: c["optimization"]["pruning"].update(target_sparsity=1.0),
                              ["optimization.pruning.target_sparsity", "(0, 1)"]),
    "unknown variant": (lambda c: c["optimization"].update(clustering={}),
                        ["optimization", "unknown key 'clustering'"]),
    "bad student": (lambda c: c["optimization"]["distillation"]["student"].update(hidden_units=[]),
                    ["optimization.distillation.student.hidden_units", "positive integers"]),
    "variant threshold metric": (lambda c: c["optimization"].update(thresholds=[{"metric": "AUC", "max_decrease": 1}]),
                                 ["optimization.thresholds[0].metric", "unknown metric"]),
    "variant split unknown": (lambda c: c["optimization"].update(split="holdout"),
                              ["optimization.split", "eval, test"]),
    "empty optimization": (lambda c: c.update(optimization={"split": "test"}),
                           ["optimization", "name at least one of pruning"]),
    # issue 5: on-device and in-browser deployment
    "deployment unknown model": (lambda c: c["deployment"].update(models=["trained", "int4"]),
                                 ["deployment.models[1]", "unknown model 'int4'", "trained, pruned, qat, student"]),
    "deployment model twice": (lambda c: c["deployment"].update(models=["qat", "qat"]),
                               ["deployment.models", "each model once"]),
    "deployment unknown tflite variant": (lambda c: c["deployment"]["tflite"].update(variants=["float32", "int4"]),
                                          ["deployment.tflite.variants[1]", "float32, float16, dynamic_range, int8"]),
    "deployment threshold for an unlisted variant": (
        lambda c: c["deployment"]["tflite"].update(variants=["float32"], thresholds={"int8": {"min_agreement": 0.9}}),
        ["deployment.tflite.thresholds", "unknown key 'int8'"]),
    "deployment agreement above one": (
        lambda c: c["deployment"]["tflite"].update(thresholds={"int8": {"min_agreement": 1.5}}),
        ["deployment.tflite.thresholds.int8.min_agreement", "(0, 1]"]),
    "deployment tfjs quantization": (lambda c: c["deployment"]["tfjs"].update(quantization="int4"),
                                     ["deployment.tfjs.quantization", "none, float16, uint8"]),
    "deployment needs a target": (lambda c: c.update(deployment={"models": ["trained"]}),
                                  ["deployment", "give tflite and/or tfjs"]),
    "deployment split unknown": (lambda c: c["deployment"].update(split="holdout"),
                                 ["deployment.split", "eval, test"]),
    # issue 12: the label section per task, checked against the data
    "positive_class read as a boolean": (lambda c: _task(c, "payment_type", "binary_classification",
                                                         positive_class=True), ["label.positive_class", "quote"]),
    "positive_class not in the data": (lambda c: _task(c, "payment_type", "binary_classification",
                                                       positive_class="Bitcoin"),
                                       ["label.positive_class", "'Bitcoin' never occurs", "Cash"]),
    "binary without a rule": (lambda c: _task(c, "payment_type", "binary_classification"),
                              ["label", "exactly one of positive_when", "positive_class"]),
    "target transform on a classifier": (lambda c: _task(c, "payment_type", "multiclass_classification",
                                                         transform="log1p"),
                                         ["label", "'transform' does not apply to task multiclass_classification"]),
    "unknown target transform": (lambda c: _task(c, "tips", "regression", transform="sqrt"),
                                 ["label.transform", "none, log1p, z_score"]),
    "regression on a string column": (lambda c: _task(c, "payment_type", "regression"),
                                      ["label.column (payment_type)", "numeric target", "data.csv line 2"]),
    "log1p target below -1": (lambda c: _task(c, "pickup_longitude", "regression", transform="log1p"),
                              ["label.transform", "log1p needs targets > -1", "-87"]),
    "label column is a feature": (lambda c: _task(c, "company", "multiclass_classification", keep_feature=True),
                                  ["label.column", "'company' is also a source of feature 'company'"]),
    "binary metric on a multiclass task": (
        lambda c: (_task(c, "payment_type", "multiclass_classification"),
                   c["evaluation"].update(thresholds=[{"metric": "binary_accuracy", "lower_bound": 0.5}])),
        ["evaluation.thresholds[0].metric", "unknown metric for multiclass_classification", "accuracy"]),
    "max_decrease on an error metric": (
        lambda c: (_task(c, "tips", "regression"),
                   c["evaluation"].update(thresholds=[{"metric": "rmse", "max_decrease": 1.0}])),
        ["evaluation.thresholds[0].max_decrease", "'rmse' is lower-is-better", "max_increase"]),
}


def _task(cfg, column, task, keep_feature=False, **keys):
    """The taxi config with another label (and only sections every task has); the column's own
    feature and slice go, unless ``keep_feature``."""
    cfg["label"] = {"column": column, "task": task, **keys}
    cfg["evaluation"]["thresholds"] = []
    if not keep_feature:
        cfg["features"] = [f for f in cfg["features"] if f["name"] != column]
        cfg["evaluation"]["slices"] = [s for s in cfg["evaluation"]["slices"] if s != column]
    for key in ("tuning", "optimization", "deployment", "feature_selection"):
        cfg.pop(key, None)


def test_each_task_loads_with_its_defaults(tmp_path):
    from pipeline.config import default_thresholds

    cash = load_config(_write(tmp_path, lambda c: _task(c, "payment_type", "binary_classification",
                                                        positive_class="Cash")))
    assert (cash.label.name, cash.label.positive_class, cash.label.drops_missing) == ("payment_type_label", "Cash",
                                                                                      True)
    # Rows without the label are deleted (DataCleaner runs even without a cleaning section).
    assert cash.cleaning_rules()["drop_rows_missing"][0] == "payment_type" and cash.cleaning_enabled

    multi = load_config(_write(tmp_path, lambda c: (_task(c, "payment_type", "multiclass_classification"),
                                                    c.update(tuning=yaml.safe_load(TAXI_CONFIG.read_text())["tuning"]))))
    assert "Cash" in multi.label_classes and "Credit Card" in multi.label_classes
    # Classes too rare to be sure of an eval/test row are noted (Dispute 4, Pcard 3, Prcard 1 rows).
    assert [n.split("'")[3] for n in multi.notes] == ["Dispute", "Pcard", "Prcard"]
    assert "has only 1 row:" in multi.notes[2] and "NaN" in multi.notes[2]
    assert multi.cleaning_rules()["label_classes"] == "payment_type"
    assert (multi.tuning.objective, multi.tuning.direction) == ("val_accuracy", "max")

    reg = load_config(_write(tmp_path, lambda c: (_task(c, "tips", "regression", transform="log1p"),
                                                  c.update(tuning=yaml.safe_load(TAXI_CONFIG.read_text())["tuning"]))))
    assert (reg.tuning.objective, reg.tuning.direction) == ("val_rmse", "min")
    assert reg.label.transform == "log1p" and "label_classes" not in reg.cleaning_rules()
    assert default_thresholds("float32", "regression") == {"max_rel_diff": 1e-4}
    assert default_thresholds("int8", "multiclass_classification") == {"min_agreement": 0.99}
    # The threshold rule keeps its meaning: a missing tip is a negative row, not a deleted one.
    taxi = load_config(TAXI_CONFIG)
    assert not taxi.label.drops_missing and "tips" not in taxi.cleaning_rules()["drop_rows_missing"]


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_names_the_key(tmp_path, case):
    mutate, expected = BAD[case]
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_tuning_and_variants_load_with_defaults(tmp_path):
    from pipeline.config import DEFAULT_VARIANT_THRESHOLDS

    cfg = load_config(TAXI_CONFIG)
    assert cfg.tuning.algorithm == "random" and cfg.tuning.search_space["num_layers"] == [1, 2]
    assert [v.name for v in cfg.optimization.variants] == ["pruned", "qat", "student"]
    assert cfg.optimization.variant("pruned").params["target_sparsity"] == 0.8
    minimal = _write(tmp_path, lambda c: c.update(optimization={"pruning": None}, tuning=None, deployment=None))
    cfg = load_config(minimal)
    assert cfg.tuning is None
    (pruned,) = cfg.optimization.variants
    assert pruned.params == {"target_sparsity": 0.8, "fine_tune_steps": 400, "epochs": 2, "learning_rate": 0.001}
    assert pruned.thresholds == DEFAULT_VARIANT_THRESHOLDS["binary_classification"]
    assert cfg.variant_config("pruned")["custom_config"]["model"]["hidden_units"] == [64, 32]


def test_not_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_cli_reports_config_errors_without_traceback(tmp_path):
    from tests.conftest import run_cli

    path = _write(tmp_path, lambda c: _feature(c, "fare")["steps"].append("zscore"))
    proc = run_cli("validate", "--config", str(path))
    assert proc.returncode == 2
    assert "config error:" in proc.stderr and "unknown step" in proc.stderr
    assert "Traceback" not in proc.stderr
    ok = run_cli("validate", "--config", str(TAXI_CONFIG))
    assert ok.returncode == 0 and "OK (16 features" in ok.stdout


def test_full_issue3_config_loads_and_feeds_components(tmp_path):
    def mutate(c):
        c["features"] += [
            {"name": "miles_per_fare", "type": "float", "ratio": ["trip_miles", "fare"],
             "steps": [{"impute": {"strategy": "median"}}, "log1p", "z_score"]},
            {"name": "pay_x_day", "type": "string", "cross": ["payment_type", "trip_start_day"],
             "steps": [{"hash": {"buckets": 64}}]},
            {"name": "start", "type": "int", "cyclical": {"column": "trip_start_timestamp"}},  # all parts
        ]
        _feature(c, "trip_miles")["steps"] = [{"clip": {"method": "quantile", "upper": 0.999}}, "log1p", "robust"]
        c["cleaning"] = {"drop_rows_missing": ["fare"], "drop_columns_missing_fraction": 0.9,
                         "max_missing_per_row": {"columns": ["pickup_latitude", "dropoff_latitude"], "max": 1},
                         "remove_outliers": [{"column": "fare", "method": "iqr", "k": 3}]}
        c["feature_selection"] = {"method": "mutual_information", "top_k": 8}
        c["data"]["split_by"] = {"timestamp_column": "trip_start_timestamp", "eval_from": "2016-01-01",
                                 "test_from": "2016-07-01"}

    cfg = load_config(_write(tmp_path, mutate))
    assert cfg.split.temporal and cfg.split.eval_from == "2016-01-01"
    start = next(f for f in cfg.features if f.name == "start")
    assert [o.name for o in start.outputs()][:2] == ["start_hour_sin_xf", "start_hour_cos_xf"]
    assert len(start.outputs()) == 6
    rules = cfg.cleaning_rules()
    assert rules["protected_columns"] == ["tips", "fare"]
    assert rules["remove_outliers"] == [{"column": "fare", "method": "iqr", "k": 3.0}]
    assert rules["max_missing_per_row"] == {"columns": ["pickup_latitude", "dropoff_latitude"], "max": 1}
    sel = cfg.selection_config()
    assert sel["top_k"] == 8 and {"name": "company", "type": "string"} in sel["candidates"]
    assert "miles_per_fare" not in {c["name"] for c in sel["candidates"]}  # derived: not a raw column
    assert {"fare", "trip_miles", "payment_type", "trip_start_day", "trip_start_timestamp"} <= set(sel["always_keep"])


def test_parsing_never_reads_the_data(tmp_path):
    """load_config(check_data=False) reads only the YAML (folders must exist); the data checks
    (pipeline/config/data_checks.py) read the CSV, and a malformed one stops only them."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_bytes(b"fare,tips\n1.0,\xe9\n")  # not UTF-8: the reader's error
    path = _write(tmp_path, lambda c: c["data"].update(csv_dir=str(data)))
    cfg = load_config(path, check_data=False)
    assert cfg.data_dir == data and cfg.label_classes == () and cfg.notes == ()
    with pytest.raises(CsvFormatError, match=r"rows\.csv"):
        load_config(path)
