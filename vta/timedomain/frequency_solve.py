"""Builders of :class:`~vta.timedomain.frequency_basis.FrequencyBasis`: complex unit
solves per frequency on the axisymmetric and the tetrahedral meshes.

The stiffness matrix is linear in the conductivity of each region (axisymmetric:
tissue, encapsulation) or element class (3D: anatomy classes, encapsulation), so

    K(w) = sum_c sigma_c*(w) K_c,

with each ``K_c`` assembled once (conductivity 1 S/m in class c, 0 elsewhere; the
matrices share one sparsity pattern) and combined per frequency on the stored values.
The unit solutions depend only on the ratios ``sigma_c* / sigma_0*``; frequencies with
equal ratios share one solve and their admittances scale with ``sigma_0*``.

Solvers (:mod:`vta.timedomain.complex_solve`): complex sparse LU for the axisymmetric
and small 3D systems; above :data:`vta.fem.solve.DIRECT_MAX_DOFS` free DOFs, COCG
preconditioned by the real multigrid of ``sum_c |sigma_c*| K_c``, relative residual
``tol`` (default 1e-8) per right-hand side.

Admittances: axisymmetric as :mod:`vta.fem.axisym` (reactions ``K u`` summed over the
contact DOFs), 3D as :mod:`vta.fem.solve` (``Y_jk = u_j^T K u_k``, bilinear, not
Hermitian); both symmetrised.

Units: mm, V, S/m in the inputs (S/mm = 1e-3 S/m inside the FEM), A, S, Hz.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import VtaError
from ..leads import LeadModel, LeadPlacement
from .complex_solve import ClassSystem, solve_shapes
from .dispersive import ENCAPSULATION_CLASS, DispersiveTissue
from .frequency_basis import FrequencyBasis

__all__ = [
    "HOMOGENEOUS_CLASS",
    "build_axisymmetric_frequency_basis",
    "build_tet_frequency_basis",
    "spheres_frequency_basis",
    "tet_element_classes",
]

log = logging.getLogger(__name__)

_S_PER_M_TO_S_PER_MM = 1e-3
#: Element class of a homogeneous 3D domain (no anatomy): takes ``DispersiveTissue.tissue``.
HOMOGENEOUS_CLASS = -2


# --------------------------------------------------------------------------------------
# shared: ratio groups, checks
# --------------------------------------------------------------------------------------


def _shape_groups(sigma: np.ndarray, reuse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies with equal conductivity ratios: (reference class, shape index (n_f,)).

    sigma : (C, n_f) complex. Ratios are compared to 1e-12 relative."""
    C, n_f = sigma.shape
    ref = int(np.argmax(np.abs(sigma).min(axis=1)))
    if not reuse:
        return ref, np.arange(n_f)
    ratios = sigma / sigma[ref][None, :]
    keys: dict[tuple, int] = {}
    index = np.empty(n_f, dtype=np.int64)
    for i in range(n_f):
        key = tuple(np.round(np.concatenate([ratios[:, i].real, ratios[:, i].imag]), 12))
        index[i] = keys.setdefault(key, len(keys))
    return ref, index


def _check_sigma(sigma: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(sigma)) or np.any(sigma.real <= 0) or np.any(sigma.imag < 0):
        raise VtaError(f"{what} must be finite with a positive real part and a non-negative imaginary "
                       f"part (a passive medium), S/m")


def _frequencies(frequencies_hz) -> np.ndarray:
    f = np.atleast_1d(np.asarray(frequencies_hz, dtype=float))
    if f.ndim != 1 or f.size == 0 or not np.all(np.isfinite(f)) or np.any(f < 0):
        raise VtaError(f"frequencies must be a non-empty list of finite values >= 0 Hz, got {frequencies_hz}")
    return f


def _dirichlet_values(n_dir: int, positions: list[np.ndarray], K: int) -> np.ndarray:
    g = np.zeros((n_dir, K))
    for k, pos in enumerate(positions):
        g[pos, k] = 1.0
    return g



