"""Fibre filtering: which fibres of a tract go with a good outcome when activated.

A cohort's subject folders hold ``tracts.csv`` (written by ``vta run`` with a ``[tracts]``
section): one row per simulated fibre (``tract``, ``streamline``, ``distance_mm``,
``through_lead``, ``threshold_factor``, ``activated``). :func:`load_fibre_activation`
gathers them into a unit x fibre activation matrix (:class:`FibreMatrix`): the union of
the fibres seen in any unit, a fibre absent from a unit's file counting as not
activated (it was not near that lead).

:func:`fibre_filter` is fibre filtering after Baldermann et al. 2019 (Biol Psychiatry
85:735) and Li et al. 2020 (Nat Commun 11:3364): for every fibre the outcomes of the
units that activate it are compared with the outcomes of those that do not, by Welch's
t or the Wilcoxon rank-sum z (positive: activating the fibre goes with a higher outcome).
Family-wise error over all fibres is controlled by the max-statistic permutation test
(Nichols & Holmes 2002, Hum Brain Mapp 15:1): the outcomes are permuted across units,
the largest |statistic| over all fibres is recorded per permutation, and a fibre's
``p_fwe`` is the fraction of permutations (the identity counted once) whose maximum
reaches its statistic. The statistic is vectorised over fibres *and* permutations:
per-fibre sums are one matrix product ``(P, N) @ (N, F)``.

The statistics, permutations and p-values are those of :mod:`vta.cohort.stats`, shared
with the voxel maps and with the training folds of
:func:`vta.cohort.predict.cross_validated_prediction`.

Fibre identity: a fibre is (hemisphere, streamline index) of the chosen tract, the
hemisphere being the ``_R``/``_L`` suffix of the subject folder; when each hemisphere has
its own tract (``ALIC_L_bundle`` / ``ALIC_R_bundle``), both are taken, one per side. Left and right fibres
stay distinct even when the cohort mirrors left VTAs onto the right, because the two
sides' tract files need not be mirror images of each other (the default ALIC bundle of
the left side is generated from the left ALIC, not mirrored).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import VtaError, did_you_mean
from .stats import GroupTest, at_least, check_test, fwe_p, fwe_threshold, permutation_matrix, permutation_p, standardise
from .table import read_csv_table

if TYPE_CHECKING:  # pragma: no cover
    from .table import Cohort

__all__ = ["FibreMatrix", "FibreStats", "load_fibre_activation", "fibre_filter", "fibre_score", "tract_streamlines",
           "TAILS"]

log = logging.getLogger(__name__)

#: Which deviations count for the FWE test: both signs, or only higher (lower) outcomes with activation.
TAILS = ("two-sided", "greater", "less")
#: Permutation-by-feature elements per chunk (bounds memory: ~8 bytes x a few arrays each).
CHUNK_ELEMENTS = 2_000_000


# ----------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class FibreMatrix:
    """Which unit activates which fibre of a tract (or of one tract per hemisphere).

    Attributes
    ----------
    tract : str
        Tract name as in ``tracts.csv``; per-side tracts are joined with ``"+"``
        (``"ALIC_L_bundle+ALIC_R_bundle"``).
    streamline : ndarray of int (F,)
        Streamline index of each fibre in its tract file.
    activated : ndarray of bool (N, F)
        ``activated[i, j]``: unit ``i`` (in the cohort's order) activates fibre ``j``.
    hemisphere : ndarray of str (F,), optional
        Side of each fibre's tract (``"R"``, ``"L"``, or ``""`` when the folder name
        does not say); default all ``""``.
    units : list of str, optional
        Unit names, in the rows' order.
    side_tracts : dict, optional
        Tract name per hemisphere (``{"L": "ALIC_L_bundle", "R": "ALIC_R_bundle"}``);
        default: ``tract`` for every side.
    """

    tract: str
    streamline: np.ndarray
    activated: np.ndarray
    hemisphere: np.ndarray | None = None
    units: list[str] = field(default_factory=list)
    side_tracts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        streamline = np.asarray(self.streamline, dtype=np.int64).reshape(-1)
        activated = np.asarray(self.activated, dtype=bool)
        if activated.ndim != 2 or activated.shape[1] != len(streamline):
            raise VtaError(f"FibreMatrix: activated must be (units, {len(streamline)} fibres), got {activated.shape}")
        hemi = (np.full(len(streamline), "", dtype="<U1") if self.hemisphere is None
                else np.asarray(self.hemisphere, dtype=str).reshape(-1))
        if len(hemi) != len(streamline):
            raise VtaError(f"FibreMatrix: {len(hemi)} hemispheres for {len(streamline)} fibres")
        if self.units and len(self.units) != activated.shape[0]:
            raise VtaError(f"FibreMatrix: {len(self.units)} unit names for {activated.shape[0]} rows")
        object.__setattr__(self, "streamline", streamline)
        object.__setattr__(self, "activated", activated)
        object.__setattr__(self, "hemisphere", hemi)
        object.__setattr__(self, "units", list(self.units))
        object.__setattr__(self, "side_tracts", dict(self.side_tracts))

    @property
    def n_units(self) -> int:
        return int(self.activated.shape[0])

    @property
    def n_fibres(self) -> int:
        return int(self.activated.shape[1])

    def tract_of(self, j: int) -> str:
        """Tract name of fibre ``j``."""
        return self.side_tracts.get(str(self.hemisphere[j]), self.tract)

    def labels(self) -> list[str]:
        """``"R:12"`` (hemisphere:streamline), or ``"12"`` without a hemisphere, per fibre."""
        return [f"{h}:{s}" if h else str(s) for h, s in zip(self.hemisphere, self.streamline)]


def _hemisphere_of(folder: Path) -> str:
    suffix = folder.name.rsplit("_", 1)[-1] if "_" in folder.name else ""
    return suffix.upper() if suffix.upper() in ("R", "L") else ""


def _truthy(text: str, path: Path, line: int) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no", ""):
        return False
    raise VtaError(f"{path}: line {line}: 'activated' must be True or False, got {text!r}")


def _read_tracts_csv(path: Path) -> dict[str, dict[int, bool]]:
    """``{tract: {streamline: activated}}`` of one ``tracts.csv`` (a tract with no
    simulated fibre has an empty dict)."""
    columns, rows = read_csv_table(path, "tract activation table")
    if "tract" not in columns:
        raise VtaError(f"{path}: no 'tract' column (columns: {', '.join(columns) or 'none'})")
    out: dict[str, dict[int, bool]] = {}
    for k, row in enumerate(rows, start=2):
        name = row.get("tract", "")
        if not name:
            raise VtaError(f"{path}: line {k}: empty tract name")
        fibres = out.setdefault(name, {})
        sl = row.get("streamline", "")
        if not sl:  # the placeholder row of a tract with no fibre near the lead
            continue
        if "activated" not in columns:
            raise VtaError(f"{path}: no 'activated' column (columns: {', '.join(columns)})")
        try:
            index = int(float(sl))
        except ValueError:
            raise VtaError(f"{path}: line {k}: streamline must be an integer, got {sl!r}") from None
        fibres[index] = fibres.get(index, False) or _truthy(row.get("activated", ""), path, k)
    return out


def load_fibre_activation(cohort: "Cohort", tract: str | None = None) -> FibreMatrix | None:
    """Read the cohort's ``tracts.csv`` files into a unit x fibre activation matrix.

    Parameters
    ----------
    cohort : Cohort
        Uses ``subjects`` (unit names) and ``folders`` (each unit's subject-hemisphere
        folders; a subject unit pools the fibres of both hemispheres).
    tract : str, optional
        Tract name as in ``tracts.csv``, or one name per hemisphere joined with ``"+"``
        or ``","`` (``"ATR_L+ATR_R"``). Default: the only tract of the cohort, or, when
        every hemisphere has its own single tract (``ALIC_L_bundle`` in the left
        folders, ``ALIC_R_bundle`` in the right ones), those per-side tracts.

    Returns
    -------
    FibreMatrix or None
        Fibres sorted by (hemisphere, streamline): the union of the fibres listed in any
        unit's files; a fibre not listed for a unit counts as not activated. ``None``
        when no folder has a ``tracts.csv`` and ``tract`` is not given (the batch ran
        without ``[tracts]``: nothing to filter).

    Raises
    ------
    VtaError
        A folder without ``tracts.csv`` while other folders of the same hemisphere have
        one; several tracts on one side and ``tract`` not given (the message lists
        them); an unknown ``tract``; two chosen tracts on the same side; no
        ``tracts.csv`` at all with ``tract`` given; a malformed file.
    """
    units = list(cohort.subjects)
    folders = [[Path(f) for f in fs] for fs in cohort.folders]
    if len(folders) != len(units):
        raise VtaError(f"cohort has {len(units)} units but {len(folders)} folder lists")
    tables: dict[Path, dict[str, dict[int, bool]]] = {}
    missing: list[Path] = []
    for fs in folders:
        for f in fs:
            p = f / "tracts.csv"
            if p.is_file():
                tables[f] = _read_tracts_csv(p)
            else:
                missing.append(f)
    if not tables:
        if tract is not None:
            example = folders[0][0] if folders and folders[0] else "?"
            raise VtaError(f"no tracts.csv in any subject folder (e.g. {example}); tract {tract!r} needs runs "
                           "with a [tracts] section")
        log.info("no tracts.csv in the cohort's folders: no fibre filtering")
        return None
    sides_with = {_hemisphere_of(f) for f in tables}
    bad = [f for f in missing if _hemisphere_of(f) in sides_with]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise VtaError(f"{bad[0] / 'tracts.csv'}{more} missing while other subjects have tracts.csv; "
                       "rerun them with the same [tracts] section or leave them out")
    side_tracts = _choose_tracts(tables, tract)
    for side, name in side_tracts.items():
        _check_tract_coverage(tables, name, side)
    keys = sorted({(side, s) for f, t in tables.items() if (side := _hemisphere_of(f)) in side_tracts
                   for s in t.get(side_tracts[side], {})})
    column = {k: j for j, k in enumerate(keys)}
    activated = np.zeros((len(units), len(keys)), dtype=bool)
    for i, fs in enumerate(folders):
        for f in fs:
            side = _hemisphere_of(f)
            for s, on in tables.get(f, {}).get(side_tracts.get(side, ""), {}).items():
                if on:
                    activated[i, column[(side, s)]] = True
    names = sorted(set(side_tracts.values()))
    fm = FibreMatrix("+".join(names), np.array([s for _, s in keys], dtype=np.int64), activated,
                     np.array([h for h, _ in keys], dtype="<U1"), units, side_tracts if len(names) > 1 else {})
    log.info("tract %s: %d fibres near at least one lead, %d activated by at least one of %d units", fm.tract,
             fm.n_fibres, int(activated.any(axis=0).sum()), fm.n_units)
    return fm


def _choose_tracts(tables: dict[Path, dict[str, dict[int, bool]]], tract: str | None) -> dict[str, str]:
    """``{hemisphere: tract name}`` of the fibres to analyse."""
    names = sorted({n for t in tables.values() for n in t})
    by_side: dict[str, set[str]] = {}
    for f, t in tables.items():
        by_side.setdefault(_hemisphere_of(f), set()).update(t)
    if tract is None:
        if len(names) == 1:
            return {side: names[0] for side in by_side}
        per_side = all(len(v) == 1 for v in by_side.values()) and "" not in by_side
        if not per_side:
            raise VtaError(f"the cohort has {len(names)} tracts ({', '.join(names)}); choose one with --tract")
        chosen = [next(iter(v)) for v in by_side.values()]
        log.info("one tract per hemisphere: %s", ", ".join(f"{s}: {n}" for s, n in sorted(by_side.items())
                                                            for n in sorted(n for n in by_side[s])))
    else:
        chosen = [n.strip() for n in tract.replace(",", "+").split("+") if n.strip()]
        for name in chosen:
            if name not in names:
                raise VtaError(f"no tract {name!r} in the cohort's tracts.csv files (tracts: {', '.join(names)})"
                               + did_you_mean(name, names))
    out: dict[str, str] = {}
    for side, present in sorted(by_side.items()):
        mine = [n for n in chosen if n in present]
        if len(mine) > 1:
            raise VtaError(f"tracts {', '.join(mine)} are all on hemisphere {side or '?'}; choose one of them")
        if mine:
            out[side] = mine[0]
    return out


def _check_tract_coverage(tables: dict[Path, dict[str, dict[int, bool]]], tract: str, side: str) -> None:
    """Warn when some folders of a hemisphere list ``tract`` and others of that side do not
    (different [tracts] sections): their fibres count as not activated."""
    without = [f for f in tables if _hemisphere_of(f) == side and tract not in tables[f]]
    if without:
        log.warning("tract %s is not in %d tracts.csv files of hemisphere %s (e.g. %s): their fibres count as "
                    "not activated", tract, len(without), side or "?", without[0])


# ----------------------------------------------------------------------------- fibre filtering


@dataclass(frozen=True)
class FibreStats:
    """Per-fibre statistic and permutation p-values of :func:`fibre_filter`.

    Attributes
    ----------
    stat : ndarray (F,)
        Welch t or rank-sum z, activated minus not activated (NaN: not tested, fewer
        than ``min_n`` units in a group, or both groups constant).
    p_fwe : ndarray (F,)
        Family-wise error corrected permutation p (max statistic over fibres); NaN
        where not tested or without permutations.
    p_uncorrected : ndarray (F,)
        Per-fibre permutation p.
    significant : ndarray of bool (F,)
        ``p_fwe <= alpha``.
    n_activated : ndarray of int (F,)
        Units activating each fibre.
    mean_activated, mean_not_activated : ndarray (F,)
        Mean outcome (outcome units) of the units activating / not activating it.
    test, tail : str
    alpha : float
    permutations : int
    min_n : int
    max_null : ndarray (P,)
        Largest tail statistic over fibres per permutation (the FWE null distribution).
    threshold : float
        The statistic (in the tail's sense: |stat| for two-sided) that a fibre must
        reach to be significant at ``alpha``; NaN without permutations.
    """

    stat: np.ndarray
    p_fwe: np.ndarray
    p_uncorrected: np.ndarray
    significant: np.ndarray
    n_activated: np.ndarray
    mean_activated: np.ndarray
    mean_not_activated: np.ndarray
    test: str
    tail: str
    alpha: float
    permutations: int
    min_n: int
    max_null: np.ndarray
    threshold: float

    @property
    def n_tested(self) -> int:
        return int(np.isfinite(self.stat).sum())

    def rows(self, fibres: FibreMatrix | None = None) -> list[dict[str, Any]]:
        """One dict per fibre for ``fibres.csv``: tract, hemisphere, streamline (with
        ``fibres``), n_activated, the means, stat, p_uncorrected, p_fwe, significant."""
        out = []
        name = "t" if self.test == "t" else "z"
        for j in range(len(self.stat)):
            row: dict[str, Any] = {}
            if fibres is not None:
                row.update(tract=fibres.tract_of(j), hemisphere=str(fibres.hemisphere[j]),
                           streamline=int(fibres.streamline[j]))
            else:
                row["fibre"] = j
            row.update({"n_activated": int(self.n_activated[j]),
                        "mean_outcome_activated": float(self.mean_activated[j]),
                        "mean_outcome_not_activated": float(self.mean_not_activated[j]),
                        name: float(self.stat[j]), "p_uncorrected": float(self.p_uncorrected[j]),
                        "p_fwe": float(self.p_fwe[j]), "significant": bool(self.significant[j])})
            out.append(row)
        return out


def _tail_values(stat: np.ndarray, tail: str) -> np.ndarray:
    return np.abs(stat) if tail == "two-sided" else (stat if tail == "greater" else -stat)


def fibre_filter(A: np.ndarray, y: np.ndarray, test: str = "t", min_n: int = 2, permutations: int = 1000,
                 alpha: float = 0.05, seed: int | None = 0, tail: str = "two-sided",
                 chunk_elements: int = CHUNK_ELEMENTS) -> FibreStats:
    """Per-fibre outcome statistic with max-statistic permutation FWE control.

    Parameters
    ----------
    A : ndarray of bool (N, F)
        Activation of each fibre by each unit (:attr:`FibreMatrix.activated`).
    y : ndarray (N,)
        Outcome per unit (any unit; binary outcomes coded 0/1). Covariates should be
        regressed out beforehand.
    test : {"t", "wilcoxon"}
        Welch's t or the Wilcoxon rank-sum z (normal approximation, tie-corrected).
    min_n : int
        Fibres activated by fewer than ``min_n`` units, or left alone by fewer than
        ``min_n``, are not tested (NaN); the t-test needs at least 2 either way.
    permutations : int
        Random permutations of the outcomes across units (0: statistics only).
    alpha : float
        FWE level for ``significant``.
    seed : int, optional
        Seed of the permutations.
    tail : {"two-sided", "greater", "less"}
        ``"greater"``: only fibres whose activation goes with a higher outcome count.
    chunk_elements : int
        Permutations x fibres computed at once (memory bound, ~8 bytes x 6 each).

    Returns
    -------
    FibreStats

    Raises
    ------
    VtaError
        Mismatched shapes, non-finite outcomes, a constant outcome, bad options.
    """
    check_test(test)
    if tail not in TAILS:
        raise VtaError(f"unknown tail {tail!r} (use {', '.join(TAILS)})")
    if not 0 < alpha < 1:
        raise VtaError(f"alpha must be in (0, 1), got {alpha}")
    if min_n < 1:
        raise VtaError(f"min_n must be >= 1, got {min_n}")
    A = np.asarray(A, dtype=bool)
    y = np.asarray(y, dtype=float).reshape(-1)
    if A.ndim != 2 or A.shape[0] != len(y):
        raise VtaError(f"fibre activation is {A.shape} but there are {len(y)} outcomes")
    if not np.all(np.isfinite(y)):
        raise VtaError("fibre filtering: the outcome has missing or non-finite values")
    if np.ptp(y) == 0:
        raise VtaError("fibre filtering: the outcome does not vary across units")
    N, F = A.shape
    n_act = A.sum(axis=0).astype(np.int64)
    eff_min = max(min_n, 2) if test == "t" else min_n
    tested = (n_act >= eff_min) & (N - n_act >= eff_min)
    cols = np.flatnonzero(tested)
    group = GroupTest(A[:, cols], test, eff_min)
    y0 = standardise(y)
    perms = permutation_matrix(N, permutations, seed)
    rows = np.vstack([y0[None, :], y0[perms]])
    stat = np.full(F, np.nan)
    exceed = np.zeros(len(cols))
    max_null = np.full(permutations, -np.inf)
    step = max(1, int(chunk_elements // max(len(cols), 1)))
    obs_tail = None
    for r0 in range(0, len(rows), step):
        block = rows[r0:r0 + step]
        chunk = group(block) if len(cols) else np.zeros((len(block), 0))
        tv = _tail_values(chunk, tail)
        if r0 == 0:
            stat[cols] = chunk[0]
            obs_tail = tv[0]
            tv, first = tv[1:], 1
        else:
            first = 0
        if len(cols) and len(tv):
            filled = np.where(np.isnan(tv), -np.inf, tv)
            max_null[r0 + first - 1:r0 + first - 1 + len(tv)] = filled.max(axis=1)
            exceed += at_least(filled, obs_tail[None, :]).sum(axis=0)
    p_unc = np.full(F, np.nan)
    p_fwe = np.full(F, np.nan)
    threshold = float("nan")
    if permutations > 0 and len(cols):
        ok = np.isfinite(obs_tail)
        p_unc[cols[ok]] = permutation_p(exceed[ok], permutations)
        p_fwe[cols[ok]] = fwe_p(obs_tail[ok], max_null)
        threshold = fwe_threshold(max_null, alpha)  # a fibre must exceed it: the next float up is the one to reach
        threshold = float(np.nextafter(threshold, np.inf)) if np.isfinite(threshold) else threshold
    significant = np.zeros(F, dtype=bool)
    significant[np.isfinite(p_fwe)] = p_fwe[np.isfinite(p_fwe)] <= alpha
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_act = (y @ A) / n_act
        mean_not = (y @ ~A) / (N - n_act)
    log.info("fibre filtering (%s, %s): %d of %d fibres tested, %d significant at FWE %.3g (%d permutations)",
             test, tail, len(cols), F, int(significant.sum()), alpha, permutations)
    return FibreStats(stat, p_fwe, p_unc, significant, n_act, mean_act, mean_not, test, tail, float(alpha),
                      int(permutations), int(min_n), max_null, threshold)


def fibre_score(A: np.ndarray, stat: np.ndarray, significant: np.ndarray | None = None) -> np.ndarray:
    """Per-unit fibre score: the mean statistic over the fibres the unit activates.

    Parameters
    ----------
    A : ndarray (N, F)
        Activation (bool) or any non-negative weights per unit and fibre.
    stat : ndarray (F,)
        Per-fibre statistic; NaN fibres are ignored.
    significant : ndarray of bool (F,), optional
        Only these fibres count.

    Returns
    -------
    ndarray (N,)
        ``sum_j A_ij stat_j / sum_j A_ij`` over the counted fibres (statistic units);
        0 for a unit that activates none of them.
    """
    A = np.asarray(A, dtype=float)
    stat = np.asarray(stat, dtype=float).reshape(-1)
    if A.ndim != 2 or A.shape[1] != len(stat):
        raise VtaError(f"fibre_score: activation {A.shape} does not match {len(stat)} fibre statistics")
    use = np.isfinite(stat)
    if significant is not None:
        use &= np.asarray(significant, dtype=bool)
    num = A[:, use] @ stat[use]
    den = A[:, use].sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


# ----------------------------------------------------------------------------- coordinates


def tract_streamlines(folders: Sequence[Path | str], tract: str) -> dict[str, list[np.ndarray]]:
    """Streamline coordinates (world mm) of ``tract`` per hemisphere, for the fibre figure.

    Read from the configuration recorded in each folder's ``summary.json``
    (``config["tracts"]``): a tract file of that name (with its offset), or the
    synthetic default ALIC bundle (``ALIC_bundle``, regenerated as ``vta run`` made it).
    The first folder of each hemisphere that names the tract is used. ``tract`` may
    join per-side tracts with ``"+"`` (:attr:`FibreMatrix.tract`): each folder then
    gives the one its configuration names.

    Returns
    -------
    dict
        ``{"R": [(n_i, 3) arrays], "L": [...]}`` for the hemispheres found (may be empty:
        then the figure cannot be drawn; the reason is logged).
    """
    names = [n for n in tract.split("+") if n]
    out: dict[str, list[np.ndarray]] = {}
    for folder in map(Path, folders):
        side = _hemisphere_of(folder)
        if side in out:
            continue
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.debug("%s: no readable summary.json (%s)", folder, exc)
            continue
        cfg = summary.get("config") or {}
        tcfg = cfg.get("tracts") or {}
        for name in names:
            try:
                lines = _configured_streamlines(tcfg, cfg, name, side)
            except VtaError as exc:
                log.warning("streamlines of %s for %s not available: %s", name, folder.name, exc)
                continue
            if lines is not None:
                out[side] = lines
                break
    if not out:
        log.warning("no summary.json names the coordinates of tract %s; the fibre figure needs them", tract)
    return out


def _configured_streamlines(tcfg: dict, cfg: dict, tract: str, side: str) -> list[np.ndarray] | None:
    from ..activation.tracts import load_tract

    for f in tcfg.get("files") or []:
        name = f.get("name") or Path(f["path"]).stem
        if name == tract:
            tract_file = load_tract(f["path"], name=name, offset_mm=f.get("offset_mm"))
            return [np.asarray(s, float) for s in tract_file.streamlines]
    if tract == "ALIC_bundle" and str(tcfg.get("default_bundle") or "").upper() == "ALIC":
        anatomy = cfg.get("anatomy") or {}
        atlas = str(anatomy.get("atlas") or "default")
        if not side:
            tip = (cfg.get("lead") or {}).get("tip_mm") or [0.0]
            side = "R" if float(tip[0]) >= 0 else "L"
        return list(_default_bundle(atlas, side))
    return None


@functools.lru_cache(maxsize=4)
def _default_bundle(atlas: str, side: str) -> tuple[np.ndarray, ...]:
    from ..activation.tracts import default_alic_bundle
    from ..anatomy.default import default_anatomy

    anatomy = default_anatomy("aal3" if atlas == "default-aal3" else "hcpex")
    tract = default_alic_bundle(anatomy, side=side, n_fibres=200, seed=0, name="ALIC_bundle")
    return tuple(np.asarray(s, float) for s in tract.streamlines)
