"""Fields, fibres and placements of the synthetic cohorts (:mod:`vta.cohort.synthetic`).

One real solve, then interpolation: :func:`unit_field_table` builds the axisymmetric
finite-element basis of the cohort's lead (SceneRay SR1242) in homogeneous 0.2 S/m
tissue inside a grounded 30 mm sphere around the middle of its contacts (what
``vta run`` solves for the synthetic template) and tabulates the field ``(E_r, E_z)``
of +1 mA on each contact (the others floating) on a lead-local (r, z) grid (0.1 mm),
once per process. A setting's field is the current-weighted sum of these tables, which
is exact in current mode (the field is linear in the contact currents, floating
contacts included), rotated into place; |E| is bilinear in (r, z), 0 inside the lead
body (as ``vta run`` writes it) and outside the table (r > 15 mm, where |E| < 0.01 V/mm
at 5 mA).

Fibres: the synthetic ALIC bundles (:func:`vta.activation.alic_bundle.default_alic_bundle`);
a fibre is activated when it passes through the VTA (max |E| along the streamline >= the
threshold, the VTA-intersection criterion of fibre filtering, Baldermann et al. 2019
Biol Psychiatry 85:735) and does not cross the lead body.

Lengths mm, fields V/mm, currents mA.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..activation.streamlines import Tract
from ..fem.grid import VoxelGrid
from ..leads import LeadModel, LeadPlacement

__all__ = ["LEAD_MODEL", "SyntheticLead", "UnitFieldTable", "fibre_activation", "planted_centre_mm",
           "subject_images", "template_data", "unit_field_table"]

log = logging.getLogger(__name__)

#: The lead of the synthetic cohorts (a SceneRay lead, as registered by the Tangdu NAc/ALIC group).
LEAD_MODEL = "SceneRay SR1242"
CONDUCTIVITY_S_PER_M = 0.2
THRESHOLD_V_PER_MM = 0.2
PULSE_WIDTH_US = 90.0
FREQUENCY_HZ = 130.0
DOMAIN_RADIUS_MM = 30.0
_CAP = 2.0  # threshold factors above this are written as inf (as vta run does)


# ----------------------------------------------------------------------------- unit field table


@dataclass(frozen=True)
class UnitFieldTable:
    """The field of 1 mA on each contact on a lead-local (r, z) grid.

    Attributes
    ----------
    lead : str
        Lead model name.
    r_mm, z_mm : ndarray
        Grid axes (mm): radial distance from the lead axis and position along it from
        the tip.
    fields : ndarray, shape (K, nr, nz, 2)
        ``(E_r, E_z)`` (V/mm) of contact k at +1 mA (the others floating, the outer
        boundary grounded); inside the lead filled with the nearest tissue value.
    lead_radius_mm : float
    basis : AxisymmetricBasis
        The solved basis (for VTA volumes and impedances of any setting).
    """

    lead: str
    r_mm: np.ndarray
    z_mm: np.ndarray
    fields: np.ndarray = field(repr=False)
    lead_radius_mm: float
    basis: object = field(repr=False)

    def field_norm(self, local_mm: np.ndarray, currents_mA: np.ndarray) -> np.ndarray:
        """|E| (V/mm) at lead-local points (..., 3) for contact currents (K,) in mA.

        Bilinear in (r, z); 0 inside the lead body and outside the table.
        """
        pts = np.asarray(local_mm, float)
        shape = pts.shape[:-1]
        pts = pts.reshape(-1, 3)
        r = np.hypot(pts[:, 0], pts[:, 1])
        z = pts[:, 2]
        cur = np.asarray(currents_mA, float)
        table = sum(cur[k] * self.fields[k] for k in np.flatnonzero(cur))  # (nr, nz, 2): superposition
        if np.isscalar(table):
            return np.zeros(shape)
        dr, dz = self.r_mm[1] - self.r_mm[0], self.z_mm[1] - self.z_mm[0]
        fr, fz = r / dr, (z - self.z_mm[0]) / dz
        nr, nz = len(self.r_mm), len(self.z_mm)
        inside = (fr <= nr - 1) & (fz >= 0) & (fz <= nz - 1)
        i = np.clip(np.floor(fr).astype(np.int64), 0, nr - 2)
        j = np.clip(np.floor(fz).astype(np.int64), 0, nz - 2)
        tr, tz = np.clip(fr - i, 0, 1)[:, None], np.clip(fz - j, 0, 1)[:, None]
        e = ((table[i, j] * (1 - tz) + table[i, j + 1] * tz) * (1 - tr)
             + (table[i + 1, j] * (1 - tz) + table[i + 1, j + 1] * tz) * tr)
        norm = np.sqrt(np.einsum("nd,nd->n", e, e))
        norm[~inside | ((r < self.lead_radius_mm) & (z >= 0))] = 0.0
        return norm.reshape(shape)


def template_data(spacing_mm: float) -> dict:
    """The template configuration (TOML mapping) of every synthetic subject."""
    return {
        "lead": {"model": LEAD_MODEL},
        "domain": {"shape": "sphere", "radius_mm": DOMAIN_RADIUS_MM, "center_mm": [0.0, 0.0, 0.0],
                   "outer_boundary": "ground"},
        "tissue": {"conductivity_S_per_m": CONDUCTIVITY_S_PER_M},
        "stimulation": {"mode": "current", "pulse_width_us": PULSE_WIDTH_US, "frequency_hz": FREQUENCY_HZ},
        "vta": {"threshold_V_per_mm": THRESHOLD_V_PER_MM},
        "output": {"grid_spacing_mm": float(spacing_mm)},
    }


@functools.lru_cache(maxsize=4)
def unit_field_table(lead_model: str = LEAD_MODEL, step_mm: float = 0.1, r_max_mm: float = 15.0) -> UnitFieldTable:
    """Solve the lead once (axisymmetric FEM) and tabulate each contact's 1 mA field.

    Cached per process. The model is the synthetic template's: homogeneous
    0.2 S/m tissue, a grounded sphere of 30 mm around the middle of the contacts.

    Parameters
    ----------
    lead_model : str
        A ring-contact lead of the catalogue.
    step_mm : float
        Table spacing in r and z (mm).
    r_max_mm : float
        Radial extent of the table (mm); along the lead it spans 12 mm below the tip to
        12 mm above the top contact.
    """
    from scipy import ndimage

    from ..fem.stimulation import Setting, resolve
    from ..leads import get_lead
    from ..scene import Scene

    t0 = time.perf_counter()
    lead = get_lead(lead_model)
    ext = lead.level_extents_mm()
    middle = 0.5 * (ext[0][0] + ext[-1][1])
    data = template_data(0.5)
    data["lead"] = {"model": lead.name, "tip_mm": [0.0, 0.0, 0.0], "direction": [0.0, 0.0, 1.0]}
    data["domain"] = {**data["domain"], "center_mm": [0.0, 0.0, middle]}
    data["stimulation"] = {**data["stimulation"], "contacts": {"0": 1.0}}
    scene = Scene.from_dict(data, "<synthetic cohort>", method="axisymmetric")
    basis = scene.basis
    r = np.arange(0.0, r_max_mm + step_mm / 2, step_mm)
    z = np.arange(-12.0, ext[-1][1] + 12.0 + step_mm / 2, step_mm)
    rr, zz = np.meshgrid(r, z, indexing="ij")
    rz = np.column_stack([rr.ravel(), zz.ravel()])
    fields = np.empty((lead.n_contacts, len(r), len(z), 2))
    for k in range(lead.n_contacts):
        state = resolve(Setting("current", {k: 1.0}), basis.conductance_S, basis.outer_grounded)
        fields[k] = -basis.gradient_rz(rz, state.potentials_V).reshape(len(r), len(z), 2)
    bad = ~np.isfinite(fields[0, :, :, 0])  # the lead body: nearest tissue value (the lead is masked anyway)
    if bad.any():
        idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        fields = fields[:, idx[0], idx[1], :]
    log.info("synthetic cohort: tabulated the 1 mA fields of the %s (%d x %d (r, z) points) in %.2f s",
             lead.name, len(r), len(z), time.perf_counter() - t0)
    return UnitFieldTable(lead.name, r, z, fields, lead.radius_mm, basis)


@functools.lru_cache(maxsize=8)
def alic_bundle_points(side: str, n_fibres: int, seed: int) -> tuple[Tract, np.ndarray, np.ndarray, np.ndarray]:
    """The side's synthetic ALIC bundle (named ``ALIC_bundle``, as ``vta run`` names it) and
    its points flattened: ``(tract, points (P, 3) in MNI mm, fibre index of every point (P,),
    first point of every fibre (F,))``. Cached per process."""
    from ..activation.alic_bundle import default_alic_bundle

    tract = default_alic_bundle(side=side, n_fibres=n_fibres, seed=seed, name="ALIC_bundle")
    lengths = np.array([len(s) for s in tract.streamlines])
    points = np.concatenate(tract.streamlines)
    return tract, points, np.repeat(np.arange(len(lengths)), lengths), np.concatenate([[0], np.cumsum(lengths)[:-1]])


@functools.lru_cache(maxsize=2)
def nominal_trajectories() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Side -> (tip (3,) in MNI mm, unit direction (3,) towards the entry) of the ``NAc_<side>``
    target trajectory in the default anatomy (:func:`vta.anatomy.targets.target_trajectory`)."""
    from ..anatomy.default import default_anatomy
    from ..anatomy.targets import target_trajectory

    anatomy = default_anatomy()
    return {s: (t.tip_mm, t.direction) for s in "RL" for t in [target_trajectory(f"NAc_{s}", anatomy)]}