def _assemble_basis(system: ClassSystem, sigma: np.ndarray, names: list[str], frequencies: np.ndarray,
                    contact_positions: list[np.ndarray], contact_dofs: list[np.ndarray], grounded: bool,
                    reuse: bool, method: str, tol: float, maxiter: int, prolongation, admittance: str,
                    mesh_basis: Any, mesh_info: dict, timings: dict) -> FrequencyBasis:
    """Solve the shapes, form Y(w), and build the FrequencyBasis."""
    for name, s in zip(names, sigma):
        _check_sigma(s, f"conductivity of {name}")
    K = len(contact_dofs)
    ref, index = _shape_groups(sigma, reuse)
    g = _dirichlet_values(system.dirichlet.size, contact_positions, K)
    t0 = time.perf_counter()
    sols, info = solve_shapes(system, sigma, index, g, frequencies, method, tol, maxiter, prolongation)
    n_shapes = len(sols)
    first = np.array([np.flatnonzero(index == s)[0] for s in range(n_shapes)])
    Ys = []
    for s, U in enumerate(sols):
        A = system.full(system.data(sigma[:, first[s]] * _S_PER_M_TO_S_PER_MM))
        if admittance == "reaction":
            R = A @ U
            Y = np.array([R[d].sum(axis=0) for d in contact_dofs])
        else:
            Y = U.T @ (A @ U)
        Ys.append(0.5 * (Y + Y.T))
    scale = sigma[ref] / sigma[ref, first[index]]
    Y = np.stack([Ys[index[i]] * scale[i] for i in range(frequencies.size)])
    t1 = time.perf_counter()
    timings = dict(timings, solve=t1 - t0, solve_per_frequency=float(np.mean([d["seconds"] for d in info])),
                   shapes=n_shapes)
    log.info("frequency basis: %d frequencies, %d distinct solves (%s), %.3f s per solve",
             frequencies.size, n_shapes, info[0]["solver"], timings["solve_per_frequency"])
    return FrequencyBasis(frequencies, bool(grounded), Y, np.stack(sols), index, mesh_basis,
                          dict(zip(names, sigma)), mesh_info, timings, info)


# --------------------------------------------------------------------------------------
# axisymmetric builders
# --------------------------------------------------------------------------------------


def _axisym(geom, region_sigma: np.ndarray, grounded: bool, placement: LeadPlacement, preset: str,
            order: int, size_scale: float, frequencies: np.ndarray, reuse: bool) -> FrequencyBasis:
    from ..fem.axisym import AxisymmetricBasis, boundary_dofs
    from ..fem.axisym_mesh import _mesh, _scaled_preset
    from ..fem.axisym_space import _assemble, _make_space
    from ..threads import run_interruptibly

    p = _scaled_preset(preset, size_scale)
    t0 = time.perf_counter()
    mesh = run_interruptibly(_mesh, geom, p, name="vta-gmsh")
    t1 = time.perf_counter()
    space = _make_space(mesh.points, mesh.tris, order)
    mats = [_assemble(space, mesh.tris, (mesh.region == r).astype(float)) for r in (0, 1)]   # per S/mm
    contact_dofs, outer = boundary_dofs(space, mesh, geom)
    outer_segs = mesh.boundary.get("outer", np.empty((0, 2), dtype=np.int64))
    dirichlet = np.unique(np.concatenate(list(contact_dofs) + ([outer] if grounded else [])))
    present = [r for r in (0, 1) if np.any(mesh.region == r)]
    system = ClassSystem([mats[r] for r in present], dirichlet)
    positions = [np.searchsorted(dirichlet, d) for d in contact_dofs]
    t2 = time.perf_counter()
    K = len(contact_dofs)
    n = space.dof_points.shape[0]
    info = {"kind": "axisymmetric-frequency", "nodes": int(mesh.points.shape[0]),
            "elements": int(mesh.tris.shape[0]), "dofs": int(n), "order": int(order),
            "preset": preset if size_scale == 1.0 else f"{preset}*{size_scale:g}"}
    mesh_basis = AxisymmetricBasis(
        n_contacts=K, outer_grounded=bool(grounded), conductance_S=np.zeros((K, K)),
        unit_solutions=np.zeros((n, K)), mesh_info=dict(info), points=mesh.points, tris=mesh.tris,
        elem_dofs=space.elem_dofs, dof_points=space.dof_points, placement=placement, vta_level=p.vta_level,
        outer_vertices=np.unique(outer_segs))
    names = [("tissue", "encapsulation")[r] for r in present]
    return _assemble_basis(system, region_sigma[present], names, frequencies, positions, contact_dofs,
                           grounded, reuse, "direct", 1e-8, 0, None, "reaction", mesh_basis, info,
                           {"mesh": t1 - t0, "assemble": t2 - t1})


