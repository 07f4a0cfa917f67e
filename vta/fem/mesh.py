"""Tetrahedral meshes of a tissue domain around a DBS lead (gmsh, OpenCASCADE kernel).

The lead is an insulator and is not meshed: the mesh fills the domain (a sphere or an
axis-aligned box in world mm) minus the lead body, optionally with an encapsulation
layer around the lead as a second volume. Contacts are conforming, tagged patches of
the lead surface, so that a Dirichlet condition per contact is a plain facet set.

The result is a :class:`skfem.MeshTet` in world mm with boundaries ``"contact_0"`` ..
``"contact_{K-1}"`` (numbered as :meth:`vta.leads.LeadModel.contacts`), ``"insulation"``
(the rest of the lead surface) and ``"outer"`` (the domain boundary), and subdomains
``"tissue"`` and ``"encapsulation"`` (element index arrays; the latter may be empty).

Element sizes come from :class:`MeshPreset`: fine at the contacts and finest at the
contact edges (where the field is singular), growing linearly with the distance from
the lead, capped by a far-field size, and coarser on the lead shaft beyond the contacts.
The size field is one analytic expression of the lead's local coordinates (gmsh
``MathEval``), which is exact and cheaper to evaluate than sampled ``Distance`` fields:
the whole model is built in the lead's local frame (the domain is moved there) and the
nodes are mapped to world mm at the end, so the mesh of a scene does not depend on the
lead's rotation.

The contact edges, where the potential goes like ``d^1/2``, get geometric layers after
meshing (:mod:`vta.fem.mesh_edge_layers`, ``MeshPreset.edge_layers``): every tet that
touches a contact edge is cut at a fraction of its edges from it, a few times, which
gives thin elements along the edge (the geometric edge refinement of hp finite
elements). On a ring lead in 3D this cuts the impedance error of the "default" mesh
from 0.9 % to 0.07 % for 1.65x the DOFs.

gmsh is global, non-thread-safe state: every build runs under a module lock and
finalizes what it initialised. Builds use one gmsh thread: deterministic meshes, and on
two cores no slower.

Modules: the inputs, presets and result types (:class:`Domain`, :class:`Encapsulation`,
:class:`MeshPreset`, :data:`PRESETS`, :class:`LeadMesh`, :func:`check_placement`) are in
:mod:`vta.fem.mesh_domain`, the gmsh model and meshing in :mod:`vta.fem.mesh_gmsh`, the
conversion to skfem in :mod:`vta.fem.mesh_skfem`, the contact-edge layers in
:mod:`vta.fem.mesh_edge_layers`; all public names are importable from here.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from ..errors import VtaError
from ..leads import LeadModel, LeadPlacement
from ..threads import run_interruptibly
from .mesh_domain import (
    PRESETS,
    Domain,
    Encapsulation,
    LeadMesh,
    MeshPreset,
    _positive,
    _resolve_preset,
    _vec3,
    check_placement,
)
from .mesh_gmsh import (
    _generate,
    _gmsh_session,
    _hypot,
    _mesh_with_fallbacks,
    _num,
    _set_mesh_options,
)
from .mesh_skfem import _to_skfem
from .mesh_edge_layers import refine_towards_contact_edges
from .mesh_templates import cached_local_mesh, canonical_scene, place_mesh

__all__ = [
    "Domain",
    "Encapsulation",
    "LeadMesh",
    "MeshPreset",
    "PRESETS",
    "build_mesh",
    "build_sphere_electrode_mesh",
    "check_placement",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- public


def build_mesh(
    lead: LeadModel,
    placement: LeadPlacement,
    domain: Domain,
    encapsulation: Encapsulation | None = None,
    preset: str | MeshPreset = "default",
    scale: float = 1.0,
) -> LeadMesh:
    """Mesh the domain minus the lead, with tagged contacts.

    Parameters
    ----------
    lead : LeadModel
        Lead geometry (mm).
    placement : LeadPlacement
        Tip (mm), direction and rotation of the lead in world coordinates.
    domain : Domain
        Tissue domain (world mm); the active part of the lead must lie inside it with
        at least 1 mm clearance.
    encapsulation : Encapsulation, optional
        Layer of ``thickness_mm`` around the lead, meshed as subdomain
        ``"encapsulation"``.
    preset : str or MeshPreset
        ``"fast"``, ``"default"``, ``"fine"`` or explicit sizes.
    scale : float
        Multiplier on every element size (e.g. 0.7 for a convergence study).

    Returns
    -------
    LeadMesh

    Raises
    ------
    VtaError
        Lead outside the domain, unknown preset, invalid sizes or thickness.
    """
    p = _resolve_preset(preset, scale, segmented=not lead.is_axisymmetric)
    if not isinstance(domain, Domain):
        raise VtaError(f"domain must be a vta.fem.mesh.Domain, got {type(domain).__name__}")
    shell = 0.0 if encapsulation is None else encapsulation.thickness_mm
    check_placement(lead, placement, domain, shell)
    _start_prewarm()
    t0 = time.perf_counter()
    length = min(lead.body_length_mm, domain.farthest_distance_mm(placement.tip_mm) + 1.0 + shell)
    if shell > 0 and p.size_shaft_mm is not None and p.size_shaft_mm > p.size_lead_mm:
        # the faceted shell and lead surfaces must not cross: a chord h on radius R sags
        # by h^2 / (8 R), 0.17 mm for h = 1 mm, more than a 0.1 mm layer
        p = replace(p, size_shaft_mm=p.size_lead_mm)

    # the mesh is built in the lead's frame from the rounded relative geometry alone, so
    # that it is the same for every placement with the same key (mesh_templates)
    domain_key, canon_domain, canon_placement, length = canonical_scene(domain, placement, length)

    def mesh_locally():
        local, (t1, t2) = run_interruptibly(_mesh_with_fallbacks, lead, canon_placement, canon_domain, p, shell,
                                            length, name="vta-gmsh")
        t3 = time.perf_counter()
        local = refine_towards_contact_edges(local, p.edge_layers, p.edge_layer_ratio)
        logger.debug("mesh timings: geometry %.3f s, meshing %.3f s, conversion %.3f s, edge layers %.3f s",
                     t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3)
        return local

    key = {"lead": lead, "preset": p, "shell_mm": shell, "length_mm": length, "domain": domain_key}
    local, hit = cached_local_mesh(key, mesh_locally)
    mesh = place_mesh(local, placement)
    elapsed = time.perf_counter() - t0
    logger.info("%s %s (%s): %d nodes, %d tets in %.2f s", "mesh template of" if hit else "meshed", lead.name,
                p.name, mesh.p.shape[1], mesh.t.shape[1], elapsed)
    return LeadMesh(mesh=mesh, n_contacts=lead.n_contacts, preset=p.name, build_time_s=elapsed, mesh_preset=p,
                    from_template=hit)


def _start_prewarm() -> None:
    """Load the solver's numba kernels in a background thread while gmsh meshes (the
    next step is nearly always :func:`vta.fem.solve.solve_unit_fields`; gmsh releases the
    GIL, so on two cores this hides ~0.5-1 s of a new process's start-up)."""
    def run() -> None:
        try:
            import skfem  # noqa: F401  (needed by the conversion, ~0.3 s to import)

            from .solve import prewarm

            prewarm()
        except Exception:  # only an optimisation
            logger.debug("solver prewarm failed", exc_info=True)

    threading.Thread(target=run, name="vta-prewarm", daemon=True).start()


