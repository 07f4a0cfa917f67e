"""Probes: fixed points, or a fixed volume quadrature, evaluated for many settings.

A setting's field is a weighted sum of the unit solutions, so anything that does not
depend on the weights (where points lie in the mesh, per-element bounds of the unit
fields) can be prepared once and every new setting costs a few array operations. The
live planning app (:mod:`vta.plan`) re-evaluates the VTA volume, the structure overlaps,
the |E| grid and the slices on every slider move this way, with the same numbers as a
fresh ``vta run`` (the same quadrature points, the same arithmetic).

- :class:`LocatedFieldProbe`: points located once in a tetrahedral mesh; E at them for
  any weights from the combined DOF vector (memory ~40 bytes per point).
- :class:`UnitFieldProbe`: any basis; the unit fields at the points are stored per
  contact (12 K bytes per point) and combined.
- :class:`BoundedVolumeProbe`: the mesh-integrated VTA volume of a tetrahedral basis,
  visiting only elements whose bound ``sum_k |V_k| max_e |E_k|`` reaches the threshold
  (exact: every other element lies wholly below it).

Units: points mm, weights (contact potentials) V, fields V/mm, volumes mm^3.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = ["FieldProbe", "VolumeProbe", "LocatedFieldProbe", "UnitFieldProbe", "BoundedVolumeProbe",
           "PlainVolumeProbe"]


class FieldProbe(Protocol):
    """E at fixed points for any setting."""

    n_points: int

    def field(self, weights_V: np.ndarray) -> np.ndarray:
        """E (N, 3) in V/mm at the probe's points; NaN outside tissue."""
        ...

    def norm(self, weights_V: np.ndarray, element_mask: np.ndarray | None = None) -> np.ndarray:
        """|E| (N,) in V/mm; 0 outside tissue. With ``element_mask`` (tetrahedral
        bases: :meth:`BoundedVolumeProbe.candidates`), points in other elements, which
        lie below the threshold of the mask, are not evaluated and read 0."""
        ...


class VolumeProbe(Protocol):
    """The mesh-integrated VTA volume for any setting."""

    def volume_mm3(self, weights_V: np.ndarray, threshold_V_per_mm: float) -> float:
        ...


def _norm(e: np.ndarray) -> np.ndarray:
    n = np.sqrt(np.einsum("ij,ij->i", e, e))
    return np.where(np.isfinite(n), n, 0.0)


class LocatedFieldProbe:
    """Points located once in a :class:`vta.fem.solve.TetFieldBasis`.

    Parameters
    ----------
    basis : TetFieldBasis
    points_mm : ndarray, shape (N, 3)
        World points (mm).
    """

    def __init__(self, basis: Any, points_mm: np.ndarray):
        from .field import gradient_at_located

        self._gradient = gradient_at_located
        self._basis = basis
        pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        self.n_points = len(pts)
        self.elem, self.bary = basis.locator.locate(pts)

    def field(self, weights_V: np.ndarray) -> np.ndarray:
        b = self._basis
        return -self._gradient(self.elem, self.bary, b.dofmap.element_dofs, b.grad_lambda, b.combined(weights_V),
                               b.order)

    def norm(self, weights_V: np.ndarray, element_mask: np.ndarray | None = None) -> np.ndarray:
        if element_mask is None:
            return _norm(self.field(weights_V))
        inside = self.elem >= 0
        keep = np.flatnonzero(inside)[element_mask[self.elem[inside]]]
        out = np.zeros(self.n_points)
        if keep.size:
            b = self._basis
            g = self._gradient(self.elem[keep], self.bary[keep], b.dofmap.element_dofs, b.grad_lambda,
                               b.combined(weights_V), b.order)
            out[keep] = _norm(g)
        return out


class UnitFieldProbe:
    """The unit fields of any :class:`vta.fem.basis.FieldBasis` stored at fixed points.

    Parameters
    ----------
    basis : FieldBasis
    points_mm : ndarray, shape (N, 3)
        World points (mm).
    """

    def __init__(self, basis: Any, points_mm: np.ndarray):
        pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        self.n_points = len(pts)
        eye = np.eye(basis.n_contacts)
        self._unit = np.stack([basis.field_at(pts, eye[k]) for k in range(basis.n_contacts)]).astype(np.float32)

    def field(self, weights_V: np.ndarray) -> np.ndarray:
        w = np.asarray(weights_V, dtype=np.float32).reshape(-1)
        return np.tensordot(w, self._unit, axes=1).astype(np.float64)

    def norm(self, weights_V: np.ndarray, element_mask: np.ndarray | None = None) -> np.ndarray:
        return _norm(self.field(weights_V))


class BoundedVolumeProbe:
    """Exact :meth:`TetFieldBasis.vta_volume_mm3` of any setting, restricted to elements
    that can reach the threshold.

    Within an element ``|E| <= sum_k |V_k| |E_k| <= sum_k |V_k| max_e |E_k|`` (the unit
    maxima are exact: |E_k| is convex on a P1/P2 element and peaks at a vertex), so an
    element whose bound is below the threshold has no sample at or above it and the
    masked integral equals the full one.

    Parameters
    ----------
    basis : TetFieldBasis
    """

    def __init__(self, basis: Any):
        self._basis = basis
        eye = np.eye(basis.n_contacts)
        self._unit_max = np.column_stack([basis.element_field_max(eye[k]) for k in range(basis.n_contacts)])

    def candidates(self, weights_V: np.ndarray, threshold_V_per_mm: float) -> np.ndarray:
        """Elements (bool mask) that may hold |E| >= threshold."""
        return self._unit_max @ np.abs(np.asarray(weights_V, dtype=np.float64)) >= threshold_V_per_mm

    def volume_mm3(self, weights_V: np.ndarray, threshold_V_per_mm: float) -> float:
        mask = self.candidates(weights_V, threshold_V_per_mm)
        if not mask.any():
            return 0.0
        return float(self._basis.vta_volume_mm3(weights_V, threshold_V_per_mm, element_mask=mask))


class PlainVolumeProbe:
    """:meth:`FieldBasis.vta_volume_mm3` as it is (bases where it is already fast)."""

    def __init__(self, basis: Any):
        self._basis = basis

    def candidates(self, weights_V: np.ndarray, threshold_V_per_mm: float) -> None:
        """No element mask (the probes of such bases do not take one)."""
        return None

    def volume_mm3(self, weights_V: np.ndarray, threshold_V_per_mm: float) -> float:
        return float(self._basis.vta_volume_mm3(weights_V, threshold_V_per_mm))
