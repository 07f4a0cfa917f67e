"""Fibre filtering, cross-validated prediction and their figures (vta.cohort.fibres,
vta.cohort.predict, vta.cohort.figures).

Planted truth: a known fibre subset (or voxel region) drives the outcome; it must be
recovered after FWE correction and predict left-out units. Nulls: permuted outcomes give
a family-wise false-positive rate and prediction p-values within alpha. Exactness: the
vectorised cross-validation equals a brute-force one (scipy statistic recomputed in each
training fold only), for the observed outcome and for its permutations.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats as ss

from vta.cohort.fibres import FibreMatrix, fibre_filter, fibre_score, load_fibre_activation, tract_streamlines
from vta.cohort.stats import group_statistic, masked_ranks, permutation_matrix, tie_term
from vta.cohort.predict import assign_folds, cross_validated_prediction
from vta.errors import VtaError
from vta.io import write_table

ALPHA = 0.05


def _binomial_upper(p: float, n: int, z: float = 3.0) -> float:
    """``p`` plus ``z`` binomial standard errors over ``n`` repeats."""
    return p + z * np.sqrt(p * (1 - p) / n)


def _cohort(batch: Path, subjects: list[str], folders: list[list[Path]], y, binary: bool = False):
    """A Cohort (vta.cohort.table when present) with the fields fibres/predict use."""
    y = np.asarray(y, float)
    fields = dict(batch_dir=batch, outcome="outcome", subjects=subjects, folders=folders, y=y, binary=binary,
                  covariates=np.zeros((len(y), 0)), covariate_names=[], dropped=[], mirror=False)
    try:
        from vta.cohort.table import Cohort

        return Cohort(**fields)
    except (ImportError, TypeError):
        return SimpleNamespace(**fields)


def _fibre_rows(tract: str, near: np.ndarray, active: np.ndarray, rng) -> list[dict]:
    """tracts.csv rows as vta run writes them (vta.activation.tract_activation fibre_rows)."""
    if len(near) == 0:
        return [{"tract": tract}]
    return [{"tract": tract, "streamline": int(s), "distance_mm": float(rng.uniform(0.5, 6.0)),
             "through_lead": False, "threshold_factor": float(rng.uniform(0.3, 1.0)) if a else float("inf"),
             "activated": bool(a)} for s, a in zip(near, active)]


def _planted_fibres(seed: int = 0, N: int = 60, F: int = 300, k: int = 6):
    """Units activating the planted bundle (fibres 0..k-1, co-activated) do better."""
    rng = np.random.default_rng(seed)
    on = rng.random(N) < 0.4
    A = rng.random((N, F)) < 0.3
    A[:, :k] = np.where(on[:, None], rng.random((N, k)) < 0.97, rng.random((N, k)) < 0.02)
    y = 2.0 * on + rng.normal(size=N) * 0.5
    return A, y


def _voxel_cohort(seed: int, N: int = 40, M: int = 600, width: int = 60, noise: float = 0.15):
    """1-D 'brain' of M voxels; each VTA covers ``width`` voxels around a random centre;
    the outcome is the overlap with the sweet spot (voxels 280..320) plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(150, 450, N)
    v = np.arange(M)
    X = (np.abs(v[None, :] - centres[:, None]) <= width / 2).astype(np.float32)
    overlap = X[:, 280:321].mean(axis=1)
    y = overlap + rng.normal(size=N) * noise
    E = np.exp(-np.abs(v[None, :] - centres[:, None]) / 25.0).astype(np.float32)  # |E|-like, V/mm
    return X, y, E, overlap


# ----------------------------------------------------------------------------- kernels


def test_statistics_match_scipy():
    rng = np.random.default_rng(3)
    N, F = 25, 12
    A = rng.random((N, F)) < 0.4
    y = np.round(rng.normal(size=N), 1)  # ties
    t = group_statistic(A, y, "t")[0]
    z = group_statistic(A, y, "wilcoxon")[0]
    for j in range(F):
        ref = ss.ttest_ind(y[A[:, j]], y[~A[:, j]], equal_var=False).statistic
        assert t[j] == pytest.approx(ref, rel=1e-9)
        p = ss.mannwhitneyu(y[A[:, j]], y[~A[:, j]], use_continuity=False, method="asymptotic").pvalue
        assert 2 * ss.norm.sf(abs(z[j])) == pytest.approx(p, rel=1e-9)


