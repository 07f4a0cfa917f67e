"""Diffusion tensor images for anisotropic conductivity: loading and DTI -> sigma mappings.

Units
-----
* Diffusion tensors are in **mm^2/s** (FSL ``dtifit`` and MRtrix ``dwi2tensor`` write
  mm^2/s; typical white-matter mean diffusivity ~0.7e-3 mm^2/s).
* Conductivity tensors are in **S/m**; lengths in mm (world / MNI space).

Sources (numbers only; the code here is written from the formulas)
--------------------------------------------------------------------
* Tuch DS et al., *PNAS* 98:11697 (2001): linear fit sigma = k (d - d_eps),
  k = 0.844 S s/mm^3, d_eps = 0.124e-3 mm^2/s.
* Guellmar D, Haueisen J, Reichenbach JR, *NeuroImage* 51:145 (2010): normalised volume
  (unit-determinant) mapping.
* Both as implemented in OSS-DBS (Lead-DBS ``ext_libs/OSS-DBS/MRI_DTI_processing/
  DTI_scaling.py``), which also bounds the mapped eigenvalues below by 1/20 of
  Gabriel's WM conductivity at 10 Hz (0.027512 S/m; Gabriel et al. 1996).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atlas_io import Image, _suggest, check_affine
from ..errors import VtaError

__all__ = [
    "DTI_MAX_INDEFINITE_FRACTION",
    "DTI_ORDERS",
    "D_FLOOR_MM2_PER_S",
    "SIGMA_FLOOR_S_PER_M",
    "TUCH_D_EPS_MM2_PER_S",
    "TUCH_K_S_S_PER_MM3",
    "TensorField",
    "load_dti_tensor",
    "normalized_conductivity",
    "tuch_conductivity",
]

log = logging.getLogger(__name__)

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
#: Lower bound for mapped conductivity eigenvalues (S/m): WM at 10 Hz (Gabriel) / 20, as OSS-DBS.
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
    with ``k = 0.844 S s/mm^3`` and ``d_eps = 0.124e-3 mm^2/s`` (Tuch et al. 2001).
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
