"""Isotropic tissue conductivity: Gabriel's 4-Cole-Cole model, presets, plausible range.

Units
-----
Conductivities in **S/m** (``*_S_per_m``), permittivities relative (dimensionless),
frequencies in Hz.

Sources (numbers only; the code here is written from the formulas)
--------------------------------------------------------------------
* Gabriel S, Lau RW, Gabriel C. "The dielectric properties of biological tissues: III.
  Parametric models for the dielectric spectrum of tissues", *Phys Med Biol*
  41:2271 (1996): the 4-term Cole-Cole model. Parameter table as coded in the OSS-DBS
  v2 dielectric model ``colecole4`` (``ossdbs/dielectric_model/colecole4.py``).
* Presets: the OSS-DBS v2 "Constant" model (``constant.py``: Gabriel at 10 kHz) and
  the Lead-DBS SimBio/FieldTrip model of Horn A et al., *Ann Neurol* 82:67 (2017)
  (Lead-DBS ``ea_vatsettings_horn.m`` / ``ea_prefs_default.m``: GM 0.33, WM 0.14 S/m,
  "general heuristic, e.g. Buzsaki 2006"; "frequency adapted (10 kHz)" GM 0.1365,
  WM 0.09104 S/m).

Tissue classes are those of :mod:`vta.anatomy.atlas_io`: 0 background/unknown, 1 GM, 2 WM,
3 CSF, 4 blood.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..config import (
    SIGMA_MAX_S_PER_M,
    SIGMA_MIN_S_PER_M,
    SIGMA_RANGE_TEXT,
    is_plausible_conductivity,
)
from ..errors import VtaError
from .atlas_io import BLOOD, CSF, GM, WM, _suggest

__all__ = [
    "COLE_COLE_PARAMETERS",
    "CONDUCTIVITY_PRESETS",
    "EPSILON_0",
    "SIGMA_MAX_S_PER_M",
    "SIGMA_MIN_S_PER_M",
    "SIGMA_RANGE_TEXT",
    "ColeColeParameters",
    "ConductivityModel",
    "cole_cole_conductivity",
    "cole_cole_permittivity",
    "is_plausible_conductivity",
]

#: Vacuum permittivity (F/m), CODATA 2018.
EPSILON_0 = 8.8541878128e-12

# --- Gabriel 4-Cole-Cole -------------------------------------------------------------


@dataclass(frozen=True)
class ColeColeParameters:
    """Parameters of one tissue in the 4-term Cole-Cole model (Gabriel et al. 1996).

    ``eps*(w) = eps_inf + sum_i d_eps_i / (1 + (j w tau_i)^(1 - alpha_i)) + sigma_ionic / (j w eps_0)``

    Attributes
    ----------
    eps_inf : float
        High-frequency relative permittivity (dimensionless).
    sigma_ionic_S_per_m : float
        Static ionic conductivity (S/m).
    delta_eps : tuple of 4 float
        Dispersion magnitudes (dimensionless); a zero term is skipped.
    tau_s : tuple of 4 float
        Relaxation times (s); a zero term is skipped.
    alpha : tuple of 4 float
        Broadening parameters (dimensionless, 0 = Debye).
    """

    eps_inf: float
    sigma_ionic_S_per_m: float
    delta_eps: tuple[float, float, float, float]
    tau_s: tuple[float, float, float, float]
    alpha: tuple[float, float, float, float]


#: Gabriel et al. 1996 parameters as tabulated in the OSS-DBS v2 dielectric model ``colecole4``.
COLE_COLE_PARAMETERS: dict[str, ColeColeParameters] = {
    "GM": ColeColeParameters(4.0, 0.02, (45.0, 400.0, 2.0e5, 4.5e7),
                             (7.958e-12, 15.915e-9, 106.103e-6, 5.305e-3), (0.1, 0.15, 0.22, 0.0)),
    "WM": ColeColeParameters(4.0, 0.02, (32.0, 100.0, 4.0e4, 3.5e7),
                             (7.958e-12, 7.958e-9, 53.052e-6, 7.958e-3), (0.1, 0.1, 0.3, 0.02)),
    "CSF": ColeColeParameters(4.0, 2.0, (65.0, 40.0, 0.0, 0.0),
                              (7.96e-12, 1.592e-9, 159.155e-6, 5.305e-3), (0.1, 0.0, 0.0, 0.0)),
    "blood": ColeColeParameters(4.0, 0.7, (56.0, 5200.0, 0.0, 0.0),
                                (8.38e-12, 132.63e-9, 0.0, 0.0), (0.1, 0.1, 0.0, 0.0)),
}

_TISSUE_ALIASES = {
    "gm": "GM", "grey": "GM", "gray": "GM", "grey matter": "GM", "gray matter": "GM",
    "wm": "WM", "white": "WM", "white matter": "WM",
    "csf": "CSF", "cerebrospinal fluid": "CSF",
    "blood": "blood",
}


def _tissue_key(tissue: str) -> str:
    key = _TISSUE_ALIASES.get(" ".join(str(tissue).lower().replace("_", " ").split()))
    if key is None:
        raise VtaError(f"unknown tissue '{tissue}'{_suggest(str(tissue), list(COLE_COLE_PARAMETERS))} "
                       f"(use one of {', '.join(COLE_COLE_PARAMETERS)})")
    return key


def _check_frequency(frequency_hz: Any) -> np.ndarray:
    f = np.asarray(frequency_hz, dtype=float)
    if not np.all(np.isfinite(f)) or np.any(f <= 0):
        raise VtaError(f"frequency must be positive and finite (Hz), got {frequency_hz}")
    return f


def cole_cole_permittivity(tissue: str, frequency_hz: float | np.ndarray) -> complex | np.ndarray:
    """Complex relative permittivity ``eps*`` of a tissue (dimensionless).

    Includes the ionic term ``sigma_ionic / (j w eps_0)``, so that the complex
    conductivity is ``j w eps_0 eps*`` and the effective conductivity its real part.

    Parameters
    ----------
    tissue : {"GM", "WM", "CSF", "blood"}
        Tissue name (aliases such as "grey matter" are accepted).
    frequency_hz : float or array
        Frequency (Hz), > 0.
    """
    p = COLE_COLE_PARAMETERS[_tissue_key(tissue)]
    f = _check_frequency(frequency_hz)
    w = 2.0 * np.pi * f
    eps = np.full(f.shape, p.eps_inf, dtype=complex)
    for d_eps, tau, alpha in zip(p.delta_eps, p.tau_s, p.alpha):
        if d_eps == 0.0 or tau == 0.0:
            continue
        eps = eps + d_eps / (1.0 + (1j * w * tau) ** (1.0 - alpha))
    eps = eps + p.sigma_ionic_S_per_m / (1j * w * EPSILON_0)
    return complex(eps) if eps.ndim == 0 else eps


def cole_cole_conductivity(tissue: str, frequency_hz: float | np.ndarray) -> float | np.ndarray:
    """Effective conductivity (S/m) of a tissue from the Gabriel 4-Cole-Cole model.

    ``sigma_eff(f) = Re(j w eps_0 eps*(w))`` with ``w = 2 pi f``; e.g. GM 0.0915 and
    WM 0.0590 S/m at 130 Hz (the former Lead-DBS defaults ``horn_cgm``/``horn_cwm``),
    0.1149 / 0.0695 S/m at 10 kHz; CSF 2.0, blood 0.7 S/m.

    Parameters
    ----------
    tissue : {"GM", "WM", "CSF", "blood"}
        Tissue name (case-insensitive; "grey matter", "white matter" accepted).
    frequency_hz : float or array
        Stimulation frequency (Hz), > 0.

    Returns
    -------
    float or ndarray
        Conductivity in S/m (a float for a scalar frequency).

    References
    ----------
    Gabriel S, Lau RW, Gabriel C, Phys Med Biol 41:2271 (1996); parameter table as in
    OSS-DBS v2 ``colecole4``.
    """
    eps = np.asarray(cole_cole_permittivity(tissue, frequency_hz))
    f = _check_frequency(frequency_hz)
    sigma = np.real(1j * 2.0 * np.pi * f * EPSILON_0 * eps)
    return float(sigma) if sigma.ndim == 0 else sigma


# --- conductivity model --------------------------------------------------------------

#: Named conductivity presets (S/m) and their sources; see :meth:`ConductivityModel.preset`.
CONDUCTIVITY_PRESETS: dict[str, str] = {
    "colecole4": "Gabriel 1996 4-Cole-Cole at the stimulation frequency (default 130 Hz: GM 0.0915, "
                 "WM 0.0590, CSF 2.0, blood 0.7 S/m); parameters as in OSS-DBS v2 colecole4",
    "constant": "OSS-DBS v2 'Constant' model = Gabriel 1996 at 10 kHz: GM 0.115, WM 0.0695, CSF 2.0, "
                "blood 0.7 S/m",
    "horn2017": "Lead-DBS SimBio/FieldTrip default (Horn 2017; 'general heuristic, Buzsaki 2006'): GM 0.33, "
                "WM 0.14 S/m; CSF 2.0, blood 0.7 S/m (Gabriel ionic values); Lead-DBS ea_prefs_default.m",
    "horn2017_10khz": "Lead-DBS 'frequency adapted (10 kHz)' (Horn 2017 model, ea_vatsettings_horn.m): "
                      "GM 0.1365, WM 0.09104 S/m; CSF 2.0, blood 0.7 S/m",
}


@dataclass(frozen=True)
class ConductivityModel:
    """Isotropic conductivity per tissue class (S/m).

    Every value must lie in the plausible range :data:`SIGMA_MIN_S_PER_M` ..
    :data:`SIGMA_MAX_S_PER_M` (0.01-2 S/m); others raise :class:`~vta.errors.VtaError`.

    Attributes
    ----------
    gm_S_per_m, wm_S_per_m, csf_S_per_m, blood_S_per_m : float
        Conductivities of the tissue classes GM (1), WM (2), CSF (3), blood (4) in S/m.
    background_S_per_m : float or None
        Conductivity of class 0 (background / unknown / outside the tissue volume),
        S/m; ``None`` means "same as WM" (the bulk of the tissue around NAc/ALIC leads).
    name : str
        Preset name or "custom".
    frequency_hz : float or None
        Frequency the values were evaluated at (Hz), if frequency dependent.
    source : str
        Where the numbers come from.

    Examples
    --------
    >>> ConductivityModel.preset("colecole4", frequency_hz=130).gm_S_per_m  # doctest: +ELLIPSIS
    0.0914...
    >>> ConductivityModel.constant(gm=0.2, wm=0.1).sigma_for_class(2)
    0.1
    """

    gm_S_per_m: float
    wm_S_per_m: float
    csf_S_per_m: float = 2.0
    blood_S_per_m: float = 0.7
    background_S_per_m: float | None = None
    name: str = "custom"
    frequency_hz: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for key in ("gm_S_per_m", "wm_S_per_m", "csf_S_per_m", "blood_S_per_m", "background_S_per_m"):
            v = getattr(self, key)
            if v is None and key == "background_S_per_m":
                continue
            if not is_plausible_conductivity(v):
                raise VtaError(f"conductivity {key} must be a positive number in S/m within the plausible "
                               f"range {SIGMA_RANGE_TEXT}, got {v!r}")
            object.__setattr__(self, key, float(v))

    # constructors --------------------------------------------------------------------

    @classmethod
    def constant(cls, gm: float, wm: float, csf: float = 2.0, blood: float = 0.7,
                 background: float | None = None, name: str = "custom", source: str = "user") -> "ConductivityModel":
        """A model from constant values (S/m)."""
        return cls(gm, wm, csf, blood, background, name=name, source=source)

    @classmethod
    def homogeneous(cls, sigma_S_per_m: float) -> "ConductivityModel":
        """Every class (background included) at one conductivity (S/m)."""
        s = sigma_S_per_m
        return cls(s, s, s, s, s, name="homogeneous", source="user (homogeneous)")

    @classmethod
    def colecole(cls, frequency_hz: float = 130.0, background: float | None = None) -> "ConductivityModel":
        """Gabriel 4-Cole-Cole conductivities at ``frequency_hz`` (Hz)."""
        f = float(_check_frequency(frequency_hz))
        vals = {t: cole_cole_conductivity(t, f) for t in COLE_COLE_PARAMETERS}
        return cls(vals["GM"], vals["WM"], vals["CSF"], vals["blood"], background, name="colecole4",
                   frequency_hz=f, source=f"Gabriel 1996 4-Cole-Cole at {f:g} Hz (OSS-DBS v2 colecole4 parameters)")

    @classmethod
    def preset(cls, name: str = "colecole4", frequency_hz: float = 130.0,
               background: float | None = None) -> "ConductivityModel":
        """A named preset (see :data:`CONDUCTIVITY_PRESETS`).

        Parameters
        ----------
        name : {"colecole4", "constant", "horn2017", "horn2017_10khz"}
            ``colecole4`` (default) evaluates Gabriel's model at ``frequency_hz``; the
            others are frequency independent.
        frequency_hz : float
            Stimulation frequency (Hz), used by ``colecole4`` only.
        background : float, optional
            Class-0 conductivity (S/m); default: the WM value.
        """
        key = str(name).lower()
        if key == "colecole4":
            return cls.colecole(frequency_hz, background)
        table = {
            "constant": (0.115, 0.0695, 2.0, 0.7),
            "horn2017": (0.33, 0.14, 2.0, 0.7),
            "horn2017_10khz": (0.1365, 0.09104, 2.0, 0.7),
        }
        if key not in table:
            raise VtaError(f"unknown conductivity preset '{name}'{_suggest(key, list(CONDUCTIVITY_PRESETS))} "
                           f"(use one of {', '.join(CONDUCTIVITY_PRESETS)})")
        return cls(*table[key], background, name=key, source=CONDUCTIVITY_PRESETS[key])

    # lookups -------------------------------------------------------------------------

    @property
    def default_S_per_m(self) -> float:
        """Conductivity of class 0 (background/unknown), S/m."""
        return self.wm_S_per_m if self.background_S_per_m is None else self.background_S_per_m

    def class_table(self) -> np.ndarray:
        """Lookup table (256,) of conductivity in S/m indexed by tissue class code.

        Codes other than 1-4 (unknown) get :attr:`default_S_per_m`.
        """
        t = np.full(256, self.default_S_per_m)
        t[GM], t[WM], t[CSF], t[BLOOD] = self.gm_S_per_m, self.wm_S_per_m, self.csf_S_per_m, self.blood_S_per_m
        return t

    def sigma_for_class(self, code: int) -> float:
        """Conductivity (S/m) of one tissue class code (0-4; others -> default)."""
        return float(self.sigma_for_labels(np.array([int(code)]))[0])

    def sigma_for_labels(self, labels: np.ndarray) -> np.ndarray:
        """Conductivity (S/m) for an array of tissue class codes (any shape)."""
        lab = np.asarray(labels)
        out = np.full(lab.shape, self.default_S_per_m)
        ok = (lab >= 0) & (lab < 256)
        out[ok] = self.class_table()[lab[ok].astype(np.int64)]
        return out

    def with_background(self, background_S_per_m: float | None) -> "ConductivityModel":
        """A copy with another class-0 conductivity (S/m)."""
        return replace(self, background_S_per_m=background_S_per_m)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (S/m) for summaries."""
        return {"name": self.name, "frequency_hz": self.frequency_hz, "GM_S_per_m": self.gm_S_per_m,
                "WM_S_per_m": self.wm_S_per_m, "CSF_S_per_m": self.csf_S_per_m,
                "blood_S_per_m": self.blood_S_per_m, "background_S_per_m": self.default_S_per_m,
                "source": self.source}
