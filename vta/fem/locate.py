"""Fast point location in tetrahedral and triangular meshes.

A :class:`TetLocator` / :class:`TriLocator` is built once per mesh and answers
"which element contains this point, and with which barycentric coordinates" for
many query points, e.g. every voxel of a NIfTI grid.

Two implementations give the same answer (element, barycentric coordinates):

:class:`TetLocator` (any :class:`SimplexLocator`; numba, for millions of 3D points)
    * Per-element inverse affine maps are precomputed once, so the barycentric
      coordinates of a point in an element cost one small mat-vec.
    * Elements are ordered along a Morton (Z-order) curve of their centroids and a
      bounding-volume hierarchy (BVH) is built over the sorted elements by recursive
      halving of index ranges; node boxes are the unions of element bounding boxes.
      This adapts to strongly graded meshes (0.05 mm at the contacts, several mm at
      the outer boundary), where a uniform bucket grid either explodes in memory or
      leaves thousands of candidates per bucket.
    * Queries are processed in chunks of points; inside a chunk the search starts with
      a short visibility walk (across the face with the most negative barycentric
      coordinate) from the element found for the previous point, and falls back to
      the BVH when the walk leaves the mesh or takes too long. Large query sets are
      processed in Morton order so that consecutive points are close, which makes
      both voxel grids and scattered points cheap.
    * Start-up cost: the build (boxes, Morton codes, BVH, face neighbours) is
      vectorised numpy. The query kernel is one serial, GIL-free numba function,
      imported and compiled (or loaded from numba's cache) on the first
      :meth:`SimplexLocator.locate`; large queries split its chunks over Python
      threads. No ``parallel=True`` function: those compile several times slower and
      start numba's threading layer. The chunking, hence the answer, is the same
      whatever the thread count.

:class:`TriLocator` (pure numpy, for the axisymmetric (r, z) meshes)
    A multi-level bucket grid, in :mod:`vta.fem.locate_tri` (re-exported here). No
    compilation and no numba import: the first query costs milliseconds, which is what
    one-shot commands on the axisymmetric fast path need.

This module holds :class:`SimplexLocator` / :class:`TetLocator` and the thread helper
:func:`_run_threaded` that the numba kernels of :mod:`vta.fem.field` share; the build
steps both locators use are in :mod:`vta.fem.locate_common`.

Both compute barycentric coordinates with the same per-element inverse maps and the
same operations, so they return bitwise identical results except, possibly, for points
on a shared edge (within ``tol``), where either neighbour is a valid answer.

Points outside the mesh (inside the insulating lead body or outside the domain)
get element ``-1`` and NaN barycentric coordinates.

All coordinates are in the caller's units (mm throughout ``vta``).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from .locate_common import _check_mesh, _check_query, _element_boxes, _inverse_maps
from .locate_tri import _TRI_BLOCK, TriLocator  # noqa: F401  (re-exported)

__all__ = ["TetLocator", "TriLocator", "SimplexLocator"]

log = logging.getLogger(__name__)

_LEAF_SIZE = 8
_CHUNK = 512
_STACK = 128
_MAX_WALK = 12
#: Queries of at least this many points are split over threads.
_PARALLEL_MIN = 100_000


# --------------------------------------------------------------------------------------
# vectorised build steps of the BVH (dimension-generic: D = 2 triangles, D = 3 tetrahedra)
# --------------------------------------------------------------------------------------


def _spread_bits(v: np.ndarray, D: int) -> np.ndarray:
    """Interleave the bits of ``v`` (int64 >= 0) with D-1 zero bits (Morton encoding).

    D = 3 keeps the low 21 bits, D = 2 the low 31 bits.
    """
    x = v.astype(np.uint64)
    if D == 3:
        x &= np.uint64(0x1FFFFF)
        for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF),
                            (8, 0x100F00F00F00F00F), (4, 0x10C30C30C30C30C3),
                            (2, 0x1249249249249249)):
            x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    else:
        x &= np.uint64(0x7FFFFFFF)
        for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                            (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333),
                            (1, 0x5555555555555555)):
            x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x.view(np.int64)


def _morton(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Morton codes (Q,) of points x (Q, D) quantised in the box [lo, hi].

    Coordinates are clamped to the box; NaN maps to the low corner.
    """
    Q, D = x.shape
    maxq = (1 << (21 if D == 3 else 31)) - 1
    code = np.zeros(Q, dtype=np.int64)
    for d in range(D):
        ext = hi[d] - lo[d]
        if ext > 0:
            t = (x[:, d] - lo[d]) / ext
            t = np.where(t >= 0.0, t, 0.0)          # also catches nan
            np.minimum(t, 1.0, out=t)
        else:
            t = np.zeros(Q)
        code |= _spread_bits((t * maxq).astype(np.int64), D) << d
    return code


