"""The test statistics and permutation machinery shared by the voxel, fibre and prediction analyses.

Every analysis of :mod:`vta.cohort` relates an outcome of the N analysis units to F per-unit
features (voxels, fibres), for every row of an outcome matrix ``Y`` (P, N): the observed
outcome and its permutations, vectorised as matrix products ``(P, N) @ (N, F)``.

Statistics (positive: higher outcomes with the feature)
-------------------------------------------------------
* 0/1 features (VTA coverage, fibre activation), :class:`GroupTest`: Welch's t of the units
  with the feature (group 1) minus those without (group 0), or the Wilcoxon rank-sum z of
  group 1 with the tie-corrected normal variance (no continuity correction).
  :func:`welch_t_from_sums` and :func:`rank_sum_z` are the same statistics from per-row
  sums (training folds whose units differ per row).
* continuous features (``|E|``), :class:`CorrelationTest`: Pearson r (Spearman: on ranks),
  reported as ``t = r sqrt(n - 2) / sqrt(1 - r^2)`` (:func:`r_to_t`);
  :func:`correlation_t` is the same from per-row sums.

The element-wise pieces - :func:`welch_coefficients`, :func:`rank_sum_moments`,
:func:`r_to_t` - are plain arithmetic on arrays or scalars, so the compiled kernels of
:mod:`vta.cohort.predict` use the same formulas. The statistics are invariant to a shift
and a positive scaling of the outcome; the analyses standardise it (:func:`standardise`).

Permutations and family-wise error
----------------------------------
:func:`permutation_matrix` draws the permutations; covariates are regressed out of the
outcome first (:func:`residualise`; Kennedy's method, see Winkler et al. 2014, NeuroImage
92:381). The FWE correction is the max-statistic test (Nichols & Holmes 2002, Hum Brain
Mapp 15:1): with ``null_max`` the largest statistic over all features of each of the P
permutations, a feature's ``p_FWE = (count + 1) / (P + 1)``, ``count`` the maxima at least
as large as its statistic (:func:`fwe_p`, :func:`fwe_threshold`); uncorrected p-values use
each feature's own permutation distribution the same way (:func:`at_least`,
:func:`permutation_p`). "At least as large" allows a relative :data:`TIE_RTOL`, so a
permutation that reproduces the observed statistic counts whatever the rounding.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import VtaError

__all__ = ["TESTS", "ZERO_VARIANCE", "TIE_RTOL", "R_MAX", "check_test", "permutation_matrix", "standardise",
           "residualise", "masked_ranks", "tie_term", "WelchCoefficients", "welch_coefficients",
           "welch_t_from_sums", "welch_t", "rank_sum_moments", "rank_sum_z", "r_to_t", "correlation_t", "pearson_t",
           "GroupTest", "CorrelationTest", "group_statistic", "at_least", "permutation_p", "fwe_p", "fwe_threshold"]

#: Tests: Welch t / Pearson (``"t"``), rank-sum z / Spearman (``"wilcoxon"``).
TESTS = ("t", "wilcoxon")
#: Welch: a squared standard error below this fraction of ``1/n1 + 1/n0`` (the value for a unit
#: variance, i.e. a standardised outcome) counts as zero (both groups constant).
ZERO_VARIANCE = 1e-9
#: Relative tolerance of "a permuted statistic at least as large as the observed one".
TIE_RTOL = 1e-9
#: Largest ``|r|`` turned into t (keeps ``t`` finite for a perfect correlation).
R_MAX = 1.0 - 1e-12
#: What Welch's t is where both groups' outcomes are constant: NaN (not tested), or large
#: and finite (the squared standard error floored at 1e-12 of the outcomes' mean square).
_ZERO_VARIANCE_POLICIES = ("nan", "large")


def check_test(test: str) -> None:
    """Raise :class:`VtaError` unless ``test`` is one of :data:`TESTS`."""
    if test not in TESTS:
        raise VtaError(f"unknown test {test!r} (use {', '.join(TESTS)})")


# ----------------------------------------------------------------------------- outcomes


def permutation_matrix(n: int, permutations: int, seed: int | None = 0, *, method: str = "permuted") -> np.ndarray:
    """``permutations`` random permutations of ``range(n)``, one per row, shape (P, n) int.

    Row ``p`` permutes the units' outcomes as ``y[perm[p]]``; deterministic for a given
    ``seed`` (numpy ``default_rng``).

    Parameters
    ----------
    n : int
        Units.
    permutations : int
        P (>= 0).
    seed : int, optional
    method : {"permuted", "argsort"}
        How the generator's stream becomes permutations: ``Generator.permuted`` of each row
        (fibres, prediction), or the argsort of uniform keys (the voxel maps). Both are
        uniform; each keeps the permutations - hence the p-values - of its analysis for a
        given seed.

    Returns
    -------
    ndarray of intp, shape (P, n)

    Raises
    ------
    VtaError
        ``permutations < 0`` or an unknown ``method``.
    """
    if permutations < 0:
        raise VtaError(f"permutations must be >= 0, got {permutations}")
    if method not in ("permuted", "argsort"):
        raise VtaError(f"unknown permutation method {method!r} (use permuted, argsort)")
    rng = np.random.default_rng(seed)
    if permutations == 0:
        return np.zeros((0, n), dtype=np.intp)
    if method == "argsort":
        return np.argsort(rng.random((int(permutations), int(n))), axis=1, kind="stable")
    return rng.permuted(np.tile(np.arange(n, dtype=np.intp), (permutations, 1)), axis=1)


def standardise(y: np.ndarray) -> np.ndarray:
    """``(y - mean) / sd`` (sd 1 for a constant ``y``), float64, same shape: the statistics
    are invariant to a shift and positive scaling of the outcome, and the sums are better
    conditioned."""
    y = np.asarray(y, dtype=float)
    sd = float(y.std())
    return (y - y.mean()) / (sd if sd > 0 else 1.0)


def residualise(y: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    """Residuals of ``y`` after an OLS fit on the covariates and an intercept.

    Parameters
    ----------
    y : ndarray, shape (N,)
        Outcome (its own units).
    covariates : ndarray, shape (N, k), or None
        ``None`` or ``k = 0`` returns ``y`` unchanged.

    Returns
    -------
    ndarray of float64, shape (N,)
        In the outcome's units.
    """
    y = np.asarray(y, dtype=np.float64)
    if covariates is None or np.size(covariates) == 0:
        return y.copy()
    Z = np.column_stack([np.ones(len(y)), np.asarray(covariates, dtype=np.float64).reshape(len(y), -1)])
    beta, *_ = np.linalg.lstsq(Z, y, rcond=None)
    return y - Z @ beta


def masked_ranks(Y: np.ndarray, W: np.ndarray | None = None, axis: int = -1) -> np.ndarray:
    """Ranks (1..n, ties averaged) along ``axis`` among the entries where ``W``.

    Parameters
    ----------
    Y : ndarray
        E.g. outcome rows (P, N) ranked along the units (``axis=-1``), or features (N, F)
        ranked per feature (``axis=0``).
    W : ndarray of bool, broadcastable to ``Y``, optional
        Which entries take part (default all); the others get rank 0.
    axis : int

    Returns
    -------
    ndarray of float64, the shape of ``Y``
    """
    from scipy.stats import rankdata

    Y = np.asarray(Y, dtype=float)
    if W is None:
        return rankdata(Y, axis=axis).astype(np.float64, copy=False)
    W = np.broadcast_to(np.asarray(W, dtype=bool), Y.shape)
    R = rankdata(np.where(W, Y, np.inf), axis=axis)
    R[~W] = 0.0
    return R


def tie_term(Y: np.ndarray, W: np.ndarray | None = None) -> np.ndarray:
    """``sum(t^3 - t)`` over the groups of tied values in each row of ``Y`` (entries where
    ``W`` only), shape (P, 1): the tie correction of the rank-sum variance."""
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    P, N = Y.shape
    if W is not None:
        Y = np.where(np.broadcast_to(np.asarray(W, dtype=bool), Y.shape), Y, np.inf)
    S = np.sort(Y, axis=1)
    start = np.ones((P, N), dtype=bool)
    start[:, 1:] = S[:, 1:] != S[:, :-1]
    idx = np.flatnonzero(start.ravel())
    length = np.diff(np.append(idx, P * N)).astype(float)
    keep = np.isfinite(S.ravel()[idx])
    out = np.bincount(idx[keep] // N, weights=length[keep] ** 3 - length[keep], minlength=P)
    return out[:, None]


# ----------------------------------------------------------------------------- element-wise formulas


class WelchCoefficients(NamedTuple):
    """Per-feature terms of Welch's t (:func:`welch_coefficients`); 0 where ``bad``."""

    amb: np.ndarray      #: ``a - b``, ``a = 1 / (n1 (n1 - 1))``, ``b = 1 / (n0 (n0 - 1))``
    b: np.ndarray
    d: np.ndarray        #: ``a / n1 + b / n0``
    c: np.ndarray        #: ``n / (n1 n0)``
    se2_min: np.ndarray  #: ``ZERO_VARIANCE (1 / n1 + 1 / n0)``
    bad: np.ndarray      #: bool: a group has fewer than 2 units