def test_masked_ranks_and_tie_term_match_loops():
    rng = np.random.default_rng(4)
    Y = rng.integers(0, 5, size=(6, 15)).astype(float)
    W = rng.random((6, 15)) < 0.7
    R, T = masked_ranks(Y, W), tie_term(Y, W)[:, 0]
    for p in range(6):
        np.testing.assert_allclose(R[p, W[p]], ss.rankdata(Y[p, W[p]]))
        _, c = np.unique(Y[p, W[p]], return_counts=True)
        assert T[p] == pytest.approx(float((c ** 3 - c).sum()))


# ----------------------------------------------------------------------------- fibre filtering


@pytest.mark.parametrize("test", ["t", "wilcoxon"])
def test_fibre_filter_recovers_planted_fibres(test):
    A, y = _planted_fibres()
    st = fibre_filter(A, y, test=test, permutations=500, alpha=ALPHA, seed=1)
    assert set(np.flatnonzero(st.significant)) == set(range(6))
    assert np.all(st.stat[:6] > 0) and np.all(st.p_fwe[:6] <= 1 / 501 + 1e-12)
    assert np.all(st.p_fwe >= st.p_uncorrected - 1e-12)
    assert st.threshold < st.stat[:6].min()
    assert st.n_tested == 300 and len(st.max_null) == 500
    np.testing.assert_allclose(st.mean_activated[0], y[A[:, 0]].mean())
    rows = st.rows()
    assert rows[0]["significant"] is True and ("t" if test == "t" else "z") in rows[0]
    one_sided = fibre_filter(A, -y, test=test, permutations=200, tail="greater", seed=1)
    assert not one_sided.significant.any()  # planted fibres go with a *lower* -y


def test_fibre_filter_min_n_and_errors():
    A, y = _planted_fibres(F=20)
    A[:, 10] = False
    A[:3, 10] = True
    A[:, 11] = True
    st = fibre_filter(A, y, min_n=4, permutations=50)
    assert np.isnan(st.stat[10]) and np.isnan(st.stat[11]) and np.isnan(st.p_fwe[10])
    assert not st.significant[10] and st.n_activated[10] == 3
    with pytest.raises(VtaError, match="does not vary"):
        fibre_filter(A, np.ones(len(y)))
    with pytest.raises(VtaError, match="unknown test"):
        fibre_filter(A, y, test="anova")
    with pytest.raises(VtaError, match="outcomes"):
        fibre_filter(A[:5], y)


@pytest.mark.parametrize("test,binary,repeats", [("t", False, 200), ("wilcoxon", True, 100)])
def test_fibre_filter_family_wise_error_under_null(test, binary, repeats):
    """Outcomes unrelated to activation: some fibre significant in at most alpha of the
    repeats (max-statistic FWE), and per-fibre p uniform."""
    rng = np.random.default_rng(11)
    hits, p_unc = 0, []
    for r in range(repeats):
        A = rng.random((30, 150)) < 0.3
        y = (rng.random(30) < 0.5).astype(float) if binary else rng.normal(size=30)
        if np.ptp(y) == 0:
            y[0] = 1 - y[0]
        st = fibre_filter(A, y, test=test, permutations=99, seed=r)
        hits += bool(st.significant.any())
        p_unc.append(st.p_uncorrected[np.isfinite(st.p_uncorrected)])
    assert 0.005 <= hits / repeats <= _binomial_upper(ALPHA, repeats)
    p_unc = np.concatenate(p_unc)
    if binary:  # discrete permutation distribution (ties): valid, somewhat conservative
        assert np.mean(p_unc <= 0.05) <= 0.06
    else:
        assert abs(np.mean(p_unc <= 0.05) - 0.05) < 0.015 and abs(np.mean(p_unc <= 0.5) - 0.5) < 0.03


def test_fibre_score():
    A = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], bool)
    s = np.array([2.0, np.nan, -1.0])
    np.testing.assert_allclose(fibre_score(A, s), [2.0, -1.0, 0.0])
    np.testing.assert_allclose(fibre_score(A, s, significant=[False, True, True]), [0.0, -1.0, 0.0])


# ----------------------------------------------------------------------------- tracts.csv


