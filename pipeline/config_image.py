"""The image parts of a pipeline config (pipeline/config.py calls these).

    data:
      image_dir: ../../../data/digits      # a folder of PNG/JPEG/GIF/BMP files
      labels: folders                      # label = the sub-folder name, or
      # labels: {manifest: labels.csv}     # a CSV `path,label` (paths relative to image_dir)
      splits: {train: 8, eval: 1, test: 1} # hash buckets, as for CSV
    features:
      - {name: image, type: image, steps: [{decode_image: {height: 28, width: 28, channels: 1}},
                                           per_channel_standardize]}
    label: {column: label, task: multiclass_classification}
    model: {conv: {filters: [16, 32], kernel_size: 3, pool_size: 2}, hidden_units: [64], ...}
    training: {augmentation: {rotation: 0.05, brightness: 0.1, contrast: 0.1, flip: false}, ...}

ImageExampleGen writes the columns ``image`` (the file's bytes), ``label`` and ``height`` /
``width`` / ``channels``; the config may use only those. Errors name the file and key path.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features import image as image_lib
from features import task as task_lib

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
FOLDERS = "folders"


@dataclass(frozen=True)
class ImageData:
    image_dir: Path
    manifest: Path | None = None  # None: labels are sub-folder names

    def to_json(self) -> dict[str, Any]:
        return {"labels": FOLDERS if self.manifest is None else {"manifest": self.manifest.name},
                "extensions": list(IMAGE_EXTENSIONS)}


def parse_image_data(data: Any, base: Path) -> ImageData:
    """data.image_dir and data.labels (``data`` is config.py's _Reader on the data section)."""
    if "csv_dir" in data.data:
        raise data.fail("give either csv_dir (tabular data) or image_dir (images), not both", "image_dir")
    for key in ("split_by", "span_pattern", "delimiter", "missing_values"):
        if key in data.data:
            raise data.fail(f"'{key}' applies to CSV data; image data is split by hash buckets (data.splits)", key)
    image_dir = (base / data.get("image_dir", (str,))).resolve()
    if not image_dir.is_dir():
        raise data.fail(f"directory {image_dir} does not exist", "image_dir")
    labels = data.get("labels", (str, dict), FOLDERS)
    if isinstance(labels, str):
        if labels != FOLDERS:
            raise data.fail(f"must be '{FOLDERS}' (the sub-folder name) or {{manifest: <file.csv>}}, got {labels!r}",
                            "labels")
        return ImageData(image_dir)
    r = data.child("labels")
    r.mapping({"manifest"})
    manifest = (image_dir / r.get("manifest", (str,))).resolve()
    if not manifest.is_file():
        raise r.fail(f"file {manifest} does not exist (paths are relative to data.image_dir)", "manifest")
    return ImageData(image_dir, manifest)


def parse_conv(m: Any) -> dict[str, Any]:
    """model.conv: {filters: [..], kernel_size, pool_size}."""
    c = m.child("conv")
    c.mapping({"filters", "kernel_size", "pool_size"})
    filters = c.get("filters", (list,))
    if not filters or not all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in filters):
        raise c.fail("must be a non-empty list of positive integers", "filters")
    positive = lambda v: None if v > 0 else "must be > 0"  # noqa: E731
    return {"filters": list(filters), "kernel_size": c.get("kernel_size", (int,), 3, positive),
            "pool_size": c.get("pool_size", (int,), 2, positive)}


