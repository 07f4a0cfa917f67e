"""The FieldBasis protocol: what every solved field basis offers.

A field basis holds one unit solution per contact (contact k at 1 V, the others at
0 V, the outer boundary at 0 V or insulating) and the conductance matrix ``G``
(``I = G V``). Every stimulation setting is a weighted sum of the unit solutions with
the contact potentials as weights, so a basis answers any setting without a new solve.

Two classes implement it: :class:`vta.fem.solve.TetFieldBasis` (3D tetrahedra: any
lead, anatomy, DTI) and :class:`vta.fem.axisym.AxisymmetricBasis` (the exact (r, z)
model of ring leads in homogeneous tissue). Code that takes a basis uses only this
protocol - never ``hasattr`` to tell them apart.

Units: points in world mm, potentials V, fields V/mm, volumes mm^3, conductance S.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["FieldBasis"]


@runtime_checkable
class FieldBasis(Protocol):
    """Per-contact unit solutions on a mesh (see the module docstring).

    Attributes
    ----------
    n_contacts : int
        K, the number of contacts.
    outer_grounded : bool
        True when the outer boundary is the 0 V return electrode (the case).
    conductance_S : ndarray, shape (K, K)
        ``I_A = G @ V_volts``: currents leaving the contacts into tissue.
    mesh_info : dict
        ``kind``, ``nodes``, ``elements``, ``dofs``, ``order``, ``preset``.
    timings : dict
        Seconds per build phase (``mesh``, ``assemble``, ``solve``, ...).
    """

    n_contacts: int
    outer_grounded: bool
    conductance_S: np.ndarray
    mesh_info: dict
    timings: dict

    def potential_at(self, points_mm: np.ndarray, weights_V: np.ndarray) -> np.ndarray:
        """Potential (N,) in V at world points (N, 3) mm; NaN outside tissue."""
        ...

    def field_at(self, points_mm: np.ndarray, weights_V: np.ndarray) -> np.ndarray:
        """E = -grad u (N, 3) in V/mm at world points (N, 3) mm; NaN outside tissue."""
        ...

    def field_on_grid(self, origin_mm: np.ndarray, spacing_mm: float, shape, weights_V: np.ndarray) -> np.ndarray:
        """E (nx, ny, nz, 3) in V/mm at the voxel centres ``origin + ijk * spacing``;
        NaN outside tissue."""
        ...

    def vta_volume_mm3(self, weights_V: np.ndarray, threshold_V_per_mm: float) -> float:
        """Tissue volume (mm^3) where |E| >= threshold (V/mm), integrated on the mesh."""
        ...

    def volume_samples(self, weights_V: np.ndarray, min_norm_V_per_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """|E| samples (V/mm) and their tissue volumes (mm^3): the quadrature of
        :meth:`vta_volume_mm3`, for every threshold at or above ``min_norm_V_per_mm``."""
        ...

    def boundary_field_max(self, weights_V: np.ndarray) -> float:
        """Largest |E| (V/mm) on the outer boundary of the domain."""
        ...

    def field_probe(self, points_mm: np.ndarray):
        """Fixed world points (N, 3) mm prepared once: ``probe.field(weights_V)`` (N, 3)
        V/mm and ``probe.norm(weights_V)`` for any setting (:mod:`vta.fem.probes`)."""
        ...

    def volume_probe(self):
        """``probe.volume_mm3(weights_V, threshold)`` equal to :meth:`vta_volume_mm3`,
        prepared for many settings (:mod:`vta.fem.probes`)."""
        ...

    def mesh_arrays(self) -> tuple[np.ndarray, np.ndarray, str]:
        """World vertices (N, 3) mm, cells (M, 3 or 4) and the cell kind
        (``"triangle"``: the meridian half-plane of an axisymmetric basis, or
        ``"tetra"``), for export and rendering."""
        ...