def _write_batch(tmp_path: Path, A: np.ndarray, near: np.ndarray, tract: str = "ALIC_bundle",
                 sides: tuple[str, ...] = ("R",)) -> tuple[list[str], list[list[Path]]]:
    """One folder per subject and side; ``near`` (N, F) bool: fibres listed in tracts.csv."""
    rng = np.random.default_rng(0)
    subjects, folders = [], []
    for i in range(A.shape[0]):
        subjects.append(f"s{i:02d}")
        fs = []
        for side in sides:
            f = tmp_path / "subjects" / f"s{i:02d}_{side}"
            f.mkdir(parents=True)
            idx = np.flatnonzero(near[i])
            write_table(_fibre_rows(tract, idx, A[i, idx], rng), f / "tracts.csv")
            fs.append(f)
        folders.append(fs)
    return subjects, folders


def test_load_fibre_activation_union_absent_and_hemispheres(tmp_path):
    A = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], bool)
    near = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 1, 1]], bool)  # s02: no fibre near
    subjects, folders = _write_batch(tmp_path, A, near, sides=("R", "L"))
    fm = load_fibre_activation(_cohort(tmp_path, subjects, folders, [0, 1, 2, 3]))
    assert fm.tract == "ALIC_bundle" and fm.units == subjects
    assert fm.labels() == ["L:0", "L:1", "L:2", "L:3", "R:0", "R:1", "R:2", "R:3"]
    np.testing.assert_array_equal(fm.activated[:, :4], A)  # both sides, pooled per subject
    np.testing.assert_array_equal(fm.activated[:, 4:], A)
    # hemisphere units: a right unit does not activate left fibres
    units = [f.name for fs in folders for f in fs]
    fh = load_fibre_activation(_cohort(tmp_path, units, [[f] for fs in folders for f in fs], np.arange(8)))
    assert fh.activated.shape == (8, 8)
    np.testing.assert_array_equal(fh.activated[0], [0, 0, 0, 0, 1, 0, 0, 0])  # s00_R
    np.testing.assert_array_equal(fh.activated[1], [1, 0, 0, 0, 0, 0, 0, 0])  # s00_L


def test_load_fibre_activation_per_side_tracts(tmp_path):
    """A tract per hemisphere (ALIC_L_bundle in left folders, ALIC_R_bundle in right ones):
    chosen together by default, fibres keep their side and their tract's name."""
    A = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 0]], bool)
    rng = np.random.default_rng(0)
    subjects, folders = [], []
    for i in range(4):
        subjects.append(f"s{i}")
        fs = []
        for side, act in (("R", A[i]), ("L", A[i, ::-1])):
            f = tmp_path / "subjects" / f"s{i}_{side}"
            f.mkdir(parents=True)
            write_table(_fibre_rows(f"ALIC_{side}_bundle", np.arange(3), act, rng), f / "tracts.csv")
            fs.append(f)
        folders.append(fs)
    cohort = _cohort(tmp_path, subjects, folders, [0, 1, 2, 3])
    fm = load_fibre_activation(cohort)
    assert fm.tract == "ALIC_L_bundle+ALIC_R_bundle" and fm.labels()[:4] == ["L:0", "L:1", "L:2", "R:0"]
    np.testing.assert_array_equal(fm.activated[:, 3:], A)
    np.testing.assert_array_equal(fm.activated[:, :3], A[:, ::-1])
    st = fibre_filter(fm.activated, cohort.y, permutations=10)
    assert [r["tract"] for r in st.rows(fm)] == ["ALIC_L_bundle"] * 3 + ["ALIC_R_bundle"] * 3
    right = load_fibre_activation(cohort, "ALIC_R_bundle")
    assert right.tract == "ALIC_R_bundle" and right.labels() == ["R:0", "R:1", "R:2"]
    assert load_fibre_activation(cohort, "ALIC_R_bundle,ALIC_L_bundle").n_fibres == 6