def welch_coefficients(n1: np.ndarray, n: np.ndarray | float) -> WelchCoefficients:
    """The group-size terms of Welch's t, computed once per feature (and per row where the
    units taking part differ per row).

    With ``s1`` and ``q1`` the sum and sum of squares over group 1 of the outcomes centred
    on the mean of all ``n`` units taking part, and ``qt`` the centred sum of squares over
    all of them (group 0's sums are then ``-s1`` and ``qt - q1``)::

        se2 = amb q1 + b qt - d s1^2    (= var1 / n1 + var0 / n0)
        t   = c s1 / sqrt(se2)          (= mean1 - mean0 over its standard error)

    Parameters
    ----------
    n1 : ndarray, shape (F,) or (P, F)
        Units in group 1.
    n : float or ndarray, shape (P, 1)
        Units taking part.

    Returns
    -------
    WelchCoefficients
        Arrays of the broadcast shape of ``n1`` and ``n``.
    """
    n1 = np.asarray(n1, dtype=np.float64)
    n0 = n - n1
    with np.errstate(divide="ignore", invalid="ignore"):
        a = 1.0 / (n1 * (n1 - 1.0))
        b = 1.0 / (n0 * (n0 - 1.0))
        amb, d = a - b, a / n1 + b / n0
        c = n / (n1 * n0)
        se2_min = ZERO_VARIANCE * (1.0 / n1 + 1.0 / n0)
    bad = (n1 < 2) | (n0 < 2)
    for arr in (amb, b, d, c, se2_min):
        arr[bad] = 0.0
    return WelchCoefficients(amb, b, d, c, se2_min, bad)


