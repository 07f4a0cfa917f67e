"""Streamlines in world mm: the :class:`Tract`, polyline geometry, fibre pieces for axons.

A :class:`Tract` is a named set of streamlines, each an ``(n_i, 3)`` polyline in world
millimetres (RAS+, the same space as the anatomy), with provenance and an optional
fibre diameter (um) for the axon models.

Geometry works on the packed form (all points in one array, vectorised numpy):
:func:`arc_length`, :func:`resample` (points at given arc lengths, optional straight
extension past the ends), :func:`closest_points`, :func:`select_near`,
:func:`clip_to_sphere` and :func:`clip_to_region` (keep the longest inside piece of
each streamline), and :func:`fibre_segments_near` (fixed-length pieces centred on
the point closest to a target: what the axon models are placed on).

Files are read and written by :mod:`vta.activation.tract_io`; the synthetic ALIC
bundle is :mod:`vta.activation.alic_bundle`; :mod:`vta.activation.tracts` gathers
the public names of all three.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import VtaError

if TYPE_CHECKING:  # pragma: no cover
    from ..anatomy.atlas_io import Structure

__all__ = [
    "END_TANGENT_MM", "FibreSegments", "Tract",
    "arc_length", "clip_to_region", "clip_to_sphere", "closest_points", "fibre_segments_near", "length_mm",
    "resample", "resample_step", "select_near",
]

#: Arc length (mm) over which an end tangent is measured for straight extensions.
END_TANGENT_MM = 1.0


# --- the tract ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Tract:
    """A named set of streamlines in world mm.

    Attributes
    ----------
    name : str
        Tract name, e.g. ``"ATR_R"``.
    streamlines : tuple of ndarray
        Polylines, each ``(n_i, 3)`` float64 with ``n_i >= 2``, world mm (read-only
        arrays). Any sequence of array-likes is accepted and converted.
    source : dict
        Provenance: file, format, transforms, generator.
    fiber_diameter_um : float or None
        Fibre (outer) diameter for the axon models, micrometres; ``None`` leaves the
        choice to the model.

    Raises
    ------
    VtaError
        A streamline that is not ``(n, 3)`` with ``n >= 2``, non-finite coordinates,
        a non-positive diameter.
    """

    name: str
    streamlines: tuple[np.ndarray, ...]
    source: dict[str, Any] = field(default_factory=dict)
    fiber_diameter_um: float | None = None

    def __post_init__(self) -> None:
        out = []
        for i, s in enumerate(self.streamlines):
            a = np.array(s, dtype=np.float64)
            if a.ndim != 2 or a.shape[1] != 3:
                raise VtaError(f"tract '{self.name}': streamline {i} must have shape (n, 3) in mm, got {a.shape}")
            if a.shape[0] < 2:
                raise VtaError(f"tract '{self.name}': streamline {i} has {a.shape[0]} point(s); at least 2 needed")
            a.setflags(write=False)
            out.append(a)
        object.__setattr__(self, "streamlines", tuple(out))
        object.__setattr__(self, "source", dict(self.source))
        pts = self._packed[0]
        if not np.all(np.isfinite(pts)):
            bad = int(np.searchsorted(self._packed[1], np.flatnonzero(~np.isfinite(pts).all(axis=1))[0], "right") - 1)
            raise VtaError(f"tract '{self.name}': streamline {bad} has NaN or infinite coordinates")
        if self.fiber_diameter_um is not None:
            d = float(self.fiber_diameter_um)
            if not (np.isfinite(d) and d > 0):
                raise VtaError(f"tract '{self.name}': fiber_diameter_um must be > 0, got {self.fiber_diameter_um}")
            object.__setattr__(self, "fiber_diameter_um", d)

    def __len__(self) -> int:
        return len(self.streamlines)

    def __repr__(self) -> str:
        return (f"Tract(name={self.name!r}, n_streamlines={len(self)}, n_points={self.n_points}, "
                f"fiber_diameter_um={self.fiber_diameter_um})")

    @cached_property
    def _packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All points ``(M, 3)``, start index ``(n,)`` and point count ``(n,)`` per streamline."""
        counts = np.array([len(s) for s in self.streamlines], dtype=np.int64)
        starts = np.cumsum(counts) - counts
        pts = np.concatenate(self.streamlines) if self.streamlines else np.empty((0, 3))
        pts.setflags(write=False)
        return pts, starts, counts

    @cached_property
    def _arc(self) -> tuple[np.ndarray, np.ndarray]:
        """Arc length of every packed point within its streamline ``(M,)`` and totals ``(n,)`` (mm)."""
        pts, starts, counts = self._packed
        if len(counts) == 0:
            return np.empty(0), np.empty(0)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        seg[(starts[1:] - 1)] = 0.0  # no segment between consecutive streamlines
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        local = cum - np.repeat(cum[starts], counts)
        return local, local[starts + counts - 1]

    @property
    def n_points(self) -> int:
        """Total number of points."""
        return int(self._packed[2].sum())

    @property
    def points_mm(self) -> np.ndarray:
        """All points of all streamlines, ``(M, 3)`` world mm (read-only)."""
        return self._packed[0]

    @property
    def streamline_ids(self) -> np.ndarray:
        """Index of the streamline of every point in :attr:`points_mm`, ``(M,)``."""
        return np.repeat(np.arange(len(self)), self._packed[2])

    def lengths_mm(self) -> np.ndarray:
        """Arc length of every streamline (mm), ``(n,)``."""
        return _packed_arc(self)[1]

    def bounds_mm(self) -> np.ndarray:
        """Bounding box of all points, ``[[x0, y0, z0], [x1, y1, z1]]`` (mm)."""
        if len(self) == 0:
            raise VtaError(f"tract '{self.name}' is empty (no streamlines)")
        p = self.points_mm
        return np.vstack([p.min(axis=0), p.max(axis=0)])

    def with_streamlines(self, streamlines: Iterable[np.ndarray], **source: Any) -> "Tract":
        """A tract with the same name and diameter, new streamlines and ``source`` updated."""
        return Tract(self.name, tuple(streamlines), {**self.source, **source}, self.fiber_diameter_um)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "Tract":
        """The streamlines at ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return self.with_streamlines([self.streamlines[i] for i in idx])

    def transformed(self, affine: np.ndarray) -> "Tract":
        """Every point mapped through a 4x4 affine (mm -> mm)."""
        a = _check_affine4(affine, f"tract '{self.name}'")
        pts, starts, _ = self._packed
        q = pts @ a[:3, :3].T + a[:3, 3]
        return self.with_streamlines(np.split(q, starts[1:]), affine=a.tolist())

    def translated(self, offset_mm: Sequence[float]) -> "Tract":
        """Every point shifted by ``offset_mm`` (3,) mm."""
        off = _vec3(offset_mm, f"tract '{self.name}': offset_mm")
        pts, starts, _ = self._packed
        return self.with_streamlines(np.split(pts + off, starts[1:]), offset_mm=off.tolist())

    def resampled(self, step_mm: float) -> "Tract":
        """Every streamline resampled at uniform arc spacing <= ``step_mm`` (ends kept)."""
        return self.with_streamlines([resample_step(s, step_mm) for s in self.streamlines])


def _vec3(v: Any, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=float).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise VtaError(f"{what} must be 3 finite numbers (mm), got {v!r}")
    return a


def _check_affine4(affine: Any, what: str) -> np.ndarray:
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise VtaError(f"{what}: affine must be a finite 4x4 matrix, got shape {a.shape}")
    return a


# --- polyline geometry --------------------------------------------------------------


def _polyline(streamline: np.ndarray) -> np.ndarray:
    p = np.asarray(streamline, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 2:
        raise VtaError(f"a streamline must have shape (n, 3) with n >= 2 (mm), got {p.shape}")
    return p


def arc_length(streamline: np.ndarray) -> np.ndarray:
    """Cumulative arc length at every point of a polyline, ``(n,)`` mm, starting at 0."""
    p = _polyline(streamline)
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])


def length_mm(streamline: np.ndarray) -> float:
    """Total arc length of a polyline (mm)."""
    return float(arc_length(streamline)[-1])


def _packed_arc(tract: Tract) -> tuple[np.ndarray, np.ndarray]:
    """Arc length of every packed point within its streamline ``(M,)`` and totals ``(n,)`` (mm)."""
    return tract._arc


def _interp_packed(tract: Tract, which: np.ndarray, s: np.ndarray, extrapolate: bool) -> np.ndarray:
    """Points at arc lengths ``s`` ``(k, m)`` mm along streamlines ``which`` ``(k,)``.

    Beyond the ends the streamline is continued straight along its end tangent
    (chord over the last :data:`END_TANGENT_MM`) when ``extrapolate``; else it is an error.
    """
    pts, starts, counts = tract._packed
    local, total = _packed_arc(tract)
    k = len(which)
    s = np.asarray(s, dtype=float).reshape(k, -1)
    L = total[which][:, None]
    if np.any(L <= 0):
        bad = int(which[np.flatnonzero(L[:, 0] <= 0)[0]])
        raise VtaError(f"tract '{tract.name}': streamline {bad} has zero length")
    if not extrapolate:
        tol = 1e-9 * np.maximum(L, 1.0)
        if np.any(s < -tol) or np.any(s > L + tol):
            raise VtaError(f"tract '{tract.name}': arc positions must lie in [0, length] "
                           f"(got {s.min():.4g} .. {s.max():.4g} mm); pass extrapolate=True to extend")
    sc = np.clip(s, 0.0, L)
    # strictly increasing global key: streamline i's local arc shifted past all earlier ones
    base = np.concatenate([[0.0], np.cumsum(total + 1.0)[:-1]])
    key = local + np.repeat(base, counts)
    target = sc + base[which][:, None]
    st, ct = starts[which][:, None], counts[which][:, None]
    j = np.searchsorted(key, target, side="right") - 1
    j = np.clip(j, st, st + ct - 2)
    a, b = pts[j], pts[j + 1]
    seg = key[j + 1] - key[j]
    frac = np.divide(target - key[j], seg, out=np.zeros_like(seg), where=seg > 0)
    out = a + frac[..., None] * (b - a)
    lo, hi = s < 0, s > L
    if np.any(lo) or np.any(hi):
        d = np.minimum(END_TANGENT_MM, L[:, 0])
        ends = _interp_packed(tract, which, np.stack([np.zeros(k), d, L[:, 0] - d, L[:, 0]], axis=1), False)
        t0 = _unit(ends[:, 1] - ends[:, 0])
        t1 = _unit(ends[:, 3] - ends[:, 2])
        out = np.where(lo[..., None], ends[:, None, 0] + s[..., None] * t0[:, None], out)
        out = np.where(hi[..., None], ends[:, None, 3] + (s - L)[..., None] * t1[:, None], out)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


def resample(streamline: np.ndarray, offsets_mm: np.ndarray | Sequence[float],
             extrapolate: bool = False) -> np.ndarray:
    """Points at given arc lengths along a polyline (linear interpolation).

    Parameters
    ----------
    streamline : (n, 3) array
        Polyline (mm).
    offsets_mm : array of arc lengths (mm)
        Positions measured from the first point along the polyline.
    extrapolate : bool
        Allow positions below 0 or beyond the length: the polyline is then continued
        straight along its end tangent (the chord over the last 1 mm). Otherwise such
        positions raise a `VtaError`.

    Returns
    -------
    ndarray, shape ``offsets_mm.shape + (3,)``
        Points (mm); positions at vertices return the vertices exactly.
    """
    p = _polyline(streamline)
    s = np.asarray(offsets_mm, dtype=float)
    if not np.all(np.isfinite(s)):
        raise VtaError("resample: arc positions must be finite (mm)")
    t = Tract("streamline", (p,))
    return _interp_packed(t, np.zeros(1, np.int64), s.reshape(1, -1), extrapolate)[0].reshape(s.shape + (3,))


def resample_step(streamline: np.ndarray, step_mm: float) -> np.ndarray:
    """A polyline resampled at uniform arc spacing of at most ``step_mm`` (both ends kept)."""
    if not step_mm > 0:
        raise VtaError(f"resample step must be > 0 mm, got {step_mm}")
    L = length_mm(streamline)
    n = max(int(np.ceil(L / step_mm - 1e-9)), 1) + 1
    return resample(streamline, np.linspace(0.0, L, n))


def closest_points(tract: Tract, center_mm: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The point of every streamline closest to ``center_mm`` (exact on the segments).

    Returns
    -------
    distance_mm : (n,) array
        Distance from ``center_mm`` to each streamline (mm).
    arc_mm : (n,) array
        Arc position of the closest point along its streamline (mm).
    point_mm : (n, 3) array
        The closest points (mm).
    """
    c = _vec3(center_mm, "center_mm")
    pts, starts, counts = tract._packed
    n = len(counts)
    if n == 0:
        return np.empty(0), np.empty(0), np.empty((0, 3))
    local, _ = _packed_arc(tract)
    rel = pts - c
    a = rel[:-1]
    d = np.diff(pts, axis=0)  # segment k joins points k and k+1; starts[j] - 1 are joins between streamlines
    dd = np.einsum("ij,ij->i", d, d)
    t = np.einsum("ij,ij->i", a, d)
    np.divide(-t, dd, out=t, where=dd > 0)
    t[dd <= 0] = 0.0
    np.clip(t, 0.0, 1.0, out=t)
    q = a + t[:, None] * d
    dist2 = np.einsum("ij,ij->i", q, q)
    dist2[starts[1:] - 1] = np.inf
    # streamline j owns segments starts[j] .. starts[j] + counts[j] - 2 (+ the join, at infinity)
    dmin = np.minimum.reduceat(dist2, starts)
    group = np.diff(np.append(starts, len(dist2)))
    pos = np.where(dist2 == np.repeat(dmin, group), np.arange(len(dist2)), len(dist2))
    best = np.minimum.reduceat(pos, starts)
    arc = local[best] + t[best] * np.sqrt(dd[best])
    return np.sqrt(dmin), arc, q[best] + c