def test_load_fibre_activation_errors(tmp_path):
    A = np.eye(4, dtype=bool)
    subjects, folders = _write_batch(tmp_path / "a", A, A | np.roll(A, 1, axis=1))
    cohort = _cohort(tmp_path, subjects, folders, [0, 1, 2, 3])
    with pytest.raises(VtaError, match=r"no tract 'ALIC_bundel'.*did you mean 'ALIC_bundle'"):
        load_fibre_activation(cohort, "ALIC_bundel")
    # a second tract in one file: the choice is needed
    rows = _fibre_rows("ATR_R", np.array([3]), np.array([True]), np.random.default_rng(0))
    write_table(_fibre_rows("ALIC_bundle", np.array([0]), np.array([True]), np.random.default_rng(0)) + rows,
                folders[0][0] / "tracts.csv")
    with pytest.raises(VtaError, match=r"2 tracts \(ALIC_bundle, ATR_R\).*--tract"):
        load_fibre_activation(cohort)
    assert load_fibre_activation(cohort, "ATR_R").activated[:, 0].tolist() == [True, False, False, False]
    # a subject without tracts.csv while the others have one
    (folders[2][0] / "tracts.csv").unlink()
    with pytest.raises(VtaError, match=r"s02_R/tracts.csv missing"):
        load_fibre_activation(cohort, "ATR_R")
    # malformed value, one line naming file and line
    (folders[2][0] / "tracts.csv").write_text("tract,streamline,activated\nATR_R,1,maybe\n")
    with pytest.raises(VtaError, match=r"tracts.csv: line 2: 'activated'") as err:
        load_fibre_activation(cohort, "ATR_R")
    assert "\n" not in str(err.value)
    # no tracts.csv anywhere: nothing to filter (None), unless a tract is asked for
    for fs in folders:
        (fs[0] / "tracts.csv").unlink()
    assert load_fibre_activation(cohort) is None
    with pytest.raises(VtaError, match="no tracts.csv"):
        load_fibre_activation(cohort, "ATR_R")


def test_planted_fibres_from_tracts_csv(tmp_path):
    """End to end on real files: tracts.csv -> FibreMatrix -> fibre filter -> prediction."""
    A, y = _planted_fibres(N=50, F=120)
    rng = np.random.default_rng(5)
    near = A | (rng.random(A.shape) < 0.3)  # listed but not activated: the same as absent
    subjects, folders = _write_batch(tmp_path, A, near)
    fm = load_fibre_activation(_cohort(tmp_path, subjects, folders, y))
    listed = near.any(axis=0)
    np.testing.assert_array_equal(fm.streamline, np.flatnonzero(listed))
    np.testing.assert_array_equal(fm.activated, A[:, listed])
    st = fibre_filter(fm.activated, y, permutations=300, seed=2)
    assert set(fm.streamline[st.significant]) == set(range(6))
    pred = cross_validated_prediction(fm.activated, y, binary=False, folds="loo", permutations=199, seed=0)
    assert pred.statistic == "group" and pred.r > 0.5 and pred.r_p_perm < ALPHA


# ----------------------------------------------------------------------------- prediction


def _brute_force_cv(X, y, fold, kind, test, min_n=2):
    """Reference: per fold, the statistic from the training units only (scipy), the
    weighted-mean score, a least-squares line on the training units."""
    Xr = ss.rankdata(X, axis=0)  # Spearman: features ranked once over all units (documented)
    pred = np.empty(len(y))
    for f in np.unique(fold):
        tr = fold != f
        s = np.full(X.shape[1], np.nan)
        for m in range(X.shape[1]):
            x, yt = X[tr, m], y[tr]
            if kind == "group":
                g1, g0 = yt[x == 1], yt[x == 0]
                if min(len(g1), len(g0)) < max(min_n, 2 if test == "t" else 1):
                    continue
                if test == "t":
                    if np.var(g1) + np.var(g0) > 0:
                        s[m] = ss.ttest_ind(g1, g0, equal_var=False).statistic
                else:
                    p = ss.mannwhitneyu(g1, g0, use_continuity=False, method="asymptotic").pvalue
                    u = ss.mannwhitneyu(g1, g0).statistic
                    s[m] = np.sign(u - len(g1) * len(g0) / 2) * ss.norm.isf(p / 2)
            elif (x != 0).sum() >= min_n and np.ptp(x) > 0:
                r = ss.pearsonr(x, yt)[0] if test == "t" else ss.pearsonr(Xr[tr, m], ss.rankdata(yt))[0]
                s[m] = r * np.sqrt((tr.sum() - 2) / (1 - r * r))
        ok = np.isfinite(s)
        den = X[:, ok].sum(axis=1)
        score = np.where(den > 0, X[:, ok] @ s[ok] / np.where(den > 0, den, 1), 0.0)
        b, a = np.polyfit(score[tr], y[tr], 1) if np.ptp(score[tr]) > 0 else (0.0, y[tr].mean())
        pred[~tr] = a + b * score[~tr]
    return pred


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")
@pytest.mark.parametrize("kind", ["group", "correlation"])
@pytest.mark.parametrize("test", ["t", "wilcoxon"])
@pytest.mark.parametrize("binary,folds", [(False, "loo"), (False, 3), (True, 3)])
def test_prediction_equals_brute_force_cross_validation(kind, test, binary, folds):
    """No leakage, exactly: every prediction (observed and permuted outcomes) equals a
    cross-validation that computes the statistic from the training units alone."""
    rng = np.random.default_rng(hash((kind, test, binary, folds)) % 2 ** 32)
    N, M, P = 14, 20, 2
    X = (rng.random((N, M)) < 0.4).astype(float)
    if kind == "correlation":
        X = X * rng.random((N, M))
    y = (np.arange(N) % 2).astype(float) if binary else np.round(rng.normal(size=N), 1)
    res = cross_validated_prediction(X, y, binary, folds=folds, test=test, permutations=P, seed=3)
    assert res.statistic == kind
    np.testing.assert_allclose(res.predicted, _brute_force_cv(X, y, res.fold, kind, test), atol=1e-5)
    perms = permutation_matrix(N, P, 3)
    for p in range(P):
        yp = y[perms[p]]
        fp = res.fold[perms[p]] if binary and folds != "loo" else res.fold  # stratified folds follow the outcome
        r = np.corrcoef(_brute_force_cv(X, yp, fp, kind, test), yp)[0, 1]
        assert res.null_r[p] == pytest.approx(r, abs=1e-5)


