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

User anatomies come from NIfTI files (:meth:`Anatomy.from_files`, readers in
:mod:`vta.anatomy.atlas_io`). The embedded default anatomy (MNI152 template, HCPex or
AAL3 labels, a derived ALIC) is built and cached by :mod:`vta.anatomy.default`.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atlas_io import (BACKGROUND, BLOOD, CSF, GM, TISSUE_CLASSES, WM, Image, Structure, _label_structures,
                       _probabilistic_structures, _suggest, load_label_atlas, load_probabilistic_atlas,
                       load_tissue_segmentation, read_label_table, read_nifti)
from ..errors import VtaError

__all__ = [
    "BACKGROUND", "BLOOD", "CSF", "GM", "WM", "TISSUE_CLASSES",
    "Anatomy", "Image", "Structure",
    "load_label_atlas", "load_probabilistic_atlas",
    "load_tissue_segmentation",
]

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
