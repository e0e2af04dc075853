"""Everything that reads the data files, run by load_config after parsing (parsing alone never
touches the data): the CSV scan (csvio.reader, as ExampleGen reads it), columns and value domains
the config needs, the label against the task, and the image folder's labelled files."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from csvio import reader
from csvio.reader import Dialect
from features import feature_steps
from features import image as image_lib
from features import task as task_lib
from pipeline.config.errors import ConfigError
from pipeline.config.image import IMAGE_EXTENSIONS, ImageData


def check_data(config: Any, source: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(label classes, notes) of ``config`` (a PipelineConfig) after checking it against its data."""
    if config.image is not None:  # no CSV to scan: the image folder's labels and the features' columns
        return check_images(config, source)
    _check_against_data(config, source)
    return _check_label_against_data(config, source)


def _csv_files(data_dir: Path, span_pattern: str | None) -> list[Path]:
    return sorted(data_dir.glob(span_pattern.replace("{SPAN}", "*") if span_pattern else "*.csv"))


def _scan_data(config: Any, source: Path) -> reader.Scan:
    """Every row of every CSV, read by csvio/reader.py exactly as ExampleGen reads
    them: a malformed file raises the reader's CsvFormatError (file, line, column), as the run would."""
    pattern = config.split.span_pattern
    files = _csv_files(config.data_dir, pattern)
    if not files:
        raise ConfigError(f"{source}: data.csv_dir: no {pattern or '*.csv'} file in {config.data_dir}")
    return reader.scan([str(f) for f in files], config.csv_dialect)


def _check_against_data(config: Any, source: Path) -> None:
    """Columns the config names must be in the CSV header; steps that need positive values
    (log, Box-Cox) or values above -1 (log1p) must get them."""
    scan = _scan_data(config, source)
    header = list(scan.columns)
    needed = []
    for i, f in enumerate(config.features):
        if f.name in header and (f.ratio or f.cross or f.cyclical):
            needed_key = f"features[{i}] ({f.name})"
            raise ConfigError(f"{source}: {needed_key}: a derived feature cannot reuse the column name '{f.name}'")
        needed += [(f"features ({f.name})", c) for c in f.source_columns]
    needed.append(("label.column", config.label.column))
    if config.label.greater_than_column:
        needed.append(("label.positive_when.greater_than_column", config.label.greater_than_column))
    c = config.cleaning
    needed += [("cleaning.drop_rows_missing", col) for col in c.drop_rows_missing]
    needed += [("cleaning.max_missing_per_row.columns", col) for col in c.max_missing_columns]
    needed += [(f"cleaning.remove_outliers ({r.column})", r.column) for r in c.remove_outliers]
    if config.split.partition_column:
        needed.append(("data.split_by.column", config.split.partition_column))
    if config.split.timestamp_column:
        needed.append(("data.split_by.timestamp_column", config.split.timestamp_column))
    for key, col in needed:
        if col not in header:
            raise ConfigError(f"{source}: {key}: column '{col}' is not in the data "
                              f"({config.data_dir}); columns: {', '.join(header)}")
    numeric = [(f"features ({f.name})", f.name) for f in config.features
               if f.type in ("int", "float") and not (f.ratio or f.cross or f.cyclical)]
    numeric += [(f"features ({f.name}).ratio", c) for f in config.features if f.ratio for c in f.ratio]
    for key, col in numeric:
        if scan.types[col] == "string":
            raise ConfigError(f"{source}: {key}: column '{col}' holds text, not numbers: {scan.first_text[col]} "
                              f"(add the token to data.missing_values if it means 'no value')")
    domains = {}
    for i, f in enumerate(config.features):
        requirement = None if f.cyclical else feature_steps.domain_requirement(list(f.steps))
        if requirement:
            domains[i] = requirement
    if not domains:
        return
    files = [str(f) for f in _csv_files(config.data_dir, config.split.span_pattern)]
    for i, (step, bound) in domains.items():
        f = config.features[i]
        # Minima over the finite values only, whatever their row order (a NaN compares False with
        # everything, so min() starting from one would stay NaN); inf is refused by the scan.
        low = _ratio_minimum(files, config.csv_dialect, *f.ratio) if f.ratio else scan.minima.get(f.name)
        if low is not None and not math.isfinite(low):  # never from the reader; recomputed, not trusted
            low = _minimum(files, config.csv_dialect, (f.name,))
        # What a missing value becomes: 0 without impute, the constant, or a train statistic
        # (mean/median/most frequent), which stays in the data's domain.
        impute = next((a for s, a in f.steps if s == "impute"), None)
        if impute is None:
            fill = 0.0
        elif impute.get("strategy", "constant") == "constant":
            fill = float(impute.get("value", 0.0))
        else:
            fill = None
        if low is not None and low <= bound:
            where = _first_at_or_below(files, config.csv_dialect, tuple(f.ratio) if f.ratio else (f.name,), bound)
            raise ConfigError(f"{source}: features[{i}] ({f.name}): step '{step}' needs values > {bound:g}, "
                              f"but the data has {low:g}{where}")
        if fill is not None and fill <= bound:
            raise ConfigError(f"{source}: features[{i}] ({f.name}): step '{step}' needs values > {bound:g}, "
                              f"but missing values are filled with {fill:g}: add an impute step")


