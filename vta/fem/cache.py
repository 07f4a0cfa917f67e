"""On-disk cache of field bases: a second run of the same scene skips meshing and solving.

A field basis (mesh, unit solutions, conductance matrix) depends only on the scene: the
lead model and placement, the domain, the tissue conductivities (and encapsulation), the
mesh preset, the element order, the outer boundary condition and the solver settings.
Every stimulation setting of that scene is a superposition of the same unit solutions,
so the basis can be stored once and reused for any other setting.

Usage (e.g. in :mod:`vta.scene`)::

    from vta.fem.cache import cached_basis

    key = {"method": "3d", "lead": lead, "placement": placement, "domain": domain,
           "encapsulation": encapsulation, "sigma_S_per_m": 0.2, "preset": "default",
           "order": 2, "outer": "ground"}
    basis = cached_basis(key, lambda: build_the_basis(...))

The key must contain everything the builder's result depends on (for input files, their
:func:`file_digest`, not only their paths). It may hold plain
values, lists, dicts, numpy arrays (large ones are hashed) and dataclasses such as
:class:`vta.leads.LeadModel`, :class:`vta.leads.LeadPlacement`, :class:`vta.fem.mesh.Domain`,
:class:`vta.fem.mesh.Encapsulation` or :class:`vta.fem.mesh.MeshPreset`. The file name is a
SHA-256 of the canonical JSON of the key plus a fingerprint of the code that builds the
basis (``mesh.py``, ``solve.py``, ``assembly.py``, ``leads.py``, this module) and the
gmsh version, so an upgrade never returns a stale basis.

Location: ``$VTA_CACHE_DIR`` if set (``""``, ``"0"``, ``"off"``, ``"none"`` or
``"false"`` disable caching; ``$VTA_BASIS_CACHE=off`` disables this cache alone), else
``$XDG_CACHE_HOME/vta/basis`` or
``~/.cache/vta/basis``. Files are ``<hash>.npz`` (uncompressed: loading is a few
hundredths of a second), written atomically (temporary file + rename, so concurrent runs
and crashes never leave a partial file visible). A file that cannot be read, or whose
stored key differs, is deleted and rebuilt. Least recently used files are pruned when
the folder exceeds ``$VTA_CACHE_MAX_MB`` (default 2048 MB).

Only bases with ``to_arrays()`` / ``from_arrays()`` (:class:`vta.fem.solve.TetFieldBasis`)
are stored; any other builder result is returned as is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..caching import basis_caching_off, caching_off
from ..errors import VtaError
from ..io import canonical_json
from ..notices import NOT_ABOUT_RESULT

__all__ = ["CACHE_FORMAT", "cache_dir", "cache_key", "cached_basis", "clear_cache", "file_digest",
           "load_basis", "read_or_build", "store_basis", "write_npz"]

log = logging.getLogger(__name__)

#: bump when the file layout changes
CACHE_FORMAT = 1
#: Sources (globs under the package) that shape a basis: meshing, assembly, solving,
#: the lead catalogue, tissue conductivity and its sampling per element (anatomy/), and
#: the scene code that combines them. A change in any of them invalidates the cache.
BASIS_CODE = ("fem/*.py", "anatomy/*.py", "leads.py", "data/leads.csv", "scene.py")
_HASH_ARRAYS_ABOVE = 64  # numpy arrays with more entries enter the key as a SHA-256
_fingerprint: str | None = None


# ----------------------------------------------------------------------------- location


def cache_dir(override: str | os.PathLike | bool | None = None) -> Path | None:
    """The cache folder, or ``None`` when caching is off.

    Parameters
    ----------
    override : path, bool or None
        A folder; ``False`` turns caching off; ``None`` or ``True`` use
        ``$VTA_CACHE_DIR`` or the default (see the module docstring).
    """
    if override is False:
        return None
    if override is not None and override is not True:
        return Path(override).expanduser()
    env = os.environ.get("VTA_CACHE_DIR")
    if env is not None:
        return None if caching_off() else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vta" / "basis"


# ----------------------------------------------------------------------------- keys


def _canonical(obj: Any) -> Any:
    """JSON-ready, order-independent form of a key value."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isnan(v) or math.isinf(v):
            return repr(v)
        return 0.0 if v == 0.0 else v  # -0.0 and 0.0 are the same scene
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        if a.size > _HASH_ARRAYS_ABOVE:
            return {"__array_sha256__": hashlib.sha256(a.tobytes()).hexdigest(),
                    "shape": list(a.shape), "dtype": a.dtype.str}
        return {"__array__": _canonical(a.tolist()), "dtype": a.dtype.kind}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__type__": type(obj).__name__,
                **{f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_canonical(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot use a {type(obj).__name__} in a cache key; pass plain values, "
                    "arrays or dataclasses")


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, for keys of bases that depend on input files (tissue
    NIfTI, DTI, atlases): a path alone would not notice an edited file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def basis_code_files() -> list[Path]:
    """The source files whose contents enter every cache key (:data:`BASIS_CODE`)."""
    package = Path(__file__).resolve().parents[1]
    return sorted({f for pattern in BASIS_CODE for f in package.glob(pattern) if f.is_file()})


def _code_fingerprint() -> str:
    """SHA-256 over the sources that decide what a basis contains, and gmsh's version."""
    global _fingerprint
    if _fingerprint is None:
        h = hashlib.sha256()
        package = Path(__file__).resolve().parents[1]
        for path in basis_code_files():
            h.update(path.relative_to(package).as_posix().encode())
            h.update(path.read_bytes())
        try:
            from importlib.metadata import version

            h.update(version("gmsh").encode())
        except Exception:  # pragma: no cover - gmsh installed without metadata
            h.update(b"gmsh-unknown")
        _fingerprint = h.hexdigest()
    return _fingerprint


def cache_key(key_dict: dict) -> str:
    """Hex SHA-256 naming the cache entry of ``key_dict`` for this code version."""
    text = _key_text(key_dict)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _key_text(key_dict: dict) -> str:
    if not isinstance(key_dict, dict):
        raise TypeError("the cache key must be a dict")
    payload = {"format": CACHE_FORMAT, "code": _code_fingerprint(), "key": _canonical(key_dict)}
    return canonical_json(payload)


# ----------------------------------------------------------------------------- storage


def _basis_classes() -> dict[str, type]:
    from .solve import TetFieldBasis

    return {"tet": TetFieldBasis}


def store_basis(path: str | os.PathLike, basis: Any, key_text: str = "") -> bool:
    """Write ``basis`` (with ``to_arrays()``) to ``path`` atomically; False if it cannot
    be stored (no ``to_arrays``) or the write fails (logged, never raised)."""
    if not isinstance(basis, tuple(_basis_classes().values())):
        return False
    arrays = dict(basis.to_arrays())
    arrays["__cache_format__"] = np.array(CACHE_FORMAT)
    arrays["__cache_key__"] = np.array(key_text)
    return write_npz(path, arrays, "basis cache")


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], what: str) -> bool:
    """Write arrays to ``path`` (uncompressed .npz) atomically, creating its folder;
    False if the write fails (logged as "could not write the <what> ...", never raised:
    a cache that cannot be written only costs time)."""
    from ..io import atomic_write_bytes

    try:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
        return True
    except (OSError, VtaError) as exc:
        log.warning("could not write the %s %s: %s", what, path, exc, extra=NOT_ABOUT_RESULT)
        return False


