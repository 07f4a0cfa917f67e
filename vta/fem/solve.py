"""Unit solutions per contact, conductance matrix and the tetrahedral FieldBasis.

For a mesh of the tissue around a lead (contacts as tagged boundaries), solve
-div(sigma grad u) = 0 once per contact k with u = 1 V on contact k, 0 V on every other
contact, and on the outer boundary either 0 V (grounded) or no flux (insulating); the
lead insulation is a natural (no-flux) boundary. All K solves share one reduced matrix
and either one sparse LU factorisation (small systems) or one multigrid preconditioner
with block CG (both in :mod:`vta.fem.multigrid`, re-exported here):

* :class:`BlockMultigrid`: a symmetric V-cycle whose first coarse level is P1 on the
  same mesh (the exact P2 -> P1 embedding, "p-multigrid"), then pyamg smoothed
  aggregation on that P1 operator, dense Cholesky at the bottom; symmetric
  Gauss-Seidel smoothing (numba) on all right-hand sides at once.
* :func:`block_pcg`: the K CG recurrences run in lockstep, so every matrix and smoother
  pass reads the matrix once for all K columns.

On the 3389 reference case ("default", 75k DOFs, 4 contacts) this takes 9-10
iterations to a 1e-5 relative residual and ~0.5 s, against 28 iterations and 2-3 s for
the former pyamg smoothed aggregation + CG run once per contact to 1e-10.

The conductance matrix G (S) is ``G_jk = u_j^T K u_k``: for exact discrete solutions
this is the reaction (the current leaving contact j into the tissue for unit solution
k, the sum of ``K_full @ u_k`` over the DOFs of contact j), and unlike the reaction its
error is quadratic in the solver error. (A surface flux integral would be biased.)

Units inside: mm, V, S/mm -> A. G is in S.
"""

from __future__ import annotations

import contextlib
import logging
import threading
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
    volume_samples,
)
from .locate import TetLocator
from .probes import BoundedVolumeProbe, LocatedFieldProbe
from .multigrid import (
    BlockMultigrid,
    _csr_parts,
    _gs_sweep,
    _matmul,
    block_pcg,
    p1_embedding,
)

