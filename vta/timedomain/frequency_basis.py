"""Frequency-domain field basis: complex unit solutions and admittance per frequency.

With a complex conductivity ``sigma*(w)`` (:mod:`vta.timedomain.dispersive`) the
potential phasor at angular frequency ``w`` solves ``div(sigma*(w) grad u) = 0``; as in
the quasi-static model (:mod:`vta.fem.basis`) every setting is, at each frequency, the
superposition ``u(w) = sum_k V_k(w) u_k(w)`` of unit solutions (contact k at 1 V, the
others at 0 V, the outer boundary at 0 V or insulating), now complex and frequency
dependent, and the contact currents are ``I(w) = Y(w) V(w)`` with the complex symmetric
admittance matrix ``Y`` (S).

:class:`FrequencyBasis` holds the frequencies, ``Y(w)``, the unit solutions, and the
mesh (a real :class:`~vta.fem.basis.FieldBasis` of the same mesh, used for point
location and interpolation only). The unit solutions depend on the conductivities only
through their ratios between regions, so frequencies with equal ratios (e.g. a
homogeneous domain) share one set of solutions ("shapes"): ``solutions[shape_index[i]]``.
The builders are in :mod:`vta.timedomain.frequency_solve`.

Units: points world mm, potentials V, fields V/mm, admittance S, frequencies Hz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import VtaError
from ..fem.stimulation import Setting
from .phasors import PhasorState, resolve_phasors, resolve_with_interface

__all__ = ["FrequencyBasis"]


@dataclass
class FrequencyBasis:
    """Complex unit solutions and admittance matrices at a set of frequencies.

    Attributes
    ----------
    frequencies_hz : ndarray, shape (n_f,)
        Solve frequencies (Hz).
    outer_grounded : bool
        True if the outer boundary is a 0 V return electrode.
    admittance_S : ndarray of complex, shape (n_f, K, K)
        ``Y(w)``: ``I_A = Y @ V_volts``, complex symmetric.
    solutions : ndarray of complex, shape (n_shapes, n_dofs, K)
        Distinct sets of unit solutions (V per V).
    shape_index : ndarray of int, shape (n_f,)
        The set of unit solutions of each frequency.
    mesh_basis : FieldBasis
        A real basis on the same mesh (``AxisymmetricBasis`` or ``TetFieldBasis``)
        that provides location and interpolation; its own unit solutions are zero.
    sigma_S_per_m : dict of str to ndarray
        The complex conductivity (n_f,) S/m of each region or class used.
    mesh_info, timings : dict
        As in the FieldBasis protocol; ``timings`` has "mesh", "assemble", "solve"
        (total, s) and "solve_per_frequency" (s, mean over the solved shapes).
    solver_info : list of dict
        Per solved shape: "frequency_hz", "seconds", "iterations", "residual", "solver".
    """

    frequencies_hz: np.ndarray
    outer_grounded: bool
    admittance_S: np.ndarray
    solutions: np.ndarray
    shape_index: np.ndarray
    mesh_basis: Any
    sigma_S_per_m: dict = field(default_factory=dict)
    mesh_info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    solver_info: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_contacts(self) -> int:
        """K."""
        return int(self.admittance_S.shape[1])

    @property
    def n_frequencies(self) -> int:
        """n_f."""
        return int(self.frequencies_hz.shape[0])

    def unit_solutions(self, i: int) -> np.ndarray:
        """Unit solutions (n_dofs, K), complex, at frequency index i."""
        return self.solutions[self.shape_index[int(i)]]

    # ---- settings -------------------------------------------------------------------

    def resolve(self, setting: Setting, spectrum_values=None) -> PhasorState:
        """Contact phasors of a setting at every frequency (no interface); see
        :func:`vta.timedomain.phasors.resolve_phasors`."""
        return resolve_phasors(setting, self.admittance_S, self.outer_grounded, spectrum_values)

    def resolve_with_interface(self, setting: Setting, interface, contact_areas_mm2,
                               spectrum_values=None) -> PhasorState:
        """Contact phasors with an electrode-tissue interface on every contact (areas
        (K,) mm^2); see :func:`vta.timedomain.phasors.resolve_with_interface`."""
        return resolve_with_interface(setting, self.admittance_S, self.outer_grounded, interface,
                                      contact_areas_mm2, self.frequencies_hz, spectrum_values)

    # ---- fields ---------------------------------------------------------------------

    def _weights(self, weights_V_by_freq) -> np.ndarray:
        w = np.asarray(weights_V_by_freq, dtype=complex)
        if w.ndim == 1 and w.shape[0] == self.n_contacts:
            w = np.broadcast_to(w, (self.n_frequencies, self.n_contacts))
        if w.shape != (self.n_frequencies, self.n_contacts):
            raise VtaError(f"weights must have shape ({self.n_frequencies}, {self.n_contacts}) "
                           f"(contact potential phasors per frequency), got {w.shape}")
        return w

    def dof_values(self, weights_V_by_freq) -> np.ndarray:
        """DOF phasors (n_f, n_dofs) of ``sum_k V_k(w) u_k(w)``."""
        w = self._weights(weights_V_by_freq)
        out = np.empty((self.n_frequencies, self.solutions.shape[1]), dtype=complex)
        for s, U in enumerate(self.solutions):
            fs = np.flatnonzero(self.shape_index == s)
            out[fs] = w[fs] @ U.T
        return out

    def unit_potentials_at(self, points_mm: np.ndarray) -> list[np.ndarray]:
        """Unit-solution potentials at points, one (N, K) complex array per shape."""
        located = _locate(self.mesh_basis, _points(points_mm))
        return [_unit(self.mesh_basis, located, U, False) for U in self.solutions]

    def unit_fields_at(self, points_mm: np.ndarray) -> list[np.ndarray]:
        """Unit-solution fields ``-grad u_k`` (V/mm per V) at points, one (N, K, 3)
        complex array per shape."""
        located = _locate(self.mesh_basis, _points(points_mm))
        return [-_unit(self.mesh_basis, located, U, True) for U in self.solutions]

    def potential_at(self, points_mm: np.ndarray, weights_V_by_freq) -> np.ndarray:
        """Potential phasors (n_f, N) in V at world points (N, 3) mm for contact
        potential phasors (n_f, K); NaN outside the tissue."""
        return self._evaluate(points_mm, weights_V_by_freq, gradient=False)

    def field_at(self, points_mm: np.ndarray, weights_V_by_freq) -> np.ndarray:
        """Field phasors E = -grad u (n_f, N, 3) in V/mm at world points (N, 3) mm;
        NaN outside the tissue."""
        return -self._evaluate(points_mm, weights_V_by_freq, gradient=True)

    def _evaluate(self, points_mm: np.ndarray, weights_V_by_freq, gradient: bool) -> np.ndarray:
        """Points located once; per frequency the weighted DOF vector is formed first,
        so each frequency costs two interpolations (its real and imaginary parts)
        whatever the number of contacts."""
        w = self._weights(weights_V_by_freq)
        pts = _points(points_mm)
        located = _locate(self.mesh_basis, pts)
        out = np.empty((self.n_frequencies, len(pts)) + ((3,) if gradient else ()), dtype=complex)
        for f in range(self.n_frequencies):
            u = self.solutions[self.shape_index[f]] @ w[f]                  # (n_dofs,) complex
            out[f] = _unit(self.mesh_basis, located, u[:, None], gradient)[:, 0]
        return out

    # ---- checks ---------------------------------------------------------------------

    def quasi_static_limit(self, reference: Any, rtol: float = 1e-8) -> dict:
        """Compare every frequency with a real quasi-static basis of the same mesh.

        With purely resistive tissue (frequency-independent real conductivities) every
        frequency's unit solutions and admittance must equal ``reference``'s unit
        solutions and conductance matrix (the same mesh and conductivities).

        Returns
        -------
        dict
            ``admittance`` and ``solutions``: the largest relative deviation over the
            frequencies (max-norm); ``ok``: both <= ``rtol``.
        """
        G = np.asarray(reference.conductance_S, dtype=float)
        U = np.asarray(reference.unit_solutions, dtype=float)
        if U.shape != self.solutions.shape[1:]:
            raise VtaError(f"reference basis has unit solutions of shape {U.shape}, this one "
                           f"{self.solutions.shape[1:]}: not the same mesh")
        dY = float(np.max(np.abs(self.admittance_S - G[None]))) / float(np.max(np.abs(G)))
        dU = max(float(np.max(np.abs(S - U))) for S in self.solutions) / float(np.max(np.abs(U)))
        return {"admittance": dY, "solutions": dU, "ok": bool(dY <= rtol and dU <= rtol)}


def _points(points_mm: np.ndarray) -> np.ndarray:
    pts = np.asarray(points_mm, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise VtaError(f"points_mm must have shape (N, 3), got {pts.shape}")
    return pts


def _locate(b: Any, pts: np.ndarray) -> tuple:
    """Point location in the mesh basis: axisymmetric (local points, r, triangle,
    barycentrics) or tetrahedral (element, barycentrics)."""
    from ..fem.axisym import AxisymmetricBasis

    if isinstance(b, AxisymmetricBasis):  # the builder's own mesh basis: one of the two kinds
        loc = b.placement.to_local(pts)
        r = np.hypot(loc[:, 0], loc[:, 1])
        elem, lam = b.locate_rz(np.column_stack([r, loc[:, 2]]))
        return ("axisym", loc, r, elem, lam)
    elem, bary = b.locator.locate(pts)
    return ("tet", elem, bary)


def _unit(b: Any, located: tuple, U: np.ndarray, gradient: bool) -> np.ndarray:
    """Complex unit values (N, K) or world gradients (N, K, 3) of U (n_dofs, K)."""
    K = U.shape[1]
    real = np.concatenate([U.real, U.imag], axis=1)
    vals = (_axisym_values(b, located, real, gradient) if located[0] == "axisym"
            else _tet_values(b, located, real, gradient))
    return vals[:, :K] + 1j * vals[:, K:]


def _axisym_values(b: Any, located: tuple, U: np.ndarray, gradient: bool) -> np.ndarray:
    from ..fem.axisym_space import _dshape, _shape

    _, loc, r, elem, lam = located
    ok = elem >= 0
    e = elem[ok]
    m = U.shape[1]
    udofs = U[b.elem_dofs[e]]                                             # (n, nb, m)
    if not gradient:
        out = np.full((len(elem), m), np.nan)
        out[ok] = np.einsum("na,nam->nm", _shape(b.order, lam[ok]), udofs)
        return out
    glam, _ = b._geometry_cache()
    dudlam = np.einsum("nak,nam->nmk", _dshape(b.order, lam[ok]), udofs)  # (n, m, 3)
    g = np.einsum("nmk,nkd->nmd", dudlam, glam[e])                        # (n, m, 2): d/dr, d/dz
    rr = r[ok]
    safe = np.where(rr > 0, rr, 1.0)
    cx = np.where(rr > 0, loc[ok, 0] / safe, 0.0)
    cy = np.where(rr > 0, loc[ok, 1] / safe, 0.0)
    g_local = np.stack([g[..., 0] * cx[:, None], g[..., 0] * cy[:, None], g[..., 1]], axis=-1)
    out = np.full((len(elem), m, 3), np.nan)
    out[ok] = g_local @ b.placement.frame.T
    return out


def _tet_values(b: Any, located: tuple, U: np.ndarray, gradient: bool) -> np.ndarray:
    from ..fem.field import gradient_at_located, potential_at_located

    _, elem, bary = located
    edofs = b.dofmap.element_dofs
    cols = []
    for j in range(U.shape[1]):
        u = np.ascontiguousarray(U[:, j])
        if gradient:
            cols.append(gradient_at_located(elem, bary, edofs, b.grad_lambda, u, b.order))
        else:
            cols.append(potential_at_located(elem, bary, edofs, u, b.order))
    return np.stack(cols, axis=1)
