"""Tissue conductivity: tissue classes -> sigma, Cole-Cole dispersion, encapsulation, DTI.

Units
-----
* Conductivities at this module's interface are in **S/m** (``*_S_per_m``), except
  :func:`element_conductivity`, which returns **S/mm** for the mm-based FEM
  (``sigma_S_per_mm = sigma_S_per_m * 1e-3``).
* Diffusion tensors are in **mm^2/s** (FSL ``dtifit`` and MRtrix ``dwi2tensor`` write
  mm^2/s; typical white-matter mean diffusivity ~0.7e-3 mm^2/s).
* Frequencies in Hz, lengths in mm (world / MNI space).

Sources (numbers only; the code here is written from the formulas)
--------------------------------------------------------------------
* Gabriel S, Lau RW, Gabriel C. "The dielectric properties of biological tissues: III.
  Parametric models for the dielectric spectrum of tissues", *Phys Med Biol*
  41:2271 (1996): the 4-term Cole-Cole model. Parameter table as tabulated in the
  OSS-DBS v2 dielectric model ``colecole4`` (see ``shared/reference/FACTS.md`` s3.1).
* Conductivity presets: FACTS s3.2 (OSS-DBS "Constant" = Gabriel at 10 kHz;
  Lead-DBS SimBio/FieldTrip, Horn et al. 2017).
* Encapsulation: FACTS s3.3 (always isotropic, also with DTI).
* DTI mappings: Tuch DS et al., *PNAS* 98:11697 (2001), linear fit
  sigma = k (d - d_eps), k = 0.844 S s/mm^3, d_eps = 0.124e-3 mm^2/s; Guellmar D,
  Haueisen J, Reichenbach JR, *NeuroImage* 51:145 (2010), normalised volume
  (unit-determinant) mapping. FACTS s3.4.

Tissue classes are those of :mod:`vta.anatomy.atlas_io`: 0 background/unknown, 1 GM, 2 WM,
3 CSF, 4 blood.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atlas_io import BLOOD, CSF, GM, TISSUE_CLASSES, WM, Image, _suggest, check_affine
from ..errors import VtaError

__all__ = [
    "COLE_COLE_PARAMETERS",
    "CONDUCTIVITY_PRESETS",
    "DTI_MAX_INDEFINITE_FRACTION",
    "DTI_ORDERS",
    "EPSILON_0",
    "TUCH_D_EPS_MM2_PER_S",
    "TUCH_K_S_S_PER_MM3",
    "SIGMA_FLOOR_S_PER_M",
    "SIGMA_MAX_S_PER_M",
    "SIGMA_MIN_S_PER_M",
    "SIGMA_RANGE_TEXT",
    "ColeColeParameters",
    "ConductivityModel",
    "TensorField",
    "cole_cole_conductivity",
    "cole_cole_permittivity",
    "element_conductivity",
    "is_plausible_conductivity",
    "load_dti_tensor",
    "normalized_conductivity",
    "tet_sample_points",
    "tuch_conductivity",
]

log = logging.getLogger(__name__)

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


#: Gabriel 1996 parameters as tabulated in OSS-DBS v2 ``colecole4`` (FACTS s3.1).
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
    WM 0.0590 S/m at 130 Hz, 0.1149 / 0.0695 S/m at 10 kHz; CSF 2.0, blood 0.7 S/m
    (FACTS s3.1).

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

#: Plausible range (S/m) of an isotropic tissue, class or encapsulation conductivity:
#: from below grey/white matter at low frequency (~0.02 S/m) to CSF (2.0 S/m). Enforced
#: (inclusive) by :class:`ConductivityModel`, :func:`element_conductivity` and the
#: ``[tissue]`` config keys; every message states it as :data:`SIGMA_RANGE_TEXT`.
SIGMA_MIN_S_PER_M = 0.01
SIGMA_MAX_S_PER_M = 2.0
#: The range as the messages state it ("0.01-2 S/m").
SIGMA_RANGE_TEXT = f"{SIGMA_MIN_S_PER_M:g}-{SIGMA_MAX_S_PER_M:g} S/m"
# relative slack for rounding only: Gabriel's CSF evaluates to 2.0000000023 S/m at 10 kHz
_SIGMA_RANGE_RTOL = 1e-6


def is_plausible_conductivity(value: Any) -> bool:
    """True if ``value`` is a finite number (S/m) in ``SIGMA_MIN_S_PER_M..SIGMA_MAX_S_PER_M``.

    The bounds are inclusive (up to a 1e-6 relative rounding slack).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    v = float(value)
    return (math.isfinite(v) and SIGMA_MIN_S_PER_M * (1 - _SIGMA_RANGE_RTOL) <= v
            <= SIGMA_MAX_S_PER_M * (1 + _SIGMA_RANGE_RTOL))


