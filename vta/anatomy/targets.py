"""Lead placement helpers: target presets, voxel <-> world placement, Lead-DBS import.

A lead placement (:class:`vta.leads.LeadPlacement`) is a tip (the lead's distal end),
a unit direction from the tip towards the entry point and a rotation about the lead
axis, all in world mm (MNI for the default anatomy). This module builds placements

* from **target presets** (:data:`TARGET_PRESETS`): ``"NAc_R"`` / ``"NAc_L"`` put the
  tip in the nucleus accumbens with the trajectory through the anterior limb of the
  internal capsule (ALIC), the NAc/ALIC DBS target of Ge et al. 2025 / Chen et al.
  2019 (see :func:`target_trajectory` for the recipe);
* from tip/entry **voxel indices** of an image (:func:`placement_from_voxels`);
* from a **Lead-DBS reconstruction** ``ea_reconstruction.mat``
  (:func:`load_leaddbs_reconstruction`).

All lengths are in mm, angles in degrees.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atlas_io import Image, _suggest, check_affine
from ..errors import VtaError
from ..leads import LeadModel, LeadPlacement, get_lead

__all__ = [
    "LEADDBS_LEAD_MODELS",
    "TARGET_PRESETS",
    "ContactCoverage",
    "TargetPreset",
    "Trajectory",
    "contact_centers_mm",
    "contact_voxel_indices",
    "contacts_in_structures",
    "leaddbs_lead_name",
    "load_leaddbs_reconstruction",
    "placement_for_target",
    "placement_from_voxels",
    "target_trajectory",
]

log = logging.getLogger(__name__)

# --- target presets ------------------------------------------------------------------


@dataclass(frozen=True)
class TargetPreset:
    """A named target: the structure holding the tip and one the trajectory crosses.

    Attributes
    ----------
    name : str
        Preset name, e.g. ``"NAc_R"``.
    side : {"R", "L"}
        Hemisphere.
    target : str
        Structure that holds the tip (e.g. ``"NAc_R"``).
    through : str
        Structure the trajectory passes through above the target (e.g. ``"ALIC_R"``).
    fixed_tip_mm, fixed_through_mm : tuple of 3 float
        Fallback tip and through-point in MNI mm used without an anatomy
        (FACTS.md s7.2-7.3: symmetrised AAL3 NAc centroid (+-9, 12, -8) and the ALIC
        just above and lateral to it (+-17, 13, 3.5)).
    tip_offset_mm : float
        With an anatomy, the tip lies this far below (world -z) the target centroid (mm).
    through_slab_mm : float
        With an anatomy, the through-point is the centroid of the part of the
        ``through`` structure at most this far above the top of the target (mm): the
        ventral ALIC next to the NAc rather than the centroid of the whole, curved
        ALIC (a line through that passes the pallidum).
    entry_distance_mm : float
        Distance from the tip to the nominal entry point along the trajectory (mm).
    description : str
    """

    name: str
    side: str
    target: str
    through: str
    fixed_tip_mm: tuple[float, float, float]
    fixed_through_mm: tuple[float, float, float]
    tip_offset_mm: float = 2.0
    through_slab_mm: float = 10.0
    entry_distance_mm: float = 70.0
    description: str = ""


def _nac_preset(side: str) -> TargetPreset:
    s = 1.0 if side == "R" else -1.0
    return TargetPreset(
        name=f"NAc_{side}", side=side, target=f"NAc_{side}", through=f"ALIC_{side}",
        fixed_tip_mm=(9.0 * s, 12.0, -8.0), fixed_through_mm=(17.0 * s, 13.0, 3.5),
        description=f"{'right' if side == 'R' else 'left'} nucleus accumbens, trajectory through the ALIC "
                    "(NAc/ALIC DBS, Ge et al. 2025; Chen et al. 2019)")


#: Named targets. ``NAc_R`` / ``NAc_L``: tip in the NAc, trajectory through the ALIC.
TARGET_PRESETS: dict[str, TargetPreset] = {p.name: p for p in (_nac_preset("R"), _nac_preset("L"))}


@dataclass(frozen=True)
class Trajectory:
    """A planned straight trajectory (world mm).

    Attributes
    ----------
    tip_mm : ndarray (3,)
        Where the lead's distal end goes.
    through_mm : ndarray (3,)
        A point the trajectory passes through (the ``through`` structure's reference).
    entry_mm : ndarray (3,)
        Nominal entry point ``tip + entry_distance * direction`` (not a planned burr hole).
    direction : ndarray (3,)
        Unit vector from the tip towards the entry.
    source : {"anatomy", "fixed"}
        Whether the points come from the anatomy's structures or fixed coordinates.
    """

    tip_mm: np.ndarray
    through_mm: np.ndarray
    entry_mm: np.ndarray
    direction: np.ndarray
    source: str


def _preset(name: str) -> TargetPreset:
    if isinstance(name, TargetPreset):
        return name
    if name in TARGET_PRESETS:
        return TARGET_PRESETS[name]
    low = {k.lower(): v for k, v in TARGET_PRESETS.items()}
    if str(name).lower() in low:
        return low[str(name).lower()]
    raise VtaError(f"unknown target preset '{name}'{_suggest(str(name), list(TARGET_PRESETS))} "
                   f"(use one of {', '.join(TARGET_PRESETS)})")


def _resolve_anatomy(anatomy: Any) -> Any:
    if isinstance(anatomy, str):
        if anatomy != "default":
            raise VtaError(f"anatomy must be an Anatomy, None or 'default', got '{anatomy}'")
        from .model import default_anatomy

        try:
            return default_anatomy()
        except VtaError as exc:
            log.warning("default anatomy unavailable (%s); using fixed target coordinates", exc)
            return None
    return anatomy


def target_trajectory(name: str | TargetPreset, anatomy: Any = None) -> Trajectory:
    """Tip, through-point and direction of a target preset.

    Recipe with an anatomy (``Anatomy`` or ``"default"`` for :func:`vta.anatomy.model.default_anatomy`):

    1. tip = centroid of the ``target`` structure (e.g. NAc_R) moved
       ``tip_offset_mm`` (2 mm) down (world -z), so that the most ventral contacts sit
       in the NAc;
    2. through = centroid of the ventral part of the ``through`` structure (e.g.
       ALIC_R): its voxels at most ``through_slab_mm`` (10 mm) above the top of the
       target structure (about (17, 12.6, 2) mm in the default HCPex anatomy, cf.
       FACTS s7.3 (17, 13, 3.5));
    3. direction = unit(through - tip): from the NAc up through the ALIC and on
       towards a frontal entry (lateral, slightly anterior);
       entry = tip + ``entry_distance_mm`` (70 mm) x direction (nominal).

    With the default anatomy this puts, e.g., 1 contact of a SceneRay SR1242 or
    Medtronic 3391 in the NAc and 2-3 in the ALIC (check with
    :func:`contacts_in_structures`); the derived ALIC is only 2-3 mm thick, so a
    straight line weaves in and out of it.

    Without an anatomy (``None``), or if it lacks the structures (a warning is
    logged), the fixed MNI coordinates of FACTS.md s7.3 are used: right tip
    (9, 12, -8), through (17, 13, 3.5); left mirrored in x.

    Parameters
    ----------
    name : str or TargetPreset
        Preset name (:data:`TARGET_PRESETS`), case-insensitive.
    anatomy : Anatomy, "default" or None
        Where the structures come from.
    """
    pre = _preset(name)
    anat = _resolve_anatomy(anatomy)
    source = "fixed"
    tip = np.array(pre.fixed_tip_mm, float)
    through = np.array(pre.fixed_through_mm, float)
    if anat is not None:
        missing = [s for s in (pre.target, pre.through) if s not in getattr(anat, "structures", {})]
        if missing:
            log.warning("target '%s': the anatomy has no %s; using fixed MNI coordinates",
                        pre.name, " or ".join(missing))
        else:
            target = anat.structure(pre.target)
            tip = target.centroid_mm() - np.array([0.0, 0.0, pre.tip_offset_mm])
            z_top = float(_voxels_mm(target)[:, 2].max())
            through = _centroid_below(anat.structure(pre.through), z_top + pre.through_slab_mm)
            source = "anatomy"
    d = through - tip
    norm = float(np.linalg.norm(d))
    if norm < 1e-6:
        raise VtaError(f"target '{pre.name}': tip and through-point coincide")
    d = d / norm
    return Trajectory(tip, through, tip + pre.entry_distance_mm * d, d, source)


def _voxels_mm(structure: Any, threshold: float = 0.5) -> np.ndarray:
    """World coordinates (N, 3) of a structure's voxels (probability >= threshold)."""
    img = structure.image
    d = img.data
    ijk = np.argwhere(d if d.dtype == bool else d >= threshold)
    if len(ijk) == 0:
        raise VtaError(f"structure '{structure.name}' is empty")
    return img.voxel_to_world(ijk)


def _centroid_below(structure: Any, z_max_mm: float) -> np.ndarray:
    """Centroid (mm) of a structure's voxels with world z <= z_max (all voxels if none)."""
    w = _voxels_mm(structure)
    sel = w[w[:, 2] <= z_max_mm]
    if len(sel) == 0:
        log.warning("structure '%s' has no voxels below z = %.1f mm; using its whole centroid",
                    structure.name, z_max_mm)
        sel = w
    return sel.mean(axis=0)


def placement_for_target(name: str | TargetPreset, lead: LeadModel | str | None = None, anatomy: Any = None,
                         rotation_deg: float = 0.0, align: str = "tip") -> LeadPlacement:
    """A lead placement for a target preset (see :func:`target_trajectory` for the recipe).

    Parameters
    ----------
    name : str or TargetPreset
        Target preset, e.g. ``"NAc_R"``.
    lead : LeadModel or str, optional
        The lead (needed for ``align="span"``).
    anatomy : Anatomy, "default" or None
        Structures for the recipe; ``None`` uses fixed MNI coordinates.
    rotation_deg : float
        Rotation about the lead axis (degrees; see :class:`vta.leads.LeadPlacement`).
    align : {"tip", "span"}
        ``"tip"``: the lead's distal end at the preset tip. ``"span"``: slide the lead
        along the trajectory so that the middle of its active span sits halfway
        between where the trajectory leaves the target structure and where it first
        enters the through structure (the NAc/ALIC border), putting the ventral
        contacts towards the NAc and the dorsal ones towards the ALIC; needs an
        anatomy.

    Returns
    -------
    LeadPlacement
    """
    traj = target_trajectory(name, anatomy)
    tip = traj.tip_mm
    if align == "span":
        if lead is None:
            raise VtaError("placement_for_target(align='span') needs the lead model")
        anat = _resolve_anatomy(anatomy)
        if anat is None or traj.source != "anatomy":
            raise VtaError("placement_for_target(align='span') needs an anatomy with the target structures")
        model = get_lead(lead) if isinstance(lead, str) else lead
        pre = _preset(name)
        exit_s = _exit_distance(anat.structure(pre.target), traj.tip_mm, traj.direction)
        enter_s = _enter_distance(anat.structure(pre.through), traj.tip_mm, traj.direction, exit_s)
        border = 0.5 * (exit_s + enter_s)
        ext = model.level_extents_mm()
        mid = 0.5 * (ext[0][0] + ext[-1][1])
        tip = traj.tip_mm + (border - mid) * traj.direction
    elif align != "tip":
        raise VtaError(f"align must be 'tip' or 'span', got {align!r}")
    elif lead is not None and isinstance(lead, str):
        get_lead(lead)  # validate the name early
    return LeadPlacement(tip, traj.direction, rotation_deg)


def _exit_distance(structure: Any, tip: np.ndarray, direction: np.ndarray, step_mm: float = 0.1,
                   max_mm: float = 60.0) -> float:
    """Distance along the ray from ``tip`` to the last point inside ``structure`` (mm)."""
    s = np.arange(0.0, max_mm, step_mm)
    inside = structure.contains(tip[None, :] + s[:, None] * direction[None, :])
    if not inside.any():
        raise VtaError(f"the trajectory does not cross structure '{structure.name}'")
    first = int(np.argmax(inside))
    run_end = first
    while run_end + 1 < len(s) and inside[run_end + 1]:
        run_end += 1
    return float(s[run_end])


def _enter_distance(structure: Any, tip: np.ndarray, direction: np.ndarray, start_mm: float,
                    step_mm: float = 0.1, max_mm: float = 60.0) -> float:
    """Distance along the ray from ``tip`` to the first point inside ``structure`` after ``start_mm``."""
    s = np.arange(start_mm, max_mm, step_mm)
    inside = structure.contains(tip[None, :] + s[:, None] * direction[None, :])
    if not inside.any():
        raise VtaError(f"the trajectory does not cross structure '{structure.name}'")
    return float(s[int(np.argmax(inside))])


# --- contacts vs structures ----------------------------------------------------------


def contact_centers_mm(lead: LeadModel, placement: LeadPlacement) -> np.ndarray:
    """World positions (K, 3) in mm of every contact centre (segments: on the lead surface)."""
    return np.array([placement.contact_center_mm(lead, k) for k in range(lead.n_contacts)])


@dataclass(frozen=True)
class ContactCoverage:
    """Which contacts of a placed lead lie in which structures.

    Attributes
    ----------
    contacts : dict of str -> list of int
        Structure name -> contact indices whose centre lies in it.
    outside : list of int
        Contacts in none of the structures asked about.
    centers_mm : ndarray (K, 3)
        Contact centres (world mm).
    """

    contacts: dict[str, list[int]]
    outside: list[int]
    centers_mm: np.ndarray = field(repr=False)

    @property
    def counts(self) -> dict[str, int]:
        """Number of contacts per structure (and ``"outside"``)."""
        out = {k: len(v) for k, v in self.contacts.items()}
        out["outside"] = len(self.outside)
        return out


def contacts_in_structures(lead: LeadModel | str, placement: LeadPlacement, anatomy: Any,
                           structures: Sequence[str] | None = None, threshold: float = 0.5) -> ContactCoverage:
    """Report which contact centres fall in which structures (e.g. NAc vs ALIC).

    Parameters
    ----------
    lead : LeadModel or str
    placement : LeadPlacement
    anatomy : Anatomy
        Provides ``structure(name).contains(points_mm)``.
    structures : sequence of str, optional
        Structures to test; default: the NAc and ALIC on the side of the lead tip
        (``NAc_R``/``ALIC_R`` for x >= 0), or every structure if those are absent.
    threshold : float
        Probability threshold for probabilistic structures.
    """
    model = get_lead(lead) if isinstance(lead, str) else lead
    centers = contact_centers_mm(model, placement)
    if structures is None:
        side = "R" if placement.tip_mm[0] >= 0 else "L"
        wanted = [f"NAc_{side}", f"ALIC_{side}"]
        structures = wanted if all(w in anatomy.structures for w in wanted) else list(anatomy.structures)
    result: dict[str, list[int]] = {}
    hit = np.zeros(len(centers), bool)
    for name in structures:
        inside = np.asarray(anatomy.structure(name).contains(centers, threshold))
        result[name] = [int(i) for i in np.flatnonzero(inside)]
        hit |= inside
    return ContactCoverage(result, [int(i) for i in np.flatnonzero(~hit)], centers)


# --- voxel <-> world -------------------------------------------------------------------


def _affine_of(image_or_affine: Image | np.ndarray) -> np.ndarray:
    aff = image_or_affine.affine if isinstance(image_or_affine, Image) else image_or_affine
    return check_affine(aff, source="placement image")


def placement_from_voxels(image_or_affine: Image | np.ndarray, tip_ijk: Sequence[float],
                          entry_ijk: Sequence[float], rotation_deg: float = 0.0) -> LeadPlacement:
    """A placement from tip and entry voxel coordinates of an image (e.g. a planning T1).

    Parameters
    ----------
    image_or_affine : Image or ndarray (4, 4)
        The image (or its voxel -> world mm affine); oblique and LAS affines work.
    tip_ijk, entry_ijk : 3 floats
        Continuous voxel coordinates (voxel centres are integers).
    rotation_deg : float
        Rotation about the lead axis in world terms (degrees).
    """
    aff = _affine_of(image_or_affine)
    try:
        pts = np.array([tip_ijk, entry_ijk], float)
    except (TypeError, ValueError):
        pts = np.zeros(0)
    if pts.shape != (2, 3) or not np.all(np.isfinite(pts)):
        raise VtaError("tip_ijk and entry_ijk must be three finite numbers each")
    world = pts @ aff[:3, :3].T + aff[:3, 3]
    return LeadPlacement.from_entry(world[0], world[1], rotation_deg)


def contact_voxel_indices(lead: LeadModel | str, placement: LeadPlacement,
                          image_or_affine: Image | np.ndarray) -> np.ndarray:
    """Nearest voxel indices (K, 3) of every contact centre in an image's grid (may be outside it)."""
    model = get_lead(lead) if isinstance(lead, str) else lead
    inv = np.linalg.inv(_affine_of(image_or_affine))
    c = contact_centers_mm(model, placement)
    return np.rint(c @ inv[:3, :3].T + inv[:3, 3]).astype(np.int64)


# --- Lead-DBS import -------------------------------------------------------------------

#: Lead-DBS ``elmodel`` names (``ea_resolve_elspec.m``) -> vta catalogue names; ``None``
#: = not in the vta catalogue yet. Names that :func:`vta.leads.get_lead` resolves
#: directly (e.g. "Medtronic 3389", "SceneRay SR1242") need no entry but are listed.
LEADDBS_LEAD_MODELS: dict[str, str | None] = {
    "Medtronic 3389": "Medtronic 3389",
    "Medtronic 3387": "Medtronic 3387",
    "Medtronic 3391": "Medtronic 3391",
    "Medtronic B33005": "Medtronic SenSight B33005",
    "Medtronic B33015": "Medtronic SenSight B33015",
    "Boston Scientific Vercise": "Boston Scientific Vercise",
    "Boston Scientific Vercise Directed": "Boston Scientific Vercise Directed",
    "Boston Scientific Vercise Cartesia HX": None,
    "Boston Scientific Vercise Cartesia X": None,
    "Abbott ActiveTip (6146-6149)": "Abbott ActiveTip 6146",
    "Abbott ActiveTip (6142-6145)": "Abbott ActiveTip 6142",
    "Abbott Directed 6172 (short)": "Abbott 6172",
    "Abbott Directed 6173 (long)": "Abbott 6173",
    "St. Jude ActiveTip (6146-6149)": "Abbott ActiveTip 6146",
    "St. Jude ActiveTip (6142-6145)": "Abbott ActiveTip 6142",
    "St. Jude Directed 6172 (short)": "Abbott 6172",
    "St. Jude Directed 6173 (long)": "Abbott 6173",
    "PINS Medical L301": "PINS L301",
    "PINS Medical L302": "PINS L302",
    "PINS Medical L303": "PINS L303",
    "SceneRay SR1200": "SceneRay SR1200",
    "SceneRay SR1210": "SceneRay SR1210",
    "SceneRay SR1211": "SceneRay SR1211",
    "SceneRay SR1242": "SceneRay SR1242",
}

_SIDES = {"right": 0, "r": 0, "rh": 0, "1": 0, "left": 1, "l": 1, "lh": 1, "2": 1}
_SPACES = ("mni", "native", "scrf")


def leaddbs_lead_name(elmodel: str) -> str:
    """The vta catalogue name of a Lead-DBS ``elmodel`` string.

    Raises
    ------
    VtaError
        For models that vta does not have (naming the closest known names).
    """
    name = str(elmodel).strip()
    if name in LEADDBS_LEAD_MODELS:
        mapped = LEADDBS_LEAD_MODELS[name]
        if mapped is None:
            raise VtaError(f"Lead-DBS lead model '{name}' is not in the vta catalogue yet "
                           "(pass lead= with a custom lead)")
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
        elmodel = _field(props[si] if si < len(props) else None, "elmodel")
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
            from ..leads import lead_catalogue

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
    elif np.linalg.norm(coords[0] - head) > 0.5:
        log.warning("%s: %s head marker is %.2f mm from the first contact centre",
                    what, side_name, float(np.linalg.norm(coords[0] - head)))


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