def planted_centre_mm(side: str, axial_mm: float, offset_mm: float) -> np.ndarray:
    """A point ``axial_mm`` up the nominal ``NAc_<side>`` trajectory from its tip and
    ``offset_mm`` medially off it (perpendicular to it), in MNI mm."""
    tip, d = nominal_trajectories()[side]
    medial = np.array([-1.0 if side == "R" else 1.0, 0.0, 0.0])
    medial = medial - (medial @ d) * d
    return tip + axial_mm * d + offset_mm * medial / np.linalg.norm(medial)


# ----------------------------------------------------------------------------- one subject-hemisphere


@dataclass
class SyntheticLead:
    """One drawn subject-hemisphere: tip and entry (MNI mm), contact currents (K,) in mA
    (cathodic negative, 0 = floating), its placement, and (once computed) its fibre
    activation (:func:`fibre_activation`)."""

    subject: str
    side: str
    tip_mm: np.ndarray
    entry_mm: np.ndarray
    currents_mA: np.ndarray  # (K,), cathodic negative
    placement: LeadPlacement | None = None
    fibres: dict | None = None

    @property
    def active(self) -> list[int]:
        """Indices of the contacts that carry current."""
        return [int(k) for k in np.flatnonzero(self.currents_mA)]

    @property
    def name(self) -> str:
        """``<subject>_<side>``: the subject folder name."""
        return f"{self.subject}_{self.side}"