#: Named conductivity presets (S/m) and their sources; see :meth:`ConductivityModel.preset`.
CONDUCTIVITY_PRESETS: dict[str, str] = {
    "colecole4": "Gabriel 1996 4-Cole-Cole at the stimulation frequency (default 130 Hz: GM 0.0915, "
                 "WM 0.0590, CSF 2.0, blood 0.7 S/m); FACTS s3.1",
    "constant": "OSS-DBS 'Constant' model = Gabriel at 10 kHz: GM 0.115, WM 0.0695, CSF 2.0, blood 0.7 S/m; "
                "FACTS s3.2",
    "horn2017": "Lead-DBS SimBio/FieldTrip default (Horn 2017; 'general heuristic, Buzsaki 2006'): GM 0.33, "
                "WM 0.14 S/m; CSF 2.0, blood 0.7 S/m (Gabriel ionic values); FACTS s3.2",
    "horn2017_10khz": "Lead-DBS 'frequency adapted (10 kHz)': GM 0.1365, WM 0.09104 S/m; CSF 2.0, blood 0.7 S/m; "
                      "FACTS s3.2",
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
                   frequency_hz=f, source=f"Gabriel 1996 4-Cole-Cole at {f:g} Hz (FACTS s3.1)")

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


# --- DTI -----------------------------------------------------------------------------

#: Component orders of 6-component tensor images (names of the 6 volumes in order).
DTI_ORDERS: dict[str, tuple[str, ...]] = {
    # FSL dtifit *_tensor.nii.gz: upper triangle, row by row
    "fsl": ("xx", "xy", "xz", "yy", "yz", "zz"),
    # MRtrix dwi2tensor: diagonal first
    "mrtrix": ("xx", "yy", "zz", "xy", "xz", "yz"),
    # NIfTI-1 intent SYMMATRIX / dipy / Camino-style lower triangle, row by row
    "lower": ("xx", "xy", "yy", "xz", "yz", "zz"),
}
_COMP_INDEX = {"xx": (0, 0), "yy": (1, 1), "zz": (2, 2), "xy": (0, 1), "xz": (0, 2), "yz": (1, 2),
               "yx": (0, 1), "zx": (0, 2), "zy": (1, 2)}

#: Tuch 2001 slope k (S s / mm^3): sigma [S/mm] = k * d [mm^2/s]; times 1e3 for S/m.
TUCH_K_S_S_PER_MM3 = 0.844
#: Tuch 2001 extracellular diffusivity offset d_eps (mm^2/s).
TUCH_D_EPS_MM2_PER_S = 0.124e-3
#: Lower bound for mapped conductivity eigenvalues (S/m): WM at 10 Hz (Gabriel) / 20 (FACTS s3.4).
SIGMA_FLOOR_S_PER_M = 0.027512 / 20.0
#: Lower bound for diffusion eigenvalues after loading (mm^2/s).
D_FLOOR_MM2_PER_S = 1.0e-6
#: Largest fraction of the tensors with data (non-zero voxels) that may be indefinite (an
#: eigenvalue <= 0) and still be clamped with a warning; above it the file is rejected.
#: Noisy fits give a few indefinite tensors (mostly CSF/partial-volume voxels); a large
#: fraction means a wrong component order, wrong units or a corrupt fit.
DTI_MAX_INDEFINITE_FRACTION = 0.05


