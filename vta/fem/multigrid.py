"""Block multigrid preconditioner and block conjugate gradients for the unit solves of
:mod:`vta.fem.solve`.

* :class:`BlockMultigrid`: a symmetric V-cycle whose first coarse level is P1 on the
  same mesh (the exact P2 -> P1 embedding, :func:`p1_embedding`, "p-multigrid"), then
  pyamg smoothed aggregation on that P1 operator, dense Cholesky at the bottom;
  symmetric Gauss-Seidel smoothing on all right-hand sides at once.
* :func:`block_pcg`: the K CG recurrences run in lockstep, so every matrix and
  smoother pass reads the matrix once for all K columns.

The sparse kernels (Gauss-Seidel sweep, CSR times a block of columns) are numba
functions compiled at import (``cache=True``: loaded from numba's cache after the first
run), GIL-free.

Units: whatever the system is in (the FEM passes S/mm stiffness matrices and V).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .assembly import DofMap

__all__ = ["BlockMultigrid", "block_pcg", "p1_embedding"]


@nb.njit(cache=True, nogil=True)
def _gs_sweep(indptr, indices, data, dinv, X, B, forward):
    """One Gauss-Seidel pass over the rows (forward or backward) for all columns of
    X (n, k) at once: the matrix is read once per pass (per four columns), not once
    per right-hand side. Columns go in groups of four held in scalars (2x faster than
    a loop over a column axis, measured)."""
    n = indptr.shape[0] - 1
    k = X.shape[1]
    for c0 in range(0, k, 4):
        w = min(4, k - c0)
        for ii in range(n):
            i = ii if forward else n - 1 - ii
            s0 = B[i, c0]
            s1 = B[i, c0 + 1] if w > 1 else 0.0
            s2 = B[i, c0 + 2] if w > 2 else 0.0
            s3 = B[i, c0 + 3] if w > 3 else 0.0
            if w == 4:
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    a = data[p]
                    s0 -= a * X[j, c0]
                    s1 -= a * X[j, c0 + 1]
                    s2 -= a * X[j, c0 + 2]
                    s3 -= a * X[j, c0 + 3]
            elif w == 2:
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    a = data[p]
                    s0 -= a * X[j, c0]
                    s1 -= a * X[j, c0 + 1]
            else:
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    a = data[p]
                    s0 -= a * X[j, c0]
                    if w > 1:
                        s1 -= a * X[j, c0 + 1]
                    if w > 2:
                        s2 -= a * X[j, c0 + 2]
            d = dinv[i]
            X[i, c0] += s0 * d
            if w > 1:
                X[i, c0 + 1] += s1 * d
            if w > 2:
                X[i, c0 + 2] += s2 * d
            if w > 3:
                X[i, c0 + 3] += s3 * d


@nb.njit(cache=True, nogil=True)
def _spmm(indptr, indices, data, X, out, B, sign):
    """out = B + sign * A @ X (B may be empty: out = sign * A @ X), X and out (n, k)."""
    n = indptr.shape[0] - 1
    k = X.shape[1]
    has_b = B.shape[0] == n
    for c0 in range(0, k, 4):
        w = min(4, k - c0)
        for i in range(n):
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            if w == 4:
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    a = data[p]
                    s0 += a * X[j, c0]
                    s1 += a * X[j, c0 + 1]
                    s2 += a * X[j, c0 + 2]
                    s3 += a * X[j, c0 + 3]
            elif w == 2:
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    a = data[p]
                    s0 += a * X[j, c0]
                    s1 += a * X[j, c0 + 1]
            else:
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    a = data[p]
                    s0 += a * X[j, c0]
                    if w > 1:
                        s1 += a * X[j, c0 + 1]
                    if w > 2:
                        s2 += a * X[j, c0 + 2]
            out[i, c0] = sign * s0 + (B[i, c0] if has_b else 0.0)
            if w > 1:
                out[i, c0 + 1] = sign * s1 + (B[i, c0 + 1] if has_b else 0.0)
            if w > 2:
                out[i, c0 + 2] = sign * s2 + (B[i, c0 + 2] if has_b else 0.0)
            if w > 3:
                out[i, c0 + 3] = sign * s3 + (B[i, c0 + 3] if has_b else 0.0)


_NO_B = np.zeros((0, 0))


def _csr_parts(A: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    A = sp.csr_matrix(A)
    A.sum_duplicates()
    A.sort_indices()
    return (A.indptr.astype(np.int64), A.indices.astype(np.int32), A.data.astype(np.float64))


def _matmul(parts, X: np.ndarray, B: np.ndarray | None = None, sign: float = 1.0) -> np.ndarray:
    out = np.empty((parts[0].shape[0] - 1, X.shape[1]))
    _spmm(*parts, np.ascontiguousarray(X), out, _NO_B if B is None else B, float(sign))
    return out


class _Level:
    __slots__ = ("A", "dinv", "P", "R", "n")

    def __init__(self, A: sp.spmatrix, P: sp.spmatrix) -> None:
        self.A = _csr_parts(A)
        self.n = A.shape[0]
        d = np.asarray(sp.csr_matrix(A).diagonal(), dtype=np.float64)
        self.dinv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1.0), 0.0)
        self.P = _csr_parts(P)
        self.R = _csr_parts(sp.csr_matrix(P).T)


class BlockMultigrid:
    """Symmetric V-cycle preconditioner applied to a block of right-hand sides.

    Levels: an optional geometric first coarsening (P2 -> P1 on the same mesh, the
    exact embedding of the P1 space; "p-multigrid"), then pyamg smoothed aggregation
    on the coarse operator, and a dense Cholesky factorisation at the bottom. Every
    level is smoothed with one symmetric Gauss-Seidel sweep before and after the
    coarse correction, on all columns at once (numba), so the cycle is symmetric
    positive definite and each matrix is read once per sweep for all right-hand sides.

    Parameters
    ----------
    A : sparse matrix, shape (n, n)
        SPD system matrix.
    prolongation : sparse matrix, shape (n, m), optional
        Coarse space for the first level (e.g. the P1 -> P2 embedding); its Galerkin
        operator ``P^T A P`` is then coarsened by smoothed aggregation.
    max_coarse : int
        Size below which a level is factorised directly.
    """

    def __init__(self, A: sp.spmatrix, prolongation: sp.spmatrix | None = None,
                 max_coarse: int = 500) -> None:
        self.levels: list[_Level] = []
        A = sp.csr_matrix(A)
        if prolongation is not None and prolongation.shape[1] > 0:
            P = sp.csr_matrix(prolongation)
            Ac = (P.T @ (A @ P)).tocsr()
            self.levels.append(_Level(A, P))
            A = Ac
        if A.shape[0] > max_coarse:
            import pyamg

            ml = pyamg.smoothed_aggregation_solver(A, symmetry="hermitian", max_coarse=max_coarse)
            for lvl in ml.levels[:-1]:
                self.levels.append(_Level(lvl.A, lvl.P))
            A = ml.levels[-1].A
        dense = A.toarray()
        try:
            self._coarse = ("cholesky", sla.cho_factor(dense))
        except np.linalg.LinAlgError:  # semi-definite coarse operator
            self._coarse = ("pinv", np.linalg.pinv(dense))
        self.sizes = [lvl.n for lvl in self.levels] + [dense.shape[0]]

    def _coarse_solve(self, B: np.ndarray) -> np.ndarray:
        kind, f = self._coarse
        return sla.cho_solve(f, B) if kind == "cholesky" else f @ B

    def _cycle(self, i: int, B: np.ndarray) -> np.ndarray:
        if i == len(self.levels):
            return np.ascontiguousarray(self._coarse_solve(B))
        L = self.levels[i]
        X = np.zeros_like(B)
        _gs_sweep(*L.A, L.dinv, X, B, True)
        _gs_sweep(*L.A, L.dinv, X, B, False)
        r = _matmul(L.A, X, B, -1.0)
        X += _matmul(L.P, self._cycle(i + 1, _matmul(L.R, r)))
        _gs_sweep(*L.A, L.dinv, X, B, False)
        _gs_sweep(*L.A, L.dinv, X, B, True)
        return X

    def __call__(self, B: np.ndarray) -> np.ndarray:
        """Approximate A^-1 B for B (n,) or (n, k).

        The columns are split into one contiguous block per thread (the cycle is
        independent per column and its kernels release the GIL), so two cores smooth two
        blocks at once."""
        b = np.asarray(B, dtype=np.float64)
        b2 = b.reshape(b.shape[0], -1)
        X = _by_column_blocks(lambda block: self._cycle(0, block), b2)
        return X.reshape(b.shape)


def _column_blocks(k: int) -> list[tuple[int, int]]:
    """Column ranges, one per worker thread (``NUMBA_NUM_THREADS``, at most the CPUs):
    blocks of 4 columns (the kernels' widest fast path) when there are enough for every
    thread, else equal blocks (2 columns each for 4 right-hand sides on 2 threads)."""
    from .locate import _num_threads

    threads = min(_num_threads(), k)
    if threads <= 1:
        return [(0, k)]
    nblocks = -(-k // 4) if k >= 4 * threads else threads
    bounds = [k * i // nblocks for i in range(nblocks + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(nblocks) if bounds[i + 1] > bounds[i]]


def _by_column_blocks(fn, B: np.ndarray) -> np.ndarray:
    """``fn`` applied to contiguous column blocks of B (n, k) on worker threads and the
    results put side by side; ``fn`` works column by column (the blocks do not
    interact) and releases the GIL in its kernels."""
    blocks = _column_blocks(B.shape[1])
    if len(blocks) == 1:
        return fn(np.ascontiguousarray(B))
    futures = [_POOL.submit(fn, np.ascontiguousarray(B[:, c0:c1])) for c0, c1 in blocks]
    return np.concatenate([f.result() for f in futures], axis=1)


class _LazyPool:
    """A process-wide thread pool created on first use (worker threads of the solver)."""

    def __init__(self) -> None:
        self._pool = None

    def submit(self, fn, *args):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            from .locate import _num_threads

            self._pool = ThreadPoolExecutor(_num_threads(), thread_name_prefix="vta-multigrid")
        return self._pool.submit(fn, *args)


_POOL = _LazyPool()


def block_pcg(A: sp.spmatrix, B: np.ndarray, M, tol: float = 1e-8, maxiter: int = 500
              ) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Preconditioned conjugate gradients for several right-hand sides in lockstep.

    Each column is an independent CG recurrence (own step lengths), but the products
    with ``A`` and the preconditioner ``M`` are applied to the whole block at once.
    Iteration stops when every column has ``||b - A x|| <= tol ||b||``.

    Returns
    -------
    X : ndarray (n, k)
    iterations : list of int
        Iterations each column needed (0 for a zero right-hand side).
    relres : ndarray (k,)
        Final relative residuals.
    """
    Ap = _csr_parts(A)
    B = np.ascontiguousarray(np.asarray(B, dtype=np.float64).reshape(B.shape[0], -1))
    k = B.shape[1]
    X = np.zeros_like(B)
    bnorm = np.linalg.norm(B, axis=0)
    active = bnorm > 0
    bnorm[~active] = 1.0
    R = B.copy()
    rel = np.where(active, 1.0, 0.0)
    its = [0] * k
    done = ~active
    if done.all():
        return X, its, rel
    Z = M(R)
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    for it in range(1, maxiter + 1):
        Q = _by_column_blocks(lambda block: _matmul(Ap, block), P)
        pq = np.einsum("ij,ij->j", P, Q)
        ok = (pq > 0) & ~done
        alpha = np.where(ok, rz / np.where(ok, pq, 1.0), 0.0)
        X += P * alpha
        R -= Q * alpha
        rel = np.where(active, np.linalg.norm(R, axis=0) / bnorm, 0.0)
        for c in range(k):
            if not done[c] and rel[c] <= tol:
                done[c] = True
                its[c] = it
        if done.all():
            break
        Z = M(R)
        rz_new = np.einsum("ij,ij->j", R, Z)
        beta = np.where(~done & (rz != 0), rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        rz = rz_new
        P = Z + P * beta
    for c in range(k):
        if not done[c]:
            its[c] = maxiter
    return X, its, rel


def p1_embedding(dofmap: DofMap) -> sp.csr_matrix:
    """Prolongation (n_dofs, n_vertices) from P1 to P2 on the same mesh: vertex DOFs
    copy, edge DOFs take the mean of their two vertices (exact for P1 functions)."""
    nv = dofmap.n_vertices
    if dofmap.order == 1:
        return sp.identity(nv, format="csr")
    ne = dofmap.edges.shape[0]
    rows = np.concatenate([np.arange(nv), nv + np.arange(ne), nv + np.arange(ne)])
    cols = np.concatenate([np.arange(nv), dofmap.edges[:, 0], dofmap.edges[:, 1]])
    vals = np.concatenate([np.ones(nv), np.full(2 * ne, 0.5)])
    return sp.csr_matrix((vals, (rows, cols)), shape=(dofmap.n_dofs, nv))
