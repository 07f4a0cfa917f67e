"""``vta group``: outcome analysis of a finished batch, written atomically to one folder.

:func:`run_group` reads a batch folder (:func:`vta.cohort.table.load_cohort`), puts
every unit's VTA (and ``|E|``) on the common MNI grid (:class:`vta.cohort.voxels.VoxelData`),
computes the voxel-wise sweet-spot maps with FWE control
(:func:`vta.cohort.voxel_stats.sweet_spot`), filters the fibres of a tract when the
subjects have ``tracts.csv`` (:mod:`vta.cohort.fibres`), predicts each unit's outcome
by cross-validation from its sweet-spot overlap and activated-fibre score
(:mod:`vta.cohort.predict`), and writes::

    OUT/n_map.nii.gz                 units whose VTA covers each voxel (int32)
    OUT/mean_outcome.nii.gz          mean outcome of the covering units (outcome units)
    OUT/t_map.nii.gz | z_map.nii.gz  Welch t, or rank-sum z with --test wilcoxon (NaN: not tested)
    OUT/p_uncorrected.nii.gz         voxel-wise permutation p (two-sided)
    OUT/p_fwe.nii.gz                 max-statistic FWE-corrected p
    OUT/sweet_spot_fwe.nii.gz        p_FWE <= alpha and statistic > 0 (uint8)
    OUT/sour_spot_fwe.nii.gz         p_FWE <= alpha and statistic < 0 (uint8)
    OUT/*_efield.nii.gz              the same from |E| (mean_outcome_efield: |E|-weighted;
                                     t_map_efield: correlation as t; r_map_efield: r)
    OUT/units.csv                    the units analysed: outcome, covariates, residual, folders
    OUT/dropped.csv                  unit, reason
    OUT/fibres.csv                   per fibre: n_activated, means, statistic, p, p_FWE
    OUT/prediction.csv               features, unit, observed, predicted, score, fold
    OUT/sweet_spot.png, sweet_spot_efield.png, prediction_*.png, fibres.png
    OUT/report.md, report.html       the short report
    OUT/group_summary.json           everything above as numbers, and "warnings"

All NIfTI maps are on the common grid (RAS, ``spacing_mm`` voxels, MNI mm, sform/qform
code 4). The folder (default ``BATCH/group_<outcome>``) is written as one transaction
(:class:`vta.io.OutputTransaction`): after a failure or Ctrl-C it holds the previous
complete run or nothing. Warnings (few units, nothing tested, unbalanced binary groups,
a skipped part) are logged and listed in ``group_summary.json`` (``"warnings"``).

Dask: with ``scheduler`` (an address) or ``workers`` (a LocalCluster of that many
single-threaded worker processes) the voxel chunks run as tasks; the maps are the same
as without. Code that passes ``workers`` must run under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import VtaError
from ..io import OutputTransaction, atomic_write_bytes, nifti_bytes, to_jsonable, write_table
from .report import slice_figure, write_report
from .table import Cohort, load_cohort
from .stats import residualise
from .voxel_stats import VoxelMaps, check_options, sweet_spot
from .voxels import DEFAULT_SPACING_MM, VoxelData

__all__ = ["GroupResult", "run_group", "SUMMARY_JSON"]

log = logging.getLogger(__name__)

SUMMARY_JSON = "group_summary.json"
CONNECT_TIMEOUT_S = 30.0  # s, to reach an existing scheduler
WORKER_TIMEOUT_S = 60.0   # s, to wait for its first worker
_TOP_FIBRES = 10


@dataclass
class GroupResult:
    """What :func:`run_group` computed and wrote.

    Attributes
    ----------
    out_dir : Path
    cohort : Cohort
    maps : dict
        ``"vta"`` (and ``"efield"``) -> :class:`~vta.cohort.voxel_stats.VoxelMaps`.
    fibres : FibreStats or None
    fibre_matrix : FibreMatrix or None
    predictions : dict
        ``"voxels"`` / ``"fibres"`` -> :class:`~vta.cohort.predict.Prediction`.
    summary : dict
        The content of ``group_summary.json``.
    warnings : list of str
    """

    out_dir: Path
    cohort: Cohort
    maps: dict[str, VoxelMaps]
    fibres: Any = None
    fibre_matrix: Any = None
    predictions: dict[str, Any] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        """One line for the terminal."""
        c = self.cohort
        parts = [f"{c.n} units" + (f" ({len(c.dropped)} dropped)" if c.dropped else "")]
        m = self.maps.get("vta")
        if m is not None:
            peak = m.peaks(1)
            text = f"sweet spot: {int(m.sweet_spot.sum())} voxels p_FWE<={m.alpha:g} of {m.n_tested} tested"
            if peak:
                p = peak[0]
                text += f", peak {m.stat_name}={p['stat']:.2f} at ({p['x_mm']:g}, {p['y_mm']:g}, {p['z_mm']:g}) mm"
            parts.append(text)
        if self.fibres is not None:
            parts.append(f"fibres: {int(np.sum(self.fibres.significant))} of {len(self.fibres.stat)} significant")
        for name, pred in self.predictions.items():
            text = f"prediction ({name}): r={pred.r:.2f} (p={pred.r_p_perm:.3g})"
            if pred.auc is not None:
                text += f", AUC={pred.auc:.2f} (p={pred.auc_p_perm:.3g})"
            parts.append(text)
        if self.warnings:
            parts.append(f"{len(self.warnings)} warning(s)")
        return "; ".join(parts)


class _Warnings(list):
    """Warnings of a run: logged when added, kept for the summary."""

    def add(self, message: str) -> None:
        if message not in self:  # the same problem of the VTA and E-field maps is said once
            log.warning("%s", message)
            self.append(message)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler``, or to a LocalCluster of ``workers``
    single-threaded processes on 127.0.0.1; ``None`` when neither is given. Closed on exit.

    Raises
    ------
    VtaError
        Dask missing, an unreachable scheduler, one without workers, or ``workers < 1``.
    """
    if scheduler is None and workers is None:
        yield None
        return
    if scheduler is not None and workers is not None:
        raise VtaError("give either --scheduler or --workers, not both")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise VtaError("vta group on Dask needs distributed: pip install 'vta[batch]'") from None
    cluster = client = None
    try:
        if scheduler is not None:
            from ..studies.batch import connect_scheduler

            client = connect_scheduler(scheduler, WORKER_TIMEOUT_S, CONNECT_TIMEOUT_S)
        else:
            if int(workers) < 1:
                raise VtaError(f"--workers must be >= 1, got {workers}")
            cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