def _region_sigma(tissue: DispersiveTissue | None, frequencies: np.ndarray,
                  region_sigma_S_per_m: np.ndarray | None) -> np.ndarray:
    if region_sigma_S_per_m is not None:
        s = np.asarray(region_sigma_S_per_m, dtype=complex)
        if s.ndim == 1:
            s = np.stack([s, s])
        if s.shape != (2, frequencies.size):
            raise VtaError(f"region conductivities must have shape (2, {frequencies.size}) "
                           f"(tissue, encapsulation per frequency), got {s.shape}")
        return s
    if not isinstance(tissue, DispersiveTissue):
        raise VtaError("give a DispersiveTissue or the region conductivities (S/m) per frequency")
    return tissue.region_sigma(frequencies)


def build_axisymmetric_frequency_basis(
    lead: LeadModel,
    placement: LeadPlacement,
    domain_center_mm: Sequence[float],
    domain_radius_mm: float,
    frequencies_hz,
    tissue: DispersiveTissue | None = None,
    outer: str = "ground",
    encapsulation_thickness_mm: float = 0.0,
    preset: str = "default",
    order: int = 2,
    size_scale: float = 1.0,
    domain_shape: str = "sphere",
    domain_length_mm: float | None = None,
    region_sigma_S_per_m: np.ndarray | None = None,
    reuse_shapes: bool = True,
) -> FrequencyBasis:
    """Frequency-domain basis of a ring-contact lead in homogeneous dispersive tissue
    (optionally with an encapsulation layer), on the mesh of
    :func:`vta.fem.axisym.build_axisymmetric_basis` (same geometry, checks and presets).

    Parameters
    ----------
    lead, placement, domain_center_mm, domain_radius_mm, outer, encapsulation_thickness_mm,
    preset, order, size_scale, domain_shape, domain_length_mm
        As :func:`vta.fem.axisym.build_axisymmetric_basis`.
    frequencies_hz : array_like, shape (n_f,)
        Solve frequencies (Hz), >= 0.
    tissue : DispersiveTissue, optional
        Bulk tissue and encapsulation models (:meth:`DispersiveTissue.region_sigma`).
    region_sigma_S_per_m : ndarray of complex, shape (2, n_f) or (n_f,), optional
        Instead of ``tissue``: complex conductivity (S/m) of the tissue and the
        encapsulation at each frequency ((n_f,): both the same).
    reuse_shapes : bool
        Share one solve between frequencies with equal conductivity ratios (exact).

    Returns
    -------
    FrequencyBasis
        ``timings``: "mesh", "assemble", "solve", "solve_per_frequency" (s).
    """
    from ..fem.axisym import _check_positive, _outer_kind, _outer_shape
    from ..fem.axisym_mesh import _lead_geometry

    if not lead.is_axisymmetric:
        raise VtaError(f"lead '{lead.name}' has segmented (directional) contacts: the axisymmetric "
                       f"model needs ring contacts only; use the 3D model")
    f = _frequencies(frequencies_hz)
    grounded = _outer_kind(outer)
    radius = _check_positive(domain_radius_mm, "domain_radius_mm")
    t = float(encapsulation_thickness_mm)
    if not (t >= 0 and math.isfinite(t)):
        raise VtaError(f"encapsulation_thickness_mm must be >= 0, got {encapsulation_thickness_mm}")
    sigma = _region_sigma(tissue, f, region_sigma_S_per_m)
    shape = _outer_shape(lead, placement, domain_center_mm, radius, domain_shape, domain_length_mm, t)
    return _axisym(_lead_geometry(lead, shape, t), sigma, grounded, placement, preset, order, size_scale,
                   f, reuse_shapes)


