"""Cross-validated outcome prediction from sweet-spot overlap or activated-fibre score.

:func:`cross_validated_prediction` asks whether the voxel or fibre statistic of a cohort
predicts the outcome of a patient it has not seen (Horn et al. 2017, Ann Neurol 82:67;
Baldermann et al. 2019, Biol Psychiatry 85:735; Li et al. 2020, Nat Commun 11:3364):

1. the units are split into folds: leave-one-out, or k folds (seeded; stratified by class
   for a binary outcome);
2. inside each training fold the per-feature statistic is computed from the training
   units only (no leakage): for 0/1 features (VTA coverage, fibre activation) Welch's t
   or the Wilcoxon rank-sum z of covered vs not covered units, for continuous features
   (|E|) the correlation with the outcome as ``t = r sqrt(n - 2) / sqrt(1 - r^2)``
   (Pearson, or Spearman with ``test="wilcoxon"``); features with fewer than ``min_n``
   units on either side in the training fold are left out (NaN);
3. every unit's score is the mean of that statistic over its features, weighted by its
   feature values: ``score_i = sum_m X_im s_m / sum_m X_im`` over the features with a
   finite statistic (the sweet-spot overlap / fibre score; 0 when none);
4. the outcome is fitted linearly on the score over the training units, and the fit
   predicts the left-out units;
5. ``r`` is the Pearson correlation of predicted and observed outcomes; for a binary
   outcome also the ROC AUC of the predicted values (Mann-Whitney, ties count half).

Permutation p-values: the whole cross-validation is repeated on permuted outcomes and
``p = (#{null >= observed} + 1) / (P + 1)`` (one-sided: better than chance). With
stratified folds, each permutation uses folds stratified for *its* outcomes (the fold
labels travel with the outcomes), so the null keeps the class balance of the folds.

Speed: the statistic is vectorised over features and permutations: a fold costs a few
``(P, N) @ (N, M)`` products. With leave-one-out or fixed folds, Welch and Pearson sums
are computed once for all units and the left-out units' terms subtracted (exact). For
the rank statistics the outcomes are re-ranked inside each training fold; continuous
features for Spearman are rank-transformed once over all units (unsupervised, no
outcome information).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from numba import njit

from ..errors import VtaError
from .stats import (at_least, check_test, correlation_t, masked_ranks, permutation_matrix, permutation_p,
                    r_to_t, rank_sum_moments, rank_sum_z, standardise, tie_term, welch_coefficients,
                    welch_t_from_sums)

__all__ = ["Prediction", "cross_validated_prediction", "assign_folds", "STATISTICS"]

log = logging.getLogger(__name__)

#: ``"group"``: 0/1 features, two-group test; ``"correlation"``: continuous features.
STATISTICS = ("auto", "group", "correlation")
#: Permutations x features per chunk (memory: about 12 float64 arrays of that size).
CHUNK_ELEMENTS = 1_000_000

# ----------------------------------------------------------------------------- fused kernels
# One branch-free (vectorisable) pass over (P, M) per fold: the training sums (full sums
# minus the left-out unit's terms, ``yi`` (P,) and ``fi`` (M,): zeros when the caller
# already subtracted them), the statistic, and the float32 score input (0 where not
# finite) with its finite mask; returns the number of finite entries per row. Per-feature
# terms come precomputed (vta.cohort.stats.welch_coefficients); a feature left out has
# threshold +inf. The formulas are those of vta.cohort.stats (the kernels compile
# rank_sum_moments and r_to_t; Welch's t is the centred form of welch_coefficients), whose
# numpy forms serve per-row training sets; the tests check both against scipy.
# numba's cache keys on this file only: after editing those helpers in stats.py, clear
# vta/cohort/__pycache__/predict.*.nbi/.nbc (or touch this file) so the kernels recompile.
_FAST = {"contract", "arcp"}
_r_to_t = njit(inline="always")(r_to_t)
_rank_sum_moments = njit(inline="always")(rank_sum_moments)


@njit(inline="always")
def _store(out, ok, p, m, value, good):  # pragma: no cover - compiled
    """``out[p, m] = value`` where ``good`` (else 0) and ``ok[p, m] = good``; returns 0/1."""
    out[p, m] = value if good else 0.0
    ok[p, m] = good
    return 1 if good else 0


@njit(cache=True, nogil=True, fastmath=_FAST)
def _welch_kernel(S1f, Q1f, St, Qt, yi, fi, n, n1, amb, b, d, c, se2_min, out, ok):  # pragma: no cover - compiled
    P, M = S1f.shape
    count = np.zeros(P, np.int64)
    for p in range(P):
        ybar = St[p] / n  # the training mean: centre the sums on it
        qt = Qt[p] - St[p] * ybar
        y = yi[p]
        y2 = y * y
        k = 0
        for m in range(M):
            s1 = S1f[p, m] - y * fi[m]
            q1 = Q1f[p, m] - y2 * fi[m]  # fi is 0/1
            s1c = s1 - n1[m] * ybar
            q1c = q1 - ybar * (s1 + s1c)
            se2 = amb[m] * q1c + b[m] * qt - d[m] * (s1c * s1c)
            good = se2 > se2_min[m]
            t = c[m] * s1c / np.sqrt(max(se2, 1e-300))
            k += _store(out, ok, p, m, t, good)
        count[p] = k
    return count


@njit(cache=True, nogil=True, fastmath=_FAST)
def _rank_sum_kernel(R1, T, n, n1, thr, out, ok):  # pragma: no cover - compiled
    P, M = R1.shape
    count = np.zeros(P, np.int64)
    for p in range(P):
        k = 0
        for m in range(M):
            mean, var = _rank_sum_moments(n1[m], n, T[p])
            good = (var > 0.0) & (thr[m] < 1.0)
            z = (R1[p, m] - mean) / np.sqrt(max(var, 1e-300))
            k += _store(out, ok, p, m, z, good)
        count[p] = k
    return count


@njit(cache=True, nogil=True, fastmath=_FAST)
def _correlation_kernel(Sxyf, yi, fi, Sx, inv_sx, Sy, Syy, n, thr, out, ok):  # pragma: no cover - compiled
    P, M = Sxyf.shape
    count = np.zeros(P, np.int64)
    for p in range(P):
        cyy = Syy[p] - Sy[p] * Sy[p] / n
        y_ok = cyy > 1e-12 * max(abs(Syy[p]), 1.0)
        scale = 1.0 / np.sqrt(max(cyy, 1e-300))
        sy, y = Sy[p] / n, yi[p]
        k = 0
        for m in range(M):
            r = (Sxyf[p, m] - y * fi[m] - Sx[m] * sy) * inv_sx[m] * scale
            good = y_ok & (thr[m] < 1.0)
            t = _r_to_t(r, n)
            k += _store(out, ok, p, m, t, good)
        count[p] = k
    return count


@dataclass(frozen=True)
class Prediction:
    """Result of :func:`cross_validated_prediction`.

    Attributes
    ----------
    observed : ndarray (N,)
        Outcome per unit (outcome units).
    predicted : ndarray (N,)
        Cross-validated prediction per unit (outcome units).
    score : ndarray (N,)
        Each unit's score under its own training fold's statistic (statistic units).
    fold : ndarray of int (N,)
        Fold of each unit (0-based).
    r : float
        Pearson correlation of ``predicted`` and ``observed``.
    r_p_perm : float
        Permutation p of ``r`` (one-sided).
    auc, auc_p_perm : float or None
        ROC AUC of ``predicted`` for the class coded 1, and its permutation p (binary only).
    folds : str or int
        ``"loo"`` or the number of folds asked for.
    n_folds : int
    test : str
        ``"t"`` or ``"wilcoxon"``.
    statistic : str
        ``"group"`` or ``"correlation"``.
    binary : bool
    permutations : int
    seed : int or None
    n_features : int
        Features usable in at least one fold (covered by >= ``min_n`` units, and for
        the group statistic not covered by >= ``min_n``).
    null_r : ndarray (P,)
        ``r`` of each permuted run (a constant prediction counts as 0).
    null_auc : ndarray (P,) or None
    seconds : float
        Wall time.
    """

    observed: np.ndarray
    predicted: np.ndarray
    score: np.ndarray
    fold: np.ndarray
    r: float
    r_p_perm: float
    auc: float | None
    auc_p_perm: float | None
    folds: str | int
    n_folds: int
    test: str
    statistic: str
    binary: bool
    permutations: int
    seed: int | None
    n_features: int
    null_r: np.ndarray
    null_auc: np.ndarray | None
    seconds: float

    def rows(self, units: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """``prediction.csv`` rows: unit, observed, predicted, score, fold."""
        names = list(units) if units is not None else [str(i) for i in range(len(self.observed))]
        if len(names) != len(self.observed):
            raise VtaError(f"{len(names)} unit names for {len(self.observed)} predictions")
        return [{"unit": u, "observed": float(o), "predicted": float(p), "score": float(s), "fold": int(f)}
                for u, o, p, s, f in zip(names, self.observed, self.predicted, self.score, self.fold)]

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (for ``group_summary.json``)."""
        out: dict[str, Any] = {"folds": self.folds, "n_folds": self.n_folds, "test": self.test,
                               "statistic": self.statistic, "n_units": int(len(self.observed)),
                               "n_features": self.n_features, "r": self.r, "r_p_perm": self.r_p_perm,
                               "permutations": self.permutations, "seed": self.seed}
        if self.binary:
            out.update(auc=self.auc, auc_p_perm=self.auc_p_perm)
        return out


