"""Activation by electric-field threshold: thresholds, VTA volume and VTA grids.

The VTA is the tissue where ``|E| >= threshold``. Its volume is integrated on the
finite-element mesh by the field basis (no voxelisation error); the voxel grid written
as NIfTI is for viewing and for overlap with atlases.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import VtaError
from ..fem.grid import VoxelGrid

__all__ = [
    "ASTROM_TABLE",
    "CHARGE_DENSITY_LIMIT_UC_CM2",
    "SHANNON_K",
    "VtaGrid",
    "astrom_threshold",
    "auto_grid",
    "charge_metrics",
    "field_norm_grid",
    "field_norm_on_grid",
    "grid_clipping_warning",
    "structure_coverage",
    "structure_samples",
]

log = logging.getLogger(__name__)

#: Astrom et al., IEEE TBME 2015;62:664 E-field thresholds (V/mm) by axon diameter (um,
#: rows) and pulse width (us, columns), as tabulated in Lead-DBS ea_vatsettings_horn.m
#: (labelled "Astrom 2014" there). The published D = 2.5 um, 120 us entry (0.310)
#: increases with pulse width, which no other row does: it is taken as a transcription
#: error and replaced by 0.205, the 90 -> 120 us ratio of the neighbouring rows (0.854)
#: applied to 0.240.
ASTROM_PULSE_WIDTHS_US = np.array([30.0, 60.0, 90.0, 120.0])
ASTROM_DIAMETERS_UM = np.array([2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0])
ASTROM_TABLE = np.array(
    [
        [0.765, 0.457, 0.376, 0.323],
        [0.504, 0.323, 0.240, 0.205],
        [0.376, 0.240, 0.185, 0.157],
        [0.300, 0.185, 0.142, 0.121],
        [0.240, 0.150, 0.115, 0.096],
        [0.225, 0.142, 0.107, 0.090],
        [0.177, 0.110, 0.087, 0.074],
    ]
)


#: Shannon (1992) safety parameter: unsafe when log10(D) > k - log10(Q).
SHANNON_K = 1.85
#: Conventional charge-density limit (uC/cm^2 per phase).
CHARGE_DENSITY_LIMIT_UC_CM2 = 30.0


def charge_metrics(current_mA: np.ndarray, pulse_width_us: np.ndarray, area_mm2: np.ndarray | float, *,
                   shannon_k: float = SHANNON_K, density_limit_uC_cm2: float = CHARGE_DENSITY_LIMIT_UC_CM2):
    """Charge per phase (uC), charge density (uC/cm^2) and the two safety flags.

    Broadcasts over its arguments. ``exceeds_shannon``: ``log10(D) > k - log10(Q)``
    (Shannon 1992, default k = 1.85); ``exceeds_density``: ``D > density_limit_uC_cm2``
    (default 30 uC/cm^2). Both flags are False where the density is undefined (NaN
    contact area).
    """
    q = np.abs(np.asarray(current_mA, float)) * np.asarray(pulse_width_us, float) * 1e-3  # mA x us = nC -> uC
    d = q / (np.asarray(area_mm2, float) * 1e-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        shannon = (q > 0) & (np.log10(d) + np.log10(q) > shannon_k)
        return q, d, d > density_limit_uC_cm2, shannon


def astrom_threshold(fiber_diameter_um: float, pulse_width_us: float) -> float:
    """E-field activation threshold (V/mm) for an axon diameter and pulse width.

    Bilinear interpolation of :data:`ASTROM_TABLE` in log(threshold).

    Parameters
    ----------
    fiber_diameter_um : float
        Axon diameter (um), 2-5.
    pulse_width_us : float
        Pulse width (us), 30-120.

    Raises
    ------
    VtaError
        Outside the table (no extrapolation).
    """
    d, pw = float(fiber_diameter_um), float(pulse_width_us)
    if not ASTROM_DIAMETERS_UM[0] <= d <= ASTROM_DIAMETERS_UM[-1]:
        raise VtaError(f"axon diameter {d} um is outside the Astrom table (2-5 um)")
    if not ASTROM_PULSE_WIDTHS_US[0] <= pw <= ASTROM_PULSE_WIDTHS_US[-1]:
        raise VtaError(f"pulse width {pw} us is outside the Astrom table (30-120 us)")
    logt = np.log(ASTROM_TABLE)
    per_pw = np.array([np.interp(d, ASTROM_DIAMETERS_UM, logt[:, j]) for j in range(logt.shape[1])])
    return float(np.exp(np.interp(pw, ASTROM_PULSE_WIDTHS_US, per_pw)))


def auto_grid(
    centers_mm: np.ndarray,
    currents_mA: np.ndarray,
    sigma_S_per_m: float,
    threshold_V_per_mm: float,
    spacing_mm: float,
    margin_mm: float | None = None,
    bounds_mm: np.ndarray | None = None,
) -> VoxelGrid:
    """A voxel grid around the contacts large enough to hold the VTA.

    The automatic margin is 1.5 x the point-source radius at which the total cathodic
    (or anodic) current gives ``|E| = threshold`` (``r = sqrt(I / (4 pi sigma E))``, the
    field of a point source in a homogeneous medium) plus 2 mm.

    Parameters
    ----------
    centers_mm : ndarray, shape (n, 3)
        World positions of the contacts (mm).
    currents_mA : ndarray, shape (n,)
        Contact currents (mA).
    sigma_S_per_m : float
        A representative (lowest) tissue conductivity (S/m).
    threshold_V_per_mm : float
    spacing_mm : float
        Voxel size (mm).
    margin_mm : float, optional
        Fixed margin around the contacts (mm) instead of the automatic one.
    bounds_mm : ndarray, shape (2, 3), optional
        World box of the model domain (mm): the grid does not reach past it (there is
        no tissue there), however large the margin.
    """
    if margin_mm is None:
        amps = np.asarray(currents_mA, float) * 1e-3
        current_A = max(amps[amps > 0].sum(), -amps[amps < 0].sum(), 1e-6)
        sigma_S_per_mm = sigma_S_per_m * 1e-3
        radius = np.sqrt(current_A / (4 * np.pi * sigma_S_per_mm * threshold_V_per_mm))
        margin_mm = 1.5 * radius + 2.0
    centers = np.atleast_2d(centers_mm)
    lo, hi = centers.min(axis=0) - margin_mm, centers.max(axis=0) + margin_mm
    if bounds_mm is not None:
        lo, hi = np.maximum(lo, bounds_mm[0]), np.minimum(hi, bounds_mm[1])
    return VoxelGrid.around(lo, hi, spacing_mm)


@dataclass(frozen=True)
class VtaGrid:
    """|E| and the VTA mask on a voxel grid.

    Attributes
    ----------
    grid : VoxelGrid
    field_norm_V_per_mm : ndarray, shape grid.shape
        |E| (V/mm), 0 outside tissue (inside the lead or outside the domain).
    mask : ndarray of bool, shape grid.shape
        ``|E| >= threshold`` in tissue.
    """

    grid: VoxelGrid
    field_norm_V_per_mm: np.ndarray
    mask: np.ndarray

    @property
    def volume_mm3(self) -> float:
        """Voxel-counted VTA volume (mm^3)."""
        return float(self.mask.sum()) * self.grid.voxel_volume_mm3

    @property
    def touches_border(self) -> bool:
        """True if the VTA reaches the grid's faces (the grid may be too small)."""
        m = self.mask
        return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any() or m[:, :, 0].any() or m[:, :, -1].any())


