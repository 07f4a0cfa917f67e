"""The MRG double-cable axon in NEURON, used only to validate :mod:`vta.activation.axons`.

Built from McIntyre, Richardson & Grill, J Neurophysiol 2002;87:995 in the usual NEURON
form: one segment per section; internodal sections get the fibre diameter with the
axial resistivity scaled by (fibre D / section D)^2 and the axolemma capacitance and
leak scaled by section D / fibre D; two `extracellular` layers: layer 0 is the
periaxonal space (axial resistance of the periaxonal annulus, myelin conductance and
capacitance per lamella pair to layer 1; at the nodes a 1e10 S/cm2 short), layer 1 is
tied to ``e_extracellular`` by NEURON's default 1e9 S/cm2. ``e_extracellular`` is
driven by the `vstim` mechanism. Fixed step, backward Euler (NEURON's default).

The node membrane is ``mrgnode.mod`` (written for these tests from the paper's rate
equations). Everything else here is independent of :mod:`vta.activation.axons` on purpose: the
geometry rows are typed in again and the compartment positions, conductances and the
waveform are computed here.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MOD_FILES = ("mrgnode.mod", "vstim.mod")

#: fibre D (um) -> node spacing (um), FLUT length (um), axon D (um), node D (um),
#: lamellae (McIntyre et al. 2002, Table 1 / ModelDB 3810 geometry)
GEOMETRY = {
    5.7: (500.0, 35.0, 3.4, 1.9, 80),
    10.0: (1150.0, 46.0, 6.9, 3.3, 120),
}

RHO_OHM_CM = 70.0
V_REST_MV = -80.0


def compile_mechanisms(workdir: Path) -> Path:
    """Copy the .mod files into ``workdir`` and run nrnivmodl there; returns workdir."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name in MOD_FILES:
        shutil.copy(HERE / name, workdir / name)
    nrnivmodl = shutil.which("nrnivmodl")
    if nrnivmodl is None:
        import sys

        cand = Path(sys.executable).with_name("nrnivmodl")
        nrnivmodl = str(cand) if cand.exists() else None
    if nrnivmodl is None:
        raise RuntimeError("nrnivmodl not found")
    subprocess.run([nrnivmodl], cwd=workdir, check=True, capture_output=True)
    return workdir


def step_values(width_us: float, recharge: str, dt_us: float, n_steps: int) -> np.ndarray:
    """Mean of the pulse over each time step (first phase +1)."""
    phases = [(0.0, width_us, 1.0)]
    if recharge == "passive":
        phases.append((width_us, 11 * width_us, -0.1))
    elif recharge == "symmetric":
        phases.append((width_us, 2 * width_us, -1.0))
    edges = np.arange(n_steps + 1) * dt_us
    out = np.zeros(n_steps)
    for t0, t1, a in phases:
        lo = np.clip(edges[:-1], t0, t1)
        hi = np.clip(edges[1:], t0, t1)
        out += a * (hi - lo) / dt_us
    return out