def build_sphere_electrode_mesh(
    electrode_radius_mm: float,
    outer_radius_mm: float,
    size_at_electrode_mm: float,
    size_far_mm: float,
    growth: float = 0.3,
    center_mm: Sequence[float] = (0.0, 0.0, 0.0),
) -> "skfem.MeshTet":  # noqa: F821
    """Concentric-sphere test geometry: the shell between two spheres.

    Parameters
    ----------
    electrode_radius_mm : float
        Radius a of the inner (electrode) sphere (mm), boundary ``"contact_0"``.
    outer_radius_mm : float
        Radius R > a of the outer sphere (mm), boundary ``"outer"``.
    size_at_electrode_mm, size_far_mm : float
        Element size at the electrode and the largest size (mm).
    growth : float
        Size increase per mm of distance from the electrode.
    center_mm : sequence of 3 floats
        Common centre (mm).

    Returns
    -------
    skfem.MeshTet
        Boundaries ``"contact_0"`` and ``"outer"``, subdomain ``"tissue"``.
    """
    a = _positive(electrode_radius_mm, "electrode_radius_mm")
    big = _positive(outer_radius_mm, "outer_radius_mm")
    if big <= a:
        raise VtaError(f"outer_radius_mm ({big:g}) must exceed electrode_radius_mm ({a:g})")
    h0 = _positive(size_at_electrode_mm, "size_at_electrode_mm")
    h1 = _positive(size_far_mm, "size_far_mm")
    g = _positive(growth, "growth")
    c = _vec3(center_mm, "center_mm")
    p = MeshPreset("sphere", h0, h0, h0, g, max(h0, h1))
    with _gmsh_session("vta_sphere") as gmsh:
        occ = gmsh.model.occ
        outer = occ.addSphere(*c, big)
        inner = occ.addSphere(*c, a)
        out, _ = occ.cut([(3, outer)], [(3, inner)])
        occ.synchronize()
        vols = [t for _, t in out]
        inner_s, outer_s = [], []
        for _, s in gmsh.model.getBoundary(out, combined=True, oriented=False):
            bb = np.array(gmsh.model.getBoundingBox(2, abs(s)))
            (inner_s if bb[3] - bb[0] < a + big else outer_s).append(abs(s))
        _set_mesh_options(gmsh, p)
        r = _hypot(*(f"{x}-({_num(v)})" for x, v in zip("xyz", c)))
        f = gmsh.model.mesh.field.add("MathEval")
        size = f"Min({_num(p.size_far_mm)},{_num(h0)}+{_num(g)}*Max(0,{r}-{_num(a)}))"
        gmsh.model.mesh.field.setString(f, "F", size)
        gmsh.model.mesh.field.setAsBackgroundMesh(f)
        _generate(gmsh)
        mesh = _to_skfem(gmsh, {"tissue": vols}, {"contact_0": inner_s, "outer": outer_s})
    logger.info("sphere electrode mesh: %d nodes, %d tets", mesh.p.shape[1], mesh.t.shape[1])
    return mesh
