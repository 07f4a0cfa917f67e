"""Fast point location in triangular meshes (the axisymmetric (r, z) meshes); numpy.

:class:`TriLocator` answers "which triangle contains this point, and with which
barycentric coordinates" for many query points, like
:class:`vta.fem.locate.TetLocator` does for tetrahedra.

A multi-level bucket grid: a triangle whose bounding box spans ``d + 1`` base cells is
filed under the finest level ``L`` (cells of ``2**L`` base cells) at which it touches
at most 2 x 2 cells, however graded the mesh is. A query visits one cell per level,
finest first, tests the triangles filed there with vectorised barycentric coordinates,
and stops once it is strictly inside one. It keeps the triangle with the largest
smallest barycentric coordinate. No compilation and no numba import: the first query
costs milliseconds, which is what one-shot commands on the axisymmetric fast path need
(importing numba alone takes ~0.4 s).

The barycentric coordinates come from the same per-element inverse maps and the same
operations as :class:`vta.fem.locate.SimplexLocator`, so both return bitwise identical
results except, possibly, for points on a shared edge (within ``tol``), where either
neighbour is a valid answer. Points outside the mesh get element ``-1`` and NaN
barycentric coordinates. Coordinates are in the caller's units (mm throughout ``vta``).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .locate_common import _check_mesh, _check_query, _element_boxes, _inverse_maps

__all__ = ["TriLocator"]

log = logging.getLogger(__name__)

#: Query points per vectorised block of :class:`TriLocator` (bounds its memory).
_TRI_BLOCK = 1 << 16
#: A triangle whose smallest barycentric coordinate exceeds this holds the point in its
#: interior: no other triangle of a conforming mesh can do better, the search stops.
_INTERIOR = 1e-10


class TriLocator:
    """Point locator for triangular meshes (e.g. the axisymmetric (r, z) mesh); numpy.

    Pure numpy (no compilation): a multi-level bucket grid, see the module docstring.
    A point is assigned the triangle with the largest smallest barycentric coordinate
    among those that contain it within ``tol`` (the one it is strictly inside, if any).

    Parameters
    ----------
    points : ndarray, shape (N, 2)
        Vertex coordinates, mm.
    tris : ndarray, shape (M, 3)
        Vertex indices (e.g. ``skfem.MeshTri.t.T``).
    tol : float
        Barycentric tolerance (dimensionless), as in :class:`SimplexLocator`.

    Attributes
    ----------
    p0 : ndarray, shape (M, 2)
        First vertex of every triangle (caller's order).
    tinv : ndarray, shape (M, 2, 2)
        Inverse of the triangle Jacobian ``[p1 - p0, p2 - p0]`` (NaN if degenerate).
    build_time_s : float
        Wall time to build the bucket grid, seconds.
    """

    dim = 2

    def __init__(self, points: np.ndarray, tris: np.ndarray, tol: float = 1e-9) -> None:
        t0 = time.perf_counter()
        points, cells = _check_mesh(points, tris, 2, type(self).__name__)
        self.points = points
        self.cells = cells
        self.tol = float(tol)
        self.p0, self.tinv = _inverse_maps(points, cells)
        # flat per-triangle columns for the vectorised barycentric test
        self._cols = (self.p0[:, 0].copy(), self.p0[:, 1].copy(),
                      self.tinv[:, 0, 0].copy(), self.tinv[:, 0, 1].copy(),
                      self.tinv[:, 1, 0].copy(), self.tinv[:, 1, 1].copy())
        lo_all = points.min(axis=0)
        hi_all = points.max(axis=0)
        span = float(np.max(hi_all - lo_all))
        pad = 1e-9 * span
        box = _element_boxes(points, cells, pad)
        ext = np.max(box[:, 2:] - box[:, :2], axis=1)
        # base cell: the smallest triangle, but no finer than span / 2**26 so that cell
        # indices fit the 28-bit fields of the bucket keys
        self._h0 = max(float(ext.min()), span * 2.0**-26) or 1.0
        self._origin = lo_all - 2.0 * pad
        self._top = hi_all + 2.0 * pad
        a0 = np.floor((box[:, :2] - self._origin) / self._h0).astype(np.int64)
        a1 = np.floor((box[:, 2:] - self._origin) / self._h0).astype(np.int64)
        # level L: the smallest at which the box touches <= 2 cells per axis; that is
        # bit_length(d) - 1 or bit_length(d - 1) for a box spanning d + 1 base cells
        d = np.max(a1 - a0, axis=1)
        lev = np.maximum(np.frexp(d.astype(np.float64))[1].astype(np.int64) - 1, 0)
        wide = np.max((a1 >> lev[:, None]) - (a0 >> lev[:, None]), axis=1) > 1
        lev[wide] += 1
        i0 = a0 >> lev[:, None]
        i1 = a1 >> lev[:, None]
        keys, ids = [], []
        tri = np.arange(cells.shape[0], dtype=np.int64)
        for dx in (0, 1):
            for dy in (0, 1):
                ok = (i0[:, 0] + dx <= i1[:, 0]) & (i0[:, 1] + dy <= i1[:, 1])
                keys.append(_bucket_key(lev[ok], i0[ok, 0] + dx, i0[ok, 1] + dy))
                ids.append(tri[ok])
        keys = np.concatenate(keys)
        ids = np.concatenate(ids)
        o = np.argsort(keys, kind="stable")
        self._ids = ids[o]
        self._keys, self._kstart, self._kcount = np.unique(
            keys[o], return_index=True, return_counts=True)
        # per level (finest first): cell index range covered by its triangles
        self._levels = []
        for L in np.unique(lev):
            sel = lev == L
            self._levels.append((int(L), i0[sel].min(axis=0), i1[sel].max(axis=0)))
        self.build_time_s = time.perf_counter() - t0
        log.debug("TriLocator: %d triangles, %d levels, %d buckets, built in %.3f s",
                  cells.shape[0], len(self._levels), self._keys.size, self.build_time_s)

    @property
    def n_elements(self) -> int:
        """Number of elements."""
        return int(self.cells.shape[0])

    def locate(
        self, query: np.ndarray, sort_queries: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Find the triangle containing each query point.

        Parameters
        ----------
        query : ndarray, shape (Q, 2)
            Points (same units as the mesh, mm).
        sort_queries : bool, optional
            Accepted for compatibility with :meth:`SimplexLocator.locate`; ignored.

        Returns
        -------
        elem : ndarray of int64, shape (Q,)
            Triangle index, or -1 when the point lies outside the mesh.
        bary : ndarray of float64, shape (Q, 3)
            Barycentric coordinates (ordered like the triangle's vertices; sum to 1;
            each >= -tol). NaN for points outside.
        """
        q = _check_query(query, 2)
        t0 = time.perf_counter()
        Q = q.shape[0]
        elem = np.full(Q, -1, dtype=np.int64)
        bary = np.full((Q, 3), np.nan)
        for b in range(0, Q, _TRI_BLOCK):
            self._locate_block(q[b:b + _TRI_BLOCK], elem[b:b + _TRI_BLOCK],
                               bary[b:b + _TRI_BLOCK])
        log.debug("located %d points in %.3f s (%d outside)", Q,
                  time.perf_counter() - t0, int(np.count_nonzero(elem < 0)))
        return elem, bary

    def _locate_block(self, q: np.ndarray, elem: np.ndarray, bary: np.ndarray) -> None:
        """Locate the points q (n, 2) into the views elem (n,) and bary (n, 3)."""
        qx = q[:, 0].copy()
        qy = q[:, 1].copy()
        inside = ((qx >= self._origin[0]) & (qx <= self._top[0])
                  & (qy >= self._origin[1]) & (qy <= self._top[1]))   # False for NaN
        act = np.flatnonzero(inside)                      # points still searching
        ix = np.floor((qx[act] - self._origin[0]) / self._h0).astype(np.int64)
        iy = np.floor((qy[act] - self._origin[1]) / self._h0).astype(np.int64)
        best = np.full(q.shape[0], -np.inf)
        x0, y0, t00, t01, t10, t11 = self._cols
        nkeys = self._keys.size
        for L, cmin, cmax in self._levels:                # finest first
            if act.size == 0:
                break
            jx = ix >> L
            jy = iy >> L
            sel = np.flatnonzero((jx >= cmin[0]) & (jx <= cmax[0])
                                 & (jy >= cmin[1]) & (jy <= cmax[1]))
            if sel.size == 0:
                continue
            key = _bucket_key(L, jx[sel], jy[sel])
            pos = np.minimum(np.searchsorted(self._keys, key), nkeys - 1)
            hit = self._keys[pos] == key
            sel, pos = sel[hit], pos[hit]
            if sel.size == 0:
                continue
            # (point, triangle) pairs of this level's buckets; a point's pairs are
            # adjacent
            cnt = self._kcount[pos]
            csum = np.cumsum(cnt)
            n = int(csum[-1])
            t = self._ids.take(np.repeat(self._kstart[pos] - (csum - cnt), cnt)
                               + np.arange(n))
            p = act.take(np.repeat(sel, cnt))
            # barycentric coordinates (same operations as _min_bary)
            dx = qx.take(p)
            dx -= x0.take(t)
            dy = qy.take(p)
            dy -= y0.take(t)
            l1 = t00.take(t)
            l1 *= dx
            tmp = t01.take(t)
            tmp *= dy
            l1 += tmp
            l2 = t10.take(t)
            l2 *= dx
            np.multiply(t11.take(t), dy, out=tmp)
            l2 += tmp
            l0 = np.add(l1, l2, out=dx)
            np.subtract(1.0, l0, out=l0)
            m = np.minimum(l0, l1, out=dy)
            np.minimum(m, l2, out=m)
            h = np.flatnonzero(m >= -self.tol)            # NaN (degenerate) -> False
            if h.size == 0:
                continue
            ph = p[h]
            if h.size > 1 and np.any(ph[1:] == ph[:-1]):
                # several candidates for a point: keep the first with the largest m
                new = np.empty(h.size, dtype=bool)
                new[0] = True
                np.not_equal(ph[1:], ph[:-1], out=new[1:])
                gid = np.cumsum(new) - 1
                mh = m[h]
                c = np.flatnonzero(mh == np.maximum.reduceat(mh, np.flatnonzero(new))[gid])
                first = np.empty(c.size, dtype=bool)
                first[0] = True
                np.not_equal(gid[c[1:]], gid[c[:-1]], out=first[1:])
                h = h[c[first]]
                ph = p[h]
            better = m[h] > best[ph]
            h, ph = h[better], ph[better]
            best[ph] = m[h]
            elem[ph] = t[h]
            bary[ph, 0] = l0[h]
            bary[ph, 1] = l1[h]
            bary[ph, 2] = l2[h]
            keep = best[act] <= _INTERIOR
            act, ix, iy = act[keep], ix[keep], iy[keep]


def _bucket_key(level, ix, iy):
    """Bucket key of cell (ix, iy) at ``level`` (6 + 28 + 28 bits)."""
    return (np.int64(level) << 56) | (ix << 28) | iy
