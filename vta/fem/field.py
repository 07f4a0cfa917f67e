"""Evaluate FEM potentials and fields at located points, and VTA volume (numba).

All kernels take the output of :meth:`vta.fem.locate.TetLocator.locate` (element index,
barycentric coordinates in the element's vertex order) plus the element DOF map of
:mod:`vta.fem.assembly` (skfem order) and ONE solution vector. To evaluate a stimulation
setting, first combine the unit solutions, ``u = U @ weights_V``, then evaluate once.

The kernels are serial, GIL-free numba functions over an index range; large inputs are
split over threads (:func:`vta.fem.locate._run_threaded`). numba is imported, and the
kernels compiled or loaded from its cache, on first use (:func:`_jit`): serial kernels
compile several times faster than ``parallel=True`` ones and need no threading layer.

Units: mm, V, V/mm.
"""

from __future__ import annotations

import threading

import numpy as np

from . import locate as _locate

__all__ = [
    "grid_points",
    "potential_at_located",
    "gradient_at_located",
    "subdivision_centroids",
    "threshold_volume",
    "element_gradient_norm_max",
    "volume_samples",
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
    out = np.empty((nx, ny, nz, 3))
    out[..., 0] = (origin[0] + np.arange(nx) * spacing[0])[:, None, None]
    out[..., 1] = (origin[1] + np.arange(ny) * spacing[1])[None, :, None]
    out[..., 2] = (origin[2] + np.arange(nz) * spacing[2])[None, None, :]
    return out.reshape(nx * ny * nz, 3)


# skfem local edge order of ElementTetP2: (0,1), (1,2), (0,2), (0,3), (1,3), (2,3)
_EI = np.array([0, 1, 0, 0, 1, 2], dtype=np.int64)
_EJ = np.array([1, 2, 2, 3, 3, 3], dtype=np.int64)

#: Work for one thread: a kernel is split over threads only when each gets at least
#: this many points (potential, gradient) or element samples (VTA volume).
_POINTS_PER_THREAD = 100_000
_SAMPLES_PER_THREAD = 400_000

_jit_lock = threading.Lock()
_jitted = False


def _jit() -> None:
    """Import numba and wrap the kernels (each compiled, or loaded from numba's cache,
    on its first call). Module globals are rebound to the compiled versions; numba
    resolves the helper ``_grad_at`` when it compiles its callers."""
    global _jitted, _grad_at, _potential, _gradient, _threshold_volume, _grad_norm_max, _sample_norms
    if _jitted:
        return
    with _jit_lock:
        if _jitted:
            return
        import numba

        _grad_at = numba.njit(cache=True, inline="always")(_grad_at)
        _potential = numba.njit(cache=True, nogil=True)(_potential)
        _gradient = numba.njit(cache=True, nogil=True)(_gradient)
        _threshold_volume = numba.njit(cache=True, nogil=True)(_threshold_volume)
        _grad_norm_max = numba.njit(cache=True, nogil=True)(_grad_norm_max)
        _sample_norms = numba.njit(cache=True, nogil=True)(_sample_norms)
        _jitted = True


def _run(kernel: str, n: int, per_thread: int, args: tuple) -> list:
    """Run the compiled kernel named ``kernel`` over [0, n), on as many threads as there
    are ``per_thread`` units of work (at least one). Returns the per-range results."""
    _jit()
    return _locate._run_threaded(globals()[kernel], n, args, max(1, n // max(1, per_thread)))


def _potential(i0, i1, elem, bary, edofs, u, order, ei, ej, out):
    """u at points i0..i1-1 into ``out`` (pre-filled with NaN)."""
    for p in range(i0, i1):
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


def _gradient(i0, i1, elem, bary, edofs, glam, u, order, ei, ej, out):
    """grad u at points i0..i1-1 into ``out`` (pre-filled with NaN)."""
    g = np.empty(3)
    for p in range(i0, i1):
        e = elem[p]
        if e < 0:
            continue
        _grad_at(e, bary[p], edofs, glam, u, order, ei, ej, g)
        out[p, 0] = g[0]
        out[p, 1] = g[1]
        out[p, 2] = g[2]


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
    elem = np.ascontiguousarray(elem, dtype=np.int64)
    out = np.full(elem.shape[0], np.nan)
    _run("_potential", elem.shape[0], _POINTS_PER_THREAD, (
        elem, np.ascontiguousarray(bary), element_dofs,
        np.ascontiguousarray(u, dtype=np.float64), int(order), _EI, _EJ, out,
    ))
    return out


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
        Barycentric gradients from :func:`vta.fem.assembly.element_geometry`, 1/mm.

    Returns
    -------
    ndarray, shape (Q, 3)
        grad u, V/mm (the field is E = -grad u); NaN outside the mesh.
    """
    elem = np.ascontiguousarray(elem, dtype=np.int64)
    out = np.full((elem.shape[0], 3), np.nan)
    _run("_gradient", elem.shape[0], _POINTS_PER_THREAD, (
        elem, np.ascontiguousarray(bary), element_dofs, grad_lambda,
        np.ascontiguousarray(u, dtype=np.float64), int(order), _EI, _EJ, out,
    ))
    return out


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


def _threshold_volume(e0, e1, edofs, glam, vol, u, order, ei, ej, sub, thr2, mask):
    """Thresholded volume of elements e0..e1-1 (see :func:`threshold_volume`)."""
    ns = sub.shape[0]
    total = 0.0
    g = np.empty(3)
    corners = np.eye(4)
    gv = np.empty((4, 3))
    # a relative margin far above rounding: the classification below never disagrees
    # with sampling, it only skips the samples
    below2 = thr2 * (1.0 - 1e-9)
    above = np.sqrt(thr2) * (1.0 + 1e-9)
    for e in range(e0, e1):
        if not mask[e]:
            continue
        if order == 1:
            _grad_at(e, sub[0], edofs, glam, u, order, ei, ej, g)
            if g[0] * g[0] + g[1] * g[1] + g[2] * g[2] >= thr2:
                total += vol[e]
        else:
            # the gradient is linear on the element: |grad u| is convex, so it stays
            # below the vertex maximum, and above |g_c| - max_i |g_i - g_c| (g_c: the
            # centroid value): wholly below or wholly above needs no samples
            mx2 = 0.0
            for c in range(4):
                _grad_at(e, corners[c], edofs, glam, u, order, ei, ej, g)
                gv[c, 0] = g[0]
                gv[c, 1] = g[1]
                gv[c, 2] = g[2]
                n2 = g[0] * g[0] + g[1] * g[1] + g[2] * g[2]
                if n2 > mx2:
                    mx2 = n2
            if mx2 < below2:
                continue
            gc0 = 0.25 * (gv[0, 0] + gv[1, 0] + gv[2, 0] + gv[3, 0])
            gc1 = 0.25 * (gv[0, 1] + gv[1, 1] + gv[2, 1] + gv[3, 1])
            gc2 = 0.25 * (gv[0, 2] + gv[1, 2] + gv[2, 2] + gv[3, 2])
            dev = 0.0
            for c in range(4):
                d = np.sqrt((gv[c, 0] - gc0) ** 2 + (gv[c, 1] - gc1) ** 2 + (gv[c, 2] - gc2) ** 2)
                if d > dev:
                    dev = d
            if np.sqrt(gc0 * gc0 + gc1 * gc1 + gc2 * gc2) - dev >= above:
                total += vol[e]
                continue
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
    n = element_dofs.shape[0]
    work = _SAMPLES_PER_THREAD // (sub.shape[0] if int(order) != 1 else 1)
    partial = _run("_threshold_volume", n, work, (
        element_dofs, grad_lambda, volumes, np.ascontiguousarray(u, dtype=np.float64),
        int(order), _EI, _EJ, sub, float(threshold_V_per_mm) ** 2,
        np.ascontiguousarray(element_mask, dtype=np.bool_),
    ))
    return float(sum(partial))


def _grad_norm_max(e0, e1, edofs, glam, u, order, ei, ej, out):
    """Max |grad u| over the vertices of elements e0..e1-1 into ``out``."""
    corners = np.eye(4)
    g = np.empty(3)
    for e in range(e0, e1):
        mx = 0.0
        for c in range(4):
            _grad_at(e, corners[c], edofs, glam, u, order, ei, ej, g)
            v = np.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])
            if v > mx:
                mx = v
        out[e] = mx


def element_gradient_norm_max(
    element_dofs: np.ndarray, grad_lambda: np.ndarray, u: np.ndarray, order: int
) -> np.ndarray:
    """Max of |grad u| over the vertices of each element (M,), V/mm.

    For P1/P2 the gradient is constant/linear in an element, so its norm (convex)
    peaks at a vertex: this is the exact element maximum.
    """
    out = np.empty(element_dofs.shape[0])
    _run("_grad_norm_max", element_dofs.shape[0], _POINTS_PER_THREAD // 4, (
        element_dofs, grad_lambda, np.ascontiguousarray(u, dtype=np.float64), int(order),
        _EI, _EJ, out,
    ))
    return out


def _sample_norms(i0, i1, elems, edofs, glam, u, order, ei, ej, sub, out):
    """|grad u| at the sub-tetrahedron centroids of elements elems[i0:i1] into ``out``."""
    ns = sub.shape[0]
    g = np.empty(3)
    for i in range(i0, i1):
        e = elems[i]
        for s in range(ns):
            _grad_at(e, sub[s], edofs, glam, u, order, ei, ej, g)
            out[i * ns + s] = np.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])


def volume_samples(
    element_dofs: np.ndarray,
    grad_lambda: np.ndarray,
    volumes: np.ndarray,
    u: np.ndarray,
    order: int,
    min_norm: float = 0.0,
    level: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """|grad u| samples and their volumes: the quadrature of :func:`threshold_volume`.

    ``threshold_volume(..., thr) == weights[norms >= thr].sum()`` for every
    ``thr >= min_norm``, so one call answers every threshold (and, by linearity, every
    amplitude of one contact configuration). Elements whose exact maximum |grad u| is
    below ``min_norm`` are left out.

    Returns
    -------
    norms : ndarray (n,)
        |grad u| (V/mm) at the sample points.
    weights : ndarray (n,)
        Volume of each sample (mm^3).
    """
    u = np.ascontiguousarray(u, dtype=np.float64)
    if min_norm > 0:
        keep = element_gradient_norm_max(element_dofs, grad_lambda, u, order) >= min_norm
        elems = np.flatnonzero(keep).astype(np.int64)
    else:
        elems = np.arange(element_dofs.shape[0], dtype=np.int64)
    sub = np.ascontiguousarray(subdivision_centroids(level) if int(order) != 1 else np.full((1, 4), 0.25))
    ns = sub.shape[0]
    out = np.empty(elems.size * ns)
    _run("_sample_norms", elems.size, max(1, _SAMPLES_PER_THREAD // ns), (
        elems, element_dofs, grad_lambda, u, int(order), _EI, _EJ, sub, out,
    ))
    return out, np.repeat(volumes[elems] / ns, ns)
