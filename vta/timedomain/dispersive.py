"""Complex (dispersive) tissue conductivity per region and tissue class.

In the frequency domain the conductivity of a tissue is complex,
``sigma*(w) = j w eps_0 eps*(w)`` (S/m), with ``eps*`` Gabriel's 4-term Cole-Cole
permittivity including the ionic term (:func:`vta.anatomy.conductivity.cole_cole_permittivity`;
the parameter table lives there and is not repeated here). Its real part is the
effective conductivity of the quasi-static model, its imaginary part the displacement
(capacitive) current.

The encapsulation layer
-----------------------
The fibrous sheath around a chronic lead has no measured dielectric spectrum. Three
models are offered (``DispersiveTissue.encapsulation_model``); all give the configured
conductivity ``encapsulation_S_per_m`` at the reference (stimulation) frequency, so the
quasi-static model of ``vta`` is the same at that frequency:

``"scaled"`` (default)
    ``sigma_e*(w) = s * sigma_ref*(w)`` with ``s = encapsulation_S_per_m / Re sigma_ref*(f_ref)``:
    the Cole-Cole spectrum of a reference tissue (``encapsulation_reference``, default GM,
    the default encapsulation material of :func:`vta.anatomy.tissue.element_conductivity`)
    scaled to the configured conductivity. OSS-DBS v2 likewise gives its
    ``EncapsulationLayer`` the full Cole-Cole model of a tissue ``Material`` (e.g.
    "Gray matter" or "Blood"; Butenko K et al., PLoS Comput Biol 16:e1008023, 2020);
    the scaling keeps the configured conductivity (e.g. Butson CR, Maks CB, McIntyre CC,
    Clin Neurophysiol 117:447, 2006: encapsulation conductivity below the bulk's).
    With the reference equal to the bulk tissue the layer only rescales the bulk, so the
    potential shape is frequency independent.
``"tissue_permittivity"``
    ``sigma_e*(w) = encapsulation_S_per_m + j w eps_0 Re(eps*_ref(w))``: a fixed ohmic
    conductivity with the relative permittivity of the reference tissue (the capacitive
    medium of Butson CR, McIntyre CC, Clin Neurophysiol 116:2490, 2005; Grant PF,
    Lowery MM, IEEE TBME 57:2386, 2010, where the encapsulation differs from the bulk in
    its conductivity).
``"resistive"``
    ``sigma_e* = encapsulation_S_per_m``, real and frequency independent (the
    quasi-static encapsulation of Butson & McIntyre 2005 and of ``vta``'s real path).

Units: conductivities in S/m (the FEM multiplies by 1e-3 for S/mm), frequencies in Hz.
A frequency of 0 Hz is allowed here and gives the static limit (``sigma_ionic`` of the
Cole-Cole model): a Fourier series of a pulse train has a DC term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..anatomy.atlas_io import BACKGROUND, BLOOD, CSF, GM, WM
from ..anatomy.conductivity import (
    COLE_COLE_PARAMETERS,
    EPSILON_0,
    _tissue_key,
    cole_cole_permittivity,
)
from ..errors import VtaError

__all__ = [
    "DEFAULT_CLASS_TISSUES",
    "ENCAPSULATION_CLASS",
    "ENCAPSULATION_MODELS",
    "DispersiveTissue",
    "complex_conductivity",
    "tissue_permittivity",
]

#: Element class code of the encapsulation layer in :meth:`DispersiveTissue.class_sigma`
#: (tissue classes of :mod:`vta.anatomy.atlas_io` are 0..4).
ENCAPSULATION_CLASS = -1

#: Cole-Cole tissue of each anatomy class; background (unknown) as white matter, like
#: :class:`vta.anatomy.conductivity.ConductivityModel` (background = WM by default).
DEFAULT_CLASS_TISSUES: dict[int, str] = {BACKGROUND: "WM", GM: "GM", WM: "WM", CSF: "CSF", BLOOD: "blood"}

#: Names of the encapsulation models (see the module docstring).
ENCAPSULATION_MODELS = ("scaled", "tissue_permittivity", "resistive")


def _frequencies(frequencies_hz) -> np.ndarray:
    f = np.atleast_1d(np.asarray(frequencies_hz, dtype=float))
    if f.ndim != 1 or not np.all(np.isfinite(f)) or np.any(f < 0):
        raise VtaError(f"frequencies must be finite and >= 0 Hz, got {frequencies_hz}")
    return f


def complex_conductivity(tissue: str | float, frequencies_hz) -> np.ndarray:
    """Complex conductivity ``sigma*(w) = j w eps_0 eps*(w)`` (S/m) of a tissue.

    Parameters
    ----------
    tissue : str or float
        A Cole-Cole tissue ("GM", "WM", "CSF", "blood"; aliases as in
        :mod:`vta.anatomy.conductivity`), or a number: a purely resistive,
        frequency-independent conductivity in S/m.
    frequencies_hz : float or array_like
        Frequencies (Hz), >= 0 (0 Hz gives the ionic conductivity).

    Returns
    -------
    ndarray of complex, shape (n_f,)
        S/m; ``Re`` is the effective conductivity of the quasi-static model.
    """
    f = _frequencies(frequencies_hz)
    if not isinstance(tissue, str):
        s = float(tissue)
        if not (s > 0 and math.isfinite(s)):
            raise VtaError(f"a resistive conductivity must be a positive number in S/m, got {tissue!r}")
        return np.full(f.shape, s, dtype=complex)
    key = _tissue_key(tissue)
    out = np.full(f.shape, COLE_COLE_PARAMETERS[key].sigma_ionic_S_per_m, dtype=complex)
    pos = f > 0
    if pos.any():
        w = 2.0 * np.pi * f[pos]
        out[pos] = 1j * w * EPSILON_0 * np.asarray(cole_cole_permittivity(key, f[pos]))
    return out


def tissue_permittivity(tissue: str, frequencies_hz) -> np.ndarray:
    """Real relative permittivity ``Re eps*(w)`` of a Cole-Cole tissue (dimensionless),
    without the ionic term; at 0 Hz its static limit ``eps_inf + sum d_eps``."""
    f = _frequencies(frequencies_hz)
    key = _tissue_key(tissue)
    p = COLE_COLE_PARAMETERS[key]
    out = np.full(f.shape, p.eps_inf + sum(d for d, t in zip(p.delta_eps, p.tau_s) if d and t), dtype=float)
    pos = f > 0
    if pos.any():
        out[pos] = np.real(np.asarray(cole_cole_permittivity(key, f[pos])))
    return out


@dataclass(frozen=True)
class DispersiveTissue:
    """Which dispersive model each region or tissue class gets.

    Attributes
    ----------
    tissue : str or float
        Bulk tissue of a homogeneous domain (the axisymmetric path and 3D runs without
        anatomy): a Cole-Cole tissue name or a resistive conductivity (S/m).
    class_tissues : mapping of int to (str or float)
        Tissue of each anatomy class code (3D with anatomy); default
        :data:`DEFAULT_CLASS_TISSUES`. Codes not listed take ``tissue``.
    encapsulation_S_per_m : float or None
        Configured encapsulation conductivity (S/m) at ``reference_frequency_hz``;
        None = no layer (its elements, if any, take ``tissue``).
    encapsulation_model : {"scaled", "tissue_permittivity", "resistive"}
        See the module docstring.
    encapsulation_reference : str
        Cole-Cole tissue whose spectrum (``scaled``) or permittivity
        (``tissue_permittivity``) the layer takes; default "GM".
    reference_frequency_hz : float
        Frequency (Hz) at which ``Re sigma_e* = encapsulation_S_per_m`` (the
        quasi-static ``frequency_hz`` of the run; default 130 Hz).
    """

    tissue: str | float = "GM"
    class_tissues: Mapping[int, str | float] = field(default_factory=lambda: dict(DEFAULT_CLASS_TISSUES))
    encapsulation_S_per_m: float | None = None
    encapsulation_model: str = "scaled"
    encapsulation_reference: str = "GM"
    reference_frequency_hz: float = 130.0

    def __post_init__(self) -> None:
        if self.encapsulation_model not in ENCAPSULATION_MODELS:
            raise VtaError(f"encapsulation model must be one of {', '.join(ENCAPSULATION_MODELS)}, "
                           f"got {self.encapsulation_model!r}")
        f0 = float(self.reference_frequency_hz)
        if not (f0 > 0 and math.isfinite(f0)):
            raise VtaError(f"reference_frequency_hz must be positive (Hz), got {self.reference_frequency_hz}")
        s = self.encapsulation_S_per_m
        if s is not None and not (float(s) > 0 and math.isfinite(float(s))):
            raise VtaError(f"encapsulation_S_per_m must be a positive number in S/m, got {s!r}")
        complex_conductivity(self.tissue, [f0])            # validates the names
        _tissue_key(self.encapsulation_reference)
        for code, name in self.class_tissues.items():
            complex_conductivity(name, [f0])

    @classmethod
    def resistive(cls, sigma_S_per_m: float, encapsulation_S_per_m: float | None = None) -> "DispersiveTissue":
        """Frequency-independent real conductivities (S/m): the quasi-static model."""
        s = float(sigma_S_per_m)
        return cls(tissue=s, class_tissues={}, encapsulation_S_per_m=encapsulation_S_per_m,
                   encapsulation_model="resistive")

    # ---- per region -------------------------------------------------------------------

    def tissue_sigma(self, frequencies_hz) -> np.ndarray:
        """Bulk complex conductivity (n_f,) in S/m."""
        return complex_conductivity(self.tissue, frequencies_hz)

    def encapsulation_sigma(self, frequencies_hz) -> np.ndarray:
        """Encapsulation complex conductivity (n_f,) in S/m (the bulk's without a layer)."""
        f = _frequencies(frequencies_hz)
        s = self.encapsulation_S_per_m
        if s is None:
            return self.tissue_sigma(f)
        s = float(s)
        if self.encapsulation_model == "resistive":
            return np.full(f.shape, s, dtype=complex)
        if self.encapsulation_model == "tissue_permittivity":
            return s + 1j * 2.0 * np.pi * f * EPSILON_0 * tissue_permittivity(self.encapsulation_reference, f)
        ref = complex_conductivity(self.encapsulation_reference, f)
        ref0 = complex_conductivity(self.encapsulation_reference, [self.reference_frequency_hz])[0]
        return ref * (s / ref0.real)

    def region_sigma(self, frequencies_hz) -> np.ndarray:
        """(2, n_f) complex S/m: row 0 the bulk tissue, row 1 the encapsulation layer
        (the region order of the axisymmetric mesh)."""
        return np.stack([self.tissue_sigma(frequencies_hz), self.encapsulation_sigma(frequencies_hz)])

    def class_sigma(self, frequencies_hz, codes) -> dict[int, np.ndarray]:
        """Complex conductivity (n_f,) S/m of each element class code in ``codes``:
        anatomy classes through ``class_tissues`` (others: ``tissue``) and
        :data:`ENCAPSULATION_CLASS` for the layer."""
        out: dict[int, np.ndarray] = {}
        for c in sorted({int(c) for c in np.asarray(codes).ravel()}):
            if c == ENCAPSULATION_CLASS:
                out[c] = self.encapsulation_sigma(frequencies_hz)
            else:
                out[c] = complex_conductivity(self.class_tissues.get(c, self.tissue), frequencies_hz)
        return out
