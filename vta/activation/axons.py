"""Myelinated axon cable models in numba: MRG double cable and a nodes-only model.

Two models share one nodal membrane, the mammalian motor node of McIntyre, Richardson
& Grill, J Neurophysiol 2002;87:995 ("MRG"): fast Na, persistent Na, slow K and leak.

- :func:`mrg_model`: the MRG double cable. Each node-to-node period has 11 compartments
  (node, MYSA, FLUT, 6 STIN, FLUT, MYSA); every compartment has an intracellular and a
  periaxonal potential. The periaxonal layer couples to the extracellular potential
  through the myelin (conductance + capacitance) and along the fibre through the
  periaxonal resistance; at the nodes it is shorted to the extracellular potential (as
  NEURON's ``extracellular`` with ``xg = 1e10`` in the original model).
- :func:`simplified_model`: nodes only (McNeal 1976 type): perfectly insulating myelin,
  the nodes joined by the intracellular resistance of the MRG internode (the series sum
  of its MYSA, FLUT and STIN axoplasm). About 2x cheaper per time step (the node
  membrane dominates both), and much more excitable than MRG: thresholds 0.26-0.64 x
  MRG's for a 5.7 um fibre at 4-0.5 mm from a point source (60 us), closer to MRG for
  larger fibres (0.47-0.77 x at 16 um). Its subthreshold responses spread further, so
  it needs longer fibres than MRG to keep action potentials from starting at the ends.

Stimulation, threshold and activation
-------------------------------------
The extracellular potential is ``Ve(x, t) = s * ve_unit(x) * w(t)``: ``ve_unit`` in V,
one value per compartment (sample it at :func:`compartment_offsets_mm`), ``s >= 0`` a
scale, ``w`` the pulse of :class:`Pulse` (first phase +1, then a passive, symmetric or
no recharge phase). A fibre is *activated* when an action potential propagates: a
node's membrane potential crosses ``v_detect_mV`` (default -20 mV) at a node at least
``n_propagate`` (default 5) nodes away from the node that crossed first, within the
first phase + ``t_after_us`` (default 1.5 ms, at least the whole pulse). A run stops
as soon as that happens; a silent run goes to the end (a subthreshold response can
still fire late, so there is no early stop for silence). :func:`thresholds` bisects
``s`` per fibre; because ``Ve`` is linear in the amplitude the caller reuses ``s*`` for
every amplitude of one contact configuration and pulse: the fibre fires at amplitude
``A`` iff ``A >= s*``. (Very strong stimuli can block propagation under the electrode;
that upper threshold is not searched.)

Low-rank (non-separable) potentials
-----------------------------------
In dispersive tissue, or behind an electrode interface, the pulse is reshaped
differently near and far from the contact and ``Ve`` is no longer separable. Any
potential synthesised from a few frequency-domain solutions is a short sum
``Ve(x, t) = s * sum_m A[x, m] g_m(t)`` (:mod:`vta.timedomain.time_response`: at most
``2 n_solve + 1`` real terms). :func:`simulate_lowrank`, :func:`activated_lowrank` and
:func:`thresholds_lowrank` take one matrix ``A`` (n_compartments, M) per fibre and the
shared time functions as a :class:`LowRankStimulus` (sampled ``g_m``, resampled onto
the model's time steps); the kernels sum the M terms' axial sources at every step. The
separable functions are the case M = 1 (``A = ve_unit[:, None]``, ``g = w``) and run
through the same kernel with the same floating-point operations. :func:`reduce_rank`
compresses the terms shared by many fibres (an SVD) to keep M, and the cost per step,
small.

Fibre ends are sealed (no axial current leaves them). Where the extracellular potential
still changes at an end, the end node sees a one-sided activating function ``E / dx``
(a cathodic source hyperpolarises the ends, an anodic one depolarises them), and a
sealed end also loads a travelling local response less, so an end node can fire
first. That is an artefact of cutting the fibre; it is counted as activation but
logged as a warning (:class:`Simulation` reports the origin node). Give the models
fibres that run well past the stimulated region (for a point source at distance ``d``
the end/centre activating-function ratio is about ``d^3 / (L^2 dx)`` for half-length
``L``) and at least ``n_propagate + 1`` nodes.

Numerics
--------
Backward Euler with exact (``cnexp``) gate updates and block elimination of the
internodes, in numba (:mod:`vta.activation.axon_cable`, which documents the scheme).
The default ``dt = 2 us`` puts thresholds 0.5-1.1 % above the ``dt -> 0`` limit
(30-120 us pulses); they match NEURON at equal ``dt`` within 0.1 %
(tests/test_axons.py). Fibres run in parallel; a threshold takes about 6.4 simulations
with the default starting guesses. The fibre geometry (MRG table) is in
:mod:`vta.activation.mrg_geometry`; non-separable (low-rank) potentials, as the
time-domain run gives, in :mod:`vta.activation.axons_lowrank`.

Units: mm and um as named, potentials V at the interface (mV inside), time us at the
interface (ms inside), conductances uS, capacitances nF, currents nA inside.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .axon_cable import _E_PAS_MV, _activated_many, _gate_table, _q10, _run_fibre, _thresholds_many
from .axon_cable import _run_fibre_blocks  # noqa: F401  (reference solver, used by tests/test_axons.py)
from .mrg_geometry import (_KINDS, MRG_DIAMETERS_UM, AxonModel, _coefficients, compartment_offsets_mm, mrg_model,
                           simplified_model)
from ..errors import VtaError

__all__ = [
    "AxonModel",
    "Pulse",
    "Simulation",
    "MRG_DIAMETERS_UM",
    "mrg_model",
    "simplified_model",
    "compartment_offsets_mm",
    "point_source_ve",
    "simulate",
    "activated",
    "thresholds",
    "activating_function",
    "af_threshold",
]

log = logging.getLogger(__name__)

# --- pulse -------------------------------------------------------------------------------

_RECHARGE = ("passive", "symmetric", "none")


@dataclass(frozen=True)
class Pulse:
    """One stimulus pulse, in units of the caller's unit potential.

    Attributes
    ----------
    width_us : float
        Width of the first (stimulating) phase (us); its amplitude is +1 (the sign of
        the setting is in ``ve_unit``).
    recharge : str
        Charge-balancing second phase: ``"passive"`` (default; amplitude -1/10 for
        10 x the width, like passive-recharge pulse generators), ``"symmetric"``
        (amplitude -1 for the width) or ``"none"`` (monophasic).
    gap_us : float
        Interphase gap before the second phase (us), default 0.
    """

    width_us: float = 60.0
    recharge: str = "passive"
    gap_us: float = 0.0

    def __post_init__(self) -> None:
        if not self.width_us > 0:
            raise VtaError(f"pulse width must be > 0 us, got {self.width_us}")
        if self.recharge not in _RECHARGE:
            raise VtaError(f"pulse recharge must be one of {', '.join(_RECHARGE)}, got {self.recharge!r}")
        if self.gap_us < 0:
            raise VtaError(f"interphase gap must be >= 0 us, got {self.gap_us}")

    def phases(self) -> list[tuple[float, float, float]]:
        """``(start_us, end_us, amplitude)`` of each phase."""
        pw = float(self.width_us)
        out = [(0.0, pw, 1.0)]
        t2 = pw + float(self.gap_us)
        if self.recharge == "passive":
            out.append((t2, t2 + 10 * pw, -0.1))
        elif self.recharge == "symmetric":
            out.append((t2, t2 + pw, -1.0))
        return out

    @property
    def duration_us(self) -> float:
        """End of the last phase (us)."""
        return self.phases()[-1][1]

    def step_values(self, dt_us: float, n_steps: int) -> np.ndarray:
        """Mean of the waveform over each time step ``[n dt, (n+1) dt)``, shape (n_steps,)."""
        t = np.arange(n_steps + 1) * float(dt_us)
        integral = np.zeros(n_steps + 1)
        for t0, t1, amp in self.phases():
            integral += amp * np.clip(t - t0, 0.0, t1 - t0)
        return np.diff(integral) / float(dt_us)


def _as_pulse(pulse) -> Pulse:
    if isinstance(pulse, Pulse):
        return pulse
    try:
        return Pulse(float(pulse))
    except (TypeError, ValueError):
        raise VtaError(f"pulse must be a Pulse or a pulse width in us, got {pulse!r}") from None


@dataclass(frozen=True)
class Simulation:
    """Node membrane potentials of one simulated fibre (from :func:`simulate`).

    Attributes
    ----------
    t_ms : ndarray, shape (n_t,)
        Time of each sample (ms); the pulse starts at 0.
    vm_mV : ndarray, shape (n_t, n_nodes)
        Membrane potential at the nodes (mV).
    activated : bool
        Whether the propagation criterion was met.
    origin_node : int
        Node where the first crossing of the detection potential happened (-1: none).
    """

    t_ms: np.ndarray
    vm_mV: np.ndarray
    activated: bool
    origin_node: int


# --- kernel inputs -----------------------------------------------------------------------


def _kernel_constants(model: AxonModel, n_nodes: int, dt_ms: float):
    """Arrays for :func:`~vta.activation.axon_cable._run_fibre`: gi, gp (uS, per compartment pair), segc (per
    internode compartment: C/dt, C_myelin/dt, g_pas E_pas, coupling g and p to the
    previous compartment, M^-1 (4), C' = M^-1 U (4), yL (2), yR (2)) and nodec (C/dt
    of a node, node-to-neighbour conductance, g_Naf, g_Nap, g_Ks, g_L)."""
    cm, gpas, cmy, gmy, gi, gp, g_node = _coefficients(model, max(int(n_nodes), 2))
    cpn = model.compartments_per_node
    m = cpn - 1
    nodec = np.concatenate([[cm[0] / dt_ms, gi[0]], g_node])
    segc = np.zeros((max(m, 1), 17))
    if m == 0:
        return gi, gp, segc, nodec
    idx = np.arange(1, cpn)  # the internode after node 0
    gl_, gr = gi[idx - 1], gi[idx]
    pl, pr = gp[idx - 1], gp[idx]
    D = np.zeros((m, 2, 2))
    D[:, 0, 0] = cm[idx] / dt_ms + gpas[idx] + gl_ + gr
    D[:, 0, 1] = D[:, 1, 0] = gl_ + gr
    D[:, 1, 1] = cmy[idx] / dt_ms + gmy[idx] + gl_ + gr + pl + pr
    L = np.zeros((m, 2, 2))  # coupling of compartment i to i - 1
    L[:, 0, :] = -gl_[:, None]
    L[:, 1, 0] = -gl_
    L[:, 1, 1] = -(gl_ + pl)
    L[0] = 0.0
    U = np.zeros((m, 2, 2))  # coupling of compartment i to i + 1
    U[:, 0, :] = -gr[:, None]
    U[:, 1, 0] = -gr
    U[:, 1, 1] = -(gr + pr)
    U[-1] = 0.0
    A = np.zeros((2 * m, 2 * m))
    for i in range(m):
        A[2 * i:2 * i + 2, 2 * i:2 * i + 2] = D[i]
        if i > 0:
            A[2 * i:2 * i + 2, 2 * i - 2:2 * i] = L[i]
        if i < m - 1:
            A[2 * i:2 * i + 2, 2 * i + 2:2 * i + 4] = U[i]
    rhs = np.zeros((2 * m, 2))
    rhs[0:2, 0] = gl_[0]  # unit potential of the left node
    rhs[-2:, 1] = gr[-1]  # ... of the right node
    y = np.linalg.solve(A, rhs)
    Cp = np.zeros((2, 2))
    for i in range(m):
        M = D[i] - L[i] @ Cp
        Minv = np.linalg.inv(M)
        Cp = Minv @ U[i]
        segc[i, 0] = cm[idx[i]] / dt_ms
        segc[i, 1] = cmy[idx[i]] / dt_ms
        segc[i, 2] = gpas[idx[i]] * _E_PAS_MV
        segc[i, 3] = gl_[i] if i > 0 else 0.0
        segc[i, 4] = pl[i] if i > 0 else 0.0
        segc[i, 5:9] = Minv.ravel()
        segc[i, 9:13] = Cp.ravel()
        segc[i, 13:15] = y[2 * i:2 * i + 2, 0]
        segc[i, 15:17] = y[2 * i:2 * i + 2, 1]
    return gi, gp, segc, nodec


def _pack(model: AxonModel, ve, min_nodes: int):
    """Per-fibre potentials (V) -> flat mV array, offsets, max nodes."""
    if isinstance(ve, np.ndarray) and ve.ndim == 2:
        fibres = list(ve)
    elif isinstance(ve, np.ndarray) and ve.ndim == 1 and ve.dtype != object:
        raise VtaError("ve must hold one array per fibre (a list, or a 2D array n_fibres x n_compartments)")
    else:
        fibres = list(ve)
    if not fibres:
        return np.zeros(0), np.zeros(1, np.int64), min_nodes
    arrays = [np.asarray(f, dtype=np.float64).ravel() for f in fibres]
    lengths = np.array([a.size for a in arrays], dtype=np.int64)
    nodes = [model.n_nodes(m) for m in lengths]
    if min(nodes) < min_nodes:
        raise VtaError(
            f"a fibre has {min(nodes)} nodes; the propagation criterion needs at least {min_nodes}"
        )
    flat = np.concatenate(arrays) * 1e3
    if not np.all(np.isfinite(flat)):
        raise VtaError("ve holds non-finite values")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return flat, offsets, max(nodes)


def _setup(model: AxonModel, ve, pulse, dt_us: float, t_after_us: float, n_propagate: int):
    """Validate and pack the inputs: flat Ve (mV), offsets, waveform per step, kernel
    arguments (cpn, dt_ms, gi, gp, segc, nodec, q10, gate table, v0)."""
    if model.kind not in _KINDS:
        raise VtaError(f"unknown axon model kind {model.kind!r}")
    pulse = _as_pulse(pulse)
    if not dt_us > 0:
        raise VtaError(f"dt must be > 0 us, got {dt_us}")
    if not t_after_us >= 0:
        raise VtaError(f"t_after_us must be >= 0, got {t_after_us}")
    if int(n_propagate) < 1:
        raise VtaError(f"n_propagate must be >= 1, got {n_propagate}")
    flat, offsets, n_max = _pack(model, ve, int(n_propagate) + 1)
    t_end = max(pulse.width_us + float(t_after_us), pulse.duration_us)
    n_steps = int(math.ceil(t_end / dt_us - 1e-9))
    w = pulse.step_values(dt_us, n_steps)
    q = _q10()
    dt_ms = dt_us * 1e-3
    tab = _gate_table(dt_ms, q)
    gi, gp, segc, nodec = _kernel_constants(model, n_max, dt_ms)
    kernel_args = (model.compartments_per_node, dt_ms, gi, gp, segc, nodec, q, tab, model.rest_potential_mV)
    return flat, offsets, w, kernel_args


#: First bracketing step of the threshold search (factor); starting guesses from the
#: smoothed activating function are typically within 10 %.
_BRACKET_STEP = 1.1


def _warn_end_origins(origin: np.ndarray, offsets: np.ndarray, cpn: int, what: str) -> None:
    last = (offsets[1:] - offsets[:-1] - 1) // cpn
    at_end = (origin >= 0) & ((origin == 0) | (origin == last))
    if at_end.any():
        log.warning(
            "%d of %d fibres %s with an action potential that starts at a fibre end; the sealed "
            "end of a cut fibre is an artefact: extend these fibres", int(at_end.sum()), origin.size, what,
        )


def simulate(
    model: AxonModel,
    ve,
    pulse: Pulse | float = Pulse(),
    *,
    dt_us: float = 2.0,
    t_after_us: float = 1500.0,
    v_detect_mV: float = -20.0,
    n_propagate: int = 5,
    stop_early: bool = False,
) -> Simulation:
    """Simulate one fibre and return the node membrane potentials over time.

    Parameters
    ----------
    model : AxonModel
    ve : array_like, shape (model.n_compartments(n_nodes),)
        Extracellular potential of the first pulse phase at each compartment (V).
    pulse : Pulse or float
        The pulse (a number is a width in us with passive recharge).
    dt_us : float
        Time step (us).
    t_after_us : float
        Simulated time after the first phase (us); at least the whole pulse is run.
    v_detect_mV, n_propagate
        Activation criterion (see the module docstring).
    stop_early : bool
        Stop once the fibre has fired (the trace then ends there).
    """
    flat, offsets, w, args = _setup(model, [ve], pulse, dt_us, t_after_us, n_propagate)
    n = int(offsets[1])
    rec = np.full((w.size + 1, model.n_nodes(n)), np.nan)
    fired, steps, first = _run_fibre(flat, 1.0, w, n, *args, float(v_detect_mV), int(n_propagate),
                                     bool(stop_early), True, rec)
    t = np.arange(steps + 1) * dt_us * 1e-3
    return Simulation(t, rec[: steps + 1].copy(), bool(fired), int(first))


def activated(
    model: AxonModel,
    ve,
    pulse: Pulse | float = Pulse(),
    *,
    dt_us: float = 2.0,
    t_after_us: float = 1500.0,
    v_detect_mV: float = -20.0,
    n_propagate: int = 5,
) -> np.ndarray:
    """Whether each fibre fires a propagating action potential (parallel over fibres).

    Parameters
    ----------
    model : AxonModel
    ve : sequence of array_like, or ndarray (n_fibres, n_compartments)
        Extracellular potential of the first phase per fibre and compartment (V); fibres
        may differ in length (``model.n_compartments(n_nodes)`` values each).
    pulse : Pulse or float
        The pulse (a number is a width in us with passive recharge).
    dt_us, t_after_us, v_detect_mV, n_propagate
        As :func:`simulate`.

    Returns
    -------
    ndarray of bool, shape (n_fibres,)
    """
    flat, offsets, w, args = _setup(model, ve, pulse, dt_us, t_after_us, n_propagate)
    return _fire_flags(_activated_many, model, flat, offsets, w, args, v_detect_mV, n_propagate)


def _fire_flags(kernel: Callable, model: AxonModel, flat: np.ndarray, offsets: np.ndarray, time_terms: np.ndarray,
                args: tuple, v_detect_mV: float, n_propagate: int) -> np.ndarray:
    """Run a batch activation kernel (separable ``w`` or low-rank ``G`` time terms) over
    the packed fibres; warn about fibres that fired from an end."""
    nf = offsets.size - 1
    if nf == 0:
        return np.zeros(0, bool)
    origin = np.full(nf, -1, np.int64)
    out = kernel(flat, offsets, time_terms, *args, float(v_detect_mV), int(n_propagate), origin)
    _warn_end_origins(origin, offsets, model.compartments_per_node, "fire")
    return out


def thresholds(
    model: AxonModel,
    ve_unit,
    pulse: Pulse | float = Pulse(),
    *,
    rel_tol: float = 0.01,
    s_max: float = 100.0,
    s_start=None,
    dt_us: float = 2.0,
    t_after_us: float = 1500.0,
    v_detect_mV: float = -20.0,
    n_propagate: int = 5,
) -> np.ndarray:
    """Activation threshold scale ``s*`` of each fibre (bisection, parallel over fibres).

    The fibre sees ``Ve = s * ve_unit * w(t)``; ``s*`` is the smallest tested scale that
    activates it, at most ``rel_tol`` above the true threshold. A fibre is active at
    amplitude ``A`` (in units of the unit setting) iff ``A >= s*``.

    Parameters
    ----------
    model : AxonModel
    ve_unit : sequence of array_like, or ndarray (n_fibres, n_compartments)
        Extracellular potential per fibre and compartment for the unit setting (V; e.g.
        per mA or per V of the contact configuration, with its sign).
    pulse : Pulse or float
        The pulse (a number is a width in us with passive recharge).
    rel_tol : float
        Relative width of the final bracket (default 1 %).
    s_max : float
        Largest scale tried; fibres silent at ``s_max`` get ``np.inf``.
    s_start : array_like, optional
        Starting guesses per fibre. By default ``c / peak``, with ``peak`` the maximum of
        the Gaussian-smoothed (sd 2 nodes) activating function of ``ve_unit`` and ``c``
        fitted on 16 of the fibres (batches of >= 64) or a built-in estimate. The result
        does not depend on it beyond ``rel_tol``; a good guess saves simulations
        (about 6.4 per fibre instead of 9).
    dt_us, t_after_us, v_detect_mV, n_propagate
        As :func:`simulate`.

    Returns
    -------
    ndarray, shape (n_fibres,)
        ``s*`` per fibre, ``np.inf`` where not activated up to ``s_max``.
    """
    pulse = _as_pulse(pulse)
    _check_search(rel_tol, s_max)
    flat, offsets, w, args = _setup(model, ve_unit, pulse, dt_us, t_after_us, n_propagate)
    return _search_thresholds(_thresholds_many, model, flat, offsets, w, args, lambda: flat * 1e-3, pulse,
                              s_start, s_max, rel_tol, v_detect_mV, n_propagate, "axon thresholds")


def _check_search(rel_tol: float, s_max: float) -> None:
    if not 0 < rel_tol < 1:
        raise VtaError(f"rel_tol must be in (0, 1), got {rel_tol}")
    if not s_max > 0:
        raise VtaError(f"s_max must be > 0, got {s_max}")


def _search_thresholds(kernel: Callable, model: AxonModel, flat: np.ndarray, offsets: np.ndarray,
                       time_terms: np.ndarray, args: tuple, guess_ve: Callable[[], np.ndarray], guess_pulse: Pulse,
                       s_start, s_max: float, rel_tol: float, v_detect_mV: float, n_propagate: int,
                       what: str) -> np.ndarray:
    """The threshold search shared by the separable and low-rank potentials: starting
    guesses (fitted on a subset through ``kernel`` unless ``s_start`` is given; from the
    first-phase potential ``guess_ve()`` in V) and the batch bisection ``kernel`` over
    the packed fibres ``flat``/``offsets`` with the time terms (``w`` or ``G``)."""
    nf = offsets.size - 1
    if nf == 0:
        return np.zeros(0)
    out = np.full(nf, np.nan)
    runs = np.zeros(nf, np.int64)
    origin = np.full(nf, -1, np.int64)

    def search(idx: np.ndarray, start: np.ndarray) -> np.ndarray:
        sub = np.ascontiguousarray(np.concatenate([flat[offsets[f]:offsets[f + 1]] for f in idx], axis=0))
        sub_off = np.concatenate([[0], np.cumsum(offsets[idx + 1] - offsets[idx])]).astype(np.int64)
        r = np.zeros(idx.size, np.int64)
        o = np.full(idx.size, -1, np.int64)
        th = kernel(sub, sub_off, np.minimum(start, s_max), float(s_max), float(rel_tol), _BRACKET_STEP,
                    time_terms, *args, float(v_detect_mV), int(n_propagate), r, o)
        out[idx], runs[idx], origin[idx] = th, r, o
        return th

    if s_start is None:
        s0 = _start_guess(model, guess_ve(), offsets, guess_pulse, fit=search)
    else:
        s0 = np.broadcast_to(np.asarray(s_start, dtype=np.float64), (nf,)).copy()
        if not np.all(s0 > 0):
            raise VtaError("s_start must be > 0")
    todo = np.flatnonzero(np.isnan(out))
    if todo.size:
        search(todo, s0[todo])
    log.debug(what + ": %d fibres, %.2f simulations per fibre", nf, runs.mean())
    _warn_end_origins(origin, offsets, model.compartments_per_node, "reach threshold")
    return out


# --- activating function -----------------------------------------------------------------


def activating_function(ve_nodes: np.ndarray, node_spacing_mm: float) -> np.ndarray:
    """Activating function: second difference of Ve over the nodes (V/mm^2).

    ``AF_k = (Ve_{k-1} - 2 Ve_k + Ve_{k+1}) / dx^2``; positive values depolarise. The end
    nodes get NaN (no two-sided difference).

    Parameters
    ----------
    ve_nodes : array_like, shape (..., n_nodes)
        Extracellular potential at the nodes (V), nodes along the last axis.
    node_spacing_mm : float
        Node-to-node distance (mm).
    """
    v = np.asarray(ve_nodes, dtype=np.float64)
    if v.shape[-1] < 3:
        raise VtaError("the activating function needs at least 3 nodes")
    out = np.full(v.shape, np.nan)
    out[..., 1:-1] = (v[..., :-2] - 2 * v[..., 1:-1] + v[..., 2:]) / float(node_spacing_mm) ** 2
    return out


#: Gaussian smoothing (sd, in nodes) of the activating function for starting guesses:
#: the peak of the smoothed AF predicts MRG thresholds over 0.5-5 mm from a point source
#: within about 10 % (sd of log), against 40 % for the raw AF peak.
_AF_SMOOTH_NODES = 2.0


def _smoothed_af_peak(model: AxonModel, flat_V: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Peak of the Gaussian-smoothed nodal activating function per fibre (V/mm^2)."""
    cpn = model.compartments_per_node
    half = int(3 * _AF_SMOOTH_NODES)
    kern = np.exp(-0.5 * (np.arange(-half, half + 1) / _AF_SMOOTH_NODES) ** 2)
    kern /= kern.sum()
    out = np.empty(offsets.size - 1)
    for f in range(out.size):
        af = activating_function(flat_V[offsets[f]:offsets[f + 1]:cpn], model.node_spacing_mm)[1:-1]
        out[f] = float(np.max(np.convolve(af, kern, mode="same"))) if af.size else 0.0
    return out