def spheres_frequency_basis(a_mm: float, R_mm: float, frequencies_hz, sigma_S_per_m,
                            preset: str = "default", order: int = 2, size_scale: float = 1.0,
                            reuse_shapes: bool = True) -> FrequencyBasis:
    """Spherical electrode (radius ``a_mm``) in a grounded sphere (``R_mm``), complex
    conductivity ``sigma_S_per_m`` (n_f,) S/m or a tissue name: the analytic case
    ``Y(w) = 4 pi sigma*(w) a R / (R - a)`` (the mesh of
    :func:`vta.fem.axisym.concentric_spheres_basis`)."""
    from ..fem.axisym import _check_positive
    from ..fem.axisym_mesh import _spheres_geometry
    from .dispersive import complex_conductivity

    a = _check_positive(a_mm, "a_mm")
    R = _check_positive(R_mm, "R_mm")
    if R <= a:
        raise VtaError(f"outer radius {R} mm must exceed the electrode radius {a} mm")
    f = _frequencies(frequencies_hz)
    s = (complex_conductivity(sigma_S_per_m, f) if isinstance(sigma_S_per_m, (str, int, float))
         else np.asarray(sigma_S_per_m, dtype=complex).reshape(-1))
    if s.shape != f.shape:
        raise VtaError(f"sigma_S_per_m must have one value per frequency ({f.size}), got {s.size}")
    placement = LeadPlacement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    return _axisym(_spheres_geometry(a, R), np.stack([s, s]), True, placement, preset, order, size_scale,
                   f, reuse_shapes)


# --------------------------------------------------------------------------------------
# 3D builder
# --------------------------------------------------------------------------------------


def tet_element_classes(lead_mesh_or_mesh: Any, anatomy: Any = None) -> np.ndarray:
    """Element class (M,) of a tetrahedral mesh: :data:`ENCAPSULATION_CLASS` in the
    ``"encapsulation"`` subdomain, else the anatomy's tissue class at the element
    centroid (``anatomy.tissue_at``), or :data:`HOMOGENEOUS_CLASS` without anatomy."""
    mesh = getattr(lead_mesh_or_mesh, "mesh", lead_mesh_or_mesh)
    M = mesh.t.shape[1]
    if anatomy is None:
        cls = np.full(M, HOMOGENEOUS_CLASS, dtype=np.int64)
    else:
        centroids = mesh.p[:, mesh.t].mean(axis=1).T
        cls = np.asarray(anatomy.tissue_at(centroids)).astype(np.int64)
    enc = (mesh.subdomains or {}).get("encapsulation")
    if enc is not None and len(enc):
        cls[np.asarray(enc, dtype=np.int64)] = ENCAPSULATION_CLASS
    return cls


