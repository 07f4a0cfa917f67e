"""Streamline files: read and write :class:`~vta.activation.streamlines.Tract` objects.

Formats (:data:`TRACT_FORMATS`; :func:`load_tract`, :func:`save_tract`):

* ``.trk`` (TrackVis) and ``.tck`` (MRtrix) through ``nibabel.streamlines``; nibabel
  returns RAS+ mm whatever the file's voxel order;
* ``.vtk`` (legacy) and ``.vtp`` (XML) poly data through pyvista: every line or
  polyline cell is one streamline, point coordinates taken as world mm;
* ``.npy``: one regular array ``(n_points, 3)`` (one streamline) or
  ``(n_streamlines, n_points, 3)``; ``.npz``: ``points`` ``(M, 3)`` and ``lengths``
  ``(n,)`` (points per streamline), optionally ``name``, ``source`` (JSON) and
  ``fiber_diameter_um`` -- the format :func:`save_tract` writes.

nibabel and pyvista are imported only when a file of theirs is read or written.
Coordinates are world mm.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .streamlines import Tract, _check_affine4, _vec3
from ..errors import VtaError
from ..io import atomic_path, to_jsonable

__all__ = ["TRACT_FORMATS", "load_tract", "save_tract"]

log = logging.getLogger(__name__)

#: File extensions that :func:`load_tract` reads and :func:`save_tract` writes.
TRACT_FORMATS: dict[str, str] = {".trk": "TrackVis", ".tck": "MRtrix tck", ".vtk": "VTK legacy poly data",
                                 ".vtp": "VTK XML poly data", ".npy": "numpy array", ".npz": "numpy archive"}


# --- reading and writing ------------------------------------------------------------


def _format_of(p: Path) -> str:
    ext = p.suffix.lower()
    if ext not in TRACT_FORMATS:
        raise VtaError(f"tract file '{p}': unknown extension '{p.suffix}' "
                       f"(use one of {', '.join(TRACT_FORMATS)})")
    return ext


def load_tract(path: str | Path, name: str | None = None, offset_mm: Sequence[float] | None = None,
               affine: np.ndarray | None = None, fiber_diameter_um: float | None = None) -> Tract:
    """Read streamlines from a ``.trk``, ``.tck``, ``.vtk``, ``.vtp``, ``.npy`` or ``.npz`` file.

    Parameters
    ----------
    path : path
        The file. ``.trk``/``.tck`` coordinates come back as RAS+ mm (nibabel applies
        the header); ``.vtk``/``.vtp``/``.npy``/``.npz`` coordinates are taken as mm.
    name : str, optional
        Tract name (default: the ``name`` stored in an ``.npz``, else the file stem).
    offset_mm : (3,) floats, optional
        Added to every point after ``affine`` (mm), e.g. the origin missing from a
        header: the HCP1065 ``TR_A_*.trk`` files need ``(78, 76, -50)``.
    affine : (4, 4) array, optional
        Applied to every point first (e.g. voxel -> mm for streamlines stored in voxel
        coordinates, or a registration to the anatomy's space).
    fiber_diameter_um : float, optional
        Fibre diameter for the axon models (micrometres); overrides a stored one.

    Returns
    -------
    Tract
        Streamlines with fewer than 2 points are dropped (logged).

    Raises
    ------
    VtaError
        Missing or empty file, unknown extension, unreadable content, no streamlines,
        NaN or infinite coordinates.
    """
    p = Path(path)
    if not p.is_file():
        raise VtaError(f"tract file '{p}': file not found")
    ext = _format_of(p)
    if p.stat().st_size == 0:
        raise VtaError(f"tract file '{p}': file is empty")
    stored: dict[str, Any] = {}
    if ext in (".trk", ".tck"):
        streams, info = _read_nibabel(p)
    elif ext in (".vtk", ".vtp"):
        streams, info = _read_vtk(p)
    else:
        streams, info, stored = _read_numpy(p)
    n_file = len(streams)
    streams = [np.asarray(s, dtype=np.float64) for s in streams]
    short = sum(1 for s in streams if len(s) < 2)
    if short:
        log.warning("tract file '%s': dropped %d streamline(s) with fewer than 2 points", p, short)
        streams = [s for s in streams if len(s) >= 2]
    if not streams:
        raise VtaError(f"tract file '{p}': contains no streamlines" + (" with at least 2 points" if n_file else ""))
    for i, s in enumerate(streams):
        if not np.all(np.isfinite(s)):
            raise VtaError(f"tract file '{p}': streamline {i} has NaN or infinite coordinates")
    source: dict[str, Any] = {**stored.get("source", {}), "file": str(p), "format": TRACT_FORMATS[ext],
                              "n_streamlines_in_file": n_file, **info}
    if affine is not None or offset_mm is not None:
        pts = np.concatenate(streams)
        splits = np.cumsum([len(s) for s in streams])[:-1]
        if affine is not None:
            a = _check_affine4(affine, f"tract file '{p}'")
            pts = pts @ a[:3, :3].T + a[:3, 3]
            source["affine"] = a.tolist()
        if offset_mm is not None:
            off = _vec3(offset_mm, f"tract file '{p}': offset_mm")
            pts = pts + off
            source["offset_mm"] = off.tolist()
        streams = np.split(pts, splits)
    nm = name or stored.get("name") or p.name.split(".")[0]
    diam = fiber_diameter_um if fiber_diameter_um is not None else stored.get("fiber_diameter_um")
    tract = Tract(nm, tuple(streams), source, diam)
    log.info("read tract '%s' from %s: %d streamlines, %d points", nm, p, len(tract), tract.n_points)
    return tract


def _read_nibabel(p: Path) -> tuple[list[np.ndarray], dict[str, Any]]:
    import nibabel as nib

    try:
        tfile = nib.streamlines.load(str(p), lazy_load=False)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise VtaError(f"tract file '{p}': cannot read as {TRACT_FORMATS[p.suffix.lower()]} "
                       f"({type(exc).__name__}: {exc})") from exc
    streams = list(tfile.streamlines)
    info: dict[str, Any] = {}
    hdr = tfile.header
    if p.suffix.lower() == ".trk":
        v2r = np.asarray(hdr.get("voxel_to_rasmm", np.eye(4)), float)
        info = {"header_voxel_to_rasmm": v2r.tolist(),
                "header_voxel_order": _text(hdr.get("voxel_order", b"")),
                "header_dimensions": np.asarray(hdr.get("dimensions", [0, 0, 0])).tolist()}
    return streams, info


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, (bytes, np.bytes_)) else str(v)


def _read_vtk(p: Path) -> tuple[list[np.ndarray], dict[str, Any]]:
    import pyvista as pv

    try:
        mesh = pv.read(str(p))
    except Exception as exc:  # VTK readers raise assorted errors
        raise VtaError(f"tract file '{p}': cannot read as VTK ({type(exc).__name__}: {exc})") from exc
    if not isinstance(mesh, pv.PolyData):
        raise VtaError(f"tract file '{p}': expected VTK poly data with line cells, got {type(mesh).__name__}")
    if mesh.n_lines == 0:
        if mesh.n_points == 0:
            return [], {}
        raise VtaError(f"tract file '{p}': no line cells (streamlines must be VTK lines/polylines)")
    cells = mesh.GetLines()
    offsets = pv.convert_array(cells.GetOffsetsArray()).astype(np.int64)
    conn = pv.convert_array(cells.GetConnectivityArray()).astype(np.int64)
    pts = np.asarray(mesh.points, dtype=np.float64)[conn]
    return np.split(pts, offsets[1:-1]), {}


def _read_numpy(p: Path) -> tuple[list[np.ndarray], dict[str, Any], dict[str, Any]]:
    try:
        obj = np.load(p, allow_pickle=False)
    except Exception as exc:  # ValueError (pickled objects), OSError, zip errors
        raise VtaError(f"tract file '{p}': cannot read as {TRACT_FORMATS[p.suffix.lower()]} "
                       f"({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, np.ndarray):
        a = obj
        if a.ndim == 2 and a.shape[1] == 3:
            return ([a] if len(a) else []), {}, {}
        if a.ndim == 3 and a.shape[2] == 3:
            return list(a), {}, {}
        raise VtaError(f"tract file '{p}': expected an array of shape (n_points, 3) or (n_streamlines, n_points, 3), "
                       f"got {a.shape}")
    with obj as z:
        if "points" not in z or "lengths" not in z:
            raise VtaError(f"tract file '{p}': an .npz tract needs arrays 'points' (M, 3) and 'lengths' (n,), "
                           f"found {sorted(z.files)}")
        pts, lengths = np.asarray(z["points"], float), np.asarray(z["lengths"])
        stored: dict[str, Any] = {}
        if "name" in z:
            stored["name"] = str(z["name"])
        if "source" in z:
            try:
                stored["source"] = json.loads(str(z["source"]))
            except ValueError:
                log.warning("tract file '%s': ignoring unreadable 'source' entry", p)
        for key in ("fiber_diameter_um", "fibre_diameter_um"):  # files written before 0.2 use the second name
            if key in z and np.isfinite(float(z[key])):
                stored["fiber_diameter_um"] = float(z[key])
                break
    if pts.ndim != 2 or pts.shape[1] != 3 or lengths.ndim != 1 or np.any(lengths < 0) \
            or int(lengths.sum()) != len(pts):
        raise VtaError(f"tract file '{p}': 'points' {pts.shape} and 'lengths' (sum {int(lengths.sum())}) do not match")
    return np.split(pts, np.cumsum(lengths)[:-1].astype(np.int64)), {}, stored


def save_tract(tract: Tract, path: str | Path) -> Path:
    """Write a tract to ``.trk``, ``.tck``, ``.vtk``, ``.vtp`` or ``.npz`` atomically.

    ``.trk`` gets a RAS header whose 1 mm grid encloses the streamlines (so stored
    voxel-mm coordinates are positive); ``.trk``/``.tck`` store float32 (about 1e-5 mm
    at 100 mm). Only ``.npz`` keeps the name, provenance and fibre diameter. The file is
    written to a temporary name in the same folder and renamed.

    Raises
    ------
    VtaError
        Unknown extension, an empty tract, an unwritable destination.
    """
    p = Path(path)
    ext = _format_of(p)
    if ext == ".npy":
        raise VtaError(f"tract file '{p}': saving .npy is not supported (use .npz, which keeps ragged streamlines)")
    if len(tract) == 0:
        raise VtaError(f"tract '{tract.name}': nothing to save to '{p}' (no streamlines)")
    with atomic_path(p) as tmp_path:  # umask permissions; OS errors name the file
        tmp = str(tmp_path)
        if ext in (".trk", ".tck"):
            _write_nibabel(tract, tmp, ext)
        elif ext in (".vtk", ".vtp"):
            _write_vtk(tract, tmp)
        else:
            _write_npz(tract, tmp)
    log.info("wrote tract '%s' (%d streamlines) to %s", tract.name, len(tract), p)
    return p


def _write_nibabel(tract: Tract, tmp: str, ext: str) -> None:
    import nibabel as nib
    from nibabel.streamlines import Field

    tg = nib.streamlines.Tractogram(list(tract.streamlines), affine_to_rasmm=np.eye(4))
    if ext == ".tck":
        nib.streamlines.save(tg, tmp)
        return
    lo, hi = tract.bounds_mm()
    origin = np.floor(lo) - 1.0
    dims = np.ceil(hi - origin).astype(int) + 2
    if np.any(dims > np.iinfo(np.int16).max):
        raise VtaError(f"tract '{tract.name}': extent {np.round(hi - lo, 1).tolist()} mm is too large "
                       "for a .trk header")
    v2r = np.eye(4)
    v2r[:3, 3] = origin
    hdr = {Field.VOXEL_TO_RASMM: v2r, Field.VOXEL_SIZES: np.ones(3), Field.DIMENSIONS: dims,
           Field.VOXEL_ORDER: "RAS"}
    nib.streamlines.save(tg, tmp, header=hdr)


def _write_vtk(tract: Tract, tmp: str) -> None:
    import pyvista as pv

    pts, starts, counts = tract._packed
    n = len(counts)
    lines = np.empty(len(pts) + n, dtype=np.int64)
    heads = starts + np.arange(n)
    is_head = np.zeros(len(lines), bool)
    is_head[heads] = True
    lines[heads] = counts
    lines[~is_head] = np.arange(len(pts))
    mesh = pv.PolyData(np.ascontiguousarray(pts), lines=lines)
    mesh.save(tmp, binary=True)


def _write_npz(tract: Tract, tmp: str) -> None:
    pts, _, counts = tract._packed
    with open(tmp, "wb") as f:
        np.savez_compressed(f, points=pts, lengths=counts, name=np.array(tract.name),
                            source=np.array(json.dumps(to_jsonable(tract.source))),
                            fiber_diameter_um=np.array(np.nan if tract.fiber_diameter_um is None
                                                       else tract.fiber_diameter_um))
