"""ImageExampleGen's executor: image files -> tf.Examples, streamed through Beam.

Each example holds::

    image     bytes   the file's bytes as stored (PNG, JPEG, GIF, BMP): Transform decodes them
    label     bytes   the sub-folder name, or the manifest's label
    height    int64   the decoded image's size and channel count (1 grey, 2 grey+alpha, 3 RGB,
    width     int64   4 RGBA), so StatisticsGen / SchemaGen / ExampleValidator see image sizes and
    channels  int64   a schema's int_domain flags a wrong-size file

Only the list of (file, label) is built up front; the files are read and decoded (with
TensorFlow's decoder, the one Transform uses) inside the Beam pipeline, one at a time. A file
TensorFlow cannot decode stops the run with ImageFormatError naming the file.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs

from components.csv_example_gen.executor import custom_params
from components.image_example_gen import ImageFormatError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")


def _read(path: str) -> bytes:
    with beam.io.filesystems.FileSystems.open(path) as fh:
        return fh.read()


def folder_entries(base: str, pattern: str, extensions: tuple[str, ...]) -> list[tuple[str, str]]:
    """(path, label) of every image matching ``base/pattern``; the label is its folder's name."""
    files = sorted(f for f in fileio.glob(os.path.join(base, pattern)) if f.lower().endswith(extensions))
    if not files:
        raise ImageFormatError(f"ImageExampleGen: no image file ({', '.join(extensions)}) matches "
                               f"{os.path.join(base, pattern)}")
    return [(f, os.path.basename(os.path.dirname(f))) for f in files]


def manifest_entries(base: str, manifest: str) -> list[tuple[str, str]]:
    """(path, label) rows of a CSV manifest ``path,label`` (paths relative to ``base``)."""
    path = manifest if os.path.isabs(manifest) else os.path.join(base, manifest)
    rows = list(csv.reader(io.StringIO(_read(path).decode("utf-8-sig"))))
    if not rows or [h.strip() for h in rows[0][:2]] != ["path", "label"]:
        raise ImageFormatError(f"ImageExampleGen: {path}: the manifest must start with the header 'path,label'")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise ImageFormatError(f"ImageExampleGen: {path} line {line}: needs a path and a label, got {row}")
        out.append((os.path.join(base, row[0].strip()), row[1].strip()))
    if not out:
        raise ImageFormatError(f"ImageExampleGen: {path}: the manifest lists no image")
    return out


def to_example(entry: tuple[str, str]) -> tf.train.Example:
    """One file as a tf.Example; ImageFormatError (naming the file) if it cannot be read or decoded."""
    path, label = entry
    try:
        data = _read(path)
    except Exception as exc:
        raise ImageFormatError(f"ImageExampleGen: cannot read {path}: {exc}") from None
    try:
        shape = tf.io.decode_image(data, expand_animations=False).shape
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
        reason = (exc.message or str(exc)).strip().splitlines()[0]
        raise ImageFormatError(f"ImageExampleGen: {path} (label {label!r}) is not a decodable image "
                               f"(PNG, JPEG, GIF or BMP): {reason}") from None
    height, width, channels = (int(d) for d in shape)

    def ints(v: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()])),
        "height": ints(height), "width": ints(width), "channels": ints(channels)}))


@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
class _ImagesToExample(beam.PTransform):
    """Image files under ``input_base`` matching ``split_pattern`` (or listed by the manifest it
    names) -> tf.Examples."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        super().__init__()
        self._base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        self._pattern = split_pattern
        params = custom_params(exec_properties)
        self._manifest = params.get("labels") == "manifest"
        self._extensions = tuple(params.get("extensions", EXTENSIONS))

    def expand(self, pipeline: beam.Pipeline) -> beam.pvalue.PCollection:
        entries = (manifest_entries(self._base, self._pattern) if self._manifest
                   else folder_entries(self._base, self._pattern, self._extensions))
        labels = sorted({label for _, label in entries})
        logging.info("ImageExampleGen: %d images, %d labels (%s)", len(entries), len(labels), ", ".join(labels[:20]))
        return (pipeline
                | "ListFiles" >> beam.Create(entries)
                | "Reshuffle" >> beam.Reshuffle()
                | "ToTFExample" >> beam.Map(to_example))


class Executor(BaseExampleGenExecutor):
    """ImageExampleGen executor."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ImagesToExample
