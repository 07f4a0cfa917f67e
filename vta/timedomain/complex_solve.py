"""Complex sparse solves of ``K(w) = sum_c sigma_c*(w) K_c`` for the frequency bases.

* :class:`ClassSystem`: the class matrices ``K_c`` (assembled once, per S/mm) on one
  CSR pattern, with the free/Dirichlet blocks of any weighted sum in one pass over the
  stored values.
* :func:`solve_shapes`: complex sparse LU (SuperLU; one factorisation, all K
  right-hand sides), or preconditioned COCG (conjugate orthogonal CG for complex
  symmetric matrices; van der Vorst H, Melissen J, IEEE Trans Magn 26:706, 1990) on all
  right-hand sides in lockstep, with the real
  :class:`~vta.fem.multigrid.BlockMultigrid` V-cycle of ``sum_c |sigma_c*| K_c``
  applied to the real and imaginary parts, warm-started from the previous solve;
  GMRES (scipy) finishes a column COCG leaves unconverged. The hierarchy is rebuilt
  only when the magnitude ratios between classes drift by more than a factor 2.

Units: conductivities S/m in, S/mm inside (1e-3), matrices in S, potentials V.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["ClassSystem", "solve_shapes"]

log = logging.getLogger(__name__)

_S_PER_M_TO_S_PER_MM = 1e-3




class ClassSystem:
    """Per-class stiffness values on a common CSR pattern and the free/Dirichlet
    blocks, so that ``K(sigma)`` for any class conductivities costs one weighted sum."""

    def __init__(self, mats: Sequence[sp.csr_matrix], dirichlet: np.ndarray) -> None:
        n = mats[0].shape[0]
        pattern = abs(mats[0]).tocsr()
        for m in mats[1:]:
            pattern = pattern + abs(m)
        pattern = sp.csr_matrix(pattern)
        pattern.sort_indices()
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(pattern.indptr))
        keys = rows * n + pattern.indices
        self.indptr, self.indices, self.n = pattern.indptr, pattern.indices, n
        self.values = np.zeros((len(mats), keys.size))
        for c, m in enumerate(mats):
            coo = sp.coo_matrix(m)
            k = coo.row.astype(np.int64) * n + coo.col
            nz = coo.data != 0
            pos = np.searchsorted(keys, k[nz])
            np.add.at(self.values[c], pos, coo.data[nz])
        self.dirichlet = np.asarray(dirichlet, dtype=np.int64)
        free = np.ones(n, dtype=bool)
        free[self.dirichlet] = False
        self.free = np.flatnonzero(free)
        index = sp.csr_matrix((np.arange(1, keys.size + 1, dtype=np.float64), self.indices, self.indptr),
                              shape=(n, n))
        rows_f = index[self.free]
        self._ff = rows_f[:, self.free].tocsr()
        self._fd = rows_f[:, self.dirichlet].tocsr()
        self._ff_pos = self._ff.data.astype(np.int64) - 1
        self._fd_pos = self._fd.data.astype(np.int64) - 1

    def data(self, sigma_mm: np.ndarray) -> np.ndarray:
        """Values of ``sum_c sigma_c K_c`` on the pattern (sigma in S/mm per class)."""
        return np.asarray(sigma_mm) @ self.values

    def full(self, data: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.n, self.n))

    def blocks(self, data: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(K_ff, K_fd) for the values ``data``."""
        ff = sp.csr_matrix((data[self._ff_pos], self._ff.indices, self._ff.indptr), shape=self._ff.shape)
        fd = sp.csr_matrix((data[self._fd_pos], self._fd.indices, self._fd.indptr), shape=self._fd.shape)
        return ff, fd





def solve_shapes(system: ClassSystem, sigma: np.ndarray, index: np.ndarray, g: np.ndarray,
                  frequencies: np.ndarray, method: str, tol: float, maxiter: int,
                  prolongation: sp.spmatrix | None) -> tuple[list[np.ndarray], list[dict]]:
    """Unit solutions (n, K) complex per shape. sigma (C, n_f) complex S/m."""
    n_shapes = int(index.max()) + 1
    first = np.array([np.flatnonzero(index == s)[0] for s in range(n_shapes)])
    sols, info = [], []
    iterative = _Iterative(system, prolongation, tol, maxiter) if method == "iterative" else None
    x_prev = None
    for s in range(n_shapes):
        i = first[s]
        t0 = time.perf_counter()
        data = system.data(sigma[:, i] * _S_PER_M_TO_S_PER_MM)
        Kff, Kfd = system.blocks(data)
        B = -(Kfd @ g)
        if iterative is None:
            lu = spla.splu(Kff.tocsc(), permc_spec="MMD_AT_PLUS_A" if method == "direct-3d" else "COLAMD",
                           options={"SymmetricMode": True} if method == "direct-3d" else {})
            X = lu.solve(np.ascontiguousarray(B.astype(complex)))
            its, res, kind = 0, float(np.max(np.linalg.norm(Kff @ X - B, axis=0)
                                            / np.maximum(np.linalg.norm(B, axis=0), 1e-300))), "splu"
        else:
            X, its, res = iterative.solve(Kff, B, np.abs(sigma[:, i]), x_prev)
            x_prev, kind = X, "cocg+amg"
        U = np.zeros((system.n, g.shape[1]), dtype=complex)
        U[system.dirichlet] = g
        U[system.free] = X
        sols.append(U)
        dt = time.perf_counter() - t0
        info.append({"frequency_hz": float(frequencies[i]), "seconds": dt, "iterations": its,
                     "residual": res, "solver": kind})
        log.debug("frequency %.6g Hz: %s, %s iterations, residual %.1e, %.3f s",
                  frequencies[i], kind, its, res, dt)
    return sols, info