def select_near(tract: Tract, center_mm: Sequence[float], radius_mm: float) -> Tract:
    """Whole streamlines that pass within ``radius_mm`` of ``center_mm`` (exact on segments)."""
    dist, _, _ = closest_points(tract, center_mm)
    idx = np.flatnonzero(dist <= radius_mm)
    return tract.with_streamlines(
        [tract.streamlines[i] for i in idx],
        selected_near={"center_mm": _vec3(center_mm, "center_mm").tolist(), "radius_mm": float(radius_mm)})


def _sphere_crossing(a: np.ndarray, b: np.ndarray, c: np.ndarray, r: float, entering: bool) -> np.ndarray:
    """Parameter t in [0, 1] where segments a->b cross the sphere (c, r)."""
    d = b - a
    f = a - c
    A = np.einsum("ij,ij->i", d, d)
    B = 2.0 * np.einsum("ij,ij->i", f, d)
    C = np.einsum("ij,ij->i", f, f) - r * r
    disc = np.sqrt(np.maximum(B * B - 4 * A * C, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-B - disc) / (2 * A) if entering else (-B + disc) / (2 * A)
    return np.clip(np.nan_to_num(t, nan=0.0 if not entering else 1.0), 0.0, 1.0)


def _longest_pieces(tract: Tract, inside: np.ndarray, min_length_mm: float,
                    sphere: tuple[np.ndarray, float] | None) -> tuple[list[np.ndarray], np.ndarray]:
    """Longest run of inside points of every streamline (+ exact sphere crossings)."""
    pts, starts, counts = tract._packed
    n = len(counts)
    if n == 0 or not inside.any():
        return [], np.empty(0, np.int64)
    local, _ = _packed_arc(tract)
    ends = starts + counts - 1
    first = np.zeros(len(pts), bool)
    first[starts] = True
    last = np.zeros(len(pts), bool)
    last[ends] = True
    prev_in = np.concatenate([[False], inside[:-1]]) & ~first
    next_in = np.concatenate([inside[1:], [False]]) & ~last
    rs = np.flatnonzero(inside & ~prev_in)
    re = np.flatnonzero(inside & ~next_in)
    length = local[re] - local[rs]
    has_in = ~first[rs]  # a previous (outside) point exists: piece starts on the boundary
    has_out = ~last[re]
    p_in = p_out = None
    if sphere is not None:
        c, r = sphere
        p_in = np.full((len(rs), 3), np.nan)
        p_out = np.full((len(re), 3), np.nan)
        if has_in.any():
            a, b = pts[rs[has_in] - 1], pts[rs[has_in]]
            t = _sphere_crossing(a, b, c, r, entering=True)
            p_in[has_in] = a + t[:, None] * (b - a)
            length[has_in] += np.linalg.norm(b - p_in[has_in], axis=1)
        if has_out.any():
            a, b = pts[re[has_out]], pts[re[has_out] + 1]
            t = _sphere_crossing(a, b, c, r, entering=False)
            p_out[has_out] = a + t[:, None] * (b - a)
            length[has_out] += np.linalg.norm(p_out[has_out] - a, axis=1)
    sid = np.searchsorted(starts, rs, side="right") - 1
    order = np.lexsort((-length, sid))
    _, firsts = np.unique(sid[order], return_index=True)
    best = order[firsts]
    best = best[(length[best] >= min_length_mm) & (length[best] > 0)]
    pieces, keep = [], []
    for k in best:
        parts = [pts[rs[k]:re[k] + 1]]
        if p_in is not None and has_in[k]:
            parts.insert(0, p_in[k][None])
        if p_out is not None and has_out[k]:
            parts.append(p_out[k][None])
        piece = np.concatenate(parts)
        if len(piece) >= 2:
            pieces.append(piece)
            keep.append(sid[k])
    return pieces, np.asarray(keep, dtype=np.int64)


def clip_to_sphere(tract: Tract, center_mm: Sequence[float], radius_mm: float, min_length_mm: float = 1.0,
                   return_index: bool = False) -> Tract | tuple[Tract, np.ndarray]:
    """Keep, of every streamline, its longest piece inside a sphere.

    Pieces end exactly on the sphere (the crossing point is interpolated on the
    segment that crosses it); pieces shorter than ``min_length_mm`` (arc length, mm)
    are dropped, and so are streamlines without a point inside. A segment whose two
    ends both lie outside is not tested (a chord shorter than the point spacing).

    Parameters
    ----------
    center_mm : (3,) mm
    radius_mm : float, mm (> 0)
    min_length_mm : float, mm
    return_index : bool
        Also return the index of the source streamline of every piece.
    """
    c = _vec3(center_mm, "center_mm")
    if not radius_mm > 0:
        raise VtaError(f"clip_to_sphere: radius_mm must be > 0, got {radius_mm}")
    inside = np.einsum("ij,ij->i", tract.points_mm - c, tract.points_mm - c) <= radius_mm ** 2
    pieces, idx = _longest_pieces(tract, inside, min_length_mm, (c, float(radius_mm)))
    out = tract.with_streamlines(pieces, clipped_to_sphere={"center_mm": c.tolist(), "radius_mm": float(radius_mm),
                                                            "min_length_mm": float(min_length_mm)})
    return (out, idx) if return_index else out


def clip_to_region(tract: Tract, region: "Structure | Callable[[np.ndarray], np.ndarray]",
                   min_length_mm: float = 1.0, threshold: float = 0.5,
                   return_index: bool = False) -> Tract | tuple[Tract, np.ndarray]:
    """Keep, of every streamline, its longest run of consecutive points inside a region.

    Parameters
    ----------
    region : Structure or callable
        A :class:`vta.anatomy.atlas_io.Structure` (inside: probability >= ``threshold`` at the
        nearest voxel) or a function mapping ``(M, 3)`` points (mm) to a boolean ``(M,)``.
    min_length_mm : float
        Shorter pieces (arc length between their first and last inside point, mm) are dropped.
    return_index : bool
        Also return the index of the source streamline of every piece.
    """
    pts = tract.points_mm
    if hasattr(region, "contains"):
        inside = np.asarray(region.contains(pts, threshold), dtype=bool)  # type: ignore[union-attr]
        what = getattr(region, "name", "region")
    elif callable(region):
        inside = np.asarray(region(pts), dtype=bool)
        what = getattr(region, "__name__", "region")
    else:
        raise VtaError("clip_to_region: region must be a Structure or a function of (M, 3) points")
    if inside.shape != (len(pts),):
        raise VtaError(f"clip_to_region: the region returned shape {inside.shape}, expected ({len(pts)},)")
    pieces, idx = _longest_pieces(tract, inside, min_length_mm, None)
    out = tract.with_streamlines(pieces, clipped_to_region={"region": str(what), "min_length_mm": float(min_length_mm)})
    return (out, idx) if return_index else out


# --- fixed-length pieces for axon models --------------------------------------------


@dataclass(frozen=True, eq=False)
class FibreSegments:
    """Fixed-length fibre pieces centred on the streamline points closest to a target.

    Attributes
    ----------
    points_mm : (n, m, 3) array
        Node positions of every piece (mm), in the streamline's own direction.
    offsets_mm : (m,) array
        Arc position of every node relative to the piece's centre (mm).
    streamline_index : (n,) int array
        Index of the source streamline in the tract.
    distance_mm : (n,) array
        Distance from the target to the streamline (mm).
    centre_mm : (n, 3) array
        The closest point (the piece's centre, arc offset 0), mm.
    extension_mm : (n, 2) array
        Straight extension past the streamline's start / end that the piece needed (mm).
    tract_name : str
    fiber_diameter_um : float or None
    """

    points_mm: np.ndarray
    offsets_mm: np.ndarray
    streamline_index: np.ndarray
    distance_mm: np.ndarray
    centre_mm: np.ndarray
    extension_mm: np.ndarray
    tract_name: str = ""
    fiber_diameter_um: float | None = None

    def __len__(self) -> int:
        return len(self.streamline_index)

    @property
    def length_mm(self) -> float:
        """Arc length of every piece (mm)."""
        return float(self.offsets_mm[-1] - self.offsets_mm[0]) if len(self.offsets_mm) else 0.0


def fibre_segments_near(tract: Tract, center_mm: Sequence[float], length_mm: float, radius_mm: float, *,
                        step_mm: float = 0.5, offsets_mm: Sequence[float] | np.ndarray | None = None,
                        max_fibres: int | None = None) -> FibreSegments:
    """Pieces of fixed length of every streamline that passes within ``radius_mm`` of a point.

    Each piece is centred (in arc length) on the streamline's point closest to
    ``center_mm`` and continued straight along the end tangent where the streamline
    is too short on that side. Axon models need such fixed-length fibres.

    Parameters
    ----------
    tract : Tract
    center_mm : (3,) mm
        Target, e.g. the active contact's centre.
    length_mm : float
        Piece length (mm).
    radius_mm : float
        Streamlines farther than this from the target are skipped (mm).
    step_mm : float
        Node spacing of the default node grid: ``ceil(length / step) + 1`` equally
        spaced nodes over ``[-length/2, length/2]`` (mm).
    offsets_mm : array, optional
        Explicit node positions relative to the centre (mm), increasing, within
        ``[-length/2, length/2]``; e.g. the node of Ranvier positions of an axon model.
    max_fibres : int, optional
        Keep only the nearest ``max_fibres`` streamlines.

    Returns
    -------
    FibreSegments
        Ordered by streamline index (nearest first when ``max_fibres`` is given).
    """
    if not length_mm > 0:
        raise VtaError(f"fibre_segments_near: length_mm must be > 0, got {length_mm}")
    if not radius_mm >= 0:
        raise VtaError(f"fibre_segments_near: radius_mm must be >= 0, got {radius_mm}")
    half = 0.5 * float(length_mm)
    if offsets_mm is None:
        if not step_mm > 0:
            raise VtaError(f"fibre_segments_near: step_mm must be > 0, got {step_mm}")
        m = max(int(np.ceil(length_mm / step_mm - 1e-9)), 1) + 1
        off = np.linspace(-half, half, m)
    else:
        off = np.asarray(offsets_mm, dtype=float).reshape(-1)
        if len(off) < 2 or not np.all(np.isfinite(off)) or np.any(np.diff(off) <= 0):
            raise VtaError("fibre_segments_near: offsets_mm must hold >= 2 finite, increasing positions (mm)")
        if off[0] < -half - 1e-9 or off[-1] > half + 1e-9:
            raise VtaError(f"fibre_segments_near: offsets_mm span [{off[0]:.4g}, {off[-1]:.4g}] mm exceeds "
                           f"+-length/2 = {half:.4g} mm")
    dist, arc, point = closest_points(tract, center_mm)
    idx = np.flatnonzero(dist <= radius_mm)
    if max_fibres is not None and len(idx) > max_fibres:
        idx = idx[np.argsort(dist[idx], kind="stable")[:max_fibres]]
    total = tract.lengths_mm()
    s = arc[idx][:, None] + off[None, :]
    pts = _interp_packed(tract, idx, s, extrapolate=True) if len(idx) else np.empty((0, len(off), 3))
    ext = np.stack([np.maximum(0.0, -(arc[idx] + off[0])), np.maximum(0.0, arc[idx] + off[-1] - total[idx])], axis=1)
    return FibreSegments(pts, off, idx, dist[idx], point[idx], ext, tract.name, tract.fiber_diameter_um)