def test_leaky_statistic_would_predict_noise():
    """On pure noise, a statistic computed on all units (leaky) 'predicts' well; the
    cross-validated one does not, and permuted runs show no optimistic bias (their mean
    r is at or below 0: cross-validation on noise is known to be negatively biased, which
    is why p comes from the same cross-validation on permuted outcomes)."""
    rng = np.random.default_rng(8)
    N, M = 30, 3000
    X = rng.random((N, M)) < 0.3
    y = rng.normal(size=N)
    leaky_score = fibre_score(X, fibre_filter(X, y, permutations=0).stat)
    assert np.corrcoef(leaky_score, y)[0, 1] > 0.6
    res = cross_validated_prediction(X, y, binary=False, folds="loo", permutations=200, seed=1)
    assert res.r < 0.3 and res.r_p_perm > ALPHA
    assert -0.45 < float(np.mean(res.null_r)) < 0.05


@pytest.mark.parametrize("folds", ["loo", 5])
def test_prediction_recovers_planted_sweet_spot(folds):
    X, y, E, _ = _voxel_cohort(seed=2)
    res = cross_validated_prediction(X, y, binary=False, folds=folds, permutations=200, seed=0)
    assert res.statistic == "group" and res.r > 0.5 and res.r_p_perm < ALPHA
    res_w = cross_validated_prediction(X, y, binary=False, folds=folds, test="wilcoxon", permutations=200)
    assert res_w.r > 0.5 and res_w.r_p_perm < ALPHA
    res_e = cross_validated_prediction(E, y, binary=False, folds=folds, permutations=200)
    assert res_e.statistic == "correlation" and res_e.r > 0.5 and res_e.r_p_perm < ALPHA
    rows = res.rows([f"u{i}" for i in range(len(y))])
    assert rows[3]["unit"] == "u3" and rows[3]["observed"] == pytest.approx(y[3])
    assert set(res.summary()) >= {"r", "r_p_perm", "folds", "n_features"}


def test_binary_outcome_auc_with_stratified_folds():
    X, _, _, overlap = _voxel_cohort(seed=4, N=50)
    y = (overlap > np.median(overlap)).astype(float)
    res = cross_validated_prediction(X, y, binary=True, folds=5, permutations=200, seed=0)
    assert res.auc > 0.8 and res.auc_p_perm < ALPHA and res.r_p_perm < ALPHA
    n1 = int(y.sum())
    for f in range(5):  # stratified: each fold holds floor or ceil of a fifth of each class
        assert abs(y[res.fold == f].sum() - n1 / 5) < 1 and (res.fold == f).sum() == 10
    ranks = ss.rankdata(res.predicted)
    assert res.auc == pytest.approx((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1)))


@pytest.mark.parametrize("binary", [False, True])
def test_prediction_p_values_under_null(binary):
    """Outcomes unrelated to the features: p < alpha in at most alpha (+ slack) of the repeats."""
    rng = np.random.default_rng(21)
    repeats, hits, ps = 80, 0, []
    for r in range(repeats):
        X = (rng.random((20, 120)) < 0.3).astype(np.float32)
        y = (np.arange(20) % 2).astype(float)[rng.permutation(20)] if binary else rng.normal(size=20)
        res = cross_validated_prediction(X, y, binary, folds=4 if binary else "loo", permutations=49, seed=r)
        p = res.auc_p_perm if binary else res.r_p_perm
        hits += p <= ALPHA
        ps.append(p)
    assert hits / repeats <= _binomial_upper(ALPHA, repeats)
    assert 0.35 < np.mean(ps) < 0.65  # roughly uniform