def rank_sum_moments(n1, n, T):
    """Null mean and variance of group 1's rank sum.

    Plain arithmetic on floats or broadcastable arrays (also compiled in the prediction kernels).

    Parameters
    ----------
    n1 : float or ndarray, e.g. (F,)
        Units in group 1.
    n : float or ndarray, e.g. (P, 1)
        Units taking part.
    T : float or ndarray, e.g. (P, 1)
        Tie term ``sum(t^3 - t)`` of the outcomes taking part (:func:`tie_term`).

    Returns
    -------
    mean, var : float or ndarray (broadcast shape)
        ``n1 (n + 1) / 2`` and ``n1 n0 / 12 ((n + 1) - T / (n (n - 1)))`` (ranks, ranks^2).
    """
    return n1 * (n + 1.0) / 2.0, n1 * (n - n1) / 12.0 * ((n + 1.0) - T / (n * (n - 1.0)))


def r_to_t(r, n):
    """A correlation as t: ``t = r sqrt(n - 2) / sqrt(1 - r^2)``, ``|r|`` clipped to :data:`R_MAX`.

    Plain arithmetic on floats or broadcastable arrays (also compiled in the prediction kernels).

    Parameters
    ----------
    r : float or ndarray, e.g. (P, F)
        Pearson (or Spearman) r.
    n : float or ndarray
        Units taking part (``n - 2`` degrees of freedom).

    Returns
    -------
    float or ndarray (broadcast shape)
        t, dimensionless; NaN where ``r`` is NaN.
    """
    r = np.minimum(np.maximum(r, -R_MAX), R_MAX)
    return r * np.sqrt((n - 2.0) / (1.0 - r * r))


# ----------------------------------------------------------------------------- statistics from sums


