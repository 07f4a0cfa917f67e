"""Cohort manifests: one row per subject-hemisphere, expanded into run configurations.

A manifest (CSV or TOML) lists the subjects of a cohort; a template TOML (the
``vta run`` schema, see :mod:`vta.config`) gives everything the rows do not: anatomy,
tissue, solver, output, and default lead and stimulation settings. Each row becomes
one configuration = template + the row's values.

Columns (CSV) / keys (TOML ``[[subjects]]`` entries)
----------------------------------------------------
``subject`` (required)
    Subject id: letters, digits, ``.``, ``_``, ``-``. Outputs go to
    ``subjects/<subject>_<hemisphere>/``.
``hemisphere`` (required)
    ``R`` or ``L`` (also ``right``/``left``). One row = one lead.
``lead_model``
    Catalogue name or alias (``vta leads``); default: the template's ``lead.model``.
Placement (at most one of these; default: the template's placement)
    ``tip_mm`` (mm, MNI/world: ``"x;y;z"`` in CSV or three columns ``tip_x``, ``tip_y``,
    ``tip_z``; a list in TOML) with ``entry_mm`` (same forms, ``entry_x``...) or
    ``direction`` (``"x;y;z"``; without either, the template's direction/entry is kept);
    ``target`` (a preset such as ``NAc_R``; ``NAc`` takes the row's hemisphere);
    ``leaddbs_folder`` (a Lead-DBS patient folder holding
    ``reconstruction/*ea_reconstruction.mat`` or ``*desc-reconstruction.mat``; the side
    is the row's hemisphere; without ``lead_model`` the file's lead model is used).
``rotation_deg``
    Lead rotation (degrees).
``contacts``
    Active contacts: ``"0:-3;2:-3"`` (contact:amplitude, mA or V by ``mode``; a TOML
    table ``{0 = -3.0}`` in TOML manifests). Replaces the template's contacts.
``mode``, ``pulse_width_us``, ``frequency_hz``
    As ``[stimulation]`` (``"current"``/``"voltage"``, us, Hz).
Any column whose name contains a dot
    A per-row override of that template key, e.g. ``vta.threshold_V_per_mm`` or
    ``tissue.encapsulation_thickness_mm``; the cell is read as a TOML value (``0.15``,
    ``"fast"`` or ``fast``, ``[1, 2, 3]``, ``true``). In TOML manifests the same goes into
    an ``overrides`` table (deep-merged into the template).
Any other column: a subject variable
    Outcomes and covariates (``updrs_improvement``, ``abstinent``, ``age``...): kept
    verbatim as text in :attr:`SubjectSpec.variables`, copied into the batch's
    ``group.csv`` for ``vta group``, and never part of the configuration (so not of its
    hash: adding or editing an outcome re-runs nothing). A column that looks like a
    misspelt known column (``contact``, ``tip``, ``Subject``, ``model``), one named like
    a ``group.csv`` column that the batch fills (``status``, ``vta_volume_mm3``...), or
    one named like a template key without its section (``threshold_V_per_mm``: write
    ``vta.threshold_V_per_mm``) is refused as before. In TOML manifests subject variables
    go into a ``variables`` table of the entry (numbers, booleans or strings).

Lead-DBS export (``[output] leaddbs`` in the template, or an ``output.leaddbs`` column):
``true`` writes each subject's Lead-DBS stimulation folder into the row's own
``leaddbs_folder`` (a row without one fails with a clear error); a folder path (relative
to the template) writes into ``<path>/sub-<subject>/`` (the subject id as the manifest
gives it, ``sub-`` added unless it starts with it; that folder must exist, as in a
Lead-DBS dataset's ``derivatives/leaddbs``); ``false`` writes none. Both hemispheres of
a subject go into the same stimulation folder (``hemi-R``/``hemi-L`` files); see
:mod:`vta.leaddbs_export`.

Empty CSV cells mean "not given". Relative paths in the manifest (``leaddbs_folder``,
``template``) are relative to the manifest file; paths inside the template and in
overrides are relative to the template file.

A TOML manifest looks like::

    template = "template.toml"          # optional; --template overrides it
    [[subjects]]
    subject = "s01"
    hemisphere = "R"
    tip_mm = [10.0, 12.5, -8.0]
    entry_mm = [20.0, 25.0, 50.0]
    contacts = { 0 = -3.0 }
    [subjects.overrides]
    vta = { threshold_V_per_mm = 0.15 }
    [subjects.variables]
    abstinent = "yes"
    age = 41

Errors of the manifest as a whole (missing file or template, unknown or missing column,
no rows, duplicate subject + hemisphere) raise :class:`vta.errors.VtaError` naming the
file and line/entry. An error of one row (a malformed cell: a number that is not one, a
bad hemisphere or subject id, too many cells, an unknown key in a TOML entry) does not:
that row becomes a :class:`SubjectSpec` with ``error`` set, naming the line and column.
Errors of a row and those that need the configuration (unknown lead model, lead outside
the anatomy, a missing Lead-DBS file) are raised by :meth:`SubjectSpec.config`, per
subject, so a batch can record them and go on.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import read_toml
from ..errors import ConfigError, VtaError, did_you_mean
from ..leaddbs_export import patient_folder

__all__ = ["Manifest", "SubjectSpec", "load_manifest", "parse_contacts"]

log = logging.getLogger(__name__)

_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HEMISPHERES = {"r": "R", "right": "R", "rh": "R", "l": "L", "left": "L", "lh": "L"}
_VECTOR_COLUMNS = ("tip", "entry", "direction")
_SCALAR_COLUMNS = ("rotation_deg", "pulse_width_us", "frequency_hz")
_STRING_COLUMNS = ("lead_model", "target", "leaddbs_folder", "mode")
_KNOWN = (
    {"subject", "hemisphere", "contacts", "tip_mm", "entry_mm", "direction"}
    | set(_SCALAR_COLUMNS)
    | set(_STRING_COLUMNS)
    | {f"{v}_{a}" for v in ("tip", "entry") for a in "xyz"}
)
#: lead keys that say where the lead is; a row's placement replaces all of the template's
_PLACEMENT_KEYS = ("tip_mm", "direction", "entry_mm", "target", "align", "leaddbs_reconstruction", "side", "space")
#: config key -> manifest column, to name the column in per-subject errors
_KEY_TO_COLUMN = {
    "lead.model": "lead_model",
    "lead.tip_mm": "tip_mm",
    "lead.entry_mm": "entry_mm",
    "lead.direction": "direction",
    "lead.target": "target",
    "lead.leaddbs_reconstruction": "leaddbs_folder",
    "lead.rotation_deg": "rotation_deg",
    "stimulation.mode": "mode",
    "stimulation.contacts": "contacts",
    "stimulation.pulse_width_us": "pulse_width_us",
    "stimulation.frequency_hz": "frequency_hz",
}
#: ``group.csv`` columns that the batch fills itself (vta.studies.batch.write_group_outputs);
#: a subject variable may not take one of these names.
RESERVED_VARIABLES = frozenset({
    "subject", "hemisphere", "status", "lead_model", "tip_x_mm", "tip_y_mm", "tip_z_mm", "mode", "contacts",
    "pulse_width_us", "threshold_V_per_mm", "vta_volume_mm3", "vta_grid_volume_mm3", "impedance_ohm",
    "vta_clipped_by_domain", "warnings", "error",
})
#: difflib similarity at or above which an unknown column counts as a misspelt known one
_NEAR_MISS_CUTOFF = 0.8
_LEADDBS_PATTERNS = ("reconstruction/*ea_reconstruction.mat", "reconstruction/*desc-reconstruction.mat",
                     "*ea_reconstruction.mat")


@dataclass(frozen=True)
class SubjectSpec:
    """One subject-hemisphere of a manifest, not yet validated as a configuration.

    Attributes
    ----------
    subject : str
    hemisphere : {"R", "L"}
    where : str
        Where it comes from, for messages (``"cohort.csv line 3"``).
    data : dict
        The merged configuration mapping (template + row), as read from TOML.
    source : str
        The template path (relative paths in ``data`` are relative to it).
    leaddbs_folder : Path or None
        A Lead-DBS patient folder; its reconstruction file is found by :meth:`config_data`.
    error : str or None
        Why the row is malformed (one line, naming line and column), or None. A
        malformed row has ``subject`` and ``hemisphere`` as written in it (possibly
        empty or invalid) and empty ``data``; :meth:`config` raises ``error``.
    variables : dict of str to str
        The row's subject variables (outcomes, covariates) as written, by column name;
        empty cells are left out. Not part of ``data`` or the configuration hash.
    """

    subject: str
    hemisphere: str
    where: str
    data: dict = field(repr=False)
    source: str
    leaddbs_folder: Path | None = None
    error: str | None = None
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<subject>_<hemisphere>``: the output folder name."""
        return f"{self.subject}_{self.hemisphere}"

    @property
    def key(self) -> str:
        """Unique within a manifest: :attr:`name`, or for a malformed row (whose subject
        and hemisphere may be unreadable) its name and where it is."""
        return self.name if self.error is None else f"{self.name} ({self.where})"

    @property
    def label(self) -> str:
        """``"<where> (<subject> <hemisphere>)"`` for messages."""
        return f"{self.where} ({self.subject} {self.hemisphere})"

    def config_data(self) -> dict:
        """The configuration mapping, with the Lead-DBS reconstruction file resolved.

        Raises
        ------
        VtaError
            When the row is malformed (:attr:`error`), or the Lead-DBS folder or its
            reconstruction file is missing or ambiguous.
        """
        if self.error is not None:
            raise VtaError(self.error)
        data = copy.deepcopy(self.data)
        if self.leaddbs_folder is not None:
            data["lead"]["leaddbs_reconstruction"] = str(_find_reconstruction(self.leaddbs_folder, self.label))
        self._leaddbs_output(data)
        return data

    def _leaddbs_output(self, data: dict) -> None:
        """Turn the batch forms of ``[output] leaddbs`` into this subject's patient folder:
        ``true`` -> the row's ``leaddbs_folder``; a path -> ``<path>/sub-<subject>``;
        ``false`` -> no export (see the module docstring)."""
        out = data.get("output")
        if not isinstance(out, dict) or "leaddbs" not in out:
            return
        value = out["leaddbs"]
        if value is False:
            for key in ("leaddbs", "leaddbs_label", "leaddbs_model", "leaddbs_legacy"):
                out.pop(key, None)
        elif value is True:
            if self.leaddbs_folder is None:
                raise VtaError(f"{self.label}: [output] leaddbs = true writes into the row's Lead-DBS folder, "
                               "but the row has no leaddbs_folder (give one, or a folder path in leaddbs)")
            out["leaddbs"] = str(patient_folder(self.leaddbs_folder))
        elif isinstance(value, str) and value.strip():
            root = Path(value).expanduser()
            root = root if root.is_absolute() else Path(self.source).parent / root
            sub = self.subject if self.subject.startswith("sub-") else f"sub-{self.subject}"
            out["leaddbs"] = str(root / sub)

    def scene(self):
        """Validate and resolve into a :class:`vta.scene.Scene`.

        Raises
        ------
        VtaError
            Prefixed with the subject, hemisphere and manifest line; a configuration key
            that came from a manifest column is named by that column. For a malformed
            row, :attr:`error`.
        """
        from ..scene import Scene

        if self.error is not None:
            raise VtaError(self.error)
        try:
            return Scene.from_dict(self.config_data(), self.source)
        except ConfigError as exc:
            column = _KEY_TO_COLUMN.get(exc.key)
            where = f"column '{column}'" if column else f"config key '{exc.key}'"
            message = str(exc).split(": ", 1)[1] if ": " in str(exc) else str(exc)
            raise VtaError(f"{self.label}: {where}: {message}") from None
        except VtaError as exc:  # (the errors of config_data() name the row already)
            text = str(exc)
            raise VtaError(text if text.startswith(f"{self.label}: ") else f"{self.label}: {text}") from None


