"""Where vta keeps its caches, and the one switch that turns them off.

``$VTA_CACHE_DIR`` names the cache folder; one of ``off``, ``0``, ``none``, ``false``,
``no`` or an empty value turns every cache off (solved field bases, lead-local mesh
templates, the default anatomy). Without it the caches live under
``$XDG_CACHE_HOME/vta`` or ``~/.cache/vta``. ``$VTA_BASIS_CACHE`` set to one of those
values turns off only the cache of solved field bases (every run meshes or reads its
mesh template, and solves), e.g. to time what a new lead position costs.
"""

from __future__ import annotations

import os

__all__ = ["OFF_VALUES", "basis_caching_off", "cache_env", "caching_off"]

#: Values of ``$VTA_CACHE_DIR`` that turn caching off.
OFF_VALUES = frozenset({"", "0", "off", "none", "false", "no"})


def cache_env() -> str | None:
    """``$VTA_CACHE_DIR`` as set (None when unset)."""
    return os.environ.get("VTA_CACHE_DIR")


def caching_off() -> bool:
    """True when ``$VTA_CACHE_DIR`` turns caching off."""
    env = cache_env()
    return env is not None and env.strip().lower() in OFF_VALUES


def basis_caching_off() -> bool:
    """True when solved field bases are not cached (``$VTA_CACHE_DIR`` or
    ``$VTA_BASIS_CACHE`` off)."""
    env = os.environ.get("VTA_BASIS_CACHE")
    return caching_off() or (env is not None and env.strip().lower() in OFF_VALUES)
