"""Export a solved setting on its finite-element mesh as a VTK unstructured grid (.vtu).

3D bases give the tetrahedral mesh in world mm; axisymmetric bases give the meridian
half-plane (the (r, z) triangle mesh placed in world space along the lead's local +x
axis), which holds the whole solution of an axisymmetric case.
Point data: ``potential_V``; cell data: ``E_norm_V_per_mm`` at element centroids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["setting_to_vtu"]


def setting_to_vtu(basis, weights_V: np.ndarray, path: str | Path) -> Path:
    """Write the potential and |E| of one setting on the basis' mesh.

    Parameters
    ----------
    basis : FieldBasis
        ``TetFieldBasis`` or ``AxisymmetricBasis``.
    weights_V : ndarray, shape (K,)
        Contact potentials (V) of the setting.
    path : str or Path
        Output ``.vtu`` file.
    """
    import pyvista as pv

    points, cells, kind = basis.mesh_arrays()
    cell_type = pv.CellType.TRIANGLE if kind == "triangle" else pv.CellType.TETRA
    centroids = points[cells].mean(axis=1)
    grid = pv.UnstructuredGrid({cell_type: cells}, points)
    grid.point_data["potential_V"] = basis.potential_at(points, weights_V)
    grid.cell_data["E_norm_V_per_mm"] = np.linalg.norm(basis.field_at(centroids, weights_V), axis=1)
    path = Path(path)
    grid.save(str(path))
    return path
