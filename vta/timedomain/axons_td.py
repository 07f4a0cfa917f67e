"""Axon-based activation of a time-domain run: the cable models driven by the real waveform.

In dispersive tissue, or behind an electrode interface under voltage control, the pulse
reaches a fibre reshaped, and reshaped differently near and far from the contact, so
the extracellular potential is not the quasi-static ``ve(x) w(t)`` the axon models
usually take. The time-domain run (:mod:`vta.timedomain.run`) gives it at any point as
a short sum (:mod:`vta.timedomain.time_response`)::

    u(x, t) = v_ref(x) w(t) + Re sum_i (v_i(x) - v_ref(x)) B[i, t]
            = sum_m a_m(x) g_m(t),

with ``v_i`` the potential phasors at the ``n_solve`` solve frequencies: at most
``2 n_solve + 1`` real terms (``v_ref``; ``Re(v_i - v_ref)`` with ``Re B_i``;
``-Im(v_i - v_ref)`` with ``Im B_i``). :func:`axon_activation_time_domain` samples the
phasors at the compartments of the axons that tract activation places
(:mod:`vta.activation.tract_activation`: same fibres, same search radius, same model),
evaluates the time functions at the midpoints of the axon model's time steps (the
waveform term ``w`` as exact step means, as :meth:`vta.activation.axons.Pulse.step_values`),
compresses the terms that carry less than ``1e-9`` of the potential
(:func:`vta.activation.axons.reduce_rank`, keeping the waveform term exact) and
searches each fibre's threshold factor ``s*`` (a multiple of the setting) with
:func:`vta.activation.axons.thresholds_lowrank`. Beside it, the quasi-static
comparison: the scene's real basis with the same waveform, the separable case (one
term), on the same fibres. Purely resistive tissue makes every ``v_i`` equal to
``v_ref``: one term, the quasi-static thresholds.

The fibres see one pulse of the periodic steady state, from the start of the pulse
(``t = 0``, the fibre at rest) for the first phase plus ``t_after_us`` (capped at the
period): the potential at ``t = 0`` includes what remains of the previous pulses (e.g.
a charged double layer discharging), which the run logs relative to the peak.

Butson CR, McIntyre CC, Clin Neurophysiol 116:2490 (2005) found that tissue and
electrode capacitance shrink the activated volume of a voltage-controlled pulse (about
20 % at -3 V, 90 us, 130 Hz); tests/test_axons_td.py reproduces a comparable case.

Units: us, mm, V, threshold factors dimensionless (multiples of the setting).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..activation.axons_lowrank import LowRankStimulus, reduce_rank, thresholds_lowrank
from ..activation.tract_activation import (RUN_THRESHOLD_CAP, PlacedTract, axon_model, fibre_potentials,
                                           load_config_tracts, place_tract, search_radius_mm)
from ..errors import VtaError
from ..fem.stimulation import Setting, carrying_contacts, resolve
from .signal import Waveform
from .time_response import TimeBasis

__all__ = ["TractTimeDomain", "AxonTimeDomainResult", "axon_activation_time_domain", "waveform_step_means",
           "lowrank_potentials"]

log = logging.getLogger(__name__)

#: Relative size (of the largest term) below which low-rank terms are dropped.
RANK_RTOL = 1e-9


@dataclass(frozen=True)
class TractTimeDomain:
    """Threshold factors of one tract's axons, time domain and quasi-static.

    Attributes
    ----------
    placed : PlacedTract
        The axons (as tract activation places them).
    threshold_factor : ndarray, shape (n_placed,)
        ``s*`` under the time-domain potential (multiple of the setting; ``inf``: through
        the lead or above ``s_max``).
    threshold_factor_quasi_static : ndarray or None
        ``s*`` under the quasi-static potential times the waveform (same fibres).
    n_terms : int
        Terms of the low-rank potential after compression.
    """

    placed: PlacedTract
    threshold_factor: np.ndarray
    threshold_factor_quasi_static: np.ndarray | None
    n_terms: int

    @property
    def name(self) -> str:
        return self.placed.name

    def summary(self) -> dict:
        """Activated counts and fractions (of the tract's streamlines), TD and QS."""
        n = self.placed.n_fibres
        td = int(np.sum(self.threshold_factor <= 1.0))
        out = {"n_fibres": n, "n_simulated": int((~self.placed.through_lead).sum()),
               "n_activated": td, "fraction_activated": td / n if n else 0.0, "n_terms": self.n_terms}
        if self.threshold_factor_quasi_static is not None:
            qs = int(np.sum(self.threshold_factor_quasi_static <= 1.0))
            out.update({"n_activated_quasi_static": qs, "fraction_activated_quasi_static": qs / n if n else 0.0})
        return out


@dataclass
class AxonTimeDomainResult:
    """Axon-based activation of a time-domain run (:func:`axon_activation_time_domain`).

    Attributes
    ----------
    tracts : list of TractTimeDomain
    dt_us : float
        Axon model time step (us).
    t_end_us : float
        Simulated time per fibre (us).
    baseline_fraction : float
        max |u(x, 0)| / max |u(x, t)| over the compartments: what the previous pulses
        leave at the start of the simulated one.
    timings_s : dict
    """

    tracts: list[TractTimeDomain]
    dt_us: float
    t_end_us: float
    baseline_fraction: float = 0.0
    timings_s: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """summary.json ``time_domain.tracts``: per tract the activated fibres, TD and QS."""
        return {"tracts": {t.name: t.summary() for t in self.tracts}, "dt_us": self.dt_us,
                "t_end_us": self.t_end_us, "baseline_fraction": self.baseline_fraction,
                "timings_s": self.timings_s}


def waveform_step_means(waveform: Waveform, dt_us: float, n_steps: int) -> np.ndarray:
    """Mean of one pulse of the waveform over each step ``[k dt, (k+1) dt)``, (n_steps,).

    The analytic shapes integrate their rectangles exactly (the arithmetic of
    :meth:`vta.activation.axons.Pulse.step_values`); a csv waveform its piecewise-linear
    samples. Later pulses of the train are not included.
    """
    if waveform.shape == "csv":
        t, y = waveform.samples
        return LowRankStimulus(np.asarray(y)[None, :], time_us=np.asarray(t), first_phase_us=1.0).step_values(
            dt_us, n_steps)[0]
    t = np.arange(n_steps + 1) * float(dt_us)
    integral = np.zeros(n_steps + 1)
    for t0, t1, amp in waveform.phases():
        integral += amp * np.clip(t - t0, 0.0, t1 - t0)
    return np.diff(integral) / float(dt_us)


def _fill_outside(values: np.ndarray) -> np.ndarray:
    """NaN compartments (outside the model domain) take the value of the nearest
    compartment inside along their fibre (0 if none), as
    :func:`vta.activation.tract_activation.fibre_potentials`; values (..., n, m)."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    bad_any = bad.reshape(-1, *bad.shape[-2:]).any(axis=0)                # (n, m)
    m = bad_any.shape[1]
    j = np.arange(m)[None, :]
    fwd = np.maximum.accumulate(np.where(~bad_any, j, -1), axis=1)
    bwd = np.minimum.accumulate(np.where(~bad_any, j, m)[:, ::-1], axis=1)[:, ::-1]
    use_f = (fwd >= 0) & ((bwd >= m) | (j - fwd <= bwd - j))
    src = np.where(use_f, fwd, np.where(bwd < m, bwd, 0))
    out = np.take_along_axis(values, np.broadcast_to(src, values.shape), axis=-1)
    out = np.where(bad_any.all(axis=1)[:, None], 0.0, out)
    return np.where(bad_any, out, values)


def lowrank_potentials(phasors_V: np.ndarray, times: TimeBasis, waveform_steps: np.ndarray):
    """Low-rank terms of ``u(x, t)`` from potential phasors at the compartments.

    Parameters
    ----------
    phasors_V : ndarray of complex, shape (n_solve, n_fibres, m)
        Potential phasors (V) at every compartment, per solve frequency.
    times : TimeBasis
        At the midpoints of the model's time steps.
    waveform_steps : ndarray, shape (n_t,)
        ``w`` as step means on the same steps (the reference term).

    Returns
    -------
    (ndarray (n_fibres, m, 2 n_solve + 1), ndarray (2 n_solve + 1, n_t))
        ``A`` per fibre (V) and ``G``.
    """
    v = np.asarray(phasors_V)
    ref = np.real(v[times.reference])                                     # (n_f, m)
    d = v - ref[None]                                                     # (n_solve, n_f, m)
    A = np.concatenate([ref[..., None], np.moveaxis(d.real, 0, -1), -np.moveaxis(d.imag, 0, -1)], axis=-1)
    G = np.concatenate([np.asarray(waveform_steps)[None, :], times.matrix.real, times.matrix.imag], axis=0)
    return A, G


def axon_activation_time_domain(scene, setting: Setting | None = None, *, tracts=None, quasi_static: bool = True,
                                s_max: float = RUN_THRESHOLD_CAP, rel_tol: float = 0.01, dt_us: float = 2.0,
                                t_after_us: float = 1500.0, plan=None, basis=None) -> AxonTimeDomainResult:
    """Threshold factor of every placed axon under the time-domain potential of a scene.

    Parameters
    ----------
    scene : vta.scene.Scene
        With ``[signal]`` and ``[tracts]`` (axon model, diameter, length, search radius).
    setting : Setting, optional
        Default: the scene's; amplitudes of the first phase (mA or V).
    tracts : list of Tract, optional
        Default: the ``[tracts]`` files and bundle (:func:`load_config_tracts`).
    quasi_static : bool
        Also the separable comparison on the same fibres (the scene's quasi-static
        basis, the same waveform).
    s_max : float
        Largest threshold factor searched (``inf`` above).
    rel_tol, dt_us, t_after_us
        As :func:`vta.activation.axons.thresholds`; the run covers the first phase plus
        ``t_after_us``, at least the whole pulse, at most one period.
    plan, basis : FrequencyPlan, FrequencyBasis, optional
        Reuse those of a time-domain run (default: built here as
        :func:`vta.timedomain.run.simulate_time_domain` builds them).

    Returns
    -------
    AxonTimeDomainResult
    """
    from .run import _active_load, _resolve, dispersive_tissue_of, frequency_basis, frequency_plan

    if scene.signal is None:
        raise VtaError("axon activation in the time domain needs a [signal] section")
    setup = scene.tract_setup()
    if setup is None:
        raise VtaError("axon activation in the time domain needs a [tracts] section")
    t0 = time.perf_counter()
    setting = setting or scene.setting()
    signal = scene.signal
    wf = signal.waveform
    if plan is None or basis is None:
        tissue = dispersive_tissue_of(scene)
        plan = frequency_plan(signal, tissue, setting.mode, *_active_load(scene, setting))
        basis = frequency_basis(scene, plan.solve_freqs_hz, tissue)
    phasors = _resolve(basis, setting, signal, scene.lead.model)
    t1 = time.perf_counter()
    qs_basis = scene.basis
    qs_state = resolve(setting, qs_basis.conductance_S, qs_basis.outer_grounded)
    # the time window: the first phase + t_after, at least the pulse, at most a period
    first_end = wf.phases()[0][1] if wf.shape != "csv" else float(wf.pulse_width_us)
    pulse_end = wf.phases()[-1][1] if wf.shape != "csv" else float(wf.samples[0][-1])
    t_end = min(max(first_end + float(t_after_us), pulse_end), wf.period_us)
    n_steps = int(math.ceil(t_end / dt_us - 1e-9))
    w_steps = waveform_step_means(wf, dt_us, n_steps)
    times = TimeBasis(plan, (np.arange(n_steps) + 0.5) * dt_us)
    before = TimeBasis(plan, np.array([-0.5 * dt_us]))        # just before the pulse: the train's tail
    model = axon_model(setup.tracts)
    active = carrying_contacts(qs_state.currents_mA)
    radius = search_radius_mm(setup, qs_state.currents_mA * s_max)
    tract_list = load_config_tracts(setup) if tracts is None else list(tracts)
    results, baseline = [], 0.0
    timings = {"basis": t1 - t0, "potentials": 0.0, "thresholds_time_domain": 0.0, "thresholds_quasi_static": 0.0}
    for tract in tract_list:
        placed = place_tract(setup, tract, model, active, radius)
        ok = ~placed.through_lead
        s_td = np.full(len(placed.segments), np.inf)
        s_qs = np.full(len(placed.segments), np.inf) if quasi_static else None
        n_terms = 0
        if ok.any():
            ta = time.perf_counter()
            pts = placed.segments.points_mm[ok]
            nf, m, _ = pts.shape
            ph = basis.potential_at(pts.reshape(-1, 3), phasors.potentials_V).reshape(-1, nf, m)
            ph = _fill_outside(ph)
            A, G = lowrank_potentials(ph, times, w_steps)
            A_list, G = reduce_rank(list(A), G, RANK_RTOL, keep_first=True)
            n_terms = G.shape[0]
            u0 = np.abs(before.synthesize(ph)[..., 0])                      # u(x, 0-)
            peak = max(float(np.abs(A[..., 0]).max()), 1e-300)
            baseline = max(baseline, float(u0.max()) / peak)
            stim = LowRankStimulus(G, step_us=dt_us, first_phase_us=first_end, duration_us=t_end)
            tb = time.perf_counter()
            s_td[ok] = thresholds_lowrank(model, A_list, stim, rel_tol=rel_tol, s_max=s_max, dt_us=dt_us,
                                          t_after_us=t_end - first_end)
            tc = time.perf_counter()
            timings["potentials"] += tb - ta
            timings["thresholds_time_domain"] += tc - tb
            if quasi_static:
                ve = fibre_potentials(qs_basis, qs_state.potentials_V, placed)
                qs_stim = LowRankStimulus(w_steps[None, :], step_us=dt_us, first_phase_us=first_end,
                                          duration_us=t_end)
                s_qs[ok] = thresholds_lowrank(model, [v[:, None] for v in ve], qs_stim, rel_tol=rel_tol,
                                              s_max=s_max, dt_us=dt_us, t_after_us=t_end - first_end)
                timings["thresholds_quasi_static"] += time.perf_counter() - tc
        res = TractTimeDomain(placed, s_td, s_qs, n_terms)
        results.append(res)
        log.info("tract %s (time domain): %d of %d fibres simulated, %d activated (quasi-static: %s), %d terms",
                 tract.name, int(ok.sum()), placed.n_fibres, int(np.sum(s_td <= 1.0)),
                 "-" if s_qs is None else int(np.sum(s_qs <= 1.0)), n_terms)
    if baseline > 0.01:
        log.info("time-domain axons: the potential at the start of the pulse is %.1f %% of its first-phase peak "
                 "(previous pulses of the train)", 100 * baseline)
    return AxonTimeDomainResult(results, float(dt_us), float(n_steps * dt_us), baseline, timings)