def _build_bvh(box_sorted: np.ndarray, codes_sorted: np.ndarray, leaf_size: int):
    """BVH over Morton-sorted element boxes (split at the highest differing code bit).

    Returns node boxes (nn, 2D), ``child`` (nn,) index of the left child (right child
    is ``child + 1``) or -1 for leaves, and ``start``/``end`` element ranges (nn,).
    Nodes are in breadth-first order (children after their parent); the tree is built
    one level at a time.
    """
    M, D2 = box_sorted.shape
    D = D2 // 2
    starts, ends, childs = [], [], []
    s = np.zeros(1, dtype=np.int64)
    t = np.full(1, M, dtype=np.int64)
    n = 1
    while True:
        starts.append(s)
        ends.append(t)
        child = np.full(s.size, -1, dtype=np.int64)
        childs.append(child)
        split = np.flatnonzero(t - s > leaf_size)
        if split.size == 0:
            break
        ss, tt = s[split], t[split]
        x = codes_sorted[ss] ^ codes_sorted[tt - 1]
        m = (ss + tt) // 2                      # identical codes: halve the range
        nz = np.flatnonzero(x)
        if nz.size:
            xv = x[nz]
            hb = np.frexp(xv.astype(np.float64))[1].astype(np.int64) - 1
            hb -= (xv >> hb) == 0               # float rounding up to the next power
            # first index whose code has bit hb set (codes in [s, t) share the bits
            # above hb, and the global order is sorted)
            key = ((codes_sorted[ss[nz]] >> hb) | 1) << hb
            m[nz] = np.searchsorted(codes_sorted, key, side="left")
        child[split] = n + 2 * np.arange(split.size, dtype=np.int64)
        n += 2 * split.size
        s = np.empty(2 * split.size, dtype=np.int64)
        t = np.empty(2 * split.size, dtype=np.int64)
        s[0::2], t[0::2] = ss, m
        s[1::2], t[1::2] = m, tt
    start = np.concatenate(starts)
    end = np.concatenate(ends)
    child = np.concatenate(childs)
    nbox = np.empty((start.size, D2))
    leaf = np.flatnonzero(child < 0)
    leaf = leaf[np.argsort(start[leaf])]        # leaves partition [0, M)
    nbox[leaf, :D] = np.minimum.reduceat(box_sorted[:, :D], start[leaf], axis=0)
    nbox[leaf, D:] = np.maximum.reduceat(box_sorted[:, D:], start[leaf], axis=0)
    offs = np.cumsum([0] + [a.size for a in starts])
    for k in range(len(starts) - 2, -1, -1):    # bottom-up, one level at a time
        nodes = np.arange(offs[k], offs[k + 1])
        nodes = nodes[child[nodes] >= 0]
        a = child[nodes]
        nbox[nodes, :D] = np.minimum(nbox[a, :D], nbox[a + 1, :D])
        nbox[nodes, D:] = np.maximum(nbox[a, D:], nbox[a + 1, D:])
    return nbox, child, start, end


def _neighbours(cells: np.ndarray, n_points: int) -> np.ndarray:
    """Face neighbours (M, D+1): element across the face opposite local vertex i, or -1.

    Faces are matched by sorting their vertex keys (a face shared by two elements
    appears twice in a row).
    """
    M, nv = cells.shape
    # sorted vertices (lo, mid, hi) of the face opposite each local vertex, (M * nv,)
    f = [cells[:, [v for v in range(nv) if v != i]] for i in range(nv)]
    f = np.stack(f, axis=1).reshape(M * nv, nv - 1)
    lo = f.min(axis=1)
    hi = f.max(axis=1)
    if float(n_points) ** (nv - 1) < 2.0**62:
        key = lo * n_points + hi
        if nv == 4:
            mid = f.sum(axis=1) - lo - hi
            key = (lo * n_points + mid) * n_points + hi
        order = np.argsort(key)
        ks = key[order]
        same = np.flatnonzero(ks[1:] == ks[:-1])
    else:
        faces = np.sort(f, axis=1)
        order = np.lexsort(faces.T[::-1])
        fs = faces[order]
        same = np.flatnonzero(np.all(fs[1:] == fs[:-1], axis=1))
    nbr = np.full(M * nv, -1, dtype=np.int64)
    a, b = order[same], order[same + 1]
    nbr[a] = b // nv
    nbr[b] = a // nv
    return nbr.reshape(M, nv)


