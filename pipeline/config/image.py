"""The image parts of a pipeline config (data.image_dir, data.labels; model.conv and
training.augmentation are declared in model.py; the folder is checked in data_checks.py).

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import model
from pipeline.config.errors import Reader

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
FOLDERS = "folders"


@dataclass(frozen=True)
class ImageData:
    image_dir: Path
    manifest: Path | None = None  # None: labels are sub-folder names

    def to_json(self) -> dict[str, Any]:
        return {"labels": FOLDERS if self.manifest is None else {"manifest": self.manifest.name},
                "extensions": list(IMAGE_EXTENSIONS)}


def parse_image_data(data: Reader, m: model.Data, base: Path) -> ImageData:
    """data.image_dir and data.labels (types: model.Data); only names are checked, no file is read."""
    if m.csv_dir is not None:
        raise data.fail("give either csv_dir (tabular data) or image_dir (images), not both", "image_dir")
    for key in ("split_by", "span_pattern", "delimiter", "missing_values"):
        if key in data.data:
            raise data.fail(f"'{key}' applies to CSV data; image data is split by hash buckets (data.splits)", key)
    if m.image_dir is None:
        raise data.fail("missing required key", "image_dir")
    image_dir = (base / m.image_dir).resolve()
    if not image_dir.is_dir():
        raise data.fail(f"directory {image_dir} does not exist", "image_dir")
    if not isinstance(m.labels, model.Manifest):  # absent or "folders"
        return ImageData(image_dir)
    manifest = (image_dir / m.labels.manifest).resolve()
    if not manifest.is_file():
        raise data.child("labels").fail(f"file {manifest} does not exist (paths are relative to data.image_dir)",
                                        "manifest")
    return ImageData(image_dir, manifest)
