"""model_io: measuring models, and the clear errors on bad inputs of the optimization components."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tf_keras as keras
from tfx.types import standard_artifacts

from components.distiller import executor as distiller
from components.pruner import executor as pruner
from components.quantization_aware_trainer import executor as quantization
from features import task
from features.feature_steps import OutputSpec
from model import model_io, training

OUTPUTS = [OutputSpec("fare_xf", "numeric"), OutputSpec("company_xf", "categorical", 50),
           OutputSpec("payment_type_xf", "vector", 4)]
HP = {"hidden_units": [32, 16], "embedding_dim": 4, "dropout": 0.0, "learning_rate": 0.01, "batch_size": 8}
HEAD = task.head(task.Label("big_tipper", "tips", positive_class="1"))


def test_sparsity_and_gzip_size_measure_zeroed_weights():
    model = training.build_model(OUTPUTS, HP, HEAD)
    dense = model.get_layer("hidden_0")
    kernel = dense.kernel.numpy()
    kernel[: kernel.shape[0] // 2] = 0.0
    before = model_io.gzip_size(model)
    dense.kernel.assign(kernel)
    s = model_io.sparsity(model)
    assert s["hidden_0"] == pytest.approx(0.5, abs=1 / kernel.shape[0])
    assert s["hidden_1"] == 0.0 and set(s) == {"company_xf_embedding", "hidden_0", "hidden_1", "probability",
                                               "overall"}
    assert model_io.gzip_size(model) < before
    assert set(model_io.sparsity(model, ["hidden_0"])) == {"hidden_0", "overall"}
    assert model_io.sparsity(model, ["hidden_0"])["overall"] == s["hidden_0"]
    assert model_io.measure(model)["parameters"] == model.count_params()


def test_every_dense_and_embedding_but_the_output_layer_is_pruned():
    model = training.build_model(OUTPUTS, HP, HEAD)
    assert pruner.prunable_layers(model) == ["company_xf_embedding", "hidden_0", "hidden_1"]


def test_pruning_schedule_reaches_the_target_exactly_at_its_last_update():
    schedule = pruner.schedule(0.8, 400)
    end = schedule.get_config()["config"]["end_step"]
    assert end <= 300 and end % schedule.get_config()["config"]["frequency"] == 0
    should_prune, sparsity = schedule(np.int64(end))
    assert bool(should_prune) and float(sparsity) == pytest.approx(0.8)


def test_quantization_wraps_dense_layers_only_and_keeps_trained_weights():
    model = training.build_model(OUTPUTS, HP, HEAD)
    qat = quantization.quantize_aware(model)
    wrapped = {layer.name for layer in qat.layers if type(layer).__name__ == "QuantizeWrapperV2"}
    assert {"quant_hidden_0", "quant_hidden_1", "quant_probability"} <= wrapped
    assert not any("embedding" in name for name in wrapped)
    (kernel,) = [w for w in qat.get_layer("quant_hidden_0").weights if w.name.endswith("kernel:0")]
    np.testing.assert_array_equal(kernel.numpy(), model.get_layer("hidden_0").kernel.numpy())
    x = {"fare_xf": np.zeros((3, 1), np.float32), "company_xf": np.array([[1], [2], [49]]),
         "payment_type_xf": np.eye(4, dtype=np.float32)[:3]}
    assert qat(x).shape == (3, 1)


@pytest.mark.parametrize(("module", "name", "missing"), [
    (pruner, "Pruner", "target_sparsity"), (quantization, "QuantizationAwareTrainer", "fine_tune_steps"),
    (distiller, "Distiller", "temperature")])
def test_config_without_a_required_key_names_it(module, name, missing):
    config = {"custom_config": {}, **{k: 1 for k in module.REQUIRED if k != missing}}
    with pytest.raises(ValueError, match=f"{name}: config lacks {missing}"):
        model_io.parse_config(json.dumps(config), name, module.REQUIRED)
    with pytest.raises(ValueError, match=f"{name}: config is not valid JSON"):
        model_io.parse_config("{target_sparsity: 0.8", name, module.REQUIRED)


def test_missing_model_and_missing_split_are_named(tmp_path):
    with pytest.raises(ValueError, match=f"cannot load a Keras model from {tmp_path}"):
        model_io.load_model(str(tmp_path))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    examples.split_names = json.dumps(["train", "eval"])
    data = model_io.ModelData({}, None, examples, None)
    with pytest.raises(ValueError, match=r"have no 'test' split \(have \['train', 'eval'\]\)"):
        data.dataset("test", 8)


def test_keras_flavour_of_the_variants_is_tf_keras():
    # tfmot wraps only tf_keras layers: the shared builder must give tf_keras by default.
    assert isinstance(training.build_model(OUTPUTS, HP, HEAD), keras.Model)
