"""Unit solutions per contact, conductance matrix and the tetrahedral FieldBasis.

For a mesh of the tissue around a lead (contacts as tagged boundaries), solve
-div(sigma grad u) = 0 once per contact k with u = 1 V on contact k, 0 V on every other
contact, and on the outer boundary either 0 V (grounded) or no flux (insulating); the
lead insulation is a natural (no-flux) boundary. All K solves share one reduced matrix
and one preconditioner (pyamg smoothed aggregation + CG) or one sparse LU
factorisation for small systems.

The conductance matrix G (S) comes from the reactions: the current leaving contact j
into the tissue for unit solution k is the sum of ``K_full @ u_k`` over the DOFs of
contact j (not from a surface flux integral, which is biased).

Units inside: mm, V, S/mm -> A. G is in S.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .assembly import DofMap, assemble_stiffness, build_dofmap, element_geometry
from .field import (
    element_gradient_norm_max,
    gradient_at_located,
    grid_points,
    potential_at_located,
    threshold_volume,
)
from .locate import TetLocator

__all__ = ["TetFieldBasis", "solve_unit_fields", "DIRECT_MAX_DOFS", "contact_dofs"]

log = logging.getLogger(__name__)

#: "auto" uses a sparse LU below this many free DOFs and AMG-CG above. Measured on a
#: 2-core machine: SuperLU on 3D FEM matrices fills in badly (P2, 14k DOFs: 1.0 s
#: factorisation vs 0.04 s AMG setup + 0.09 s per CG solve; P1, 11k DOFs: 2.8 s vs
#: 0.09 s + 0.2 s); below ~5k unknowns both take a few hundredths of a second.
DIRECT_MAX_DOFS = 5_000


def contact_dofs(mesh: Any, dofmap: DofMap, name: str) -> np.ndarray:
    """DOFs on the boundary ``name`` of a skfem mesh (vertices + edges for P2)."""
    if name not in (mesh.boundaries or {}):
        raise ValueError(f"mesh has no boundary {name!r}; it has {sorted(mesh.boundaries or {})}")
    facets = mesh.facets[:, np.asarray(mesh.boundaries[name])]
    return dofmap.vertex_set_dofs(facets)


class TetFieldBasis:
    """Per-contact unit solutions on a tetrahedral mesh (implements FieldBasis).

    Attributes
    ----------
    n_contacts : int
        K.
    outer_grounded : bool
        True when the outer boundary is a 0 V return.
    conductance_S : ndarray, shape (K, K)
        G such that I_A = G @ V_volts (currents leaving the contacts into tissue).
    mesh_info : dict
        ``{"kind": "tet", "nodes", "elements", "dofs", "order", "preset"}``.
    unit_solutions : ndarray, shape (n_dofs, K)
        u_k in V per V on contact k.
    element_volumes : ndarray, shape (M,)
        mm^3.
    timings : dict
        Seconds: "assemble", "setup" (preconditioner or factorisation), "solve"
        (all K right-hand sides), "iterations" (CG iterations per RHS, AMG only).
    mesh, dofmap, grad_lambda
        The skfem mesh, the DOF map and barycentric gradients (M, 4, 3), 1/mm.
    """

    def __init__(
        self,
        mesh: Any,
        dofmap: DofMap,
        unit_solutions: np.ndarray,
        conductance_S: np.ndarray,
        outer_grounded: bool,
        grad_lambda: np.ndarray,
        element_volumes: np.ndarray,
        timings: dict,
        preset: str | None = None,
        contact_dof_sets: list[np.ndarray] | None = None,
    ) -> None:
        self.mesh = mesh
        self.dofmap = dofmap
        self.unit_solutions = unit_solutions
        self.conductance_S = conductance_S
        self.outer_grounded = bool(outer_grounded)
        self.n_contacts = int(unit_solutions.shape[1])
        self.grad_lambda = grad_lambda
        self.element_volumes = element_volumes
        self.timings = timings
        self.contact_dof_sets = contact_dof_sets
        self.order = dofmap.order
        self.mesh_info = {
            "kind": "tet",
            "nodes": int(mesh.p.shape[1]),
            "elements": int(mesh.t.shape[1]),
            "dofs": int(dofmap.n_dofs),
            "order": int(dofmap.order),
            "preset": preset,
        }
        self._locator: TetLocator | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def locator(self) -> TetLocator:
        """Point locator on the mesh (built on first use)."""
        if self._locator is None:
            self._locator = TetLocator(self.mesh.p.T, self.mesh.t.T)
        return self._locator

    def combined(self, weights_V: np.ndarray) -> np.ndarray:
        """u = sum_k V_k u_k, shape (n_dofs,), V."""
        w = np.asarray(weights_V, dtype=np.float64).reshape(-1)
        if w.shape[0] != self.n_contacts:
            raise ValueError(f"weights_V needs {self.n_contacts} values, got {w.shape[0]}")
        return self.unit_solutions @ w

    def _located(self, points_mm: np.ndarray, sort_queries: bool | None = None):
        pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        return self.locator.locate(pts, sort_queries=sort_queries)

    # ------------------------------------------------------------------ FieldBasis
    def potential_at(self, points_mm: np.ndarray, weights_V: np.ndarray) -> np.ndarray:
        """Potential (N,) in V at points (N, 3) mm; NaN outside tissue."""
        elem, bary = self._located(points_mm)
        return potential_at_located(elem, bary, self.dofmap.element_dofs,
                                    self.combined(weights_V), self.order)

    def field_at(self, points_mm: np.ndarray, weights_V: np.ndarray) -> np.ndarray:
        """Electric field E = -grad u (N, 3) in V/mm at points (N, 3) mm; NaN outside."""
        elem, bary = self._located(points_mm)
        return -gradient_at_located(elem, bary, self.dofmap.element_dofs, self.grad_lambda,
                                    self.combined(weights_V), self.order)

    def field_on_grid(
        self, origin_mm: np.ndarray, spacing_mm: np.ndarray | float, shape, weights_V: np.ndarray
    ) -> np.ndarray:
        """E (nx, ny, nz, 3) in V/mm on a regular grid (voxel (i,j,k) at origin + ijk*spacing).

        NaN where the voxel centre is outside tissue.
        """
        pts = grid_points(origin_mm, spacing_mm, shape)
        elem, bary = self._located(pts, sort_queries=False)
        e = -gradient_at_located(elem, bary, self.dofmap.element_dofs, self.grad_lambda,
                                 self.combined(weights_V), self.order)
        return e.reshape(tuple(int(s) for s in shape) + (3,))

    def potential_on_grid(
        self, origin_mm: np.ndarray, spacing_mm: np.ndarray | float, shape, weights_V: np.ndarray
    ) -> np.ndarray:
        """Potential (nx, ny, nz) in V on a regular grid; NaN outside tissue."""
        pts = grid_points(origin_mm, spacing_mm, shape)
        elem, bary = self._located(pts, sort_queries=False)
        u = potential_at_located(elem, bary, self.dofmap.element_dofs,
                                 self.combined(weights_V), self.order)
        return u.reshape(tuple(int(s) for s in shape))

    def vta_volume_mm3(
        self, weights_V: np.ndarray, threshold_V_per_mm: float, level: int = 2,
        element_mask: np.ndarray | None = None,
    ) -> float:
        """Tissue volume (mm^3) where |E| >= threshold (V/mm), integrated on the mesh.

        |E| is sampled at the centroids of 8**level equal-volume subtetrahedra per
        element (P2: linear gradient; P1: constant).
        """
        return threshold_volume(self.dofmap.element_dofs, self.grad_lambda,
                                self.element_volumes, self.combined(weights_V), self.order,
                                threshold_V_per_mm, level, element_mask)

    def element_field_max(self, weights_V: np.ndarray) -> np.ndarray:
        """Per-element maximum of |E| (M,), V/mm."""
        return element_gradient_norm_max(self.dofmap.element_dofs, self.grad_lambda,
                                         self.combined(weights_V), self.order)


def _single_threaded_blas():
    """Limit BLAS to one thread: pyamg's setup does many tiny dense BLAS calls, and a
    multi-threaded OpenBLAS on a loaded machine makes it 40x slower (measured)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _pick_solver(solver: str, n_free: int) -> str:
    if solver not in ("auto", "amg", "direct"):
        raise ValueError(f"solver must be 'auto', 'amg' or 'direct', got {solver!r}")
    if solver == "auto":
        return "direct" if n_free <= DIRECT_MAX_DOFS else "amg"
    return solver


