"""The common MNI voxel grid of a cohort, and its voxel data in chunks.

Every subject image (``vta.nii.gz``: a 0/1 mask; ``efield_norm.nii.gz``: ``|E|`` in V/mm;
each on its own grid, affine in MNI mm) is sampled onto one lattice: voxel centres on the
multiples of ``spacing_mm`` in world mm, axes along +x, +y, +z (RAS). Sampling is by
nearest neighbour: a lattice point takes the value of the subject voxel whose centre is
nearest to it. A point outside a subject's grid counts as outside the VTA, with
``|E| = 0``: the grids of ``vta run`` cover the VTA plus a margin, and the field outside
is taken as negligible.

Because the lattice is fixed, each image is sampled once, when it is read, and only
the lattice points it covers are kept (integer lattice coordinates); the common grid
is the bounding box of all of them. With ``mirror``, left-hemisphere images are
mirrored onto the right (``x -> -x``), exactly, as the lattice is symmetric about
``x = 0``.

:class:`VoxelData` holds a cohort's coverage as a sparse (units x support voxels)
matrix and hands out dense blocks of a few thousand voxels (:meth:`VoxelData.chunks`),
so that memory scales with the VTAs' support, never with N full volumes. E-field
values are read on first use, once per image, at the voxels that the analysis keeps
(covered by at least ``min_n`` units), and stored sparse (float32) too.

:func:`frequency_count` is the VTA frequency map of ``vta batch``
(:func:`vta.studies.batch.frequency_map`), built the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..anatomy.atlas_io import read_nifti
from ..errors import VtaError

__all__ = ["DEFAULT_SPACING_MM", "EFIELD_NIFTI", "Grid", "VTA_NIFTI", "VoxelData", "frequency_count",
           "grid_from_lattice", "mask_lattice_points", "sample_at_lattice"]

log = logging.getLogger(__name__)

#: Voxel size of the common grid (mm).
DEFAULT_SPACING_MM = 1.0
#: The subject files read (written by ``vta run``).
VTA_NIFTI = "vta.nii.gz"
EFIELD_NIFTI = "efield_norm.nii.gz"
#: Lattice points handled at once when a mask is sampled (bounds the temporary memory).
_SLAB_POINTS = 2_000_000
#: Default number of voxels per chunk.
DEFAULT_CHUNK_VOXELS = 4096


@dataclass(frozen=True)
class Grid:
    """A RAS grid whose voxel centres lie on multiples of ``spacing_mm`` (world mm).

    Attributes
    ----------
    shape : tuple of int
        ``(nx, ny, nz)``.
    origin : ndarray of int, shape (3,)
        Lattice coordinates of voxel ``(0, 0, 0)`` (its centre is ``origin * spacing_mm`` mm).
    spacing_mm : float
        Voxel size (mm).
    """

    shape: tuple[int, int, int]
    origin: np.ndarray
    spacing_mm: float

    @property
    def affine(self) -> np.ndarray:
        """Voxel index -> world mm (4 x 4)."""
        affine = np.diag([self.spacing_mm] * 3 + [1.0])
        affine[:3, 3] = self.origin * self.spacing_mm
        return affine

    @property
    def size(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape))

    def flat(self, lattice: np.ndarray) -> np.ndarray:
        """Flat (C-order) voxel indices of lattice points ``(M, 3)`` inside the grid."""
        ijk = np.asarray(lattice, dtype=np.int64) - self.origin
        return np.ravel_multi_index(tuple(ijk.T), self.shape).astype(np.int64)

    def lattice(self, flat: np.ndarray) -> np.ndarray:
        """Lattice coordinates ``(M, 3)`` of flat voxel indices."""
        return np.stack(np.unravel_index(np.asarray(flat, dtype=np.int64), self.shape), axis=1) + self.origin

    def world(self, flat: np.ndarray) -> np.ndarray:
        """World (MNI) mm ``(M, 3)`` of the centres of flat voxel indices."""
        return self.lattice(flat) * self.spacing_mm

    def volume(self, values: np.ndarray, flat: np.ndarray, fill: float = np.nan,
               dtype: type | np.dtype = np.float32) -> np.ndarray:
        """A dense volume: ``values`` at ``flat``, ``fill`` elsewhere."""
        out = np.full(self.size, fill, dtype=dtype)
        out[np.asarray(flat, dtype=np.int64)] = values
        return out.reshape(self.shape)


def _read_3d(path: str | Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(data, affine)`` of a 3D NIfTI, checked by :func:`vta.anatomy.atlas_io.read_nifti`."""
    img = read_nifti(path, 3, what)
    return img.data, img.affine


