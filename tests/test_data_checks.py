"""pipeline/config/data_checks.py on NaN and inf: the value-domain checks (log, Box-Cox, log1p of
a regression target) must refuse a non-positive value wherever it is in the column. A NaN in the
first row once made the column's minimum NaN (min(nan, x) is nan, and nan <= 0 is False), so a
later 0 or negative value passed depending on row order. Fast: load_config on a 40-row CSV."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from csvio.reader import CsvFormatError
from pipeline.config import ConfigError, load_config
from tests.conftest import derived_config, sample_rows, write_csv

NAN_IS_A_NUMBER = {"missing_values": [""]}  # "nan" is then a float NaN in the column, not a missing value
NAN_IS_MISSING: dict = {}  # the reader's default tokens: "nan" means no value


def _config(tmp_path: Path, edits: dict[int, dict[str, str]], features: list[dict], data: dict,
            label: dict | None = None, **overrides) -> Path:
    """The taxi config on 40 real taxi rows with ``edits`` ({row index: {column: value}}); each of
    ``features`` replaces the feature of its name or is appended."""
    header, rows = _positive_rows()
    for i, values in edits.items():
        rows[i].update(values)
    csv_dir = tmp_path / "data"
    write_csv(csv_dir / "data.csv", header, rows)
    path = derived_config(tmp_path, csv_dir, cleaning=None, feature_selection=None, **overrides)
    cfg = yaml.safe_load(path.read_text())
    names = [f["name"] for f in cfg["features"]]
    for f in features:
        if f["name"] in names:
            cfg["features"][names.index(f["name"])] = f
        else:
            cfg["features"].append(f)
    cfg["data"].update(data)
    if label:
        cfg["label"] = label
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _positive_rows() -> tuple[list[str], list[dict[str, str]]]:
    """40 real taxi rows whose trip_miles, fare and tips are all > 0 (the checks' controls)."""
    header, rows = sample_rows(400, seed=3)
    keep = [dict(r) for r in rows if all(r[c] and float(r[c]) > 0 for c in ("trip_miles", "fare", "tips"))]
    return header, keep[:40]


BOX_COX = [{"name": "trip_miles", "type": "float", "steps": [{"impute": {"strategy": "mean"}}, "box_cox"]}]
LOG_OF_RATIO = [{"name": "fare_per_mile", "type": "float", "ratio": ["fare", "trip_miles"],
                 "steps": [{"impute": {"strategy": "mean"}}, "log"]}]


@pytest.mark.parametrize("data", [NAN_IS_A_NUMBER, NAN_IS_MISSING], ids=["nan-is-a-number", "nan-is-missing"])
@pytest.mark.parametrize("order", ["nan-first", "nan-later"])
def test_non_positive_value_after_a_nan_is_refused_whatever_the_row_order(tmp_path, data, order):
    # Fails if the minimum is taken with a NaN in it (first row NaN, row 7 = 0: the 0 is missed).
    nan_row, zero_row = (0, 7) if order == "nan-first" else (7, 0)
    config = _config(tmp_path, {nan_row: {"trip_miles": "nan"}, zero_row: {"trip_miles": "0"}}, BOX_COX, data)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    message = str(err.value)
    for words in ("features[0] (trip_miles)", "'box_cox' needs values > 0", "the data has 0",
                  f"data.csv line {zero_row + 2}"):  # line 1 is the header
        assert words in message, message


@pytest.mark.parametrize("data", [NAN_IS_A_NUMBER, NAN_IS_MISSING], ids=["nan-is-a-number", "nan-is-missing"])
def test_negative_ratio_after_a_nan_is_refused(tmp_path, data):
    # The ratio's minimum is computed in data_checks itself (fare / trip_miles per row).
    edits = {0: {"fare": "nan", "trip_miles": "2"}, 9: {"fare": "-3", "trip_miles": "1.5"}}
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, edits, LOG_OF_RATIO, data))
    message = str(err.value)
    for words in ("(fare_per_mile)", "'log' needs values > 0", "the data has -2", "data.csv line 11"):
        assert words in message, message


def test_regression_target_below_minus_one_after_a_nan_is_refused(tmp_path):
    label = {"name": "tips_amount", "column": "tips", "task": "regression", "transform": "log1p"}
    config = _config(tmp_path, {0: {"tips": "nan"}, 5: {"tips": "-4"}}, [], NAN_IS_A_NUMBER, label=label,
                     evaluation={"thresholds": [{"metric": "mae", "upper_bound": 100.0}]})
    with pytest.raises(ConfigError, match=r"label\.transform: log1p needs targets > -1, but the data has -4"):
        load_config(config)


def test_inf_in_a_checked_column_is_refused_naming_column_file_and_line(tmp_path):
    # inf is no finite minimum: the scan refuses it (as ExampleGen would), wherever it is.
    config = _config(tmp_path, {0: {"trip_miles": "nan"}, 12: {"trip_miles": "inf"}}, BOX_COX, NAN_IS_A_NUMBER)
    with pytest.raises(CsvFormatError) as err:
        load_config(config)
    message = str(err.value)
    for words in ("data.csv", "line 14", "column 'trip_miles'", "'inf' is infinite"):
        assert words in message, message


def test_only_positive_values_and_nans_pass(tmp_path):
    # The control: NaN (missing) rows alone do not make the check refuse positive data.
    config = _config(tmp_path, {0: {"trip_miles": "nan"}, 7: {"trip_miles": "nan"}}, BOX_COX, NAN_IS_A_NUMBER)
    assert load_config(config).features[0].steps[-1][0] == "box_cox"