__all__ = ["TetFieldBasis", "solve_unit_fields", "solve_dirichlet", "BlockMultigrid", "block_pcg",
           "p1_embedding", "prewarm", "DIRECT_MAX_DOFS", "contact_dofs"]

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
        self._last_combined: tuple[bytes, np.ndarray] | None = None

    # ------------------------------------------------------------------ storage
    #: bump when the array layout of :meth:`to_arrays` changes
    STORAGE_VERSION = 1

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this basis, as plain arrays (for ``np.savez``;
        see :mod:`vta.fem.cache`). Barycentric gradients and volumes are recomputed on load."""
        import json

        mesh = self.mesh
        out: dict[str, np.ndarray] = {
            "kind": np.array("tet"),
            "storage_version": np.array(self.STORAGE_VERSION),
            "p": np.ascontiguousarray(mesh.p, dtype=np.float64),
            "t": np.ascontiguousarray(mesh.t, dtype=np.int32),
            "facets": np.ascontiguousarray(mesh.facets, dtype=np.int32),
            "t2f": np.ascontiguousarray(mesh.t2f, dtype=np.int32),
            "order": np.array(self.dofmap.order),
            "element_dofs": self.dofmap.element_dofs.astype(np.int32),
            "unit_solutions": np.ascontiguousarray(self.unit_solutions, dtype=np.float64),
            "conductance_S": np.asarray(self.conductance_S, dtype=np.float64),
            "outer_grounded": np.array(self.outer_grounded),
            "meta": np.array(json.dumps({
                "mesh_info": self.mesh_info,
                "timings": {k: v for k, v in self.timings.items()
                            if isinstance(v, (int, float, str, list))},
                "boundaries": sorted((mesh.boundaries or {}).keys()),
                "subdomains": sorted((mesh.subdomains or {}).keys()),
            })),
        }
        if self.dofmap.edges is not None:
            out["edges"] = self.dofmap.edges.astype(np.int32)
        for i, name in enumerate(sorted((mesh.boundaries or {}).keys())):
            out[f"boundary_{i}"] = np.asarray(mesh.boundaries[name], dtype=np.int32)
        for i, name in enumerate(sorted((mesh.subdomains or {}).keys())):
            out[f"subdomain_{i}"] = np.asarray(mesh.subdomains[name], dtype=np.int32)
        if self.contact_dof_sets is not None:
            sets = [np.asarray(c, dtype=np.int64) for c in self.contact_dof_sets]
            out["contact_dofs"] = np.concatenate(sets) if sets else np.zeros(0, np.int64)
            out["contact_dof_offsets"] = np.cumsum([0] + [c.size for c in sets])
        return out

    @classmethod
    def from_arrays(cls, arrays) -> "TetFieldBasis":
        """Inverse of :meth:`to_arrays` (``arrays``: a mapping such as ``np.load(...)``).

        Raises
        ------
        ValueError
            Arrays of another kind or storage version, or inconsistent shapes.
        """
        import json

        from skfem import MeshTet

        if str(arrays["kind"]) != "tet" or int(arrays["storage_version"]) != cls.STORAGE_VERSION:
            raise ValueError("not a stored TetFieldBasis of this version")
        meta = json.loads(str(arrays["meta"]))
        p = np.asarray(arrays["p"], dtype=np.float64)
        t = np.asarray(arrays["t"], dtype=np.int32)
        boundaries = {name: np.asarray(arrays[f"boundary_{i}"], dtype=np.int32)
                      for i, name in enumerate(meta["boundaries"])}
        subdomains = {name: np.asarray(arrays[f"subdomain_{i}"], dtype=np.int32)
                      for i, name in enumerate(meta["subdomains"])}
        mesh = MeshTet(p, t)
        if boundaries:
            mesh = mesh.with_boundaries(boundaries)
        if subdomains:
            mesh = mesh.with_subdomains(subdomains)
        facets = np.asarray(arrays["facets"], dtype=np.int32)
        t2f = np.asarray(arrays["t2f"], dtype=np.int32)
        if facets.shape[0] != 3 or t2f.shape != (4, t.shape[1]):
            raise ValueError("inconsistent stored mesh topology")
        mesh._facets, mesh._t2f = facets, t2f
        order = int(arrays["order"])
        edofs = np.ascontiguousarray(arrays["element_dofs"], dtype=np.int64)
        edges = np.asarray(arrays["edges"], dtype=np.int64) if "edges" in arrays else None
        n_vertices = p.shape[1]
        n_dofs = n_vertices + (0 if edges is None else edges.shape[0])
        dofmap = DofMap(order, n_vertices, n_dofs, edofs, edges)
        U = np.asarray(arrays["unit_solutions"], dtype=np.float64)
        if U.shape[0] != n_dofs or edofs.shape[0] != t.shape[1]:
            raise ValueError("inconsistent stored unit solutions")
        glam, vol = element_geometry(p.T, t.T)
        cdofs = None
        if "contact_dofs" in arrays:
            flat, off = np.asarray(arrays["contact_dofs"]), np.asarray(arrays["contact_dof_offsets"])
            cdofs = [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]
        basis = cls(mesh, dofmap, U, np.asarray(arrays["conductance_S"], dtype=np.float64),
                    bool(arrays["outer_grounded"]), glam, vol, dict(meta["timings"]),
                    meta["mesh_info"].get("preset"), cdofs)
        basis.mesh_info = dict(meta["mesh_info"])
        return basis

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
        key = w.tobytes()
        last = self._last_combined
        if last is not None and last[0] == key:  # one setting, many evaluations (the live app)
            return last[1]
        u = self.unit_solutions @ w
        self._last_combined = (key, u)
        return u

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

    def volume_samples(self, weights_V: np.ndarray, min_norm_V_per_mm: float = 0.0,
                       level: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """|E| samples (V/mm) and their tissue volumes (mm^3), the quadrature of
        :meth:`vta_volume_mm3`: ``vta_volume_mm3(w, thr) == weights[norms >= thr].sum()``
        for every ``thr >= min_norm_V_per_mm`` (elements whose |E| stays below it are
        left out). Sorted once, they give the VTA of every amplitude of a setting."""
        return volume_samples(self.dofmap.element_dofs, self.grad_lambda, self.element_volumes,
                              self.combined(weights_V), self.order, min_norm_V_per_mm, level)

    def field_probe(self, points_mm: np.ndarray) -> "LocatedFieldProbe":
        """Fixed points located once: E there for any setting (:mod:`vta.fem.probes`)."""
        return LocatedFieldProbe(self, points_mm)

    def volume_probe(self) -> "BoundedVolumeProbe":
        """The VTA volume of any setting, visiting only elements that can reach the
        threshold (:mod:`vta.fem.probes`); equal to :meth:`vta_volume_mm3`."""
        return BoundedVolumeProbe(self)

    def mesh_arrays(self) -> tuple[np.ndarray, np.ndarray, str]:
        """World vertices (N, 3) mm, tetrahedra (M, 4) and ``"tetra"``."""
        return self.mesh.p.T.copy(), self.mesh.t.T.copy(), "tetra"

    def boundary_field_max(self, weights_V: np.ndarray) -> float:
        """Largest |E| (V/mm) on the outer boundary of the domain.

        Within a P1/P2 element |E| is convex, so on a boundary facet it peaks at one of
        the facet's vertices: the exact maximum over the boundary is the largest |E| at
        the boundary vertices of the elements that own the boundary facets. A value at
        or above the VTA threshold means the domain clips the VTA.
        """
        elem, bary = self._boundary_points()
        if elem.size == 0:
            return 0.0
        g = gradient_at_located(elem, bary, self.dofmap.element_dofs, self.grad_lambda,
                                self.combined(weights_V), self.order)
        norm = np.sqrt(np.einsum("ij,ij->i", g, g))
        return float(np.nanmax(norm)) if np.isfinite(norm).any() else 0.0

    def _boundary_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(element, one-hot barycentric coordinates) of every outer-boundary facet vertex."""
        cached = getattr(self, "_boundary_cache", None)
        if cached is not None:
            return cached
        facets = np.asarray((self.mesh.boundaries or {}).get("outer", np.zeros(0, np.int64)), dtype=np.int64)
        if facets.size == 0:
            self._boundary_cache = (np.zeros(0, np.int64), np.zeros((0, 4)))
            return self._boundary_cache
        owner = np.asarray(self.mesh.f2t[0, facets], dtype=np.int64)
        verts = np.asarray(self.mesh.facets[:, facets], dtype=np.int64)      # (3, F)
        tets = np.asarray(self.mesh.t[:, owner], dtype=np.int64)            # (4, F)
        elem = np.repeat(owner, 3)
        bary = np.zeros((elem.size, 4))
        for j in range(3):                                                  # facet vertex j
            local = np.argmax(tets == verts[j][None, :], axis=0)            # its index in the tet
            bary[np.arange(j, elem.size, 3), local] = 1.0
        self._boundary_cache = (elem, bary)
        return self._boundary_cache

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