MAX_CLASSES = 1000  # more distinct labels than this is an ID or a number, not a class
RARE_CLASS_ROWS = 20  # fewer rows than this: with an 8:1:1 split, eval or test likely has none


def _count_class(values: dict[str, int], value: str, where: str) -> None:
    try:  # a numeric class column: the token an integer or number has in the graph
        key = task_lib.token(float(value))
    except ValueError:
        key = value
    values[key] = values.get(key, 0) + 1
    if len(values) > MAX_CLASSES:
        raise ConfigError(f"{where}: more than {MAX_CLASSES} distinct values: not a class label "
                          f"(for a number to predict use task: regression)")


def _check_label_against_data(config: Any, source: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The label column must fit the task: numeric for regression (and > -1 for log1p), the
    positive class present (binary), 2..MAX_CLASSES classes (multiclass). Returns the classes
    (multiclass) and notes on rare classes."""
    label = config.label
    if label.threshold_rule:
        return (), ()
    where = f"{source}: label.column ({label.column})"
    values: dict[str, int] = {}
    low = math.inf
    files = [str(f) for f in _csv_files(config.data_dir, config.split.span_pattern)]
    for header in reader.read_headers(files, config.csv_dialect):
        at = header.columns.index(label.column)
        for line, row in reader.read_rows(header, config.csv_dialect):
            value = row[at]
            if value is None:  # a missing-value token: the row is dropped before Transform
                continue
            if label.task == task_lib.REGRESSION:
                try:
                    number = reader.parse_number(value)
                except ValueError:
                    raise ConfigError(f"{where}: regression needs a numeric target, but {header.path} line {line} "
                                      f"has {value!r}") from None
                low = _finite_min(low, number)
                continue
            _count_class(values, value, where)
    if label.task == task_lib.REGRESSION:
        if low == math.inf:
            raise ConfigError(f"{where}: the column has no value")
        if label.transform == "log1p" and low <= -1:
            raise ConfigError(f"{source}: label.transform: log1p needs targets > -1, but the data has {low:g}")
        return (), ()
    if label.task == task_lib.BINARY:
        if label.positive_class not in values:
            raise ConfigError(f"{source}: label.positive_class: {label.positive_class!r} never occurs in column "
                              f"'{label.column}'; its values: {', '.join(sorted(values)[:20])}")
        if len(values) < 2:
            raise ConfigError(f"{where}: every row is {label.positive_class!r}: nothing to learn")
        return (), _rare_notes(values, label.column)
    if len(values) < 2:
        raise ConfigError(f"{where}: multiclass needs at least 2 classes; found {sorted(values)}")
    return tuple(sorted(values)), _rare_notes(values, label.column)


def _rare_notes(counts: dict[str, int], column: str) -> tuple[str, ...]:
    return tuple(f"label '{column}': class {c!r} has only {n} row{'s' * (n > 1)}: the eval or test split may have "
                 "none, and then its per-class metrics and the macro averages are NaN (a threshold on them "
                 "fails); a class only eval/test has stops the run at DataCleaner"
                 for c, n in sorted(counts.items()) if n < RARE_CLASS_ROWS)


def _finite_min(low: float, value: float | None) -> float:
    """min(low, value) ignoring a missing or non-finite value: NaN would make the minimum depend
    on row order (min(nan, x) is nan), inf is no value a domain check can use."""
    return low if value is None or not math.isfinite(value) else min(low, value)


def _value(row: dict[str, str | None], columns: tuple[str, ...]) -> float | None:
    """A row's value of one column, or the ratio of two (None: missing, text, 0 denominator)."""
    try:
        numbers = [reader.parse_number(row[c]) if row[c] is not None else None for c in columns]
    except ValueError:  # text: the type check names it
        return None
    if any(n is None for n in numbers):
        return None
    if len(numbers) == 1:
        return numbers[0]
    n, d = numbers
    return n / d if d != 0 else None


def _minimum(files: list[str], dialect: Dialect, columns: tuple[str, ...]) -> float | None:
    """The smallest finite value of a column (or of the ratio of two), None if it has none."""
    low = math.inf
    for row in reader.iter_dicts(files, dialect):
        low = _finite_min(low, _value(row, columns))
    return None if low == math.inf else low


def _ratio_minimum(files: list[str], dialect: Dialect, num: str, den: str) -> float | None:
    return _minimum(files, dialect, (num, den))


def _first_at_or_below(files: list[str], dialect: Dialect, columns: tuple[str, ...], bound: float) -> str:
    """" (<file> line <n>: <value>)" of the first finite value <= bound (only read on the error path)."""
    for header in reader.read_headers(files, dialect):
        for line, values in reader.read_rows(header, dialect):
            value = _value(dict(zip(header.columns, values, strict=True)), columns)
            if value is not None and math.isfinite(value) and value <= bound:
                return f" ({header.path} line {line}: {value:g})"
    return ""


def image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def labelled_files(data: ImageData, source: Path) -> list[tuple[Path, str]]:
    """(file, label) of every image: from sub-folder names or the manifest (which must name
    existing files)."""
    if data.manifest is None:
        out = []
        for path in image_files(data.image_dir):
            rel = path.relative_to(data.image_dir)
            if len(rel.parts) < 2:
                raise ConfigError(f"{source}: data.labels: {path} is not in a sub-folder; with labels: folders "
                                      "every image is in <image_dir>/<label>/")
            out.append((path, rel.parts[0]))
        return out
    out = []
    with data.manifest.open(newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:2]] != ["path", "label"]:
            raise ConfigError(f"{source}: data.labels.manifest: {data.manifest} must start with the header "
                                  f"'path,label', got {header}")
        for line, row in enumerate(rows, start=2):
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise ConfigError(f"{source}: data.labels.manifest: {data.manifest} line {line}: "
                                      f"needs a path and a label, got {row}")
            path = (data.image_dir / row[0].strip()).resolve()
            if not path.is_file():
                raise ConfigError(f"{source}: data.labels.manifest: {data.manifest} line {line}: "
                                      f"no such file {path}")
            out.append((path, row[1].strip()))
    return out


