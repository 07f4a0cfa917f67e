"""Electrode-tissue interface: a lumped series impedance per contact.

Each contact's metal is joined to the tissue side of its surface by an interface
admittance per unit area (a Randles-type element without the spreading resistance,
which the FEM supplies)::

    y(w) = Q (j w)^alpha + 1 / R_ct          (S/m^2)

a constant-phase element (CPE, ``Z = 1 / (Q (j w)^alpha)``) in parallel with a
charge-transfer (Faradaic) resistance. ``alpha = 1`` makes the CPE an ideal
double-layer capacitance ``C_dl = Q`` (F/m^2); ``R_ct = inf`` an ideally polarisable
electrode. The contact admittance is ``y * area``; it enters only at the circuit level
(:func:`vta.timedomain.phasors.resolve_with_interface`): under current control the
tissue currents, and so the field, do not depend on it; under voltage control the
interface and the tissue form a divider.

The lumped model assumes a uniform current density over the contact; Howell B, Naik S,
Grill WM, IEEE TBME 61:297 (2014) show that this filtering approximation of the
distributed interface is adequate for DBS contacts when the bulk current density is
nearly uniform, and Cantrell DR et al., J Neural Eng 5:54 (2008) model the Pt-saline
interface as a CPE per unit area (``alpha`` near 0.9 for platinum). The interface is
linear here; Wei XF, Grill WM, J Neural Eng 6:046008 (2009) found the in-vivo DBS
interface non-linear at clinical amplitudes, which no frequency-domain model captures.

Units: areas mm^2 (converted to m^2 here), admittances S, impedances ohm, Hz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import VtaError

__all__ = ["ElectrodeInterface", "PLATINUM_DOUBLE_LAYER"]

_MM2_TO_M2 = 1e-6


@dataclass(frozen=True)
class ElectrodeInterface:
    """Interface admittance per unit area ``Q (j w)^alpha + 1 / R_ct``.

    Attributes
    ----------
    Q_S_s_alpha_per_m2 : float
        CPE magnitude (S s^alpha / m^2); with ``alpha = 1`` the double-layer
        capacitance in F/m^2 (1 uF/cm^2 = 0.01 F/m^2).
    alpha : float
        CPE exponent, 0 < alpha <= 1 (1: ideal capacitor).
    R_ct_ohm_m2 : float
        Charge-transfer resistance times area (ohm m^2) in parallel; ``inf`` =
        ideally polarisable.
    source : str
        Where the numbers come from.
    """

    Q_S_s_alpha_per_m2: float
    alpha: float = 1.0
    R_ct_ohm_m2: float = math.inf
    source: str = "user"

    def __post_init__(self) -> None:
        q = float(self.Q_S_s_alpha_per_m2)
        if not (q > 0 and math.isfinite(q)):
            raise VtaError(f"interface Q must be a positive number (S s^alpha/m^2), got {self.Q_S_s_alpha_per_m2!r}")
        a = float(self.alpha)
        if not 0 < a <= 1:
            raise VtaError(f"interface CPE exponent alpha must be in (0, 1], got {self.alpha!r}")
        r = float(self.R_ct_ohm_m2)
        if not r > 0:
            raise VtaError(f"charge-transfer resistance must be positive (ohm m^2) or inf, got {self.R_ct_ohm_m2!r}")

    @classmethod
    def double_layer(cls, C_dl_uF_per_cm2: float, R_ct_ohm_cm2: float = math.inf,
                     source: str = "user") -> "ElectrodeInterface":
        """An ideal double-layer capacitance (uF/cm^2) in parallel with a
        charge-transfer resistance (ohm cm^2)."""
        return cls(float(C_dl_uF_per_cm2) * 1e-2, 1.0, float(R_ct_ohm_cm2) * 1e-4, source)

    def admittance_S(self, areas_mm2, frequencies_hz) -> np.ndarray:
        """Contact interface admittances (n_f, K) in S for contact areas (K,) mm^2;
        0 at 0 Hz for an ideally polarisable interface (no DC path)."""
        area = np.atleast_1d(np.asarray(areas_mm2, dtype=float)) * _MM2_TO_M2
        if area.ndim != 1 or not np.all(area > 0) or not np.all(np.isfinite(area)):
            raise VtaError(f"contact areas must be positive numbers (mm^2), got {areas_mm2}")
        f = np.atleast_1d(np.asarray(frequencies_hz, dtype=float))
        if f.ndim != 1 or np.any(f < 0) or not np.all(np.isfinite(f)):
            raise VtaError(f"frequencies must be finite and >= 0 Hz, got {frequencies_hz}")
        jw = 1j * 2.0 * np.pi * f
        with np.errstate(divide="ignore", invalid="ignore"):
            cpe = np.where(f > 0, float(self.Q_S_s_alpha_per_m2) * jw ** float(self.alpha), 0.0)
        per_area = cpe + (0.0 if math.isinf(self.R_ct_ohm_m2) else 1.0 / float(self.R_ct_ohm_m2))
        return per_area[:, None] * area[None, :]

    def impedance_ohm(self, areas_mm2, frequencies_hz) -> np.ndarray:
        """Contact interface impedances (n_f, K) in ohm (``inf`` where no current can pass)."""
        y = self.admittance_S(areas_mm2, frequencies_hz)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y != 0, 1.0 / np.where(y != 0, y, 1.0), complex(np.inf))


#: Smooth platinum (and Pt-Ir) double layer, 20 uF/cm^2, ideally polarisable: the upper
#: end of the 10-20 uF/cm^2 of Merrill DR, Bikson M, Jefferys JGR, J Neurosci Methods
#: 141:171 (2005). For a 6 mm^2 Medtronic 3387/3389 contact this is 1.2 uF, the order of
#: the electrode capacitances studied by Butson & McIntyre, Clin Neurophysiol 116:2490
#: (2005). In-vivo DBS values depend on current density (Wei & Grill 2009).
PLATINUM_DOUBLE_LAYER = ElectrodeInterface.double_layer(
    20.0, source="Pt double layer 20 uF/cm^2 (Merrill, Bikson & Jefferys 2005), ideally polarisable")
