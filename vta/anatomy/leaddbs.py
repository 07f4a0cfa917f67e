"""Lead-DBS reconstruction import: a lead placement from ``ea_reconstruction.mat``.

Lead-DBS (Horn A, Kuehn AA, *NeuroImage* 107:127 (2015); Horn A et al., *NeuroImage*
184:293 (2019)) stores each localised lead in ``ea_reconstruction.mat``: contact
centres ``reco.<space>.coords_mm{side}``, the markers ``reco.<space>.markers(side)``
(``head``, ``tail``, ``x``, ``y``) and the lead model ``reco.props(side).elmodel``
(names as in Lead-DBS's ``ea_resolve_elspec.m``). :func:`load_leaddbs_reconstruction`
turns one side into a :class:`vta.leads.LeadPlacement`; :data:`LEADDBS_LEAD_MODELS`
and :func:`leaddbs_lead_name` map every Lead-DBS model name to the vta lead catalogue
(or, for SEEG and other electrodes vta does not model, to a clear error).
MATLAB v5 files are read with scipy, v7.3 (HDF5) files with h5py (both imported only
when needed).

All lengths are in mm (MNI or native space, as stored), angles in degrees.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from .atlas_io import _suggest
from ..errors import VtaError
from ..leads import LeadModel, LeadPlacement, get_lead, lead_catalogue

__all__ = ["LEADDBS_LEAD_MODELS", "LEADDBS_NOT_MODELLED", "leaddbs_lead_name", "load_leaddbs_reconstruction"]

log = logging.getLogger(__name__)

#: Lead-DBS ``elmodel`` names -> vta catalogue names, for every electrode model that
#: Lead-DBS lists (``ea_resolve_elspec.m``, current and older releases, plus the names
#: OSS-DBS v2's Lead-DBS interface accepts). ``None`` = an electrode vta does not model
#: (SEEG and other depth electrodes, rodent electrodes, a cannula, a lead without
#: published dimensions); :data:`LEADDBS_NOT_MODELLED` says why.
LEADDBS_LEAD_MODELS: dict[str, str | None] = {
    # Medtronic
    "Medtronic 3389": "Medtronic 3389",
    "Medtronic 3387": "Medtronic 3387",
    "Medtronic 3391": "Medtronic 3391",
    "Medtronic B33005": "Medtronic SenSight B33005",
    "Medtronic B33015": "Medtronic SenSight B33015",
    # Boston Scientific
    "Boston Scientific Vercise": "Boston Scientific Vercise",
    "Boston Scientific Vercise Directed": "Boston Scientific Vercise Directed",
    "Boston Scientific Vercise Cartesia HX": "Boston Scientific Vercise Cartesia HX",
    "Boston Scientific Vercise Cartesia X": "Boston Scientific Vercise Cartesia X",
    # Abbott / St. Jude (older Lead-DBS releases say "St. Jude")
    "Abbott ActiveTip (6146-6149)": "Abbott ActiveTip 6146",
    "Abbott ActiveTip (6142-6145)": "Abbott ActiveTip 6142",
    "Abbott Directed 6172 (short)": "Abbott 6172",
    "Abbott Directed 6173 (long)": "Abbott 6173",
    "St. Jude ActiveTip (6146-6149)": "Abbott ActiveTip 6146",
    "St. Jude ActiveTip (6142-6145)": "Abbott ActiveTip 6142",
    "St. Jude ActiveTip": "Abbott ActiveTip 6146",  # the first releases: 0.5 mm spacing
    "St. Jude Directed 6172 (short)": "Abbott 6172",
    "St. Jude Directed 6173 (long)": "Abbott 6173",
    "St. Jude Directed 6180": "Abbott 6172",  # as OSS-DBS v2 leaddbsinterface maps it
    # PINS Medical (older Lead-DBS releases: "PINS L30x")
    "PINS Medical L301": "PINS L301",
    "PINS Medical L302": "PINS L302",
    "PINS Medical L303": "PINS L303",
    "PINS L301": "PINS L301",
    "PINS L302": "PINS L302",
    "PINS L303": "PINS L303",
    # SceneRay
    "SceneRay SR1200": "SceneRay SR1200",
    "SceneRay SR1202": "SceneRay SR1202",
    "SceneRay SR1210": "SceneRay SR1210",
    "SceneRay SR1211": "SceneRay SR1211",
    "SceneRay SR1212": "SceneRay SR1212",
    "SceneRay SR1242": "SceneRay SR1242",
    # Aleva, NeuroPace
    "Aleva directSTIM Directed": "Aleva directSTIM Directed",
    "NeuroPace DL-344-3.5": "NeuroPace DL-344-3.5",
    "NeuroPace DL-344-10": "NeuroPace DL-344-10",
}

_SEEG = "an SEEG depth electrode"
_RODENT = "a rodent electrode"

#: Lead-DBS electrode models that vta does not model, and why.
LEADDBS_NOT_MODELLED: dict[str, str] = {
    **{f"SDE-08 S{n}{suffix}": _SEEG for n in (8, 10, 12, 14, 16) for suffix in ("", " Legacy")
       if not (n == 14 and suffix)},
    **{f"PMT 2102-{n:02d}-{v}": _SEEG for n in (4, 6, 8, 10, 12, 14, 16) for v in ("091", "094")},
    **{f"PMT 2102-16-{v}": _SEEG for v in ("092", "093", "131", "142")},
    "2069-EPC-05C-35": _SEEG,
    "2069-EPC-15C-35": _SEEG,
    **{f"DIXI D08-{n:02d}AM": _SEEG for n in (5, 8, 10, 12, 15, 18)},
    **{f"AdTech {m}": _SEEG for m in (
        "BF08R-SP05X", "BF09R-SP05X", "BF10R-SP05X", "BF12R-SP05X", "BF08R-SP21X", "BF10R-SP21X",
        "BF12R-SP21X", "BF08R-SP61X", "BF09R-SP61X-0BB", "RD06R-SP05X", "RD08R-SP05X", "RD10R-SP03X",
        "RD10R-SP05X", "RD10R-SP06X", "RD10R-SP07X", "RD10R-SP08X", "SD06R-SP26X", "SD08R-SP05X",
        "SD10R-SP05X", "SD10R-SP05X Choi", "SD14R-SP05X")},
    "ELAINE Rat Electrode": _RODENT,
    "FHC WU Rat Electrode": _RODENT,
    "NuMed Mini Lead": _RODENT,
    "SmartFlow Cannula NGS-NC-06": "a drug-delivery cannula",
    "Aleva directSTIM 11500": "a lead whose dimensions neither Lead-DBS nor OSS-DBS v2 publish",
}
LEADDBS_LEAD_MODELS.update({name: None for name in LEADDBS_NOT_MODELLED})

_SIDES = {"right": 0, "r": 0, "rh": 0, "1": 0, "left": 1, "l": 1, "lh": 1, "2": 1}
_SPACES = ("mni", "native", "scrf")


def leaddbs_lead_name(elmodel: str) -> str:
    """The vta catalogue name of a Lead-DBS ``elmodel`` string.

    Raises
    ------
    VtaError
        For Lead-DBS electrodes vta does not model (SEEG, rodent electrodes, ...:
        :data:`LEADDBS_NOT_MODELLED`, naming the model and why), and for unknown names
        (naming the closest known names).
    """
    name = str(elmodel).strip()
    if name in LEADDBS_LEAD_MODELS:
        mapped = LEADDBS_LEAD_MODELS[name]
        if mapped is None:
            why = LEADDBS_NOT_MODELLED.get(name, "not modelled")
            raise VtaError(f"Lead-DBS lead model '{name}' ({why}) is not a DBS lead vta models "
                           "(not in the vta catalogue; pass lead= with a custom lead)")
        return get_lead(mapped).name
    try:
        return get_lead(name).name
    except VtaError:
        pass
    raise VtaError(f"unknown Lead-DBS lead model '{name}'{_suggest(name, list(LEADDBS_LEAD_MODELS))} "
                   "(pass lead= to choose the vta lead model)")


def load_leaddbs_reconstruction(path: str | Path, side: str | int = "right", space: str = "mni",
                                lead: LeadModel | str | None = None) -> tuple[LeadPlacement, str | None]:
    """Read a lead placement from a Lead-DBS ``ea_reconstruction.mat``.

    The file holds ``reco.<space>.coords_mm{side}`` (contact centres, one row per
    contact), ``reco.<space>.markers(side).head/.tail/.x/.y`` and
    ``reco.props(side).elmodel``; side 1 = right, 2 = left. ``head`` is the centre
    of the most distal contact, ``tail`` a more proximal contact centre on the axis.

    * direction = unit(tail - head);
    * tip (the lead's distal end) = head - c0 * direction, with ``c0`` the distance
      of contact 0's centre from the distal end for the lead model
      (:attr:`vta.leads.ContactGeometry.center_z_mm`);
    * rotation: chosen so that the placement's local +x axis (the marker direction,
      segment 0 of :class:`vta.leads.LeadPlacement`) points along ``markers.y - head``
      (projected normal to the axis), Lead-DBS's marker direction. Both tools call
      "rotation 0" the anterior direction (world +y) projected normal to the lead
      and count counter-clockwise seen from the entry, but Lead-DBS rotates the
      anterior vector by its angle *before* projecting and vta *after*, so the two
      numbers agree exactly only for a lead along world z (for a lead tilted ~30
      degrees they differ by up to ~10 degrees, depending on the angle); the marker
      direction itself is kept exactly.

    Without ``markers`` the direction comes from the first and last ``coords_mm``
    rows and the rotation is 0 (a warning is logged). Older files with top-level
    ``markers``/``coords_mm``/``elmodel`` (no ``reco``) are read too.

    Parameters
    ----------
    path : str or Path
        The ``.mat`` file (MATLAB v5, read with scipy; v7.3/HDF5 needs ``h5py``).
    side : {"right", "left"} or {1, 2}
        Which lead.
    space : {"mni", "native", "scrf"}
        Which coordinates (template MNI or the patient's native space).
    lead : LeadModel or str, optional
        Override the lead model (needed when ``elmodel`` is missing or unknown).

    Returns
    -------
    (LeadPlacement, str or None)
        The placement and the vta catalogue name of the lead (``None`` when ``lead``
        was given as a custom :class:`LeadModel` that is not in the catalogue).

    Raises
    ------
    VtaError
        Missing/unreadable file, no ``reco``/space/side in it, unknown ``elmodel``
        (without ``lead``), degenerate markers.
    """
    p = Path(path)
    if not p.is_file():
        raise VtaError(f"Lead-DBS reconstruction '{p}': file not found")
    what = f"Lead-DBS reconstruction '{p}'"
    side_key = str(side).lower()
    if side_key not in _SIDES:
        raise VtaError(f"{what}: side must be 'right' (1) or 'left' (2), got {side!r}")
    si = _SIDES[side_key]
    side_name = "right" if si == 0 else "left"
    if space not in _SPACES:
        raise VtaError(f"{what}: space must be one of {', '.join(_SPACES)}, got {space!r}")
    mat = _read_mat(p, what)

    if "reco" in mat:
        reco = mat["reco"]
        if not isinstance(reco, dict):
            raise VtaError(f"{what}: 'reco' is not a struct")
        if space not in reco or not isinstance(reco[space], dict):
            have = [k for k in _SPACES if isinstance(reco.get(k), dict)]
            raise VtaError(f"{what}: no reco.{space} (has {', '.join(have) or 'no coordinate spaces'})")
        coords_all, markers_all = reco[space].get("coords_mm"), reco[space].get("markers")
        props = _as_list(reco.get("props"))
        # one props entry for both sides: Lead-DBS then takes props(1) for either side
        elmodel = _field(props[si] if si < len(props) else (props[0] if props else None), "elmodel")
    elif "markers" in mat or "coords_mm" in mat:
        log.info("%s: old-style file without 'reco'; reading top-level markers (space unknown)", what)
        coords_all, markers_all = mat.get("coords_mm"), mat.get("markers")
        elmodel = mat.get("elmodel")
    else:
        raise VtaError(f"{what}: no 'reco' struct (is this an ea_reconstruction.mat?)")

    markers = _as_list(markers_all)
    coords = _coords_list(coords_all)
    mk = markers[si] if si < len(markers) else None
    head = _vec(_field(mk, "head"))
    tail = _vec(_field(mk, "tail"))
    cc = coords[si] if si < len(coords) else None
    if (head is None or tail is None) and (cc is None or len(cc) < 2):
        raise VtaError(f"{what}: the {side_name} side (side {si + 1}) is not in the reconstruction")
    model, model_name = _resolve_model(elmodel, lead, what)
    if head is None or tail is None:
        log.warning("%s: no markers for the %s side; direction from coords_mm, rotation 0", what, side_name)
        head, tail = cc[0], cc[-1]
        ymark = None
    else:
        ymark = _vec(_field(mk, "y"))
    d = tail - head
    n = float(np.linalg.norm(d))
    if not np.isfinite(n) or n < 1e-6:
        raise VtaError(f"{what}: {side_name} head and tail markers coincide or are not finite")
    direction = d / n
    tip = head - model.contact(0).center_z_mm * direction
    rotation = 0.0
    if ymark is not None:
        v = ymark - head
        v = v - (v @ direction) * direction
        if np.linalg.norm(v) > 1e-9:
            frame0 = LeadPlacement(tip, direction, 0.0).frame
            rotation = math.degrees(math.atan2(float(v @ frame0[:, 1]), float(v @ frame0[:, 0])))
        else:
            log.warning("%s: %s y marker lies on the lead axis; rotation 0", what, side_name)
    _check_consistency(model, head, tail, cc, what, side_name)
    return LeadPlacement(tip, direction, rotation), model_name


def _resolve_model(elmodel: Any, lead: LeadModel | str | None, what: str) -> tuple[LeadModel, str | None]:
    if lead is not None:
        if isinstance(lead, LeadModel):
            return lead, (lead.name if lead.name in lead_catalogue() else None)
        model = get_lead(lead)
        return model, model.name
    if not isinstance(elmodel, str) or not elmodel.strip():
        raise VtaError(f"{what}: no lead model (reco.props.elmodel); pass lead= to choose one")
    try:
        name = leaddbs_lead_name(elmodel)
    except VtaError as exc:
        raise VtaError(f"{what}: {exc}") from None
    return get_lead(name), name


def _check_consistency(model: LeadModel, head: np.ndarray, tail: np.ndarray, coords: np.ndarray | None,
                       what: str, side_name: str) -> None:
    if coords is None:
        return
    if len(coords) != model.n_contacts:
        log.warning("%s: %s coords_mm has %d rows but '%s' has %d contacts",
                    what, side_name, len(coords), model.name, model.n_contacts)
        return
    # head = centre of the first level (Lead-DBS: the mean of its segments' rows)
    first = coords[:model.levels[0]].mean(axis=0)
    if np.linalg.norm(first - head) > 0.5:
        log.warning("%s: %s head marker is %.2f mm from the first contact level's centre",
                    what, side_name, float(np.linalg.norm(first - head)))


def _read_mat(p: Path, what: str) -> dict[str, Any]:
    with open(p, "rb") as f:
        header = f.read(128)
    if b"MATLAB 7.3" in header or header[:8] == b"\x89HDF\r\n\x1a\n":
        return _read_mat_v73(p, what)
    import scipy.io

    try:
        raw = scipy.io.loadmat(str(p), simplify_cells=True)
    except NotImplementedError:  # v7.3 without the usual header text
        return _read_mat_v73(p, what)
    except Exception as exc:  # scipy raises ValueError/TypeError/MatReadError for broken files
        raise VtaError(f"{what}: cannot read as a MATLAB file ({type(exc).__name__}: {exc})") from exc
    return {k: v for k, v in raw.items() if not k.startswith("__")}


def _read_mat_v73(p: Path, what: str) -> dict[str, Any]:
    """MATLAB v7.3 (HDF5) reader for the structures used here (structs, struct arrays,
    cells, numeric arrays, char)."""
    try:
        import h5py
    except ImportError:
        raise VtaError(f"{what}: a MATLAB v7.3 (HDF5) file needs the 'h5py' package "
                       "(pip install h5py), or re-save it in MATLAB with save(..., '-v7')") from None
    try:
        with h5py.File(str(p), "r") as f:
            return {k: _h5_value(f, f[k]) for k in f.keys() if not k.startswith("#")}
    except VtaError:
        raise
    except Exception as exc:
        raise VtaError(f"{what}: cannot read as MATLAB v7.3 ({type(exc).__name__}: {exc})") from exc


def _h5_value(f: Any, obj: Any) -> Any:
    import h5py

    if isinstance(obj, h5py.Group):
        fields = {k: obj[k] for k in obj.keys() if not k.startswith("#")}
        # struct array: every field is a dataset of references without a MATLAB_class
        is_array = bool(fields) and all(isinstance(v, h5py.Dataset) and v.dtype == h5py.ref_dtype
                                         and "MATLAB_class" not in v.attrs for v in fields.values())
        if is_array:
            cols = {k: [_h5_value(f, f[r]) for r in np.asarray(v[()]).T.ravel()] for k, v in fields.items()}
            n = len(next(iter(cols.values())))
            items = [{k: cols[k][i] for k in cols} for i in range(n)]
            return items[0] if n == 1 else items
        return {k: _h5_value(f, v) for k, v in fields.items()}
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if obj.attrs.get("MATLAB_empty", 0):
        return np.array([])
    data = obj[()]
    if obj.dtype == h5py.ref_dtype:
        items = [_h5_value(f, f[r]) for r in np.asarray(data).T.ravel()]
        return items[0] if len(items) == 1 else items
    arr = np.asarray(data).T
    if cls == "char":
        return "".join(chr(int(c)) for c in arr.ravel())
    arr = np.squeeze(arr)
    return arr.item() if arr.ndim == 0 else arr


def _as_list(x: Any) -> list[Any]:
    """A MATLAB struct array / cell (as scipy's simplify_cells gives it) as a list."""
    if x is None:
        return []
    if isinstance(x, dict):
        return [x]
    if isinstance(x, np.ndarray) and x.dtype == object:
        return list(x.ravel())
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _coords_list(x: Any) -> list[np.ndarray | None]:
    """coords_mm cell -> list of (K, 3) arrays (None for empty sides)."""
    if x is None:
        return []
    if isinstance(x, np.ndarray) and x.dtype != object:
        items: list[Any] = [x]  # a 1x1 cell squeezed to its content
    else:
        items = _as_list(x)
    out: list[np.ndarray | None] = []
    for it in items:
        a = np.asarray(it, dtype=float) if it is not None and np.size(it) else None
        if a is not None and a.ndim == 1 and a.size == 3:
            a = a[None, :]
        out.append(a if a is not None and a.ndim == 2 and a.shape[1] == 3 else None)
    return out


def _field(struct: Any, name: str) -> Any:
    if isinstance(struct, dict):
        return struct.get(name)
    return None


def _vec(x: Any) -> np.ndarray | None:
    if x is None:
        return None
    try:
        a = np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError):
        return None
    return a if a.shape == (3,) and np.all(np.isfinite(a)) else None