def _set_nan(a: np.ndarray, bad: np.ndarray) -> None:
    """``a[bad] = NaN`` for ``bad`` broadcastable to ``a`` (P, F); a per-feature (F,) mask by column."""
    if bad.ndim == 1 and a.ndim == 2:
        a[:, bad] = np.nan
    else:
        a[np.broadcast_to(bad, a.shape)] = np.nan


def _welch(S1: np.ndarray, Q1: np.ndarray, Qt: np.ndarray, n: np.ndarray | float, coef: WelchCoefficients,
           zero_variance: str) -> np.ndarray:
    """Welch's t from centred sums (:func:`welch_coefficients`), in place: ``S1`` becomes t,
    ``Q1`` is overwritten."""
    den = Q1
    den *= coef.amb
    den += Qt * coef.b
    sq = np.square(S1)
    sq *= coef.d
    den -= sq
    zero = None
    if zero_variance == "large":  # both groups constant: a large, finite t
        np.maximum(den, 1e-12 * max(float(np.max(Qt / n)), 1e-300), out=den)
    else:
        zero = ~(den > coef.se2_min)
        np.maximum(den, 1e-300, out=den)
    np.sqrt(den, out=den)
    S1 *= coef.c
    S1 /= den
    _set_nan(S1, coef.bad)
    if zero is not None:
        S1[zero] = np.nan
    return S1


def welch_t_from_sums(S1: np.ndarray, Q1: np.ndarray, Qt: np.ndarray, n1: np.ndarray, n: np.ndarray | float,
                      zero_variance: str = "nan") -> np.ndarray:
    """Welch's t of group 1 minus group 0 from sums of centred outcomes.

    Parameters
    ----------
    S1, Q1 : ndarray, shape (P, F)
        Sum and sum of squares over group 1 of the outcomes minus the mean of the units
        taking part in that row.
    Qt : ndarray, shape (P, 1)
        Sum of squares of those centred outcomes over all units taking part.
    n1 : ndarray, shape (F,) or (P, F)
        Group-1 sizes.
    n : float or ndarray, shape (P, 1)
        Units taking part.
    zero_variance : {"nan", "large"}
        Both groups constant (squared standard error below :data:`ZERO_VARIANCE` of the
        unit-variance value): NaN, or a large finite t.

    Returns
    -------
    ndarray of float64, shape (P, F)
        NaN where a group has fewer than 2 units.
    """
    if zero_variance not in _ZERO_VARIANCE_POLICIES:
        raise VtaError(f"unknown zero_variance {zero_variance!r} (use nan, large)")
    S1 = np.array(S1, dtype=np.float64)
    return _welch(S1, np.array(Q1, dtype=np.float64), Qt, n, welch_coefficients(n1, n), zero_variance)


def rank_sum_z(R1: np.ndarray, n1: np.ndarray, n: np.ndarray | float, T: np.ndarray | float) -> np.ndarray:
    """Wilcoxon rank-sum z of group 1 from ``R1``, the sum of its outcome ranks (P, F).

    ``z = (R1 - n1 (n + 1) / 2) / sqrt(n1 n0 / 12 ((n + 1) - T / (n (n - 1))))``
    (:func:`rank_sum_moments`) with the tie term ``T`` (float or (P, 1), :func:`tie_term`);
    normal approximation, no continuity correction. NaN where a group is empty or all
    outcomes tie.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        mean, var = rank_sum_moments(n1, n, T)
        z = R1 - mean
        z /= np.sqrt(var)
    _set_nan(z, ~((var > 0) & (n1 >= 1) & (n - n1 >= 1)))
    return z


def correlation_t(Sxy: np.ndarray, Sx: np.ndarray, Sxx: np.ndarray, Sy: np.ndarray, Syy: np.ndarray,
                  n: np.ndarray | float) -> np.ndarray:
    """:func:`r_to_t` of the Pearson correlation from sums.

    ``Sxy`` (P, F); ``Sx``, ``Sxx`` feature sums (F,) or (P, F); ``Sy``, ``Syy`` outcome
    sums (P, 1); ``n`` units taking part. NaN for a constant feature or outcome.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        cxx = Sxx - Sx * Sx / n
        cyy = Syy - Sy * Sy / n
        t = r_to_t((Sxy - Sx * Sy / n) / np.sqrt(cxx * cyy), n)
    scale = np.maximum(np.abs(Sxx), 1.0)
    t[~np.broadcast_to((cxx > 1e-12 * scale) & (cyy > 1e-12 * np.maximum(np.abs(Syy), 1.0)), t.shape)] = np.nan
    return t


