"""The one definition of how this project reads a CSV file.

Used by the CsvExampleGen executor (in Beam) and by config validation (plain Python), so
``python -m pipeline validate`` fails with exactly the error the run would hit.

Streaming only: a file is read one physical line at a time (never whole), decoded as UTF-8
line by line (so a bad byte is reported with its line and offset), and parsed with Python's
``csv`` module (RFC 4180: a quoted field may hold the delimiter, doubled quotes and newlines).

What it accepts (see docs/data.md): a UTF-8 BOM; CRLF or LF line ends; ``,`` ``;`` tab or ``|``
as the delimiter, declared or sniffed from the first 64 KB; header names with surrounding
quotes/whitespace (normalised); a leading unnamed index column as pandas ``to_csv()`` and R
``write.csv`` write it (dropped); configurable missing-value tokens. Everything else that is
wrong raises :class:`CsvFormatError` naming the file, the physical line (1-based, header = 1)
and, where it applies, the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

DELIMITERS = (",", ";", "\t", "|")
# pandas' and R's usual spellings of "no value"; compared after stripping whitespace.
DEFAULT_MISSING_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A")
# Header of the index column pandas (``to_csv()``: empty; re-saved: ``Unnamed: 0``) and R
# (``write.csv``: ``""``) write first.
INDEX_COLUMN_NAMES = ("", "Unnamed: 0")
SNIFF_BYTES = 64 * 1024
# A field longer than this is almost always an unterminated quote swallowing the file; the csv
# module stops there instead of reading the rest of the file into one field.
MAX_FIELD_CHARS = csv.field_size_limit()
_BOM = b"\xef\xbb\xbf"

# Column types, ordered so that the type of a column is the max over its values (int ⊂ float ⊂ string).
UNKNOWN, INT, FLOAT, STRING = 0, 1, 2, 3
TYPE_NAMES = {UNKNOWN: "unknown", INT: "int", FLOAT: "float", STRING: "string"}
_NON_FINITE = -1  # inf / nan spelled as a number: decided per column once its type is known
_INT64 = (-(2**63), 2**63 - 1)

Opener = Callable[[str], IO[bytes]]


class CsvFormatError(ValueError):
    """A CSV file cannot be read as a table; the message names file, line and column."""


def _open_local(path: str) -> IO[bytes]:
    return open(path, "rb")  # closed by the caller's with-block


@dataclass(frozen=True)
class Dialect:
    """How to read: ``delimiter`` None means sniff each file; ``missing_values`` are the tokens
    that mean "no value" in any column."""

    delimiter: str | None = None
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES

    def __post_init__(self) -> None:
        if self.delimiter is not None and self.delimiter not in DELIMITERS:
            raise ValueError(f"delimiter must be one of {', '.join(map(repr, DELIMITERS))}, got {self.delimiter!r}")

    def to_json(self) -> dict[str, Any]:
        return {"delimiter": self.delimiter, "missing_values": list(self.missing_values)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dialect:
        missing = data.get("missing_values")
        return cls(data.get("delimiter") or None,
                   DEFAULT_MISSING_VALUES if missing is None else tuple(str(m) for m in missing))


@dataclass(frozen=True)
class Header:
    path: str
    columns: tuple[str, ...]  # normalised, without the index column
    delimiter: str
    index_column: bool  # the file's first field is an unnamed index, dropped from every row
    line: int = 1  # physical line of the header


# ------------------------------------------------------------------ lines --
def _decoded_lines(path: str, fh: IO[bytes]) -> Iterator[str]:
    """Physical lines as text: BOM stripped, each line decoded strictly so a bad byte is named."""
    offset = 0
    for number, raw in enumerate(fh, start=1):
        if number == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise CsvFormatError(f"{path}: line 1: the file is UTF-16 (byte order mark); re-save it as UTF-8")
            if raw.startswith(_BOM):
                raw, offset = raw[len(_BOM):], len(_BOM)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start:exc.start + 1]
            raise CsvFormatError(
                f"{path}: line {number}: byte 0x{bad.hex()} at byte offset {offset + exc.start} of the file "
                f"(column {len(raw[:exc.start].decode('utf-8', 'replace')) + 1} of the line) is not UTF-8; "
                f"re-save the file as UTF-8 (e.g. 'Save as CSV UTF-8' or iconv -f latin1 -t utf-8)") from None
        offset += len(raw)


def sniff_delimiter(path: str, opener: Opener = _open_local) -> str:
    """The delimiter among DELIMITERS that csv.Sniffer finds in the first 64 KB; ',' if it cannot tell."""
    with opener(path) as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(_BOM):
        head = head[len(_BOM):]
    text = head.decode("utf-8", "replace")  # bad bytes are reported by the full read, with their line
    if len(head) == SNIFF_BYTES and "\n" in text:
        text = text[:text.rindex("\n")]  # whole lines only
    try:
        delimiter = csv.Sniffer().sniff(text, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","
    first_line = text.split("\n", 1)[0]
    return delimiter if delimiter in DELIMITERS and delimiter in first_line else ","


def _records(path: str, delimiter: str, opener: Opener) -> Iterator[tuple[int, list[str]]]:
    """(physical line where the record starts, fields) for every non-blank record, header included."""
    with opener(path) as fh:
        reader = csv.reader(_decoded_lines(path, fh), delimiter=delimiter, strict=True)
        start = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                text = str(exc)
                if "unexpected end of data" in text:
                    raise CsvFormatError(f"{path}: line {start}: a quoted field opened in the record starting "
                                         f"here is never closed (unterminated quote at end of file)") from None
                if "field larger than field limit" in text:
                    raise CsvFormatError(f"{path}: line {start}: a field longer than {MAX_FIELD_CHARS} characters "
                                         f"starts in this record: most likely an unterminated quote") from None
                raise CsvFormatError(f"{path}: line {reader.line_num}: malformed quoting ({text}); "
                                     f"a quote inside a quoted field must be doubled (\"\")") from None
            if fields and not (len(fields) == 1 and not fields[0].strip()):  # blank lines are skipped
                yield start, fields
            start = reader.line_num + 1


# ----------------------------------------------------------------- header --
def normalise_name(name: str) -> str:
    """Strip whitespace and one pair of surrounding quotes (a header quoted twice, or quoted after a space)."""
    name = name.strip()
    while len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1].strip()
    return name


def _parse_header(path: str, line: int, fields: list[str], delimiter: str) -> Header:
    names = [normalise_name(f) for f in fields]
    index = len(names) > 1 and names[0] in INDEX_COLUMN_NAMES
    if index:
        names = names[1:]
    for position, name in enumerate(names, start=2 if index else 1):
        if not name:
            raise CsvFormatError(f"{path}: line {line}: column {position} of the header has no name")
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=2 if index else 1):
        if name in seen:
            raise CsvFormatError(f"{path}: line {line}: duplicate column name '{name}' "
                                 f"(columns {seen[name]} and {position})")
        seen[name] = position
    return Header(path, tuple(names), delimiter, index, line)


def read_header(path: str, dialect: Dialect = Dialect(), opener: Opener = _open_local) -> Header:
    delimiter = dialect.delimiter or sniff_delimiter(path, opener)
    for line, fields in _records(path, delimiter, opener):
        return _parse_header(path, line, fields, delimiter)
    raise CsvFormatError(f"{path}: the file is empty (no header line)")


def check_same_header(headers: Sequence[Header]) -> tuple[str, ...]:
    """The common columns; a file whose columns differ from the first file's is named with both."""
    first = headers[0]
    for other in headers[1:]:
        if other.columns != first.columns:
            extra = [c for c in other.columns if c not in first.columns]
            lacking = [c for c in first.columns if c not in other.columns]
            what = (f"extra column(s) {', '.join(map(repr, extra))}" if extra else "") + \
                   ("; " if extra and lacking else "") + \
                   (f"missing column(s) {', '.join(map(repr, lacking))}" if lacking else "")
            raise CsvFormatError(f"{other.path}: line {other.line}: header differs from {first.path}: "
                                 f"{what or 'same columns in another order'}")
    return first.columns