class NeuronMRG:
    """One straight MRG fibre in NEURON.

    Parameters
    ----------
    h : neuron.hoc.HocObject
        ``neuron.h`` with the test mechanisms loaded.
    fiber_diameter_um : float
        A key of :data:`GEOMETRY`.
    n_nodes : int
    dt_us : float
    """

    def __init__(self, h, fiber_diameter_um: float, n_nodes: int, dt_us: float):
        self.h = h
        dx, flut_len, axon_d, node_d, lam = GEOMETRY[fiber_diameter_um]
        fd = fiber_diameter_um
        stin_len = (dx - 1.0 - 2 * 3.0 - 2 * flut_len) / 6
        # (kind, length um, section D used for axoplasm/axolemma, periaxonal width um)
        period = [("node", 1.0, node_d, 0.002), ("mysa", 3.0, node_d, 0.002), ("flut", flut_len, axon_d, 0.004)]
        period += [("stin", stin_len, axon_d, 0.004)] * 6
        period += [("flut", flut_len, axon_d, 0.004), ("mysa", 3.0, node_d, 0.002)]
        layout = period * (n_nodes - 1) + [period[0]]
        h.celsius = 37.0
        h.dt = dt_us * 1e-3
        h.secondorder = 0
        self.sections, self.nodes, centres = [], [], []
        x = 0.0
        for i, (kind, length, d, space) in enumerate(layout):
            sec = h.Section(name=f"{kind}{i}")
            sec.nseg = 1
            sec.L = length
            sec.insert("extracellular")
            sec.insert("vstim")
            seg = sec(0.5)
            # periaxonal annulus, MOhm/cm: rho (ohm um) / area (um2) * 1e4 um/cm * 1e-6
            area = math.pi * ((d / 2 + space) ** 2 - (d / 2) ** 2)
            seg.xraxial[0] = RHO_OHM_CM * 1e4 / area * 1e-2
            if kind == "node":
                sec.diam = node_d
                sec.Ra = RHO_OHM_CM
                sec.cm = 2.0
                sec.insert("mrgnode")
                seg.xg[0] = 1e10
                seg.xc[0] = 0.0
                self.nodes.append(seg)
            else:
                sec.diam = fd
                sec.Ra = RHO_OHM_CM * (fd / d) ** 2
                sec.cm = 2.0 * d / fd
                sec.insert("pas")
                seg.pas.g = (0.001 if kind == "mysa" else 0.0001) * d / fd
                seg.pas.e = -80.0
                seg.xg[0] = 0.001 / (2 * lam)
                seg.xc[0] = 0.1 / (2 * lam)
            h.setpointer(seg._ref_e_extracellular, "ex", seg.vstim)
            if self.sections:
                sec.connect(self.sections[-1](1), 0)
            self.sections.append(sec)
            centres.append(x + length / 2)
            x += length
        self.x_mm = np.array(centres) * 1e-3
        self.node_spacing_mm = dx * 1e-3

    def set_unit_ve(self, ve_V: np.ndarray) -> None:
        """Extracellular potential of every section for the unit stimulus (V)."""
        for sec, v in zip(self.sections, ve_V):
            sec(0.5).vstim.ve_unit = float(v) * 1e3

    def fires(self, scale: float, w: np.ndarray, v_detect: float = -20.0, n_prop: int = 5) -> bool:
        """Run one pulse at ``scale``; True once an AP has crossed ``v_detect`` at a node
        ``n_prop`` nodes from the first node that crossed."""
        h = self.h
        h.amp_vstim = 0.0
        h.finitialize(V_REST_MV)
        crossed = np.zeros(len(self.nodes), bool)
        first = -1
        for wn in w:
            h.amp_vstim = scale * wn
            h.fadvance()
            v = np.array([seg.v for seg in self.nodes])
            new = (v >= v_detect) & ~crossed
            if new.any():
                crossed |= new
                if first < 0:
                    first = int(np.flatnonzero(new)[np.argmax(v[new])])
            if first >= 0 and np.any(crossed & (np.abs(np.arange(v.size) - first) >= n_prop)):
                return True
        return False

    def threshold(self, w: np.ndarray, start: float = 1.0, rel_tol: float = 0.005) -> float:
        """Smallest scale that fires, by doubling/halving from ``start`` then bisection."""
        lo, hi = None, None
        s = start
        if self.fires(s, w):
            hi = s
            while lo is None:
                s /= 2
                if self.fires(s, w):
                    hi = s
                else:
                    lo = s
        else:
            lo = s
            while hi is None:
                s *= 2
                if s > 1e4:
                    return math.inf
                if self.fires(s, w):
                    hi = s
                else:
                    lo = s
        while hi > lo * (1 + rel_tol):
            mid = math.sqrt(lo * hi)
            if self.fires(mid, w):
                hi = mid
            else:
                lo = mid
        return hi


def point_source_ve(x_mm: np.ndarray, distance_mm: float, current_mA: float = -1.0,
                    sigma_S_per_m: float = 0.2) -> np.ndarray:
    """Ve (V) along a straight fibre from a point source opposite its middle node."""
    x0 = 0.5 * (x_mm[0] + x_mm[-1])
    return current_mA / (4 * math.pi * sigma_S_per_m * np.hypot(x_mm - x0, distance_mm))