def parse_augmentation(t: Any) -> dict[str, Any]:
    """training.augmentation: {rotation, brightness, contrast (fractions), flip (bool)}."""
    a = t.child("augmentation")
    a.mapping({"rotation", "brightness", "contrast", "flip"})
    fraction = lambda v: None if 0 <= v <= 1 else "must be in [0, 1]"  # noqa: E731
    out = {k: float(a.get(k, (int, float), 0.0, fraction)) for k in ("rotation", "brightness", "contrast")}
    out["flip"] = a.get("flip", (bool,), False)
    return out


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
                raise ConfigErrorLike(f"{source}: data.labels: {path} is not in a sub-folder; with labels: folders "
                                      "every image is in <image_dir>/<label>/")
            out.append((path, rel.parts[0]))
        return out
    out = []
    with data.manifest.open(newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:2]] != ["path", "label"]:
            raise ConfigErrorLike(f"{source}: data.labels.manifest: {data.manifest} must start with the header "
                                  f"'path,label', got {header}")
        for line, row in enumerate(rows, start=2):
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise ConfigErrorLike(f"{source}: data.labels.manifest: {data.manifest} line {line}: "
                                      f"needs a path and a label, got {row}")
            path = (data.image_dir / row[0].strip()).resolve()
            if not path.is_file():
                raise ConfigErrorLike(f"{source}: data.labels.manifest: {data.manifest} line {line}: "
                                      f"no such file {path}")
            out.append((path, row[1].strip()))
    return out


class ConfigErrorLike(ValueError):
    """Raised here; config.py re-raises it as its ConfigError (same message)."""


def check_against_data(config: Any, source: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The features and label fit ImageExampleGen's columns; the folder holds labelled images of
    at least two classes. Returns (classes, notes). Only file names are read (no decoding: an
    undecodable file is ImageExampleGen's error, naming the file)."""
    columns = (image_lib.IMAGE_COLUMN, image_lib.LABEL_COLUMN, *image_lib.SIZE_COLUMNS)
    images = [f for f in config.features if f.type == image_lib.IMAGE_TYPE]
    if not images:
        raise ConfigErrorLike(f"{source}: features: image data needs a feature of type image "
                              f"(name: {image_lib.IMAGE_COLUMN})")
    for i, f in enumerate(config.features):
        if f.type == image_lib.IMAGE_TYPE and f.name != image_lib.IMAGE_COLUMN:
            raise ConfigErrorLike(f"{source}: features[{i}] ({f.name}): ImageExampleGen writes the image bytes as "
                                  f"column '{image_lib.IMAGE_COLUMN}': name the feature '{image_lib.IMAGE_COLUMN}'")
        for c in f.source_columns:
            if c not in columns or c == image_lib.LABEL_COLUMN:
                raise ConfigErrorLike(f"{source}: features[{i}] ({f.name}): column '{c}' is not in image data; "
                                      f"columns: {', '.join(columns)} (label is the label)")
    if config.label.column != image_lib.LABEL_COLUMN:
        raise ConfigErrorLike(f"{source}: label.column: image data has its label in column "
                              f"'{image_lib.LABEL_COLUMN}', got '{config.label.column}'")
    if config.label.task != task_lib.MULTICLASS and config.label.task != task_lib.BINARY:
        raise ConfigErrorLike(f"{source}: label.task: image labels are classes (multiclass or binary "
                              f"classification), got {config.label.task}")
    files = labelled_files(config.image, source)
    if not files:
        raise ConfigErrorLike(f"{source}: data.image_dir: no image file ({', '.join(IMAGE_EXTENSIONS)}) in "
                              f"{config.image.image_dir}")
    counts: dict[str, int] = {}
    for _, label in files:
        counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        raise ConfigErrorLike(f"{source}: data.labels: needs at least 2 classes; found {sorted(counts)}")
    if config.label.task == task_lib.BINARY and config.label.positive_class not in counts:
        raise ConfigErrorLike(f"{source}: label.positive_class: {config.label.positive_class!r} is not a label "
                              f"of the images; labels: {', '.join(sorted(counts))}")
    notes = tuple(f"label: class {c!r} has only {n} image{'s' * (n > 1)}: the eval or test split may have none"
                  for c, n in sorted(counts.items()) if n < 20)
    return (tuple(sorted(counts)) if config.label.task == task_lib.MULTICLASS else ()), notes
