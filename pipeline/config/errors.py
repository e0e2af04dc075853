"""The config's error type and the reader that names key paths in its messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file is malformed; the message names the file and key."""


class Reader:
    """Walks a YAML mapping, recording the key path for error messages (``model.hidden_units[1]``).

    The pydantic models (model.py) have already checked keys and types when a parser runs; the
    reader remains for the checks that span keys or sections, with the same path spelling."""

    def __init__(self, source: Path, data: Any, where: str = ""):
        self.source, self.data, self.where = source, data, where

    def fail(self, msg: str, key: str | None = None) -> ConfigError:
        return ConfigError(f"{self.source}: {join(self.where, key) or '<top level>'}: {msg}")

    def mapping(self, allowed: set[str]) -> dict:
        if not isinstance(self.data, dict):
            raise self.fail(f"expected a mapping, got {type(self.data).__name__}")
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise self.fail(f"unknown key '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}")
        return self.data

    def child(self, key: str | int) -> Reader:
        return Reader(self.source, self.data[key], join(self.where, key))

    def get(self, key: str, types: tuple[type, ...], default: Any = ..., check=None) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail("missing required key", key)
            return default
        value = self.data[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = "/".join(t.__name__ for t in types)
            raise self.fail(f"must be {names}, got {value!r}", key)
        if check and (err := check(value)):
            raise self.fail(err, key)
        return value


def join(where: str, key: str | int | None) -> str:
    """``where`` + ``key`` as the messages spell it: ``a.b``, ``a[1]``."""
    if key is None or key == "":
        return where
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"
