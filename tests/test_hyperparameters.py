"""The search space (config) -> KerasTuner hyperparameters -> the model Trainer builds."""

from __future__ import annotations

import keras_tuner
import pytest

from model import hyperparameters

DEFAULTS = {"hidden_units": [64, 32], "embedding_dim": 8, "dropout": 0.1, "learning_rate": 0.003, "batch_size": 128}
SPACE = {"num_layers": [1, 2, 3], "units": [16, 32], "learning_rate": {"min": 1e-4, "max": 1e-2, "sampling": "log"},
         "embedding_dim": {"min": 2, "max": 8, "step": 2}}


def test_space_defines_one_units_per_possible_layer_and_resolves_back():
    hp = keras_tuner.HyperParameters()
    picked = hyperparameters.sample(hp, SPACE, DEFAULTS)
    assert set(hp.values) == {"num_layers", "units_0", "units_1", "units_2", "learning_rate", "embedding_dim"}
    assert isinstance(hp.values["embedding_dim"], int) and isinstance(hp.values["learning_rate"], float)
    # What Trainer rebuilds from the tuner's stored values is what the trial built.
    assert hyperparameters.resolve(hp.get_config()["values"], DEFAULTS) == picked
    assert len(picked["hidden_units"]) == hp.values["num_layers"]
    assert picked["dropout"] == 0.1 and picked["batch_size"] == 128  # not searched: config defaults


def test_random_trials_cover_the_space():
    oracle_hp = keras_tuner.HyperParameters()
    hyperparameters.sample(oracle_hp, SPACE, DEFAULTS)
    seen = set()
    for seed in range(30):
        values = keras_tuner.oracles.RandomSearchOracle(hyperparameters=oracle_hp, seed=seed,
                                                        max_trials=1).populate_space("t")["values"]
        model_hp = hyperparameters.resolve(values, DEFAULTS)
        assert all(u in (16, 32) for u in model_hp["hidden_units"])
        assert 1e-4 <= model_hp["learning_rate"] <= 1e-2 and model_hp["embedding_dim"] in (2, 4, 6, 8)
        seen.add(len(model_hp["hidden_units"]))
    assert seen == {1, 2, 3}


def test_units_alone_keeps_the_default_depth():
    hp = keras_tuner.HyperParameters()
    picked = hyperparameters.sample(hp, {"units": [8]}, DEFAULTS)
    assert picked["hidden_units"] == [8, 8]


@pytest.mark.parametrize(("space", "problem"), [
    ({"depth": [1]}, "unknown key 'depth'"),
    ({"units": []}, "non-empty list"),
    ({"dropout": {"min": 0.3, "max": 0.1}}, "min must be < max"),
    ({"learning_rate": {"min": 0, "max": 0.1, "sampling": "log"}}, "log sampling needs min > 0"),
    ({"batch_size": "large"}, "list of choices or a {min, max} range"),
])
def test_bad_space_is_named(space, problem):
    assert problem in hyperparameters.check_space(space)
