"""Where vta keeps its caches, and the one switch that turns them off.

``$VTA_CACHE_DIR`` names the cache folder; one of ``off``, ``0``, ``none``, ``false``,
``no`` or an empty value turns every cache off (solved field bases, the default
anatomy). Without it the caches live under ``$XDG_CACHE_HOME/vta`` or ``~/.cache/vta``.
"""

from __future__ import annotations

import os

__all__ = ["OFF_VALUES", "cache_env", "caching_off"]

#: Values of ``$VTA_CACHE_DIR`` that turn caching off.
OFF_VALUES = frozenset({"", "0", "off", "none", "false", "no"})


def cache_env() -> str | None:
    """``$VTA_CACHE_DIR`` as set (None when unset)."""
    return os.environ.get("VTA_CACHE_DIR")


def caching_off() -> bool:
    """True when ``$VTA_CACHE_DIR`` turns caching off."""
    env = cache_env()
    return env is not None and env.strip().lower() in OFF_VALUES
