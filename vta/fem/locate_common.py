"""Build steps and input checks shared by the point locators of :mod:`vta.fem.locate`
(:class:`~vta.fem.locate.TetLocator`) and :mod:`vta.fem.locate_tri`
(:class:`~vta.fem.locate_tri.TriLocator`).

Dimension-generic (D = 2 triangles, D = 3 tetrahedra) and pure numpy. Both locators
compute barycentric coordinates with the same per-element inverse maps, which is what
makes their answers bitwise identical. Coordinates are in the caller's units (mm
throughout ``vta``).
"""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


def _inverse_maps(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-element origin ``p0`` (M, D) and inverse Jacobian ``Tinv`` (M, D, D).

    For x in element e: lam[1:] = Tinv[e] @ (x - p0[e]), lam[0] = 1 - sum(lam[1:]).
    Degenerate elements get ``Tinv = nan`` (never found). Explicit cofactor formulas
    (not ``np.linalg.inv``) so every element gets the same, reproducible rounding.
    """
    D = points.shape[1]
    p0 = points[cells[:, 0]]
    tinv = np.empty((cells.shape[0], D, D))
    # vertex coordinates as contiguous columns: x[k][d] = coordinate d of vertex k
    cols = [np.ascontiguousarray(points[:, d]) for d in range(D)]
    x = [[c.take(cells[:, k]) for c in cols] for k in range(D + 1)]
    if D == 3:
        a, b, c, f = x
        j00 = b[0] - a[0]
        j10 = b[1] - a[1]
        j20 = b[2] - a[2]
        j01 = c[0] - a[0]
        j11 = c[1] - a[1]
        j21 = c[2] - a[2]
        j02 = f[0] - a[0]
        j12 = f[1] - a[1]
        j22 = f[2] - a[2]
        c00 = j11 * j22 - j12 * j21
        c01 = j02 * j21 - j01 * j22
        c02 = j01 * j12 - j02 * j11
        c10 = j12 * j20 - j10 * j22
        c11 = j00 * j22 - j02 * j20
        c12 = j02 * j10 - j00 * j12
        c20 = j10 * j21 - j11 * j20
        c21 = j01 * j20 - j00 * j21
        c22 = j00 * j11 - j01 * j10
        det = j00 * c00 + j01 * c10 + j02 * c20
        scale = (np.abs(j00) + np.abs(j10) + np.abs(j20) + np.abs(j01) + np.abs(j11)
                 + np.abs(j21) + np.abs(j02) + np.abs(j12) + np.abs(j22))
        bad = np.abs(det) <= 1e-14 * scale * scale * scale
        cof = ((c00, c01, c02), (c10, c11, c12), (c20, c21, c22))
    else:
        a, b, c = x
        j00 = b[0] - a[0]
        j10 = b[1] - a[1]
        j01 = c[0] - a[0]
        j11 = c[1] - a[1]
        det = j00 * j11 - j01 * j10
        scale = np.abs(j00) + np.abs(j10) + np.abs(j01) + np.abs(j11)
        bad = np.abs(det) <= 1e-14 * scale * scale
        cof = ((j11, -j01), (-j10, j00))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / det
        for i in range(D):
            for j in range(D):
                tinv[:, i, j] = cof[i][j] * inv
    tinv[bad] = np.nan
    return p0, tinv


def _element_boxes(points: np.ndarray, cells: np.ndarray, pad: float) -> np.ndarray:
    """Axis-aligned bounding boxes (M, 2D): [min_0..min_{D-1}, max_0..max_{D-1}]."""
    D = points.shape[1]
    box = np.empty((cells.shape[0], 2 * D))
    for d in range(D):
        x = points[:, d]
        v = [x.take(cells[:, k]) for k in range(cells.shape[1])]
        lo, hi = v[0].copy(), v[0].copy()
        for w in v[1:]:
            np.minimum(lo, w, out=lo)
            np.maximum(hi, w, out=hi)
        box[:, d] = lo - pad
        box[:, D + d] = hi + pad
    return box


def _check_mesh(points: np.ndarray, cells: np.ndarray, dim: int, name: str):
    points = np.ascontiguousarray(points, dtype=np.float64)
    cells = np.ascontiguousarray(cells, dtype=np.int64)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"points must be (N, 2) or (N, 3), got {points.shape}")
    D = points.shape[1]
    if dim and D != dim:
        raise ValueError(f"{name} needs (N, {dim}) points, got {points.shape}")
    if cells.ndim != 2 or cells.shape[1] != D + 1:
        raise ValueError(f"cells must be (M, {D + 1}), got {cells.shape}")
    if cells.shape[0] == 0:
        raise ValueError("mesh has no elements")
    return points, cells


def _check_query(query: np.ndarray, D: int) -> np.ndarray:
    q = np.ascontiguousarray(query, dtype=np.float64)
    if q.ndim == 1 and q.shape[0] == D:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != D:
        raise ValueError(f"query must be (Q, {D}), got {q.shape}")
    return q