@dataclass(frozen=True)
class Manifest:
    """A parsed cohort manifest: where it came from, its subject-hemispheres, and the
    names of its subject variables (outcome and covariate columns, in manifest order)."""

    path: Path
    template: Path
    subjects: tuple[SubjectSpec, ...]
    variables: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.subjects)


def parse_contacts(text: str, where: str = "contacts") -> dict[str, float]:
    """Parse ``"0:-3;2:-3"`` (or ``"0=-3, 2=-3"``) into ``{"0": -3.0, "2": -3.0}``.

    Amplitudes are in mA or V according to the stimulation mode.

    Raises
    ------
    VtaError
        Naming ``where`` and the malformed item.
    """
    out: dict[str, float] = {}
    items = [t.strip() for t in re.split(r"[;,]", str(text)) if t.strip()]
    if not items:
        raise VtaError(f"{where}: no contacts given (expected e.g. '0:-3;2:-3')")
    for item in items:
        m = re.fullmatch(r"(\d+)\s*[:=]\s*(\S+)", item)
        value = _float(m.group(2)) if m else None
        if value is None:
            raise VtaError(f"{where}: cannot read {item!r} (expected contact:amplitude, e.g. '0:-3;2:-3')")
        if m.group(1) in out:
            raise VtaError(f"{where}: contact {m.group(1)} is given twice")
        out[str(int(m.group(1)))] = value
    return out