class _Iterative:
    """COCG with a real multigrid preconditioner, rebuilt when |sigma| ratios drift."""

    def __init__(self, system: ClassSystem, prolongation, tol: float, maxiter: int) -> None:
        self.system, self.tol, self.maxiter = system, tol, maxiter
        self.P = None
        if prolongation is not None:
            m = prolongation.shape[1]
            F = system.free
            self.P = sp.csr_matrix(prolongation)[F][:, F[F < m]]
        self.mg = None
        self.mag = None
        self.setups = 0

    def _precondition(self, mag: np.ndarray):
        from ..fem.multigrid import BlockMultigrid
        from ..fem.solve import _single_threaded_blas

        rel = mag / mag.max()
        if self.mg is None or np.max(np.abs(np.log(rel / self.mag))) > math.log(2.0):
            Pff, _ = self.system.blocks(self.system.data(mag * _S_PER_M_TO_S_PER_MM))
            with _single_threaded_blas():
                self.mg = BlockMultigrid(Pff, self.P)
            self.mag, self.setups = rel, self.setups + 1
        mg = self.mg

        def apply(R: np.ndarray) -> np.ndarray:
            k = R.shape[1]
            Z = mg(np.ascontiguousarray(np.concatenate([R.real, R.imag], axis=1)))
            return Z[:, :k] + 1j * Z[:, k:]
        return apply

    def solve(self, A: sp.csr_matrix, B: np.ndarray, mag: np.ndarray, x0: np.ndarray | None):
        M = self._precondition(mag)
        B = np.asarray(B, dtype=complex)
        X = np.zeros_like(B) if x0 is None else x0.copy()
        X, its, rel = _cocg(A, B, M, X, self.tol, self.maxiter)
        for c in np.flatnonzero(rel > self.tol):                 # rare: COCG stagnated
            op = spla.LinearOperator(A.shape, matvec=lambda v: M(v.reshape(-1, 1))[:, 0], dtype=complex)
            x, _ = spla.gmres(A, B[:, c], x0=X[:, c], rtol=self.tol, atol=0.0, M=op, restart=50,
                              maxiter=self.maxiter)
            X[:, c] = x
            rel[c] = np.linalg.norm(B[:, c] - A @ x) / max(np.linalg.norm(B[:, c]), 1e-300)
            its[c] = -its[c]                                      # negative: finished by GMRES
        return X, its, float(rel.max())


def _cocg(A, B, M, X, tol, maxiter):
    """Preconditioned COCG on all columns in lockstep (bilinear x^T y products)."""
    bnorm = np.maximum(np.linalg.norm(B, axis=0), 1e-300)
    R = B - A @ X
    rel = np.linalg.norm(R, axis=0) / bnorm
    k = B.shape[1]
    its = [0] * k
    done = rel <= tol
    if done.all():
        return X, its, rel
    Z = M(R)
    P = Z.copy()
    rho = np.einsum("ij,ij->j", R, Z)
    for it in range(1, maxiter + 1):
        Q = A @ P
        mu = np.einsum("ij,ij->j", P, Q)
        ok = ~done & (np.abs(mu) > 0)
        alpha = np.where(ok, rho / np.where(ok, mu, 1.0), 0.0)
        X += P * alpha
        R -= Q * alpha
        rel = np.linalg.norm(R, axis=0) / bnorm
        for c in range(k):
            if not done[c] and rel[c] <= tol:
                done[c], its[c] = True, it
        if done.all():
            break
        Z = M(R)
        rho_new = np.einsum("ij,ij->j", R, Z)
        beta = np.where(~done & (np.abs(rho) > 0), rho_new / np.where(np.abs(rho) > 0, rho, 1.0), 0.0)
        rho = rho_new
        P = Z + P * beta
    for c in range(k):
        if not done[c]:
            its[c] = maxiter
    rel = np.linalg.norm(B - A @ X, axis=0) / bnorm                # true residual
    return X, its, rel