# ------------------------------------------------------------------- rows --
Row = tuple[int, list[str | None]]  # (physical line, values in header order; None = missing)


def read_rows(header: Header, dialect: Dialect = Dialect(), opener: Opener = _open_local) -> Iterator[Row]:
    """Every data row of ``header.path``; a row with more or fewer fields than the header is an error,
    a file with a header and no rows too."""
    missing = frozenset(dialect.missing_values)
    width = len(header.columns) + header.index_column
    records = _records(header.path, header.delimiter, opener)
    next(records, None)  # the header, already parsed
    count = 0
    for line, fields in records:
        if len(fields) != width:
            raise CsvFormatError(f"{header.path}: line {line}: {len(fields)} field{'s' * (len(fields) != 1)}, "
                                 f"expected {width} as in the header (line {header.line})")
        if header.index_column:
            fields = fields[1:]
        count += 1
        yield line, [None if v.strip() in missing else v for v in fields]
    if not count:
        raise CsvFormatError(f"{header.path}: the file has a header but no data rows")


# ----------------------------------------------------------- type inference --
def value_type(value: str) -> int:
    """The narrowest type of one present value, as tfx_bsl's CSV decoder infers it (int64 range, then
    float, else string); inf/nan are _NON_FINITE, decided per column."""
    token = value.strip()
    try:
        # An integer out of int64 range (an id) would lose digits as a float: string, like tfx_bsl.
        return INT if _INT64[0] <= int(token) <= _INT64[1] else STRING
    except ValueError:
        pass
    try:
        number = float(token)
    except ValueError:
        return STRING
    return FLOAT if math.isfinite(number) else _NON_FINITE