def field_norm_grid(basis, weights_V: np.ndarray, grid: VoxelGrid) -> np.ndarray:
    """|E| (V/mm) of a setting on a voxel grid, shape ``grid.shape``; 0 outside tissue."""
    E = basis.field_on_grid(grid.origin_mm, grid.spacing_mm, grid.shape, weights_V).reshape(-1, 3)
    norm = np.sqrt(np.einsum("ij,ij->i", E, E))
    return np.where(np.isfinite(norm), norm, 0.0).reshape(grid.shape)


def field_norm_on_grid(basis, weights_V: np.ndarray, grid: VoxelGrid, threshold_V_per_mm: float) -> VtaGrid:
    """Evaluate |E| of a setting on a voxel grid and threshold it.

    Parameters
    ----------
    basis : FieldBasis
        Any field basis (see ``docs/architecture.md``).
    weights_V : ndarray, shape (K,)
        Contact potentials (V) of the setting.
    grid : VoxelGrid
    threshold_V_per_mm : float
    """
    norm = field_norm_grid(basis, weights_V, grid)
    return VtaGrid(grid, norm.astype(np.float32), norm >= threshold_V_per_mm)


def grid_clipping_warning(vta_grid: VtaGrid, clipped_by_domain: bool) -> bool:
    """Warn (and return True) when the VTA reaches the faces of its voxel grid while the
    domain itself does not cut it: the NIfTI maps then miss part of the VTA."""
    if not vta_grid.touches_border or clipped_by_domain:
        return False
    log.warning("the VTA reaches the edge of the %s-voxel output grid: the NIfTI VTA and |E| maps are cut off "
                "there (the mesh-integrated VTA volume is not); increase [output] grid_margin_mm",
                "x".join(map(str, vta_grid.grid.shape)))
    return True