def solve_dirichlet(
    K: sp.csr_matrix,
    dirichlet_dofs: np.ndarray,
    dirichlet_values: np.ndarray,
    solver: str = "auto",
    tol: float = 1e-10,
    maxiter: int = 1000,
) -> tuple[np.ndarray, dict]:
    """Solve K u = 0 on free DOFs with u given on Dirichlet DOFs, for several cases.

    Parameters
    ----------
    K : csr_matrix, shape (n, n)
        Stiffness matrix.
    dirichlet_dofs : ndarray of int, shape (d,)
        Constrained DOFs.
    dirichlet_values : ndarray, shape (d, K)
        Their values for each of the K cases, V.
    solver : {"auto", "amg", "direct"}
        Linear solver; all cases share one factorisation / AMG hierarchy.
    tol : float
        Relative residual tolerance of CG (AMG only).

    Returns
    -------
    u : ndarray, shape (n, K)
    info : dict
        "setup", "solve" seconds, "solver", "iterations" list.
    """
    n = K.shape[0]
    D = np.asarray(dirichlet_dofs, dtype=np.int64)
    G = np.asarray(dirichlet_values, dtype=np.float64)
    if G.ndim == 1:
        G = G[:, None]
    free = np.ones(n, dtype=bool)
    free[D] = False
    F = np.flatnonzero(free)
    Kf = K[F]
    Kff = Kf[:, F].tocsr()
    Kfd = Kf[:, D].tocsr()
    B = -(Kfd @ G)
    method = _pick_solver(solver, F.shape[0])
    info: dict[str, Any] = {"solver": method, "n_free": int(F.shape[0])}
    U = np.zeros((n, G.shape[1]))
    U[D] = G
    if F.shape[0] == 0:
        info.update(setup=0.0, solve=0.0, iterations=[])
        return U, info
    with _single_threaded_blas():
        X, t1, t2, its = _solve_free(Kff, B, method, tol, maxiter)
    U[F] = X
    info["setup"] = t1[1] - t1[0]
    info["solve"] = t2
    info["iterations"] = its
    return U, info


