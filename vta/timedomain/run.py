"""The time-domain run of a scene: the real pulse in dispersive tissue.

For a scene with a ``[signal]`` table (:attr:`vta.scene.Scene.signal`):

1. the pulse's spectrum and a frequency plan (:mod:`vta.timedomain.spectrum`: every
   harmonic, octave bands, or adaptive with an error bound checked on the analytic
   transfer of the bulk tissue);
2. one unit-solution basis per solve frequency with complex Cole-Cole conductivities
   (:mod:`vta.timedomain.frequency_solve`; the scene's mesh, lead, domain and
   encapsulation);
3. the setting's contact phasors per frequency (current or voltage control, floating
   contacts, the case as the return), and from them, at instants across the pulse
   (:mod:`vta.timedomain.time_response`): the delivered current and voltage of every
   contact, and |E(t)| on the output voxel grid;
4. the time-domain VTA: where the peak of |E(t)| over the pulse (every phase) reaches
   the threshold, voxel-counted on the same grid as the quasi-static VTA it is reported
   beside.

Purely resistive tissue gives the quasi-static field times the waveform exactly, so the
two VTAs agree; capacitive tissue low-pass filters a current-controlled pulse (a smaller
peak field, a smaller VTA), while a voltage-controlled pulse in homogeneous tissue keeps
its field shape (the contact potentials are imposed). A series electrode interface
(``[signal] interface``) changes only voltage-controlled pulses: the tissue voltage
decays over a phase as the double layer charges, and at the reversal of a symmetric
biphasic pulse it jumps by the source step plus the charged voltage, so the second
phase's peak can exceed the first. The peak-field VTA counts both phases alike; with
``[tracts]`` the axon models are also driven by the time-domain potential
(:mod:`vta.timedomain.axons_td`), which weighs the phases as a fibre does, and the
summary reports their activation beside the quasi-static one on the same fibres.

Units: us, Hz, mA, V, V/mm, mm^3, ohm.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..anatomy.atlas_io import BACKGROUND, BLOOD, CSF, GM, TISSUE_CLASSES, WM
from ..fem.grid import VoxelGrid
from ..fem.stimulation import Setting
from .dispersive import DEFAULT_CLASS_TISSUES, DispersiveTissue, complex_conductivity
from .spectrum import FrequencyPlan, make_plan, spectrum
from .time_response import TimeBasis, time_basis

__all__ = ["TimeDomainResult", "dispersive_tissue_of", "frequency_plan", "frequency_basis", "simulate_time_domain"]

log = logging.getLogger(__name__)


@dataclass
class TimeDomainResult:
    """What a time-domain run adds to a simulation (see the module docstring).

    Attributes
    ----------
    plan : FrequencyPlan
    time : TimeBasis
        Instants (us) across the pulse.
    impedance_ohm : ndarray of complex, shape (n_solve,)
        Load seen by the source at each solve frequency.
    currents_mA, voltages_V : ndarray, shape (K, n_t)
        Delivered contact currents and contact (tissue-side) potentials over the pulse.
    grid : VoxelGrid or None
    peak_field_V_per_mm : ndarray or None
        max over the pulse of |E(t)| on ``grid``.
    vta_mask : ndarray of bool or None
    points_mm, point_potential_V, point_field_V_per_mm : ndarray or None
        ``[signal] points_mm`` (P, 3) and the potential and |E| there over the pulse
        (P, n_t); NaN outside the tissue.
    field_series_t_us, field_series_V_per_mm : ndarray or None
        With ``[signal] field_time_series_us``: uniform instants (us) across the pulse
        and |E(t)| on ``grid`` at them, shape ``grid.shape + (n,)`` (float32).
    axons : AxonTimeDomainResult or None
        With ``[tracts]``: the axon models driven by the time-domain potential, and the
        quasi-static comparison on the same fibres (:mod:`vta.timedomain.axons_td`).
    timings_s : dict
    """

    plan: FrequencyPlan
    time: TimeBasis
    impedance_ohm: np.ndarray
    currents_mA: np.ndarray
    voltages_V: np.ndarray
    threshold_V_per_mm: float
    grid: VoxelGrid | None = None
    peak_field_V_per_mm: np.ndarray | None = None
    vta_mask: np.ndarray | None = None
    frequency_basis_info: dict = field(default_factory=dict)
    axons: object | None = None
    points_mm: np.ndarray | None = None
    point_potential_V: np.ndarray | None = None
    point_field_V_per_mm: np.ndarray | None = None
    field_series_t_us: np.ndarray | None = None
    field_series_V_per_mm: np.ndarray | None = None
    timings_s: dict = field(default_factory=dict)

    @property
    def vta_volume_mm3(self) -> float | None:
        """Voxel-counted time-domain VTA (mm^3)."""
        if self.vta_mask is None:
            return None
        return float(self.vta_mask.sum()) * self.grid.voxel_volume_mm3

    def summary(self, quasi_static_grid_volume_mm3: float | None = None) -> dict:
        """summary.json ``time_domain``: the signal, the plan, the impedance spectrum,
        the delivered waveforms per contact and the VTA beside the quasi-static one."""
        wf = self.plan.spectrum.waveform
        t = self.time.t_us
        contacts = {}
        for k in range(self.currents_mA.shape[0]):
            i, v = self.currents_mA[k], self.voltages_V[k]
            if not np.any(np.abs(i) > 1e-12):
                continue
            first = (t >= wf.phases()[0][0]) & (t < wf.phases()[0][1])
            contacts[str(k)] = {
                "current_peak_mA": float(i[np.argmax(np.abs(i))]),
                "voltage_peak_V": float(v[np.argmax(np.abs(v))]),
                # trapezoid over the phase's instants (its last one 0.1 % before the end)
                "charge_first_phase_uC": float(np.trapezoid(i[first], t[first]) * 1e-3),
            }
        return {
            "signal": {"shape": wf.shape, "pulse_width_us": wf.pulse_width_us, "frequency_hz": wf.frequency_hz,
                       "interphase_gap_us": wf.interphase_gap_us},
            "spectrum": {"method": self.plan.method, "cutoff_hz": float(self.plan.spectrum.cutoff_hz),
                         "n_harmonics": int(self.plan.spectrum.n_max),
                         "n_solve_frequencies": int(self.plan.n_solve),
                         "plan_error": None if self.plan.error is None else float(self.plan.error)},
            "impedance_spectrum": [{"frequency_hz": float(f), "magnitude_ohm": float(abs(z)),
                                    "phase_deg": float(np.degrees(np.angle(z)))}
                                   for f, z in zip(self.plan.solve_freqs_hz, self.impedance_ohm)],
            "contacts": contacts,
            "points": [{"point_mm": [float(v) for v in p],
                        "potential_peak_V": _peak(self.point_potential_V[i]),
                        "field_peak_V_per_mm": _peak(self.point_field_V_per_mm[i])}
                       for i, p in enumerate(self.points_mm if self.points_mm is not None else [])],
            **({"field_time_series_t_us": [float(t) for t in self.field_series_t_us]}
               if self.field_series_t_us is not None else {}),
            "threshold_V_per_mm": self.threshold_V_per_mm,
            "vta_grid_volume_mm3": self.vta_volume_mm3,
            "quasi_static_vta_grid_volume_mm3": quasi_static_grid_volume_mm3,
            "peak_field_max_V_per_mm": None if self.peak_field_V_per_mm is None
            else float(self.peak_field_V_per_mm.max()),
            "frequency_basis": self.frequency_basis_info,
            **({"tracts": self.axons.summary()} if self.axons is not None else {}),
            "timings_s": self.timings_s,
        }


#: Largest |E|(t) series written (voxels x instants), to keep a 4D NIfTI in memory bounds.
MAX_SERIES_VALUES = 200_000_000


def _field_series(plan: FrequencyPlan, fields: np.ndarray, grid: VoxelGrid, step_us: float,
                  chunk: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """|E(t)| on the grid at uniform instants ``step_us`` apart over the pulse (and a
    first-phase width after it), float32, shape ``grid.shape + (n,)``."""
    from ..errors import ConfigError

    wf = plan.spectrum.waveform
    end = min(max(e for _, e, _ in wf.phases()) + wf.pulse_width_us, wf.period_us)
    t = np.arange(0.0, end + 1e-9, float(step_us))
    if t.size * grid.n_voxels > MAX_SERIES_VALUES:
        raise ConfigError("signal.field_time_series_us", f"{t.size} instants x {grid.n_voxels} voxels exceed "
                                                         f"{MAX_SERIES_VALUES:.0e} values; use a larger step")
    out = np.empty((fields.shape[1], t.size), dtype=np.float32)
    for sl, norm in TimeBasis(plan, t).norms(fields, chunk, dtype=np.float64):
        out[sl] = norm
    return t, out.reshape(tuple(grid.shape) + (t.size,))


def _peak(values: np.ndarray) -> float | None:
    """The signed value of largest magnitude (None outside the tissue)."""
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).all():
        return None
    return float(v[np.argmax(np.abs(v))])


def dispersive_tissue_of(scene) -> DispersiveTissue:
    """The dispersive tissue model of a scene: Cole-Cole classes with an anatomy (unless
    its conductivity model is constant), ``[tissue] dispersive_tissue`` or the resistive
    conductivity without one; the encapsulation layer as configured."""
    tissue = scene.config.tissue
    enc = tissue.encapsulation_conductivity_S_per_m if tissue.encapsulation_thickness_mm > 0 else None
    f0 = scene.config.stimulation.frequency_hz
    if scene.anatomy is not None:
        if (tissue.model or "colecole4").startswith("colecole"):
            # Cole-Cole classes, except those given a constant value in [tissue]
            classes = dict(DEFAULT_CLASS_TISSUES)
            classes.update({TISSUE_CLASSES[name]: float(v) for name, v in (tissue.class_S_per_m or {}).items()})
            classes[BACKGROUND] = classes[WM]
            return DispersiveTissue(tissue=classes[WM], class_tissues=classes, encapsulation_S_per_m=enc,
                                    reference_frequency_hz=f0)
        c = scene.conductivity          # a frequency-independent preset: resistive per class
        classes = {code: float(c.sigma_for_class(code)) for code in (BACKGROUND, GM, WM, CSF, BLOOD)}
        return DispersiveTissue(tissue=float(c.sigma_for_class(BACKGROUND)), class_tissues=classes,
                                encapsulation_S_per_m=enc, encapsulation_model="resistive",
                                reference_frequency_hz=f0)
    if tissue.dispersive_tissue is not None:
        return DispersiveTissue(tissue=tissue.dispersive_tissue, class_tissues={}, encapsulation_S_per_m=enc,
                                reference_frequency_hz=f0)
    return DispersiveTissue.resistive(tissue.conductivity_S_per_m, enc)


def frequency_plan(signal, tissue: DispersiveTissue, mode: str, load_S: float | None = None,
                   contact_area_mm2: float | None = None) -> FrequencyPlan:
    """The frequency plan of a ``[signal]``. For ``adaptive``, the error bound is checked
    on an analytic proxy of the transfer: ``1/sigma*`` of the bulk tissue for current
    control; for voltage control 1, or with an electrode interface the divider
    ``y_if / (y_if + y_tissue)`` of the active contact (its quasi-static conductance
    ``load_S`` scaled by ``sigma*(f) / sigma*(f0)``, and its area)."""
    spec = spectrum(signal.waveform, signal.cutoff_hz)
    interface = _interface(signal)
    f0 = tissue.reference_frequency_hz

    def transfer(f):
        f = np.atleast_1d(f)
        sigma = complex_conductivity(tissue.tissue, f)
        if mode == "current":
            return 1.0 / sigma
        if interface is None or load_S is None or contact_area_mm2 is None:
            return np.ones_like(sigma)
        y_tissue = load_S * sigma / complex_conductivity(tissue.tissue, [f0])[0]
        y_if = interface.admittance_S([contact_area_mm2], f)[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.abs(y_if) > 0, y_if / (y_if + y_tissue), 0.0)

    return make_plan(spec, signal.spectrum, transfer, signal.tolerance)


def _interface(signal):
    """The electrode interface of ``[signal] interface``, or None."""
    if signal.interface == "none":
        return None
    from .interface import PLATINUM_DOUBLE_LAYER, ElectrodeInterface

    if signal.interface_capacitance_uF_per_cm2 is None:
        return PLATINUM_DOUBLE_LAYER
    return ElectrodeInterface.double_layer(signal.interface_capacitance_uF_per_cm2, source="[signal]")


def _active_load(scene, setting: Setting) -> tuple[float | None, float | None]:
    """(quasi-static self-conductance S, area mm^2) of the setting's largest active
    contact, for the adaptive plan's voltage-control proxy."""
    if not setting.amplitudes:
        return None, None
    k = max(setting.amplitudes, key=lambda i: abs(setting.amplitudes[i]))
    G = np.asarray(scene.basis.conductance_S)
    return float(G[k, k]), float(scene.lead.model.contact(k).area_mm2)