@dataclass(frozen=True)
class TensorField:
    """A field of symmetric 3x3 diffusion tensors in **world** axes on a voxel grid.

    Attributes
    ----------
    data : ndarray, shape (I, J, K, 3, 3)
        Diffusion tensors in mm^2/s, expressed in world (x, y, z) axes, positive
        definite wherever :attr:`valid` is True (eigenvalues >= the load floor).
    valid : ndarray of bool, shape (I, J, K)
        Voxels with tensor data (False where the file is all zeros).
    affine : ndarray, shape (4, 4)
        Voxel index -> world mm affine.
    source : str
        File it came from.
    n_clamped : int
        Voxels whose tensor had an eigenvalue below the floor (clamped on load).
    """

    data: np.ndarray
    valid: np.ndarray
    affine: np.ndarray
    source: str = ""
    n_clamped: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "affine", check_affine(self.affine, source=f"DTI '{self.source}'"))
        if self.data.ndim != 5 or self.data.shape[3:] != (3, 3):
            raise VtaError(f"DTI '{self.source}': tensor data must have shape (I, J, K, 3, 3), got {self.data.shape}")
        if self.valid.shape != self.data.shape[:3]:
            raise VtaError(f"DTI '{self.source}': shape mismatch between tensors {self.data.shape[:3]} "
                           f"and valid mask {self.valid.shape}")

    @property
    def shape3(self) -> tuple[int, int, int]:
        """Spatial grid shape (I, J, K)."""
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def image(self) -> Image:
        """The valid-mask as an :class:`~vta.anatomy.atlas_io.Image` (for grid queries)."""
        return Image(self.valid, self.affine)

    def tensor_at(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tensors (N, 3, 3) in mm^2/s at world points (nearest voxel) and a validity mask (N,).

        Points outside the grid or in voxels without data are invalid (tensor = 0).
        """
        ijk, inside = self.image.nearest_index(points_mm)
        out = np.zeros((len(ijk), 3, 3))
        i, j, k = ijk[inside].T
        ok = np.zeros(len(ijk), bool)
        ok[inside] = self.valid[i, j, k]
        sel = np.flatnonzero(ok)
        out[sel] = self.data[ijk[sel, 0], ijk[sel, 1], ijk[sel, 2]]
        return out, ok


def _rotation_of(affine: np.ndarray) -> np.ndarray:
    """Orthogonal part R of the affine's 3x3 (polar decomposition; reflections kept)."""
    u, _, vt = np.linalg.svd(affine[:3, :3])
    return u @ vt


def load_dti_tensor(nifti_path: str | Path, order: str | Sequence[str] = "fsl", frame: str = "voxel",
                    scale_to_mm2_per_s: float = 1.0) -> TensorField:
    """Load a 6-component diffusion tensor image as world-frame tensors.

    Parameters
    ----------
    nifti_path : str or Path
        NIfTI with 6 components: 4D ``(I, J, K, 6)`` or 5D FSL/NIfTI-style
        ``(I, J, K, 1, 6)``.
    order : {"fsl", "mrtrix", "lower"} or sequence of 6 names
        Component order of the 6 volumes (see :data:`DTI_ORDERS`):

        * ``"fsl"`` (default): Dxx, Dxy, Dxz, Dyy, Dyz, Dzz (FSL ``dtifit``);
        * ``"mrtrix"``: Dxx, Dyy, Dzz, Dxy, Dxz, Dyz (MRtrix ``dwi2tensor``);
        * ``"lower"``: Dxx, Dxy, Dyy, Dxz, Dyz, Dzz (NIfTI SYMMATRIX, dipy);
        * or an explicit sequence such as ``("xx", "yy", "zz", "xy", "xz", "yz")``.
    frame : {"voxel", "world"}
        Axes the components refer to. ``"voxel"`` (default, FSL): x, y, z are the
        voxel axes i, j, k; tensors are rotated to world axes with the orthogonal part
        R of the affine (polar decomposition, reflections included):
        ``D_world = R D_voxel R^T``. A tensor elongated along voxel axis i thus points
        along the world direction of the affine's column i. ``"world"`` (MRtrix): the
        components are already in scanner/world axes; no rotation.
    scale_to_mm2_per_s : float
        Factor converting the stored values to mm^2/s: 1 for FSL/MRtrix (mm^2/s);
        1e-3 for files in um^2/ms (1 um^2/ms = 1e-3 mm^2/s).

    Returns
    -------
    TensorField
        World-frame tensors (mm^2/s). Voxels that are all zero are marked invalid
        (no data: isotropic there). Tensors with an eigenvalue below
        ``D_FLOOR_MM2_PER_S`` (non-positive-definite from noisy fits) are clamped to
        it; their number is logged as a warning and kept in ``n_clamped``.

    Raises
    ------
    VtaError
        Missing/unreadable file, wrong number of components, bad order, broken affine;
        NaN or infinite values in any voxel (the message gives the number of voxels;
        write 0 for "no data"); more than :data:`DTI_MAX_INDEFINITE_FRACTION` (5 %) of
        the tensors with data indefinite (an eigenvalue <= 0), which points to a wrong
        ``order``, wrong units or a broken fit rather than noise.
    """
    import nibabel as nib

    p = Path(nifti_path)
    what = f"DTI tensor image '{p}'"
    if not p.is_file():
        raise VtaError(f"{what}: file not found")
    try:
        img = nib.load(str(p))
        data = np.asarray(img.dataobj, dtype=float)
        affine = img.affine
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise VtaError(f"{what}: cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    if affine is None:
        raise VtaError(f"{what}: no affine in the header")
    affine = check_affine(affine, source=what)
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim != 4 or data.shape[3] != 6:
        raise VtaError(f"{what}: expected 6 tensor components as (I, J, K, 6) or (I, J, K, 1, 6), "
                       f"got shape {data.shape}")
    comps = _parse_order(order, what)
    if not (math.isfinite(scale_to_mm2_per_s) and scale_to_mm2_per_s > 0):
        raise VtaError(f"{what}: scale_to_mm2_per_s must be positive, got {scale_to_mm2_per_s}")
    n_nonfinite = int(np.count_nonzero(~np.all(np.isfinite(data), axis=3)))
    if n_nonfinite:
        raise VtaError(f"{what}: NaN or infinite tensor values in {n_nonfinite} of {int(np.prod(data.shape[:3]))} "
                       "voxels (write 0 in voxels without data)")
    data = data * float(scale_to_mm2_per_s)

    valid = np.any(data != 0, axis=3)
    tens = np.zeros(data.shape[:3] + (3, 3))
    for vol, name in enumerate(comps):
        a, b = _COMP_INDEX[name]
        tens[..., a, b] = data[..., vol]
        tens[..., b, a] = data[..., vol]
    tens[~valid] = 0.0

    if frame == "voxel":
        r = _rotation_of(affine)
        if not np.allclose(r, np.eye(3), atol=1e-9):
            tens = np.einsum("ab,...bc,dc->...ad", r, tens, r)
    elif frame != "world":
        raise VtaError(f"{what}: frame must be 'voxel' or 'world', got {frame!r}")

    n_clamped = 0
    if valid.any():
        t = tens[valid]
        w, v = np.linalg.eigh(t)
        n_valid = len(t)
        n_indefinite = int(np.count_nonzero(w[:, 0] <= 0))
        if n_indefinite > DTI_MAX_INDEFINITE_FRACTION * n_valid:
            raise VtaError(f"{what}: {n_indefinite} of {n_valid} tensors ({n_indefinite / n_valid:.1%}) are not "
                           f"positive definite, more than the {DTI_MAX_INDEFINITE_FRACTION:.0%} that noisy fits "
                           "explain; check the component order (dti_order) and the units")
        bad = w[:, 0] < D_FLOOR_MM2_PER_S
        n_clamped = int(bad.sum())
        if n_clamped:
            w = np.maximum(w, D_FLOOR_MM2_PER_S)
            t[bad] = np.einsum("nab,nb,ncb->nac", v[bad], w[bad], v[bad])
            tens[valid] = t
            log.warning("%s: %d of %d tensors were not positive definite; eigenvalues clamped to %.3g mm^2/s",
                        what, n_clamped, int(valid.sum()), D_FLOOR_MM2_PER_S)
        md = float(np.median(np.trace(t, axis1=1, axis2=2))) / 3.0
        if not 1e-5 <= md <= 1e-2:
            log.warning("%s: median mean diffusivity %.3g is not a typical value in mm^2/s (~0.7e-3); "
                        "check scale_to_mm2_per_s", what, md)
    else:
        log.warning("%s: no voxel holds tensor data", what)
    return TensorField(tens, valid, affine, str(p), n_clamped)


def _parse_order(order: str | Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(order, str):
        key = order.lower()
        if key not in DTI_ORDERS:
            raise VtaError(f"{what}: unknown component order '{order}'{_suggest(key, list(DTI_ORDERS))} "
                           f"(use one of {', '.join(DTI_ORDERS)} or six names like 'xx', 'xy')")
        return DTI_ORDERS[key]
    comps = tuple(str(c).lower() for c in order)
    canon = {_COMP_INDEX.get(c) for c in comps}
    if len(comps) != 6 or None in canon or len(canon) != 6:
        raise VtaError(f"{what}: component order {list(order)} must name each of xx, yy, zz, xy, xz, yz once")
    return comps


def _eig_clamped(tensors: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    w, v = np.linalg.eigh(np.asarray(tensors, float))
    return np.maximum(w, floor), v


def _compose(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("...ab,...b,...cb->...ac", v, w, v)


def tuch_conductivity(d_mm2_per_s: np.ndarray, k_S_s_per_mm3: float = TUCH_K_S_S_PER_MM3,
                      d_eps_mm2_per_s: float = TUCH_D_EPS_MM2_PER_S,
                      floor_S_per_m: float = SIGMA_FLOOR_S_PER_M) -> np.ndarray:
    """Tuch et al. 2001 linear mapping of diffusion tensors to conductivity tensors.

    ``sigma = k (D - d_eps I)`` on the eigenvalues, i.e. ``sigma_i = k (d_i - d_eps)``,
    with ``k = 0.844 S s/mm^3`` and ``d_eps = 0.124e-3 mm^2/s`` (FACTS s3.4).
    Eigenvalues below ``floor_S_per_m`` are clamped to it (positive definite result).

    Parameters
    ----------
    d_mm2_per_s : ndarray (..., 3, 3)
        Diffusion tensors (mm^2/s).

    Returns
    -------
    ndarray (..., 3, 3)
        Conductivity tensors in **S/m** (``k d`` is in S/mm; times 1e3).
    """
    w, v = np.linalg.eigh(np.asarray(d_mm2_per_s, float))
    s = np.maximum(k_S_s_per_mm3 * 1e3 * (w - d_eps_mm2_per_s), floor_S_per_m)
    return _compose(s, v)


def normalized_conductivity(d_mm2_per_s: np.ndarray, sigma_S_per_m: float | np.ndarray) -> np.ndarray:
    """Normalised-volume mapping (Guellmar et al. 2010): ``sigma = sigma_iso D / cbrt(det D)``.

    The result has the eigenvectors and anisotropy of ``D`` and ``det = sigma_iso^3``
    (the geometric mean of its eigenvalues is the isotropic conductivity).

    Parameters
    ----------
    d_mm2_per_s : ndarray (..., 3, 3)
        Diffusion tensors (mm^2/s); eigenvalues are clamped to ``D_FLOOR_MM2_PER_S``.
    sigma_S_per_m : float or ndarray (...)
        Isotropic conductivity of the tissue (S/m), broadcast over the tensors.

    Returns
    -------
    ndarray (..., 3, 3)
        Conductivity tensors (S/m).
    """
    w, v = _eig_clamped(d_mm2_per_s, D_FLOOR_MM2_PER_S)
    gmean = np.cbrt(np.prod(w, axis=-1))
    s = w / gmean[..., None] * np.asarray(sigma_S_per_m, float)[..., None]
    return _compose(s, v)


# --- per-element conductivity ----------------------------------------------------------

_SYM4 = (0.5854101966249685, 0.1381966011250105)  # symmetric 4-point rule on a tetrahedron


def tet_sample_points(p: np.ndarray, t: np.ndarray, n: int, elements: np.ndarray | None = None) -> np.ndarray:
    """Deterministic sample points inside tetrahedra (world mm), shape (n, M, 3).

    ``n = 1``: the centroid; ``n = 4``: the symmetric 4-point quadrature points;
    ``n = 5``: centroid + those 4; other ``n``: centroid + ``n - 1`` barycentric
    points drawn from a fixed-seed Dirichlet(1, 1, 1, 1) (the same for every element).

    Parameters
    ----------
    p : ndarray (3, N) or (N, 3)
        Node coordinates (mm); skfem's ``mesh.p`` is (3, N).
    t : ndarray (4, M) or (M, 4)
        Tetrahedra as node indices; skfem's ``mesh.t`` is (4, M).
    n : int
        Number of points per element (>= 1).
    elements : ndarray of int, optional
        Subset of elements (indices into the columns of ``t``).
    """
    pp, tt = _nodes_tets(p, t)
    if elements is not None:
        tt = tt[np.asarray(elements, dtype=np.int64)]
    if n < 1:
        raise VtaError(f"samples_per_element must be >= 1, got {n}")
    bary = _barycentric_set(int(n))  # (n, 4)
    verts = pp[tt]  # (M, 4, 3)
    return np.einsum("sv,mvc->smc", bary, verts)


def _barycentric_set(n: int) -> np.ndarray:
    c = np.full((1, 4), 0.25)
    if n == 1:
        return c
    a, b = _SYM4
    sym = np.full((4, 4), b) + np.eye(4) * (a - b)
    if n == 4:
        return sym
    if n == 5:
        return np.vstack([c, sym])
    rng = np.random.default_rng(12345)
    return np.vstack([c, rng.dirichlet(np.ones(4), size=n - 1)])


def _nodes_tets(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (N, 3) and tets (M, 4) from skfem layout (3, N)/(4, M) or the transposes.

    Square (ambiguous) arrays are read in skfem layout.
    """
    pp = np.asarray(p, float)
    tt = np.asarray(t)
    if pp.ndim != 2 or 3 not in pp.shape:
        raise VtaError(f"mesh nodes must have shape (3, N) or (N, 3), got {pp.shape}")
    pp = pp.T if pp.shape[0] == 3 else pp
    if tt.ndim != 2 or 4 not in tt.shape:
        raise VtaError(f"tetrahedra must have shape (4, M) or (M, 4), got {tt.shape}")
    tt = tt.T if tt.shape[0] == 4 else tt
    if not np.issubdtype(tt.dtype, np.integer) or tt.min(initial=0) < 0 or tt.max(initial=-1) >= len(pp):
        raise VtaError("tetrahedra must hold integer node indices into the node array")
    return np.ascontiguousarray(pp), tt.astype(np.int64)


def _classes(names: Sequence[str] | None) -> np.ndarray:
    if names is None:
        return np.array([], dtype=np.int64)
    codes = []
    lower = {k.lower(): v for k, v in TISSUE_CLASSES.items()}
    for n in names:
        if isinstance(n, (int, np.integer)):
            codes.append(int(n))
        elif str(n).lower() in lower:
            codes.append(lower[str(n).lower()])
        else:
            raise VtaError(f"unknown tissue class '{n}'{_suggest(str(n), list(TISSUE_CLASSES))} "
                           f"(use {', '.join(TISSUE_CLASSES)})")
    return np.array(codes, dtype=np.int64)


def _point_sigma(points: np.ndarray, anatomy: Any, model: ConductivityModel, dti: TensorField | None,
                 dti_mapping: str, dti_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Scalar sigma (N,) S/m at points and, with DTI, tensors (N, 3, 3) S/m."""
    if anatomy is None:
        labels = np.zeros(len(points), np.uint8)
    else:
        labels = anatomy.tissue_at(points)
    sig = model.sigma_for_labels(labels)
    if dti is None:
        return sig, None
    tens = sig[:, None, None] * np.eye(3)
    d, ok = dti.tensor_at(points)
    use = ok & np.isin(labels.astype(np.int64), dti_codes)
    if use.any():
        if dti_mapping == "normalized":
            tens[use] = normalized_conductivity(d[use], sig[use])
        else:
            tens[use] = tuch_conductivity(d[use])
    return sig, tens


def element_conductivity(centroids_mm: np.ndarray, anatomy: Any, model: ConductivityModel,
                         dti: TensorField | None = None, encapsulation_mask: np.ndarray | None = None,
                         encapsulation_sigma: float | None = None, *, dti_mapping: str = "normalized",
                         dti_classes: Sequence[str] | None = ("WM",), p: np.ndarray | None = None,
                         t: np.ndarray | None = None, samples_per_element: int = 1,
                         subsample_min_size_mm: float | None = None) -> np.ndarray:
    """Conductivity of every mesh element, **in S/mm** (for the mm-based FEM).

    .. warning::
       The result is in **S/mm** = 1e-3 S/m (``sigma_S_per_mm = sigma_S_per_m * 1e-3``),
       the unit the assembly expects so that ``K @ u`` is a current in A with lengths
       in mm and potentials in V. Every input conductivity (``model``,
       ``encapsulation_sigma``) is in S/m.

    Each element takes the tissue class of the nearest voxel of ``anatomy.tissue`` at
    its centroid (class 0 / outside the volume -> ``model.default_S_per_m``). With
    ``samples_per_element > 1`` and the mesh given as ``p``/``t``, elements larger than
    a voxel get the arithmetic mean of the conductivity (scalar or tensor) at several
    barycentric points (see :func:`tet_sample_points`).

    Parameters
    ----------
    centroids_mm : ndarray (M, 3)
        Element centroids in world mm.
    anatomy : Anatomy or None
        Provides ``tissue_at(points_mm)`` (tissue classes) and ``tissue`` (an Image);
        ``None`` = homogeneous tissue at ``model.default_S_per_m``.
    model : ConductivityModel
        Isotropic conductivity per class (S/m).
    dti : TensorField, optional
        World-frame diffusion tensors (:func:`load_dti_tensor`). Where the element's
        class is in ``dti_classes`` and the DTI has data, the element gets a tensor;
        elsewhere ``sigma I``. With ``dti`` the output is always (M, 3, 3).
    encapsulation_mask : ndarray of bool (M,), optional
        Elements of the encapsulation layer around the lead.
    encapsulation_sigma : float, optional
        Encapsulation conductivity (S/m); isotropic even with DTI (FACTS s3.3).
        Defaults to the model's GM value (OSS-DBS default material "Gray matter").
    dti_mapping : {"normalized", "tuch"}
        ``"normalized"`` (default, Guellmar 2010): ``D / cbrt(det D) * sigma_class``;
        ``"tuch"``: Tuch 2001 linear ``k (D - d_eps I)`` (absolute values).
    dti_classes : sequence of str or None
        Tissue classes that use DTI (default WM only, as OSS-DBS's ``WMMasking``).
    p, t : ndarray, optional
        Mesh nodes (3, N) and tetrahedra (4, M) (skfem layout, also transposed),
        needed for ``samples_per_element > 1``.
    samples_per_element : int
        Points per element for large elements (1 = centroid only).
    subsample_min_size_mm : float, optional
        Elements whose longest edge is below this (mm) use the centroid only; default
        the tissue volume's smallest voxel size (1 mm if there is no anatomy).

    Returns
    -------
    ndarray
        (M,) scalars or (M, 3, 3) tensors, **S/mm**.

    Raises
    ------
    VtaError
        Bad shapes (centroids, mask length, mesh), unknown mapping or class names, an
        encapsulation conductivity outside the plausible range (:data:`SIGMA_RANGE_TEXT`)
        where the mask selects elements.
    """
    c = np.asarray(centroids_mm, dtype=float)
    if c.ndim != 2 or c.shape[1] != 3:
        raise VtaError(f"element centroids must have shape (M, 3) in mm, got {c.shape}")
    m = len(c)
    if not np.all(np.isfinite(c)):
        raise VtaError("element centroids contain non-finite values")
    if dti_mapping not in ("normalized", "tuch"):
        raise VtaError(f"unknown DTI mapping '{dti_mapping}' (use 'normalized' or 'tuch')")
    dti_codes = _classes(dti_classes)

    sig, tens = _point_sigma(c, anatomy, model, dti, dti_mapping, dti_codes)

    if samples_per_element > 1:
        if p is None or t is None:
            raise VtaError("samples_per_element > 1 needs the mesh nodes p and tetrahedra t")
        pp, tt = _nodes_tets(p, t)
        if len(tt) != m:
            raise VtaError(f"shape mismatch: {len(tt)} tetrahedra but {m} centroids")
        if subsample_min_size_mm is None:
            subsample_min_size_mm = (float(np.min(anatomy.tissue.voxel_sizes_mm))
                                     if anatomy is not None and hasattr(anatomy, "tissue") else 1.0)
        verts = pp[tt]
        edges = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
        longest = np.max([np.linalg.norm(verts[:, a] - verts[:, b], axis=1) for a, b in edges], axis=0)
        big = np.flatnonzero(longest > subsample_min_size_mm)
        if len(big):
            pts = tet_sample_points(pp, tt, samples_per_element, big)  # (n, B, 3)
            n = pts.shape[0]
            s_sig, s_tens = _point_sigma(pts.reshape(-1, 3), anatomy, model, dti, dti_mapping, dti_codes)
            sig[big] = s_sig.reshape(n, len(big)).mean(axis=0)
            if tens is not None:
                tens[big] = s_tens.reshape(n, len(big), 3, 3).mean(axis=0)
            log.debug("conductivity: %d of %d elements averaged over %d points", len(big), m, n)

    if encapsulation_mask is not None:
        enc = np.asarray(encapsulation_mask)
        if enc.shape != (m,):
            raise VtaError(f"shape mismatch: encapsulation mask has shape {enc.shape}, expected ({m},)")
        enc = enc.astype(bool)
        s_enc = model.gm_S_per_m if encapsulation_sigma is None else encapsulation_sigma
        if enc.any():  # the value is only used (and checked) where there are encapsulated elements
            if not is_plausible_conductivity(s_enc):
                raise VtaError(f"encapsulation conductivity must be a positive number in S/m within the plausible "
                               f"range {SIGMA_RANGE_TEXT}, got {s_enc!r}")
            sig[enc] = float(s_enc)
            if tens is not None:
                tens[enc] = float(s_enc) * np.eye(3)

    out = sig if tens is None else tens
    return out * 1e-3
