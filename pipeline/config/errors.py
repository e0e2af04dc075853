"""The config's error type and the reader that names key paths in its messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file is malformed; the message names the file and key."""


class Reader:
    """A place in the YAML and its key path, for the parsers' error messages (``model.hidden_units[1]``).

    The pydantic models (model.py) have checked keys, types and bounds before a parser runs; the
    parsers read the models and use a reader to name the key of a check that spans keys or sections."""

    def __init__(self, source: Path, data: Any, where: str = ""):
        self.source, self.data, self.where = source, data, where

    def fail(self, msg: str, key: str | None = None) -> ConfigError:
        return ConfigError(f"{self.source}: {join(self.where, key) or '<top level>'}: {msg}")

    def child(self, key: str | int) -> Reader:
        return Reader(self.source, self.data[key], join(self.where, key))


def join(where: str, key: str | int | None) -> str:
    """``where`` + ``key`` as the messages spell it: ``a.b``, ``a[1]``."""
    if key is None or key == "":
        return where
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key