# ----------------------------------------------------------------------------- unit solves


_PREWARM_LOCK = threading.Lock()
_prewarmed = False


def prewarm() -> None:
    """Load the numba kernels of assembly and solver (from numba's cache) and import
    pyamg, on tiny inputs. A new process otherwise pays ~1 s for this on the first
    solve; :func:`vta.fem.mesh.build_mesh` runs it in a background thread while gmsh meshes
    (gmsh releases the GIL). Idempotent and thread-safe."""
    global _prewarmed
    with _PREWARM_LOCK:
        if _prewarmed:
            return
        p = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
        t = np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
        for order in (2, 1):
            dm = build_dofmap(t, 5, order)
            K, _ = assemble_stiffness(p, t, 1.0, order, dm, element_geometry(p, t))
        A = sp.csr_matrix(K + sp.identity(K.shape[0]))
        parts = _csr_parts(A)
        X = np.zeros((A.shape[0], 4))
        B = np.ones((A.shape[0], 4))
        _gs_sweep(*parts, 1.0 / A.diagonal(), X, B, True)
        _matmul(parts, X, B, -1.0)
        import pyamg  # noqa: F401  (0.2-0.3 s of imports)

        _prewarmed = True


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
    tol: float = 1e-8,
    maxiter: int = 1000,
    prolongation: sp.spmatrix | None = None,
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
        Linear solver; all cases share one factorisation / multigrid hierarchy, and
        "amg" iterates on all cases at once (:func:`block_pcg`).
    tol : float
        Relative residual tolerance of CG (AMG only), per case.
    maxiter : int
        CG iteration limit (AMG only).
    prolongation : sparse matrix, shape (n, m), optional
        A coarse space for the first multigrid level ("amg"), e.g. :func:`p1_embedding`
        for P2: column j must belong to DOF j (j < m); columns of constrained DOFs are
        dropped. Without it, smoothed aggregation works on K directly.

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
    Pf = None
    if prolongation is not None and method == "amg":
        m = prolongation.shape[1]
        Pf = sp.csr_matrix(prolongation)[F][:, F[F < m]]
    with _single_threaded_blas():
        X, t1, t2, its = _solve_free(Kff, B, method, tol, maxiter, Pf)
    U[F] = X
    info["setup"] = t1[1] - t1[0]
    info["solve"] = t2
    info["iterations"] = its
    return U, info