# ----------------------------------------------------------------------------- statistics of fixed features


class GroupTest:
    """Per-feature two-group statistic of 0/1 features, the per-feature terms computed once.

    Parameters
    ----------
    X : ndarray, shape (N, F)
        Group membership (covered / activated), 0/1 or bool.
    test : {"t", "wilcoxon"}
        Welch's t, or the rank-sum z (the rows are ranked, with their own tie term).
    min_n : int
        Features with fewer than ``min_n`` units in either group get NaN (at least 2 for
        the t-test, 1 for the rank-sum z).
    zero_variance : {"nan", "large"}
        Welch's t where both groups are constant (:func:`welch_t_from_sums`).

    Calling it with outcome rows ``Y`` (P, N) returns the statistic, shape (P, F).
    """

    def __init__(self, X: np.ndarray, test: str = "t", min_n: int = 1, zero_variance: str = "nan") -> None:
        check_test(test)
        if zero_variance not in _ZERO_VARIANCE_POLICIES:
            raise VtaError(f"unknown zero_variance {zero_variance!r} (use nan, large)")
        self.X = np.asarray(X, dtype=np.float64)
        self.test, self.zero_variance = test, zero_variance
        self.N = self.X.shape[0]
        self.n1 = self.X.sum(axis=0)
        least = max(int(min_n), 2 if test == "t" else 1)
        self.bad = (self.n1 < least) | (self.N - self.n1 < least)
        self.coef = welch_coefficients(self.n1, float(self.N)) if test == "t" else None

    def __call__(self, Y: np.ndarray) -> np.ndarray:
        Y = np.atleast_2d(np.asarray(Y, dtype=np.float64))
        if self.test == "t":
            Y = Y - Y.mean(axis=1, keepdims=True)
            Y2 = Y * Y
            stat = _welch(Y @ self.X, Y2 @ self.X, Y2.sum(axis=1, keepdims=True), self.N, self.coef,
                          self.zero_variance)
        else:
            T = tie_term(Y)
            if np.all(T == T[0, 0]):  # e.g. permutations of one outcome: per-feature terms only
                T = float(T[0, 0])
            stat = rank_sum_z(masked_ranks(Y) @ self.X, self.n1, float(self.N), T)
        stat[:, self.bad] = np.nan
        return stat


