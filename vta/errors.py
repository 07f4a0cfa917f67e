"""The one exception type that `vta` raises for bad input.

The CLI prints a `VtaError` on one line and exits non-zero; everything else is a bug.
"""

from __future__ import annotations

from typing import Iterable


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


def did_you_mean(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """``"; did you mean 'a', 'b'?"`` for the closest ``choices`` to ``name`` (by
    spelling, or containing it), or ``""``: the one suggestion text of every message
    about an unknown name (config keys, lead models, structures, tissue classes...)."""
    import difflib

    options = [c for c in dict.fromkeys(choices) if c != name]
    close = difflib.get_close_matches(name, options, n=n, cutoff=cutoff)
    if not close:
        low = name.lower()
        close = [c for c in options if low and low in c.lower()][:n]
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
