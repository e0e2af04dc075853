"""`python -m pipeline predict --csv` reads rows exactly as the pipeline reads its data."""

from __future__ import annotations

import math

import pytest

from serving.client import csv_columns, prediction_table

INPUTS = {"bill_length_mm": "DT_FLOAT", "species": "DT_STRING", "year": "DT_DOUBLE"}


def test_a_pandas_semicolon_file_with_bom_crlf_and_na_reads_like_the_pipeline(tmp_path):
    # pandas to_csv(sep=";", na_rep="NA", encoding="utf-8-sig", lineterminator="\r\n") with its index.
    path = tmp_path / "rows.csv"
    path.write_bytes('\ufeff;species;bill_length_mm;year;island\r\n0;Adelie;39.1;2007;Torgersen\r\n'
                     '1;NA;NA;2008;Biscoe\r\n'.encode())
    n, columns = csv_columns(path, INPUTS)
    assert n == 2
    assert columns["species"] == ["Adelie", ""]  # missing string -> ""
    assert columns["bill_length_mm"][0] == pytest.approx(39.1) and math.isnan(columns["bill_length_mm"][1])
    assert columns["year"] == [2007.0, 2008.0]


def test_errors_name_the_line_column_and_a_misread_header(tmp_path):
    text = tmp_path / "text.csv"
    text.write_text("species,bill_length_mm,year\nAdelie,39.1,2007\nGentoo,long,2008\n")
    with pytest.raises(ValueError, match=r"text.csv line 3: column 'bill_length_mm': 'long' is not a number"):
        csv_columns(text, INPUTS)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("species,bill_length_mm,year\nAdelie,39.1,2007,extra\n")
    with pytest.raises(ValueError, match=r"ragged.csv: line 2: 4 fields, expected 3"):
        csv_columns(ragged, INPUTS)


def test_prediction_table_names_the_predicted_class():
    import numpy as np

    lines = prediction_table({"classes": np.array([[b"A", b"N", b"Y"]] * 2),
                              "scores": np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]),
                              "probabilities": np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])})
    assert lines == ["predicted_class,A,N,Y", "N,0.1,0.7,0.2", "A,0.5,0.2,0.3"]
    assert prediction_table({"outputs": np.array([[3101.5], [420.25]])}) == ["outputs", "3101.5", "420.25"]