def mask_lattice_points(mask: np.ndarray, affine: np.ndarray, spacing_mm: float,
                        mirror: bool = False) -> np.ndarray:
    """Lattice points covered by a mask, by nearest neighbour.

    Parameters
    ----------
    mask : ndarray of bool, shape (I, J, K)
        True inside (e.g. a VTA).
    affine : ndarray (4, 4)
        The mask's voxel index -> world mm.
    spacing_mm : float
        Lattice spacing (mm).
    mirror : bool
        Mirror the result onto the other hemisphere (``x -> -x``).

    Returns
    -------
    ndarray of int64, shape (M, 3)
        Lattice coordinates ``k`` (world ``k * spacing_mm`` mm) whose nearest mask voxel
        is inside.
    """
    mask = np.asarray(mask, dtype=bool)
    ijk = np.argwhere(mask)
    if not len(ijk):
        return np.zeros((0, 3), dtype=np.int64)
    lo_ijk, hi_ijk = ijk.min(axis=0), ijk.max(axis=0)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    box = np.where(corners == 0, lo_ijk, hi_ijk).astype(float)
    world = box @ affine[:3, :3].T + affine[:3, 3]
    half = 0.5 * np.abs(affine[:3, :3]).sum(axis=1)  # half a voxel along each world axis (a bound)
    a = np.floor((world.min(axis=0) - half) / spacing_mm).astype(np.int64)
    b = np.ceil((world.max(axis=0) + half) / spacing_mm).astype(np.int64)
    inv = np.linalg.inv(affine)
    shape = np.array(mask.shape)
    n_yz = int((b[1] - a[1] + 1) * (b[2] - a[2] + 1))
    step = max(1, _SLAB_POINTS // max(n_yz, 1))
    ys, zs = np.arange(a[1], b[1] + 1), np.arange(a[2], b[2] + 1)
    hits = []
    for x0 in range(int(a[0]), int(b[0]) + 1, step):
        xs = np.arange(x0, min(x0 + step, int(b[0]) + 1))
        grid = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), axis=-1).reshape(-1, 3)
        src = np.floor((grid * spacing_mm) @ inv[:3, :3].T + inv[:3, 3] + 0.5).astype(np.int64)
        inside = np.all((src >= 0) & (src < shape), axis=1)
        hit = np.zeros(len(grid), dtype=bool)
        hit[inside] = mask[src[inside, 0], src[inside, 1], src[inside, 2]]
        hits.append(grid[hit])
    points = np.concatenate(hits) if hits else np.zeros((0, 3), dtype=np.int64)
    if mirror:
        points = points * np.array([-1, 1, 1])
    return points


def sample_at_lattice(data: np.ndarray, affine: np.ndarray, lattice: np.ndarray, spacing_mm: float,
                      mirror: bool = False) -> np.ndarray:
    """Values of an image at lattice points (nearest neighbour; 0 outside its grid).

    Parameters
    ----------
    data : ndarray, shape (I, J, K)
    affine : ndarray (4, 4)
        Voxel index -> world mm.
    lattice : ndarray of int, shape (M, 3)
        Lattice coordinates (world ``k * spacing_mm`` mm).
    spacing_mm : float
    mirror : bool
        Sample the mirror image (``x -> -x``): the value at ``(x, y, z)`` is the image's at ``(-x, y, z)``.

    Returns
    -------
    ndarray of float32, shape (M,)
    """
    world = np.asarray(lattice, dtype=float) * spacing_mm
    if mirror:
        world[:, 0] = -world[:, 0]
    inv = np.linalg.inv(affine)
    src = np.floor(world @ inv[:3, :3].T + inv[:3, 3] + 0.5).astype(np.int64)
    inside = np.all((src >= 0) & (src < np.array(data.shape)), axis=1)
    out = np.zeros(len(world), dtype=np.float32)
    out[inside] = data[src[inside, 0], src[inside, 1], src[inside, 2]]
    return out


def grid_from_lattice(points: Sequence[np.ndarray], spacing_mm: float) -> Grid:
    """The smallest grid holding every lattice point (one voxel at the origin when there is none)."""
    nonempty = [p for p in points if len(p)]
    if not nonempty:
        return Grid((1, 1, 1), np.zeros(3, dtype=np.int64), float(spacing_mm))
    lo = np.min([p.min(axis=0) for p in nonempty], axis=0).astype(np.int64)
    hi = np.max([p.max(axis=0) for p in nonempty], axis=0).astype(np.int64)
    return Grid(tuple(int(n) for n in hi - lo + 1), lo, float(spacing_mm))


def _check_spacing(spacing_mm: float) -> float:
    try:
        spacing = float(spacing_mm)
    except (TypeError, ValueError):
        raise VtaError(f"grid spacing must be a number of mm, got {spacing_mm!r}") from None
    if not (np.isfinite(spacing) and spacing > 0):
        raise VtaError(f"grid spacing must be positive (mm), got {spacing_mm}")
    return spacing