def frequency_basis(scene, frequencies_hz: np.ndarray, tissue: DispersiveTissue):
    """One complex unit-solution basis per frequency on the scene's geometry."""
    from .frequency_solve import build_axisymmetric_frequency_basis, build_tet_frequency_basis, tet_element_classes

    lead, cfg = scene.lead, scene.config
    outer = "ground" if scene.domain.outer_grounded else "insulating"
    if scene.method == "axisymmetric":
        return build_axisymmetric_frequency_basis(
            lead.model, lead.placement, scene.domain.center_mm, scene.domain.radius_mm, frequencies_hz,
            tissue=tissue, outer=outer, encapsulation_thickness_mm=cfg.tissue.encapsulation_thickness_mm,
            preset=cfg.solver.preset, order=cfg.solver.order)
    lead_mesh = scene.lead_mesh()
    classes = tet_element_classes(lead_mesh, scene.anatomy)
    return build_tet_frequency_basis(lead_mesh, frequencies_hz, tissue, element_class=classes,
                                     n_contacts=lead.model.n_contacts, outer=outer, order=cfg.solver.order,
                                     anisotropy=scene.element_anisotropy(lead_mesh.mesh))


def _resolve(fb, setting: Setting, signal, lead):
    """Contact phasors per solve frequency, through the electrode-tissue interface when
    ``[signal] interface`` asks for one (it matters under voltage control only)."""
    interface = _interface(signal)
    if interface is None:
        return fb.resolve(setting)
    areas = np.array([c.area_mm2 for c in lead.contacts()])
    return fb.resolve_with_interface(setting, interface, areas)