# ----------------------------------------------------------------------------- folds


def assign_folds(n: int, folds: str | int, labels: np.ndarray | None = None, seed: int | None = 0) -> np.ndarray:
    """Fold index (0-based) of each of ``n`` units.

    ``"loo"``: unit ``i`` is fold ``i``. ``k``: a seeded shuffle dealt round-robin into
    ``k`` folds; with ``labels`` (binary outcome), each class is dealt in turn, so every
    fold holds either floor or ceil of its share of each class (stratified).
    """
    if isinstance(folds, str):
        if folds.lower() != "loo":
            raise VtaError(f"folds must be 'loo' or a number of folds, got {folds!r}")
        return np.arange(n)
    k = int(folds)
    if k != folds or not 2 <= k <= n:
        raise VtaError(f"folds must be 'loo' or an integer from 2 to the number of units ({n}), got {folds!r}")
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    if labels is None:
        order = rng.permutation(n)
    else:
        labels = np.asarray(labels)
        order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) % k
    return out


# ----------------------------------------------------------------------------- the engine


class _Engine:
    """Per-fold statistic, scores and fits for a chunk of outcome rows."""

    def __init__(self, X: np.ndarray, kind: str, test: str, min_n: int) -> None:
        self.kind, self.test, self.min_n = kind, test, min_n
        self.N = X.shape[0]
        self.XwT = np.ascontiguousarray(X.T, dtype=np.float32)        # score weights (M, N)
        if kind == "group":
            self.eff_min = max(min_n, 2) if test == "t" else min_n
            self.F = np.ascontiguousarray(X, dtype=np.float64)         # 0/1 membership
            self.n1_full = self.F.sum(axis=0)
            # rank sums are integers or halves below 2^23 for N < 4000: exact in float32
            self.F_ranks = self.F.astype(np.float32) if self.N < 4000 else self.F
        else:
            self.eff_min = min_n
            Z = masked_ranks(X, axis=0) if test == "wilcoxon" else np.asarray(X, float)
            sd = Z.std(axis=0)
            self.F = np.ascontiguousarray((Z - Z.mean(axis=0)) / np.where(sd > 0, sd, 1.0))
            self.F2 = self.F * self.F
            self.NZ = (X != 0).astype(np.float64)
            self.nz_full = self.NZ.sum(axis=0)
            self.Sx_full, self.Sxx_full = self.F.sum(axis=0), self.F2.sum(axis=0)
        self.sums = test == "t"  # Welch and Pearson come from plain sums: downdate per fold

    # ---- the statistic of one fold -------------------------------------------------
    def full_sums(self, Y: np.ndarray) -> tuple[np.ndarray, ...] | None:
        if not self.sums:
            return None
        if self.kind == "group":
            return Y @ self.F, (Y * Y) @ self.F, Y.sum(axis=1, keepdims=True), (Y * Y).sum(axis=1, keepdims=True)
        return Y @ self.F, Y.sum(axis=1, keepdims=True), (Y * Y).sum(axis=1, keepdims=True)

    def fixed_fold_stat(self, Y: np.ndarray, te: np.ndarray, train: np.ndarray,
                        full) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Statistic of the training units ``train`` (N,) bool, the same for every row.

        Returns ``s`` (P, M) float32 (0 where not finite), ``ok`` (P, M) bool (finite),
        ``count`` (P,) finite entries per row, ``base`` (M,) bool (enough units per side).
        """
        n = float(train.sum())
        P, M = Y.shape[0], self.F.shape[1]
        if len(te) == 1:  # leave-one-out: the kernels subtract the unit's terms
            yi, fi = np.ascontiguousarray(Y[:, te[0]]), self.F[te[0]]
        else:
            full = _downdated(full, Y[:, te], self.F[te], self.kind)
            yi, fi = np.zeros(P), np.zeros(M)
        s = np.empty((P, M), dtype=np.float32)
        ok = np.empty((P, M), dtype=np.bool_)
        Ft = self.F[te]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "group":
                n1 = self.n1_full - Ft.sum(axis=0)
                n0 = n - n1
                base = (n1 >= self.eff_min) & (n0 >= self.eff_min)
                if self.sums:
                    S1f, Q1f, Stf, Qtf = full
                    if len(te) == 1:
                        Stf, Qtf = Stf - yi[:, None], Qtf - (yi * yi)[:, None]
                    w = welch_coefficients(n1, n)
                    count = _welch_kernel(S1f, Q1f, Stf[:, 0], Qtf[:, 0], yi, fi, n, n1, w.amb, w.b, w.d, w.c,
                                          np.where(base, w.se2_min, np.inf), s, ok)
                else:
                    R1 = (masked_ranks(Y, train).astype(self.F_ranks.dtype) @ self.F_ranks).astype(np.float64)
                    count = _rank_sum_kernel(R1, tie_term(Y, train)[:, 0], n, n1, np.where(base, 0.0, np.inf), s, ok)
            else:
                base = self.nz_full - self.NZ[te].sum(axis=0) >= self.eff_min
                Sx = self.Sx_full - Ft.sum(axis=0)
                cxx = (self.Sxx_full - (Ft * Ft).sum(axis=0)) - Sx * Sx / n
                base &= cxx > 1e-12 * np.maximum(np.abs(self.Sxx_full), 1.0)
                inv_sx = np.where(base, 1.0 / np.sqrt(np.where(base, cxx, 1.0)), 0.0)
                thr = np.where(base, 0.0, np.inf)
                if self.sums:
                    Sxyf, Syf, Syyf = full
                    if len(te) == 1:
                        Syf, Syyf = Syf - yi[:, None], Syyf - (yi * yi)[:, None]
                    count = _correlation_kernel(Sxyf, yi, fi, Sx, inv_sx, Syf[:, 0], Syyf[:, 0], n, thr, s, ok)
                else:
                    R = masked_ranks(Y, train)
                    count = _correlation_kernel(R @ self.F, np.zeros(P), np.zeros(M), Sx, inv_sx, R.sum(axis=1),
                                                (R * R).sum(axis=1), n, thr, s, ok)
        return s, ok, count, base

    def masked_fold_stat(self, Y: np.ndarray, W: np.ndarray) -> np.ndarray:
        """Statistic (P, M) when the training units differ per row: ``W`` (P, N) bool."""
        Wf = W.astype(np.float64)
        n = Wf.sum(axis=1, keepdims=True)
        if self.kind == "group":
            n1 = Wf @ self.F
            if self.sums:  # the outcomes centred on each row's training mean, 0 outside it
                Yc = (Y - (Wf * Y).sum(axis=1, keepdims=True) / n) * Wf
                Y2 = Yc * Yc
                stat = welch_t_from_sums(Yc @ self.F, Y2 @ self.F, Y2.sum(axis=1, keepdims=True), n1, n)
            else:
                stat = rank_sum_z(masked_ranks(Y, W) @ self.F, n1, n, tie_term(Y, W))
            stat[(n1 < self.eff_min) | (n - n1 < self.eff_min)] = np.nan
        else:
            if self.sums:
                V = Wf * Y
                Sy, Syy = V.sum(axis=1, keepdims=True), (V * Y).sum(axis=1, keepdims=True)
            else:
                V = masked_ranks(Y, W)
                Sy, Syy = V.sum(axis=1, keepdims=True), (V * V).sum(axis=1, keepdims=True)
            stat = correlation_t(V @ self.F, Wf @ self.F, Wf @ self.F2, Sy, Syy, n)
            stat[(Wf @ self.NZ) < self.eff_min] = np.nan
        return stat

    # ---- scores and fit ----------------------------------------------------------------
    def scores(self, stat: np.ndarray) -> np.ndarray:
        """Weighted mean statistic over each unit's features, (P, N); 0 where none counts."""
        finite = np.isfinite(stat)
        num = np.where(finite, stat, 0.0).astype(np.float32) @ self.XwT
        den = finite.astype(np.float32) @ self.XwT
        return _ratio(num, den)

    def fixed_scores(self, s: np.ndarray, ok: np.ndarray, count: np.ndarray, base: np.ndarray) -> np.ndarray:
        """:meth:`scores` from :meth:`fixed_fold_stat`'s output: rows whose finite features
        are exactly ``base`` share one denominator."""
        num = s @ self.XwT
        den = np.broadcast_to(base.astype(np.float32) @ self.XwT, num.shape)
        odd = np.flatnonzero(count != int(base.sum()))
        if len(odd):
            den = den.copy()
            den[odd] = ok[odd].astype(np.float32) @ self.XwT
        return _ratio(num, den)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num.astype(np.float64) / den, 0.0)


