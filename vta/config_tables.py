"""One TOML table of a configuration, read key by key: typed getters with one-line
:class:`~vta.errors.ConfigError` messages naming the full key, and a check that no
unknown key is left (:meth:`Section.finish`, with a did-you-mean)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ConfigError, did_you_mean

__all__ = ["Section"]


class Section:
    """Reads one TOML table, tracking which keys were used."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise ConfigError(path, f"must be a table, got {type(data).__name__}")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = ...) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is ...:
                raise ConfigError(self.key(name), "is required")
            return default
        return self.data[name]

    def number(self, name: str, default: Any = ..., *, positive: bool = False, min_value: float | None = None) -> float:
        value = self.raw(name, default)
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(self.key(name), f"must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise ConfigError(self.key(name), f"must be positive, got {value}")
        if min_value is not None and value < min_value:
            raise ConfigError(self.key(name), f"must be >= {min_value}, got {value}")
        return float(value)

    def vector3(self, name: str, default: Any = ...) -> np.ndarray | None:
        value = self.raw(name, default)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        ):
            raise ConfigError(self.key(name), f"must be a list of three finite numbers (mm), got {value!r}")
        return np.array(value, dtype=float)

    def choice(self, name: str, options: tuple[str, ...], default: Any = ...) -> str:
        value = self.raw(name, default)
        if value not in options:
            raise ConfigError(self.key(name), f"must be one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    def boolean(self, name: str, default: Any = ...) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, got {value!r}")
        return value

    def sub(self, name: str) -> "Section | None":
        """An optional sub-table, or None if absent."""
        if name not in self.data:
            return None
        self.used.add(name)
        return Section(self.data[name], self.key(name))

    def table(self, name: str) -> "Section":
        """A required sub-table."""
        return Section(self.raw(name), self.key(name))

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key" + did_you_mean(unknown[0], sorted(self.used | set(self.data)), n=1))