@dataclass
class TypeStats:
    """Per-column type over many rows; mergeable (a Beam CombineFn accumulator)."""

    types: list[int]
    infinite: list[tuple[str, int, str] | None]  # first inf per column: (path, line, value)
    rows: int = 0
    minima: list[float | None] = field(default_factory=list)
    text: list[tuple[str, int, str] | None] = field(default_factory=list)  # first non-number per column

    @classmethod
    def empty(cls, width: int) -> TypeStats:
        return cls([UNKNOWN] * width, [None] * width, 0, [None] * width, [None] * width)

    def add(self, path: str, line: int, values: Sequence[str | None]) -> None:
        self.rows += 1
        for i, v in enumerate(values):
            if v is None:
                continue
            t = value_type(v)
            if t == _NON_FINITE:
                number = float(v)
                if math.isinf(number) and self.infinite[i] is None:
                    self.infinite[i] = (path, line, v.strip())
                continue
            if t > self.types[i]:
                self.types[i] = t
            if t == STRING:
                if self.text[i] is None:
                    self.text[i] = (path, line, v)
            else:
                number = float(v)
                low = self.minima[i]
                if low is None or number < low:
                    self.minima[i] = number

    def merge(self, other: TypeStats) -> None:
        self.rows += other.rows
        for i in range(len(self.types)):
            self.types[i] = max(self.types[i], other.types[i])
            if other.infinite[i] is not None and (self.infinite[i] is None or other.infinite[i] < self.infinite[i]):
                self.infinite[i] = other.infinite[i]
            a, b = self.minima[i], other.minima[i]
            self.minima[i] = b if a is None else a if b is None else min(a, b)
            if other.text[i] is not None and (self.text[i] is None or other.text[i] < self.text[i]):
                self.text[i] = other.text[i]

    def column_types(self, columns: Sequence[str]) -> dict[str, str]:
        """{column: int|float|string|unknown}; an inf in a numeric column is an error (TFDV statistics
        and Transform's mean/variance cannot use it), in a string column it is just text."""
        out = {}
        for name, t, inf in zip(columns, self.types, self.infinite, strict=True):
            if inf is not None and t != STRING:
                path, line, value = inf
                raise CsvFormatError(f"{path}: line {line}: column '{name}': value '{value}' is infinite in a "
                                     f"numeric column; write it as a missing value or a finite number")
            out[name] = TYPE_NAMES[t]
        return out


# ------------------------------------------------------------- whole files --
@dataclass(frozen=True)
class Scan:
    """What a full read of some files found: the header, every column's type, the row count and the
    minimum of each numeric column."""

    columns: tuple[str, ...]
    types: dict[str, str]
    rows: int
    minima: dict[str, float]
    headers: tuple[Header, ...]
    first_text: dict[str, str]  # string columns: where the first value that is not a number is


def read_headers(paths: Iterable[str], dialect: Dialect = Dialect(), opener: Opener = _open_local
                 ) -> tuple[Header, ...]:
    headers = tuple(read_header(p, dialect, opener) for p in paths)
    if not headers:
        raise CsvFormatError("no CSV file to read")
    check_same_header(headers)
    return headers


def scan(paths: Iterable[str], dialect: Dialect = Dialect(), opener: Opener = _open_local) -> Scan:
    """Read every row of every file (streaming), with exactly the checks the ExampleGen makes."""
    headers = read_headers(paths, dialect, opener)
    columns = headers[0].columns
    stats = TypeStats.empty(len(columns))
    for header in headers:
        for line, values in read_rows(header, dialect, opener):
            stats.add(header.path, line, values)
    types = stats.column_types(columns)
    minima = {c: m for c, m, t in zip(columns, stats.minima, stats.types, strict=True)
              if m is not None and t != STRING}
    first_text = {c: f"'{t[2]}' at {t[0]} line {t[1]}" for c, t in zip(columns, stats.text, strict=True) if t}
    return Scan(columns, types, stats.rows, minima, headers, first_text)


def iter_dicts(paths: Iterable[str], dialect: Dialect = Dialect(), opener: Opener = _open_local
               ) -> Iterator[dict[str, str | None]]:
    """Rows as {column: value or None}, across files."""
    for header in read_headers(paths, dialect, opener):
        for _line, values in read_rows(header, dialect, opener):
            yield dict(zip(header.columns, values, strict=True))


def parse_number(value: str) -> float | None:
    """A present value of a numeric column as a float; NaN spelled out is missing."""
    number = float(value)
    return None if math.isnan(number) else number
