"""Time-domain sweeps: many settings on one frequency-domain basis.

A sweep over amplitudes and contact configurations costs, in the frequency domain as in
the quasi-static model, one basis per solve frequency - not one solve per setting.
:func:`time_domain_sweep` builds the complex unit-solution basis once, at the union of
the solve frequencies that the settings' frequency plans need (one plan for every
setting of a mode, unless the adaptive plan of a voltage-controlled pulse through an
electrode interface depends on the active contact), locates the grid points and
interpolates the unit fields there once per distinct set of unit solutions, and then
evaluates each setting by superposition: its contact phasors (admittances, interface),
the field phasors on the grid as a weighted sum of the unit fields, and the peak of
``|E(t)|`` over the pulse (:class:`~vta.timedomain.time_response.TimeBasis`). A row
equals :func:`vta.timedomain.run.simulate_time_domain` of that setting on the same grid.

Units: mA, V, V/mm, mm^3, us, Hz.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Sequence

import numpy as np

from ..errors import VtaError
from ..fem.grid import VoxelGrid
from ..fem.stimulation import Setting
from .frequency_basis import FrequencyBasis
from .run import (_active_load, _interface, _resolve, dispersive_tissue_of, frequency_basis, frequency_plan,
                  low_frequency_currents)
from .time_response import time_basis

__all__ = ["time_domain_sweep"]

log = logging.getLogger(__name__)


def _plan_key(setting: Setting, signal) -> tuple:
    """What a setting's frequency plan depends on: the mode, and for an adaptive voltage-
    controlled plan through an interface, the contact whose load the proxy uses."""
    if setting.mode == "voltage" and signal.spectrum == "adaptive" and _interface(signal) is not None:
        return ("voltage", max(setting.amplitudes, key=lambda k: abs(setting.amplitudes[k])))
    return (setting.mode,)


def _at_frequencies(fb: FrequencyBasis, freqs_hz: np.ndarray) -> FrequencyBasis:
    """The basis restricted to some of its frequencies (the same unit solutions)."""
    idx = np.array([int(np.argmin(np.abs(fb.frequencies_hz - f))) for f in freqs_hz])
    if not np.allclose(fb.frequencies_hz[idx], freqs_hz, rtol=1e-12, atol=1e-9):
        raise VtaError("internal: a plan frequency is not in the sweep's basis")
    sigma = {k: np.asarray(v)[idx] for k, v in fb.sigma_S_per_m.items()}
    return dataclasses.replace(fb, frequencies_hz=fb.frequencies_hz[idx], admittance_S=fb.admittance_S[idx],
                               shape_index=fb.shape_index[idx], sigma_S_per_m=sigma)


def time_domain_sweep(scene, settings: Sequence[Setting], grid: VoxelGrid | None = None,
                      threshold_V_per_mm: float | None = None, pulse_width_us: float | None = None) -> list[dict]:
    """Time-domain VTA and delivered waveforms of many settings on one basis.

    Parameters
    ----------
    scene : vta.scene.Scene
        With ``[signal]`` (:attr:`~vta.scene.Scene.signal`).
    settings : sequence of Setting
        Amplitudes of the first phase (mA or V by mode).
    grid : VoxelGrid, optional
        Where the peak field is evaluated; default: the scene's output grid for the
        setting with the largest total quasi-static current (it covers the others' VTAs).
    threshold_V_per_mm : float, optional
        Default: the scene's.
    pulse_width_us : float, optional
        The pulse width of the ``[signal]`` waveform (us); default ``[stimulation]``'s.

    Returns
    -------
    list of dict
        One row per setting: ``td_vta_mm3`` (voxels with peak |E| over the pulse >= the
        threshold), ``td_peak_field_V_per_mm``, ``td_peak_current_mA`` and
        ``td_peak_voltage_V`` (the signed value of largest magnitude over the active
        contacts and the pulse; the voltage on the tissue side of an electrode
        interface), ``td_impedance_ohm`` (|Z| at the lowest solve frequency), ``n_solve``.

    Raises
    ------
    VtaError
        No ``[signal]`` in the scene, or no settings.
    """
    signal = scene.signal if pulse_width_us is None else scene.signal_at(pulse_width_us)
    if signal is None:
        raise VtaError("a time-domain sweep needs a [signal] table in the configuration")
    settings = list(settings)
    if not settings:
        raise VtaError("a time-domain sweep needs at least one setting")
    t0 = time.perf_counter()
    tissue = dispersive_tissue_of(scene)
    plans: dict[tuple, object] = {}
    for s in settings:
        key = _plan_key(s, signal)
        if key not in plans:
            plans[key] = frequency_plan(signal, tissue, s.mode, *_active_load(scene, s))
    union = np.unique(np.concatenate([p.solve_freqs_hz for p in plans.values()]))
    full = frequency_basis(scene, union, tissue)
    bases = {key: _at_frequencies(full, p.solve_freqs_hz) for key, p in plans.items()}
    times = {key: time_basis(p) for key, p in plans.items()}
    thr = scene.threshold_V_per_mm if threshold_V_per_mm is None else float(threshold_V_per_mm)
    lead = scene.lead.model
    phasors = [_resolve(bases[_plan_key(s, signal)], s, signal, lead) for s in settings]
    if grid is None:
        low = [low_frequency_currents(plans[_plan_key(s, signal)], ph) for s, ph in zip(settings, phasors)]
        grid = scene.voxel_grid(max(low, key=lambda c: float(np.abs(c).sum())), thr)
    unit_fields = full.unit_fields_at(grid.points())                  # per shape: (N, K, 3)
    t1 = time.perf_counter()
    rows = []
    for s, ph in zip(settings, phasors):
        key = _plan_key(s, signal)
        fb, tb = bases[key], times[key]
        fields = np.stack([np.einsum("nkc,k->nc", unit_fields[fb.shape_index[f]], ph.potentials_V[f])
                           for f in range(fb.n_frequencies)])          # (n_solve, N, 3)
        peak = tb.peak_norm(fields)
        active = sorted(s.amplitudes)
        currents = tb.synthesize(ph.currents_mA[:, active])            # (n_active, n_t)
        voltages = tb.synthesize(ph.potentials_V[:, active])
        rows.append({
            "td_vta_mm3": float(np.count_nonzero(peak >= thr) * grid.voxel_volume_mm3),
            "td_peak_field_V_per_mm": float(np.max(peak)),
            "td_peak_current_mA": float(currents.flat[np.argmax(np.abs(currents))]),
            "td_peak_voltage_V": float(voltages.flat[np.argmax(np.abs(voltages))]),
            "td_impedance_ohm": float(np.abs(ph.impedance_ohm[int(np.argmin(fb.frequencies_hz))])),
            "n_solve": int(fb.n_frequencies),
        })
    log.info("time-domain sweep: %d settings, %d solve frequencies, basis %.1f s, settings %.1f s",
             len(settings), union.size, t1 - t0, time.perf_counter() - t1)
    return rows
