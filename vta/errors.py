"""The one exception type that `vta` raises for bad input.

The CLI prints a `VtaError` on one line and exits non-zero; everything else is a bug.
"""

from __future__ import annotations


class VtaError(Exception):
    """Bad input or an impossible request, with a message naming what is wrong."""


class ConfigError(VtaError):
    """A configuration key is missing, unknown or has an invalid value."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"config key '{key}': {message}")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (``timeout``, a batch scheduler, ``docker stop``): handled like
    Ctrl-C - whatever was being written is rolled back - and the CLI exits with 143."""
