"""Numba kernels of the myelinated axon models: MRG node membrane and cable integration.

This module holds every numba-compiled function of :mod:`vta.activation.axons` together
with the constants they read: the nodal membrane of McIntyre, Richardson & Grill,
J Neurophysiol 2002;87:995 (fast Na, persistent Na, slow K and leak; Appendix rate
equations, Q10 factors, 37 C) and the backward-Euler integration of the double cable.
Numba freezes module globals into the compiled code and its on-disk cache is only
invalidated when *this* file changes, so kernels and the constants they use stay in one
file. The public API is :mod:`vta.activation.axons`; the geometry and passive cable
parameters are in :mod:`vta.activation.mrg_geometry`.

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
within 0.1 % (tests/test_axons.py). Fibres run in parallel (``numba.prange``).

Units inside the kernels: potentials mV, time ms, conductances uS, capacitances nF,
currents nA.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: The kernels are private; :mod:`vta.activation.axons` is the public interface.
__all__: list[str] = []

# --- node membrane (McIntyre, Richardson & Grill 2002, Appendix) -------------------------

# conductances S/cm2, potentials mV
_G_NAF, _G_NAP, _G_KS, _G_L = 3.0, 0.01, 0.08, 0.007
_E_NA, _E_K, _E_L = 50.0, -90.0, -90.0
#: Resting potential of the MRG fibre (mV).
_V_REST_MV = -80.0
#: Reversal potential of the internodal axolemma leak (mV), read by the kernels.
_E_PAS_MV = -80.0
#: Temperature (C).
_CELSIUS = 37.0


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
def _axial_sources(A, n, gi, gp):
    """:func:`_unit_axial_sources` of every column of ``A`` (n, M): two (M, n) arrays."""
    M = A.shape[1]
    afi = np.empty((M, n))
    afb = np.empty((M, n))
    col = np.empty(n)
    for mm in range(M):
        for i in range(n):
            col[i] = A[i, mm]
        a1, a2 = _unit_axial_sources(col, n, gi, gp)
        afi[mm, :] = a1
        afb[mm, :] = a2
    return afi, afb


@njit(cache=True)
def _run_fibre(veu, s, w, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect, n_prop, stop, record, rec):
    """Simulate one fibre under the separable potential ``s * veu * w[step]``; returns
    (fired, steps run, origin node or -1).

    veu: unit Ve per compartment (mV); s: scale; w: waveform value per step; the other
    arguments as :func:`_run_fibre_lr`, which this calls with one term (M = 1; the same
    floating-point operations, so the same results bit for bit).
    """
    afi, afb = _unit_axial_sources(veu, n, gi, gp)
    return _run_fibre_lr(afi.reshape((1, n)), afb.reshape((1, n)), s, w.reshape((1, w.shape[0])), n, cpn, dt,
                         gi, gp, segc, nodec, q, tab, v0, v_detect, n_prop, stop, record, rec)


@njit(cache=True)
def _run_fibre_lr(afi, afb, s, G, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect, n_prop, stop, record,
                  rec):
    """Simulate one fibre under a low-rank potential; returns (fired, steps run, origin
    node or -1).

    The extracellular potential at step ``k`` is ``s * sum_m A[:, m] G[m, k]``; the
    kernel takes the axial sources of the columns of ``A`` (:func:`_axial_sources`):
    afi, afb (M, n) (nA per mV); s: scale; G (M, n_steps): the time functions per step
    (the separable case is M = 1, G = w). n: compartments; cpn: compartments per node
    period; gi, gp: axial conductances (uS)
    between compartment i and i+1; segc, nodec: constants of
    :func:`vta.activation.axons._kernel_constants`;
    tab: gate table of :func:`_gate_table` (empty: compute the rates directly); v0:
    initial potential (mV); stop: return as soon as the fibre fired; record: fill
    rec[step, node] with the node Vm.

    Unknowns per compartment: membrane potential Vm = Vi - Vp and periaxonal potential
    relative to the extracellular one, Vq = Vp - Ve (0 at the nodes). Rows: intracellular
    current balance and total (intracellular + periaxonal) current balance; the
    extracellular potential enters as the axial sources of
    :func:`_unit_axial_sources`, summed over the M terms at the start of every step. Each
    backward-Euler step is solved by block
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
    n_terms = afi.shape[0]
    # Internode quantities are stored [compartment within the internode, internode] so
    # that the inner loops run over independent internodes (no dependency chain; SIMD).
    vmi = np.full((m, ns), v0)
    vqi = np.zeros((m, ns))
    d1i = np.empty((m, ns))
    d2i = np.empty((m, ns))
    afi_t = np.empty((n_terms, m, ns))
    afb_t = np.empty((n_terms, m, ns))
    afn_t = np.empty((n_terms, n_nodes))
    for t in range(n_terms):
        for j in range(ns):
            for i in range(m):
                afi_t[t, i, j] = afi[t, j * cpn + 1 + i]
                afb_t[t, i, j] = afb[t, j * cpn + 1 + i]
        for k in range(n_nodes):
            afn_t[t, k] = afi[t, k * cpn]
    # this step's sources: sum over the terms of (s G[t, step]) times their axial sources
    afi_i = np.empty((m, ns))
    afb_i = np.empty((m, ns))
    afi_n = np.empty(n_nodes)
    sg = np.empty(n_terms)
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
    n_steps = G.shape[1]
    for step in range(n_steps):
        for t in range(n_terms):
            sg[t] = s * G[t, step]
        sw = sg[0]
        for i in range(m):
            for j in range(ns):
                afi_i[i, j] = sw * afi_t[0, i, j]
                afb_i[i, j] = sw * afb_t[0, i, j]
        for k in range(n_nodes):
            afi_n[k] = sw * afn_t[0, k]
        for t in range(1, n_terms):
            st_ = sg[t]
            for i in range(m):
                for j in range(ns):
                    afi_i[i, j] += st_ * afi_t[t, i, j]
                    afb_i[i, j] += st_ * afb_t[t, i, j]
            for k in range(n_nodes):
                afi_n[k] += st_ * afn_t[t, k]
        # (1) internodes with the nodes at 0: block forward ...
        for i in range(m):
            c1, c2, c3 = segc[i, 0], segc[i, 1], segc[i, 2]
            g = segc[i, 3]
            gpi = g + segc[i, 4]
            m11, m12, m21, m22 = segc[i, 5], segc[i, 6], segc[i, 7], segc[i, 8]
            if i == 0:
                for j in range(ns):
                    r1 = c1 * vmi[i, j] + c3 + afi_i[i, j]
                    r2 = c2 * vqi[i, j] + afb_i[i, j]
                    d1i[i, j] = m11 * r1 + m12 * r2
                    d2i[i, j] = m21 * r1 + m22 * r2
            else:
                for j in range(ns):
                    p1 = d1i[i - 1, j]
                    p2 = d2i[i - 1, j]
                    r1 = c1 * vmi[i, j] + c3 + afi_i[i, j] + g * (p1 + p2)
                    r2 = c2 * vqi[i, j] + afb_i[i, j] + g * p1 + gpi * p2
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
            rhs = cdt_n * vmn[k] + gna * _E_NA + gk * _E_K + gl * _E_L + afi_n[k]
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
    coefficients from :func:`vta.activation.mrg_geometry._coefficients`."""
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


@njit(cache=True, parallel=True, nogil=True)
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


@njit(cache=True, parallel=True, nogil=True)
def _activated_many_lr(A, offsets, G, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect, n_prop, origin):
    """:func:`_activated_many` for low-rank potentials: A (total compartments, M) stacks
    the fibres' term matrices, G (M, n_steps) is shared."""
    nf = offsets.shape[0] - 1
    out = np.zeros(nf, np.bool_)
    for f in prange(nf):
        a, b = offsets[f], offsets[f + 1]
        afi, afb = _axial_sources(A[a:b], b - a, gi, gp)
        fired, _, first = _run_fibre_lr(afi, afb, 1.0, G, b - a, cpn, dt, gi, gp, segc, nodec, q, tab, v0,
                                        v_detect, n_prop, True, False, np.empty((0, 0)))
        out[f] = fired
        origin[f] = first
    return out


