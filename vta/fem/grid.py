"""Axis-aligned voxel grids in world mm that carry their own affine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VtaError

__all__ = ["VoxelGrid"]

#: Refuse grids above this many voxels (memory: ~ 40 bytes per voxel while evaluating).
MAX_VOXELS = 60_000_000


@dataclass(frozen=True)
class VoxelGrid:
    """A regular grid of voxel centres.

    Attributes
    ----------
    origin_mm : ndarray, shape (3,)
        World position of voxel (0, 0, 0)'s centre (mm).
    spacing_mm : float
        Voxel edge length (mm).
    shape : tuple of int
        Number of voxels along world x, y, z.
    """

    origin_mm: np.ndarray
    spacing_mm: float
    shape: tuple[int, int, int]

    @classmethod
    def around(cls, lo_mm: np.ndarray, hi_mm: np.ndarray, spacing_mm: float) -> "VoxelGrid":
        """Smallest grid with the given spacing covering the box [lo, hi] (mm)."""
        lo, hi = np.asarray(lo_mm, float), np.asarray(hi_mm, float)
        n = np.maximum(np.ceil((hi - lo) / spacing_mm).astype(int) + 1, 1)
        if int(np.prod(n)) > MAX_VOXELS:
            raise VtaError(
                f"voxel grid of {n.tolist()} voxels at {spacing_mm} mm is too large; "
                "increase output.grid_spacing_mm or reduce output.grid_margin_mm"
            )
        center = 0.5 * (lo + hi)
        origin = center - 0.5 * (n - 1) * spacing_mm
        return cls(origin, float(spacing_mm), tuple(int(v) for v in n))

    @property
    def n_voxels(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel (mm^3)."""
        return self.spacing_mm**3

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-index -> world-mm affine (NIfTI convention)."""
        a = np.eye(4)
        a[:3, :3] *= self.spacing_mm
        a[:3, 3] = self.origin_mm
        return a

    def points(self) -> np.ndarray:
        """Voxel centres, shape (nx*ny*nz, 3), in C order of (x, y, z) indices (mm)."""
        axes = [self.origin_mm[i] + self.spacing_mm * np.arange(self.shape[i]) for i in range(3)]
        X, Y, Z = np.meshgrid(*axes, indexing="ij")
        return np.column_stack([X.ravel(), Y.ravel(), Z.ravel()])