def test_folds_and_errors():
    np.testing.assert_array_equal(assign_folds(5, "loo"), np.arange(5))
    labels = np.array([1] * 6 + [0] * 9)
    f = assign_folds(15, 3, labels, seed=7)
    np.testing.assert_array_equal(f, assign_folds(15, 3, labels, seed=7))
    assert all(labels[f == k].sum() == 2 and (f == k).sum() == 5 for k in range(3))
    for bad in (1, 16, "kfold", 2.5):
        with pytest.raises(VtaError, match="folds must be"):
            assign_folds(15, bad)
    X = (np.random.default_rng(0).random((10, 30)) < 0.4)
    y = np.arange(10.0)
    with pytest.raises(VtaError, match="at least 4 units"):
        cross_validated_prediction(X[:3], y[:3], False)
    with pytest.raises(VtaError, match="coded 0/1"):
        cross_validated_prediction(X, y, True)
    with pytest.raises(VtaError, match="no feature"):
        cross_validated_prediction(np.zeros((10, 5)), y, False)
    with pytest.raises(VtaError, match="features are"):
        cross_validated_prediction(X, y[:5], False)


# ----------------------------------------------------------------------------- figures


def _nonblank_png(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 400
    assert (img[..., :3] < 0.9).mean() > 0.005  # something drawn
    return img


def _bundle(F: int, rng) -> list[np.ndarray]:
    """Gently curved parallel streamlines along y (world mm), right hemisphere."""
    t = np.linspace(0, 40, 60)
    return [np.column_stack([10 + 0.3 * k + 0.1 * rng.normal() + 0 * t, t - 10, 2 * np.sin(t / 12) + 0.2 * k % 5])
            for k in range(F)]


def test_figures(tmp_path):
    from vta.cohort.figures import fibre_figure, prediction_figure, roc_curve

    X, y, _, overlap = _voxel_cohort(seed=2)
    res = cross_validated_prediction(X, y, binary=False, permutations=50)
    _nonblank_png(prediction_figure(res, tmp_path / "pred.png", outcome="improvement"))
    yb = (overlap > np.median(overlap)).astype(float)
    rb = cross_validated_prediction(X, yb, binary=True, folds=5, permutations=50)
    img = _nonblank_png(prediction_figure(rb, tmp_path / "pred_binary.png", outcome="abstinent"))
    assert img.shape[1] > 1.5 * img.shape[0]  # two panels
    fpr, tpr = roc_curve(rb.predicted, yb)
    assert np.trapezoid(tpr, fpr) == pytest.approx(rb.auc)

    A, yf = _planted_fibres(N=40, F=40)
    fm = FibreMatrix("bundle", np.arange(40), A, ["R"] * 40)
    st = fibre_filter(A, yf, permutations=200)
    lines = _bundle(50, np.random.default_rng(0))
    out = fibre_figure(tmp_path / "fibres_mpl.png", {"R": lines}, fm, st, backend="matplotlib")
    _nonblank_png(out)
    out = fibre_figure(tmp_path / "fibres.png", {"R": lines}, fm, st)  # pyvista, or the fallback
    _nonblank_png(out)
    with pytest.raises(VtaError, match="no coordinates"):
        fibre_figure(tmp_path / "x.png", {"L": lines[:1], "R": []}, fm, st, backend="matplotlib")


def test_tract_streamlines_from_summary(tmp_path):
    rng = np.random.default_rng(0)
    arr = np.stack(_bundle(5, rng))
    np.save(tmp_path / "atr.npy", arr)
    folder = tmp_path / "subjects" / "s01_R"
    folder.mkdir(parents=True)
    cfg = {"tracts": {"default_bundle": None, "files": [{"path": str(tmp_path / "atr.npy"), "name": "ATR",
                                                          "offset_mm": [1.0, 0.0, 0.0]}]}}
    (folder / "summary.json").write_text(json.dumps({"config": cfg}))
    got = tract_streamlines([folder], "ATR")
    assert list(got) == ["R"] and len(got["R"]) == 5
    np.testing.assert_allclose(got["R"][2], arr[2] + [1.0, 0.0, 0.0])
    assert tract_streamlines([folder], "other") == {}