def build_tet_frequency_basis(
    lead_mesh_or_mesh: Any,
    frequencies_hz,
    tissue: DispersiveTissue | Mapping[int, np.ndarray],
    element_class: np.ndarray | None = None,
    n_contacts: int | None = None,
    outer: str = "ground",
    order: int = 2,
    solver: str = "auto",
    tol: float = 1e-8,
    maxiter: int = 500,
    reuse_shapes: bool = True,
    anisotropy: np.ndarray | None = None,
) -> FrequencyBasis:
    """Frequency-domain basis on a tetrahedral mesh (any lead, anatomy classes,
    encapsulation, DTI anisotropy).

    Parameters
    ----------
    lead_mesh_or_mesh : LeadMesh or skfem.MeshTet
        As :func:`vta.fem.solve.solve_unit_fields`.
    frequencies_hz : array_like, shape (n_f,)
        Solve frequencies (Hz), >= 0.
    tissue : DispersiveTissue or mapping of int to ndarray
        The complex conductivity (n_f,) S/m of each element class, or a
        DispersiveTissue that gives it (:meth:`DispersiveTissue.class_sigma`;
        :data:`HOMOGENEOUS_CLASS` takes its ``tissue``).
    element_class : ndarray of int, shape (M,), optional
        Class of every element; default :func:`tet_element_classes` without anatomy.
    n_contacts, outer, order
        As :func:`vta.fem.solve.solve_unit_fields`.
    solver : {"auto", "direct", "iterative"}
        "auto": complex sparse LU up to :data:`vta.fem.solve.DIRECT_MAX_DOFS` free
        DOFs, else COCG preconditioned by the real multigrid (module docstring).
    tol : float
        Relative residual of the iterative solver per right-hand side.
    maxiter : int
        Iteration limit of the iterative solver.
    reuse_shapes : bool
        Share one solve between frequencies with equal conductivity ratios (exact).
    anisotropy : ndarray, shape (M, 3, 3), optional
        Dimensionless, frequency-independent anisotropy of every element (symmetric
        positive definite; :meth:`vta.scene.Scene.element_anisotropy`): the element's
        conductivity tensor is its class's complex conductivity times this tensor.
        Default: isotropic.

    Returns
    -------
    FrequencyBasis
        ``solver_info`` per solve: iterations (per right-hand side), residual, seconds.
    """
    from ..fem.assembly import assemble_stiffness, build_dofmap, element_geometry
    from ..fem.multigrid import p1_embedding
    from ..fem.solve import DIRECT_MAX_DOFS, TetFieldBasis, contact_dofs, unpack_lead_mesh

    f = _frequencies(frequencies_hz)
    try:
        mesh, preset, K, grounded = unpack_lead_mesh(lead_mesh_or_mesh, n_contacts, outer)
    except ValueError as exc:
        raise VtaError(str(exc)) from None
    if solver not in ("auto", "direct", "iterative"):
        raise VtaError(f"solver must be 'auto', 'direct' or 'iterative', got {solver!r}")
    M = mesh.t.shape[1]
    cls = tet_element_classes(mesh) if element_class is None else np.asarray(element_class, dtype=np.int64)
    if cls.shape != (M,):
        raise VtaError(f"element_class must have one class per element ({M}), got shape {cls.shape}")
    codes = np.unique(cls)
    if isinstance(tissue, DispersiveTissue):
        table = tissue.class_sigma(f, codes)
        if HOMOGENEOUS_CLASS in table:
            table[HOMOGENEOUS_CLASS] = tissue.tissue_sigma(f)
    else:
        table = {int(c): np.asarray(v, dtype=complex).reshape(-1) for c, v in tissue.items()}
    missing = [int(c) for c in codes if int(c) not in table]
    if missing:
        raise VtaError(f"no conductivity for element classes {missing}")
    sigma = np.stack([np.broadcast_to(table[int(c)], f.shape) for c in codes]).astype(complex)

    t0 = time.perf_counter()
    points = np.ascontiguousarray(mesh.p.T, dtype=np.float64)
    tets = np.ascontiguousarray(mesh.t.T, dtype=np.int64)
    dofmap = build_dofmap(tets, points.shape[0], order)
    glam, vol = element_geometry(points, tets)
    if anisotropy is not None:
        anisotropy = np.asarray(anisotropy, dtype=float)
        if anisotropy.shape != (M, 3, 3):
            raise VtaError(f"anisotropy must be one 3x3 tensor per element ({M}), got shape {anisotropy.shape}")

    def class_weight(c: int) -> np.ndarray:
        w = (cls == c).astype(float)
        return w if anisotropy is None else w[:, None, None] * anisotropy

    mats = [assemble_stiffness(points, tets, class_weight(c), order, dofmap,   # per S/mm
                               (glam, vol))[0] for c in codes]
    cdofs = [contact_dofs(mesh, dofmap, f"contact_{k}") for k in range(K)]
    allc = np.concatenate(cdofs)
    if any(c.size == 0 for c in cdofs) or np.unique(allc).size != allc.size:
        raise VtaError("every contact needs its own facets (none empty, none shared)")
    parts = list(cdofs)
    if grounded:
        parts.append(np.setdiff1d(contact_dofs(mesh, dofmap, "outer"), allc))
    dirichlet = np.unique(np.concatenate(parts))
    system = ClassSystem(mats, dirichlet)
    positions = [np.searchsorted(dirichlet, d) for d in cdofs]
    t1 = time.perf_counter()
    n_free = system.free.size
    method = ("direct-3d" if (solver == "direct" or (solver == "auto" and n_free <= DIRECT_MAX_DOFS))
              else "iterative")
    prolongation = p1_embedding(dofmap) if (order == 2 and method == "iterative") else None
    mesh_basis = TetFieldBasis(mesh, dofmap, np.zeros((dofmap.n_dofs, K)), np.zeros((K, K)), grounded,
                               glam, vol, {}, preset, cdofs)
    info = dict(mesh_basis.mesh_info, kind="tet-frequency")
    names = [f"class_{int(c)}" for c in codes]
    return _assemble_basis(system, sigma, names, f, positions, cdofs, grounded, reuse_shapes, method,
                           tol, maxiter, prolongation, "energy", mesh_basis, info, {"assemble": t1 - t0})