def sphere_offsets(radius_mm: float, step_mm: float = 0.25) -> np.ndarray:
    """Lattice points (n, 3) inside a sphere of ``radius_mm`` around the origin (mm)."""
    a = np.arange(-radius_mm, radius_mm + step_mm / 2, step_mm)
    g = np.stack(np.meshgrid(a, a, a, indexing="ij"), axis=-1).reshape(-1, 3)
    return g[(g ** 2).sum(1) <= radius_mm ** 2]


def search_radius_mm(currents_mA: np.ndarray) -> float:
    """The ``vta run`` tract search radius (mm) for these currents (mA)."""
    from ..activation.tract_activation import E_MIN_V_PER_MM, MIN_RADIUS_MM

    i_max = float(np.max(np.abs(currents_mA)))
    return max(MIN_RADIUS_MM, float(np.sqrt(i_max / (4 * np.pi * CONDUCTIVITY_S_PER_M * E_MIN_V_PER_MM))))


def fibre_activation(table: UnitFieldTable, lead: SyntheticLead, lead_model: LeadModel, n_fibres: int,
                     bundle_seed: int) -> dict:
    """Activation of every fibre of the side's bundle by one lead (see the module docstring).

    Returns
    -------
    dict
        Per fibre (F,): ``distance_mm`` (closest approach to an active contact centre),
        ``through_lead`` (crosses the lead body), ``threshold_factor`` (threshold / max |E|
        along the fibre; inf through the lead or above 2), ``activated``, ``listed``
        (within the ``vta run`` search radius: the rows of ``tracts.csv``); and
        ``radius_mm``, that radius.
    """
    _, points, fid, starts = alic_bundle_points(lead.side, n_fibres, bundle_seed)
    place = lead.placement
    centres = np.array([place.contact_center_mm(lead_model, k) for k in lead.active])
    d = np.sqrt(((points[:, None, :] - centres[None]) ** 2).sum(-1)).min(axis=1)
    dist = np.minimum.reduceat(d, starts)
    radius = search_radius_mm(lead.currents_mA)
    # |E| >= threshold needs a point within a few mm of an active contact: evaluate the
    # fibres that come within the search radius (>= 3 mm past the largest VTA here) only
    near = (dist <= radius)[fid]
    local = place.to_local(points[near])
    e = np.zeros(len(points))
    e[near] = table.field_norm(local, lead.currents_mA)
    in_lead = np.zeros(len(points), bool)
    in_lead[near] = (np.hypot(local[:, 0], local[:, 1]) < table.lead_radius_mm) & (local[:, 2] >= 0.0)
    emax = np.maximum.reduceat(e, starts)
    through = np.logical_or.reduceat(in_lead, starts)
    with np.errstate(divide="ignore"):
        factor = np.where(emax > 0, THRESHOLD_V_PER_MM / np.where(emax > 0, emax, 1.0), np.inf)
    factor[through | (factor > _CAP)] = np.inf
    activated = factor <= 1.0
    listed = dist <= radius
    return {"distance_mm": dist, "through_lead": through, "threshold_factor": factor, "activated": activated,
            "listed": listed, "radius_mm": radius}


def subject_images(table: UnitFieldTable, lead: SyntheticLead, lead_model: LeadModel,
                   spacing_mm: float) -> tuple[VoxelGrid, np.ndarray, np.ndarray]:
    """The ``vta run`` output grid around the active contacts (``spacing_mm`` voxels), |E|
    on it (float32, V/mm) and the VTA (bool, ``|E| >= 0.2 V/mm``)."""
    from ..activation.efield import auto_grid

    place = lead.placement
    centres = np.array([place.contact_center_mm(lead_model, k) for k in lead.active])
    ext = lead_model.level_extents_mm()
    centre = place.to_world(np.array([0.0, 0.0, 0.5 * (ext[0][0] + ext[-1][1])]))
    bounds = np.array([centre - DOMAIN_RADIUS_MM, centre + DOMAIN_RADIUS_MM])
    grid = auto_grid(centres, lead.currents_mA[lead.active], CONDUCTIVITY_S_PER_M, THRESHOLD_V_PER_MM, spacing_mm,
                     bounds_mm=bounds)
    norm = table.field_norm(place.to_local(grid.points()), lead.currents_mA).reshape(grid.shape)
    return grid, norm.astype(np.float32), norm >= THRESHOLD_V_PER_MM


