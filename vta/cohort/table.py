"""Reading a finished batch folder into a cohort: analysis units, outcome, covariates.

``vta group`` works on the outputs of ``vta batch`` (:mod:`vta.studies.batch`), never
recomputing them: ``BATCH/group.csv`` lists every subject-hemisphere with its status
and the manifest's subject variables (outcomes, covariates); the images are in
``BATCH/subjects/<subject>_<hemi>/``. Variables may also come from ``--outcomes
FILE.csv`` (columns ``subject``, optionally ``hemisphere``, then variables); a non-empty
cell there overrides or extends ``group.csv``'s value. Any numeric ``group.csv``
column (``vta_volume_mm3``, ``impedance_ohm``...) may serve as a covariate too.

Units
-----
``unit="subject"`` (default): one unit per patient, whose image is the union of its
hemispheres' VTAs (voxel-wise maximum of ``|E|``); the outcome must be the same on the
R and L rows (or given on one of them). A patient with a failed hemisphere is dropped.
``unit="hemisphere"``: one unit per subject-hemisphere (``"<subject>_<hemi>"``), e.g.
for hemibody scores. With ``mirror``, left hemispheres are mirrored onto the right.

Values
------
Empty cells and ``NA``, ``NaN``, ``n/a``, ``none``, ``null``, ``-``, ``?`` are missing:
the unit is dropped from this analysis and listed (:attr:`Cohort.dropped`). An outcome
whose values are all 0/1, or yes/no/true/false (any case), is binary (coded 1/0);
covariates may use the same words. Anything else that is not a number is an error.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import VtaError, did_you_mean
from ..studies.batch import GROUP_CSV, SUBJECTS_DIR
from .voxels import VTA_NIFTI

__all__ = ["Cohort", "MIN_UNITS", "load_cohort", "parse_value"]

log = logging.getLogger(__name__)

#: Fewest usable units for any analysis.
MIN_UNITS = 4
#: A binary outcome whose smaller group has fewer units than this (or under 20 %) is warned about.
_BALANCE_MIN = 3
_MISSING = {"", "na", "nan", "n/a", "none", "null", "-", "?"}
_TRUE = {"yes", "true", "y"}
_FALSE = {"no", "false", "n"}
_FIXED = ("subject", "hemisphere", "status")


@dataclass(frozen=True)
class Cohort:
    """A batch folder read for one outcome.

    Attributes
    ----------
    batch_dir : Path
    outcome : str
        The outcome column.
    subjects : list of str
        The analysis units in ``group.csv`` order: subject ids (``unit="subject"``) or
        ``"<subject>_<hemi>"`` (``unit="hemisphere"``).
    folders : list of list of Path
        Per unit, its subject-hemisphere folders (``BATCH/subjects/<subject>_<hemi>``; 1 or 2).
    y : ndarray of float64, shape (N,)
        The outcome (binary outcomes coded 0/1), in the column's own units.
    binary : bool
    covariates : ndarray of float64, shape (N, k)
    covariate_names : list of str
    dropped : list of (str, str)
        ``(unit, reason)`` for every unit left out of this analysis.
    mirror : bool
        Left hemispheres are mirrored onto the right (``x -> -x``).
    unit : {"subject", "hemisphere"}
    warnings : list of str
        Problems that do not stop the analysis (unbalanced binary groups, few units).
    """

    batch_dir: Path
    outcome: str
    subjects: list[str]
    folders: list[list[Path]]
    y: np.ndarray
    binary: bool
    covariates: np.ndarray
    covariate_names: list[str]
    dropped: list[tuple[str, str]]
    mirror: bool
    unit: str = "subject"
    warnings: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of units N."""
        return len(self.subjects)


def parse_value(text: str | None) -> float | None:
    """A cell as a number: None when missing; yes/true -> 1, no/false -> 0.

    Raises
    ------
    ValueError
        When the cell is neither missing, a finite number nor a yes/no word.
    """
    cell = "" if text is None else str(text).strip()
    low = cell.lower()
    if low in _MISSING:
        return None
    if low in _TRUE:
        return 1.0
    if low in _FALSE:
        return 0.0
    value = float(cell)  # ValueError for text
    if not math.isfinite(value):
        raise ValueError(cell)
    return value


def _is_word(text: str | None) -> bool:
    return text is not None and str(text).strip().lower() in (_TRUE | _FALSE)


