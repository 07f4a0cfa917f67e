"""Axon models under a non-separable extracellular potential (low rank in space x time).

:mod:`vta.activation.axons` drives the cable models with ``Ve(x, t) = s ve_unit(x) w(t)``.
In dispersive tissue, or behind an electrode interface, the pulse is reshaped
differently near and far from a contact, and the potential along a fibre is a short sum
of separable terms, ``Ve(x, t) = s sum_m A[x, m] g_m(t)`` (the time-domain synthesis of
:mod:`vta.timedomain.time_response` gives at most ``2 n_solve + 1`` of them, and
:func:`reduce_rank` usually cuts them to one or two). The same numba kernels run it
(:mod:`vta.activation.axon_cable`; the separable path is its one-term case):
:func:`simulate_lowrank`, :func:`activated_lowrank` and :func:`thresholds_lowrank` take
one matrix ``A`` (compartments x M, V) per fibre and a shared :class:`LowRankStimulus`,
with the time window, detection and bisection rules of :mod:`vta.activation.axons`.

Units: as :mod:`vta.activation.axons` (us, V at the interface).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..errors import VtaError
from .axon_cable import _activated_many_lr, _axial_sources, _gate_table, _q10, _run_fibre_lr, _thresholds_many_lr
from .axons import (Pulse, Simulation, _as_pulse, _check_search, _fire_flags, _kernel_constants,
                    _search_thresholds)
from .mrg_geometry import _KINDS, AxonModel

__all__ = ["LowRankStimulus", "reduce_rank", "simulate_lowrank", "activated_lowrank", "thresholds_lowrank"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LowRankStimulus:
    """The time functions ``g_m(t)`` of a low-rank potential ``Ve = s * sum_m A[:, m] g_m(t)``.

    Give either samples (``time_us`` and ``values``: ``g_m`` linear between the samples,
    a repeated time for a vertical step, zero outside the sampled span), or values that
    already are step means on a model time grid (``step_us``; ``time_us`` None).

    Attributes
    ----------
    values : ndarray, shape (M, n)
        ``g_m`` at the samples, or per model time step (dimensionless, or in the unit
        that makes ``A`` volts).
    time_us : ndarray, shape (n,), or None
        Sample times (us), non-decreasing; the pulse starts at 0.
    step_us : float or None
        With ``time_us`` None: the time step (us) of ``values``, which must equal the
        model's ``dt_us``.
    first_phase_us : float
        End of the first (stimulating) phase (us): the activation window is the first
        phase plus ``t_after_us``, as for a :class:`Pulse`.
    duration_us : float or None
        End of the stimulus (us); the run covers at least this. Default: the last
        sample time (or ``first_phase_us`` for step values).
    """

    values: np.ndarray
    time_us: np.ndarray | None = None
    step_us: float | None = None
    first_phase_us: float = 60.0
    duration_us: float | None = None

    def __post_init__(self) -> None:
        g = np.asarray(self.values, dtype=np.float64)
        if g.ndim == 1:
            g = g[None, :]
        if g.ndim != 2 or g.shape[0] < 1 or g.shape[1] < 1:
            raise VtaError(f"low-rank stimulus values must have shape (M, n), got {np.shape(self.values)}")
        if not np.all(np.isfinite(g)):
            raise VtaError("low-rank stimulus values hold non-finite numbers")
        object.__setattr__(self, "values", g)
        if (self.time_us is None) == (self.step_us is None):
            raise VtaError("give exactly one of time_us (samples) or step_us (step means) for a LowRankStimulus")
        if self.time_us is not None:
            t = np.asarray(self.time_us, dtype=np.float64).reshape(-1)
            if t.size != g.shape[1] or not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
                raise VtaError("low-rank stimulus times must be finite, non-decreasing, one per value column")
            object.__setattr__(self, "time_us", t)
        elif not self.step_us > 0:
            raise VtaError(f"step_us must be > 0, got {self.step_us}")
        if not self.first_phase_us > 0:
            raise VtaError(f"first_phase_us must be > 0, got {self.first_phase_us}")

    @property
    def n_terms(self) -> int:
        """M."""
        return int(self.values.shape[0])

    @property
    def end_us(self) -> float:
        """End of the stimulus (us)."""
        if self.duration_us is not None:
            return float(self.duration_us)
        if self.time_us is not None:
            return float(self.time_us[-1])
        return float(self.first_phase_us)

    @classmethod
    def from_pulse(cls, pulse: Pulse | float) -> "LowRankStimulus":
        """The separable pulse as one sampled term (vertical steps at the phase edges)."""
        pulse = _as_pulse(pulse)
        t, y = [], []
        for t0, t1, amp in pulse.phases():
            t += [t0, t0, t1, t1]
            y += [0.0, amp, amp, 0.0]
        return cls(np.array([y]), time_us=np.array(t), first_phase_us=pulse.width_us, duration_us=pulse.duration_us)

    def step_values(self, dt_us: float, n_steps: int) -> np.ndarray:
        """Mean of every ``g_m`` over each model step ``[k dt, (k+1) dt)``, shape (M, n_steps).

        Samples: the exact step means of the piecewise-linear interpolant (linear
        resampling that keeps the charge of every step); step values: returned as given
        (cut or zero-padded to ``n_steps``; ``dt_us`` must equal ``step_us``).
        """
        g = self.values
        if self.time_us is None:
            if not math.isclose(float(dt_us), float(self.step_us), rel_tol=1e-12):
                raise VtaError(f"the low-rank stimulus has steps of {self.step_us} us, the model {dt_us} us")
            out = np.zeros((g.shape[0], int(n_steps)))
            k = min(int(n_steps), g.shape[1])
            out[:, :k] = g[:, :k]
            return out
        t = self.time_us
        # cumulative integral at the samples (trapezoids; a repeated time adds nothing)
        cum = np.concatenate([np.zeros((g.shape[0], 1)),
                              np.cumsum(0.5 * np.diff(t)[None, :] * (g[:, 1:] + g[:, :-1]), axis=1)], axis=1)
        tb = np.arange(int(n_steps) + 1) * float(dt_us)
        k = np.searchsorted(t, tb, side="right") - 1          # last sample at or before tb
        inside = (k >= 0) & (k < t.size - 1)
        kk = np.clip(k, 0, max(t.size - 2, 0))
        integral = np.zeros((g.shape[0], tb.size))
        if t.size > 1:
            h = t[kk + 1] - t[kk]
            frac = np.where(h > 0, (tb - t[kk]) / np.where(h > 0, h, 1.0), 0.0)
            y_at = g[:, kk] + frac[None, :] * (g[:, kk + 1] - g[:, kk])
            part = cum[:, kk] + 0.5 * (tb - t[kk])[None, :] * (g[:, kk] + y_at)
            integral = np.where(inside[None, :], part, integral)
        integral = np.where((k >= t.size - 1)[None, :], cum[:, -1:], integral)
        return np.diff(integral, axis=1) / float(dt_us)


def reduce_rank(A, G: np.ndarray, rtol: float = 1e-9, keep_first: bool = True):
    """Fewer terms for the same potentials: ``sum_m A[:, m] G[m]`` to relative ``rtol``.

    Parameters
    ----------
    A : sequence of ndarray (n_compartments_f, M), or ndarray (n_fibres, n, M)
        Term matrices per fibre (V).
    G : ndarray, shape (M, n_t)
        Shared time functions.
    rtol : float
        Terms whose singular value is below ``rtol`` times the largest are dropped
        (the potential changes by about that fraction of its largest value).
    keep_first : bool
        Keep term 0 (e.g. the reference waveform) exactly as it is and compress only the
        others: a potential that is separable in term 0 stays bit-for-bit separable.

    Returns
    -------
    (list of ndarray (n_compartments_f, M'), ndarray (M', n_t))
    """
    mats = [np.asarray(a, dtype=np.float64) for a in A]
    G = np.asarray(G, dtype=np.float64)
    if not mats:
        return mats, G
    lengths = [a.shape[0] for a in mats]
    stack = np.concatenate(mats, axis=0)                     # (N, M)
    j0 = 1 if keep_first else 0
    rest_A, rest_G = stack[:, j0:], G[j0:]
    scale = float(np.linalg.norm(stack[:, :1]) * np.linalg.norm(G[:1])) if keep_first else 0.0
    if rest_A.shape[1] == 0:
        return mats, G
    # (A G) = (A R^T) Q^T with G^T = Q R; then an SVD of the small factor A R^T
    Q, R = np.linalg.qr(rest_G.T)                             # Q (n_t, M), R (M, M)
    U, S, Vt = np.linalg.svd(rest_A @ R.T, full_matrices=False)
    top = max(float(S[0]) if S.size else 0.0, scale)
    r = int(np.sum(S > rtol * top)) if top > 0 else 0
    new_A = U[:, :r] * S[:r][None, :]
    new_G = (Q @ Vt[:r].T).T
    if keep_first:
        new_A = np.concatenate([stack[:, :1], new_A], axis=1)
        new_G = np.concatenate([G[:1], new_G], axis=0)
    out = np.split(new_A, np.cumsum(lengths)[:-1], axis=0)
    log.debug("low-rank potential: %d -> %d terms (rtol %.1e)", G.shape[0], new_G.shape[0], rtol)
    return out, new_G


def _pack_lowrank(model: AxonModel, A, M: int, min_nodes: int):
    """Per-fibre term matrices (V) -> stacked (total, M) mV array, offsets, max nodes."""
    mats = [np.asarray(a, dtype=np.float64) for a in A]
    for a in mats:
        if a.ndim != 2 or a.shape[1] != M:
            raise VtaError(f"each fibre's term matrix must have shape (n_compartments, {M}), got {a.shape}")
    if not mats:
        return np.zeros((0, M)), np.zeros(1, np.int64), min_nodes
    lengths = np.array([a.shape[0] for a in mats], dtype=np.int64)
    nodes = [model.n_nodes(m) for m in lengths]
    if min(nodes) < min_nodes:
        raise VtaError(f"a fibre has {min(nodes)} nodes; the propagation criterion needs at least {min_nodes}")
    flat = np.ascontiguousarray(np.concatenate(mats, axis=0) * 1e3)
    if not np.all(np.isfinite(flat)):
        raise VtaError("the term matrices hold non-finite values")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return flat, offsets, max(nodes)


def _setup_lowrank(model: AxonModel, A, stimulus: LowRankStimulus, dt_us: float, t_after_us: float,
                   n_propagate: int):
    """:func:`_setup` for a low-rank potential: stacked A (mV), offsets, G per step, kernel args."""
    if model.kind not in _KINDS:
        raise VtaError(f"unknown axon model kind {model.kind!r}")
    if not isinstance(stimulus, LowRankStimulus):
        raise VtaError(f"stimulus must be a LowRankStimulus, got {type(stimulus).__name__}")
    if not dt_us > 0:
        raise VtaError(f"dt must be > 0 us, got {dt_us}")
    if not t_after_us >= 0:
        raise VtaError(f"t_after_us must be >= 0, got {t_after_us}")
    if int(n_propagate) < 1:
        raise VtaError(f"n_propagate must be >= 1, got {n_propagate}")
    if isinstance(A, np.ndarray) and A.ndim == 2:
        A = [A]
    flat, offsets, n_max = _pack_lowrank(model, A, stimulus.n_terms, int(n_propagate) + 1)
    t_end = max(stimulus.first_phase_us + float(t_after_us), stimulus.end_us)
    n_steps = int(math.ceil(t_end / dt_us - 1e-9))
    G = np.ascontiguousarray(stimulus.step_values(dt_us, n_steps))
    q = _q10()
    dt_ms = dt_us * 1e-3
    tab = _gate_table(dt_ms, q)
    gi, gp, segc, nodec = _kernel_constants(model, n_max, dt_ms)
    kernel_args = (model.compartments_per_node, dt_ms, gi, gp, segc, nodec, q, tab, model.rest_potential_mV)
    return flat, offsets, G, kernel_args


def simulate_lowrank(
    model: AxonModel,
    A: np.ndarray,
    stimulus: LowRankStimulus,
    *,
    dt_us: float = 2.0,
    t_after_us: float = 1500.0,
    v_detect_mV: float = -20.0,
    n_propagate: int = 5,
    stop_early: bool = False,
) -> Simulation:
    """:func:`simulate` under ``Ve(x, t) = sum_m A[x, m] g_m(t)``.

    Parameters
    ----------
    model : AxonModel
    A : ndarray, shape (model.n_compartments(n_nodes), M)
        Spatial terms at each compartment (V).
    stimulus : LowRankStimulus
        The M time functions.
    dt_us, t_after_us, v_detect_mV, n_propagate, stop_early
        As :func:`simulate`.
    """
    flat, offsets, G, args = _setup_lowrank(model, [A], stimulus, dt_us, t_after_us, n_propagate)
    n = int(offsets[1])
    rec = np.full((G.shape[1] + 1, model.n_nodes(n)), np.nan)
    afi, afb = _axial_sources(flat, n, args[2], args[3])
    fired, steps, first = _run_fibre_lr(afi, afb, 1.0, G, n, *args, float(v_detect_mV), int(n_propagate),
                                        bool(stop_early), True, rec)
    t = np.arange(steps + 1) * dt_us * 1e-3
    return Simulation(t, rec[: steps + 1].copy(), bool(fired), int(first))


def activated_lowrank(
    model: AxonModel,
    A,
    stimulus: LowRankStimulus,
    *,
    dt_us: float = 2.0,
    t_after_us: float = 1500.0,
    v_detect_mV: float = -20.0,
    n_propagate: int = 5,
) -> np.ndarray:
    """:func:`activated` under low-rank potentials (parallel over fibres).

    Parameters
    ----------
    model : AxonModel
    A : sequence of ndarray (n_compartments_f, M), or ndarray (n_fibres, n, M)
        Spatial terms per fibre (V); the fibres may differ in length.
    stimulus : LowRankStimulus
        The M time functions, shared by the fibres.
    dt_us, t_after_us, v_detect_mV, n_propagate
        As :func:`simulate`.

    Returns
    -------
    ndarray of bool, shape (n_fibres,)
    """
    flat, offsets, G, args = _setup_lowrank(model, A, stimulus, dt_us, t_after_us, n_propagate)
    return _fire_flags(_activated_many_lr, model, flat, offsets, G, args, v_detect_mV, n_propagate)


def thresholds_lowrank(
    model: AxonModel,
    A,
    stimulus: LowRankStimulus,
    *,
    rel_tol: float = 0.01,
    s_max: float = 100.0,
    s_start=None,
    dt_us: float = 2.0,
    t_after_us: float = 1500.0,
    v_detect_mV: float = -20.0,
    n_propagate: int = 5,
) -> np.ndarray:
    """:func:`thresholds` under low-rank potentials: the fibre sees
    ``Ve = s * sum_m A[:, m] g_m(t)``; ``s*`` per fibre by the same bisection.

    Parameters
    ----------
    model : AxonModel
    A : sequence of ndarray (n_compartments_f, M), or ndarray (n_fibres, n, M)
        Spatial terms per fibre for the unit setting (V).
    stimulus : LowRankStimulus
        The M time functions, shared by the fibres.
    rel_tol, s_max, dt_us, t_after_us, v_detect_mV, n_propagate
        As :func:`thresholds`.
    s_start : array_like, optional
        Starting guesses per fibre; by default those of :func:`thresholds` for the
        first-phase mean potential ``A @ mean(g over the first phase)``.

    Returns
    -------
    ndarray, shape (n_fibres,)
        ``s*`` per fibre, ``np.inf`` where not activated up to ``s_max``.
    """
    _check_search(rel_tol, s_max)
    flat, offsets, G, args = _setup_lowrank(model, A, stimulus, dt_us, t_after_us, n_propagate)

    def guess_ve() -> np.ndarray:
        # the starting guesses see the first phase's mean of the time terms
        k1 = max(1, int(math.ceil(stimulus.first_phase_us / dt_us - 1e-9)))
        return (flat @ G[:, :k1].mean(axis=1)) * 1e-3

    return _search_thresholds(_thresholds_many_lr, model, flat, offsets, G, args, guess_ve,
                              Pulse(stimulus.first_phase_us), s_start, s_max, rel_tol, v_detect_mV, n_propagate,
                              f"axon thresholds (low rank, M = {G.shape[0]})")
