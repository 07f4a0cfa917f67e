"""Stimulation settings as exact linear combinations of per-contact unit solutions.

With a conductance matrix ``G`` (siemens; ``I = G V`` with ``I`` the current leaving
each contact into tissue in A and ``V`` the contact potentials in V, the outer boundary
at 0 V or insulating), every setting reduces to a small dense solve for the contact
potentials ``V``; the field is then ``sum_k V_k u_k``. Inactive contacts *float*: they
carry no net current and take whatever potential the field gives them.

Interface units: currents in mA, potentials in V, impedance in ohm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VtaError

__all__ = ["ContactState", "Setting", "carrying_contacts", "resolve", "monopolar_impedances_ohm"]

_MA_PER_A = 1e3


@dataclass(frozen=True)
class Setting:
    """A stimulation setting.

    Attributes
    ----------
    mode : str
        ``"current"`` (amplitudes in mA) or ``"voltage"`` (amplitudes in V).
    amplitudes : dict of int to float
        Active contacts and their amplitudes; cathodic is negative. Contacts not listed
        float (zero net current).
    """

    mode: str
    amplitudes: dict[int, float]

    def __post_init__(self) -> None:
        if self.mode not in ("current", "voltage"):
            raise VtaError(f"stimulation mode must be 'current' or 'voltage', got {self.mode!r}")
        if not self.amplitudes:
            raise VtaError("a setting needs at least one active contact")


@dataclass(frozen=True)
class ContactState:
    """Potentials and currents of every contact for one setting.

    Attributes
    ----------
    potentials_V : ndarray, shape (K,)
        Contact potentials (V), the weights of the unit solutions.
    currents_mA : ndarray, shape (K,)
        Current leaving each contact into tissue (mA); cathodic contacts are negative.
    ground_current_mA : float
        Current returning through the outer boundary (mA); 0 if it is insulating.
    impedance_ohm : float
        Load seen by the stimulator: delivered power / source current^2 (ohm). For a
        monopolar setting this is ``V / I`` of the active contact.
    """

    potentials_V: np.ndarray
    currents_mA: np.ndarray
    ground_current_mA: float
    impedance_ohm: float


def carrying_contacts(currents_mA: np.ndarray) -> list[int]:
    """Indices of the contacts that carry current (|I| > 1e-9 mA), or all contacts when
    none does: where a setting's field comes from (voxel grids, tract placement)."""
    currents = np.asarray(currents_mA, float).reshape(-1)
    return [k for k in range(currents.size) if abs(currents[k]) > 1e-9] or list(range(currents.size))


def _check_indices(setting: Setting, n_contacts: int) -> None:
    for k in setting.amplitudes:
        if not 0 <= int(k) < n_contacts:
            raise VtaError(f"contact index {k} is out of range (contacts 0..{n_contacts - 1})")


def resolve(setting: Setting, conductance_S: np.ndarray, outer_grounded: bool) -> ContactState:
    """Contact potentials and currents of a setting, without any field solve.

    Parameters
    ----------
    setting : Setting
    conductance_S : ndarray, shape (K, K)
        Conductance matrix (S).
    outer_grounded : bool
        True if the outer boundary is a 0 V return electrode.

    Returns
    -------
    ContactState

    Raises
    ------
    VtaError
        For contact indices out of range, or a setting that cannot drive current
        (e.g. current mode with an insulating outer boundary whose currents do not
        sum to zero).
    """
    G = np.asarray(conductance_S, dtype=float)
    K = G.shape[0]
    _check_indices(setting, K)
    active = np.array(sorted(int(k) for k in setting.amplitudes), dtype=int)
    values = np.array([setting.amplitudes[k] for k in sorted(setting.amplitudes)], dtype=float)
    floating = np.setdiff1d(np.arange(K), active)
    V = np.zeros(K)
    if setting.mode == "voltage":
        V[active] = values
        if floating.size:
            rhs = -G[np.ix_(floating, active)] @ values
            V[floating] = np.linalg.solve(G[np.ix_(floating, floating)], rhs)
        if not outer_grounded and np.ptp(values) == 0:
            raise VtaError(
                "voltage setting drives no current: with an insulating outer boundary at least "
                "two active contacts need different potentials"
            )
    else:
        I = np.zeros(K)
        I[active] = values / _MA_PER_A
        if outer_grounded:
            V = np.linalg.solve(G, I)
        else:
            if abs(I.sum()) > 1e-9 * max(np.abs(I).max(), 1e-30):
                raise VtaError(
                    "current setting must sum to zero with an insulating outer boundary "
                    f"(got {I.sum() * _MA_PER_A:+.6g} mA); add a return contact or ground the outer boundary"
                )
            # potentials are defined up to a constant: take the minimum-norm solution
            V = np.linalg.lstsq(G, I, rcond=None)[0]
    currents = G @ V * _MA_PER_A
    if not outer_grounded:
        ground = 0.0
    else:
        ground = -float(currents.sum())
    return ContactState(V, currents, ground, _load_impedance(V, currents, outer_grounded))


def _load_impedance(V: np.ndarray, currents_mA: np.ndarray, outer_grounded: bool) -> float:
    """Delivered power over source current squared (ohm)."""
    power_mW = float(V @ currents_mA)  # a grounded outer boundary at 0 V adds no power
    flows = np.append(currents_mA, -currents_mA.sum()) if outer_grounded else currents_mA
    source_mA = 0.5 * float(np.abs(flows).sum())
    if source_mA <= 0:
        return float("nan")
    return power_mW / source_mA**2 * _MA_PER_A


def monopolar_impedances_ohm(conductance_S: np.ndarray, outer_grounded: bool) -> np.ndarray:
    """Impedance of each contact against the outer boundary, other contacts floating (ohm).

    Equal to the diagonal of ``G^-1``; NaN when the outer boundary is insulating
    (no monopolar return exists).
    """
    G = np.asarray(conductance_S, dtype=float)
    if not outer_grounded:
        return np.full(G.shape[0], np.nan)
    return np.diag(np.linalg.inv(G)).copy()
