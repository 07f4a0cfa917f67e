"""Results back in Lead-DBS: a run's VTA and |E| as a Lead-DBS (v3) stimulation folder.

Lead-DBS (Horn et al., 2019, NeuroImage 184:293; https://www.lead-dbs.org) keeps the
stimulations of a patient in ``<patient>/stimulations/<space>/<label>/``; for the MNI
template that space folder is ``MNI152NLin2009bAsym``. Its VTA models write, per
hemisphere (``R``/``L``), uncompressed NIfTI files named

* ``<sub>_sim-binary_model-<model>_hemi-<R|L>.nii``: the VTA (1 inside, 0 outside);
* ``<sub>_sim-efield_model-<model>_hemi-<R|L>.nii``: |E| in **V/m** (Lead-DBS solves in
  SI units and scales its V/mm threshold by 1000 before comparing);

and older releases ``vat_right.nii`` / ``vat_efield_right.nii`` (``_left``). ``<sub>``
is ``sub-<subject id>``, the patient folder's name in a Lead-DBS v3 dataset
(``derivatives/leaddbs/sub-XXX``). Lead-DBS finds these files with the pattern
``_sim-binary_model-<model>_hemi-<R|L>\\.nii$``, where ``<model>`` is the tag of the VTA
model chosen in Lead-DBS (``simbio``, ``ossdbs``, ``fastfield``, ``kuncel``,
``maedler``, ``dembek``), or of the model recorded in the stimulation folder's
``<sub>_desc-stimparameters.mat``. vta writes the tag ``vta`` by default (``[output]
leaddbs_model``), so its files are never mistaken for those of another model; vta
writes no ``stimparameters.mat`` (it cannot fill Lead-DBS's stimulation struct
faithfully). See ``docs/leaddbs.md``.

Only MNI-space runs are exported (:func:`check_space`): Lead-DBS's ``native`` folder
holds VTAs in the coordinates of the patient's anchor image, which vta cannot check a
``native`` anatomy against, and scrf is not a stimulation space of Lead-DBS.

Writing (:class:`LeadDbsExport`) never leaves a partial file and never touches other
stimulations: the files are written to hidden temporary names in the stimulation folder
(:meth:`~LeadDbsExport.prepare`), renamed into place keeping any previous versions aside
(:meth:`~LeadDbsExport.commit`), and the previous versions are dropped once the whole
run is published (:meth:`~LeadDbsExport.finish`) or put back when it fails
(:meth:`~LeadDbsExport.rollback`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, VtaError
from .io import file_mode, nifti_bytes, os_error
from .notices import NOT_ABOUT_RESULT

__all__ = ["LeadDbsExport", "MNI_FOLDER", "V_PER_M_PER_V_PER_MM", "check_space", "export_file_names",
           "parse_output_keys", "patient_folder", "subject_id"]

log = logging.getLogger(__name__)

#: Lead-DBS's stimulation space folder of the MNI template (ICBM 2009b nonlinear asymmetric).
MNI_FOLDER = "MNI152NLin2009bAsym"
#: |E| in V/m per V/mm: Lead-DBS's e-field files are in V/m, vta computes V/mm.
V_PER_M_PER_V_PER_MM = 1000.0
DEFAULT_LABEL = "vta"
DEFAULT_MODEL = "vta"
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9]+$")
_KEYS = ("leaddbs_label", "leaddbs_model", "leaddbs_legacy")
_TMP, _BACKUP = ".vta-tmp", ".vta-backup"


def parse_output_keys(sec: Any, base: Path, nifti: bool) -> dict:
    """Read the Lead-DBS keys of ``[output]`` (for :mod:`vta.config`).

    ``leaddbs`` (a Lead-DBS patient folder; relative to the config file; must exist),
    ``leaddbs_label`` (the stimulation folder name, default ``"vta"``), ``leaddbs_model``
    (the model tag of the file names, letters and digits, default ``"vta"``),
    ``leaddbs_legacy`` (also ``vat_right.nii``/``vat_efield_right.nii``, default false).

    Parameters
    ----------
    sec : vta.config_tables.Section
        The ``[output]`` section reader.
    base : Path
        The folder of the configuration file.
    nifti : bool
        ``[output] nifti``: the export needs the voxel grid.

    Returns
    -------
    dict
        ``leaddbs`` (absolute path as str, or None), ``leaddbs_label``,
        ``leaddbs_model``, ``leaddbs_legacy``: the :class:`vta.config.OutputConfig` fields.

    Raises
    ------
    ConfigError
        A missing folder, a bad label or tag, keys without ``leaddbs``, ``nifti = false``.
    """
    if not sec.has("leaddbs"):
        stray = [k for k in _KEYS if sec.has(k)]
        if stray:
            raise ConfigError(sec.key(stray[0]), "needs output.leaddbs (the Lead-DBS patient folder)")
        return {"leaddbs": None, "leaddbs_label": DEFAULT_LABEL, "leaddbs_model": DEFAULT_MODEL,
                "leaddbs_legacy": False}
    raw = sec.raw("leaddbs")
    if not isinstance(raw, str) or not raw.strip():
        hint = " (true is for vta batch templates)" if raw is True else ""
        raise ConfigError(sec.key("leaddbs"), f"must be the path of a Lead-DBS patient folder, got {raw!r}{hint}")
    folder = Path(raw).expanduser()
    folder = Path(os.path.abspath(folder if folder.is_absolute() else base / folder))
    if not folder.is_dir():
        raise ConfigError(sec.key("leaddbs"), f"Lead-DBS patient folder not found: {folder}")
    label, model = sec.raw("leaddbs_label", DEFAULT_LABEL), sec.raw("leaddbs_model", DEFAULT_MODEL)
    if not isinstance(label, str) or not _LABEL_RE.match(label):
        raise ConfigError(sec.key("leaddbs_label"), f"must be a folder name (letters, digits, '.', '_', '-'), "
                                                    f"got {label!r}")
    if not isinstance(model, str) or not _MODEL_RE.match(model):
        raise ConfigError(sec.key("leaddbs_model"), f"must be a tag of letters and digits (e.g. \"vta\"), got {model!r}")
    legacy = sec.boolean("leaddbs_legacy", False)
    if not nifti:
        raise ConfigError(sec.key("leaddbs"), "needs nifti = true (the Lead-DBS files are the NIfTI grid)")
    return {"leaddbs": str(folder), "leaddbs_label": label, "leaddbs_model": model, "leaddbs_legacy": legacy}


def check_space(anatomy_space: str | None, lead_space: str | None) -> None:
    """Refuse a Lead-DBS export of a run whose outputs are not in MNI space.

    The outputs' space is the anatomy's, else the Lead-DBS reconstruction's (as
    :func:`vta.scene.coordinate_spaces` decides).

    Raises
    ------
    ConfigError
        For native, scrf or unspecified space (``output.leaddbs``).
    """
    space = anatomy_space or lead_space
    if space == "mni":
        return
    where = (f"{space} space" if space else "no named space (a homogeneous domain placed with tip_mm or a target)")
    raise ConfigError("output.leaddbs", f"exports MNI-space runs only (stimulations/{MNI_FOLDER}); this run is in "
                                        f"{where}: use an MNI anatomy or a reconstruction with space = \"mni\"")


def patient_folder(leaddbs_folder: str | Path) -> Path:
    """The patient folder of a manifest's ``leaddbs_folder`` (a folder, or the path of its
    reconstruction file: ``<patient>/reconstruction/*.mat`` or ``<patient>/*.mat``)."""
    path = Path(leaddbs_folder)
    if path.is_file():
        path = path.parent
        if path.name == "reconstruction":
            path = path.parent
    return path


def subject_id(patient: str | Path) -> str:
    """The BIDS-style subject id (``sub-XXX``) that Lead-DBS v3 uses in the file names.

    From the folder name when it is ``sub-XXX`` (a Lead-DBS v3 dataset); else from a
    reconstruction file ``reconstruction/sub-XXX_desc-reconstruction.mat``; else (an older
    patient folder) ``sub-`` and the folder name's letters and digits.

    Raises
    ------
    VtaError
        When the folder name has no letter or digit and no reconstruction names one.
    """
    patient = Path(patient)
    name = os.path.basename(os.path.abspath(patient))
    if re.fullmatch(r"sub-[A-Za-z0-9][A-Za-z0-9._-]*", name):
        return name
    found = sorted({m.group(1) for p in patient.glob("reconstruction/sub-*_desc-reconstruction.mat")
                    if (m := re.fullmatch(r"(sub-[A-Za-z0-9]+)_desc-reconstruction\.mat", p.name))})
    if len(found) == 1:
        return found[0]
    label = re.sub(r"[^A-Za-z0-9]", "", name)
    if not label:
        raise VtaError(f"Lead-DBS patient folder {patient}: cannot derive a subject id from its name")
    log.warning("Lead-DBS patient folder %s is not named sub-<id> and holds no sub-<id>_desc-reconstruction.mat; "
                "naming the files sub-%s", patient, label, extra=NOT_ABOUT_RESULT)
    return f"sub-{label}"


def export_file_names(sub: str, model: str, hemisphere: str, legacy: bool = False) -> dict[str, str]:
    """File name -> kind (``"binary"`` or ``"efield"``) of one hemisphere's export."""
    if hemisphere not in ("R", "L"):
        raise ValueError(f"hemisphere must be 'R' or 'L', got {hemisphere!r}")
    names = {f"{sub}_sim-binary_model-{model}_hemi-{hemisphere}.nii": "binary",
             f"{sub}_sim-efield_model-{model}_hemi-{hemisphere}.nii": "efield"}
    if legacy:
        side = "right" if hemisphere == "R" else "left"
        names.update({f"vat_{side}.nii": "binary", f"vat_efield_{side}.nii": "efield"})
    return names


@dataclass
class LeadDbsExport:
    """One hemisphere's files in a Lead-DBS stimulation folder, published all or none.

    Build with :meth:`prepare`; then :meth:`commit` (files in place, previous versions
    aside), and :meth:`finish` once the rest of the run is published, or
    :meth:`rollback` if anything fails.

    Attributes
    ----------
    patient, folder : Path
        The patient folder and the stimulation folder in it.
    subject, label, model, hemisphere : str
    files : list of str
        The file names (in ``folder``).
    """

    patient: Path
    folder: Path
    subject: str
    label: str
    model: str
    hemisphere: str
    files: list[str]
    _temps: dict[str, Path] = field(default_factory=dict, repr=False)
    _backups: dict[str, Path | None] = field(default_factory=dict, repr=False)
    _created: list[Path] = field(default_factory=list, repr=False)

    @classmethod
    def prepare(cls, patient: str | Path, label: str, model: str, hemisphere: str, affine: np.ndarray,
                mask: np.ndarray, field_norm_V_per_mm: np.ndarray, legacy: bool = False) -> "LeadDbsExport":
        """Write the files to temporary names in ``<patient>/stimulations/MNI152NLin2009bAsym/<label>/``.

        Parameters
        ----------
        patient : str or Path
            The Lead-DBS patient folder (must exist).
        label : str
            The stimulation folder name.
        model : str
            The model tag of the file names.
        hemisphere : {"R", "L"}
        affine : ndarray (4, 4)
            Voxel index -> MNI mm of the output grid (sform and qform code 4).
        mask : ndarray of bool
            The VTA on the grid (written as uint8 0/1).
        field_norm_V_per_mm : ndarray
            |E| on the grid (V/mm; written as float32 V/m).
        legacy : bool
            Also write ``vat_<side>.nii`` and ``vat_efield_<side>.nii``.

        Raises
        ------
        VtaError
            A missing patient folder or any OS error (nothing is left behind then).
        """
        patient = Path(patient)
        if not patient.is_dir():
            raise VtaError(f"Lead-DBS patient folder not found: {patient}")
        sub = subject_id(patient)
        names = export_file_names(sub, model, hemisphere, legacy)
        folder = patient / "stimulations" / MNI_FOLDER / label
        export = cls(patient, folder, sub, label, model, hemisphere, list(names))
        data = {"binary": np.asarray(mask, bool).astype(np.uint8),
                "efield": (np.asarray(field_norm_V_per_mm, float) * V_PER_M_PER_V_PER_MM).astype(np.float32)}
        blobs = {kind: nifti_bytes(arr, affine, 4, compressed=False) for kind, arr in data.items()}
        try:
            export._make_folder()
            for name, kind in names.items():
                export._clean_orphans(name)
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=_TMP, dir=folder)
                export._temps[name] = Path(tmp)
                with os.fdopen(fd, "wb") as fh:
                    os.fchmod(fh.fileno(), file_mode())
                    fh.write(blobs[kind])
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            export.rollback()
            raise os_error(exc, folder) from None
        except BaseException:
            export.rollback()
            raise
        return export

    def describe(self) -> dict:
        """The summary.json ``leaddbs_export`` entry."""
        return {"patient_folder": str(self.patient), "folder": str(self.folder), "subject": self.subject,
                "space": MNI_FOLDER, "label": self.label, "model": self.model, "hemisphere": self.hemisphere,
                "files": list(self.files), "efield_unit": "V/m", "binary_dtype": "uint8", "efield_dtype": "float32"}

    def commit(self) -> None:
        """Rename the files into place; previous versions are kept aside until :meth:`finish`.

        Raises
        ------
        VtaError
            On an OS error (everything is put back first).
        """
        try:
            for name in self.files:
                target = self.folder / name
                if target.is_dir() and not target.is_symlink():
                    raise VtaError(f"cannot write {target}: a folder of that name is in the way")
                backup = None
                if target.exists() or target.is_symlink():
                    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=_BACKUP, dir=self.folder)
                    os.close(fd)
                    backup = Path(tmp)
                    try:
                        os.replace(target, backup)
                    except OSError:
                        backup.unlink(missing_ok=True)
                        raise
                self._backups[name] = backup  # recorded before the new file goes in: rollback restores it
                os.replace(self._temps[name], target)
                del self._temps[name]
        except OSError as exc:
            self.rollback()
            raise os_error(exc, self.folder) from None
        except BaseException:
            self.rollback()
            raise

    def finish(self) -> None:
        """Drop the previous versions (the run is published)."""
        for backup in self._backups.values():
            if backup is not None:
                with contextlib.suppress(OSError):
                    backup.unlink()
        self._backups.clear()

    def rollback(self) -> None:
        """Undo :meth:`prepare` and :meth:`commit`: remove the new files and temporary
        files, put previous versions back, remove the folders created for the export.
        Never raises (a failure to clean up is logged)."""
        for tmp in self._temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._temps.clear()
        for name, backup in self._backups.items():
            target = self.folder / name
            try:
                if backup is not None:
                    os.replace(backup, target)
                else:
                    target.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not undo the Lead-DBS export of %s: %s", target, exc.strerror or exc)
        self._backups.clear()
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        self._created.clear()

    # ------------------------------------------------------------------ internals
    def _make_folder(self) -> None:
        missing = []
        path = self.folder
        while not path.exists() and path != self.patient:
            missing.append(path)
            path = path.parent
        for path in reversed(missing):
            path.mkdir()
            self._created.append(path)
        if not self.folder.is_dir():
            raise VtaError(f"cannot write {self.folder}: it is not a folder")

    def _clean_orphans(self, name: str) -> None:
        """Remove temporary and backup files of ``name`` that a killed run left."""
        for pattern in (f".{glob_escape(name)}.*{_TMP}", f".{glob_escape(name)}.*{_BACKUP}"):
            for orphan in self.folder.glob(pattern):
                with contextlib.suppress(OSError):
                    orphan.unlink()


def glob_escape(name: str) -> str:
    """``name`` with the glob special characters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)
