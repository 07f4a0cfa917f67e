"""Axisymmetric (r, z) finite-element field basis for leads with ring contacts only.

A lead whose contacts are all full rings (or a conductive tip), in homogeneous isotropic
tissue (optionally with an encapsulation layer), in a sphere centred on the lead axis or
a cylinder coaxial with it, has a rotationally symmetric field. The 3D problem
``div(sigma grad u) = 0`` then reduces to the (r, z) half-plane with the weak form

    integral over the half-plane of  sigma grad u . grad v  2 pi r dr dz,

which is solved here with P2 (or P1) Lagrange triangles on a graded gmsh mesh. It is
the fast path of ``vta`` and the converged reference of its benchmark. The (r, z)
geometry, its presets and meshing are in :mod:`vta.fem.axisym_mesh`, the elements and
the stiffness assembly in :mod:`vta.fem.axisym_space`; this module solves the unit
problems and holds the basis and its builders.

Frame and units
---------------
* (r, z) is the lead's local frame of :mod:`vta.leads`: z along the lead axis with
  z = 0 at the distal end, ``r = sqrt(x^2 + y^2)``; lengths in mm.
* The lead occupies ``r <= a`` for ``z >= a`` plus the quarter disc of radius ``a``
  centred at ``(0, a)`` (the hemispherical tip), ``a`` = lead radius.
* Conductivity inside the FEM is in S/mm, so ``K @ u`` is a current in A and the
  conductance matrix ``G`` is in S. Potentials in V, fields in V/mm, volumes in mm^3.

Boundaries: ``contact_k`` (Dirichlet in the unit solutions), ``outer`` (0 V when
grounded, natural otherwise), ``insulation`` and ``axis`` (natural: zero flux).

The result, :class:`AxisymmetricBasis`, implements the FieldBasis protocol of
``docs/architecture.md``.

Accuracy and cost (Medtronic 3389, tip at the origin along +z, sphere R = 25 mm centred
at z = 4.25 mm, sigma 0.2 S/m, outer grounded, contact 1 at -1 mA, others floating;
VTA at 0.2 V/mm). Converged reference from the uniform refinement sequence
``preset="fine", size_scale=1, 0.71, 0.5, 0.35`` (35k..270k DOFs, Richardson):
impedance 540.58 +- 0.01 ohm, VTA 9.716 +- 0.001 mm^3 (-1 mA) and 50.05 +- 0.01 mm^3
(-3 mA). Presets (P2): "fast" 4.5k DOFs, |error| <= 0.1 % impedance, <= 1.3 % VTA;
"default" 12k DOFs, <= 0.03 % impedance, <= 0.1 % VTA (<= 0.3 % for the 3387, 3391 and
ActiveTip 6146 cases); "fine" 35k DOFs. The mesh, assembly and solve of "default" take
about 0.2-0.4 s on a loaded 2-core machine.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import VtaError
from ..leads import LeadModel, LeadPlacement
from ..threads import run_interruptibly
from .axisym_mesh import (
    PRESETS,
    AxisymPreset,
    _Geometry,
    _lead_geometry,
    _mesh,
    _OuterShape,
    _scaled_preset,
    _spheres_geometry,
)
from .axisym_space import _assemble, _dshape, _grad_lambda, _make_space, _shape
from .locate_tri import TriLocator

__all__ = [
    "PRESETS",
    "AxisymPreset",
    "AxisymmetricBasis",
    "build_axisymmetric_basis",
    "concentric_spheres_basis",
]

log = logging.getLogger(__name__)

_S_PER_M_TO_S_PER_MM = 1e-3
_AXIS_TOL_MM = 1e-6


def _unique_rz(rz: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(unique, inverse)`` with ``unique[inverse] == rz`` when many of the (r, z) points
    coincide, else None.

    A voxel grid around a lead aligned with a world axis maps onto few (r, z) pairs
    (symmetric x/y offsets share r); each is then located and evaluated once. Values
    are the same as evaluating every point (same operations per point). The check
    costs one sort of r when the points are not redundant.
    """
    n = rz.shape[0]
    if n < 1024 or rz.ndim != 2 or rz.shape[1] != 2:
        return None
    ur, ir = np.unique(rz[:, 0], return_inverse=True)
    if ur.size > n // 4:
        return None
    uz, iz = np.unique(rz[:, 1], return_inverse=True)
    if ur.size * uz.size > 2**62:
        return None
    keys, inv = np.unique(ir.ravel().astype(np.int64) * uz.size + iz.ravel(), return_inverse=True)
    if keys.size > n // 2:
        return None
    return np.column_stack([ur[keys // uz.size], uz[keys % uz.size]]), inv.ravel()


# --------------------------------------------------------------------------------------
# the field basis
# --------------------------------------------------------------------------------------


@dataclass
class AxisymmetricBasis:
    """Unit solutions of an axisymmetric lead model: the FieldBasis of ``vta``.

    The field of any setting is ``u = sum_k V_k u_k`` with ``V`` the contact potentials
    (V) and ``u_k`` the unit solution with contact k at 1 V, the other contacts at 0 V
    and the outer boundary at 0 V (``outer_grounded``) or insulating.

    Attributes
    ----------
    n_contacts : int
        Number of contacts K.
    outer_grounded : bool
        True if the outer boundary is a 0 V return electrode.
    conductance_S : ndarray, shape (K, K)
        Conductance matrix G (S): ``I = G @ V`` with I the currents (A) leaving the
        contacts into tissue, computed from the reactions ``K @ u`` at contact DOFs.
    unit_solutions : ndarray, shape (n_dofs, K)
        DOF values (V) of the unit solutions.
    mesh_info : dict
        ``{"kind": "axisymmetric", "nodes", "elements", "dofs", "order", "preset"}``.
    points : ndarray, shape (N, 2)
        Mesh vertices (r, z) in the lead's local frame (mm).
    tris : ndarray, shape (M, 3)
        Triangles (vertex indices).
    elem_dofs : ndarray, shape (M, 3 or 6)
        DOFs of each triangle (P1: vertices; P2: vertices then edge midpoints (0,1),
        (1,2), (2,0)).
    dof_points : ndarray, shape (n_dofs, 2)
        (r, z) of every DOF (mm).
    placement : LeadPlacement
        Maps world points to the local (r, z) frame.
    timings : dict
        Seconds spent in ``mesh``, ``assemble`` and ``solve``.
    vta_level : int
        Sub-division level of :meth:`vta_volume_mm3`.
    """

    n_contacts: int
    outer_grounded: bool
    conductance_S: np.ndarray
    unit_solutions: np.ndarray
    mesh_info: dict
    points: np.ndarray
    tris: np.ndarray
    elem_dofs: np.ndarray
    dof_points: np.ndarray
    placement: LeadPlacement
    timings: dict = field(default_factory=dict)
    vta_level: int = 2
    _stiffness: sp.csr_matrix | None = field(default=None, repr=False)
    _contact_dofs: list = field(default_factory=list, repr=False)
    _solver: object | None = field(default=None, repr=False)
    _locator: object | None = field(default=None, repr=False)
    _glam: np.ndarray | None = field(default=None, repr=False)
    _area: np.ndarray | None = field(default=None, repr=False)
    outer_vertices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    # ---- helpers -------------------------------------------------------------------

    @property
    def order(self) -> int:
        """Polynomial order of the Lagrange elements (1 or 2)."""
        return 2 if self.elem_dofs.shape[1] == 6 else 1

    def _weights(self, weights_V: Sequence[float]) -> np.ndarray:
        w = np.asarray(weights_V, dtype=float).reshape(-1)
        if w.shape != (self.n_contacts,):
            raise VtaError(f"weights_V must have {self.n_contacts} contact potentials, got {w.size}")
        return w

    def dof_values(self, weights_V: Sequence[float]) -> np.ndarray:
        """DOF values (V) of the superposition ``sum_k V_k u_k``."""
        return self.unit_solutions @ self._weights(weights_V)

    def _geometry_cache(self) -> tuple[np.ndarray, np.ndarray]:
        if self._glam is None:
            self._glam, self._area = _grad_lambda(self.points, self.tris)
        return self._glam, self._area

    def to_rz(self, points_mm: np.ndarray) -> np.ndarray:
        """World points (N, 3) in mm -> (r, z) in the lead's local frame (N, 2)."""
        pts = np.asarray(points_mm, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise VtaError(f"points_mm must have shape (N, 3), got {pts.shape}")
        loc = self.placement.to_local(pts)
        return np.column_stack([np.hypot(loc[:, 0], loc[:, 1]), loc[:, 2]])

    def locate_rz(self, rz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Triangle (-1 outside the tissue) and barycentric coordinates of (r, z) points."""
        if self._locator is None:  # pure numpy: no JIT start-up cost
            self._locator = TriLocator(self.points, self.tris)
        return self._locator.locate(np.ascontiguousarray(rz, dtype=float))

    # ---- FieldBasis ----------------------------------------------------------------

    def potential_rz(self, rz: np.ndarray, weights_V: Sequence[float]) -> np.ndarray:
        """Potential (V) at (r, z) points (N, 2) in mm; NaN outside the tissue."""
        u = self.dof_values(weights_V)
        rz = np.asarray(rz, dtype=float)
        uniq = _unique_rz(rz)
        if uniq is not None:
            return self._potential_rz(uniq[0], u)[uniq[1]]
        return self._potential_rz(rz, u)

    def _potential_rz(self, rz: np.ndarray, u: np.ndarray) -> np.ndarray:
        elem, lam = self.locate_rz(rz)
        out = np.full(len(elem), np.nan)
        ok = elem >= 0
        phi = _shape(self.order, lam[ok])
        out[ok] = np.einsum("na,na->n", phi, u[self.elem_dofs[elem[ok]]])
        return out

    def gradient_rz(self, rz: np.ndarray, weights_V: Sequence[float]) -> np.ndarray:
        """(du/dr, du/dz) in V/mm at (r, z) points (N, 2); NaN outside the tissue."""
        u = self.dof_values(weights_V)
        rz = np.asarray(rz, dtype=float)
        uniq = _unique_rz(rz)
        if uniq is not None:
            return self._gradient_rz(uniq[0], u)[uniq[1]]
        return self._gradient_rz(rz, u)

    def _gradient_rz(self, rz: np.ndarray, u: np.ndarray) -> np.ndarray:
        elem, lam = self.locate_rz(rz)
        out = np.full((len(elem), 2), np.nan)
        ok = elem >= 0
        glam, _ = self._geometry_cache()
        e = elem[ok]
        dsh = _dshape(self.order, lam[ok])                      # (n, nb, 3)
        dudlam = np.einsum("nak,na->nk", dsh, u[self.elem_dofs[e]])  # (n, 3)
        out[ok] = np.einsum("nk,nkd->nd", dudlam, glam[e])
        return out

    def potential_at(self, points_mm: np.ndarray, weights_V: Sequence[float]) -> np.ndarray:
        """Potential (V) at world points (N, 3) in mm; NaN outside the tissue."""
        return self.potential_rz(self.to_rz(points_mm), weights_V)

    def field_at(self, points_mm: np.ndarray, weights_V: Sequence[float]) -> np.ndarray:
        """Electric field E = -grad u (V/mm) at world points (N, 3) in mm, in world
        coordinates; NaN outside the tissue (inside the lead or outside the domain)."""
        pts = np.asarray(points_mm, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise VtaError(f"points_mm must have shape (N, 3), got {pts.shape}")
        loc = self.placement.to_local(pts)
        r = np.hypot(loc[:, 0], loc[:, 1])
        g = self.gradient_rz(np.column_stack([r, loc[:, 2]]), weights_V)
        with np.errstate(invalid="ignore", divide="ignore"):
            cx = np.where(r > 0, loc[:, 0] / np.where(r > 0, r, 1.0), 0.0)
            cy = np.where(r > 0, loc[:, 1] / np.where(r > 0, r, 1.0), 0.0)
        e_local = -np.column_stack([g[:, 0] * cx, g[:, 0] * cy, g[:, 1]])
        return e_local @ self.placement.frame.T

    def field_vertices(self, weights_V: Sequence[float]) -> np.ndarray:
        """E = -grad u (V/mm) as (E_r, E_z) at the three vertices of every triangle
        (M, 3, 2); within a P2 triangle E is linear, so this defines it exactly."""
        u = self.dof_values(weights_V)
        glam, _ = self._geometry_cache()
        dsh = _dshape(self.order, np.eye(3))                         # (3 vertices, nb, 3)
        dudlam = np.einsum("vak,ma->mvk", dsh, u[self.elem_dofs])    # (M, 3, 3)
        return -np.einsum("mvk,mkd->mvd", dudlam, glam)

    def vta_volume_mm3(self, weights_V: Sequence[float], threshold_V_per_mm: float,
                       level: int | None = None) -> float:
        """Tissue volume (mm^3) where ``|E| >= threshold_V_per_mm``.

        The integral of ``2 pi r`` over the super-threshold part of the (r, z) mesh.
        E is linear on each (straight P2) triangle, so ``|E|`` is convex there: a
        triangle whose vertices are all below the threshold contributes nothing, one
        whose lower bound ``|E(centroid)| - max_i |E_i - E(centroid)|`` reaches it
        contributes its whole ``integral of 2 pi r``; the others are split into
        ``4**level`` sub-triangles, ``|E|^2 - thr^2`` is interpolated linearly on each
        and the region where it is >= 0 is integrated exactly (error ~ 4**-level).

        Parameters
        ----------
        weights_V : array_like, shape (K,)
            Contact potentials (V).
        threshold_V_per_mm : float
            Activation threshold on ``|E|`` (V/mm).
        level : int, optional
            Sub-division level (default: the preset's ``vta_level``).

        Returns
        -------
        float
            Volume in mm^3 (tissue only; the lead is not part of the mesh).
        """
        thr = float(threshold_V_per_mm)
        if not (thr > 0 and math.isfinite(thr)):
            raise VtaError(f"threshold_V_per_mm must be positive, got {threshold_V_per_mm}")
        lvl = self.vta_level if level is None else int(level)
        ev = self.field_vertices(weights_V)
        _, area = self._geometry_cache()
        r_vert = self.points[self.tris, 0]
        inside, cut = _classify(ev, thr)
        full = float(np.sum(area[inside] * r_vert[inside].mean(axis=1)))
        partial = _threshold_volume(ev[cut], r_vert[cut], area[cut], thr, lvl) if cut.size else 0.0
        return 2.0 * math.pi * full + partial

    def volume_samples(self, weights_V: Sequence[float], min_norm_V_per_mm: float = 0.0,
                       level: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """|E| samples (V/mm) and the tissue volumes they stand for (mm^3).

        Every triangle that reaches ``min_norm_V_per_mm`` is split into ``4**level``
        sub-triangles; a sample is |E| at a sub-triangle's centroid (E is linear on a
        triangle) and its volume is ``2 pi r_centroid area`` (exact for the ring of
        revolution). ``weights[norms >= thr].sum()`` converges to
        :meth:`vta_volume_mm3` like ``4**-level`` (cut triangles only); sorted once, the
        samples give the VTA of every amplitude of a setting.
        """
        ev = self.field_vertices(weights_V)                                  # (M, 3, 2)
        _, area = self._geometry_cache()
        keep = np.einsum("mvd,mvd->mv", ev, ev).max(axis=1) >= float(min_norm_V_per_mm) ** 2
        sub = _subgrid(level)
        centroids = sub.lam[sub.tri].mean(axis=1)                           # (S, 3) barycentric
        e = np.einsum("sv,mvd->msd", centroids, ev[keep])                   # (m, S, 2)
        r = np.einsum("sv,mv->ms", centroids, self.points[self.tris[keep], 0])
        norms = np.sqrt(np.einsum("msd,msd->ms", e, e)).ravel()
        weights = (2.0 * math.pi * r * (area[keep] / len(sub.tri))[:, None]).ravel()
        return norms, weights

    def field_on_grid(self, origin_mm: np.ndarray, spacing_mm: float, shape, weights_V: Sequence[float]) -> np.ndarray:
        """E (nx, ny, nz, 3) in V/mm at the voxel centres ``origin + ijk * spacing``;
        NaN outside the tissue."""
        from .field import grid_points

        pts = grid_points(origin_mm, spacing_mm, shape)
        return self.field_at(pts, weights_V).reshape(tuple(int(n) for n in shape) + (3,))

    def field_probe(self, points_mm: np.ndarray) -> "UnitFieldProbe":
        """Fixed points: the unit fields stored there, E for any setting
        (:mod:`vta.fem.probes`)."""
        from .probes import UnitFieldProbe

        return UnitFieldProbe(self, points_mm)

    def volume_probe(self) -> "PlainVolumeProbe":
        """The VTA volume of any setting (the (r, z) integral is already fast)."""
        from .probes import PlainVolumeProbe

        return PlainVolumeProbe(self)

    def mesh_arrays(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The meridian half-plane in world mm: the (r, z) triangles placed along the
        lead's local +x axis (N, 3), triangles (M, 3) and ``"triangle"``; it holds the
        whole solution of an axisymmetric case."""
        rz = self.points
        local = np.column_stack([rz[:, 0], np.zeros(len(rz)), rz[:, 1]])
        return self.placement.to_world(local), np.asarray(self.tris), "triangle"

    def boundary_field_max(self, weights_V: Sequence[float]) -> float:
        """Largest |E| (V/mm) on the outer boundary of the domain.

        |E| is linear-convex on each triangle, so its maximum on a boundary edge is at a
        vertex: the largest |E| at the outer-boundary vertices of every triangle that
        has one. At or above the VTA threshold, the domain clips the VTA.
        """
        if self.outer_vertices.size == 0:
            return 0.0
        on_outer = np.isin(self.tris, self.outer_vertices)                  # (M, 3)
        tri, local = np.nonzero(on_outer)
        ev = self.field_vertices(weights_V)[tri, local]                      # (n, 2)
        return float(np.sqrt(np.einsum("ij,ij->i", ev, ev)).max())

    # ---- direct solve (verification) ------------------------------------------------

    def solve_contact_potentials(self, potentials_V: Sequence[float]) -> np.ndarray:
        """DOF values (V) of a direct solve with every contact k at ``potentials_V[k]``
        (and the outer boundary at 0 V or insulating); equals :meth:`dof_values`."""
        v = self._weights(potentials_V)
        ud = np.zeros(self.dof_points.shape[0])
        for k, dofs in enumerate(self._contact_dofs):
            ud[dofs] = v[k]
        return _dirichlet_solve(self._stiffness, self._solver, ud[:, None])[:, 0]


@dataclass(frozen=True)
class _SubGrid:
    """Uniform sub-division of the reference triangle into n^2 sub-triangles."""

    lam: np.ndarray   # (V, 3) barycentrics of the sub-vertices
    tri: np.ndarray   # (n^2, 3) sub-triangles (indices into lam)


def _subgrid(level: int) -> _SubGrid:
    n = 2 ** max(int(level), 0)
    idx = {}
    lam = []
    for i in range(n + 1):
        for j in range(n + 1 - i):
            idx[(i, j)] = len(lam)
            lam.append(((n - i - j) / n, i / n, j / n))
    tri = []
    for i in range(n):
        for j in range(n - i):
            tri.append((idx[(i, j)], idx[(i + 1, j)], idx[(i, j + 1)]))
            if i + j <= n - 2:
                tri.append((idx[(i + 1, j)], idx[(i + 1, j + 1)], idx[(i, j + 1)]))
    return _SubGrid(np.array(lam), np.array(tri, dtype=np.int64))


def _classify(ev: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangles entirely above the threshold and triangles cut by it.

    ev : (M, 3, 2) E at the vertices (V/mm), linear in each triangle. Returns index
    arrays ``inside`` (min |E| >= thr guaranteed) and ``cut`` (the rest of those whose
    largest vertex |E| reaches thr; by convexity all others are below everywhere).
    """
    e2 = np.einsum("mvd,mvd->mv", ev, ev)
    reach = e2.max(axis=1) >= thr * thr
    ec = ev.mean(axis=1)
    spread = np.sqrt(np.max(np.sum((ev - ec[:, None, :]) ** 2, axis=2), axis=1))
    lower = np.sqrt(np.sum(ec * ec, axis=1)) - spread
    inside = reach & (lower >= thr)
    return np.nonzero(inside)[0], np.nonzero(reach & ~inside)[0]


def _threshold_volume(ev: np.ndarray, r_vert: np.ndarray, area: np.ndarray, thr: float,
                      level: int) -> float:
    """Integral of 2 pi r over {|E| >= thr} for triangles with linear E.

    Parameters
    ----------
    ev : (M, 3, 2) E at the triangle vertices (V/mm).
    r_vert : (M, 3) r of the vertices (mm).
    area : (M,) triangle areas (mm^2).
    """
    sg = _subgrid(level)
    n2 = sg.tri.shape[0]
    e_sub = np.einsum("sv,mvd->msd", sg.lam, ev)                     # (M, S, 2)
    f = np.einsum("msd,msd->ms", e_sub, e_sub) - thr * thr           # (M, S)
    r_sub = r_vert @ sg.lam.T                                        # (M, S)
    f_t = f[:, sg.tri]                                               # (M, n2, 3)
    r_t = r_sub[:, sg.tri]
    a_t = np.broadcast_to((area / n2)[:, None], f_t.shape[:2])
    return 2.0 * math.pi * float(np.sum(_clip_integral(f_t.reshape(-1, 3), r_t.reshape(-1, 3), a_t.ravel())))


def _clip_integral(f: np.ndarray, r: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Integral of r over {f >= 0} in triangles with linear f and r (vertex values).

    f, r : (S, 3); area : (S,). Returns (S,) in mm^3 / (2 pi).
    """
    pos = f >= 0.0
    npos = pos.sum(axis=1)
    out = np.where(npos == 3, area * r.mean(axis=1), 0.0)
    mixed = np.nonzero((npos == 1) | (npos == 2))[0]
    if mixed.size == 0:
        return out
    fm, rm, am, pm = f[mixed], r[mixed], area[mixed], pos[mixed]
    odd = np.where(npos[mixed] == 1, np.argmax(pm, axis=1), np.argmin(pm, axis=1))
    rows = np.arange(mixed.size)
    o, q1, q2 = odd, (odd + 1) % 3, (odd + 2) % 3
    fo, f1, f2 = fm[rows, o], fm[rows, q1], fm[rows, q2]
    ro, r1, r2 = rm[rows, o], rm[rows, q1], rm[rows, q2]
    t1 = fo / (fo - f1)
    t2 = fo / (fo - f2)
    small = am * t1 * t2 * (3.0 * ro + t1 * (r1 - ro) + t2 * (r2 - ro)) / 3.0
    full = am * (ro + r1 + r2) / 3.0
    out[mixed] = np.where(fo >= 0.0, small, full - small)
    return out


# --------------------------------------------------------------------------------------
# solving
# --------------------------------------------------------------------------------------


_DIRECT_MAX_DOFS = 400_000


class _Solver:
    """Solver for the free-DOF block K_ff: sparse LU (SuperLU, one factorisation shared
    by all right-hand sides) up to ``_DIRECT_MAX_DOFS`` free DOFs, else pyamg smoothed
    aggregation preconditioned CG (relative residual 1e-12), for refined references."""

    def __init__(self, K: sp.csr_matrix, dirichlet: np.ndarray) -> None:
        self.free = np.setdiff1d(np.arange(K.shape[0]), dirichlet)
        kff = K[self.free][:, self.free]
        if self.free.size <= _DIRECT_MAX_DOFS:
            self.kind = "splu"
            self._lu = spla.splu(kff.tocsc(), permc_spec="COLAMD")
        else:
            import pyamg

            self.kind = "pyamg-cg"
            self._ml = pyamg.smoothed_aggregation_solver(kff.tocsr(), symmetry="symmetric")

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve K_ff x = rhs for rhs (n_free, k)."""
        if self.kind == "splu":
            return self._lu.solve(np.ascontiguousarray(rhs))
        out = np.empty_like(rhs)
        for j in range(rhs.shape[1]):
            res: list[float] = []
            out[:, j] = self._ml.solve(rhs[:, j], tol=1e-12, accel="cg", maxiter=1000, residuals=res)
            log.debug("pyamg CG: %d iterations, residual %.1e", len(res), res[-1] / max(res[0], 1e-300))
        return out


def _dirichlet_solve(K: sp.csr_matrix, solver: _Solver, ud: np.ndarray) -> np.ndarray:
    """Solve K u = 0 on the free DOFs with u = ud on the Dirichlet DOFs; ud (n, k)."""
    u = ud.copy()
    u[solver.free] = solver.solve(-(K[solver.free] @ ud))
    return u


def _unit_solutions(K: sp.csr_matrix, contact_dofs: list[np.ndarray], outer_dofs: np.ndarray,
                    grounded: bool):
    """Unit solutions (n, K), conductance matrix (K, K) in S, and the solver."""
    n = K.shape[0]
    parts = list(contact_dofs) + ([outer_dofs] if grounded else [])
    dirichlet = np.unique(np.concatenate(parts))
    solver = _Solver(K, dirichlet)
    ud = np.zeros((n, len(contact_dofs)))
    for k, dofs in enumerate(contact_dofs):
        ud[dofs, k] = 1.0
    U = _dirichlet_solve(K, solver, ud)
    reactions = K @ U                                                # (n, K) in A
    G = np.array([reactions[dofs].sum(axis=0) for dofs in contact_dofs])
    asym = float(np.max(np.abs(G - G.T)) / max(np.max(np.abs(G)), 1e-300))
    log.debug("conductance matrix relative asymmetry %.2e", asym)
    return U, 0.5 * (G + G.T), solver


# --------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------


def boundary_dofs(space: _Space, mesh, geom: _Geometry) -> tuple[list[np.ndarray], np.ndarray]:
    """DOFs of every contact (in the geometry's contact order) and of the outer boundary."""
    contact_dofs = []
    for name in geom.contact_names:
        segs = mesh.boundary.get(name)
        if segs is None or segs.size == 0:
            raise VtaError(f"{name} has no mesh edges: is it inside the domain?")
        contact_dofs.append(space.boundary_dofs(segs))
    return contact_dofs, space.boundary_dofs(mesh.boundary.get("outer", np.empty((0, 2), dtype=np.int64)))


def _build(geom: _Geometry, sigma_by_region: tuple[float, float], grounded: bool,
           placement: LeadPlacement, preset: str, order: int, size_scale: float) -> AxisymmetricBasis:
    """Mesh, assemble and solve a prepared geometry; sigma in S/m per region."""
    p = _scaled_preset(preset, size_scale)
    t0 = time.perf_counter()
    mesh = run_interruptibly(_mesh, geom, p, name="vta-gmsh")
    t1 = time.perf_counter()
    space = _make_space(mesh.points, mesh.tris, order)
    sigma = np.asarray(sigma_by_region, dtype=float)[mesh.region] * _S_PER_M_TO_S_PER_MM
    K = _assemble(space, mesh.tris, sigma)
    contact_dofs, outer = boundary_dofs(space, mesh, geom)
    t2 = time.perf_counter()
    U, G, solver = _unit_solutions(K, contact_dofs, outer, grounded)
    t3 = time.perf_counter()
    info = {
        "kind": "axisymmetric",
        "nodes": int(mesh.points.shape[0]),
        "elements": int(mesh.tris.shape[0]),
        "dofs": int(space.dof_points.shape[0]),
        "order": int(order),
        "preset": preset if size_scale == 1.0 else f"{preset}*{size_scale:g}",
    }
    timings = {"mesh": t1 - t0, "assemble": t2 - t1, "solve": t3 - t2}
    log.info("axisymmetric %s: %d triangles, %d dofs; mesh %.3f s, assemble %.3f s, solve %.3f s",
             info["preset"], info["elements"], info["dofs"], *timings.values())
    return AxisymmetricBasis(
        n_contacts=len(contact_dofs), outer_grounded=bool(grounded), conductance_S=G,
        unit_solutions=U, mesh_info=info, points=mesh.points, tris=mesh.tris,
        elem_dofs=space.elem_dofs, dof_points=space.dof_points, placement=placement,
        timings=timings, vta_level=p.vta_level, _stiffness=K, _contact_dofs=contact_dofs,
        _solver=solver, outer_vertices=np.unique(mesh.boundary.get("outer", np.empty((0, 2), dtype=np.int64))),
    )


def _check_positive(value: float, what: str) -> float:
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise VtaError(f"{what} must be a positive number, got {value}")
    return v


def _outer_kind(outer: str) -> bool:
    if outer not in ("ground", "insulating"):
        raise VtaError(f"outer boundary must be 'ground' or 'insulating', got {outer!r}")
    return outer == "ground"


def _outer_shape(lead: LeadModel, placement: LeadPlacement, center_mm: Sequence[float],
                 radius: float, shape: str, length: float | None, t_encap: float) -> _OuterShape:
    """Domain in the lead's local frame, with the on-axis and containment checks."""
    c = placement.to_local(np.asarray(center_mm, dtype=float).reshape(3))
    off = float(math.hypot(c[0], c[1]))
    if off > _AXIS_TOL_MM:
        raise VtaError(
            f"the axisymmetric model needs the domain centre on the lead axis; it is "
            f"{off:.3g} mm off the axis (tolerance {_AXIS_TOL_MM:g} mm): use the 3D model"
        )
    z_c = float(c[2])
    b = lead.radius_mm + t_encap
    last = lead.contacts()[-1].z_end_mm
    if shape == "sphere":
        out = _OuterShape("sphere", z_c, radius, z_c - radius)
        if radius <= b:
            raise VtaError(f"domain radius {radius} mm must exceed the lead radius plus encapsulation {b} mm")
    elif shape == "cylinder":
        length = _check_positive(length if length is not None else float("nan"), "cylinder domain length_mm")
        out = _OuterShape("cylinder", z_c, radius, z_c - 0.5 * length, z_c + 0.5 * length)
    else:
        raise VtaError(f"axisymmetric domain shape must be 'sphere' or 'cylinder', got {shape!r}")
    margin = 1e-3 * radius
    if out.z_bottom >= -t_encap - margin or out.z_exit(b) <= last + margin or radius <= b + margin:
        raise VtaError(
            f"the contacts of '{lead.name}' (tip at z = 0, last contact ends at z = {last:g} mm "
            f"along the lead) are not inside the {shape} domain (local z from {out.z_bottom:.3g} "
            f"to {out.z_exit(b):.3g} mm); enlarge or move the domain"
        )
    return out


def build_axisymmetric_basis(
    lead: LeadModel,
    placement: LeadPlacement,
    domain_center_mm: Sequence[float],
    domain_radius_mm: float,
    sigma_S_per_m: float,
    outer: str = "ground",
    encapsulation_thickness_mm: float = 0.0,
    encapsulation_sigma_S_per_m: float | None = None,
    preset: str = "default",
    order: int = 2,
    size_scale: float = 1.0,
    domain_shape: str = "sphere",
    domain_length_mm: float | None = None,
) -> AxisymmetricBasis:
    """Axisymmetric FEM field basis of a ring-contact lead in homogeneous tissue.

    Parameters
    ----------
    lead : LeadModel
        Lead with only ring contacts and/or a conductive tip (``lead.is_axisymmetric``).
    placement : LeadPlacement
        Lead tip and direction in world mm.
    domain_center_mm : sequence of 3 float
        World centre of the domain (mm); must lie on the lead axis (1e-6 mm).
    domain_radius_mm : float
        Sphere (or cylinder) radius (mm).
    sigma_S_per_m : float
        Tissue conductivity (S/m).
    outer : {"ground", "insulating"}
        Outer boundary: 0 V return electrode or zero flux.
    encapsulation_thickness_mm : float
        Thickness of the encapsulation layer around the lead (mm); 0 = none.
    encapsulation_sigma_S_per_m : float, optional
        Conductivity of the encapsulation layer (S/m); required if the thickness > 0.
    preset : {"fast", "default", "fine"}
        Mesh accuracy preset (see :data:`PRESETS`).
    order : {1, 2}
        Lagrange element order.
    size_scale : float
        Multiplies every mesh size and the grading slope (< 1 refines uniformly); use
        e.g. ``preset="fine", size_scale=0.25`` for a converged reference.
    domain_shape : {"sphere", "cylinder"}
        Sphere centred on the axis, or a cylinder coaxial with the lead.
    domain_length_mm : float, optional
        Axial length of a cylinder domain (mm), centred at ``domain_center_mm``.

    Returns
    -------
    AxisymmetricBasis
        With ``timings`` {"mesh", "assemble", "solve"} in seconds.

    Raises
    ------
    VtaError
        If the lead has segmented contacts, the domain centre is off the lead axis, the
        contacts are not inside the domain, or a parameter is invalid.
    """
    if not lead.is_axisymmetric:
        raise VtaError(
            f"lead '{lead.name}' has segmented (directional) contacts: the axisymmetric "
            f"model needs ring contacts only; use the 3D model"
        )
    grounded = _outer_kind(outer)
    sigma = _check_positive(sigma_S_per_m, "tissue conductivity sigma_S_per_m")
    radius = _check_positive(domain_radius_mm, "domain_radius_mm")
    t = float(encapsulation_thickness_mm)
    if not (t >= 0 and math.isfinite(t)):
        raise VtaError(f"encapsulation_thickness_mm must be >= 0, got {encapsulation_thickness_mm}")
    sigma_enc = sigma
    if t > 0:
        if encapsulation_sigma_S_per_m is None:
            raise VtaError("encapsulation_sigma_S_per_m is required when the encapsulation thickness is > 0")
        sigma_enc = _check_positive(encapsulation_sigma_S_per_m, "encapsulation_sigma_S_per_m")
    shape = _outer_shape(lead, placement, domain_center_mm, radius, domain_shape, domain_length_mm, t)
    geom = _lead_geometry(lead, shape, t)
    return _build(geom, (sigma, sigma_enc), grounded, placement, preset, order, size_scale)


def concentric_spheres_basis(a_mm: float, R_mm: float, sigma_S_per_m: float,
                             preset: str = "default", order: int = 2,
                             size_scale: float = 1.0) -> AxisymmetricBasis:
    """Spherical electrode of radius ``a_mm`` centred at the world origin inside a
    grounded sphere of radius ``R_mm`` (analytic verification case).

    Exact solution for the electrode at V0: ``u(rho) = V0 (a/rho) (R - rho)/(R - a)``
    and ``G = 4 pi sigma a R / (R - a)``. The axis of symmetry is world +z.
    """
    a = _check_positive(a_mm, "a_mm")
    R = _check_positive(R_mm, "R_mm")
    if R <= a:
        raise VtaError(f"outer radius {R} mm must exceed the electrode radius {a} mm")
    sigma = _check_positive(sigma_S_per_m, "sigma_S_per_m")
    geom = _spheres_geometry(a, R)
    placement = LeadPlacement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    return _build(geom, (sigma, sigma), True, placement, preset, order, size_scale)
