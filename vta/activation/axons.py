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
Backward Euler for the potentials (NEURON's default) with the nodal ionic currents
linear in ``Vm`` at the gate values of the previous step; the gates are then advanced
exactly for the new ``Vm`` (NEURON's ``cnexp``), from a 0.1 mV lookup table. Each step
solves the 2x2-block tridiagonal system of (membrane, periaxonal) potentials by block
elimination: the internodes, linear and identical, are condensed out with precomputed
2x2-block Thomas factors, then a scalar Thomas sweep solves for the nodes (about 5x
faster than a plain block Thomas sweep over all compartments, same result to 1e-10
mV). The default ``dt = 2 us`` puts thresholds 0.5-1.1 % above the ``dt -> 0`` limit
(30-120 us pulses; 1.4-2.8 % at 5 us); the thresholds match NEURON at equal ``dt``
within 0.1 % (tests/test_axons.py). Fibres run in parallel (``numba.prange``); a
threshold takes about 6.4 simulations with the default starting guesses.

Units: mm and um as named, potentials V at the interface (mV inside), time us at the
interface (ms inside), conductances uS, capacitances nF, currents nA inside.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

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

# --- parameters (McIntyre, Richardson & Grill 2002; FACTS.md s4.4) -----------------------

#: Fibre geometry rows: fibre D (um) -> (node-to-node spacing um, FLUT length um,
#: axon (internode) D um, node = MYSA D um, myelin lamellae). 5.7-16 um: McIntyre et al.
#: 2002; 2.0 and 3.0 um: Sotiropoulos & Steinmetz 2007 as used by OSS-DBS.
_GEOMETRY = {
    2.0: (200.0, 10.0, 1.6, 1.4, 30),
    3.0: (278.0, 17.0, 2.1, 1.52, 43),
    5.7: (500.0, 35.0, 3.4, 1.9, 80),
    7.3: (750.0, 38.0, 4.6, 2.4, 100),
    8.7: (1000.0, 40.0, 5.8, 2.8, 110),
    10.0: (1150.0, 46.0, 6.9, 3.3, 120),
    11.5: (1250.0, 50.0, 8.1, 3.7, 130),
    12.8: (1350.0, 54.0, 9.2, 4.2, 135),
    14.0: (1400.0, 56.0, 10.4, 4.7, 140),
    15.0: (1450.0, 58.0, 11.5, 5.0, 145),
    16.0: (1500.0, 60.0, 12.7, 5.5, 150),
}
#: Supported fibre diameters (um); others are rejected (no interpolation of the table).
MRG_DIAMETERS_UM = tuple(sorted(_GEOMETRY))

_NODE_LENGTH_UM = 1.0
_MYSA_LENGTH_UM = 3.0
_N_STIN = 6
_RHO_AXIAL_OHM_UM = 0.7e6  # 70 ohm cm
_C_NODE_UF_CM2 = 2.0
_C_AXOLEMMA_UF_CM2 = 2.0  # internodal axolemma, scaled by D_section / fibre D
# myelin: per membrane; a lamella is two membranes in series, so the sheath has
# C / (2 lamellae) and G / (2 lamellae) per cm2 of the outer fibre surface
_C_MYELIN_UF_CM2 = 0.1
_G_MYELIN_S_CM2 = 0.001
_G_MYSA_S_CM2 = 0.001  # internodal axolemma leak, scaled by D_section / fibre D
_G_FLUT_S_CM2 = 0.0001
_G_STIN_S_CM2 = 0.0001
_E_PAS_MV = -80.0
_SPACE_NODE_MYSA_UM = 0.002  # periaxonal space width
_SPACE_FLUT_STIN_UM = 0.004
# node membrane (S/cm2, mV)
_G_NAF, _G_NAP, _G_KS, _G_L = 3.0, 0.01, 0.08, 0.007
_E_NA, _E_K, _E_L = 50.0, -90.0, -90.0
_V_REST_MV = -80.0
_CELSIUS = 37.0

_KINDS = ("mrg", "simplified")


# --- model description -------------------------------------------------------------------


@dataclass(frozen=True)
class AxonModel:
    """Geometry of a myelinated fibre model (McIntyre et al. 2002 table, FACTS.md s4.4).

    Build it with :func:`mrg_model` or :func:`simplified_model`.

    Attributes
    ----------
    kind : str
        ``"mrg"`` (double cable, 11 compartments per node period) or ``"simplified"``
        (nodes only).
    fiber_diameter_um : float
        Outer (myelinated) fibre diameter (um).
    node_spacing_mm : float
        Node-to-node distance (mm).
    axon_diameter_um : float
        Internodal axon (axoplasm) diameter, also the FLUT diameter (um).
    node_diameter_um : float
        Node and MYSA diameter (um).
    flut_length_um : float
        Length of each FLUT (paranode 2) compartment (um).
    lamellae : int
        Myelin lamellae.
    """

    kind: str
    fiber_diameter_um: float
    node_spacing_mm: float
    axon_diameter_um: float
    node_diameter_um: float
    flut_length_um: float
    lamellae: int

    @property
    def compartments_per_node(self) -> int:
        """Compartments per node period: 11 (MRG) or 1 (simplified)."""
        return 11 if self.kind == "mrg" else 1

    @property
    def stin_length_um(self) -> float:
        """Length of one of the 6 STIN (internode) compartments (um)."""
        dx = self.node_spacing_mm * 1e3
        return (dx - _NODE_LENGTH_UM - 2 * _MYSA_LENGTH_UM - 2 * self.flut_length_um) / _N_STIN

    @property
    def rest_potential_mV(self) -> float:
        """Initial (resting) membrane potential (mV).

        MRG: -80 mV (McIntyre et al. 2002; the internodal axolemma, E_pas = -80 mV,
        holds the node there). Simplified: the MRG node on its own is not at rest at
        -80 mV (its steady-state current is inward and its slope conductance negative
        there, so it fires spontaneously); the model starts from the node's own stable
        resting potential, -87.94 mV (zero steady-state current, positive slope).
        """
        return _V_REST_MV if self.kind == "mrg" else _node_rest_mV()

    def n_compartments(self, n_nodes: int) -> int:
        """Compartments of a fibre with ``n_nodes`` nodes (it starts and ends at a node)."""
        return (int(n_nodes) - 1) * self.compartments_per_node + 1

    def n_nodes(self, n_compartments: int) -> int:
        """Nodes of a fibre with ``n_compartments`` compartments; VtaError if invalid."""
        c = self.compartments_per_node
        n = int(n_compartments)
        if n < 1 or (n - 1) % c:
            raise VtaError(
                f"{n} compartments do not make a {self.kind} fibre: need (n_nodes - 1) * {c} + 1 "
                "values, one per compartment (see compartment_offsets_mm)"
            )
        return (n - 1) // c + 1


def _model(kind: str, fiber_diameter_um: float) -> AxonModel:
    d = float(fiber_diameter_um)
    key = next((k for k in _GEOMETRY if abs(k - d) < 1e-6), None)
    if key is None:
        raise VtaError(
            f"fibre diameter {d} um is not in the MRG table; use one of "
            + ", ".join(f"{k:g}" for k in MRG_DIAMETERS_UM)
            + " um"
        )
    dx, flut, axon_d, node_d, lam = _GEOMETRY[key]
    return AxonModel(kind, key, dx * 1e-3, axon_d, node_d, flut, lam)


def mrg_model(fiber_diameter_um: float = 5.7) -> AxonModel:
    """The MRG double-cable model (McIntyre, Richardson & Grill 2002) of one diameter.

    Parameters
    ----------
    fiber_diameter_um : float
        Fibre diameter (um), one of :data:`MRG_DIAMETERS_UM` (2, 3, 5.7, 7.3, 8.7, 10,
        11.5, 12.8, 14, 15, 16). The published geometry is a table; diameters between
        rows are rejected rather than interpolated.

    Raises
    ------
    VtaError
        For a diameter that is not in the table.
    """
    return _model("mrg", fiber_diameter_um)


def simplified_model(fiber_diameter_um: float = 5.7) -> AxonModel:
    """Nodes-only model (McNeal 1976 type) with the MRG node membrane and geometry.

    The myelin is a perfect insulator: the nodes (MRG membrane, diameter and 1 um length)
    are joined by the intracellular resistance of the MRG internode. Ve is given per
    node (``compartment_offsets_mm`` returns the node positions).

    Parameters
    ----------
    fiber_diameter_um : float
        As :func:`mrg_model`.
    """
    return _model("simplified", fiber_diameter_um)


def _period_layout(model: AxonModel):
    """Compartments of one node period: lengths (um), diameters for axoplasm (um),
    periaxonal widths (um), internodal leak (S/cm2); the node first."""
    lf, ls = model.flut_length_um, model.stin_length_um
    dn, da = model.node_diameter_um, model.axon_diameter_um
    lengths = [_NODE_LENGTH_UM, _MYSA_LENGTH_UM, lf] + [ls] * _N_STIN + [lf, _MYSA_LENGTH_UM]
    diams = [dn, dn, da] + [da] * _N_STIN + [da, dn]
    spaces = [_SPACE_NODE_MYSA_UM, _SPACE_NODE_MYSA_UM] + [_SPACE_FLUT_STIN_UM] * 8 + [_SPACE_NODE_MYSA_UM]
    gpas = [0.0, _G_MYSA_S_CM2, _G_FLUT_S_CM2] + [_G_STIN_S_CM2] * _N_STIN + [_G_FLUT_S_CM2, _G_MYSA_S_CM2]
    return np.array(lengths), np.array(diams), np.array(spaces), np.array(gpas)


def compartment_offsets_mm(model: AxonModel, n_nodes: int) -> np.ndarray:
    """Arc length of each compartment centre from the first node (mm).

    Sample the unit extracellular potential at these positions along the fibre. Nodes
    are at ``k * model.node_spacing_mm``, i.e. every ``model.compartments_per_node``-th
    entry.

    Parameters
    ----------
    model : AxonModel
    n_nodes : int
        Nodes of the fibre (>= 2).

    Returns
    -------
    ndarray, shape (model.n_compartments(n_nodes),)
    """
    n_nodes = int(n_nodes)
    if n_nodes < 2:
        raise VtaError(f"a fibre needs at least 2 nodes, got {n_nodes}")
    dx = model.node_spacing_mm
    if model.kind != "mrg":
        return np.arange(n_nodes) * dx
    lengths = _period_layout(model)[0] * 1e-3
    edges = np.concatenate([[0.0], np.cumsum(lengths)]) - lengths[0] / 2
    centres = 0.5 * (edges[:-1] + edges[1:])
    out = (np.arange(n_nodes - 1)[:, None] * dx + centres[None, :]).ravel()
    return np.concatenate([out, [(n_nodes - 1) * dx]])


def _coefficients(model: AxonModel, n_nodes: int):
    """Per-compartment electrical coefficients of a fibre with ``n_nodes`` nodes.

    Returns cm (nF), gpas (uS), cmy (nF), gmy (uS), gi and gp (uS, axial intracellular
    and periaxonal conductance between compartment i and i+1; last entry 0) and the node
    channel conductances (uS) ``[g_naf, g_nap, g_ks, g_l]``.
    """
    n = model.n_compartments(n_nodes)
    fd = model.fiber_diameter_um
    a_node = math.pi * model.node_diameter_um * _NODE_LENGTH_UM  # um2
    # uF/cm2 * um2 -> nF: 1e-5;  S/cm2 * um2 -> uS: 1e-2
    g_node = np.array([_G_NAF, _G_NAP, _G_KS, _G_L]) * a_node * 1e-2
    cm = np.zeros(n)
    gpas = np.zeros(n)
    cmy = np.zeros(n)
    gmy = np.zeros(n)
    gi = np.zeros(n)
    gp = np.zeros(n)
    if model.kind == "mrg":
        L, D, W, G0 = _period_layout(model)
        per = len(L)
        idx = np.arange(n) % per
        L, D, W, G0 = L[idx], D[idx], W[idx], G0[idx]
        # internodal axolemma: the original model gives these sections the fibre
        # diameter and scales c_m, g_pas by D_section / fibre D, i.e. 2 uF/cm2 and g0 on
        # the axolemma of diameter D_section (McIntyre et al. 2002)
        cm[:] = _C_AXOLEMMA_UF_CM2 * math.pi * D * L * 1e-5
        gpas[:] = G0 * math.pi * D * L * 1e-2
        a_fibre = math.pi * fd * L
        cmy[:] = _C_MYELIN_UF_CM2 / (2 * model.lamellae) * a_fibre * 1e-5
        gmy[:] = _G_MYELIN_S_CM2 / (2 * model.lamellae) * a_fibre * 1e-2
        node = idx == 0
        cm[node] = _C_NODE_UF_CM2 * a_node * 1e-5
        gpas[node] = cmy[node] = gmy[node] = 0.0
        r_in = _RHO_AXIAL_OHM_UM * L / (math.pi * D**2 / 4)  # ohm
        r_pa = _RHO_AXIAL_OHM_UM * L / (math.pi * ((D / 2 + W) ** 2 - (D / 2) ** 2))
        gi[:-1] = 1e6 / (0.5 * (r_in[:-1] + r_in[1:]))
        gp[:-1] = 1e6 / (0.5 * (r_pa[:-1] + r_pa[1:]))
    else:
        L, D, _, _ = _period_layout(model)
        r_period = float(np.sum(_RHO_AXIAL_OHM_UM * L / (math.pi * D**2 / 4)))  # node to node
        cm[:] = _C_NODE_UF_CM2 * a_node * 1e-5
        gi[:-1] = 1e6 / r_period
    return cm, gpas, cmy, gmy, gi, gp, g_node


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


# --- numba kernels -----------------------------------------------------------------------


@njit(cache=True, inline="always")
def _linexp(a, y, c):
    """a * y / (1 - exp(-y / c)), with its limit a * c at y = 0."""
    z = y / c
    if abs(z) < 1e-6:
        return a * c
    return a * y / (1.0 - math.exp(-z))


@njit(cache=True, inline="always")
def _rates(v, q1, q2, q3):
    """Opening and closing rates (1/ms) of the MRG node gates at ``v`` (mV).

    McIntyre et al. 2002 (Appendix), rate constants at 20 C (m, mp, h) and 36 C (s),
    multiplied by the Q10 factors q1 (m, mp: 2.2), q2 (h: 2.9), q3 (s: 3.0).
    """
    amp = q1 * _linexp(0.01, v + 27.0, 10.2)
    bmp = q1 * _linexp(0.00025, -(v + 34.0), 10.0)
    am = q1 * _linexp(1.86, v + 21.4, 10.3)
    bm = q1 * _linexp(0.086, -(v + 25.7), 9.16)
    ah = q2 * _linexp(0.062, -(v + 114.0), 11.0)
    bh = q2 * 2.3 / (1.0 + math.exp(-(v + 31.8) / 13.4))
    as_ = q3 * 0.3 / (1.0 + math.exp(-(v + 53.0) / 5.0))
    bs = q3 * 0.03 / (1.0 + math.exp(-(v + 90.0)))
    return amp, bmp, am, bm, ah, bh, as_, bs


@njit(cache=True, inline="always")
def _advance(x, a, b, dt):
    """Exact update of a gate over dt at fixed rates (NEURON cnexp)."""
    k = a + b
    xinf = a / k
    return xinf + (x - xinf) * math.exp(-dt * k)


#: Gate lookup table: membrane potentials from _TAB_V0 in steps of _TAB_DV (mV); outside
#: it the rates are computed directly. Linear interpolation of the steady states and of
#: the one-step decay factors at 0.1 mV changes thresholds by < 1e-5 (relative).
_TAB_V0 = -200.0
_TAB_DV = 0.1
_TAB_N = 3501  # up to +150 mV


@njit(cache=True)
def _gate_table(dt, q):
    """(n, 8) table: per potential, (x_inf, exp(-dt (a + b))) for mp, m, h, s."""
    tab = np.empty((_TAB_N, 8))
    for j in range(_TAB_N):
        v = _TAB_V0 + j * _TAB_DV
        r = _rates(v, q[0], q[1], q[2])
        for g in range(4):
            a = r[2 * g]
            b = r[2 * g + 1]
            tab[j, 2 * g] = a / (a + b)
            tab[j, 2 * g + 1] = math.exp(-dt * (a + b))
    return tab


@njit(cache=True, inline="always")
def _node_conductances(st, k, gnode):
    """Sodium (fast + persistent) and potassium conductance (uS) of node k."""
    mk = st[k, 1]
    mpk = st[k, 0]
    gna = gnode[0] * mk * mk * mk * st[k, 2] + gnode[1] * mpk * mpk * mpk
    return gna, gnode[2] * st[k, 3]


@njit(cache=True)
def _init_gates(n_nodes, v0, q):
    st = np.empty((n_nodes, 4))  # mp, m, h, s
    r = _rates(v0, q[0], q[1], q[2])
    for k in range(n_nodes):
        for g in range(4):
            st[k, g] = r[2 * g] / (r[2 * g] + r[2 * g + 1])
    return st


@njit(cache=True)
def _step_gates(st, vn, tab, dt, q):
    """Advance all node gates over dt at the new node potentials (NEURON cnexp):
    ``x <- x_inf + (x - x_inf) exp(-dt (a + b))``, from the table where it covers the
    potential, else from the rates."""
    use_tab = tab.shape[0] > 0
    inv_dv = 1.0 / _TAB_DV
    for k in range(vn.shape[0]):
        v = vn[k]
        z = (v - _TAB_V0) * inv_dv
        if use_tab and z >= 0.0 and z < _TAB_N - 1:
            j = int(z)
            f = z - j
            g = 1.0 - f
            t0 = tab[j]
            t1 = tab[j + 1]
            x = g * t0[0] + f * t1[0]
            st[k, 0] = x + (st[k, 0] - x) * (g * t0[1] + f * t1[1])
            x = g * t0[2] + f * t1[2]
            st[k, 1] = x + (st[k, 1] - x) * (g * t0[3] + f * t1[3])
            x = g * t0[4] + f * t1[4]
            st[k, 2] = x + (st[k, 2] - x) * (g * t0[5] + f * t1[5])
            x = g * t0[6] + f * t1[6]
            st[k, 3] = x + (st[k, 3] - x) * (g * t0[7] + f * t1[7])
        else:
            amp, bmp, am, bm, ah, bh, as_, bs = _rates(v, q[0], q[1], q[2])
            st[k, 0] = _advance(st[k, 0], amp, bmp, dt)
            st[k, 1] = _advance(st[k, 1], am, bm, dt)
            st[k, 2] = _advance(st[k, 2], ah, bh, dt)
            st[k, 3] = _advance(st[k, 3], as_, bs, dt)


@njit(cache=True)
def _detect(vn, crossed, first, v_detect, n_prop):
    """Propagation detector, called once per step with the node potentials.

    Flags nodes whose potential reaches ``v_detect`` for the first time; the first node
    to cross (the most depolarised if several cross in one step) is the origin.
    Returns (origin or -1, fired): fired once a node >= n_prop nodes from the origin
    has crossed.
    """
    best = -1
    best_v = -1e300
    for k in range(vn.shape[0]):
        v = vn[k]
        if v >= v_detect and not crossed[k]:
            crossed[k] = True
            if v > best_v:
                best_v = v
                best = k
    if first < 0:
        first = best
    if first >= 0:
        for k in range(vn.shape[0]):
            if crossed[k] and abs(k - first) >= n_prop:
                return first, True
    return first, False


@njit(cache=True)
def _unit_axial_sources(veu, n, gi, gp):
    """sum_j gi_ij (Ve_j - Ve_i) and sum_j (gi_ij + gp_ij) (Ve_j - Ve_i) per compartment
    for the unit Ve (nA per unit scale): the drive of the intracellular and of the
    periaxonal rows (a discrete activating function)."""
    afi = np.zeros(n)
    afb = np.zeros(n)
    for i in range(n - 1):
        d = veu[i + 1] - veu[i]
        afi[i] += gi[i] * d
        afi[i + 1] -= gi[i] * d
        afb[i] += (gi[i] + gp[i]) * d
        afb[i + 1] -= (gi[i] + gp[i]) * d
    return afi, afb


@njit(cache=True)
def _run_fibre(veu, s, w, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect, n_prop, stop, record, rec):
    """Simulate one fibre; returns (fired, steps run, origin node or -1).

    veu: unit Ve per compartment (mV); s: scale; w: waveform value per step; n:
    compartments; cpn: compartments per node period; gi, gp: axial conductances (uS)
    between compartment i and i+1; segc, nodec: constants of :func:`_kernel_constants`;
    tab: gate table of :func:`_gate_table` (empty: compute the rates directly); v0:
    initial potential (mV); stop: return as soon as the fibre fired; record: fill
    rec[step, node] with the node Vm.

    Unknowns per compartment: membrane potential Vm = Vi - Vp and periaxonal potential
    relative to the extracellular one, Vq = Vp - Ve (0 at the nodes). Rows: intracellular
    current balance and total (intracellular + periaxonal) current balance; the
    extracellular potential enters as the axial sources of
    :func:`_unit_axial_sources`. Each backward-Euler step is solved by block
    elimination. The internode (the m = cpn - 1 compartments between two nodes) is
    linear and the same in every period, so its 2x2-block LU factors and its responses
    yL, yR to a unit potential of the left / right node are precomputed. Per step: (1)
    block forward/back substitution in every internode with the nodes held at 0, (2) a
    scalar tridiagonal (Thomas) solve for the node potentials with the internodes
    condensed out, (3) internode potentials corrected by yL, yR times the node
    potentials.
    """
    m = cpn - 1
    n_nodes = (n - 1) // cpn + 1
    ns = n_nodes - 1  # internodes
    cdt_n = nodec[0]
    g0 = nodec[1]
    gl = nodec[5]
    gnode = nodec[2:6]
    afi, afb = _unit_axial_sources(veu, n, gi, gp)
    # Internode quantities are stored [compartment within the internode, internode] so
    # that the inner loops run over independent internodes (no dependency chain; SIMD).
    vmi = np.full((m, ns), v0)
    vqi = np.zeros((m, ns))
    d1i = np.empty((m, ns))
    d2i = np.empty((m, ns))
    afi_i = np.empty((m, ns))
    afb_i = np.empty((m, ns))
    for j in range(ns):
        for i in range(m):
            afi_i[i, j] = afi[j * cpn + 1 + i]
            afb_i[i, j] = afb[j * cpn + 1 + i]
    afi_n = np.empty(n_nodes)
    for k in range(n_nodes):
        afi_n[k] = afi[k * cpn]
    vmn = np.full(n_nodes, v0)
    # node rows: diag += dcl (left neighbour) / dcr (right); off-diagonals dl, du
    if m > 0:
        dcl = g0 * (1.0 - segc[m - 1, 15] - segc[m - 1, 16])
        dcr = g0 * (1.0 - segc[0, 13] - segc[0, 14])
        dl = -g0 * (segc[m - 1, 13] + segc[m - 1, 14])
        du = -g0 * (segc[0, 15] + segc[0, 16])
    else:
        dcl = dcr = g0
        dl = du = -g0
    st = _init_gates(n_nodes, v0, q)
    cpk = np.empty(n_nodes)
    dpk = np.empty(n_nodes)
    vn = np.empty(n_nodes)
    crossed = np.zeros(n_nodes, np.bool_)
    first = -1
    fired = False
    if record:
        rec[0, :] = v0
    n_steps = w.shape[0]
    for step in range(n_steps):
        sw = s * w[step]
        # (1) internodes with the nodes at 0: block forward ...
        for i in range(m):
            c1, c2, c3 = segc[i, 0], segc[i, 1], segc[i, 2]
            g = segc[i, 3]
            gpi = g + segc[i, 4]
            m11, m12, m21, m22 = segc[i, 5], segc[i, 6], segc[i, 7], segc[i, 8]
            if i == 0:
                for j in range(ns):
                    r1 = c1 * vmi[i, j] + c3 + sw * afi_i[i, j]
                    r2 = c2 * vqi[i, j] + sw * afb_i[i, j]
                    d1i[i, j] = m11 * r1 + m12 * r2
                    d2i[i, j] = m21 * r1 + m22 * r2
            else:
                for j in range(ns):
                    p1 = d1i[i - 1, j]
                    p2 = d2i[i - 1, j]
                    r1 = c1 * vmi[i, j] + c3 + sw * afi_i[i, j] + g * (p1 + p2)
                    r2 = c2 * vqi[i, j] + sw * afb_i[i, j] + g * p1 + gpi * p2
                    d1i[i, j] = m11 * r1 + m12 * r2
                    d2i[i, j] = m21 * r1 + m22 * r2
        # ... and back substitution (internode solution with the nodes at 0)
        for i in range(m - 1, -1, -1):
            if i == m - 1:
                for j in range(ns):
                    vmi[i, j] = d1i[i, j]
                    vqi[i, j] = d2i[i, j]
            else:
                k11, k12, k21, k22 = segc[i, 9], segc[i, 10], segc[i, 11], segc[i, 12]
                for j in range(ns):
                    x1 = vmi[i + 1, j]
                    x2 = vqi[i + 1, j]
                    vmi[i, j] = d1i[i, j] - k11 * x1 - k12 * x2
                    vqi[i, j] = d2i[i, j] - k21 * x1 - k22 * x2
        # (2) nodes: ionic conductances at the previous gates, scalar Thomas
        for k in range(n_nodes):
            gna, gk = _node_conductances(st, k, gnode)
            diag = cdt_n + gna + gk + gl
            rhs = cdt_n * vmn[k] + gna * _E_NA + gk * _E_K + gl * _E_L + sw * afi_n[k]
            if k > 0:
                diag += dcl
                if m > 0:
                    rhs += g0 * (vmi[m - 1, k - 1] + vqi[m - 1, k - 1])
                diag -= dl * cpk[k - 1]
                rhs -= dl * dpk[k - 1]
            up = 0.0
            if k < n_nodes - 1:
                diag += dcr
                if m > 0:
                    rhs += g0 * (vmi[0, k] + vqi[0, k])
                up = du
            inv = 1.0 / diag
            cpk[k] = up * inv
            dpk[k] = rhs * inv
        vn[n_nodes - 1] = dpk[n_nodes - 1]
        for k in range(n_nodes - 2, -1, -1):
            vn[k] = dpk[k] - cpk[k] * vn[k + 1]
        # (3) internode correction by the node potentials
        for i in range(m):
            yl1, yl2, yr1, yr2 = segc[i, 13], segc[i, 14], segc[i, 15], segc[i, 16]
            for j in range(ns):
                va = vn[j]
                vb = vn[j + 1]
                vmi[i, j] += yl1 * va + yr1 * vb
                vqi[i, j] += yl2 * va + yr2 * vb
        vmn[:] = vn
        _step_gates(st, vn, tab, dt, q)
        if record:
            rec[step + 1, :] = vn
        if not fired:
            first, fired = _detect(vn, crossed, first, v_detect, n_prop)
            if fired and stop:
                return True, step + 1, first
    return fired, n_steps, first


@njit(cache=True)
def _run_fibre_blocks(veu, s, w, n, cpn, dt, cm, gpas, cmy, gmy, gi, gp, gnode, q, tab, v0, v_detect, n_prop,
                      stop, record, rec):
    """Reference kernel (tests only): the model of :func:`_run_fibre` with the whole
    2x2-block tridiagonal system of every step solved by a plain block Thomas sweep;
    coefficients from :func:`_coefficients`."""
    n_nodes = (n - 1) // cpn + 1
    gl = gnode[3]
    afi, afb = _unit_axial_sources(veu, n, gi, gp)
    vm = np.full(n, v0)
    vq = np.zeros(n)
    st = _init_gates(n_nodes, v0, q)
    c = np.empty((n, 4))  # C'_i = M_i^-1 U_i
    dd = np.empty((n, 2))  # d'_i = M_i^-1 (b_i - L_i d'_{i-1})
    vn = np.empty(n_nodes)
    crossed = np.zeros(n_nodes, np.bool_)
    first = -1
    fired = False
    if record:
        rec[0, :] = v0
    for step in range(w.shape[0]):
        sw = s * w[step]
        c11 = c12 = c21 = c22 = 0.0
        d1 = d2 = 0.0
        for i in range(n):
            gl_ = gi[i - 1] if i > 0 else 0.0
            pl = gp[i - 1] if i > 0 else 0.0
            gr = gi[i] if i < n - 1 else 0.0
            pr = gp[i] if i < n - 1 else 0.0
            if i % cpn == 0:  # node: Vq = 0
                gna, gk = _node_conductances(st, i // cpn, gnode)
                a11 = cm[i] / dt + gna + gk + gl + gl_ + gr
                r1 = cm[i] / dt * vm[i] + gna * _E_NA + gk * _E_K + gl * _E_L + sw * afi[i]
                a12 = gl_ + gr
                a21, a22, r2 = 0.0, 1.0, 0.0
                l21 = l22 = u21 = u22 = 0.0
            else:
                a11 = cm[i] / dt + gpas[i] + gl_ + gr
                r1 = cm[i] / dt * vm[i] + gpas[i] * _E_PAS_MV + sw * afi[i]
                a12 = a21 = gl_ + gr
                a22 = cmy[i] / dt + gmy[i] + gl_ + gr + pl + pr
                r2 = cmy[i] / dt * vq[i] + sw * afb[i]
                l21, l22 = -gl_, -(gl_ + pl)
                u21, u22 = -gr, -(gr + pr)
            # M = A - L C'_{i-1}, r = b - L d'_{i-1}; L row 1 = [-gl_, -gl_], row 2 = [l21, l22]
            a11 += gl_ * (c11 + c21)
            a12 += gl_ * (c12 + c22)
            a21 -= l21 * c11 + l22 * c21
            a22 -= l21 * c12 + l22 * c22
            r1 += gl_ * (d1 + d2)
            r2 -= l21 * d1 + l22 * d2
            inv = 1.0 / (a11 * a22 - a12 * a21)
            i11, i12, i21, i22 = a22 * inv, -a12 * inv, -a21 * inv, a11 * inv
            # C' = M^-1 U; U row 1 = [-gr, -gr], row 2 = [u21, u22]
            c11 = -i11 * gr + i12 * u21
            c12 = -i11 * gr + i12 * u22
            c21 = -i21 * gr + i22 * u21
            c22 = -i21 * gr + i22 * u22
            d1, d2 = i11 * r1 + i12 * r2, i21 * r1 + i22 * r2
            c[i, 0], c[i, 1], c[i, 2], c[i, 3] = c11, c12, c21, c22
            dd[i, 0], dd[i, 1] = d1, d2
        x1, x2 = dd[n - 1, 0], dd[n - 1, 1]
        vm[n - 1], vq[n - 1] = x1, x2
        for i in range(n - 2, -1, -1):
            x1, x2 = dd[i, 0] - c[i, 0] * x1 - c[i, 1] * x2, dd[i, 1] - c[i, 2] * x1 - c[i, 3] * x2
            vm[i], vq[i] = x1, x2
        for k in range(n_nodes):
            vn[k] = vm[k * cpn]
        _step_gates(st, vn, tab, dt, q)
        if record:
            rec[step + 1, :] = vn
        if not fired:
            first, fired = _detect(vn, crossed, first, v_detect, n_prop)
            if fired and stop:
                return True, step + 1, first
    return fired, w.shape[0], first


@njit(cache=True, parallel=True)
def _activated_many(ve, offsets, w, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect, n_prop, origin):
    nf = offsets.shape[0] - 1
    out = np.zeros(nf, np.bool_)
    for f in prange(nf):
        a, b = offsets[f], offsets[f + 1]
        fired, _, first = _run_fibre(ve[a:b], 1.0, w, b - a, cpn, dt, gi, gp, segc, nodec, q, tab, v0,
                                     v_detect, n_prop, True, False, np.empty((0, 0)))
        out[f] = fired
        origin[f] = first
    return out


@njit(cache=True, parallel=True)
def _thresholds_many(ve, offsets, s0, s_max, rel_tol, step0, w, cpn, dt, gi, gp, segc, nodec, q, tab, v0,
                     v_detect, n_prop, runs, origin):
    """Geometric bisection per fibre from a starting guess s0; inf if silent at s_max.

    Bracketing: from s0 step down (if it fires) or up (if not) by a factor that starts at
    step0 and is squared after each step; then bisect at the geometric mean until
    hi <= lo * (1 + rel_tol). Returns hi, the smallest scale seen to fire; origin: the
    node where the action potential started at hi.
    """
    nf = offsets.shape[0] - 1
    out = np.empty(nf)
    for f in prange(nf):
        v = ve[offsets[f]:offsets[f + 1]]
        n = v.shape[0]
        rec = np.empty((0, 0))
        nrun = 1
        org = -1
        s = min(s0[f], s_max)
        factor = step0
        fired, _, first = _run_fibre(v, s, w, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect, n_prop,
                                     True, False, rec)
        if fired:
            hi = s
            org = first
            lo = s / factor
            while True:
                nrun += 1
                fired, _, first = _run_fibre(v, lo, w, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect,
                                             n_prop, True, False, rec)
                if not fired:
                    break
                hi = lo
                org = first
                if lo < s_max * 1e-9:
                    lo = 0.0
                    break
                factor = factor * factor
                lo = lo / factor
        else:
            lo = s
            hi = np.inf
            while lo < s_max:
                t = min(lo * factor, s_max)
                nrun += 1
                fired, _, first = _run_fibre(v, t, w, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect,
                                             n_prop, True, False, rec)
                if fired:
                    hi = t
                    org = first
                    break
                lo = t
                factor = factor * factor
        if hi < np.inf and lo > 0.0:
            while hi > lo * (1.0 + rel_tol):
                mid = math.sqrt(lo * hi)
                nrun += 1
                fired, _, first = _run_fibre(v, mid, w, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect,
                                             n_prop, True, False, rec)
                if fired:
                    hi = mid
                    org = first
                else:
                    lo = mid
        out[f] = hi
        runs[f] = nrun
        origin[f] = org
    return out


def _kernel_constants(model: AxonModel, n_nodes: int, dt_ms: float):
    """Arrays for :func:`_run_fibre`: gi, gp (uS, per compartment pair), segc (per
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


# --- Python API --------------------------------------------------------------------------


def _q10() -> np.ndarray:
    """Q10 temperature factors of the MRG node at 37 C (McIntyre et al. 2002)."""
    return np.array([
        2.2 ** ((_CELSIUS - 20.0) / 10.0),
        2.9 ** ((_CELSIUS - 20.0) / 10.0),
        3.0 ** ((_CELSIUS - 36.0) / 10.0),
    ])


_NODE_REST_CACHE: list[float] = []


def _node_rest_mV() -> float:
    """Stable resting potential of the isolated MRG node (mV): the zero of its
    steady-state current between -95 and -82 mV (bisection)."""
    if _NODE_REST_CACHE:
        return _NODE_REST_CACHE[0]
    q = _q10()

    def current(v: float) -> float:
        r = _rates(v, q[0], q[1], q[2])
        mp, m, h, s = (r[2 * g] / (r[2 * g] + r[2 * g + 1]) for g in range(4))
        return (_G_NAF * m**3 * h + _G_NAP * mp**3) * (v - _E_NA) + _G_KS * s * (v - _E_K) + _G_L * (v - _E_L)

    lo, hi = -95.0, -82.0  # current < 0 at lo, > 0 at hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if current(mid) < 0:
            lo = mid
        else:
            hi = mid
    _NODE_REST_CACHE.append(0.5 * (lo + hi))
    return _NODE_REST_CACHE[0]


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
    nf = offsets.size - 1
    if nf == 0:
        return np.zeros(0, bool)
    origin = np.full(nf, -1, np.int64)
    out = _activated_many(flat, offsets, w, *args, float(v_detect_mV), int(n_propagate), origin)
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
    if not 0 < rel_tol < 1:
        raise VtaError(f"rel_tol must be in (0, 1), got {rel_tol}")
    if not s_max > 0:
        raise VtaError(f"s_max must be > 0, got {s_max}")
    flat, offsets, w, args = _setup(model, ve_unit, pulse, dt_us, t_after_us, n_propagate)
    nf = offsets.size - 1
    if nf == 0:
        return np.zeros(0)
    out = np.full(nf, np.nan)
    runs = np.zeros(nf, np.int64)
    origin = np.full(nf, -1, np.int64)

    def search(idx: np.ndarray, start: np.ndarray) -> np.ndarray:
        lengths = offsets[idx + 1] - offsets[idx]
        sub = np.concatenate([flat[offsets[f]:offsets[f + 1]] for f in idx])
        sub_off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        r = np.zeros(idx.size, np.int64)
        o = np.full(idx.size, -1, np.int64)
        th = _thresholds_many(sub, sub_off, np.minimum(start, s_max), float(s_max), float(rel_tol),
                              _BRACKET_STEP, w, *args, float(v_detect_mV), int(n_propagate), r, o)
        out[idx], runs[idx], origin[idx] = th, r, o
        return th

    if s_start is None:
        s0 = _start_guess(model, flat * 1e-3, offsets, pulse, fit=search)
    else:
        s0 = np.broadcast_to(np.asarray(s_start, dtype=np.float64), (nf,)).copy()
        if not np.all(s0 > 0):
            raise VtaError("s_start must be > 0")
    todo = np.flatnonzero(np.isnan(out))
    if todo.size:
        search(todo, s0[todo])
    log.debug("axon thresholds: %d fibres, %.2f simulations per fibre", nf, runs.mean())
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
