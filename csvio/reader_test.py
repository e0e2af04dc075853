"""reader.py on a corpus of awkward and malformed CSV files (tests/data/csv_corpus/, byte-exact).

Each readable file: the exact header, column types and values (None = missing) with their physical
line numbers. Each malformed file: the exact CsvFormatError message (file, line, column)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from csvio import reader
from csvio.reader import CsvFormatError, Dialect

DEFAULT = Dialect()
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "csv_corpus"


def _read(*names: str, dialect: Dialect = DEFAULT) -> tuple[reader.Scan, list[tuple[int, list]]]:
    paths = [str(CORPUS / n) for n in names]
    scan = reader.scan(paths, dialect)
    rows = [row for h in scan.headers for row in reader.read_rows(h, dialect)]
    return scan, rows


def _error(name: str, dialect: Dialect = DEFAULT) -> str:
    path = CORPUS / name
    with pytest.raises(CsvFormatError) as info:
        reader.scan([str(path)], dialect)
    return str(info.value).replace(str(path), name)


def test_r_write_csv_quoted_header_index_column_and_na():
    scan, rows = _read("r_write_csv.csv")
    # The "" index column is dropped, quotes are gone from names, NA is missing in a float column.
    assert scan.headers[0].index_column
    assert scan.types == {"id": "int", "fare": "float", "payment type": "string"}
    assert rows == [(2, ["1", "12.5", "Cash"]), (3, ["2", None, "Credit Card"]), (4, ["3", "7", "Cash"])]
    assert scan.rows == 3
    assert scan.minima == {"id": 1.0, "fare": 7.0}


def test_pandas_unnamed_index_column_dropped():
    scan, rows = _read("pandas_index.csv")
    assert scan.columns == ("a", "b") and scan.headers[0].index_column
    assert rows == [(2, ["1", "x"]), (3, ["2", "y"])]


def test_bom_and_crlf():
    scan, rows = _read("bom_crlf.csv")
    assert scan.columns == ("a", "b")  # no '\ufeff' glued to the first name
    assert rows == [(2, ["1", "x"]), (3, ["2", "y"])]  # no '\r' left in values
    assert scan.types == {"a": "int", "b": "string"}


def test_semicolon_sniffed_with_decimal_points_and_quoted_delimiter():
    scan, rows = _read("semicolon.csv")
    assert scan.headers[0].delimiter == ";"
    assert scan.types == {"city": "string", "price": "float", "qty": "int"}
    assert rows == [(2, ["Berlin", "1.5", "3"]), (3, ["Paris; FR", "2.25", "4"])]


def test_tab_sniffed_comma_inside_a_value():
    scan, rows = _read("tab.csv")
    assert scan.headers[0].delimiter == "\t"
    assert scan.columns == ("a", "b c")
    assert rows == [(2, ["1", "x, y"]), (3, ["2", "z"])]


def test_declared_delimiter_wins_over_sniffing():
    scan, _ = _read("semicolon.csv", dialect=Dialect(delimiter=";"))
    assert scan.columns == ("city", "price", "qty")
    # Declared ',' on the ';' file: read with ',' (no sniffing), so the quoted "Paris; FR" followed by
    # ';' is malformed quoting, named with its line.
    assert _error("semicolon.csv", Dialect(delimiter=",")) == (
        "semicolon.csv: line 3: malformed quoting (',' expected after '\"'); "
        "a quote inside a quoted field must be doubled (\"\")")


def test_quoted_delimiter_and_doubled_quotes():
    _, rows = _read("quoted_delimiter.csv")
    assert rows == [(2, ["1", "a, b"]), (3, ["2", 'say "hi"'])]


def test_quoted_newline_keeps_physical_line_numbers():
    header = reader.read_header(str(CORPUS / "quoted_newline.csv"))
    # The first row spans lines 2-4; the next starts on line 5, the ragged one on line 6.
    assert list(itertools.islice(reader.read_rows(header), 2)) == [(2, ["1", "one\ntwo\nthree"]), (5, ["2", "ok"])]
    assert _error("quoted_newline.csv") == "quoted_newline.csv: line 6: 3 fields, expected 2 as in the header (line 1)"


def test_missing_tokens_leave_a_numeric_column_numeric():
    scan, rows = _read("missing_tokens.csv")
    assert scan.types == {"x": "float", "y": "string"}  # NA, N/A, NaN, null, '', NULL, None, #N/A are missing
    assert [v[0] for _, v in rows] == ["1", None, None, None, None, None, None, None, None, " 2.5 "]
    assert scan.minima == {"x": 1.0}


def test_missing_tokens_are_configurable():
    # Only '' is missing: 'NA' and the others are text, so x becomes a string column.
    scan, rows = _read("missing_tokens.csv", dialect=Dialect(missing_values=("",)))
    assert scan.types["x"] == "string"
    assert rows[1] == (3, ["NA", "b"])


def test_nan_spelled_out_is_missing_in_a_numeric_column_and_never_a_minimum(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("x,s\nnan,inf\n-1.5,a\n2,nan\n")
    # 'nan' is not a missing token here: in numeric x it is still no value, in string s plain text
    # (as is 'inf' there: only a numeric column rejects inf).
    dialect = Dialect(missing_values=("",))
    scan = reader.scan([str(path)], dialect)
    assert scan.types == {"x": "float", "s": "string"}
    assert scan.minima == {"x": -1.5}
    assert reader.parse_number("nan") is None and reader.parse_number("-1.5") == -1.5


def test_int_beyond_int64_is_a_string_like_tfx_bsl(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("id,n\n99999999999999999999,1\n")
    assert reader.scan([str(path)]).types == {"id": "string", "n": "int"}


def test_empty_file():
    assert _error("empty.csv") == "empty.csv: the file is empty (no header line)"


def test_header_only():
    assert _error("header_only.csv") == "header_only.csv: the file has a header but no data rows"


def test_ragged_rows():
    assert _error("ragged_many.csv") == "ragged_many.csv: line 3: 3 fields, expected 2 as in the header (line 1)"
    assert _error("ragged_few.csv") == "ragged_few.csv: line 3: 1 field, expected 2 as in the header (line 1)"


def test_non_utf8_byte_named_with_line_and_offset():
    assert _error("latin1.csv") == (
        "latin1.csv: line 3: byte 0xe9 at byte offset 17 of the file (column 4 of the line) is not UTF-8; "
        "re-save the file as UTF-8 (e.g. 'Save as CSV UTF-8' or iconv -f latin1 -t utf-8)")


def test_unterminated_quote():
    assert _error("unterminated.csv") == (
        "unterminated.csv: line 3: a quoted field opened in the record starting here is never closed "
        "(unterminated quote at end of file)")


def test_inf_in_numeric_column():
    assert _error("inf.csv") == ("inf.csv: line 3: column 'x': value '-inf' is infinite in a numeric column; "
                                 "write it as a missing value or a finite number")


def test_duplicate_header():
    assert _error("duplicate_header.csv") == "duplicate_header.csv: line 1: duplicate column name 'a' (columns 1 and 3)"


def test_empty_header_name_after_first_position():
    assert _error("empty_name.csv") == "empty_name.csv: line 1: column 2 of the header has no name"


def test_extra_column_in_second_file_names_both_files():
    part1, part2 = str(CORPUS / "two_files" / "part1.csv"), str(CORPUS / "two_files" / "part2.csv")
    with pytest.raises(CsvFormatError) as info:
        reader.scan([part1, part2])
    assert str(info.value) == f"{part2}: line 1: header differs from {part1}: extra column(s) 'c'"


def test_header_names_normalised():
    assert [reader.normalise_name(n) for n in (' "a b" ', "'x'", '""y""', "plain")] == ["a b", "x", "y", "plain"]


def test_dialect_round_trips_and_rejects_unknown_delimiter():
    d = Dialect(";", ("", "-"))
    assert Dialect.from_json(d.to_json()) == d
    assert Dialect.from_json({}) == Dialect()
    with pytest.raises(ValueError, match="delimiter must be one of"):
        Dialect(":")


def test_value_types_follow_tfx_bsl():
    assert [reader.value_type(v) for v in ("3", "-3", " 4 ", "3.0", "1e5", "abc", "1,5")] == [
        reader.INT, reader.INT, reader.INT, reader.FLOAT, reader.FLOAT, reader.STRING, reader.STRING]