def _solve_free(Kff, B, method, tol, maxiter):
    """Solve Kff X = B (SPD); returns X, (t_start, t_setup_end), solve seconds, iterations."""
    t0 = time.perf_counter()
    if method == "direct":
        # symmetric minimum-degree ordering: ~2-4x less fill than COLAMD on 3D FEM
        lu = spla.splu(Kff.tocsc(), permc_spec="MMD_AT_PLUS_A",
                       options={"SymmetricMode": True})
        t1 = time.perf_counter()
        X = lu.solve(B)
        t2 = time.perf_counter()
        its: list[int] = []
    else:
        import pyamg

        ml = pyamg.smoothed_aggregation_solver(Kff, symmetry="hermitian", max_coarse=500)
        t1 = time.perf_counter()
        X = np.zeros_like(B)
        its = []
        for k in range(B.shape[1]):
            b = B[:, k]
            if not np.any(b):
                its.append(0)
                continue
            res: list[float] = []
            X[:, k] = ml.solve(b, tol=tol, maxiter=maxiter, accel="cg", residuals=res)
            its.append(len(res) - 1)
            rel = res[-1] / res[0] if res and res[0] > 0 else 0.0
            if rel > tol * 10:
                log.warning("CG did not converge for case %d: relative residual %.2e", k, rel)
        t2 = time.perf_counter()
        log.debug("AMG hierarchy:\n%s", ml)
    return X, (t0, t1), t2 - t1, its