def low_frequency_currents(plan: FrequencyPlan, phasors) -> np.ndarray:
    """Contact currents (mA) at the plan's lowest solve frequency (the quasi-static
    currents that size the output grid)."""
    return np.real(phasors.currents_mA[int(np.argmin(plan.solve_freqs_hz))])


def simulate_time_domain(scene, setting: Setting | None = None, grid: VoxelGrid | None = None,
                         threshold_V_per_mm: float | None = None) -> TimeDomainResult:
    """Run the scene's ``[signal]`` (see the module docstring).

    Parameters
    ----------
    scene : vta.scene.Scene
        With :attr:`~vta.scene.Scene.signal`.
    setting : Setting, optional
        Default: the scene's; its amplitudes are the first phase's (mA or V).
    grid : VoxelGrid, optional
        Where to evaluate the peak field (default: the scene's output grid for the
        setting's quasi-static currents).
    threshold_V_per_mm : float, optional
        Default: the scene's.
    """
    t0 = time.perf_counter()
    signal = scene.signal
    setting = setting or scene.setting()
    tissue = dispersive_tissue_of(scene)
    plan = frequency_plan(signal, tissue, setting.mode, *_active_load(scene, setting))
    t1 = time.perf_counter()
    fb = frequency_basis(scene, plan.solve_freqs_hz, tissue)
    t2 = time.perf_counter()
    phasors = _resolve(fb, setting, signal, scene.lead.model)
    times = time_basis(plan)
    currents = times.synthesize(phasors.currents_mA)                  # (K, n_t)
    voltages = times.synthesize(phasors.potentials_V)
    thr = scene.threshold_V_per_mm if threshold_V_per_mm is None else float(threshold_V_per_mm)
    if grid is None:
        grid = scene.voxel_grid(low_frequency_currents(plan, phasors), thr)
    fields = fb.field_at(grid.points(), phasors.potentials_V)         # (n_solve, N, 3)
    peak = times.peak_norm(fields).reshape(grid.shape)
    series_t = series = None
    if signal.field_time_series_us is not None:
        series_t, series = _field_series(plan, fields, grid, signal.field_time_series_us)
    point_potential = point_field = None
    if signal.points_mm:
        pts = np.asarray(signal.points_mm, dtype=float)
        point_potential = times.synthesize(fb.potential_at(pts, phasors.potentials_V))       # (P, n_t)
        e = times.synthesize(fb.field_at(pts, phasors.potentials_V))                        # (P, 3, n_t)
        point_field = np.sqrt((e * e).sum(axis=1))
    axons = None
    if scene.config.tracts is not None:
        from .axons_td import axon_activation_time_domain

        axons = axon_activation_time_domain(scene, setting, plan=plan, basis=fb)
    t3 = time.perf_counter()
    info = {k: v for k, v in fb.mesh_info.items()} if isinstance(fb.mesh_info, dict) else {}
    info["solve_per_frequency_s"] = fb.timings.get("solve_per_frequency")
    log.info("time domain: %d solve frequencies (%s), basis %.1f s, synthesis %.1f s", plan.n_solve, plan.method,
             t2 - t1, t3 - t2)
    return TimeDomainResult(plan=plan, time=times, impedance_ohm=phasors.impedance_ohm, currents_mA=currents,
                            voltages_V=voltages, threshold_V_per_mm=thr, grid=grid,
                            peak_field_V_per_mm=peak.astype(np.float32), vta_mask=peak >= thr,
                            frequency_basis_info=info, axons=axons, points_mm=np.asarray(signal.points_mm),
                            point_potential_V=point_potential, point_field_V_per_mm=point_field,
                            field_series_t_us=series_t, field_series_V_per_mm=series,
                            timings_s={"plan": t1 - t0, "frequency_basis": t2 - t1, "synthesis": t3 - t2})