def load_manifest(path: str | Path, template: str | Path | None = None) -> Manifest:
    """Read a CSV or TOML manifest and expand it against a template.

    Parameters
    ----------
    path : str or Path
        ``*.csv`` or ``*.toml``.
    template : str or Path, optional
        The template TOML; required for CSV, optional for a TOML manifest with a
        ``template`` key (this argument wins).

    Raises
    ------
    VtaError
        Missing/unreadable files, a malformed header or template, duplicate subject +
        hemisphere, no subjects. A malformed row is not raised: its
        :class:`SubjectSpec` has ``error`` set (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise VtaError(f"manifest not found: {path}")
    if path.suffix.lower() == ".toml":
        rows, named_template = _read_toml(path)
        header_where = None
    elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
        if template is None:
            raise VtaError(f"manifest {path}: no template (give --template BASE.toml)")
        (rows, header_where), named_template = _read_csv(path), None
    else:
        raise VtaError(f"manifest {path}: expected a .csv or .toml file")
    if template is None:
        if named_template is None:
            raise VtaError(f"manifest {path}: no template (give --template BASE.toml or template = \"...\" in a TOML manifest)")
        template = named_template.expanduser()
        if not template.is_absolute():
            template = path.parent / template
    template = Path(template).expanduser().resolve()
    base = read_toml(template, "template")
    if not rows:
        raise VtaError(f"manifest {path}: no subjects")
    names = list(dict.fromkeys(k for _, row, _ in rows for k in row.get("variables") or {}
                               if isinstance(row.get("variables"), dict)))
    _check_variable_names(names, header_where or path.name, base)
    if names:
        log.info("%s: subject variables (copied to group.csv, not part of the configuration): %s",
                 path.name, ", ".join(names))
    subjects, seen = [], {}
    for where, row, problem in rows:
        subject, hemi, readable = _identity(row)
        variables, var_problem = _variables(row.pop("variables", None))
        problem = problem or var_problem
        try:
            if problem is not None:
                raise _RowError(f"{where} ({subject} {hemi}): {problem}" if readable else f"{where}: {problem}")
            spec = _expand(row, where, base, template, path.parent.resolve())
            spec = SubjectSpec(spec.subject, spec.hemisphere, spec.where, spec.data, spec.source,
                               spec.leaddbs_folder, variables=variables)
        except _RowError as exc:  # this row only: recorded by a batch, which goes on with the others
            spec = SubjectSpec(subject, hemi, where, {}, str(template), error=str(exc), variables=variables)
        if readable:  # a malformed row with a readable subject and hemisphere takes its place too
            key = (spec.subject, spec.hemisphere)
            if key in seen:
                raise VtaError(f"{spec.label}: subject {spec.subject} hemisphere {spec.hemisphere} is already in "
                               f"{seen[key]}")
            seen[key] = where
        subjects.append(spec)
    return Manifest(path.resolve(), template, tuple(subjects), tuple(names))


class _RowError(VtaError):
    """A problem of one manifest row (not of the manifest as a whole)."""


def _identity(row: dict) -> tuple[str, str, bool]:
    """``(subject, hemisphere, readable)`` of a row as far as they can be read: the
    hemisphere normalised to R/L when valid, else as written; ``readable`` when both are
    valid."""
    subject = "" if row.get("subject") is None else " ".join(str(row["subject"]).split())
    raw = row.get("hemisphere")
    hemi = _HEMISPHERES.get(str(raw).strip().lower()) if raw is not None else None
    readable = hemi is not None and bool(_SUBJECT_RE.match(subject))
    return subject, hemi or ("" if raw is None else " ".join(str(raw).split())), readable


# ----------------------------------------------------------------------------- reading


def _read_csv(path: Path) -> tuple[list[tuple[str, dict, str | None]], str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise VtaError(f"manifest {path}: cannot read it: {exc}") from None
    lines = [ln for ln in text.splitlines()]
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    reader = csv.reader(lines, dialect)
    header: list[str] | None = None
    header_where = path.name
    rows: list[tuple[str, dict, str | None]] = []
    for lineno, cells in enumerate(reader, start=1):
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in cells]
        where = f"{path.name} line {lineno}"
        if header is None:
            header, header_where = cells, where
            for col in header:
                if not col:
                    raise VtaError(f"{where}: empty column name in the header")
                if "." not in col and col not in _KNOWN and _near_miss(col):
                    raise VtaError(f"{where}: unknown column '{col}'{did_you_mean(col, _near_miss(col), n=1)}")
            dup = sorted({c for c in header if header.count(c) > 1})
            if dup:
                raise VtaError(f"{where}: column '{dup[0]}' appears twice")
            for req in ("subject", "hemisphere"):
                if req not in header:
                    raise VtaError(f"{where}: the header has no '{req}' column")
            continue
        problem = None
        if len(cells) > len(header):
            problem = f"{len(cells)} cells but the header has {len(header)} columns"
        row: dict[str, Any] = {}
        for col, cell in zip(header, cells):
            if cell == "":
                continue
            if "." in col:
                row.setdefault("overrides", {})[col] = _toml_value(cell)
            elif col in _KNOWN:
                row[col] = cell
            else:
                row.setdefault("variables", {})[col] = cell
        rows.append((where, row, problem))
    if header is None:
        raise VtaError(f"manifest {path}: empty (expected a header line with subject,hemisphere,...)")
    return rows, header_where


def _read_toml(path: Path) -> tuple[list[tuple[str, dict, str | None]], Path | None]:
    data = read_toml(path, "manifest")
    unknown = sorted(set(data) - {"template", "subjects"})
    if unknown:
        raise VtaError(f"manifest {path}: unknown key '{unknown[0]}'{_suggest(unknown[0], {'template', 'subjects'})}")
    template = data.get("template")
    if template is not None and not isinstance(template, str):
        raise VtaError(f"manifest {path}: 'template' must be a file path")
    entries = data.get("subjects", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise VtaError(f"manifest {path}: 'subjects' must be an array of tables ([[subjects]])")
    rows = []
    for i, entry in enumerate(entries, start=1):
        where = f"{path.name} [[subjects]] entry {i}"
        problem = None
        unknown = [k for k in entry if k not in ("overrides", "variables") and k not in _KNOWN]
        if unknown:
            hint = (_suggest(unknown[0], _KNOWN | {"overrides", "variables"}) if _near_miss(unknown[0])
                    else " (outcomes and covariates go into a 'variables' table)")
            problem = f"unknown key '{unknown[0]}'{hint}"
        elif "overrides" in entry and not isinstance(entry["overrides"], dict):
            problem = "'overrides' must be a table"
        rows.append((where, dict(entry), problem))
    return rows, (Path(template) if template is not None else None)


# ----------------------------------------------------------------------------- subject variables


def _near_miss(name: str) -> list[str]:
    """Known columns that ``name`` looks like a misspelling of (empty: a subject variable).

    Stricter than :func:`vta.errors.did_you_mean`, so that ordinary outcome names
    (``age``, ``mood``, ``duration``) are not taken for typos: the same name up to case
    and separators, a known column that starts with ``name_`` (``tip`` -> ``tip_x``), or
    a spelling similarity of at least 0.8 (``contact``, ``model``, ``tipx``).
    """
    import difflib

    known = sorted(_KNOWN)
    low = re.sub(r"[\s-]+", "_", name.strip().lower())
    same = [k for k in known if k.lower() == low and k != name]
    prefix = [k for k in known if k.startswith(low + "_")]
    close = difflib.get_close_matches(name, known, n=3, cutoff=_NEAR_MISS_CUTOFF)
    return list(dict.fromkeys(same + close + prefix))


def _config_leaf_keys(data: Any, prefix: str = "") -> dict[str, str]:
    """Leaf key -> dotted path for every key of the template (``threshold_V_per_mm`` ->
    ``vta.threshold_V_per_mm``), plus the unit-suffixed keys of every section."""
    import dataclasses

    from .. import config as cfg

    out: dict[str, str] = {}
    sections = {"vta": cfg.VtaConfig, "tissue": cfg.TissueConfig, "stimulation": cfg.StimulationConfig,
                "solver": cfg.SolverConfig, "output": cfg.OutputConfig, "domain": cfg.DomainConfig,
                "tracts": cfg.TractsConfig}
    for section, klass in sections.items():
        for f in dataclasses.fields(klass):
            if "_" in f.name and f.name not in _KNOWN:
                out.setdefault(f.name, f"{section}.{f.name}")
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict):
                for leaf, dotted in _config_leaf_keys(value, f"{prefix}{key}.").items():
                    out[leaf] = dotted
            elif prefix:
                out[str(key)] = f"{prefix}{key}"
    return out


def _check_variable_names(names: list[str], where: str, base: dict) -> None:
    """Refuse subject-variable names that collide with what the batch writes or with a
    template key (which the user probably meant to override)."""
    leaves = _config_leaf_keys(base)
    for name in names:
        if name in leaves and "_" in name:  # a generic word (``order``, ``shape``) may be a variable
            raise VtaError(f"{where}: column '{name}' is a template key; to override it per subject name the "
                           f"column '{leaves[name]}'")
        if name in RESERVED_VARIABLES:
            raise VtaError(f"{where}: column '{name}' is a group.csv column that the batch fills; "
                           "give the subject variable another name")
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", name):
            raise VtaError(f"{where}: subject variable '{name}': a column name may hold only letters, digits, "
                           "'_' and '-'")


def _variables(raw: Any) -> tuple[dict[str, str], str | None]:
    """A row's subject variables as text (``(variables, problem)``): CSV cells as written;
    TOML numbers as Python writes them, booleans as ``true``/``false``."""
    if raw is None:
        return {}, None
    if not isinstance(raw, dict):
        return {}, "'variables' must be a table"
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            text = str(value).strip()
            if text:
                out[str(key)] = text
        else:
            return {}, f"variable '{key}' must be a number, boolean or string, got {type(value).__name__}"
    return out, None


# ----------------------------------------------------------------------------- expansion


def _expand(row: dict, loc: str, base: dict, template: Path, manifest_dir: Path) -> SubjectSpec:
    where = loc

    def fail(column: str, message: str) -> VtaError:
        return _RowError(f"{where}: column '{column}': {message}")

    subject = row.get("subject")
    if subject is None or str(subject).strip() == "":
        raise fail("subject", "is required")
    subject = str(subject).strip()
    if not _SUBJECT_RE.match(subject):
        raise fail("subject", f"{subject!r} may hold only letters, digits, '.', '_' and '-'")
    hemi_raw = row.get("hemisphere")
    hemi = _HEMISPHERES.get(str(hemi_raw).strip().lower()) if hemi_raw is not None else None
    if hemi is None:
        raise fail("hemisphere", f"must be R or L, got {hemi_raw!r}")
    where = f"{where} ({subject} {hemi})"

    vectors = {}
    for name in _VECTOR_COLUMNS:
        key = name if name == "direction" else f"{name}_mm"
        split = [f"{name}_{a}" for a in "xyz"] if name != "direction" else []
        given_split = [c for c in split if c in row]
        if key in row and given_split:
            raise fail(given_split[0], f"give either '{key}' or {', '.join(split)}, not both")
        if key in row:
            vectors[key] = _vector(row[key], lambda m, k=key: fail(k, m))
        elif given_split:
            if len(given_split) != 3:
                missing = [c for c in split if c not in row]
                raise fail(missing[0], f"is required with {given_split[0]}")
            vectors[key] = [_number(row[c], lambda m, c=c: fail(c, m)) for c in split]
    sources = [k for k in ("tip_mm", "target", "leaddbs_folder") if k in vectors or k in row]
    if len(sources) > 1:
        raise fail(sources[1], f"give only one of tip_mm, target or leaddbs_folder (also has {sources[0]})")
    if ("entry_mm" in vectors or "direction" in vectors) and sources != ["tip_mm"]:
        col = "entry_mm" if "entry_mm" in vectors else "direction"
        raise fail(col, "needs tip_mm")
    if "entry_mm" in vectors and "direction" in vectors:
        raise fail("direction", "give either entry_mm or direction, not both")

    data = copy.deepcopy(base)
    lead = data.setdefault("lead", {})
    if not isinstance(lead, dict):
        raise VtaError(f"template {template}: [lead] must be a table")
    leaddbs = None
    if sources:
        keep_axis = sources == ["tip_mm"] and "entry_mm" not in vectors and "direction" not in vectors
        for k in _PLACEMENT_KEYS:
            if keep_axis and k in ("direction", "entry_mm"):
                continue
            lead.pop(k, None)
        if keep_axis and not ("direction" in lead or "entry_mm" in lead):
            raise fail("entry_mm", "is required with tip_mm (the template gives no direction or entry_mm)")
    for key, vec in vectors.items():
        lead[key] = vec
    if "tip_mm" in vectors:
        x = vectors["tip_mm"][0]
        if abs(x) > 2.0 and (x > 0) != (hemi == "R"):
            log.warning("%s: tip x = %.1f mm is on the %s side of the midline but hemisphere is %s",
                        where, x, "right" if x > 0 else "left", hemi)
    if "target" in row:
        target = str(row["target"]).strip()
        m = re.fullmatch(r"(.+)_([RLrl])", target)
        if m is None:
            target = f"{target}_{hemi}"
        elif m.group(2).upper() != hemi:
            raise fail("target", f"{target!r} is on the other side than hemisphere {hemi}")
        lead["target"] = target
    if "leaddbs_folder" in row:
        folder = Path(str(row["leaddbs_folder"])).expanduser()
        leaddbs = folder if folder.is_absolute() else manifest_dir / folder
        lead["side"] = "right" if hemi == "R" else "left"
        if "lead_model" not in row:
            lead.pop("model", None)
    if "lead_model" in row:
        lead["model"] = str(row["lead_model"]).strip()
    if "rotation_deg" in row:
        lead["rotation_deg"] = _number(row["rotation_deg"], lambda m: fail("rotation_deg", m))

    stim = data.setdefault("stimulation", {})
    if not isinstance(stim, dict):
        raise VtaError(f"template {template}: [stimulation] must be a table")
    if "contacts" in row:
        raw = row["contacts"]
        if isinstance(raw, dict):
            stim["contacts"] = dict(raw)
        else:
            try:
                stim["contacts"] = parse_contacts(raw, f"{where}: column 'contacts'")
            except VtaError as exc:
                raise _RowError(str(exc)) from None
    if "mode" in row:
        stim["mode"] = str(row["mode"]).strip().lower()
    for col in ("pulse_width_us", "frequency_hz"):
        if col in row:
            stim[col] = _number(row[col], lambda m, c=col: fail(c, m))

    for dotted, value in _flatten(row.get("overrides", {})).items():
        _set_path(data, dotted.split("."), value, lambda m, c=dotted: fail(c, m))
    return SubjectSpec(subject, hemi, loc, data, str(template), leaddbs)


def _flatten(overrides: dict, prefix: str = "") -> dict[str, Any]:
    """``{"vta": {"threshold_V_per_mm": 0.1}, "solver.preset": "fast"}`` -> dotted keys.

    A value that is a table is merged key by key, except ``stimulation.contacts`` which
    replaces the template's table as a whole.
    """
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path != "stimulation.contacts":
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _set_path(data: dict, parts: list[str], value: Any, fail) -> None:
    node = data
    for part in parts[:-1]:
        if not part:
            raise fail("is not a valid key path")
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise fail(f"'{part}' is not a table in the template")
        node = child
    if not parts[-1]:
        raise fail("is not a valid key path")
    node[parts[-1]] = value


def _find_reconstruction(folder: Path, label: str) -> Path:
    if folder.is_file():
        return folder
    if not folder.is_dir():
        raise VtaError(f"{label}: column 'leaddbs_folder': folder not found: {folder}")
    for pattern in _LEADDBS_PATTERNS:
        found = sorted(folder.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise VtaError(f"{label}: column 'leaddbs_folder': several reconstructions in {folder}: "
                           + ", ".join(p.name for p in found))
    raise VtaError(f"{label}: column 'leaddbs_folder': no reconstruction/*ea_reconstruction.mat in {folder}")


# ----------------------------------------------------------------------------- values


def _float(text: Any) -> float | None:
    if isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _number(text: Any, fail) -> float:
    value = _float(text)
    if value is None:
        raise fail(f"must be a finite number, got {text!r}")
    return value


def _vector(value: Any, fail) -> list[float]:
    parts = value if isinstance(value, list) else [p for p in re.split(r"[;\s]+", str(value).strip(" []")) if p]
    if len(parts) != 3:
        raise fail(f"must be three numbers in mm ('x;y;z'), got {value!r}")
    out = [_float(p) for p in parts]
    if any(v is None for v in out):
        raise fail(f"must be three finite numbers in mm ('x;y;z'), got {value!r}")
    return out


def _toml_value(text: str) -> Any:
    """A CSV cell as a TOML value; a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _suggest(name: str, known) -> str:
    return did_you_mean(name, sorted(known), n=1)