def solve_unit_fields(
    lead_mesh_or_mesh: Any,
    sigma_per_element_S_per_mm: np.ndarray | float,
    n_contacts: int | None = None,
    outer: str = "ground",
    order: int = 2,
    solver: str = "auto",
    tol: float = 1e-10,
) -> TetFieldBasis:
    """Solve one unit field per contact and the conductance matrix.

    Parameters
    ----------
    lead_mesh_or_mesh : LeadMesh or skfem.MeshTet
        Mesh in mm with boundaries ``"contact_0".."contact_{K-1}"`` and ``"outer"``
        (other boundaries, e.g. ``"insulation"``, are no-flux). A ``LeadMesh`` also
        supplies ``n_contacts`` and ``preset``.
    sigma_per_element_S_per_mm : float or ndarray, shape (M,) or (M, 3, 3)
        Conductivity per element in S/mm (S/m * 1e-3); tensors for anisotropy.
    n_contacts : int, optional
        K (default: from the LeadMesh, else the number of ``contact_*`` boundaries).
    outer : {"ground", "insulating"}
        Outer boundary: 0 V return, or no flux.
    order : int
        Lagrange order, 1 or 2 (P2 is needed for accurate |E|).
    solver : {"auto", "amg", "direct"}
        "auto": sparse LU up to :data:`DIRECT_MAX_DOFS` free DOFs, else AMG-CG.
    tol : float
        CG relative residual tolerance (AMG).

    Returns
    -------
    TetFieldBasis
    """
    t_start = time.perf_counter()
    mesh = getattr(lead_mesh_or_mesh, "mesh", lead_mesh_or_mesh)
    preset = getattr(lead_mesh_or_mesh, "preset", None)
    if n_contacts is None:
        n_contacts = getattr(lead_mesh_or_mesh, "n_contacts", None)
    if n_contacts is None:
        n_contacts = sum(1 for b in (mesh.boundaries or {}) if b.startswith("contact_"))
    n_contacts = int(n_contacts)
    if n_contacts < 1:
        raise ValueError("the mesh has no contact boundaries")
    if outer in ("ground", "grounded"):
        grounded = True
    elif outer in ("insulating", "insulated"):
        grounded = False
    else:
        raise ValueError(f"outer must be 'ground' or 'insulating', got {outer!r}")

    points = np.ascontiguousarray(mesh.p.T, dtype=np.float64)
    tets = np.ascontiguousarray(mesh.t.T, dtype=np.int64)
    t0 = time.perf_counter()
    dofmap = build_dofmap(tets, points.shape[0], order)
    glam, vol = element_geometry(points, tets)
    K, _ = assemble_stiffness(points, tets, sigma_per_element_S_per_mm, order, dofmap,
                              (glam, vol))
    t_asm = time.perf_counter() - t0

    cdofs = [contact_dofs(mesh, dofmap, f"contact_{k}") for k in range(n_contacts)]
    for k, c in enumerate(cdofs):
        if c.size == 0:
            raise ValueError(f"contact_{k} has no facets")
    allc = np.concatenate(cdofs)
    if np.unique(allc).size != allc.size:
        raise ValueError("contacts share DOFs (touching contacts); cannot impose unit potentials")
    dir_dofs = [*cdofs]
    if grounded:
        odofs = contact_dofs(mesh, dofmap, "outer")
        odofs = np.setdiff1d(odofs, allc)
        dir_dofs.append(odofs)
    D = np.concatenate(dir_dofs)
    vals = np.zeros((D.shape[0], n_contacts))
    off = 0
    for k, c in enumerate(cdofs):
        vals[off:off + c.size, k] = 1.0
        off += c.size

    log.info("solving %d unit fields: P%d, %d dofs (%d constrained), outer %s",
             n_contacts, order, dofmap.n_dofs, D.size, "grounded" if grounded else "insulating")
    U, info = solve_dirichlet(K, D, vals, solver=solver, tol=tol)

    R = K @ U  # reactions (A per V)
    Gm = np.array([[R[c, k].sum() for k in range(n_contacts)] for c in cdofs])
    asym = np.abs(Gm - Gm.T).max() / max(np.abs(Gm).max(), 1e-300)
    if asym > 1e-6:
        log.warning("conductance matrix asymmetry %.2e (solver tolerance?)", asym)
    Gm = 0.5 * (Gm + Gm.T)
    if grounded:
        ev = np.linalg.eigvalsh(Gm)
        if ev.min() <= 0:
            log.warning("conductance matrix not positive definite: eigenvalues %s", ev)
    timings = {
        "assemble": t_asm,
        "setup": info["setup"],
        "solve": info["solve"],
        "total": time.perf_counter() - t_start,
        "solver": info["solver"],
        "iterations": info["iterations"],
    }
    log.info("unit fields done: %s solver, setup %.2f s, solve %.2f s, iterations %s",
             info["solver"], info["setup"], info["solve"], info["iterations"])
    return TetFieldBasis(mesh, dofmap, U, Gm, grounded, glam, vol, timings, preset, cdofs)