def read_csv_table(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV table (``group.csv``, an outcomes file, ``tracts.csv``).

    Blank lines and lines starting with ``#`` are skipped; names and cells are stripped
    (a missing cell is ``""``).

    Parameters
    ----------
    path : Path
    what : str
        What the file is, for the messages (``"outcomes file"``).

    Returns
    -------
    header : list of str
    rows : list of dict
        One ``{column: cell}`` per data row.

    Raises
    ------
    VtaError
        One line naming ``what`` and ``path``: not found, unreadable, empty, not CSV, or
        a column named twice.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise VtaError(f"{what} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VtaError(f"{what} {path}: cannot be read ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise VtaError(f"{what} {path}: empty")
    reader = csv.DictReader(lines)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise VtaError(f"{what} {path}: column '{dup[0]}' appears twice")
        rows = [{(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in r.items()}
                for r in reader]
    except csv.Error as exc:
        raise VtaError(f"{what} {path}: not a CSV table ({exc})") from None
    return header, rows


def _read_outcomes(path: Path) -> tuple[list[str], dict[tuple[str, str | None], dict[str, str]]]:
    """``--outcomes FILE.csv``: variable names and values by (subject, hemisphere or None)."""
    header, rows = read_csv_table(path, "outcomes file")
    if "subject" not in header:
        raise VtaError(f"outcomes file {path}: no 'subject' column")
    by_hemi = "hemisphere" in header
    names = [h for h in header if h not in ("subject", "hemisphere")]
    if not names:
        raise VtaError(f"outcomes file {path}: no variable columns besides subject{'/hemisphere' * by_hemi}")
    out: dict[tuple[str, str | None], dict[str, str]] = {}
    for i, row in enumerate(rows, start=2):
        hemi = _hemi(row.get("hemisphere", "")) if by_hemi else None
        if by_hemi and hemi is None:
            raise VtaError(f"outcomes file {path} line {i}: hemisphere must be R or L, got {row.get('hemisphere')!r}")
        key = (row["subject"], hemi)
        if not row["subject"]:
            raise VtaError(f"outcomes file {path} line {i}: empty subject")
        if key in out:
            raise VtaError(f"outcomes file {path} line {i}: subject {row['subject']}"
                           f"{' ' + hemi if hemi else ''} appears twice")
        out[key] = {n: row.get(n, "") for n in names}
    return names, out


def _hemi(text: str) -> str | None:
    return {"r": "R", "right": "R", "rh": "R", "l": "L", "left": "L", "lh": "L"}.get(str(text).strip().lower())


def load_cohort(batch_dir: str | Path, outcome: str, covariates: Sequence[str] = (),
                outcomes_csv: str | Path | None = None, unit: str = "subject", mirror: bool = False) -> Cohort:
    """Read a batch folder's ``group.csv`` (and ``--outcomes``) for one outcome.

    Parameters
    ----------
    batch_dir : str or Path
        A ``vta batch`` output folder.
    outcome : str
        The outcome column (continuous, or binary: 0/1, yes/no, true/false).
    covariates : sequence of str
        Numeric columns to regress out of the outcome (age, disease duration...).
    outcomes_csv : str or Path, optional
        A CSV with ``subject`` (and optionally ``hemisphere``) and variable columns.
    unit : {"subject", "hemisphere"}
        The analysis unit (see the module docstring).
    mirror : bool
        Mirror left hemispheres onto the right.

    Returns
    -------
    Cohort

    Raises
    ------
    VtaError
        One line naming the file or column: no ``group.csv``, an unknown outcome or
        covariate column (with suggestions), a value that is not a number, an outcome
        that differs between a subject's R and L rows (``unit="subject"``), fewer than
        :data:`MIN_UNITS` usable units, or an outcome or covariate that does not vary.
    """
    batch = Path(batch_dir)
    if unit not in ("subject", "hemisphere"):
        raise VtaError(f"--unit must be 'subject' or 'hemisphere', got {unit!r}")
    if not batch.is_dir():
        raise VtaError(f"batch folder {batch} not found")
    group_path = batch / GROUP_CSV
    if not group_path.is_file():
        raise VtaError(f"{group_path} not found: give the output folder of a finished vta batch")
    header, rows = read_csv_table(group_path, "group table")
    for col in _FIXED:
        if col not in header:
            raise VtaError(f"group table {group_path}: no '{col}' column (not written by vta batch?)")
    extra_names: list[str] = []
    extra: dict[tuple[str, str | None], dict[str, str]] = {}
    if outcomes_csv is not None:
        extra_names, extra = _read_outcomes(Path(outcomes_csv))
        known = {(r["subject"], _hemi(r["hemisphere"])) for r in rows} | {(r["subject"], None) for r in rows}
        unknown = sorted({s if h is None else f"{s} {h}" for s, h in extra if (s, h) not in known})
        if unknown:
            log.warning("outcomes file %s: %d subject(s) not in the batch are ignored: %s", outcomes_csv,
                        len(unknown), ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""))
    columns = [c for c in header if c not in _FIXED and c != "error"] + [c for c in extra_names if c not in header]
    where = f"{group_path}" + (f" or {outcomes_csv}" if outcomes_csv is not None else "")
    covariates = list(dict.fromkeys(covariates))
    for name, what in [(outcome, "outcome")] + [(c, "covariate") for c in covariates]:
        if name not in columns:
            hint = did_you_mean(name, columns) or (f"; variables: {', '.join(columns[-8:])}" if columns else "")
            raise VtaError(f"{what} column '{name}' is not in {where}{hint}")
    if outcome in covariates:
        raise VtaError(f"'{outcome}' is the outcome and cannot be a covariate too")

    def cell(row: dict, name: str) -> str:
        hemi = _hemi(row["hemisphere"])
        for key in ((row["subject"], hemi), (row["subject"], None)):
            value = extra.get(key, {}).get(name, "")
            if value.strip():
                return value
        return row.get(name, "")

    def number(row: dict, name: str, what: str) -> float | None:
        text = cell(row, name)
        try:
            return parse_value(text)
        except ValueError:
            raise VtaError(f"{where}: subject {row['subject']} {row['hemisphere']}: {what} '{name}' = {text!r} is "
                           "not a number (or yes/no, true/false)") from None

    # the units and their rows, in group.csv order
    groups: dict[str, list[dict]] = {}
    for row in rows:
        hemi = _hemi(row["hemisphere"]) or row["hemisphere"]
        key = row["subject"] if unit == "subject" else f"{row['subject']}_{hemi}"
        groups.setdefault(key, []).append(row)

    names, folders, ys, covs, dropped = [], [], [], [], []
    raw_outcome = []
    for key, unit_rows in groups.items():
        bad = [r for r in unit_rows if r["status"] != "ok"]
        if bad:
            r = bad[0]
            err = f": {r['error']}" if r.get("error") else ""
            reason = f"status {r['status'] or 'empty'}{err}"
            dropped.append((key, reason if unit == "hemisphere" else f"hemisphere {r['hemisphere']} {reason}"))
            continue
        values = {_hemi(r["hemisphere"]) or r["hemisphere"]: number(r, outcome, "outcome") for r in unit_rows}
        given = {h: v for h, v in values.items() if v is not None}
        if len(set(given.values())) > 1:
            pairs = " vs ".join(f"{h} {v:g}" for h, v in sorted(given.items()))
            raise VtaError(f"{where}: subject {key} has different '{outcome}' values on its rows ({pairs}); "
                           "give one value per subject, or use --unit hemisphere")
        if not given:
            dropped.append((key, f"outcome '{outcome}' missing"))
            continue
        cov_values, missing_cov = [], None
        for c in covariates:
            cv = {v for r in unit_rows if (v := number(r, c, "covariate")) is not None}
            if len(cv) > 1:
                raise VtaError(f"{where}: subject {key} has different '{c}' values on its rows; "
                               "give one value per subject, or use --unit hemisphere")
            if not cv:
                missing_cov = c
                break
            cov_values.append(cv.pop())
        if missing_cov is not None:
            dropped.append((key, f"covariate '{missing_cov}' missing"))
            continue
        unit_folders = [batch / SUBJECTS_DIR / f"{r['subject']}_{_hemi(r['hemisphere']) or r['hemisphere']}"
                        for r in unit_rows]
        absent = [f for f in unit_folders if not (f / VTA_NIFTI).is_file()]
        if absent:
            dropped.append((key, f"{absent[0].relative_to(batch)}/{VTA_NIFTI} missing"))
            continue
        names.append(key)
        folders.append(unit_folders)
        ys.append(next(iter(given.values())))
        raw_outcome.extend(cell(r, outcome) for r in unit_rows)
        covs.append(cov_values)

    y = np.asarray(ys, dtype=np.float64)
    Z = np.asarray(covs, dtype=np.float64).reshape(len(ys), len(covariates))
    n = len(y)
    if dropped:
        log.info("%d unit(s) dropped from the analysis of '%s': %s", len(dropped), outcome,
                 "; ".join(f"{u} ({r})" for u, r in dropped[:10]) + (" ..." if len(dropped) > 10 else ""))
    if n < MIN_UNITS:
        raise VtaError(f"only {n} usable unit{'s' * (n != 1)} for outcome '{outcome}' in {batch} (need at least "
                       f"{MIN_UNITS}); {len(dropped)} dropped" + (f", e.g. {dropped[0][0]}: {dropped[0][1]}"
                                                                   if dropped else ""))
    if np.ptp(y) == 0:
        raise VtaError(f"outcome '{outcome}' does not vary: all {n} units have {y[0]:g}")
    for j, c in enumerate(covariates):
        if np.ptp(Z[:, j]) == 0:
            raise VtaError(f"covariate '{c}' does not vary: all {n} units have {Z[0, j]:g}")
    binary = bool(np.all(np.isin(y, (0.0, 1.0))))
    words = [t for t in raw_outcome if t.strip()]
    if any(_is_word(t) for t in words) and not binary:
        raise VtaError(f"outcome '{outcome}' mixes yes/no words with other numbers; code it 0/1 or as a number")
    warnings: list[str] = []
    if binary:
        n1 = int(y.sum())
        small = min(n1, n - n1)
        if small < _BALANCE_MIN or small < 0.2 * n:
            warnings.append(f"unbalanced binary outcome '{outcome}': {n1} of {n} units are 1 (yes/true)")
    if n < 10:
        warnings.append(f"only {n} units: voxel-wise and fibre statistics have little power")
    k = len(covariates)
    if k and n - k - 1 < 3:
        raise VtaError(f"{k} covariate{'s' * (k > 1)} for {n} units leave{'s' * (k == 1)} too few degrees of "
                       "freedom (need at least covariates + 4 units)")
    return Cohort(batch, outcome, names, folders, y, binary, Z, list(covariates), dropped, bool(mirror),
                  unit, warnings)
