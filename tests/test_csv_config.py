"""Config validation reads the data through csvio/reader.py: the same dialect,
the same named errors as the run, before any component starts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from csvio.reader import CsvFormatError, Dialect
from pipeline.config import ConfigError, load_config
from tests.conftest import derived_config, run_cli, sample_rows

NUMERIC = {"fare", "trip_miles", "trip_seconds", "tips", "trip_start_timestamp", "trip_start_hour"}


def _r_style_csv(path: Path, n: int = 300, delimiter: str = ",", missing: str = "NA") -> tuple[list[str], list]:
    """Taxi rows as R write.csv writes them: quoted header with a "" index column, strings quoted,
    missing values as NA."""
    header, rows = sample_rows(n, seed=3)
    path.parent.mkdir(parents=True, exist_ok=True)

    def cell(h: str, v: str) -> str:
        if v == "":
            return missing
        return v if h in NUMERIC or h.endswith(("_area", "_tract", "tude", "_day", "_month")) \
            else '"' + v.replace('"', '""') + '"'

    lines = [delimiter.join(['""'] + [f'"{h}"' for h in header])]
    lines += [delimiter.join([f'"{i}"'] + [cell(h, row[h]) for h in header]) for i, row in enumerate(rows, start=1)]
    path.write_text("\n".join(lines) + "\n")
    return header, rows


def test_r_style_csv_validates_with_normalised_names(tmp_path):
    _r_style_csv(tmp_path / "data" / "data.csv", delimiter=";")
    cfg = load_config(derived_config(tmp_path, tmp_path / "data"))  # sniffed ';', NA missing, index dropped
    assert cfg.csv_dialect == Dialect()
    # The same file with NA not a missing token: the type check names the first NA of a numeric feature.
    path = derived_config(tmp_path, tmp_path / "data", data={"missing_values": [""], "delimiter": ";"})
    with pytest.raises(ConfigError, match=r"column '\w+' holds text, not numbers: 'NA' at .*data\.csv line \d+"):
        load_config(path)


def test_malformed_csv_raises_the_named_reader_error(tmp_path):
    _r_style_csv(tmp_path / "data" / "data.csv", n=50)
    with (tmp_path / "data" / "data.csv").open("a") as fh:
        fh.write('"51",1,2\n')  # line 52: header + 50 rows before it
    with pytest.raises(CsvFormatError) as info:
        load_config(derived_config(tmp_path, tmp_path / "data"))
    # 19 fields: the index column and 18 taxi columns.
    assert str(info.value) == (f"{tmp_path / 'data' / 'data.csv'}: line 52: 3 fields, "
                               f"expected 19 as in the header (line 1)")


def test_dialect_keys_parsed_and_checked(tmp_path):
    _r_style_csv(tmp_path / "data" / "data.csv", delimiter="\t", missing="-")
    cfg = load_config(derived_config(tmp_path, tmp_path / "data", data={"delimiter": "tab", "missing_values": ["-"]}))
    assert cfg.csv_dialect == Dialect("\t", ("-",))
    # ...and the pipeline hands them to the ExampleGen, whose executor reads them back.
    from components.csv_example_gen.executor import custom_params
    from pipeline.pipeline_def import example_gen

    assert custom_params(example_gen(cfg).exec_properties) == {"delimiter": "\t", "missing_values": ["-"]}
    with pytest.raises(ConfigError, match=r"data\.delimiter: must be one of"):
        load_config(derived_config(tmp_path, tmp_path / "data", data={"delimiter": ":"}))
    path = derived_config(tmp_path, tmp_path / "data")
    raw = path.read_text().replace("data:\n", "data:\n  missing_values: [NA, null]\n", 1)
    path.write_text(raw)  # unquoted YAML null is None, not the text 'null'
    with pytest.raises(ConfigError, match=r"data\.missing_values: must be a list of strings"):
        load_config(path)


def test_nan_never_hides_a_minimum(tmp_path):
    """A 'NaN' before a negative value used to make the column minimum NaN, so log1p on -5 passed validate."""
    header, rows = sample_rows(100, seed=4)
    rows[0]["trip_miles"], rows[1]["trip_miles"] = "NaN", "-5"
    with (tmp_path / "data.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    path = derived_config(tmp_path, tmp_path, data={"missing_values": [""]})  # NaN parsed as a number
    with pytest.raises(ConfigError, match=r"trip_miles\): step 'log1p' needs values > -1, but the data has -5"):
        load_config(path)


def test_schema_key_optional(tmp_path):
    from pipeline.pipeline_def import create_pipeline

    _r_style_csv(tmp_path / "data" / "data.csv")
    cfg = load_config(derived_config(tmp_path, tmp_path / "data", schema=None))
    assert cfg.schema_path is None
    ids = [c.id for c in create_pipeline(cfg, until="ExampleValidator").components]
    assert "SchemaGen" in ids and "ImportSchemaGen" not in ids  # inferred, not imported
    example_gen = create_pipeline(cfg, until="CsvExampleGen").components[0]
    # Our executor, with the config's dialect in custom_config, under the stock id.
    assert example_gen.id == "CsvExampleGen"
    assert example_gen.executor_spec.executor_class.__module__ == "components.csv_example_gen.executor"


def test_cli_validate_and_run_print_the_data_error_without_traceback(tmp_path):
    data = tmp_path / "data"
    _r_style_csv(data / "data.csv", n=20)
    raw = (data / "data.csv").read_bytes()
    assert b'"Cash"' in raw
    (data / "data.csv").write_bytes(raw.replace(b'"Cash"', b'"Caf\xe9"', 1))  # a latin-1 byte
    config = derived_config(tmp_path, data)
    for command in ("validate", "run"):
        proc = run_cli(command, "--config", str(config), "--output-root", str(tmp_path / "out"), timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines()[-1].startswith(f"data error: {data / 'data.csv'}: line ")
        assert "byte 0xe9" in proc.stderr and "re-save the file as UTF-8" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert "started" not in proc.stdout  # no component ran
    assert not (tmp_path / "out" / "taxi" / "pipeline_root").exists()
