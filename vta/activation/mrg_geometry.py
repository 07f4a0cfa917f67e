"""Geometry of the myelinated fibre models: the MRG parameter table and compartments.

The double-cable fibre of McIntyre, Richardson & Grill, J Neurophysiol 2002;87:995
("MRG"): per fibre diameter the node-to-node spacing, paranode (FLUT) length, axon and
node diameters and myelin lamellae (Table 1 and ModelDB 3810, 5.7-16 um; 2 and 3 um
from Sotiropoulos & Steinmetz 2007), and the passive cable parameters, with the values
as coded in OSS-DBS v2 (``axon_default_MRG2002.py``, ``axon4pyfull.hoc``).
:class:`AxonModel` describes one fibre; :func:`compartment_offsets_mm` gives where
its compartments sit along it and ``_coefficients`` their electrical coefficients.
The node membrane and its kinetics are in :mod:`vta.activation.axon_cable`.

Units: lengths um (mm for the node spacing and offsets), specific capacitances uF/cm2,
specific conductances S/cm2, resistivity ohm um; per-compartment coefficients nF, uS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .axon_cable import _G_KS, _G_L, _G_NAF, _G_NAP, _V_REST_MV, _node_rest_mV
from ..errors import VtaError

__all__ = ["AxonModel", "MRG_DIAMETERS_UM", "compartment_offsets_mm", "mrg_model", "simplified_model"]

# --- parameters (McIntyre, Richardson & Grill 2002) ---------------------------------------

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
_SPACE_NODE_MYSA_UM = 0.002  # periaxonal space width
_SPACE_FLUT_STIN_UM = 0.004
# E_pas of the internodal axolemma (-80 mV) and the node membrane: vta.activation.axon_cable

_KINDS = ("mrg", "simplified")


# --- model description -------------------------------------------------------------------


@dataclass(frozen=True)
class AxonModel:
    """Geometry of a myelinated fibre model (McIntyre, Richardson & Grill 2002).

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