def _downdated(full: tuple[np.ndarray, ...] | None, Yt: np.ndarray, Ft: np.ndarray, kind: str):
    """Full-sample sums minus the test units' terms (the training sums)."""
    if full is None:
        return None
    Ys, Ysq = Yt.sum(axis=1, keepdims=True), (Yt * Yt).sum(axis=1, keepdims=True)
    if kind == "group":
        S1f, Q1f, Stf, Qtf = full
        return S1f - Yt @ Ft, Q1f - (Yt * Yt) @ Ft, Stf - Ys, Qtf - Ysq
    Sxyf, Syf, Syyf = full
    return Sxyf - Yt @ Ft, Syf - Ys, Syyf - Ysq


def _fit_predict(score: np.ndarray, Y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Least-squares line of ``Y`` on ``score`` over the training entries of each row,
    evaluated at every entry (P, N). A constant training score predicts the training mean."""
    w = np.broadcast_to(train, score.shape).astype(np.float64)
    n = w.sum(axis=1, keepdims=True)
    ms = (w * score).sum(axis=1, keepdims=True) / n
    my = (w * Y).sum(axis=1, keepdims=True) / n
    ds = (score - ms) * w
    sxx = (ds * ds).sum(axis=1, keepdims=True)
    sxy = (ds * (Y - my)).sum(axis=1, keepdims=True)
    scale = (w * score * score).sum(axis=1, keepdims=True)
    ok = sxx > 1e-12 * np.maximum(scale, 1e-300)
    b = np.where(ok, sxy / np.where(ok, sxx, 1.0), 0.0)
    return my + b * (score - ms)


def _rowwise_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair; NaN where a row is constant."""
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    va, vb = (ac * ac).sum(axis=1), (bc * bc).sum(axis=1)
    tiny = 1e-24 * np.maximum((a * a).sum(axis=1), 1e-300)
    ok = (va > tiny) & (vb > 0)
    return np.where(ok, (ac * bc).sum(axis=1) / np.sqrt(np.where(ok, va * vb, 1.0)), np.nan)


def _rowwise_auc(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``values`` for its positive ``labels`` (Mann-Whitney U /
    (n_pos n_neg); ties count half)."""
    R = masked_ranks(values, axis=1)
    n_pos = labels.sum(axis=1)
    n_neg = labels.shape[1] - n_pos
    U = (R * labels).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    return U / (n_pos * n_neg)


def _perm_p(null: np.ndarray, observed: float) -> float:
    if not np.isfinite(observed) or len(null) == 0:
        return float("nan")
    return float(permutation_p(np.count_nonzero(at_least(null, observed)), len(null)))


# ----------------------------------------------------------------------------- public


def cross_validated_prediction(X: np.ndarray, y: np.ndarray, binary: bool, folds: str | int = "loo",
                               test: str = "t", min_n: int = 2, permutations: int = 1000, seed: int | None = 0,
                               statistic: str = "auto", chunk_elements: int = CHUNK_ELEMENTS,
                               threads: int | None = 1) -> Prediction:
    """Cross-validated prediction of the outcome from per-unit features, with permutation p.

    Parameters
    ----------
    X : ndarray (N, M)
        Features per unit: VTA coverage (0/1, float32 from ``VoxelData.matrix``), |E|
        (V/mm), or fibre activation (bool, :attr:`FibreMatrix.activated`).
    y : ndarray (N,)
        Outcome per unit (binary: 0/1). Regress covariates out beforehand.
    binary : bool
        Binary outcome: stratified k folds and the ROC AUC.
    folds : "loo" or int
        Leave-one-out, or the number of folds (>= 2).
    test : {"t", "wilcoxon"}
        Welch t / Pearson (``"t"``), or rank-sum z / Spearman (``"wilcoxon"``).
    min_n : int
        In each training fold, features covered by fewer than ``min_n`` units (or, for
        0/1 features, left uncovered by fewer than ``min_n``) do not count.
    permutations : int
        Whole cross-validation repeated on this many outcome permutations (0: no p).
    seed : int, optional
        Seed of the folds and the permutations (:func:`~vta.cohort.stats.permutation_matrix`).
    statistic : {"auto", "group", "correlation"}
        ``"auto"``: ``"group"`` when every value of ``X`` is 0 or 1, else ``"correlation"``.
    chunk_elements : int
        Permutations x features handled at once (memory bound).
    threads : int or None
        BLAS threads for the matrix products (needs threadpoolctl; the fused kernels
        run on one thread). Default 1: fastest on a shared machine or a Dask worker,
        where more threads oversubscribe the cores (measured 4x slower on 2 busy cores);
        None leaves BLAS as configured.

    Returns
    -------
    Prediction

    Raises
    ------
    VtaError
        Mismatched shapes, non-finite values, a constant outcome, fewer than 4 units, a
        non-0/1 binary outcome, no usable feature, bad options.
    """
    started = time.perf_counter()
    check_test(test)
    if statistic not in STATISTICS:
        raise VtaError(f"unknown statistic {statistic!r} (use {', '.join(STATISTICS)})")
    if min_n < 1:
        raise VtaError(f"min_n must be >= 1, got {min_n}")
    if permutations < 0:
        raise VtaError(f"permutations must be >= 0, got {permutations}")
    X = np.asarray(X)
    y = np.asarray(y, dtype=float).reshape(-1)
    if X.ndim != 2 or X.shape[0] != len(y):
        raise VtaError(f"prediction: features are {X.shape} but there are {len(y)} outcomes")
    N = len(y)
    if N < 4:
        raise VtaError(f"prediction needs at least 4 units, got {N}")
    if not np.all(np.isfinite(y)) or np.ptp(y) == 0:
        raise VtaError("prediction: the outcome has non-finite values or does not vary")
    if binary and not np.all((y == 0) | (y == 1)):
        raise VtaError("prediction: a binary outcome must be coded 0/1")
    X = X.astype(np.float32) if X.dtype == bool else X
    if not np.all(np.isfinite(X)):
        raise VtaError("prediction: the features have non-finite values")
    if np.any(X < 0):
        raise VtaError("prediction: the features must be non-negative (coverage, |E| or activation)")
    kind = statistic
    if kind == "auto":
        kind = "group" if np.all((X == 0) | (X == 1)) else "correlation"
    elif kind == "group" and not np.all((X == 0) | (X == 1)):
        raise VtaError("prediction: the group statistic needs 0/1 features")
    nz = (X != 0).sum(axis=0)
    eff_min = max(min_n, 2) if (kind == "group" and test == "t") else min_n
    keep = (nz >= eff_min) & ((N - nz >= eff_min) if kind == "group" else (X.max(axis=0) > X.min(axis=0)))
    if not keep.any():
        raise VtaError(f"prediction: no feature is covered by at least {eff_min} units"
                       + (f" and left uncovered by {eff_min}" if kind == "group" else "") + "; nothing to predict from")
    X = X[:, keep]
    M = X.shape[1]
    fold = assign_folds(N, folds, (y > 0.5) if binary else None, seed)
    n_folds = int(fold.max()) + 1
    if binary and folds != "loo" and min(int((y == 1).sum()), int((y == 0).sum())) < n_folds:
        log.warning("prediction: a class has fewer units than folds (%d); some training folds lack it", n_folds)
    y0 = standardise(y)  # affine: predictions are mapped back, the statistics do not change
    perms = permutation_matrix(N, permutations, seed)
    Y = np.vstack([y0[None, :], y0[perms]])
    labels = np.vstack([y[None, :], y[perms]]) > 0.5
    fold_rows = np.vstack([fold[None, :], fold[perms]]) if (binary and folds != "loo") else None
    engine = _Engine(X, kind, test, min_n)
    pred = np.empty_like(Y)
    score = np.empty_like(Y)
    step = max(1, int(chunk_elements // M))
    with _blas_threads(threads):
        for r0 in range(0, len(Y), step):
            sl = slice(r0, r0 + step)
            pred[sl], score[sl] = _cv_chunk(engine, Y[sl], fold, n_folds,
                                            None if fold_rows is None else fold_rows[sl])
    r_all = np.nan_to_num(_rowwise_r(pred, Y), nan=0.0)
    r_obs = float(_rowwise_r(pred[:1], Y[:1])[0])
    auc = auc_p = None
    null_auc = None
    if binary:
        auc_all = _rowwise_auc(pred, labels)
        auc, null_auc = float(auc_all[0]), auc_all[1:]
        auc_p = _perm_p(null_auc, auc)
    sd = float(y.std())
    result = Prediction(observed=y.copy(), predicted=y.mean() + sd * pred[0], score=score[0].copy(), fold=fold,
                        r=r_obs, r_p_perm=_perm_p(r_all[1:], r_obs), auc=auc, auc_p_perm=auc_p,
                        folds=folds if isinstance(folds, str) else int(folds), n_folds=n_folds, test=test,
                        statistic=kind, binary=bool(binary), permutations=int(permutations), seed=seed,
                        n_features=int(M), null_r=r_all[1:], null_auc=null_auc,
                        seconds=time.perf_counter() - started)
    log.info("prediction (%s folds, %s %s, %d units, %d features, %d permutations): r = %.3f (p = %.3g)%s in %.1f s",
             folds, kind, test, N, M, permutations, result.r, result.r_p_perm,
             f", AUC = {auc:.3f} (p = {auc_p:.3g})" if binary else "", result.seconds)
    return result


@contextlib.contextmanager
def _blas_threads(threads: int | None):
    """Limit BLAS to ``threads`` threads (where threadpoolctl is installed); None: as is."""
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: BLAS keeps its threads
        yield
        return
    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield


def _cv_chunk(engine: _Engine, Y: np.ndarray, fold: np.ndarray, n_folds: int,
              fold_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated predictions and scores (P, N) for the outcome rows ``Y``.

    ``fold_rows`` (P, N): per-row fold labels (stratified folds travel with permuted
    outcomes); ``None``: the same ``fold`` for every row.
    """
    pred = np.empty_like(Y)
    score_out = np.empty_like(Y)
    full = engine.full_sums(Y) if fold_rows is None else None
    for f in range(n_folds):
        if fold_rows is None:
            test_mask = fold == f
            te = np.flatnonzero(test_mask)
            train = ~test_mask
            sc = engine.fixed_scores(*engine.fixed_fold_stat(Y, te, train, full))
            p = _fit_predict(sc, Y, train)
            pred[:, te] = p[:, te]
            score_out[:, te] = sc[:, te]
        else:
            test_mask = fold_rows == f
            stat = engine.masked_fold_stat(Y, ~test_mask)
            sc = engine.scores(stat)
            p = _fit_predict(sc, Y, ~test_mask)
            pred[test_mask] = p[test_mask]
            score_out[test_mask] = sc[test_mask]
    return pred, score_out
