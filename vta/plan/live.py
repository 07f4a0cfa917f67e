"""Any stimulation setting of a solved scene in milliseconds, with `vta run`'s numbers.

:class:`LiveResponse` prepares, once per lead position (per field basis), everything
that does not depend on the setting: the volume quadrature with per-element bounds of
the unit fields, the structure sub-voxel points located in the mesh, and a planning
grid of voxels round the contacts. A new setting (amplitudes, polarity, mode, pulse
width, threshold) then costs a few array operations:

- the VTA volume, integrated on the mesh exactly as ``vta run`` does
  (:meth:`vta.fem.basis.FieldBasis.vta_volume_mm3`, visiting only elements that can
  reach the threshold);
- the overlap with every structure, on the same sub-voxel points as ``vta run``
  (:func:`vta.activation.efield.structure_coverage`) and the spill outside the targets;
- |E| on the planning grid (for the 3D VTA surface and the 2D slices);
- impedance, contact currents, charge per phase and density with the Shannon (1992)
  and 30 uC/cm^2 flags, and whether the domain clips the VTA.

Tract activation needs the axon models (seconds); the planning session runs it in the
background (:class:`vta.plan.session.PlanSession`).

Units: mm, V, mA, V/mm, mm^3, us.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..activation.efield import charge_metrics, structure_samples
from ..fem.grid import VoxelGrid
from ..fem.stimulation import ContactState, Setting, carrying_contacts, monopolar_impedances_ohm, resolve

__all__ = ["LiveResponse", "LiveResult", "PLANNING_GRID_MM", "PLANNING_MARGIN_MM"]

log = logging.getLogger(__name__)

#: Voxel size (mm) of the planning grid (3D VTA surface, |E| slices).
PLANNING_GRID_MM = 0.5
#: Margin (mm) of the planning grid round the contacts.
PLANNING_MARGIN_MM = 12.0


@dataclass
class LiveResult:
    """One setting of a :class:`LiveResponse`.

    Attributes
    ----------
    setting : Setting
    state : ContactState
        Contact potentials (V) and currents (mA).
    threshold_V_per_mm : float
    vta_volume_mm3 : float
        Mesh-integrated, as ``vta run``.
    clipped_by_domain : bool
        |E| reaches the threshold on the domain boundary.
    structures : dict
        Per structure ``overlap_mm3``, ``fraction``, ``volume_mm3`` (as ``vta run``).
    spill_mm3 : float
        VTA volume outside the target structures (mm^3).
    field_norm_V_per_mm : ndarray
        |E| on :attr:`LiveResponse.grid` (0 outside tissue, and 0 in elements whose
        bound stays below the threshold: exact at and above the threshold).
    contacts : list of dict
        Per contact: index, label, amplitude, potential_V, current_mA, charge_per_phase_uC,
        charge_density_uC_per_cm2, exceeds_30uC_cm2, exceeds_shannon.
    impedance_ohm : float
    grid_touched : bool
        The VTA reaches the faces of the planning grid (the 3D surface is cut there;
        the volume and overlaps are not).
    elapsed_s : float
    """

    setting: Setting
    state: ContactState
    threshold_V_per_mm: float
    vta_volume_mm3: float
    clipped_by_domain: bool
    structures: dict
    spill_mm3: float
    field_norm_V_per_mm: np.ndarray
    contacts: list
    impedance_ohm: float
    grid_touched: bool
    elapsed_s: float = 0.0
    warnings: list = field(default_factory=list)


class LiveResponse:
    """Per-basis preparation for instant settings (see the module docstring).

    Parameters
    ----------
    scene : vta.scene.Scene
        A scene whose basis is solved (or will be, on first access).
    targets : list of str, optional
        Target structures for the spill (default: the scene's NAc/ALIC on the lead's side).
    grid_spacing_mm, margin_mm : float
        The planning grid round the contacts (mm).
    """

    def __init__(self, scene, targets: list[str] | None = None, grid_spacing_mm: float = PLANNING_GRID_MM,
                 margin_mm: float = PLANNING_MARGIN_MM):
        t0 = time.perf_counter()
        self.scene = scene
        basis = scene.basis
        self.basis = basis
        self.targets = list(scene.default_targets if targets is None else targets)
        self.volume = basis.volume_probe()
        self.impedances_ohm = monopolar_impedances_ohm(basis.conductance_S, basis.outer_grounded)
        samples = structure_samples(scene.structures, scene.region_mm, 3)
        self.structure_names = list(samples)
        self._structure_volume = {n: v for n, (_, _, v) in samples.items()}
        sizes = [len(p) for p, _, _ in samples.values()]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        pts = np.concatenate([p for p, _, _ in samples.values()]) if sizes else np.zeros((0, 3))
        self._structure_weights = np.concatenate([w for _, w, _ in samples.values()]) if sizes else np.zeros(0)
        self._structures = basis.field_probe(pts)
        lead = scene.lead
        centres = np.array([lead.placement.contact_center_mm(lead.model, c.index) for c in lead.model.contacts()])
        lo = np.maximum(centres.min(axis=0) - margin_mm, scene.region_mm[0])
        hi = np.minimum(centres.max(axis=0) + margin_mm, scene.region_mm[1])
        self.grid = VoxelGrid.around(lo, hi, grid_spacing_mm)
        self._grid = basis.field_probe(self.grid.points())
        self.contact_centres_mm = centres
        self.prepare_s = time.perf_counter() - t0
        log.info("live response ready in %.2f s: %d structure samples, %s planning grid", self.prepare_s,
                 len(pts), "x".join(map(str, self.grid.shape)))

    def evaluate(self, setting: Setting, threshold_V_per_mm: float, pulse_width_us: float) -> LiveResult:
        """Everything the planner sees for one setting (see :class:`LiveResult`)."""
        t0 = time.perf_counter()
        basis, thr = self.basis, float(threshold_V_per_mm)
        state = resolve(setting, basis.conductance_S, basis.outer_grounded)
        w = state.potentials_V
        volume = self.volume.volume_mm3(w, thr)
        mask = self.volume.candidates(w, thr)
        active = self._structures.norm(w, mask) >= thr
        structures = {}
        for i, name in enumerate(self.structure_names):
            s = slice(self._offsets[i], self._offsets[i + 1])
            overlap = float(self._structure_weights[s][active[s]].sum())
            total = self._structure_volume[name]
            structures[name] = {"overlap_mm3": overlap, "fraction": overlap / total if total > 0 else 0.0,
                                "volume_mm3": total}
        in_targets = sum(structures[t]["overlap_mm3"] for t in self.targets if t in structures)
        # the grid is for the VTA surface: points in elements that cannot reach the
        # threshold read 0 (they are below it) and are not evaluated
        norm = self._grid.norm(w, mask).reshape(self.grid.shape).astype(np.float32)
        m = norm >= thr
        touched = bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any() or m[:, :, 0].any()
                       or m[:, :, -1].any())
        clipped = basis.boundary_field_max(w) >= thr
        return LiveResult(
            setting=setting, state=state, threshold_V_per_mm=thr, vta_volume_mm3=volume, clipped_by_domain=clipped,
            structures=structures, spill_mm3=max(volume - in_targets, 0.0), field_norm_V_per_mm=norm,
            contacts=self._contact_rows(setting, state, pulse_width_us), impedance_ohm=state.impedance_ohm,
            grid_touched=touched, elapsed_s=time.perf_counter() - t0,
        )

    def _contact_rows(self, setting: Setting, state: ContactState, pulse_width_us: float) -> list[dict]:
        lead = self.scene.lead.model
        rows = []
        for c in lead.contacts():
            k = c.index
            q, d, over, shannon = charge_metrics(state.currents_mA[k], pulse_width_us, c.area_mm2)
            rows.append({
                "index": k, "label": f"C{k}", "amplitude": setting.amplitudes.get(k),
                "potential_V": float(state.potentials_V[k]), "current_mA": float(state.currents_mA[k]),
                "monopolar_impedance_ohm": float(self.impedances_ohm[k]),
                "charge_per_phase_uC": float(q), "charge_density_uC_per_cm2": float(d),
                "exceeds_30uC_cm2": bool(over), "exceeds_shannon": bool(shannon),
            })
        return rows

    def active_centre_mm(self, state: ContactState) -> np.ndarray:
        """Centre (mm) of the contacts that carry current (of all contacts when none
        does): where the slices go. Unweighted, so that amplitude changes leave it
        (and the slices' image part) in place."""
        idx = carrying_contacts(state.currents_mA)
        return self.contact_centres_mm[idx].mean(axis=0)
