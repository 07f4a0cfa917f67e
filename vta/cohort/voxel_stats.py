"""Voxel-wise sweet-spot statistics with permutation-based family-wise error control.

Tests (per voxel of the common grid, across the N analysis units)
-----------------------------------------------------------------
``kind="vta"`` (binary VTAs): the outcomes of the units whose VTA covers the voxel
against those whose VTA does not - Welch's t (``test="t"``), or the Wilcoxon rank-sum
statistic as a z score with the tie-corrected normal variance (``test="wilcoxon"``).
Positive values: higher outcomes where the voxel is stimulated (the sweet spot of an
outcome where higher is better; a sour spot is negative). Voxels covered by fewer than
``min_n`` units (default a fifth of the cohort, :func:`default_min_n`), or left uncovered
by fewer than 2, are not tested (cf. the probabilistic sweet spots of Dembek et al. 2019,
Ann Neurol 86:527).

``kind="efield"`` (``|E|`` in V/mm): the Pearson correlation of ``|E|`` with the outcome
(``test="t"``) or the Spearman rank correlation (``test="wilcoxon"``), reported as
``t = r sqrt(N - 2) / sqrt(1 - r^2)``, at voxels covered by at least ``min_n`` VTAs
(in the spirit of the E-field models of Horn et al. 2017, Ann Neurol 82:67, and Li
et al. 2020, Nat Commun 11:3364).

Covariates are regressed out of the outcome first (ordinary least squares with an
intercept); the tests use the residuals and the permutations shuffle them (Kennedy's
method; see Winkler et al. 2014, NeuroImage 92:381, for its properties). The
mean-outcome map uses the outcome as given: the mean over the units covering a voxel
(VTA kind), or the ``|E|``-weighted mean (E-field kind).

Family-wise error
-----------------
Max-statistic permutation test (Nichols & Holmes 2002, Hum Brain Mapp 15:1): the same
``P`` permutations of the outcome (drawn once from ``seed``) are applied to every voxel;
for each the largest ``|statistic|`` over all tested voxels is kept; a voxel's FWE p is
``(1 + #{permutation maxima >= |its statistic|}) / (P + 1)``, two-sided. The
uncorrected p uses the voxel's own permutation distribution the same way.

Computation
-----------
The statistics and the permutation machinery are those of :mod:`vta.cohort.stats`
(:class:`~vta.cohort.stats.GroupTest`, :class:`~vta.cohort.stats.CorrelationTest`;
Welch's t is large and finite where both groups are constant, so a voxel that separates
a binary outcome perfectly stays tested). Vectorised: for a chunk of ``S_c`` voxels, the
``(P, N)`` matrix of permuted outcomes (ranked per row for the rank tests) is multiplied
with the ``(N, S_c)`` voxel block; the E-field block is ranked once per chunk for
Spearman. Chunks are independent: with a
``distributed.Client`` each chunk is one task (at most two per worker thread in
flight, so memory stays bounded), and the results are the same as without one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import VtaError
from .stats import (TESTS, CorrelationTest, GroupTest, at_least, fwe_p, fwe_threshold, permutation_matrix,
                    permutation_p, residualise, standardise)
from .voxels import Grid, VoxelData

__all__ = ["VoxelMaps", "check_options", "default_min_n", "sweet_spot"]

log = logging.getLogger(__name__)

#: Memory budget of one chunk's arrays (bytes), for the automatic chunk size.
_CHUNK_BYTES = 96e6


# ----------------------------------------------------------------------------- statistics


def default_min_n(n_units: int) -> int:
    """Default fewest units covering a tested voxel: ``max(3, ceil(0.2 N))``.

    Voxels at the rim of the cohort's coverage, covered by two or three units, make
    two-group statistics unstable (a tiny group's variance can be near zero), and the
    max statistic of the permutations - hence the FWE threshold - is then dominated by
    them; a fifth of the cohort keeps the tested voxels where the comparison means
    something (``--min-n`` overrides it).
    """
    return max(3, math.ceil(0.2 * int(n_units)))


def check_options(n_units: int, test: str, min_n: int | None, permutations: int, alpha: float) -> int:
    """Check the options of :func:`sweet_spot` (and ``vta group``); returns ``min_n``
    (default :func:`default_min_n`).

    Raises
    ------
    VtaError
        A test other than ``"t"``/``"wilcoxon"``, ``min_n < 1``, ``permutations < 1`` or
        ``alpha`` outside (0, 1), phrased as the command-line options.
    """
    if test not in TESTS:
        raise VtaError(f"--test must be 't' or 'wilcoxon', got {test!r}")
    if min_n is None:
        min_n = default_min_n(n_units)
    if int(min_n) < 1:
        raise VtaError(f"--min-n must be >= 1, got {min_n}")
    if int(permutations) < 1:
        raise VtaError(f"--permutations must be >= 1, got {permutations}")
    if not 0 < float(alpha) < 1:
        raise VtaError(f"--alpha must be between 0 and 1, got {alpha}")
    return int(min_n)


def _prepare(X: np.ndarray, y: np.ndarray, kind: str, test: str) -> tuple[np.ndarray, Callable]:
    """``(base, stat)`` for one test and voxel block: the outcome vector that the
    permutations shuffle, and ``stat(B)`` mapping rows ``B (P, N)`` of it to
    ``(statistic (P, S), r (P, S) or None)``, with the block's per-voxel terms computed
    once (the block ranked once for Spearman; the rank tests rank the rows)."""
    y = np.asarray(y, dtype=np.float64)
    base = standardise(y) if test == "t" else y  # conditioning only: no test depends on it
    if kind == "vta":
        group = GroupTest(X, test, zero_variance="large")  # both groups constant: a large, finite t
        return base, lambda B: (group(B), None)
    return base, CorrelationTest(X, test)


def _chunk_task(X: np.ndarray, y: np.ndarray, y_raw: np.ndarray, kind: str, test: str, permutations: int,
                seed: int, perm_block: int) -> dict[str, Any]:
    """The statistics of one chunk (a Dask task, or called in-process).

    Returns ``stat`` (S_c,), ``r`` (S_c,) or None, ``mean`` (S_c,) (outcome weighted by
    ``X``), ``count_ge`` (S_c,) (permutations at least as extreme, for the uncorrected p)
    and ``perm_max`` (P,) (the chunk's largest ``|stat|`` per permutation, ``-inf`` where
    it has none).
    """
    X = np.asarray(X, dtype=np.float64)
    N, S = X.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = X.sum(axis=0)
        mean = (np.asarray(y_raw, dtype=np.float64) @ X) / weight
    mean[~(weight > 0)] = np.nan
    base, stat_fn = _prepare(X, y, kind, test)
    stat, r = stat_fn(base[None, :])
    stat = stat[0]
    r = None if r is None else r[0]
    perms = permutation_matrix(N, permutations, seed, method="argsort")
    perm_max = np.full(len(perms), -np.inf)
    count_ge = np.zeros(S, dtype=np.int64)
    valid = np.flatnonzero(~np.isnan(stat))  # untestable voxels are so under every permutation
    if len(valid):
        if len(valid) < S:
            base, stat_fn = _prepare(X[:, valid], y, kind, test)
        obs = np.abs(stat[valid])
        counts = np.zeros(len(valid), dtype=np.int64)
        for a in range(0, len(perms), perm_block):
            sb = stat_fn(base[perms[a:a + perm_block]])[0]
            np.abs(sb, out=sb)
            block_max = sb.max(axis=1)
            if np.isnan(block_max).any():  # not expected (the kernels keep tested voxels finite)
                sb = np.where(np.isnan(sb), -np.inf, sb)
                block_max = sb.max(axis=1)
            perm_max[a:a + perm_block] = block_max
            counts += np.count_nonzero(at_least(sb, obs), axis=0)
        count_ge[valid] = counts
    return {"stat": stat, "r": r, "mean": mean, "count_ge": count_ge, "perm_max": perm_max}


# ----------------------------------------------------------------------------- maps


@dataclass
class VoxelMaps:
    """The result of :func:`sweet_spot`: dense volumes on the common grid and the test's settings.

    Attributes
    ----------
    kind : {"vta", "efield"}
    test : {"t", "wilcoxon"}
    stat_name : str
        ``"t"`` (Welch or correlation t) or ``"z"`` (rank-sum z).
    grid : Grid
    n_map : ndarray of int32
        Units whose VTA covers each voxel.
    mean_map : ndarray of float32
        Mean outcome of the covering units (VTA kind) or ``|E|``-weighted mean outcome
        (E-field kind), in the outcome's units; NaN where not defined.
    stat_map, p_map, p_fwe_map : ndarray of float32
        Statistic, uncorrected and FWE-corrected two-sided permutation p; NaN where not tested.
    r_map : ndarray of float32 or None
        Correlation r (E-field kind).
    tested : ndarray of bool
    significant : ndarray of bool
        ``p_fwe_map <= alpha``.
    threshold : float
        Critical ``|statistic|`` for FWE ``alpha`` (:func:`fwe_threshold`).
    perm_max : ndarray, shape (P,)
        Largest ``|statistic|`` of each permutation.
    """

    kind: str
    test: str
    stat_name: str
    grid: Grid
    n_map: np.ndarray
    mean_map: np.ndarray
    stat_map: np.ndarray
    p_map: np.ndarray
    p_fwe_map: np.ndarray
    r_map: np.ndarray | None
    tested: np.ndarray
    significant: np.ndarray
    threshold: float
    perm_max: np.ndarray
    min_n: int
    permutations: int
    alpha: float
    seed: int
    n_units: int
    covariate_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_tested(self) -> int:
        """Voxels tested."""
        return int(self.tested.sum())

    @property
    def n_significant(self) -> int:
        """Voxels with FWE p <= alpha (either sign)."""
        return int(self.significant.sum())

    @property
    def sweet_spot(self) -> np.ndarray:
        """Significant voxels with a positive statistic (bool volume)."""
        return self.significant & (np.nan_to_num(self.stat_map) > 0)

    @property
    def sour_spot(self) -> np.ndarray:
        """Significant voxels with a negative statistic (bool volume)."""
        return self.significant & (np.nan_to_num(self.stat_map) < 0)

    def peaks(self, n: int = 5) -> list[dict[str, Any]]:
        """Clusters of significant voxels (26-connected), largest peak ``|statistic|`` first.

        Without significant voxels: one entry, the largest ``|statistic|`` of the map
        (``significant`` False). Each entry: ``x_mm``, ``y_mm``, ``z_mm`` (MNI), ``stat``,
        ``p_fwe``, ``p``, ``n_units`` (covering the peak), ``mean_outcome``,
        ``cluster_voxels``, ``cluster_mm3``, ``significant``.
        """
        from scipy import ndimage

        if not self.tested.any():
            return []
        absstat = np.where(self.tested, np.abs(np.nan_to_num(self.stat_map)), -1.0)
        out = []
        voxel_mm3 = self.grid.spacing_mm ** 3
        if self.significant.any():
            labels, k = ndimage.label(self.significant, structure=np.ones((3, 3, 3)))
            for lab in range(1, k + 1):
                inside = labels == lab
                flat = int(np.argmax(np.where(inside, absstat, -1.0)))
                out.append(self._peak(flat, int(inside.sum()), voxel_mm3, True))
            out.sort(key=lambda p: -abs(p["stat"]))
        else:
            out.append(self._peak(int(np.argmax(absstat)), 0, voxel_mm3, False))
        return out[:n]

    def _peak(self, flat: int, voxels: int, voxel_mm3: float, significant: bool) -> dict[str, Any]:
        x, y, z = self.grid.world(np.array([flat]))[0]
        idx = np.unravel_index(flat, self.grid.shape)
        return {"x_mm": float(x), "y_mm": float(y), "z_mm": float(z), "stat": float(self.stat_map[idx]),
                "p_fwe": float(self.p_fwe_map[idx]), "p": float(self.p_map[idx]), "n_units": int(self.n_map[idx]),
                "mean_outcome": float(self.mean_map[idx]), "cluster_voxels": voxels,
                "cluster_mm3": voxels * voxel_mm3, "significant": significant}


def _auto_chunk(n_units: int, perm_block: int) -> int:
    per_voxel = 8.0 * (3 * n_units + 4 * perm_block)  # X copies + (P_b, S_c) temporaries, float64
    return int(min(65536, max(256, _CHUNK_BYTES // per_voxel)))


def sweet_spot(data: VoxelData, y: np.ndarray, kind: str = "vta", test: str = "t", min_n: int | None = None,
               permutations: int = 1000, alpha: float = 0.05, seed: int = 0, client: Any = None, *,
               covariates: np.ndarray | None = None, covariate_names: list[str] | None = None,
               chunk_voxels: int | None = None, perm_block: int = 256) -> VoxelMaps:
    """Voxel-wise outcome maps with max-statistic FWE control (see the module docstring).

    Parameters
    ----------
    data : VoxelData
        The cohort's images on the common grid.
    y : ndarray, shape (N,)
        The outcome per unit (in its own units; binary coded 0/1).
    kind : {"vta", "efield"}
        Binary VTAs or ``|E|`` (V/mm).
    test : {"t", "wilcoxon"}
        VTA kind: Welch t or rank-sum z; E-field kind: Pearson or Spearman correlation (as t).
    min_n : int, optional
        Fewest units whose VTA must cover a voxel for it to be tested; default
        ``max(3, ceil(0.2 N))`` (:func:`default_min_n`).
    permutations : int
        Number of outcome permutations P (>= 1).
    alpha : float
        FWE level for the significance mask.
    seed : int
        Seed of the permutations (the same maps for the same seed, with or without Dask).
    client : distributed.Client, optional
        Run the chunks as Dask tasks on this client.
    covariates : ndarray, shape (N, k), optional
        Regressed out of ``y`` before testing.
    chunk_voxels : int, optional
        Voxels per chunk (default: from a ~100 MB budget per chunk).
    perm_block : int
        Permutations evaluated at once within a chunk.

    Returns
    -------
    VoxelMaps

    Raises
    ------
    VtaError
        Bad arguments (kind, test, P < 1, alpha outside (0, 1), ``y`` of the wrong length).
    """
    import time

    t0 = time.perf_counter()
    if kind not in ("vta", "efield"):
        raise VtaError(f"kind must be 'vta' or 'efield', got {kind!r}")
    N = data.n_units
    min_n = check_options(N, test, min_n, permutations, alpha)
    y_raw = np.asarray(y, dtype=np.float64)
    if y_raw.shape != (N,):
        raise VtaError(f"the outcome has {y_raw.size} values for {N} units")
    y_test = residualise(y_raw, covariates)
    P = int(permutations)
    perm_block = max(1, min(int(perm_block), P))
    chunk = int(chunk_voxels) if chunk_voxels else _auto_chunk(N, perm_block)
    warnings: list[str] = []
    if alpha * (P + 1) < 1:
        warnings.append(f"{P} permutations cannot reach p_FWE <= {alpha:g}; nothing can be significant "
                        f"(use at least {math.ceil(1 / alpha) - 1})")
    tasks = data.chunks(kind, min_n, chunk)
    args = (y_test, y_raw, kind, test, P, int(seed), perm_block)
    results = _run_chunks(tasks, args, client)

    grid = data.grid
    flat = np.concatenate([f for f, _ in results]) if results else np.zeros(0, np.int64)
    part = [r for _, r in results]
    cat = (lambda key: np.concatenate([r[key] for r in part]) if part else np.zeros(0))  # noqa: E731
    stat, mean, count_ge = cat("stat"), cat("mean"), cat("count_ge")
    perm_max = np.max([r["perm_max"] for r in part], axis=0) if part else np.full(P, -np.inf)
    valid = ~np.isnan(stat)
    p_unc = np.where(valid, permutation_p(count_ge, P), np.nan)
    p_fwe = fwe_p(np.abs(stat), perm_max)
    tested = grid.volume(valid, flat, fill=False, dtype=bool)
    n_map = data.n_map()
    if kind == "vta":  # the mean outcome is descriptive: every covered voxel, not only the tested ones
        mean_map = grid.volume(data.coverage_mean(y_raw), data.support)
    else:
        mean_map = grid.volume(mean, flat)
    maps = VoxelMaps(
        kind=kind, test=test, stat_name="z" if (kind == "vta" and test == "wilcoxon") else "t", grid=grid,
        n_map=n_map, mean_map=mean_map, stat_map=grid.volume(stat, flat), p_map=grid.volume(p_unc, flat),
        p_fwe_map=grid.volume(p_fwe, flat),
        r_map=grid.volume(cat("r"), flat) if kind == "efield" else None,
        tested=tested, significant=grid.volume(valid & (p_fwe <= alpha), flat, fill=False, dtype=bool),
        threshold=fwe_threshold(perm_max, alpha), perm_max=perm_max, min_n=min_n, permutations=P,
        alpha=float(alpha), seed=int(seed), n_units=N, covariate_names=list(covariate_names or []),
        warnings=warnings, seconds=time.perf_counter() - t0)
    if maps.n_tested == 0:
        warnings.append(f"{kind}: no voxel is covered by at least {max(min_n, 2) if kind == 'vta' else min_n} "
                        "units" + (" and left uncovered by 2" if kind == "vta" else "") + "; nothing was tested")
    log.info("%s %s-map: %d voxels tested, %d FWE-significant (|%s| > %.3g), %d permutations, %.1f s", kind,
             maps.stat_name, maps.n_tested, maps.n_significant, maps.stat_name, maps.threshold, P, maps.seconds)
    return maps


def _run_chunks(tasks, args: tuple, client: Any) -> list[tuple[np.ndarray, dict]]:
    """Run :func:`_chunk_task` over the chunks, in-process or as Dask tasks (bounded in flight)."""
    if client is None:
        return [(flat, _chunk_task(X, *args)) for flat, X in tasks]
    from distributed import as_completed

    nthreads = sum(client.nthreads().values()) or 1
    window = max(2, 2 * nthreads)
    results: dict[int, tuple[np.ndarray, dict]] = {}
    pending: dict[Any, tuple[int, np.ndarray, Any]] = {}  # task -> (chunk, voxels, its scattered data)
    queue = as_completed()
    # hash=False: unique keys; content-hashed keys are shared by equal arrays (y and y_raw, the VTA and E-field
    # runs), and one release then loses the other's data ("lost dependencies")
    scattered_args = client.scatter(list(args[:2]), broadcast=False, hash=False)

    def submit(i: int, flat: np.ndarray, X: np.ndarray) -> None:
        [xf] = client.scatter([X], broadcast=False, hash=False)  # kept until its task is done
        fut = client.submit(_chunk_task, xf, *scattered_args, *args[2:], pure=False)
        pending[fut] = (i, flat, xf)
        queue.add(fut)

    it = iter(tasks)
    i = 0
    try:
        for flat, X in it:
            submit(i, flat, X)
            i += 1
            if len(pending) >= window:
                break
        for fut in queue:
            j, flat, xf = pending.pop(fut)
            try:
                results[j] = (flat, fut.result())
            except Exception as exc:  # noqa: BLE001 - a worker error becomes one line
                raise VtaError(f"a voxel-statistics task failed on the Dask cluster: {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())}") from None
            fut.release()
            xf.release()
            nxt = next(it, None)
            if nxt is not None:
                submit(i, *nxt)
                i += 1
    finally:
        for fut in pending:
            fut.cancel()
    return [results[j] for j in sorted(results)]