class CorrelationTest:
    """Pearson (``test="t"``) or Spearman (``"wilcoxon"``) r of continuous features with the
    outcome rows, and r as t (:func:`r_to_t`); the features' norms (and ranks) computed once.

    With centred outcome rows the features need not be centred
    (``sum_i (y_i - ybar) x_i = sum_i (y_i - ybar)(x_i - xbar)``).

    Parameters
    ----------
    X : ndarray, shape (N, F)
        Per-unit values (e.g. ``|E|`` in V/mm).
    test : {"t", "wilcoxon"}

    Calling it with outcome rows ``Y`` (P, N) returns ``(t, r)``, each (P, F); NaN where a
    feature is constant.
    """

    def __init__(self, X: np.ndarray, test: str = "t") -> None:
        check_test(test)
        self.test = test
        self.X = masked_ranks(X, axis=0) if test == "wilcoxon" else np.asarray(X, dtype=np.float64)
        self.N = self.X.shape[0]
        Xc = self.X - self.X.mean(axis=0)
        xn = np.sqrt((Xc * Xc).sum(axis=0))
        self.bad = ~(xn > 1e-12 * np.maximum(np.abs(self.X).max(axis=0), 1e-300))
        self.inv_xn = np.where(self.bad, 0.0, 1.0 / np.where(self.bad, 1.0, xn))

    def __call__(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Y = np.atleast_2d(np.asarray(Y, dtype=np.float64))
        if self.test == "wilcoxon":
            Y = masked_ranks(Y)
        Y = Y - Y.mean(axis=1, keepdims=True)
        yn = np.sqrt((Y * Y).sum(axis=1, keepdims=True))
        Y /= np.where(yn > 0, yn, 1.0)
        r = Y @ self.X
        r *= self.inv_xn
        np.clip(r, -1.0, 1.0, out=r)
        t = r_to_t(r, self.N)
        r[:, self.bad] = np.nan
        t[:, self.bad] = np.nan
        return t, r


def welch_t(X: np.ndarray, Y: np.ndarray, zero_variance: str = "nan") -> np.ndarray:
    """Welch's t of outcome rows ``Y`` (P, N) between the units with ``X = 1`` and the
    others, per column of ``X`` (N, F): shape (P, F), positive where group 1's mean is
    higher; NaN where a group has fewer than 2 units (:class:`GroupTest`)."""
    return GroupTest(X, "t", zero_variance=zero_variance)(Y)


def pearson_t(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson ``(r, t)`` of every outcome row ``Y`` (P, N) with every column of ``X`` (N, F),
    each (P, F); NaN where a column is constant (:class:`CorrelationTest`)."""
    t, r = CorrelationTest(X)(Y)
    return r, t


def group_statistic(A: np.ndarray, Y: np.ndarray, test: str = "t", min_n: int = 2) -> np.ndarray:
    """Per-feature two-group statistic for every row of outcomes, shape (P, F).

    Parameters
    ----------
    A : ndarray, shape (N, F)
        Group membership (activated / covered), 0/1 or bool.
    Y : ndarray, shape (P, N) or (N,)
        Outcome rows (e.g. the observed outcome and its permutations).
    test : {"t", "wilcoxon"}
    min_n : int
        Features with fewer than ``min_n`` units in either group get NaN.
    """
    return GroupTest(A, test, min_n)(Y)


# ----------------------------------------------------------------------------- p-values


def at_least(values: np.ndarray, observed: np.ndarray | float) -> np.ndarray:
    """``values >= observed`` within the relative tolerance :data:`TIE_RTOL` (broadcast;
    False where either is NaN)."""
    observed = np.asarray(observed, dtype=np.float64)
    return values >= observed - TIE_RTOL * np.abs(observed)


def permutation_p(count: np.ndarray | int, permutations: int) -> np.ndarray | float:
    """``(count + 1) / (P + 1)``: the permutation p of a statistic that ``count`` of the
    ``P`` permutations reach (the observed data counted once)."""
    return (np.asarray(count, dtype=np.float64) + 1.0) / (permutations + 1.0)


def fwe_p(observed: np.ndarray, null_max: np.ndarray) -> np.ndarray:
    """Max-statistic FWE-corrected p of each observed statistic.

    Parameters
    ----------
    observed : ndarray, shape (F,)
        Observed statistics in the sense of the test's tail (``|stat|`` for two-sided).
    null_max : ndarray, shape (P,)
        The largest such statistic over all features, per permutation (``-inf`` where a
        permutation has none).

    Returns
    -------
    ndarray of float64, shape (F,)
        ``(#{null_max at least observed} + 1) / (P + 1)``; NaN where ``observed`` is NaN.
    """
    observed = np.asarray(observed, dtype=np.float64)
    srt = np.sort(np.asarray(null_max, dtype=np.float64))
    count = len(srt) - np.searchsorted(srt, observed - TIE_RTOL * np.abs(observed), side="left")
    return np.where(np.isnan(observed), np.nan, permutation_p(count, len(srt)))


def fwe_threshold(null_max: np.ndarray, alpha: float) -> float:
    """The FWE-corrected critical statistic: features above it have ``p_FWE <= alpha``.

    Parameters
    ----------
    null_max : ndarray, shape (P,)
        As for :func:`fwe_p`.
    alpha : float
        FWE level.

    Returns
    -------
    float
        The ``m``-th largest of ``null_max`` with ``m = floor(alpha (P + 1))`` (at most
        ``m - 1`` maxima may reach a significant statistic); ``inf`` when
        ``alpha (P + 1) < 1`` (too few permutations for ``alpha``).
    """
    P = len(null_max)
    m = int(math.floor(alpha * (P + 1) + 1e-9)) - 1  # at most m maxima may reach a significant value
    if m < 0:
        return math.inf
    desc = np.sort(np.asarray(null_max, dtype=np.float64))[::-1]
    return float(desc[m]) if m < P else -math.inf