@njit(cache=True)
def _threshold_one(afi, afb, n, s0, s_max, rel_tol, step0, G, cpn, dt, gi, gp, segc, nodec, q, tab, v0,
                   v_detect, n_prop):
    """Geometric bisection of one fibre (axial sources afi, afb (M, n), time terms G)
    from a starting guess s0; returns (threshold or inf, simulations run, origin node).

    Bracketing: from s0 step down (if it fires) or up (if not) by a factor that starts at
    step0 and is squared after each step; then bisect at the geometric mean until
    hi <= lo * (1 + rel_tol). The threshold is hi, the smallest scale seen to fire;
    origin: the node where the action potential started at hi.
    """
    rec = np.empty((0, 0))
    nrun = 1
    org = -1
    s = min(s0, s_max)
    factor = step0
    fired, _, first = _run_fibre_lr(afi, afb, s, G, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect, n_prop,
                                    True, False, rec)
    if fired:
        hi = s
        org = first
        lo = s / factor
        while True:
            nrun += 1
            fired, _, first = _run_fibre_lr(afi, afb, lo, G, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect,
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
            fired, _, first = _run_fibre_lr(afi, afb, t, G, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect,
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
            fired, _, first = _run_fibre_lr(afi, afb, mid, G, n, cpn, dt, gi, gp, segc, nodec, q, tab, v0, v_detect,
                                            n_prop, True, False, rec)
            if fired:
                hi = mid
                org = first
            else:
                lo = mid
    return hi, nrun, org


@njit(cache=True, parallel=True, nogil=True)
def _thresholds_many(ve, offsets, s0, s_max, rel_tol, step0, w, cpn, dt, gi, gp, segc, nodec, q, tab, v0,
                     v_detect, n_prop, runs, origin):
    """Threshold scale per fibre under the separable potential (:func:`_threshold_one`);
    inf if silent at s_max."""
    nf = offsets.shape[0] - 1
    out = np.empty(nf)
    G = w.reshape((1, w.shape[0]))
    for f in prange(nf):
        v = ve[offsets[f]:offsets[f + 1]]
        n = v.shape[0]
        afi, afb = _unit_axial_sources(v, n, gi, gp)
        out[f], runs[f], origin[f] = _threshold_one(afi.reshape((1, n)), afb.reshape((1, n)), n, s0[f], s_max,
                                                    rel_tol, step0, G, cpn, dt, gi, gp, segc, nodec, q, tab, v0,
                                                    v_detect, n_prop)
    return out


@njit(cache=True, parallel=True, nogil=True)
def _thresholds_many_lr(A, offsets, s0, s_max, rel_tol, step0, G, cpn, dt, gi, gp, segc, nodec, q, tab, v0,
                        v_detect, n_prop, runs, origin):
    """:func:`_thresholds_many` for low-rank potentials: A (total compartments, M) stacks
    the fibres' term matrices, G (M, n_steps) is shared."""
    nf = offsets.shape[0] - 1
    out = np.empty(nf)
    for f in prange(nf):
        a, b = offsets[f], offsets[f + 1]
        afi, afb = _axial_sources(A[a:b], b - a, gi, gp)
        out[f], runs[f], origin[f] = _threshold_one(afi, afb, b - a, s0[f], s_max, rel_tol, step0, G, cpn, dt, gi,
                                                    gp, segc, nodec, q, tab, v0, v_detect, n_prop)
    return out


# --- node resting state ------------------------------------------------------------------


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