#: with ``folds="auto"``: leave-one-out up to this many units, 10-fold above (the
#: leave-one-out cost grows as N^2 x permutations x features: 25 s for 1000 units and
#: 47 voxels on 2 cores)
AUTO_LOO_MAX_UNITS = 200


def default_fibre_min_n(n_units: int) -> int:
    """Default fewest units activating (and not activating) a tested fibre:
    ``max(5, ceil(0.1 N))``, at most N // 2. Fibres activated by two or three units make
    Welch t heavy-tailed and set the permutation maximum; on synthetic 100-patient
    cohorts with planted fibres, 5-10 found them with precision 0.84 and recall 0.94,
    the voxel default (20 %) with recall 0.41 (docs/validation.md)."""
    return min(max(5, math.ceil(0.1 * int(n_units))), max(2, int(n_units) // 2))


def _check_folds(folds: str | int, n: int) -> str | int:
    if isinstance(folds, str) and folds.strip().lower() == "auto":
        return "loo" if n <= AUTO_LOO_MAX_UNITS else min(10, n)
    if isinstance(folds, str) and folds.strip().lower() == "loo":
        return "loo"
    try:
        k = int(folds)
    except (TypeError, ValueError):
        raise VtaError(f"--folds must be 'loo' or a number of folds, got {folds!r}") from None
    if not 2 <= k <= n:
        raise VtaError(f"--folds must be between 2 and the number of units ({n}), got {k}")
    return k


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "outcome"


def run_group(batch_dir: str | Path, outcome: str, *, covariates: Sequence[str] = (),
              outcomes_csv: str | Path | None = None, unit: str = "subject", mirror: bool = False,
              test: str = "t", min_n: int | None = None, permutations: int = 1000, alpha: float = 0.05,
              folds: str | int = "auto", tract: str | None = None, spacing_mm: float = DEFAULT_SPACING_MM,
              fibre_min_n: int | None = None,
              seed: int = 0, scheduler: str | None = None, workers: int | None = None,
              out_dir: str | Path | None = None, efield: bool = True, fibres: bool = True,
              prediction: bool = True, figures: bool = True, chunk_voxels: int | None = None,
              client: Any = None) -> GroupResult:
    """Outcome analysis of a finished batch (see the module docstring for the outputs).

    Parameters
    ----------
    batch_dir : str or Path
        A ``vta batch`` output folder (``group.csv``, ``subjects/``).
    outcome : str
        The outcome column (``group.csv`` or ``outcomes_csv``); higher = better for the
        sign of the maps ("sweet" = positive statistic).
    covariates : sequence of str
        Columns regressed out of the outcome before the voxel and fibre statistics.
    outcomes_csv : str or Path, optional
        Extra or overriding variables (``subject[, hemisphere]`` + columns).
    unit : {"subject", "hemisphere"}
        Analysis unit (:func:`~vta.cohort.table.load_cohort`).
    mirror : bool
        Mirror left hemispheres onto the right.
    test : {"t", "wilcoxon"}
        Welch t / Pearson, or rank-sum z / Spearman.
    min_n : int, optional
        Fewest units covering a tested voxel; default ``max(3, ceil(0.2 N))``
        (:func:`~vta.cohort.voxel_stats.default_min_n`). When given, also the fibres'.
    fibre_min_n : int, optional
        Fewest units activating (and not activating) a tested fibre; default ``min_n``
        when that is given, else :func:`default_fibre_min_n` (``max(5, ceil(0.1 N))``).
    permutations : int
        Permutations for every FWE and prediction p-value.
    alpha : float
        FWE level.
    folds : "auto", "loo" or int
        Cross-validation folds; ``"auto"``: leave-one-out up to
        :data:`AUTO_LOO_MAX_UNITS` units, 10-fold above.
    tract : str, optional
        The tract of ``tracts.csv`` to filter (default: the only one).
    spacing_mm : float
        Voxel size of the common grid (mm).
    seed : int
        Seed of every permutation and fold split.
    scheduler, workers
        Dask: an existing scheduler's address, or the size of a LocalCluster (see
        :func:`dask_client`). ``client`` passes an existing ``distributed.Client``.
    out_dir : str or Path, optional
        Output folder; default ``BATCH/group_<outcome>``.
    efield, fibres, prediction, figures : bool
        Parts to compute (all by default; a part without its input is skipped with a note).
    chunk_voxels : int, optional
        Voxels per statistics chunk (default: automatic, ~100 MB per chunk).

    Returns
    -------
    GroupResult

    Raises
    ------
    VtaError
        Bad input (see :func:`~vta.cohort.table.load_cohort`, :func:`~vta.cohort.voxel_stats.sweet_spot`),
        an unreachable scheduler, an output folder that cannot be written.
    """
    from .. import __version__

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    cohort = load_cohort(batch_dir, outcome, covariates, outcomes_csv, unit, mirror)
    folds = _check_folds(folds, cohort.n)
    given_min_n = min_n
    min_n = check_options(cohort.n, test, min_n, permutations, alpha)
    if fibre_min_n is None:
        fibre_min_n = given_min_n if given_min_n is not None else default_fibre_min_n(cohort.n)
    elif int(fibre_min_n) < 1:
        raise VtaError(f"--fibre-min-n must be >= 1, got {fibre_min_n}")
    fibre_min_n = int(fibre_min_n)
    if chunk_voxels is not None and int(chunk_voxels) < 1:
        raise VtaError(f"--chunk-voxels must be >= 1, got {chunk_voxels}")
    out = Path(out_dir) if out_dir is not None else Path(batch_dir) / f"group_{_safe_name(outcome)}"
    if out.exists() and not out.is_dir():
        raise VtaError(f"output path {out} exists and is not a folder")
    warnings = _Warnings()
    for w in cohort.warnings:
        warnings.add(w)
    log.info("%d units for '%s' (%s), %d dropped; min N %d, %d permutations", cohort.n, outcome,
             "binary" if cohort.binary else "continuous", len(cohort.dropped), min_n, permutations)
    y_test = residualise(cohort.y, cohort.covariates)

    t = time.perf_counter()
    data = VoxelData.from_cohort(cohort, spacing_mm)
    timings["read_vta"] = time.perf_counter() - t
    maps: dict[str, VoxelMaps] = {}
    skipped: dict[str, str] = {}
    common = dict(test=test, min_n=min_n, permutations=int(permutations), alpha=float(alpha), seed=int(seed),
                  covariates=cohort.covariates, covariate_names=cohort.covariate_names, chunk_voxels=chunk_voxels)
    with (contextlib.nullcontext(client) if client is not None else dask_client(scheduler, workers)) as dclient:
        t = time.perf_counter()
        maps["vta"] = sweet_spot(data, cohort.y, "vta", client=dclient, **common)
        timings["voxel_stats_vta"] = time.perf_counter() - t
        if efield:
            missing = data.missing_efield()
            if missing:
                skipped["efield"] = f"{missing[0].parent.name}/{missing[0].name} missing" + (
                    f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                warnings.add(f"E-field maps skipped: {skipped['efield']}")
            else:
                t = time.perf_counter()
                maps["efield"] = sweet_spot(data, cohort.y, "efield", client=dclient, **common)
                timings["voxel_stats_efield"] = time.perf_counter() - t
        else:
            skipped["efield"] = "not requested"
    for m in maps.values():
        for w in m.warnings:
            warnings.add(w)
    if maps["vta"].n_tested and maps["vta"].n_significant == 0:
        log.info("no voxel survives FWE correction at alpha %g", alpha)

    fibre_stats = fibre_matrix = None
    fibre_skip = "not requested"
    if fibres:
        t = time.perf_counter()
        fibre_matrix, fibre_stats, fibre_skip = _fibres(cohort, y_test, tract, test, fibre_min_n, permutations,
                                                        alpha, seed, warnings)
        timings["fibres"] = time.perf_counter() - t

    predictions: dict[str, Any] = {}
    pred_skip: dict[str, str] = {}
    if prediction:
        t = time.perf_counter()
        predictions, pred_skip = _predictions(data, cohort, fibre_matrix, folds, test, min_n, fibre_min_n,
                                              permutations, seed, warnings)
        timings["prediction"] = time.perf_counter() - t
    else:
        pred_skip = {"voxels": "not requested"}

    result = GroupResult(out, cohort, maps, fibre_stats, fibre_matrix, predictions, {}, warnings)
    summary = _write_outputs(result, data, y_test, dict(
        test=test, min_n=min_n, fibre_min_n=fibre_min_n, permutations=int(permutations), alpha=float(alpha),
        seed=int(seed), folds=folds, tract=tract or (fibre_matrix.tract if fibre_matrix is not None else None),
        spacing_mm=float(spacing_mm), unit=unit, mirror=bool(mirror),
        dask=scheduler or (f"LocalCluster({workers} workers)" if workers else ("client" if client else None))),
        skipped, fibre_skip, pred_skip, figures, __version__, timings, t0)
    result.summary = summary
    log.info("%s", result.summary_line())
    return result


def _fibres(cohort: Cohort, y_test: np.ndarray, tract: str | None, test: str, min_n: int, permutations: int,
            alpha: float, seed: int, warnings: _Warnings) -> tuple[Any, Any, str]:
    """``(FibreMatrix or None, FibreStats or None, why skipped)``."""
    try:
        from .fibres import fibre_filter, load_fibre_activation
    except ImportError as exc:  # pragma: no cover - part of the package
        warnings.add(f"fibre filtering unavailable: {exc}")
        return None, None, f"unavailable ({exc})"
    try:
        matrix = load_fibre_activation(cohort, tract)
    except VtaError as exc:
        if tract is not None:  # asked for: an error; by default (several tracts...) the rest stands
            raise
        warnings.add(f"fibre filtering skipped: {exc}")
        return None, None, str(exc)
    if matrix is None:
        return None, None, "the subjects have no tracts.csv (the batch ran without [tracts])"
    if matrix.activated.shape[1] == 0:
        warnings.add(f"tract {matrix.tract}: no fibre was simulated near any lead; fibre filtering skipped")
        return matrix, None, "no fibres"
    stats = fibre_filter(matrix.activated, y_test, test=test, min_n=min_n, permutations=int(permutations),
                         alpha=float(alpha), seed=int(seed))
    if stats.n_tested == 0:
        warnings.add(f"tract {matrix.tract}: no fibre is activated in at least {min_n} and at most N - {min_n} "
                     "units; nothing was tested")
    return matrix, stats, ""


def _predictions(data: VoxelData, cohort: Cohort, fibre_matrix: Any, folds: str | int, test: str, min_n: int,
                 fibre_min_n: int, permutations: int, seed: int, warnings: _Warnings
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    from .predict import cross_validated_prediction

    out: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    features: dict[str, np.ndarray] = {}
    _, X = data.matrix("vta", min_n)
    if X.shape[1]:
        features["voxels"] = X
    else:
        skipped["voxels"] = "no voxel is covered by enough units"
    if fibre_matrix is not None and fibre_matrix.activated.shape[1]:
        features["fibres"] = fibre_matrix.activated
    for name, X in features.items():
        try:
            out[name] = cross_validated_prediction(X, cohort.y, cohort.binary, folds, test=test,
                                                   min_n=fibre_min_n if name == "fibres" else min_n,
                                                   permutations=int(permutations), seed=int(seed))
        except VtaError as exc:  # e.g. no feature usable in a training fold: the rest of the analysis stands
            skipped[name] = str(exc)
            warnings.add(f"prediction from {name} skipped: {exc}")
    return out, skipped


# ----------------------------------------------------------------------------- writing


def _nifti(tx: OutputTransaction, name: str, data: np.ndarray, affine: np.ndarray, written: list[str]) -> None:
    atomic_write_bytes(tx.path(name), nifti_bytes(data, affine, 4, compressed=True))
    written.append(name)


def _csv(tx: OutputTransaction, name: str, header: list[str], rows: list[list[Any]], written: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_bytes(tx.path(name), buf.getvalue().encode("utf-8"))
    written.append(name)


def _map_files(m: VoxelMaps, suffix: str) -> dict[str, tuple[np.ndarray, str]]:
    """File name -> (volume, what) of one kind's maps."""
    files = {
        f"mean_outcome{suffix}.nii.gz": (m.mean_map.astype(np.float32), "mean outcome"),
        f"{m.stat_name}_map{suffix}.nii.gz": (m.stat_map.astype(np.float32), "statistic"),
        f"p_uncorrected{suffix}.nii.gz": (m.p_map.astype(np.float32), "uncorrected p"),
        f"p_fwe{suffix}.nii.gz": (m.p_fwe_map.astype(np.float32), "FWE p"),
        f"sweet_spot_fwe{suffix}.nii.gz": (m.sweet_spot.astype(np.uint8), "significant, positive"),
        f"sour_spot_fwe{suffix}.nii.gz": (m.sour_spot.astype(np.uint8), "significant, negative"),
    }
    if m.r_map is not None:
        files[f"r_map{suffix}.nii.gz"] = (m.r_map.astype(np.float32), "correlation r")
    return files


def _describe_outcome(cohort: Cohort) -> str:
    y = cohort.y
    if cohort.binary:
        return f"{int(y.sum())} of {len(y)} units are 1 (yes/true)"
    return f"mean {y.mean():.4g}, SD {y.std(ddof=1):.4g}, range {y.min():.4g} to {y.max():.4g}"


def _map_summary(m: VoxelMaps, files: list[str], figure: str | None) -> dict[str, Any]:
    return {"stat_name": m.stat_name, "test": m.test, "n_tested": m.n_tested,
            "n_tested_mm3": m.n_tested * m.grid.spacing_mm ** 3, "n_significant": m.n_significant,
            "n_positive": int(m.sweet_spot.sum()), "n_negative": int(m.sour_spot.sum()),
            "sweet_spot_mm3": float(m.sweet_spot.sum() * m.grid.spacing_mm ** 3),
            "threshold": m.threshold, "peaks": m.peaks(5), "min_n": m.min_n, "seconds": m.seconds,
            "files": files, "figure": figure}


def _write_outputs(result: GroupResult, data: VoxelData, y_test: np.ndarray, params: dict, skipped: dict,
                   fibre_skip: str, pred_skip: dict, figures: bool, version: str, timings: dict,
                   t0: float) -> dict:
    cohort, maps = result.cohort, result.maps
    t_write = time.perf_counter()
    written: list[str] = []
    grid = data.grid
    with OutputTransaction(result.out_dir, kind="group") as tx:
        _nifti(tx, "n_map.nii.gz", data.n_map(), grid.affine, written)
        map_summaries: dict[str, Any] = {}
        for kind, m in maps.items():
            suffix = "" if kind == "vta" else "_efield"
            names = []
            for name, (volume, _) in _map_files(m, suffix).items():
                _nifti(tx, name, volume, grid.affine, names)
            written += names
            figure = None
            if figures and m.n_tested:
                figure = f"sweet_spot{suffix}.png"
                what = "binary VTAs" if kind == "vta" else "E-field magnitude"
                slice_figure(m, tx.path(figure), f"'{cohort.outcome}' vs {what}: {m.stat_name}-map", cohort.mirror)
                written.append(figure)
            map_summaries[kind] = _map_summary(m, names, figure)
        for kind, why in skipped.items():
            map_summaries.setdefault(kind, {"skipped": why})

        cov_cols = cohort.covariate_names
        _csv(tx, "units.csv", ["unit", cohort.outcome, *cov_cols, "outcome_residual", "folders"],
             [[u, f"{y:.10g}", *[f"{v:.10g}" for v in z], f"{r:.10g}", ";".join(f.name for f in fs)]
              for u, y, z, r, fs in zip(cohort.subjects, cohort.y, cohort.covariates, y_test, cohort.folders)],
             written)
        _csv(tx, "dropped.csv", ["unit", "reason"], [list(d) for d in cohort.dropped], written)

        fibre_summary: dict[str, Any] = {"skipped": fibre_skip} if result.fibres is None else {}
        if result.fibres is not None:
            fibre_summary = _fibre_summary(result, tx, figures, written)
        pred_summary: dict[str, Any] = {k: {"skipped": v} for k, v in pred_skip.items()}
        rows: list[dict] = []
        for name, pred in result.predictions.items():
            s = pred.summary()
            s["figure"] = None
            if figures:
                s["figure"] = _prediction_figure(result, pred, name, tx, written)
            pred_summary[name] = s
            rows += [{"features": name, **r} for r in pred.rows(cohort.subjects)]
        if rows:
            write_table(rows, tx.path("prediction.csv"))
            written.append("prediction.csv")

        timings["outputs"] = time.perf_counter() - t_write  # maps, tables, figures (before the report)
        timings["total"] = time.perf_counter() - t0
        summary = {
            "version": version, "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "batch_dir": str(cohort.batch_dir), "outcome": cohort.outcome,
            "cohort": {"n_units": cohort.n, "units": cohort.subjects, "binary": cohort.binary,
                       "outcome_description": _describe_outcome(cohort), "covariates": cohort.covariate_names,
                       "dropped": [{"unit": u, "reason": r} for u, r in cohort.dropped]},
            "parameters": params,
            "grid": {"shape": list(grid.shape), "affine": grid.affine.tolist(), "spacing_mm": grid.spacing_mm,
                     "space": "MNI (RAS, mm)", "support_voxels": int(len(data.support))},
            "maps": map_summaries, "fibres": fibre_summary, "prediction": pred_summary,
            "warnings": list(result.warnings), "timings_s": timings,
        }
        summary["outputs"] = sorted(written + ["report.md", "report.html", SUMMARY_JSON])
        write_report(summary, tx.path("report.md"), tx.path("report.html"))
        tx.write_json(SUMMARY_JSON, to_jsonable(summary))
    return summary


def _fibre_summary(result: GroupResult, tx: OutputTransaction, figures: bool, written: list[str]) -> dict[str, Any]:
    stats, matrix = result.fibres, result.fibre_matrix
    write_table(stats.rows(matrix), tx.path("fibres.csv"))
    written.append("fibres.csv")
    stat = np.asarray(stats.stat, dtype=float)
    order = [j for j in np.argsort(-np.abs(np.nan_to_num(stat, nan=0.0))) if np.isfinite(stat[j])][:_TOP_FIBRES]
    hemis = getattr(matrix, "hemisphere", None)
    top = [{"streamline": (f"{hemis[j]} " if hemis is not None else "") + str(int(matrix.streamline[j])),
            "n_activated": int(stats.n_activated[j]), "stat": float(stat[j]), "p_fwe": float(stats.p_fwe[j]),
            "significant": bool(stats.significant[j])} for j in order]
    figure = None
    if figures and stats.n_tested:
        figure = _fibre_figure(result, tx, written)
    return {"tract": matrix.tract, "n_fibres": int(len(stat)), "n_tested": int(stats.n_tested),
            "n_significant": int(np.sum(stats.significant)), "stat_name": "t" if stats.test == "t" else "z",
            "threshold": float(stats.threshold), "top": top, "figure": figure}


def _prediction_figure(result: GroupResult, pred: Any, name: str, tx: OutputTransaction,
                       written: list[str]) -> str | None:
    """The predicted-vs-observed figure (:func:`vta.cohort.figures.prediction_figure`)."""
    from .figures import prediction_figure

    what = "sweet-spot overlap" if name == "voxels" else "activated-fibre score"
    title = f"'{result.cohort.outcome}' predicted from the {what} ({pred.folds} cross-validation)"
    return _optional_figure(result, tx, written, f"prediction_{name}.png", f"prediction figure ({name})",
                            lambda path: prediction_figure(pred, path, outcome=result.cohort.outcome, title=title))


def _fibre_figure(result: GroupResult, tx: OutputTransaction, written: list[str]) -> str | None:
    """Fibres coloured by statistic (:func:`vta.cohort.figures.fibre_figure`); the streamline
    coordinates come from the tract that the subjects' configurations name."""
    from .figures import fibre_figure
    from .fibres import tract_streamlines

    matrix = result.fibre_matrix
    folders = [f for fs in result.cohort.folders for f in fs]
    streamlines = tract_streamlines(folders, matrix.tract)
    if not streamlines:
        result.warnings.add(f"fibre figure not drawn: no summary.json names the coordinates of tract {matrix.tract}")
        return None
    title = f"{matrix.tract}: fibres by '{result.cohort.outcome}' statistic"
    return _optional_figure(result, tx, written, "fibres.png", "fibre figure",
                            lambda path: fibre_figure(path, streamlines, matrix, result.fibres, title=title))


def _optional_figure(result: GroupResult, tx: OutputTransaction, written: list[str], fname: str, what: str,
                     draw: Callable[[Path], Any]) -> str | None:
    """``draw(path)`` of ``fname`` in the output folder; ``fname``, or None when it fails with
    a :class:`VtaError` (then a warning: "``what`` not drawn: ...", and the rest stands)."""
    try:
        draw(tx.path(fname))
    except VtaError as exc:
        result.warnings.add(f"{what} not drawn: {exc}")
        return None
    written.append(fname)
    return fname