def frequency_count(images: Sequence[str | Path], spacing_mm: float = DEFAULT_SPACING_MM
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Count, per voxel of the common grid, how many masks cover it (each read once).

    Parameters
    ----------
    images : sequence of paths
        Masks (NIfTI, non-zero = inside), each with its own affine (mm).
    spacing_mm : float
        Voxel size of the common grid (mm).

    Returns
    -------
    count : ndarray of uint16, shape (nx, ny, nz)
    affine : ndarray (4, 4)
        Voxel index -> world mm.
    """
    spacing = _check_spacing(spacing_mm)
    points = []
    for path in images:
        data, affine = _read_3d(path, "VTA mask")
        points.append(mask_lattice_points(data > 0, affine, spacing))
    grid = grid_from_lattice(points, spacing)
    count = np.zeros(grid.size, dtype=np.uint16)
    for p in points:
        if len(p):
            np.add.at(count, grid.flat(p), 1)
    return count.reshape(grid.shape), grid.affine


def _side(folder: Path) -> str:
    """``"L"`` or ``"R"`` from a batch subject folder name ``<subject>_<hemi>``."""
    return "L" if folder.name.endswith("_L") else "R"


class VoxelData:
    """A cohort's images on the common grid: sparse coverage, chunked dense blocks.

    Build it with :meth:`from_cohort` (or :meth:`from_folders`). The *support* is the
    set of voxels covered by at least one unit's VTA; the *N-map* counts the units
    covering each voxel.

    Attributes
    ----------
    grid : Grid
    units : list of str
    support : ndarray of int64, shape (S,)
        Flat grid indices of the support, sorted.
    counts : ndarray of int32, shape (S,)
        Units covering each support voxel.
    """

    def __init__(self, grid: Grid, units: Sequence[str], folders: Sequence[Sequence[Path]], support: np.ndarray,
                 coverage, mirror: bool = False) -> None:
        self.grid = grid
        self.units = list(units)
        self.folders = [[Path(f) for f in fs] for fs in folders]
        self.mirror = bool(mirror)
        self.support = np.asarray(support, dtype=np.int64)
        self._coverage = coverage.tocsc()  # (N, S) float32, 1 = covered
        self.counts = np.asarray((self._coverage > 0).sum(axis=0)).ravel().astype(np.int32)
        self._efield: tuple[np.ndarray, object] | None = None  # (support positions, csc (N, len))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cohort(cls, cohort, spacing_mm: float = DEFAULT_SPACING_MM) -> "VoxelData":
        """Read every unit's ``vta.nii.gz`` once (see the module docstring).

        Parameters
        ----------
        cohort : vta.cohort.table.Cohort
        spacing_mm : float
            Voxel size of the common grid (mm).
        """
        return cls.from_folders(cohort.subjects, cohort.folders, spacing_mm, cohort.mirror)

    @classmethod
    def from_folders(cls, units: Sequence[str], folders: Sequence[Sequence[Path]],
                     spacing_mm: float = DEFAULT_SPACING_MM, mirror: bool = False) -> "VoxelData":
        """Like :meth:`from_cohort`, from unit names and their subject folders."""
        import scipy.sparse as sp

        spacing = _check_spacing(spacing_mm)
        per_unit = []
        for unit_folders in folders:
            pts = []
            for folder in unit_folders:
                data, affine = _read_3d(Path(folder) / VTA_NIFTI, "VTA")
                pts.append(mask_lattice_points(data > 0, affine, spacing, mirror and _side(Path(folder)) == "L"))
            pts = np.unique(np.concatenate(pts), axis=0) if pts else np.zeros((0, 3), np.int64)
            per_unit.append(pts)
        grid = grid_from_lattice(per_unit, spacing)
        flats = [grid.flat(p) if len(p) else np.zeros(0, np.int64) for p in per_unit]
        support = np.unique(np.concatenate(flats)) if flats else np.zeros(0, np.int64)
        rows = np.concatenate([np.full(len(f), i, dtype=np.int64) for i, f in enumerate(flats)]) if flats else []
        cols = np.searchsorted(support, np.concatenate(flats)) if flats else []
        coverage = sp.csc_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(per_unit), len(support)))
        obj = cls(grid, units, folders, support, coverage, mirror)
        n_empty = sum(len(f) == 0 for f in flats)
        if n_empty:
            log.info("%d of %d units have an empty VTA", n_empty, len(flats))
        return obj

    # ------------------------------------------------------------------ queries
    @property
    def n_units(self) -> int:
        """Number of units N."""
        return len(self.units)

    def n_map(self) -> np.ndarray:
        """Dense int32 volume: units whose VTA covers each voxel."""
        return self.grid.volume(self.counts, self.support, fill=0, dtype=np.int32)

    def unit_voxels(self, i: int) -> np.ndarray:
        """Flat grid indices of the voxels that unit ``i``'s VTA covers (sorted)."""
        row = self._coverage[int(i), :].tocoo()
        return np.sort(self.support[row.col[row.data > 0]])

    def coverage_mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of per-unit ``values`` (N,) over the units covering each support voxel (S,)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.asarray(self._coverage.T @ np.asarray(values, dtype=np.float64)).ravel()
            return np.where(self.counts > 0, total / np.maximum(self.counts, 1), np.nan)

    def positions(self, kind: str = "vta", min_n: int = 1) -> np.ndarray:
        """Positions (into :attr:`support`) of the voxels analysed with ``min_n``.

        ``kind="vta"``: covered by at least ``max(min_n, 2)`` units and not covered by at
        least 2 (a two-group comparison needs both groups). ``kind="efield"``: covered by
        at least ``min_n`` units' VTAs.
        """
        _check_kind(kind)
        if kind == "vta":
            keep = (self.counts >= max(int(min_n), 2)) & (self.n_units - self.counts >= 2)
        else:
            keep = self.counts >= max(int(min_n), 1)
        return np.flatnonzero(keep)

    def chunks(self, kind: str = "vta", min_n: int = 1, chunk_voxels: int = DEFAULT_CHUNK_VOXELS
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Dense blocks of the analysed voxels.

        Yields
        ------
        flat : ndarray of int64, shape (S_c,)
            Flat grid indices of the chunk's voxels.
        X : ndarray of float32, shape (N, S_c)
            ``kind="vta"``: 1 where the unit's VTA covers the voxel, else 0;
            ``kind="efield"``: ``|E|`` (V/mm).
        """
        pos = self.positions(kind, min_n)
        matrix, col = self._matrix_for(kind, pos, min_n)
        step = max(1, int(chunk_voxels))
        for a in range(0, len(pos), step):
            cols = col[a:a + step]
            yield self.support[pos[a:a + step]], np.asarray(matrix[:, cols].toarray(), dtype=np.float32)

    def matrix(self, kind: str = "vta", min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(flat, X)`` for all analysed voxels at once (prediction; N x S float32)."""
        pos = self.positions(kind, min_n)
        matrix, col = self._matrix_for(kind, pos, min_n)
        return self.support[pos], np.asarray(matrix[:, col].toarray(), dtype=np.float32)

    def _matrix_for(self, kind: str, pos: np.ndarray, min_n: int):
        """The sparse matrix holding ``pos`` and the columns of ``pos`` in it."""
        if kind == "vta":
            return self._coverage, pos
        held, matrix = self._efield_matrix(pos)
        return matrix, np.searchsorted(held, pos)

    def _efield_matrix(self, pos: np.ndarray):
        """E-field values at support positions ``pos`` (read once per image; cached, and
        reused while later requests ask for a subset of what was read)."""
        import scipy.sparse as sp

        if self._efield is not None and np.all(np.isin(pos, self._efield[0])):
            return self._efield
        self._efield = None  # free the old one before reading again
        lattice = self.grid.lattice(self.support[pos])
        rows, cols, vals = [], [], []
        for i, unit_folders in enumerate(self.folders):
            values = np.zeros(len(pos), dtype=np.float32)
            for folder in unit_folders:
                data, affine = _read_3d(Path(folder) / EFIELD_NIFTI, "E-field")
                v = sample_at_lattice(data, affine, lattice, self.grid.spacing_mm,
                                      self.mirror and _side(Path(folder)) == "L")
                values = np.maximum(values, np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0))
            nz = np.flatnonzero(values)
            rows.append(np.full(len(nz), i, dtype=np.int64))
            cols.append(nz)
            vals.append(values[nz])
        matrix = sp.csc_matrix((np.concatenate(vals) if vals else np.zeros(0, np.float32),
                                (np.concatenate(rows) if rows else [], np.concatenate(cols) if cols else [])),
                               shape=(self.n_units, len(pos)), dtype=np.float32)
        self._efield = (np.asarray(pos), matrix)
        log.info("E-field read at %d voxels of %d units (%.1f MB sparse)", len(pos), self.n_units,
                 (matrix.data.nbytes + matrix.indices.nbytes) / 1e6)
        return self._efield

    def missing_efield(self) -> list[Path]:
        """The units' ``efield_norm.nii.gz`` files that are missing (empty: all there)."""
        return [Path(f) / EFIELD_NIFTI for fs in self.folders for f in fs if not (Path(f) / EFIELD_NIFTI).is_file()]


def _check_kind(kind: str) -> None:
    if kind not in ("vta", "efield"):
        raise VtaError(f"voxel data kind must be 'vta' or 'efield', got {kind!r}")