# --------------------------------------------------------------------------------------
# query kernel (numba, compiled lazily: see _jit)
# --------------------------------------------------------------------------------------


def _min_bary(q: np.ndarray, e: int, p0: np.ndarray, tinv: np.ndarray, lam: np.ndarray) -> float:
    """Fill ``lam`` (D+1,) with the barycentric coordinates of q in e; return min."""
    D = q.shape[0]
    s = 0.0
    mn = np.inf
    for i in range(D):
        acc = 0.0
        for j in range(D):
            acc += tinv[e, i, j] * (q[j] - p0[e, j])
        lam[i + 1] = acc
        s += acc
        if acc < mn:
            mn = acc
    lam[0] = 1.0 - s
    if lam[0] < mn:
        mn = lam[0]
    if mn != mn:  # degenerate element (nan)
        return -np.inf
    return mn


def _locate_chunks(c0, c1, query, perm, p0, tinv, nbox, child, start, end, order, nbr, tol,
                   chunk, max_walk, elem, bary):
    """Locate ``query[perm[i]]`` for i in chunks c0..c1-1 (i in [c * chunk, (c+1) * chunk))
    into ``elem`` (Q,) and ``bary`` (Q, D+1), pre-filled with -1 and NaN.

    ``perm`` sets the processing order. The walk restarts at each chunk, so the answer
    does not depend on how chunks are distributed over threads.
    """
    Q = query.shape[0]
    D = query.shape[1]
    stack = np.empty(_STACK, dtype=np.int64)
    lam = np.empty(D + 1)
    best_lam = np.empty(D + 1)
    q = np.empty(D)
    for c in range(c0, c1):
        last = -1  # element found for the previous point
        for ip in range(c * chunk, min(Q, (c + 1) * chunk)):
            p = perm[ip]
            finite = True
            for d in range(D):
                q[d] = query[p, d]
                if not np.isfinite(q[d]):
                    finite = False
            if not finite:
                continue
            found = -1
            best = -np.inf
            best_e = -1
            # 1) walk from the previous point's element towards q
            if last >= 0:
                e = last
                for step in range(max_walk):
                    m = _min_bary(q, e, p0, tinv, lam)
                    if m >= -tol:
                        found = e
                        for k in range(D + 1):
                            best_lam[k] = lam[k]
                        break
                    if m == -np.inf:
                        break
                    imin = 0
                    for k in range(1, D + 1):
                        if lam[k] < lam[imin]:
                            imin = k
                    e = nbr[e, imin]
                    if e < 0:
                        break
            # 2) BVH traversal
            if found < 0:
                sp = 0
                stack[0] = 0
                sp = 1
                while sp > 0:
                    sp -= 1
                    nd = stack[sp]
                    inside = True
                    for d in range(D):
                        if q[d] < nbox[nd, d] or q[d] > nbox[nd, D + d]:
                            inside = False
                            break
                    if not inside:
                        continue
                    a = child[nd]
                    if a >= 0:
                        if sp + 2 <= _STACK:
                            stack[sp] = a + 1
                            stack[sp + 1] = a
                            sp += 2
                        continue
                    for s in range(start[nd], end[nd]):
                        m = _min_bary(q, s, p0, tinv, lam)
                        if m > best:
                            best = m
                            best_e = s
                            for k in range(D + 1):
                                best_lam[k] = lam[k]
                            if m >= 0.0:
                                break
                    if best >= 0.0:
                        break
                if best >= -tol:
                    found = best_e
            if found >= 0:
                last = found
                elem[p] = order[found]
                for k in range(D + 1):
                    bary[p, k] = best_lam[k]