def _smoothed_af_threshold_guess(model: AxonModel, pulse: Pulse) -> float:
    """Rough smoothed-AF threshold (V/mm^2) for a starting guess: 0.031 V/mm^2 for the
    5.7 um MRG fibre at 60 us (measured here, point source), scaled by node spacing^-1.5
    and a Weiss strength-duration curve (chronaxie 180 us)."""
    return 0.031 * (model.node_spacing_mm / 0.5) ** -1.5 * (1 + 180.0 / pulse.width_us) / 4.0


def _start_guess(model: AxonModel, flat_V: np.ndarray, offsets: np.ndarray, pulse: Pulse,
                 fit: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Starting scales ``c / peak smoothed AF``. With ``fit`` (a function returning the
    thresholds of a subset of fibres), ``c`` is the median of threshold x peak over 16
    fibres spread over the range of peaks; otherwise the built-in estimate."""
    peak = _smoothed_af_peak(model, flat_V, offsets)
    c = _smoothed_af_threshold_guess(model, pulse)
    good = np.flatnonzero(peak > 0)
    if fit is not None and good.size >= 64:
        pick = good[np.argsort(peak[good])][np.linspace(0, good.size - 1, 16).round().astype(int)]
        th = fit(pick, c / peak[pick])
        ok = np.isfinite(th)
        if ok.any():
            c = float(np.median(th[ok] * peak[pick][ok]))
    return np.where(peak > 0, c / np.where(peak > 0, peak, 1.0), 1.0)


def point_source_ve(
    model: AxonModel,
    n_nodes: int,
    distance_mm: float,
    current_mA: float = -1.0,
    sigma_S_per_m: float = 0.2,
) -> np.ndarray:
    """Ve (V) at the compartments of a straight fibre past a point source.

    The source is at ``distance_mm`` from the fibre, opposite its middle node
    (``n_nodes`` odd puts it at a node), in an infinite homogeneous medium:
    ``Ve = I / (4 pi sigma r)`` (with I in mA, sigma in S/m and r in mm this is volts).
    """
    x = compartment_offsets_mm(model, n_nodes)
    x0 = (int(n_nodes) - 1) / 2 * model.node_spacing_mm
    r = np.hypot(x - x0, float(distance_mm))
    return float(current_mA) / (4 * math.pi * float(sigma_S_per_m) * r)


def af_threshold(
    model: AxonModel,
    distance_mm: float,
    pulse: Pulse | float = Pulse(),
    *,
    sigma_S_per_m: float = 0.2,
    cathodic: bool = True,
    fibre_length_mm: float | None = None,
    rel_tol: float = 0.005,
    dt_us: float = 2.0,
) -> float:
    """Activating-function threshold (V/mm^2) at which the model fires, for a point source.

    Finds the threshold current of a straight fibre at ``distance_mm`` from a point
    source (opposite a node) and returns the peak activating function along the fibre
    at that current. Used to build an AF-threshold table for an AF-based VTA from this
    model rather than from the literature.

    Parameters
    ----------
    model : AxonModel
    distance_mm : float
        Electrode-to-fibre distance (mm).
    pulse : Pulse or float
    sigma_S_per_m : float
        Conductivity of the homogeneous medium (S/m); the AF threshold does not depend on
        it (it cancels), only the current does.
    cathodic : bool
        Cathodic (default) or anodic source.
    fibre_length_mm : float, optional
        Fibre length; default ``max(20, 16 * distance)`` mm.
    rel_tol, dt_us
        Bisection tolerance and time step.
    """
    d = float(distance_mm)
    if not d > 0:
        raise VtaError(f"distance must be > 0 mm, got {distance_mm}")
    length = float(fibre_length_mm) if fibre_length_mm is not None else max(20.0, 16.0 * d)
    n_nodes = 2 * int(math.ceil(length / model.node_spacing_mm / 2)) + 1
    sign = -1.0 if cathodic else 1.0
    ve = point_source_ve(model, n_nodes, d, sign, sigma_S_per_m)
    s = thresholds(model, [ve], pulse, rel_tol=rel_tol, s_max=1e4, dt_us=dt_us)[0]
    if not np.isfinite(s):
        raise VtaError(f"no activation up to 10 A at {d} mm")
    af = activating_function(s * ve[:: model.compartments_per_node], model.node_spacing_mm)
    return float(np.nanmax(af))