def _subvoxel_offsets(supersample: int) -> np.ndarray:
    """Offsets (voxel units) of ``supersample^3`` sub-voxel centres around a voxel centre."""
    s = (np.arange(supersample) + 0.5) / supersample - 0.5
    return np.stack(np.meshgrid(s, s, s, indexing="ij"), axis=-1).reshape(-1, 3)


def structure_coverage(
    basis,
    weights_V: np.ndarray,
    threshold_V_per_mm: float,
    structures: dict,
    region_mm: np.ndarray | None = None,
    supersample: int = 3,
) -> dict[str, dict[str, float]]:
    """Overlap of the VTA with each structure.

    Each structure voxel (probability > 0) inside ``region_mm`` is split into
    ``supersample^3`` sub-voxels; the overlap is the probability-weighted volume of the
    sub-voxels where ``|E| >= threshold``. Structure voxels outside the region are
    taken as not activated (the region must contain the VTA, e.g. the mesh domain).

    Parameters
    ----------
    basis : FieldBasis
    weights_V : ndarray, shape (K,)
        Contact potentials (V) of the setting.
    threshold_V_per_mm : float
    structures : dict of str -> vta.anatomy.atlas_io.Structure
    region_mm : ndarray, shape (2, 3), optional
        World bounding box (mm) worth evaluating; default: everything.
    supersample : int
        Sub-voxels per voxel edge.

    Returns
    -------
    dict
        Per structure: ``overlap_mm3`` (mm^3), ``fraction`` (of the structure's volume)
        and ``volume_mm3`` (the structure's volume).
    """
    result = {}
    for name, (points, weights, volume) in structure_samples(structures, region_mm, supersample).items():
        overlap = 0.0
        if len(points):
            active = np.linalg.norm(basis.field_at(points, weights_V), axis=1) >= threshold_V_per_mm  # NaN -> False
            overlap = float(weights[active].sum())
        result[name] = {
            "overlap_mm3": overlap,
            "fraction": overlap / volume if volume > 0 else 0.0,
            "volume_mm3": volume,
        }
    return result


def structure_samples(structures: dict, region_mm: np.ndarray | None, supersample: int):
    """Per structure: sub-voxel world points, their weights and the structure volume.

    Each structure voxel (probability > 0) inside ``region_mm`` (+ 1 mm) is split into
    ``supersample^3`` sub-voxels weighted by probability x sub-voxel volume (mm^3).

    Returns
    -------
    dict of str -> (points_mm (n, 3), weights_mm3 (n,), volume_mm3)
    """
    offsets = _subvoxel_offsets(supersample)
    out = {}
    for name, structure in structures.items():
        image = structure.image
        prob = image.data.astype(float)
        ijk = np.argwhere(prob > 0)
        volume = structure.volume_mm3()
        if len(ijk) and region_mm is not None:
            centres = image.voxel_to_world(ijk)
            keep = np.all((centres >= region_mm[0] - 1) & (centres <= region_mm[1] + 1), axis=1)
            ijk = ijk[keep]
        if len(ijk):
            sub = (ijk[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
            pts = image.voxel_to_world(sub)
            w = np.repeat(prob[tuple(ijk.T)], len(offsets)) * image.voxel_volume_mm3 / len(offsets)
        else:
            pts, w = np.zeros((0, 3)), np.zeros(0)
        out[name] = (pts, w, volume)
    return out