def check_images(config: Any, source: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The features and label fit ImageExampleGen's columns; the folder holds labelled images of
    at least two classes. Returns (classes, notes). Only file names are read (no decoding: an
    undecodable file is ImageExampleGen's error, naming the file)."""
    columns = (image_lib.IMAGE_COLUMN, image_lib.LABEL_COLUMN, *image_lib.SIZE_COLUMNS)
    images = [f for f in config.features if f.type == image_lib.IMAGE_TYPE]
    if not images:
        raise ConfigError(f"{source}: features: image data needs a feature of type image "
                              f"(name: {image_lib.IMAGE_COLUMN})")
    for i, f in enumerate(config.features):
        if f.type == image_lib.IMAGE_TYPE and f.name != image_lib.IMAGE_COLUMN:
            raise ConfigError(f"{source}: features[{i}] ({f.name}): ImageExampleGen writes the image bytes as "
                                  f"column '{image_lib.IMAGE_COLUMN}': name the feature '{image_lib.IMAGE_COLUMN}'")
        for c in f.source_columns:
            if c not in columns or c == image_lib.LABEL_COLUMN:
                raise ConfigError(f"{source}: features[{i}] ({f.name}): column '{c}' is not in image data; "
                                      f"columns: {', '.join(columns)} (label is the label)")
    if config.label.column != image_lib.LABEL_COLUMN:
        raise ConfigError(f"{source}: label.column: image data has its label in column "
                              f"'{image_lib.LABEL_COLUMN}', got '{config.label.column}'")
    if config.label.task != task_lib.MULTICLASS and config.label.task != task_lib.BINARY:
        raise ConfigError(f"{source}: label.task: image labels are classes (multiclass or binary "
                              f"classification), got {config.label.task}")
    files = labelled_files(config.image, source)
    if not files:
        raise ConfigError(f"{source}: data.image_dir: no image file ({', '.join(IMAGE_EXTENSIONS)}) in "
                              f"{config.image.image_dir}")
    counts: dict[str, int] = {}
    for _, label in files:
        counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        raise ConfigError(f"{source}: data.labels: needs at least 2 classes; found {sorted(counts)}")
    if config.label.task == task_lib.BINARY and config.label.positive_class not in counts:
        raise ConfigError(f"{source}: label.positive_class: {config.label.positive_class!r} is not a label "
                              f"of the images; labels: {', '.join(sorted(counts))}")
    notes = tuple(f"label: class {c!r} has only {n} image{'s' * (n > 1)}: the eval or test split may have none"
                  for c, n in sorted(counts.items()) if n < 20)
    return (tuple(sorted(counts)) if config.label.task == task_lib.MULTICLASS else ()), notes
