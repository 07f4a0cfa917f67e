"""Evaluate FEM potentials and fields at located points, and VTA volume (numba).

All kernels take the output of :meth:`vta.locate.TetLocator.locate` (element index,
barycentric coordinates in the element's vertex order) plus the element DOF map of
:mod:`vta.assembly` (skfem order) and ONE solution vector. To evaluate a stimulation
setting, first combine the unit solutions, ``u = U @ weights_V``, then evaluate once.

Units: mm, V, V/mm.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "grid_points",
    "potential_at_located",
    "gradient_at_located",
    "subdivision_centroids",
    "threshold_volume",
    "element_gradient_norm_max",
]


def grid_points(origin: np.ndarray, spacing: np.ndarray | float, shape) -> np.ndarray:
    """Points of a regular grid, C order (x slowest, z fastest).

    Parameters
    ----------
    origin : array_like, shape (3,)
        Coordinates of voxel (0, 0, 0), mm.
    spacing : float or array_like, shape (3,)
        Grid step along x, y, z, mm.
    shape : tuple of 3 int
        (nx, ny, nz).

    Returns
    -------
    ndarray, shape (nx * ny * nz, 3)
        ``points.reshape(nx, ny, nz, 3)[i, j, k] == origin + (i, j, k) * spacing``.
    """
    origin = np.asarray(origin, dtype=np.float64).reshape(3)
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    nx, ny, nz = (int(s) for s in shape)
    return _grid(origin, np.ascontiguousarray(spacing), nx, ny, nz)


@nb.njit(cache=True, parallel=True)
def _grid(origin, spacing, nx, ny, nz):
    out = np.empty((nx * ny * nz, 3))
    for i in nb.prange(nx):
        x = origin[0] + i * spacing[0]
        for j in range(ny):
            y = origin[1] + j * spacing[1]
            base = (i * ny + j) * nz
            for k in range(nz):
                out[base + k, 0] = x
                out[base + k, 1] = y
                out[base + k, 2] = origin[2] + k * spacing[2]
    return out


# skfem local edge order of ElementTetP2: (0,1), (1,2), (0,2), (0,3), (1,3), (2,3)
_EI = np.array([0, 1, 0, 0, 1, 2], dtype=np.int64)
_EJ = np.array([1, 2, 2, 3, 3, 3], dtype=np.int64)


@nb.njit(cache=True, parallel=True)
def _potential(elem, bary, edofs, u, order, ei, ej):
    Q = elem.shape[0]
    out = np.full(Q, np.nan)
    for p in nb.prange(Q):
        e = elem[p]
        if e < 0:
            continue
        acc = 0.0
        if order == 1:
            for i in range(4):
                acc += bary[p, i] * u[edofs[e, i]]
        else:
            for i in range(4):
                li = bary[p, i]
                acc += li * (2.0 * li - 1.0) * u[edofs[e, i]]
            for k in range(6):
                acc += 4.0 * bary[p, ei[k]] * bary[p, ej[k]] * u[edofs[e, 4 + k]]
        out[p] = acc
    return out


@nb.njit(cache=True, inline="always")
def _grad_at(e, lam, edofs, glam, u, order, ei, ej, g):
    """grad u (3,) at barycentric point ``lam`` of element e, into g."""
    g[0] = 0.0
    g[1] = 0.0
    g[2] = 0.0
    if order == 1:
        for i in range(4):
            ui = u[edofs[e, i]]
            for d in range(3):
                g[d] += ui * glam[e, i, d]
    else:
        for i in range(4):
            c = (4.0 * lam[i] - 1.0) * u[edofs[e, i]]
            for d in range(3):
                g[d] += c * glam[e, i, d]
        for k in range(6):
            i = ei[k]
            j = ej[k]
            c = 4.0 * u[edofs[e, 4 + k]]
            for d in range(3):
                g[d] += c * (lam[i] * glam[e, j, d] + lam[j] * glam[e, i, d])


@nb.njit(cache=True, parallel=True)
def _gradient(elem, bary, edofs, glam, u, order, ei, ej):
    Q = elem.shape[0]
    out = np.full((Q, 3), np.nan)
    for p in nb.prange(Q):
        e = elem[p]
        if e < 0:
            continue
        g = np.empty(3)
        _grad_at(e, bary[p], edofs, glam, u, order, ei, ej, g)
        out[p, 0] = g[0]
        out[p, 1] = g[1]
        out[p, 2] = g[2]
    return out


def potential_at_located(
    elem: np.ndarray, bary: np.ndarray, element_dofs: np.ndarray, u: np.ndarray, order: int
) -> np.ndarray:
    """Potential at located points.

    Parameters
    ----------
    elem : ndarray of int64, shape (Q,)
        Element of each point (-1 outside).
    bary : ndarray, shape (Q, 4)
        Barycentric coordinates in the element's vertex order.
    element_dofs : ndarray of int64, shape (M, 4) or (M, 10)
        DOF map (skfem order).
    u : ndarray, shape (n_dofs,)
        Solution vector, V.
    order : int
        1 or 2.

    Returns
    -------
    ndarray, shape (Q,)
        u at the points, V; NaN outside the mesh.
    """
    return _potential(
        np.ascontiguousarray(elem, dtype=np.int64), np.ascontiguousarray(bary),
        element_dofs, np.ascontiguousarray(u, dtype=np.float64), int(order), _EI, _EJ,
    )


def gradient_at_located(
    elem: np.ndarray,
    bary: np.ndarray,
    element_dofs: np.ndarray,
    grad_lambda: np.ndarray,
    u: np.ndarray,
    order: int,
) -> np.ndarray:
    """Gradient of the solution at located points.

    Parameters
    ----------
    elem, bary, element_dofs, u, order
        As in :func:`potential_at_located`.
    grad_lambda : ndarray, shape (M, 4, 3)
        Barycentric gradients from :func:`vta.assembly.element_geometry`, 1/mm.

    Returns
    -------
    ndarray, shape (Q, 3)
        grad u, V/mm (the field is E = -grad u); NaN outside the mesh.
    """
    return _gradient(
        np.ascontiguousarray(elem, dtype=np.int64), np.ascontiguousarray(bary),
        element_dofs, grad_lambda, np.ascontiguousarray(u, dtype=np.float64), int(order),
        _EI, _EJ,
    )


def subdivision_centroids(level: int) -> np.ndarray:
    """Barycentric centroids of the 8**level equal-volume subtetrahedra of a tetrahedron.

    Regular (red) refinement splits a tetrahedron into 8 children of equal volume
    (4 corners + 4 from the inner octahedron); applied ``level`` times.

    Returns
    -------
    ndarray, shape (8**level, 4)
    """
    tets = [np.eye(4)]
    for _ in range(level):
        new = []
        for v in tets:
            m = {(i, j): 0.5 * (v[i] + v[j]) for i in range(4) for j in range(i + 1, 4)}
            v0, v1, v2, v3 = v
            m01, m02, m03, m12, m13, m23 = m[0, 1], m[0, 2], m[0, 3], m[1, 2], m[1, 3], m[2, 3]
            new += [
                np.array([v0, m01, m02, m03]),
                np.array([m01, v1, m12, m13]),
                np.array([m02, m12, v2, m23]),
                np.array([m03, m13, m23, v3]),
                # octahedron split along the diagonal m02-m13
                np.array([m01, m02, m03, m13]),
                np.array([m01, m02, m12, m13]),
                np.array([m02, m03, m13, m23]),
                np.array([m02, m12, m13, m23]),
            ]
        tets = new
    return np.array([t.mean(axis=0) for t in tets])


@nb.njit(cache=True, parallel=True)
def _threshold_volume(edofs, glam, vol, u, order, ei, ej, sub, thr2, mask):
    M = edofs.shape[0]
    ns = sub.shape[0]
    total = 0.0
    for e in nb.prange(M):
        if not mask[e]:
            continue
        g = np.empty(3)
        if order == 1:
            _grad_at(e, sub[0], edofs, glam, u, order, ei, ej, g)
            if g[0] * g[0] + g[1] * g[1] + g[2] * g[2] >= thr2:
                total += vol[e]
        else:
            cnt = 0
            for s in range(ns):
                _grad_at(e, sub[s], edofs, glam, u, order, ei, ej, g)
                if g[0] * g[0] + g[1] * g[1] + g[2] * g[2] >= thr2:
                    cnt += 1
            total += vol[e] * cnt / ns
    return total


def threshold_volume(
    element_dofs: np.ndarray,
    grad_lambda: np.ndarray,
    volumes: np.ndarray,
    u: np.ndarray,
    order: int,
    threshold_V_per_mm: float,
    level: int = 2,
    element_mask: np.ndarray | None = None,
) -> float:
    """Volume where |grad u| >= threshold, integrated on the mesh.

    P2 gradients are linear in each tetrahedron; |grad u| is sampled at the centroids
    of the 8**level equal-volume subtetrahedra and each contributes vol/8**level. For
    P1 the gradient is constant per element and the element counts whole.

    Parameters
    ----------
    element_dofs, grad_lambda, u, order
        See :func:`gradient_at_located`.
    volumes : ndarray, shape (M,)
        Element volumes, mm^3.
    threshold_V_per_mm : float
        Field threshold, V/mm.
    level : int
        Subdivision level (2 -> 64 samples per element).
    element_mask : ndarray of bool, shape (M,), optional
        Elements that count (default: all).

    Returns
    -------
    float
        Volume, mm^3.
    """
    sub = np.ascontiguousarray(subdivision_centroids(level))
    if element_mask is None:
        element_mask = np.ones(element_dofs.shape[0], dtype=np.bool_)
    return float(
        _threshold_volume(
            element_dofs, grad_lambda, volumes, np.ascontiguousarray(u, dtype=np.float64),
            int(order), _EI, _EJ, sub, float(threshold_V_per_mm) ** 2,
            np.ascontiguousarray(element_mask, dtype=np.bool_),
        )
    )


@nb.njit(cache=True, parallel=True)
def _grad_norm_max(edofs, glam, u, order, ei, ej):
    M = edofs.shape[0]
    out = np.empty(M)
    corners = np.eye(4)
    for e in nb.prange(M):
        g = np.empty(3)
        mx = 0.0
        for c in range(4):
            _grad_at(e, corners[c], edofs, glam, u, order, ei, ej, g)
            v = np.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])
            if v > mx:
                mx = v
        out[e] = mx
    return out


def element_gradient_norm_max(
    element_dofs: np.ndarray, grad_lambda: np.ndarray, u: np.ndarray, order: int
) -> np.ndarray:
    """Max of |grad u| over the vertices of each element (M,), V/mm.

    For P1/P2 the gradient is constant/linear in an element, so its norm (convex)
    peaks at a vertex: this is the exact element maximum.
    """
    return _grad_norm_max(
        element_dofs, grad_lambda, np.ascontiguousarray(u, dtype=np.float64), int(order),
        _EI, _EJ,
    )
