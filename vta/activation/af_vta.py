"""Activating-function VTA: an alternative to the |E| threshold.

The activating function of a fibre along direction ``d`` is the second difference of
the extracellular potential at the node spacing ``dx``,
``AF_d(x) = (Ve(x + dx d) - 2 Ve(x) + Ve(x - dx d)) / dx^2`` (V/mm^2); positive values
depolarise. Not knowing the fibre direction, the "AF-Max" rule (Duffley et al., J Neural
Eng 2019;16:066024) takes the largest value over all directions: the largest
eigenvalue of the Hessian of Ve at the scale ``dx``.

The threshold is not taken from the literature (published AF-vs-PW threshold tables,
e.g. Butson & McIntyre 2006/2007 or Duffley 2019, are not used) but calibrated with the
project's own MRG model (:func:`vta.activation.axons.af_threshold`): the peak AF at
which a straight fibre at distance ``d`` from a point source fires for the pulse width.
AF thresholds depend on that distance (the known weakness of AF rules, Duffley 2019),
so ``d`` is set to the equivalent radius of the |E| VTA of the same setting: the
calibration is made where the VTA boundary lies.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from .efield import VtaGrid
from ..fem.grid import VoxelGrid

__all__ = ["activating_function_grid", "calibrated_af_threshold", "af_vta"]

log = logging.getLogger(__name__)


def activating_function_grid(basis, weights_V: np.ndarray, grid: VoxelGrid, step_mm: float) -> np.ndarray:
    """AF-Max (V/mm^2) of a setting on a voxel grid, shape ``grid.shape``.

    The potential is evaluated once on the grid padded by ``k = round(step / h)`` voxels
    (``h`` the grid spacing); the Hessian uses differences ``k`` voxels apart (so the
    effective step is ``k h``, reported in the log when it differs from ``step_mm``).
    0 where any stencil point is outside tissue (inside the lead, outside the domain).
    """
    h = float(grid.spacing_mm)
    k = max(1, int(round(step_mm / h)))
    if abs(k * h - step_mm) > 1e-6:
        log.info("activating function: step %.3g mm on a %.3g mm grid (requested %.3g mm)", k * h, h, step_mm)
    shape = tuple(int(n) for n in grid.shape)
    pad = VoxelGrid(np.asarray(grid.origin_mm, float) - k * h, h, tuple(n + 2 * k for n in shape))
    u = np.asarray(basis.potential_at(pad.points(), weights_V), float).reshape(pad.shape)
    d2 = (k * h) ** 2
    nx, ny, nz = shape

    def at(di: int, dj: int, dk: int) -> np.ndarray:
        return u[k + di:k + di + nx, k + dj:k + dj + ny, k + dk:k + dk + nz]

    c = at(0, 0, 0)
    H = np.empty(shape + (3, 3))
    unit = [(k, 0, 0), (0, k, 0), (0, 0, k)]
    for a in range(3):
        ea = unit[a]
        H[..., a, a] = (at(*ea) - 2 * c + at(*(-x for x in ea))) / d2
        for b in range(a + 1, 3):
            eb = unit[b]
            pp = at(*(x + y for x, y in zip(ea, eb)))
            pm = at(*(x - y for x, y in zip(ea, eb)))
            mp = at(*(-x + y for x, y in zip(ea, eb)))
            mm = at(*(-x - y for x, y in zip(ea, eb)))
            H[..., a, b] = H[..., b, a] = (pp - pm - mp + mm) / (4 * d2)
    ok = np.isfinite(H).all(axis=(-1, -2))
    out = np.zeros(shape)
    if ok.any():
        out[ok] = np.linalg.eigvalsh(H[ok])[:, -1]
    return out


@lru_cache(maxsize=64)
def calibrated_af_threshold(fiber_diameter_um: float, pulse_width_us: float, distance_mm: float,
                            recharge: str = "passive") -> float:
    """AF threshold (V/mm^2) of the MRG fibre at ``distance_mm`` from a point source
    (cached; distance rounded by the caller)."""
    from .axons import Pulse, af_threshold, mrg_model

    return float(af_threshold(mrg_model(fiber_diameter_um), distance_mm, Pulse(pulse_width_us, recharge)))


def af_vta(basis, weights_V: np.ndarray, grid: VoxelGrid, efield_volume_mm3: float, *, fiber_diameter_um: float,
           pulse_width_us: float, recharge: str = "passive") -> tuple[VtaGrid, dict]:
    """The activating-function VTA of a setting and how its threshold was chosen.

    Parameters
    ----------
    basis : FieldBasis
    weights_V : ndarray (K,)
        Contact potentials (V) of the setting.
    grid : VoxelGrid
    efield_volume_mm3 : float
        The |E| VTA volume of the same setting: its equivalent-sphere radius is the
        calibration distance (at least 1 mm).
    fiber_diameter_um, pulse_width_us, recharge
        The MRG fibre and pulse of the calibration.

    Returns
    -------
    VtaGrid
        ``field_norm_V_per_mm`` holds the AF-Max in V/mm^2 here.
    dict
        ``af_threshold_V_per_mm2``, ``calibration_distance_mm``, ``step_mm``,
        ``fiber_diameter_um``, ``volume_mm3``.
    """
    from .axons import mrg_model

    dx = mrg_model(fiber_diameter_um).node_spacing_mm
    radius = max(1.0, (3.0 * max(efield_volume_mm3, 0.0) / (4.0 * np.pi)) ** (1.0 / 3.0))
    radius = round(radius * 4) / 4            # 0.25 mm steps keep the cache useful
    thr = calibrated_af_threshold(float(fiber_diameter_um), float(pulse_width_us), radius, recharge)
    af = activating_function_grid(basis, weights_V, grid, dx)
    result = VtaGrid(grid, af.astype(np.float32), af >= thr)
    info = {
        "volume_mm3": result.volume_mm3,
        "af_threshold_V_per_mm2": thr,
        "calibration_distance_mm": radius,
        "step_mm": dx,
        "fiber_diameter_um": float(fiber_diameter_um),
        "rule": "AF-Max (largest Hessian eigenvalue of Ve at the node spacing)",
    }
    return result, info
