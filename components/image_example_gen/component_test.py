"""ImageExampleGen in real TFX pipelines (LocalDagRunner) on real image files written here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.proto import example_gen_pb2

from components.image_example_gen import ImageExampleGen, ImageFormatError
from components.image_example_gen.executor import to_example
from tests.conftest import run_example_gen


def _png(path: Path, size: tuple[int, int], mode: str = "L", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path.read_bytes()


def _examples(examples_dir: Path) -> list[tf.train.Example]:
    out = []
    for path in sorted(examples_dir.glob("Split-*/*.gz")):
        out += [tf.train.Example.FromString(r.numpy())
                for r in tf.data.TFRecordDataset(str(path), compression_type="GZIP")]
    return out


def _split_config() -> example_gen_pb2.Output:
    return example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)]))


def test_folders_become_examples_with_bytes_label_and_size(tmp_path):
    # Checks: every image file under <label>/ becomes one example holding its exact bytes, the
    # folder name as label and the decoded height/width/channels (an RGB file says 3); files that
    # are not images (a README) are not read; both splits are written.
    data = tmp_path / "data"
    written = {}
    for i, label in enumerate(("cat", "dog")):
        (data / label).mkdir(parents=True)
        for k in range(6):
            path = data / label / f"{k}.png"
            written[_png(path, (5 + k, 4), seed=k + 10 * i)] = (label, 4, 5 + k, 1)
    rgb = data / "dog" / "rgb.jpg"
    Image.fromarray(np.full((3, 7, 3), 200, np.uint8), "RGB").save(rgb)
    written[rgb.read_bytes()] = ("dog", 3, 7, 3)
    (data / "README.md").write_text("not an image")
    (data / "cat" / "notes.txt").write_text("not an image either")
    gen = ImageExampleGen(str(data), output_config=_split_config())
    examples_dir = run_example_gen(tmp_path, "folders", gen)
    assert sorted(p.name for p in examples_dir.iterdir()) == ["Split-eval", "Split-train"]
    got = {}
    for ex in _examples(examples_dir):
        f = ex.features.feature
        assert sorted(f) == ["channels", "height", "image", "label", "width"]
        got[f["image"].bytes_list.value[0]] = (f["label"].bytes_list.value[0].decode(), f["height"].int64_list.value[0],
                                               f["width"].int64_list.value[0], f["channels"].int64_list.value[0])
    assert got == written


def test_manifest_labels(tmp_path):
    # Checks: labels: {manifest} takes each file's label from the CSV (not from its folder).
    data = tmp_path / "data"
    (data / "imgs").mkdir(parents=True)
    for k in range(4):
        _png(data / "imgs" / f"{k}.png", (3, 3), seed=k)
    (data / "labels.csv").write_text("path,label\n" + "".join(f"imgs/{k}.png,{'even' if k % 2 == 0 else 'odd'}\n"
                                                            for k in range(4)))
    examples_dir = run_example_gen(tmp_path, "manifest",
                                   ImageExampleGen(str(data), "labels.csv", output_config=_split_config()))
    labels = sorted(ex.features.feature["label"].bytes_list.value[0].decode() for ex in _examples(examples_dir))
    assert labels == ["even", "even", "odd", "odd"]


def test_undecodable_file_stops_the_run_naming_the_file(tmp_path):
    # Checks: a .png that is not an image fails the component with ImageFormatError's message,
    # which names the file and its label (not a bare decoder traceback).
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "b").mkdir(parents=True)
    _png(data / "a" / "ok.png", (4, 4))
    _png(data / "b" / "ok.png", (4, 4), seed=1)
    (data / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    with pytest.raises(Exception) as info:
        run_example_gen(tmp_path, "broken", ImageExampleGen(str(data), output_config=_split_config()))
    text = str(info.value)
    assert str(data / "b" / "broken.png") in text and "not a decodable image" in text, text


def test_to_example_error_is_an_image_format_error(tmp_path):
    # Checks: the executor's per-file function raises ImageFormatError naming the file and label.
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(ImageFormatError, match=r"x\.jpg \(label 'seven'\) is not a decodable image"):
        to_example((str(bad), "seven"))
    good = tmp_path / "g.png"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((2, 9), np.uint8), "L").save(buf, format="PNG")
    good.write_bytes(buf.getvalue())
    f = to_example((str(good), "zero")).features.feature
    assert (f["height"].int64_list.value[0], f["width"].int64_list.value[0]) == (2, 9)
