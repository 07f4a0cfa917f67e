"""Tissue conductivity of the FEM mesh: sigma per element from classes, DTI, encapsulation.

:func:`element_conductivity` gives every mesh element its conductivity: the isotropic
value of its tissue class (:class:`~vta.anatomy.conductivity.ConductivityModel`), a
tensor from diffusion data in the DTI classes (:mod:`vta.anatomy.dti`), and the
encapsulation layer's value around the lead. Each element takes the value at its
centroid (what :meth:`vta.scene.Scene.element_sigma_S_per_mm` and so every run uses);
on request (``samples_per_element > 1`` with the mesh) elements larger than a voxel
average it over several points instead (:func:`tet_sample_points`; on the NAc case with
a 3389 this lowers the impedance by 0.16-0.2 %).

The Cole-Cole model, presets and plausible range live in :mod:`vta.anatomy.conductivity`,
the tensor images and mappings in :mod:`vta.anatomy.dti`; their public names are
re-exported here.

Units
-----
* Conductivities at this module's interface are in **S/m** (``*_S_per_m``), except
  :func:`element_conductivity`, which returns **S/mm** for the mm-based FEM
  (``sigma_S_per_mm = sigma_S_per_m * 1e-3``).
* Lengths in mm (world / MNI space).

Sources
-------
* Encapsulation: always isotropic, also with DTI, and by default grey matter, as in
  OSS-DBS v2 (documentation "Materials"; ``utils/settings.py``).
* DTI only in white matter by default, as OSS-DBS's ``WMMasking``.

Tissue classes are those of :mod:`vta.anatomy.atlas_io`: 0 background/unknown, 1 GM, 2 WM,
3 CSF, 4 blood.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .atlas_io import TISSUE_CLASSES, _suggest
from .conductivity import (COLE_COLE_PARAMETERS, CONDUCTIVITY_PRESETS, EPSILON_0, SIGMA_MAX_S_PER_M,
                           SIGMA_MIN_S_PER_M, SIGMA_RANGE_TEXT, ColeColeParameters, ConductivityModel,
                           cole_cole_conductivity, cole_cole_permittivity, is_plausible_conductivity)
from .dti import (D_FLOOR_MM2_PER_S, DTI_MAX_INDEFINITE_FRACTION, DTI_ORDERS, SIGMA_FLOOR_S_PER_M,
                  TUCH_D_EPS_MM2_PER_S, TUCH_K_S_S_PER_MM3, TensorField, load_dti_tensor, normalized_conductivity,
                  tuch_conductivity)
from ..errors import VtaError

__all__ = [
    "COLE_COLE_PARAMETERS",
    "CONDUCTIVITY_PRESETS",
    "D_FLOOR_MM2_PER_S",
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
        Encapsulation conductivity (S/m); isotropic even with DTI (as OSS-DBS v2).
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