def read_or_build(folder: Path, key_text: str, load: Callable[[Path], Any], build: Callable[[], Any],
                  store: Callable[[Path, Any], bool], what: str, again: str) -> tuple[Any, bool, Path | None, float]:
    """The one cache protocol of the basis cache and the mesh templates.

    The entry is ``folder/<sha256(key_text)[:40]>.npz``. If it exists, ``load(path)``
    reads it (a file that cannot be read, or holds another key, is logged as "<what>
    <name> is unreadable (...); <again>", deleted and rebuilt) and its modification time
    is refreshed (least-recently-used pruning). Otherwise ``build()`` makes the value,
    ``store(path, value)`` writes it and the folder is pruned to ``$VTA_CACHE_MAX_MB``.

    Returns
    -------
    (value, hit, path or None (None when nothing was stored), seconds of the load or store)
    """
    path = folder / f"{hashlib.sha256(key_text.encode()).hexdigest()[:40]}.npz"
    if path.exists():
        t0 = time.perf_counter()
        try:
            value = load(path)
        except Exception as exc:  # corrupt, truncated, foreign or stale: rebuild
            log.warning("%s %s is unreadable (%s); %s", what, path.name, exc, again, extra=NOT_ABOUT_RESULT)
            try:
                path.unlink()
            except OSError:
                pass
        else:
            try:
                os.utime(path)  # least-recently-used bookkeeping
            except OSError:
                pass
            return value, True, path, time.perf_counter() - t0
    value = build()
    t0 = time.perf_counter()
    stored = store(path, value)
    dt = time.perf_counter() - t0
    if stored:
        _prune(folder, _max_bytes(), path)
    return value, False, (path if stored else None), dt


