"""Stiffness assembly for -div(sigma grad u) on tetrahedra, P1 / P2 Lagrange (numba).

The degrees of freedom follow scikit-fem's numbering so that results can be checked
against (and mixed with) ``skfem.Basis(mesh, ElementTetP1() / ElementTetP2())``:

* P1: the mesh vertices.
* P2: the vertices, then one DOF per edge, numbered ``n_vertices + edge``; edges are
  the unique sorted vertex pairs in lexicographic order (exactly ``mesh.edges``), and
  the local edge order in an element is skfem's ``(0,1), (1,2), (0,2), (0,3), (1,3),
  (2,3)``.

The DOF map is built from ``mesh.t`` with one packed-int64 sort (no skfem ``Basis``),
and the matrix is assembled straight into CSR: the sparsity pattern is built per row
from a DOF -> element incidence map, then each element matrix is computed once and
added to its rows (no COO triplets in memory). The kernels are serial numba functions
that release the GIL; the pattern's rows and the elements are split over plain Python
threads, one range each (on the 2-core target a numba ``parallel=True`` kernel costs
about 0.5 s to load and start its thread pool in every new process). Each thread of the
fill adds into its own value array (one array of nnz doubles per thread), summed at the
end.

Units: lengths in mm and conductivity in S/mm give ``K @ u`` in A for u in V.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

__all__ = [
    "DofMap",
    "TET_EDGES",
    "build_dofmap",
    "element_geometry",
    "normalise_sigma",
    "assemble_stiffness",
]

log = logging.getLogger(__name__)

#: skfem's local edge order of a tetrahedron (ElementTetP2 DOFs 4..9).
TET_EDGES = np.array([[0, 1], [1, 2], [0, 2], [0, 3], [1, 3], [2, 3]], dtype=np.int64)

# 4-point Gauss rule on the tetrahedron (exact for degree 2), barycentric coordinates.
_QA = 0.5854101966249685
_QB = 0.1381966011250105
_QUAD_LAM = np.array(
    [[_QA, _QB, _QB, _QB], [_QB, _QA, _QB, _QB], [_QB, _QB, _QA, _QB], [_QB, _QB, _QB, _QA]]
)
_QUAD_W = np.full(4, 0.25)


@dataclass
class DofMap:
    """Lagrange DOF numbering on a tetrahedral mesh (skfem-compatible).

    Attributes
    ----------
    order : int
        Polynomial order, 1 or 2.
    n_vertices : int
        Number of mesh vertices.
    n_dofs : int
        Total number of DOFs.
    element_dofs : ndarray of int64, shape (M, 4) or (M, 10)
        Global DOFs of each element, in skfem's local order.
    edges : ndarray of int64, shape (n_edges, 2) or None
        Sorted vertex pairs of the edges (P2 only); edge i carries DOF
        ``n_vertices + i``.
    """

    order: int
    n_vertices: int
    n_dofs: int
    element_dofs: np.ndarray
    edges: np.ndarray | None = None

    @property
    def n_local(self) -> int:
        """DOFs per element (4 or 10)."""
        return int(self.element_dofs.shape[1])

    def vertex_set_dofs(self, facets: np.ndarray) -> np.ndarray:
        """All DOFs on a set of triangles (e.g. boundary facets).

        Parameters
        ----------
        facets : ndarray of int, shape (F, 3) or (3, F)
            Vertex indices of the triangles (skfem's ``mesh.facets[:, idx]`` is (3, F)).

        Returns
        -------
        ndarray of int64
            Sorted unique DOFs: the triangle vertices, plus the edge DOFs for P2.
        """
        f = np.asarray(facets, dtype=np.int64)
        if f.ndim != 2:
            raise ValueError("facets must be 2D")
        if f.shape[1] != 3 and f.shape[0] == 3:
            f = f.T
        if f.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        verts = np.unique(f)
        if self.order == 1:
            return verts
        pairs = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [0, 2]]])
        pairs.sort(axis=1)
        n = np.int64(self.n_vertices)
        keys = np.unique(pairs[:, 0] * n + pairs[:, 1])
        ekeys = self.edges[:, 0] * n + self.edges[:, 1]
        pos = np.searchsorted(ekeys, keys)
        if np.any(pos >= len(ekeys)) or np.any(ekeys[np.minimum(pos, len(ekeys) - 1)] != keys):
            raise ValueError("facet edge not found in the mesh")
        return np.concatenate([verts, self.n_vertices + pos]).astype(np.int64)

    def dof_locations(self, points: np.ndarray) -> np.ndarray:
        """Coordinates of the DOFs, shape (n_dofs, 3), same units as ``points`` (N, 3)."""
        points = np.asarray(points, dtype=np.float64)
        if self.order == 1:
            return points.copy()
        mid = 0.5 * (points[self.edges[:, 0]] + points[self.edges[:, 1]])
        return np.concatenate([points, mid])


def build_dofmap(tets: np.ndarray, n_vertices: int, order: int = 2) -> DofMap:
    """Build the skfem-compatible DOF map from the element connectivity.

    Parameters
    ----------
    tets : ndarray of int, shape (M, 4)
        Element vertices (``mesh.t.T``).
    n_vertices : int
        Number of mesh vertices.
    order : int
        1 (P1) or 2 (P2).

    Returns
    -------
    DofMap
    """
    t = np.ascontiguousarray(tets, dtype=np.int64)
    if order == 1:
        return DofMap(1, n_vertices, n_vertices, t.copy(), None)
    if order != 2:
        raise ValueError(f"order must be 1 or 2, got {order}")
    M = t.shape[0]
    a = t[:, TET_EDGES[:, 0]]
    b = t[:, TET_EDGES[:, 1]]
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    n = np.int64(n_vertices)
    keys = (lo * n + hi).ravel()
    uniq, inv = np.unique(keys, return_inverse=True)
    edges = np.stack([uniq // n, uniq % n], axis=1)
    edofs = n_vertices + inv.reshape(M, 6)
    dofs = np.ascontiguousarray(np.concatenate([t, edofs], axis=1))
    return DofMap(2, n_vertices, n_vertices + len(uniq), dofs, edges)


@nb.njit(cache=True, nogil=True)
def _geometry(points: np.ndarray, tets: np.ndarray):
    """Gradients of the barycentric coordinates (M, 4, 3) in 1/mm and volumes (M,) mm^3."""
    M = tets.shape[0]
    glam = np.empty((M, 4, 3))
    vol = np.empty(M)
    for e in range(M):
        a = tets[e, 0]
        j = np.empty((3, 3))
        for c in range(3):
            v = tets[e, c + 1]
            for d in range(3):
                j[d, c] = points[v, d] - points[a, d]
        c00 = j[1, 1] * j[2, 2] - j[1, 2] * j[2, 1]
        c01 = j[0, 2] * j[2, 1] - j[0, 1] * j[2, 2]
        c02 = j[0, 1] * j[1, 2] - j[0, 2] * j[1, 1]
        c10 = j[1, 2] * j[2, 0] - j[1, 0] * j[2, 2]
        c11 = j[0, 0] * j[2, 2] - j[0, 2] * j[2, 0]
        c12 = j[0, 2] * j[1, 0] - j[0, 0] * j[1, 2]
        c20 = j[1, 0] * j[2, 1] - j[1, 1] * j[2, 0]
        c21 = j[0, 1] * j[2, 0] - j[0, 0] * j[2, 1]
        c22 = j[0, 0] * j[1, 1] - j[0, 1] * j[1, 0]
        det = j[0, 0] * c00 + j[0, 1] * c10 + j[0, 2] * c20
        vol[e] = abs(det) / 6.0
        inv = 1.0 / det
        # rows of J^-1 are grad(lambda_1..3)
        glam[e, 1, 0] = c00 * inv
        glam[e, 1, 1] = c01 * inv
        glam[e, 1, 2] = c02 * inv
        glam[e, 2, 0] = c10 * inv
        glam[e, 2, 1] = c11 * inv
        glam[e, 2, 2] = c12 * inv
        glam[e, 3, 0] = c20 * inv
        glam[e, 3, 1] = c21 * inv
        glam[e, 3, 2] = c22 * inv
        for d in range(3):
            glam[e, 0, d] = -(glam[e, 1, d] + glam[e, 2, d] + glam[e, 3, d])
    return glam, vol


def element_geometry(points: np.ndarray, tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric gradients and volumes of tetrahedra.

    Parameters
    ----------
    points : ndarray, shape (N, 3)
        Vertex coordinates, mm.
    tets : ndarray of int, shape (M, 4)
        Element vertices.

    Returns
    -------
    grad_lambda : ndarray, shape (M, 4, 3)
        Gradient of each vertex's barycentric coordinate, 1/mm.
    volume : ndarray, shape (M,)
        Element volumes, mm^3.
    """
    return _geometry(
        np.ascontiguousarray(points, dtype=np.float64), np.ascontiguousarray(tets, dtype=np.int64)
    )


def normalise_sigma(sigma: np.ndarray | float, n_elements: int) -> np.ndarray:
    """Return per-element conductivity tensors (M, 3, 3) from scalars or tensors.

    Parameters
    ----------
    sigma : float or ndarray, shape (M,) or (M, 3, 3)
        Conductivity, S/mm (any consistent unit is carried through).
    n_elements : int
        M.
    """
    s = np.asarray(sigma, dtype=np.float64)
    if s.ndim == 0:
        s = np.full(n_elements, float(s))
    if s.ndim == 1:
        if s.shape[0] != n_elements:
            raise ValueError(f"sigma has {s.shape[0]} values for {n_elements} elements")
        out = np.zeros((n_elements, 3, 3))
        out[:, 0, 0] = s
        out[:, 1, 1] = s
        out[:, 2, 2] = s
        return out
    if s.shape != (n_elements, 3, 3):
        raise ValueError(f"sigma must be (M,) or (M, 3, 3) with M={n_elements}, got {s.shape}")
    return np.ascontiguousarray(s)


@nb.njit(cache=True)
def _dof_elements(edofs: np.ndarray, n_dofs: int):
    """CSR incidence DOF -> (element, local index): ptr (n_dofs+1,), inc (M*nloc,) = e*nloc+a."""
    M, nl = edofs.shape
    ptr = np.zeros(n_dofs + 1, dtype=np.int64)
    for e in range(M):
        for a in range(nl):
            ptr[edofs[e, a] + 1] += 1
    for i in range(n_dofs):
        ptr[i + 1] += ptr[i]
    fill = ptr[:-1].copy()
    inc = np.empty(M * nl, dtype=np.int64)
    for e in range(M):
        for a in range(nl):
            d = edofs[e, a]
            inc[fill[d]] = e * nl + a
            fill[d] += 1
    return ptr, inc


@nb.njit(cache=True, nogil=True)
def _row_counts(r0, r1, edofs, ptr, inc, counts):
    """Distinct columns of rows r0..r1-1 into ``counts`` (a marker array, no sorting)."""
    nl = edofs.shape[1]
    marker = np.full(counts.shape[0], -1, dtype=np.int64)
    for r in range(r0, r1):
        k = 0
        for j in range(ptr[r], ptr[r + 1]):
            e = inc[j] // nl
            for b in range(nl):
                c = edofs[e, b]
                if marker[c] != r:
                    marker[c] = r
                    k += 1
        counts[r] = k


@nb.njit(cache=True, nogil=True)
def _row_columns(r0, r1, edofs, ptr, inc, indptr, indices):
    """The sorted columns of rows r0..r1-1 into ``indices`` (their slots by ``indptr``)."""
    nl = edofs.shape[1]
    n = indptr.shape[0] - 1
    marker = np.full(n, -1, dtype=np.int64)
    for r in range(r0, r1):
        k = indptr[r]
        for j in range(ptr[r], ptr[r + 1]):
            e = inc[j] // nl
            for b in range(nl):
                c = edofs[e, b]
                if marker[c] != r:
                    marker[c] = r
                    indices[k] = c
                    k += 1
        indices[indptr[r]:k].sort()


def _pattern(edofs: np.ndarray, ptr: np.ndarray, inc: np.ndarray, n_dofs: int):
    """CSR pattern (indptr int64, sorted indices int32) of the element couplings; the
    rows are split over the worker threads (two passes: count, then collect and sort)."""
    counts = np.zeros(n_dofs, dtype=np.int64)
    _in_ranges(_row_counts, n_dofs, (edofs, ptr, inc, counts))
    indptr = np.zeros(n_dofs + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(indptr[n_dofs], dtype=np.int32)
    _in_ranges(_row_columns, n_dofs, (edofs, ptr, inc, indptr, indices))
    return indptr, indices


def _in_ranges(kernel, n: int, args: tuple) -> list:
    """``kernel(i0, i1, *args)`` over one range of [0, n) per worker thread
    (:func:`vta.fem.locate._run_threaded`; one thread below :data:`_PARALLEL_MIN`)."""
    from .locate import _run_threaded

    return _run_threaded(kernel, n, args, max_threads=None if n >= _PARALLEL_MIN else 1, ranges_per_thread=1)


#: Rows or elements below which assembly runs on one thread.
_PARALLEL_MIN = 20_000


@nb.njit(cache=True, inline="always")
def _p2_grads(glam, e, lam, g):
    """Gradients of the 10 P2 basis functions at barycentric point lam -> g (10, 3)."""
    for i in range(4):
        f = 4.0 * lam[i] - 1.0
        for d in range(3):
            g[i, d] = f * glam[e, i, d]
    # skfem edge order (0,1), (1,2), (0,2), (0,3), (1,3), (2,3)
    for k in range(6):
        if k == 0:
            i, j = 0, 1
        elif k == 1:
            i, j = 1, 2
        elif k == 2:
            i, j = 0, 2
        elif k == 3:
            i, j = 0, 3
        elif k == 4:
            i, j = 1, 3
        else:
            i, j = 2, 3
        for d in range(3):
            g[4 + k, d] = 4.0 * (lam[i] * glam[e, j, d] + lam[j] * glam[e, i, d])


@nb.njit(cache=True, nogil=True)
def _fill(e0, e1, edofs, indptr, indices, glam, vol, sigma, order, qlam, qw):
    """CSR values of elements e0..e1-1 (a full-length array of its own): each element
    matrix is computed once (4-point rule, exact for the degree-2 integrand of P2 with
    element-constant sigma; P1: one point) and added to its rows (forward scan of the
    sorted row)."""
    nl = edofs.shape[1]
    nq = qlam.shape[0] if order == 2 else 1
    data = np.zeros(indices.shape[0])
    g = np.empty((nl, 3))
    sg = np.empty((nl, 3))
    ke = np.empty((nl, nl))
    perm = np.empty(nl, dtype=np.int64)
    for e in range(e0, e1):
        ke[:, :] = 0.0
        for q in range(nq):
            if order == 1:
                for a in range(4):
                    for d in range(3):
                        g[a, d] = glam[e, a, d]
                w = vol[e]
            else:
                _p2_grads(glam, e, qlam[q], g)
                w = qw[q] * vol[e]
            for a in range(nl):
                for d in range(3):
                    sg[a, d] = w * (sigma[e, d, 0] * g[a, 0] + sigma[e, d, 1] * g[a, 1]
                                    + sigma[e, d, 2] * g[a, 2])
            for a in range(nl):
                for b in range(nl):
                    ke[a, b] += sg[a, 0] * g[b, 0] + sg[a, 1] * g[b, 1] + sg[a, 2] * g[b, 2]
        # the element's columns in increasing order (insertion sort of nl values), so
        # that each row is scanned once, forwards
        for b in range(nl):
            perm[b] = b
        for b in range(1, nl):
            v = perm[b]
            i = b - 1
            while i >= 0 and edofs[e, perm[i]] > edofs[e, v]:
                perm[i + 1] = perm[i]
                i -= 1
            perm[i + 1] = v
        for a in range(nl):
            pos = indptr[edofs[e, a]]
            for bb in range(nl):
                b = perm[bb]
                col = edofs[e, b]
                while indices[pos] < col:
                    pos += 1
                data[pos] += ke[a, b]
    return data


def assemble_stiffness(
    points: np.ndarray,
    tets: np.ndarray,
    sigma: np.ndarray | float,
    order: int = 2,
    dofmap: DofMap | None = None,
    geometry: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[sp.csr_matrix, DofMap]:
    """Assemble the stiffness matrix of -div(sigma grad u) with P1 or P2 elements.

    Parameters
    ----------
    points : ndarray, shape (N, 3)
        Vertex coordinates, mm (``mesh.p.T``).
    tets : ndarray of int, shape (M, 4)
        Element vertices (``mesh.t.T``).
    sigma : float or ndarray, shape (M,) or (M, 3, 3)
        Per-element conductivity, S/mm (symmetric tensors for anisotropy).
    order : int
        1 or 2.
    dofmap : DofMap, optional
        Reuse a DOF map built by :func:`build_dofmap`.
    geometry : (grad_lambda, volume), optional
        Reuse :func:`element_geometry` output.

    Returns
    -------
    K : scipy.sparse.csr_matrix, shape (n_dofs, n_dofs)
        Symmetric stiffness matrix; ``K @ u`` is the current (A) leaving each DOF's
        test function for u in V (with sigma in S/mm and lengths in mm).
    dofmap : DofMap
    """
    t0 = time.perf_counter()
    points = np.ascontiguousarray(points, dtype=np.float64)
    tets = np.ascontiguousarray(tets, dtype=np.int64)
    M = tets.shape[0]
    if dofmap is None:
        dofmap = build_dofmap(tets, points.shape[0], order)
    if dofmap.order != order:
        raise ValueError("dofmap order does not match")
    glam, vol = geometry if geometry is not None else element_geometry(points, tets)
    sig = normalise_sigma(sigma, M)
    t1 = time.perf_counter()
    ptr, inc = _dof_elements(dofmap.element_dofs, dofmap.n_dofs)
    indptr, indices = _pattern(dofmap.element_dofs, ptr, inc, dofmap.n_dofs)
    t2 = time.perf_counter()
    parts = _in_ranges(_fill, M, (dofmap.element_dofs, indptr, indices, glam, vol, sig, order, _QUAD_LAM, _QUAD_W))
    data = parts[0]
    for part in parts[1:]:
        data += part
    t3 = time.perf_counter()
    idx_dtype = np.int32 if indices.shape[0] < 2**31 - 1 else np.int64
    K = sp.csr_matrix(
        (data, indices.astype(idx_dtype), indptr.astype(idx_dtype)),
        shape=(dofmap.n_dofs, dofmap.n_dofs),
    )
    log.info(
        "assembled P%d stiffness: %d elements, %d dofs, %d nnz (dofmap+geometry %.2f s, "
        "pattern %.2f s, fill %.2f s)",
        order, M, dofmap.n_dofs, K.nnz, t1 - t0, t2 - t1, t3 - t2,
    )
    return K, dofmap
