"""Image config validation: the shipped digits config loads without scanning a CSV; every bad image
config names the file, the key path and the problem."""

from __future__ import annotations

import pytest
import yaml

from features import feature_steps
from pipeline.config import ConfigError, load_config
from tests.conftest import ROOT

DIGITS = ROOT / "pipeline" / "configs" / "digits" / "pipeline.yaml"


def test_shipped_digits_config_loads_from_the_image_folder():
    cfg = load_config(DIGITS)
    assert cfg.image is not None and cfg.image.manifest is None
    assert cfg.data_dir == (ROOT / "data" / "digits").resolve()
    assert cfg.label_classes == tuple(str(d) for d in range(10))  # the sub-folder names
    assert cfg.features[0].outputs() == [feature_steps.OutputSpec("image_xf", "image", 784, (28, 28, 1))]
    model = cfg.trainer_custom_config()["model"]
    assert model["conv"] == {"filters": [16, 32], "kernel_size": 3, "pool_size": 2}
    assert cfg.trainer_custom_config()["training"]["augmentation"]["rotation"] == 0.03
    # Only the image is asked at serving: the label and ImageExampleGen's size columns are not.
    assert cfg.serving_excluded_columns == ("label", "height", "width", "channels")


def _write(tmp_path, mutate, name="bad.yaml"):
    cfg = yaml.safe_load(DIGITS.read_text())
    cfg["data"]["image_dir"] = str(ROOT / "data" / "digits")
    cfg["schema"] = str(DIGITS.parent / "schema.pbtxt")
    mutate(cfg)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _steps(cfg, steps):
    cfg["features"][0]["steps"] = steps


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["data"].update(image_dir="/no/such/dir"), "data.image_dir: directory /no/such/dir does not exist"),
    (lambda c: c["data"].update(csv_dir="x"), "data.image_dir: give either csv_dir"),
    (lambda c: c["data"].update(labels="names"), "data.labels: must be 'folders'"),
    (lambda c: c["data"].update(labels={"manifest": "nope.csv"}), "data.labels.manifest: file"),
    (lambda c: c["data"].update(delimiter=","), "data.delimiter: 'delimiter' applies to CSV data"),
    (lambda c: _steps(c, ["per_channel_standardize"]),
     "features[0] (image): an image feature starts with decode_image"),
    (lambda c: _steps(c, [{"decode_image": {"height": 28}}]),
     "features[0] (image): steps[0] (decode_image): missing required argument 'width'"),
    (lambda c: _steps(c, [{"decode_image": {"height": 28, "width": 28, "channels": 2}}]),
     "steps[0] (decode_image): 'channels' must be 1 or 3"),
    (lambda c: _steps(c, [{"decode_image": {"height": 28, "width": 28}}, "z_score"]),
     "step 'z_score' does not apply to image features"),
    (lambda c: c["features"].append({"name": "height", "type": "int", "steps": ["per_channel_standardize"]}),
     "features[1] (height): step 'per_channel_standardize' applies to image features"),
    (lambda c: c["features"][0].update(name="picture"), "features[0] (picture): ImageExampleGen writes the image"),
    (lambda c: c["label"].update(column="digit"), "label.column: image data has its label in column 'label'"),
    (lambda c: c["model"]["conv"].update(filters=[]), "model.conv.filters: must be a non-empty list"),
    (lambda c: c["model"]["conv"].update(stride=2), "model.conv: unknown key 'stride'"),
    (lambda c: c["training"]["augmentation"].update(rotation=2), "training.augmentation.rotation: must be in [0, 1]"),
])
def test_bad_image_configs_name_the_key(tmp_path, mutate, message):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, mutate))
    assert message in str(info.value) and "bad.yaml" in str(info.value), str(info.value)


def test_manifest_labels_and_its_errors(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for k in range(4):
        (images / f"{k}.png").write_bytes((ROOT / "data" / "digits" / str(k) / "0000.png").read_bytes())
    (images / "labels.csv").write_text("path,label\n0.png,even\n1.png,odd\n2.png,even\n3.png,odd\n")

    def manifest(c):
        c["data"].update(image_dir=str(images), labels={"manifest": "labels.csv"})
        c["evaluation"]["thresholds"] = []
    cfg = load_config(_write(tmp_path, manifest))
    assert cfg.label_classes == ("even", "odd") and cfg.image.manifest == images / "labels.csv"
    (images / "labels.csv").write_text("path,label\n0.png,even\nmissing.png,odd\n")
    with pytest.raises(ConfigError, match=r"data.labels.manifest: .*labels.csv line 3: no such file .*missing.png"):
        load_config(_write(tmp_path, manifest))


def test_distillation_student_may_have_its_own_conv_stack(tmp_path):
    def student(conv):
        def mutate(c):
            c["optimization"] = {"distillation": {"student": {"conv": conv, "hidden_units": [32]}}}
        return mutate
    cfg = load_config(_write(tmp_path, student({"filters": [8, 16]})))
    (variant,) = cfg.optimization.variants
    assert variant.params["student"]["conv"] == {"filters": [8, 16]}
    with pytest.raises(ConfigError, match=r"optimization\.distillation\.student\.conv\.filters: "
                                          r"must be a non-empty list of positive integers"):
        load_config(_write(tmp_path, student({"filters": []})))
