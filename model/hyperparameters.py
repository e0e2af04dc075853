"""The model's hyperparameters and their search space: one definition for Tuner and Trainer.

The config's ``model`` section gives defaults; ``tuning.search_space`` names which of them
KerasTuner searches. A search value is a list (``hp.Choice``) or ``{min, max, step?,
sampling?}`` (``hp.Int``/``hp.Float``). ``hidden_units`` is searched as ``num_layers`` and
``units`` (one ``units_<i>`` per possible layer), so the tuned values map back to the
model's ``hidden_units`` list with ``resolve``, the function Trainer uses on the Tuner's
best hyperparameters. Nothing here imports Keras: the tuner passes its ``hp`` object in.
"""

from __future__ import annotations

from typing import Any

# Search-space keys and the model hyperparameter each one sets.
SEARCHABLE = ("num_layers", "units", "learning_rate", "dropout", "batch_size", "embedding_dim")
INT_KEYS = frozenset({"num_layers", "units", "batch_size", "embedding_dim"})


def check_space(space: dict[str, Any]) -> str | None:
    """What is wrong with a search space, or None (config validation calls this)."""
    for key, value in space.items():
        if key not in SEARCHABLE:
            return f"unknown key '{key}'; searchable: {', '.join(SEARCHABLE)}"
        if isinstance(value, list):
            if not value or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                return f"'{key}': a choice is a non-empty list of numbers"
            if key in INT_KEYS and not all(isinstance(v, int) and v > 0 for v in value):
                return f"'{key}': choices must be positive integers"
        elif isinstance(value, dict):
            if set(value) - {"min", "max", "step", "sampling"} or not {"min", "max"} <= set(value):
                return f"'{key}': a range is {{min, max, step?, sampling?}}"
            if not value["min"] < value["max"]:
                return f"'{key}': min must be < max"
            if value.get("sampling", "linear") not in ("linear", "log"):
                return f"'{key}': sampling is linear or log"
            if value.get("sampling") == "log" and value["min"] <= 0:
                return f"'{key}': log sampling needs min > 0"
        else:
            return f"'{key}': give a list of choices or a {{min, max}} range"
    return None


def _define(hp: Any, name: str, value: Any) -> Any:
    if isinstance(value, list):
        return hp.Choice(name, value)
    kind = hp.Int if ("units" if name.startswith("units_") else name) in INT_KEYS else hp.Float
    kwargs = {"sampling": value.get("sampling", "linear")}
    if "step" in value:
        kwargs["step"] = value["step"]
    return kind(name, value["min"], value["max"], **kwargs)


def sample(hp: Any, space: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Define the search space on a KerasTuner ``hp`` and return the model hyperparameters it
    picks this trial. Every possible layer gets its own ``units_<i>``, so the values alone
    (without the space) say what the model is."""
    values: dict[str, Any] = {}
    for key, value in space.items():
        if key == "units":
            max_layers = _max_layers(space, defaults)
            for i in range(max_layers):
                values[f"units_{i}"] = _define(hp, f"units_{i}", value)
        else:
            values[key] = _define(hp, key, value)
    return resolve(values, defaults)


def _max_layers(space: dict[str, Any], defaults: dict[str, Any]) -> int:
    layers = space.get("num_layers")
    if layers is None:
        return len(defaults["hidden_units"])
    return max(layers) if isinstance(layers, list) else int(layers["max"])


def resolve(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Model hyperparameters from searched ``values`` (a Tuner's best), defaults elsewhere."""
    hp = dict(defaults)
    for key in ("learning_rate", "dropout", "batch_size", "embedding_dim"):
        if key in values:
            hp[key] = values[key]
    default_units = list(defaults["hidden_units"])
    layers = int(values.get("num_layers", len(default_units)))
    hp["hidden_units"] = [
        int(values.get(f"units_{i}", default_units[min(i, len(default_units) - 1)])) for i in range(layers)]
    for key in ("batch_size", "embedding_dim"):
        hp[key] = int(hp[key])
    hp["learning_rate"], hp["dropout"] = float(hp["learning_rate"]), float(hp["dropout"])
    return hp