def _solve_free(Kff, B, method, tol, maxiter, prolongation=None):
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
        mg = BlockMultigrid(Kff, prolongation)
        t1 = time.perf_counter()
        X, its, rel = block_pcg(Kff, B, mg, tol=tol, maxiter=maxiter)
        t2 = time.perf_counter()
        for k, r in enumerate(rel):
            if r > tol * 10:
                log.warning("CG did not converge for case %d: relative residual %.2e", k, r)
        log.debug("block multigrid levels %s", mg.sizes)
    return X, (t0, t1), t2 - t1, its


def unpack_lead_mesh(lead_mesh_or_mesh: Any, n_contacts: int | None, outer: str) -> tuple[Any, str | None, int, bool]:
    """(skfem mesh, preset name, number of contacts, outer boundary grounded?) of a
    :class:`vta.fem.mesh.LeadMesh` or a bare mesh with ``contact_*`` boundaries.

    Raises
    ------
    ValueError
        No contact boundaries, or ``outer`` not ground/insulating.
    """
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
        return mesh, preset, n_contacts, True
    if outer in ("insulating", "insulated"):
        return mesh, preset, n_contacts, False
    raise ValueError(f"outer must be 'ground' or 'insulating', got {outer!r}")


def solve_unit_fields(
    lead_mesh_or_mesh: Any,
    sigma_per_element_S_per_mm: np.ndarray | float,
    n_contacts: int | None = None,
    outer: str = "ground",
    order: int = 2,
    solver: str = "auto",
    tol: float = 1e-5,
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
        CG relative residual tolerance (AMG). On the reference case (3389, "default")
        1e-5 changes the impedance by < 1e-7 and the VTA by < 1e-5 relative against
        1e-12 (1e-4: VTA 5e-5); G is computed as u_j^T K u_k, whose error is quadratic
        in the solver error.

    Returns
    -------
    TetFieldBasis
    """
    t_start = time.perf_counter()
    mesh, preset, n_contacts, grounded = unpack_lead_mesh(lead_mesh_or_mesh, n_contacts, outer)

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
    prolongation = p1_embedding(dofmap) if order == 2 else None
    U, info = solve_dirichlet(K, D, vals, solver=solver, tol=tol, prolongation=prolongation)

    # G_jk = u_j^T K u_k: equal to the reaction (current) at contact j of solution k for
    # exact solves, and its error is quadratic in the solver error (K u_k vanishes on
    # the free DOFs where u_j may err, and u_j is exact on the constrained ones)
    Gm = U.T @ (K @ U)
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