def load_basis(path: str | os.PathLike, key_text: str | None = None) -> Any:
    """Read a basis written by :func:`store_basis`.

    Raises
    ------
    ValueError, OSError, KeyError
        Unreadable, truncated or foreign file, or (with ``key_text``) another key.
    """
    with np.load(path, allow_pickle=False) as data:
        if int(data["__cache_format__"]) != CACHE_FORMAT:
            raise ValueError("cache file of another format")
        if key_text is not None and str(data["__cache_key__"]) != key_text:
            raise ValueError("cache file of another key")
        kind = str(data["kind"])
        classes = _basis_classes()
        if kind not in classes:
            raise ValueError(f"unknown basis kind {kind!r}")
        arrays = {name: data[name] for name in data.files}
    return classes[kind].from_arrays(arrays)


#: A temporary file of an interrupted cache write older than this is an orphan (s).
ORPHAN_AGE_S = 3600.0


def remove_orphans(folder: Path, min_age_s: float = ORPHAN_AGE_S) -> int:
    """Delete temporary files that killed cache writes left behind (``.*.tmp*``, older
    than ``min_age_s``: younger ones may still be written by another process).

    Returns
    -------
    int
        How many files went.
    """
    now = time.time()
    n = 0
    for f in folder.glob(".*.tmp*"):
        try:
            if f.is_file() and now - f.stat().st_mtime >= min_age_s:
                f.unlink()
                n += 1
        except OSError:
            pass
    if n:
        log.info("removed %d orphaned temporary file(s) from the basis cache %s", n, folder)
    return n


def _prune(folder: Path, max_bytes: int, keep: Path) -> None:
    """Delete the least recently used entries until the folder fits in ``max_bytes``,
    and orphaned temporary files of interrupted writes."""
    remove_orphans(folder)
    try:
        files = [(f.stat().st_mtime, f.stat().st_size, f) for f in folder.glob("*.npz") if not f.name.startswith(".")]
    except OSError:
        return
    total = sum(size for _, size, _ in files)
    for _, size, f in sorted(files, key=lambda x: x[0]):
        if total <= max_bytes:
            break
        if f == keep:
            continue
        try:
            f.unlink()
            total -= size
        except OSError:
            pass


def _max_bytes() -> int:
    try:
        return int(float(os.environ.get("VTA_CACHE_MAX_MB", "2048")) * 2**20)
    except ValueError:
        return 2048 * 2**20


# ----------------------------------------------------------------------------- public


def cached_basis(key_dict: dict, builder: Callable[[], Any],
                 cache_dir_: str | os.PathLike | bool | None = None) -> Any:
    """Return the cached basis of ``key_dict``, or build, store and return it.

    Parameters
    ----------
    key_dict : dict
        Everything the basis depends on (see the module docstring).
    builder : callable
        ``builder()`` builds the basis on a miss (e.g. mesh + ``solve_unit_fields``).
    cache_dir_ : path, bool or None
        Folder override; ``False`` bypasses the cache (see :func:`cache_dir`).

    Returns
    -------
    basis
        The builder's result, or an equal basis read from the cache. Its attribute
        ``cache`` is ``{"hit": bool, "path": str or None, "load_s" or "store_s": float}``;
        on a hit ``timings`` is ``{"cache_load": seconds}`` (the build's own timings are
        in ``cache["build_timings"]``).
    """
    folder = cache_dir(cache_dir_)
    if folder is None or (cache_dir_ is None and basis_caching_off()):
        basis = builder()
        _annotate(basis, {"hit": False, "path": None})
        return basis
    key_text = _key_text(key_dict)
    basis, hit, path, dt = read_or_build(folder, key_text, lambda p: load_basis(p, key_text), builder,
                                         lambda p, b: store_basis(p, b, key_text), "basis cache", "rebuilding it")
    if hit:
        build = dict(getattr(basis, "timings", {}) or {})
        basis.timings = {"cache_load": dt}
        _annotate(basis, {"hit": True, "path": str(path), "load_s": dt, "build_timings": build})
        log.info("basis loaded from the cache %s in %.3f s", path, dt)
        return basis
    if path is not None:
        log.info("basis stored in the cache %s in %.3f s", path, dt)
    _annotate(basis, {"hit": False, "path": str(path) if path is not None else None, "store_s": dt})
    return basis


def _annotate(basis: Any, info: dict) -> None:
    try:
        basis.cache = info
    except (AttributeError, TypeError):  # objects without a __dict__
        pass


def clear_cache(cache_dir_: str | os.PathLike | bool | None = None) -> int:
    """Delete every cached basis in the folder; returns how many files went."""
    folder = cache_dir(cache_dir_)
    if folder is None or not folder.is_dir():
        return 0
    n = 0
    for f in folder.glob("*.npz"):
        try:
            f.unlink()
            n += 1
        except OSError:
            pass
    return n + remove_orphans(folder, min_age_s=0.0)
