"""P1 / P2 Lagrange elements on straight-sided triangles of the axisymmetric (r, z) mesh.

DOF maps (vertices, then one midpoint per edge for P2), shape functions and their
barycentric derivatives, barycentric gradients and areas, and the assembly of the
axisymmetric stiffness matrix

    integral over the half-plane of  sigma grad u . grad v  2 pi r dr dz

with a quadrature that is exact on straight triangles. Lengths in mm (r, z in the
lead's local frame); with sigma in S/mm the matrix is in S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import VtaError

__all__: list[str] = []


# --------------------------------------------------------------------------------------
# P1 / P2 Lagrange spaces on straight-sided triangles
# --------------------------------------------------------------------------------------

# local edge order of the P2 midpoint DOFs: (0,1), (1,2), (2,0)
_EDGES = np.array([[0, 1], [1, 2], [2, 0]])


@dataclass
class _Space:
    """Lagrange space: DOF coordinates and element-to-DOF map."""

    order: int
    dof_points: np.ndarray      # (D, 2)
    elem_dofs: np.ndarray       # (M, 3) or (M, 6)
    edge_keys: np.ndarray | None  # sorted unique edge keys (P2)
    n_vertices: int

    def boundary_dofs(self, segs: np.ndarray) -> np.ndarray:
        """DOFs on boundary segments (E, 2) of vertex indices."""
        if segs.size == 0:
            return np.empty(0, dtype=np.int64)
        dofs = [segs.ravel()]
        if self.order == 2:
            keys = _edge_key(segs, self.n_vertices)
            pos = np.searchsorted(self.edge_keys, keys)
            dofs.append(self.n_vertices + pos)
        return np.unique(np.concatenate(dofs))


def _edge_key(pairs: np.ndarray, n: int) -> np.ndarray:
    lo = np.minimum(pairs[..., 0], pairs[..., 1]).astype(np.int64)
    hi = np.maximum(pairs[..., 0], pairs[..., 1]).astype(np.int64)
    return lo * n + hi


def _make_space(points: np.ndarray, tris: np.ndarray, order: int) -> _Space:
    n = points.shape[0]
    if order == 1:
        return _Space(1, points, tris, None, n)
    if order != 2:
        raise VtaError(f"element order must be 1 or 2, got {order}")
    keys = _edge_key(tris[:, _EDGES], n)            # (M, 3)
    ukeys, inv = np.unique(keys.ravel(), return_inverse=True)
    lo, hi = ukeys // n, ukeys % n
    mid = 0.5 * (points[lo] + points[hi])
    elem = np.hstack([tris, n + inv.reshape(-1, 3)])
    return _Space(2, np.vstack([points, mid]), elem, ukeys, n)


def _dshape(order: int, lam: np.ndarray) -> np.ndarray:
    """Derivatives d(phi_a)/d(lambda_k) at barycentric points lam (Q, 3) -> (Q, nb, 3)."""
    Q = lam.shape[0]
    if order == 1:
        return np.broadcast_to(np.eye(3), (Q, 3, 3)).copy()
    d = np.zeros((Q, 6, 3))
    for i in range(3):
        d[:, i, i] = 4.0 * lam[:, i] - 1.0
    for e, (i, j) in enumerate(_EDGES):
        d[:, 3 + e, i] = 4.0 * lam[:, j]
        d[:, 3 + e, j] = 4.0 * lam[:, i]
    return d


def _shape(order: int, lam: np.ndarray) -> np.ndarray:
    """Shape function values at barycentric points lam (Q, 3) -> (Q, nb)."""
    if order == 1:
        return lam.copy()
    out = np.empty((lam.shape[0], 6))
    out[:, :3] = lam * (2.0 * lam - 1.0)
    for e, (i, j) in enumerate(_EDGES):
        out[:, 3 + e] = 4.0 * lam[:, i] * lam[:, j]
    return out


def _grad_lambda(points: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the barycentric coordinates (M, 3, 2) and triangle areas (M,)."""
    p = points[tris]
    e1 = p[:, 1] - p[:, 0]
    e2 = p[:, 2] - p[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    g = np.empty((tris.shape[0], 3, 2))
    g[:, 1, 0] = e2[:, 1] / det
    g[:, 1, 1] = -e2[:, 0] / det
    g[:, 2, 0] = -e1[:, 1] / det
    g[:, 2, 1] = e1[:, 0] / det
    g[:, 0] = -(g[:, 1] + g[:, 2])
    return g, 0.5 * np.abs(det)


# Dunavant degree-4 rule (6 points): exact for grad(P2).grad(P2) * r (degree 3)
_QA, _QB = 0.445948490915965, 0.091576213509771
_QW1, _QW2 = 0.223381589678011, 0.109951743655322
_QUAD_LAM = np.array([
    [1 - 2 * _QA, _QA, _QA], [_QA, 1 - 2 * _QA, _QA], [_QA, _QA, 1 - 2 * _QA],
    [1 - 2 * _QB, _QB, _QB], [_QB, 1 - 2 * _QB, _QB], [_QB, _QB, 1 - 2 * _QB],
])
_QUAD_W = np.array([_QW1] * 3 + [_QW2] * 3)


def _reference_tensor(order: int) -> np.ndarray:
    """T[(i, k, l), (a, b)] = (1/|T|) int lambda_i dphi_a/dlambda_k dphi_b/dlambda_l.

    With it the axisymmetric element matrix is linear in the vertex radii r_i and in
    the products of barycentric gradients: ``K_e = 2 pi sigma |T| sum r_i
    (grad lambda_k . grad lambda_l) T[i, k, l, a, b]`` (exact on straight triangles).
    """
    dsh = _dshape(order, _QUAD_LAM)                                  # (Q, nb, 3)
    t = np.einsum("q,qi,qak,qbl->iklab", _QUAD_W, _QUAD_LAM, dsh, dsh)
    nb = dsh.shape[1]
    return t.reshape(27, nb * nb)


def _assemble(space: _Space, tris: np.ndarray, sigma_elem: np.ndarray) -> sp.csr_matrix:
    """Axisymmetric stiffness ``int sigma grad u . grad v 2 pi r dr dz`` (S for S/mm)."""
    glam, area = _grad_lambda(space.dof_points, tris)
    M = tris.shape[0]
    gg = np.matmul(glam, glam.transpose(0, 2, 1))                    # (M, 3, 3)
    r_vert = space.dof_points[tris, 0]                               # (M, 3)
    x = (r_vert[:, :, None, None] * gg[:, None, :, :]).reshape(M, 27)
    ke = (x @ _reference_tensor(space.order)) * (2.0 * math.pi * sigma_elem * area)[:, None]
    nb = space.elem_dofs.shape[1]
    rows = np.repeat(space.elem_dofs, nb, axis=1).ravel()
    cols = np.tile(space.elem_dofs, (1, nb)).ravel()
    n = space.dof_points.shape[0]
    return sp.csr_matrix((ke.ravel(), (rows, cols)), shape=(n, n))