def _morton_points(x, lo, hi, out):
    """Compiled :func:`_morton` (same codes) for query points, into ``out`` (Q,)."""
    D = x.shape[1]
    maxq = (1 << (21 if D == 3 else 31)) - 1
    for i in range(x.shape[0]):
        code = np.int64(0)
        for d in range(D):
            ext = hi[d] - lo[d]
            t = 0.0
            if ext > 0:
                t = (x[i, d] - lo[d]) / ext
                if not (t >= 0.0):  # also catches nan
                    t = 0.0
                if t > 1.0:
                    t = 1.0
            v = np.uint64(np.int64(t * maxq))
            if D == 3:
                v &= np.uint64(0x1FFFFF)
                v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
                v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
                v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
                v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
                v = (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)
            else:
                v &= np.uint64(0x7FFFFFFF)
                v = (v | (v << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
                v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
                v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
                v = (v | (v << np.uint64(2))) & np.uint64(0x3333333333333333)
                v = (v | (v << np.uint64(1))) & np.uint64(0x5555555555555555)
            code |= np.int64(v) << d
        out[i] = code


_jit_lock = threading.Lock()
_jitted = False


def _jit() -> None:
    """Import numba and wrap the query kernels (each compiled, or loaded from numba's
    cache, on its first call).

    Deferred to the first query so that importing :mod:`vta.fem.locate`, and everything
    that only needs :class:`TriLocator`, stays free of numba's import and start-up cost.
    The module globals are rebound to the compiled versions; numba resolves the helper
    ``_min_bary`` (a global of ``_locate_chunks``) when it compiles its caller. The
    cache is keyed by this file, so it stays valid across processes.
    """
    global _jitted, _min_bary, _locate_chunks, _morton_points
    if _jitted:
        return
    with _jit_lock:
        if _jitted:
            return
        import numba

        _min_bary = numba.njit(cache=True, inline="always")(_min_bary)
        _locate_chunks = numba.njit(cache=True, nogil=True)(_locate_chunks)
        _morton_points = numba.njit(cache=True, nogil=True)(_morton_points)
        _jitted = True


def _num_threads() -> int:
    """Worker threads for large kernels: ``NUMBA_NUM_THREADS`` (numba's setting, by
    default the CPU count), at most the CPUs this process may run on."""
    import numba

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(int(numba.config.NUMBA_NUM_THREADS), cpus))


def _run_threaded(kernel, n: int, args: tuple, max_threads: int | None = None,
                  ranges_per_thread: int = 4) -> list:
    """Run ``kernel(i0, i1, *args)`` over ranges covering [0, n); returns the results in
    range order.

    The kernels are GIL-free numba functions whose ranges write disjoint outputs, so
    plain Python threads run them in parallel (no numba threading layer to start, and a
    serial kernel compiles several times faster than a ``parallel=True`` one). A few
    ranges per thread (``ranges_per_thread``) balance uneven work; one range per thread
    suits kernels that allocate a full-size output per range. With one thread (or
    ``max_threads`` <= 1) the kernel runs once over [0, n) on the calling thread.
    """
    threads = _num_threads()
    if max_threads is not None:
        threads = min(threads, max_threads)
    if threads <= 1 or n < 2:
        return [kernel(0, n, *args)]
    from concurrent.futures import ThreadPoolExecutor

    ntasks = min(n, ranges_per_thread * threads)
    bounds = [n * i // ntasks for i in range(ntasks + 1)]
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(kernel, bounds[i], bounds[i + 1], *args) for i in range(ntasks)]
        return [f.result() for f in futures]


# --------------------------------------------------------------------------------------
# public classes
# --------------------------------------------------------------------------------------


class SimplexLocator:
    """Point locator for a simplicial mesh (triangles in 2D, tetrahedra in 3D); numba.

    Parameters
    ----------
    points : ndarray, shape (N, D)
        Vertex coordinates (mm in ``vta``); D = 2 or 3.
    cells : ndarray, shape (M, D + 1)
        Vertex indices of each simplex.
    tol : float
        Tolerance on barycentric coordinates (dimensionless): a point is inside an
        element when all its barycentric coordinates are >= -tol. The default 1e-9
        accepts points on shared faces and on the mesh boundary up to round-off.

    Attributes
    ----------
    order : ndarray of int64, shape (M,)
        Internal (Morton) element order: internal element i is ``cells[order[i]]``.
    p0 : ndarray, shape (M, D)
        First vertex of every element, internal order.
    tinv : ndarray, shape (M, D, D)
        Inverse of the element Jacobian ``[p1 - p0, ..., pD - p0]``, internal order.
    build_time_s : float
        Wall time to build the acceleration structure, seconds (numpy only: the query
        kernel is compiled or loaded from numba's cache on the first :meth:`locate`).
    """

    dim: int = 0

    def __init__(self, points: np.ndarray, cells: np.ndarray, tol: float = 1e-9) -> None:
        t0 = time.perf_counter()
        points, cells = _check_mesh(points, cells, self.dim, type(self).__name__)
        self.points = points
        self.cells = cells
        self.tol = float(tol)
        self._lo = points.min(axis=0)
        self._hi = points.max(axis=0)
        pad = 1e-9 * float(np.max(self._hi - self._lo))
        box = _element_boxes(points, cells, pad)
        D = points.shape[1]
        codes = _morton(0.5 * (box[:, :D] + box[:, D:]), self._lo, self._hi)
        # all internal arrays are stored in Morton order of the element centroids
        # (spatial locality for the walk and the BVH); ``order`` maps back.
        self.order = np.argsort(codes, kind="stable").astype(np.int64)
        cells_s = np.ascontiguousarray(cells[self.order])
        self.p0, self.tinv = _inverse_maps(points, cells_s)
        self.nbox, self.child, self.start, self.end = _build_bvh(
            np.ascontiguousarray(box[self.order]), codes[self.order], _LEAF_SIZE
        )
        self.nbr = _neighbours(cells_s, points.shape[0])
        self.build_time_s = time.perf_counter() - t0
        log.debug(
            "%s: %d elements, %d BVH nodes, built in %.3f s",
            type(self).__name__, cells.shape[0], self.nbox.shape[0], self.build_time_s,
        )

    @property
    def n_elements(self) -> int:
        """Number of elements."""
        return int(self.cells.shape[0])

    def locate(
        self, query: np.ndarray, sort_queries: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Find the element containing each query point.

        Parameters
        ----------
        query : ndarray, shape (Q, D)
            Points (same units as the mesh, mm).
        sort_queries : bool, optional
            Process the points in Morton (Z-curve) order so that consecutive queries
            are close in space (the previous element is then usually a hit).
            Default: True for 4096 points or more. Results are returned in the
            caller's order either way.

        Returns
        -------
        elem : ndarray of int64, shape (Q,)
            Element index, or -1 when the point lies outside the mesh.
        bary : ndarray of float64, shape (Q, D + 1)
            Barycentric coordinates (ordered like the element's vertices; sum to 1;
            each >= -tol). NaN for points outside.
        """
        q = _check_query(query, self.points.shape[1])
        t0 = time.perf_counter()
        if sort_queries is None:
            sort_queries = q.shape[0] >= 4096
        _jit()
        Q, D = q.shape
        if sort_queries:
            codes = np.empty(Q, dtype=np.int64)
            _morton_points(q, self._lo, self._hi, codes)
            perm = np.argsort(codes)
        else:
            perm = np.arange(Q, dtype=np.int64)
        elem = np.full(Q, -1, dtype=np.int64)
        bary = np.full((Q, D + 1), np.nan)
        args = (q, perm, self.p0, self.tinv, self.nbox, self.child, self.start, self.end,
                self.order, self.nbr, self.tol, _CHUNK, _MAX_WALK, elem, bary)
        # chunks of _CHUNK points; several threads only for large queries
        _run_threaded(_locate_chunks, (Q + _CHUNK - 1) // _CHUNK, args,
                      None if Q >= _PARALLEL_MIN else 1)
        log.debug("located %d points in %.3f s (%d outside)", q.shape[0],
                  time.perf_counter() - t0, int(np.count_nonzero(elem < 0)))
        return elem, bary


class TetLocator(SimplexLocator):
    """Point locator for tetrahedral meshes.

    Parameters
    ----------
    points : ndarray, shape (N, 3)
        Vertex coordinates, mm.
    tets : ndarray, shape (M, 4)
        Vertex indices (e.g. ``skfem.MeshTet.t.T``).
    tol : float
        Barycentric tolerance (dimensionless).

    Examples
    --------
    >>> loc = TetLocator(mesh.p.T, mesh.t.T)          # doctest: +SKIP
    >>> elem, bary = loc.locate(np.array([[0.0, 0.0, 2.0]]))  # doctest: +SKIP
    """

    dim = 3

    def __init__(self, points: np.ndarray, tets: np.ndarray, tol: float = 1e-9) -> None:
        super().__init__(points, tets, tol)
