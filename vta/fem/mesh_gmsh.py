"""The gmsh model of a lead in its tissue domain, and its tetrahedral mesh.

Builds, in the lead's local frame (OpenCASCADE kernel), the domain minus the lead
body and the optional encapsulation shell (see :mod:`vta.fem.mesh`); fragments them
into tissue and encapsulation volumes with the contacts as labelled lead faces; sets
one analytic size field (gmsh ``MathEval`` of the local x, y, z, in mm) and meshes,
falling back to the Delaunay 3D algorithm when HXT fails. The mesh is handed to :mod:`vta.fem.mesh_skfem` for the conversion to skfem.

gmsh is global, non-thread-safe state: every build runs in :func:`_gmsh_session`,
under a module lock, and finalizes what it initialised. All lengths in mm.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from ..errors import VtaError
from ..leads import ContactGeometry, LeadModel, LeadPlacement
from .mesh_domain import _ALGORITHMS_3D, Domain, MeshPreset
from .mesh_skfem import _to_skfem

__all__: list[str] = []

logger = logging.getLogger(__name__)

_GMSH_LOCK = threading.RLock()
_INSULATION = -1  # label of lead pieces that are not a contact


# ----------------------------------------------------------------------------- gmsh session


@contextlib.contextmanager
def _gmsh_session(name: str, threads: int = 1) -> Iterator[object]:
    """Initialise gmsh (or reuse a caller's session), yield the module, clean up.

    Safe to call repeatedly and from non-main threads; builds are serialised.
    """
    import gmsh

    with _GMSH_LOCK:
        owner = not gmsh.isInitialized()
        if owner:
            gmsh.initialize(readConfigFiles=False, interruptible=False)
        try:
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.option.setNumber("General.NumThreads", threads)
            gmsh.logger.start()
            gmsh.model.add(name)
            try:
                yield gmsh
            finally:
                _forward_gmsh_log(gmsh)
                gmsh.logger.stop()
                if not owner:
                    gmsh.model.remove()
        finally:
            if owner:
                gmsh.finalize()


def _forward_gmsh_log(gmsh) -> None:
    for line in gmsh.logger.get():
        if line.startswith("Error"):
            logger.warning("gmsh: %s", line)
        elif line.startswith("Warning"):
            logger.debug("gmsh: %s", line)


def _set_mesh_options(gmsh, preset: MeshPreset) -> None:
    opt = gmsh.option.setNumber
    opt("Mesh.MeshSizeExtendFromBoundary", 0)
    opt("Mesh.MeshSizeFromPoints", 0)
    opt("Mesh.MeshSizeFromCurvature", 0)
    opt("Mesh.MeshSizeMax", preset.size_far_mm)
    smallest = min(preset.size_edge_mm, preset.size_contact_mm)
    if preset.segment_edge_mm is not None:
        smallest = min(smallest, preset.segment_edge_mm)
    opt("Mesh.MeshSizeMin", 0.5 * smallest)
    opt("Mesh.Algorithm", 6)  # Frontal-Delaunay 2D
    opt("Mesh.Algorithm3D", _ALGORITHMS_3D[preset.algorithm])
    opt("Mesh.Optimize", 1)
    opt("Mesh.ElementOrder", 1)
    opt("Mesh.LcIntegrationPrecision", 1e-3)


# ----------------------------------------------------------------------------- geometry


def _add_domain(occ, domain: Domain, placement: LeadPlacement | None = None) -> int:
    """The domain in the lead's local frame (world frame without ``placement``)."""
    c = domain.center_mm
    if domain.shape == "sphere":
        if placement is not None:
            c = placement.to_local(c)
        return occ.addSphere(*c, domain.radius_mm)
    lo = c - 0.5 * domain.size_mm
    tag = occ.addBox(*lo, *domain.size_mm)
    if placement is not None:
        _unplace(occ, [(3, tag)], placement)
    return tag


def _unplace(occ, dim_tags: list[tuple[int, int]], placement: LeadPlacement) -> None:
    """Move entities from world mm to the lead's local frame (the inverse of the rigid
    rotation and translation of ``placement``; a general affine map would turn analytic
    surfaces into B-splines and make the Boolean operations very slow)."""
    if np.any(placement.tip_mm != 0):
        occ.translate(dim_tags, *(-placement.tip_mm))
    angle, axis = _axis_angle(placement.frame)
    if angle > 1e-12:
        occ.rotate(dim_tags, 0.0, 0.0, 0.0, *axis, -angle)


def _axis_angle(rot: np.ndarray) -> tuple[float, np.ndarray]:
    """Rotation angle (rad) and unit axis of a proper rotation matrix."""
    cos = np.clip(0.5 * (np.trace(rot) - 1.0), -1.0, 1.0)
    angle = float(np.arccos(cos))
    if angle < 1e-12:
        return 0.0, np.array([0.0, 0.0, 1.0])
    if np.pi - angle > 1e-6:
        axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
        return angle, axis / np.linalg.norm(axis)
    # angle ~ pi: axis from the symmetric part R = 2 a a^T - I
    sym = 0.5 * (rot + np.eye(3))
    axis = sym[:, int(np.argmax(np.diag(sym)))]
    return angle, axis / np.linalg.norm(axis)


def _level_of(lead: LeadModel, z0: float, z1: float) -> list[ContactGeometry]:
    """Contacts covering the axial interval [z0, z1] (empty for an insulating gap)."""
    zm = 0.5 * (z0 + z1)
    return [c for c in lead.contacts() if c.z_start_mm < zm < c.z_end_mm or (c.is_tip and zm < c.z_end_mm)]


def _breakpoints(lead: LeadModel, length_mm: float) -> list[float]:
    r = lead.radius_mm
    zs = {r, length_mm}
    for z0, z1 in lead.level_extents_mm():
        zs.update(z for z in (z0, z1) if z > r)
    out: list[float] = []
    for z in sorted(zs):
        if z <= length_mm and (not out or z - out[-1] > 1e-9):
            out.append(z)
    return out


def _add_wedges(occ, z0: float, z1: float, r: float, segments: list[ContactGeometry]) -> list[tuple[int, int]]:
    """Wedges of a segmented level: one per segment and one per gap between them."""
    segs = sorted(segments, key=lambda c: c.angle_center_deg % 360.0)
    starts = [math.radians(c.angle_center_deg - 0.5 * c.arc_deg) for c in segs]
    arcs = [math.radians(c.arc_deg) for c in segs]
    out = []
    for i, c in enumerate(segs):
        gap_start = starts[i] + arcs[i]
        gap = (starts[(i + 1) % len(segs)] - gap_start) % (2 * math.pi)
        for start, arc, label in ((starts[i], arcs[i], c.index), (gap_start, gap, _INSULATION)):
            if arc < 1e-9:
                continue
            tag = occ.addCylinder(0, 0, z0, 0, 0, z1 - z0, r, angle=arc)
            occ.rotate([(3, tag)], 0, 0, 0, 0, 0, 1, start)
            out.append((tag, label))
    return out


def _add_lead_pieces(occ, lead: LeadModel, placement: LeadPlacement, length_mm: float) -> list[tuple[int, int]]:
    """The lead body as volumes labelled by contact index (or insulation), in the lead's
    local frame."""
    r = lead.radius_mm
    contacts = lead.contacts()
    tip = contacts[0] if contacts[0].is_tip else None
    if tip is not None and tip.z_end_mm < r - 1e-9:
        raise VtaError(f"lead '{lead.name}': a tip contact shorter than the tip radius is not supported")
    pieces = [(occ.addSphere(0, 0, r, r, angle1=-0.5 * math.pi, angle2=0.0), tip.index if tip else _INSULATION)]
    zs = _breakpoints(lead, length_mm)
    for z0, z1 in zip(zs[:-1], zs[1:]):
        covering = _level_of(lead, z0, z1)
        if len(covering) > 1:
            pieces.extend(_add_wedges(occ, z0, z1, r, covering))
        else:
            label = covering[0].index if covering else _INSULATION
            pieces.append((occ.addCylinder(0, 0, z0, 0, 0, z1 - z0, r), label))
    return pieces


def _add_shell_solid(occ, radius_mm: float, thickness_mm: float, length_mm: float,
                     placement: LeadPlacement) -> int:
    """The lead grown by ``thickness_mm`` (mm): a cylinder of radius ``radius_mm +
    thickness_mm`` with a hemispherical end concentric with the lead's tip, in the lead's local frame."""
    big = radius_mm + thickness_mm
    cyl = occ.addCylinder(0, 0, radius_mm, 0, 0, length_mm - radius_mm, big)
    sph = occ.addSphere(0, 0, radius_mm, big)
    out, _ = occ.fuse([(3, cyl)], [(3, sph)])
    return out[0][1]


def _children(mapping: list, i: int) -> set[int]:
    return {tag for dim, tag in mapping[i] if dim == 3}


def _fragment(gmsh, domain_tag: int, pieces: list[tuple[int, int]], shell_tag: int | None):
    """Fragment domain, lead pieces and shell; keep tissue and encapsulation volumes.

    Returns
    -------
    volumes : dict
        ``{"tissue": [tags], "encapsulation": [tags]}``.
    surfaces : dict
        ``{label: [surface tags]}`` with contact indices, ``_INSULATION`` and ``"outer"``.
    """
    occ = gmsh.model.occ
    tools = [(3, t) for t, _ in pieces] + ([(3, shell_tag)] if shell_tag is not None else [])
    _, mapping = occ.fragment([(3, domain_tag)], tools)
    occ.synchronize()
    inside = _children(mapping, 0)
    lead_vol: dict[int, int] = {}
    for i, (_, label) in enumerate(pieces, start=1):
        for v in _children(mapping, i):
            lead_vol[v] = label
    shell = _children(mapping, len(pieces) + 1) if shell_tag is not None else set()
    tissue = sorted(inside - shell - set(lead_vol))
    encaps = sorted((inside & shell) - set(lead_vol))
    kept = tissue + encaps
    if not tissue:
        raise VtaError("meshing failed: no tissue volume left after removing the lead")
    bnd = {t for _, t in gmsh.model.getBoundary([(3, v) for v in kept], combined=True, oriented=False)}
    surfaces: dict = {"outer": []}
    lead_surf: dict[int, int] = {}
    for v, label in lead_vol.items():
        for _, s in gmsh.model.getBoundary([(3, v)], combined=False, oriented=False):
            lead_surf[abs(s)] = label
    for s in sorted(bnd):
        surfaces.setdefault(lead_surf.get(s, "outer"), []).append(s)
    drop = [(3, v) for _, v in occ.getEntities(3) if v not in kept]
    occ.remove(drop, recursive=True)
    occ.synchronize()
    return {"tissue": tissue, "encapsulation": encaps}, surfaces


def _num(v: float) -> str:
    return f"{float(v):.12g}"


def _min(terms: list[str]) -> str:
    """Nested gmsh MathEval ``Min`` of several terms."""
    out = terms[-1]
    for t in reversed(terms[:-1]):
        out = f"Min({t},{out})"
    return out


def _hypot(*terms: str) -> str:
    return "Sqrt(" + "+".join(f"({t})*({t})" for t in terms) + ")"


def _clamp(expr: str, lo: float, hi: float) -> str:
    return f"Min(Max({expr},{_num(lo)}),{_num(hi)})"


def _outside(z0: float, z1: float) -> str:
    """Axial distance (mm) from local z to the interval [z0, z1]."""
    return f"Max({_num(z0)}-z,Max(0,z-{_num(z1)}))"


def _contact_distances(lead: LeadModel) -> tuple[list[str], list[str], list[str]]:
    """Local-frame distance expressions (mm) to the contact surfaces and their edges.

    Segmented levels count as full bands for the surface distance (a slightly larger
    refined region); their axial edges are included exactly.

    Returns
    -------
    surfaces, edges, segment_edges : list of str
        Distances to the contact surfaces, to the edges of ring and tip contacts (the
        first term: the circles at all level ends, segmented ones included, when there
        are no segmented levels), and to the edges of the segmented levels (the circles
        at their ends, then the axial edges of each segment); ``segment_edges`` is empty
        for a lead without segments.
    """
    r = lead.radius_mm
    dr = f"Sqrt(x*x+y*y)-{_num(r)}"
    surf, bands, edges_z, seg_z, axial = [], [], set(), set(), []
    for level, (z0, z1) in enumerate(lead.level_extents_mm()):
        contacts = [c for c in lead.contacts() if c.level == level]
        segmented = any(c.arc_deg is not None for c in contacts)
        (seg_z if segmented else edges_z).add(z1)
        if contacts[0].is_tip:
            sphere = f"{_hypot('x', 'y', f'Min(z,{_num(r)})-{_num(r)}')}-{_num(r)}"
            surf.append(_hypot(sphere, f"Max(0,z-{_num(z1)})"))
            continue
        (seg_z if segmented else edges_z).add(z0)
        bands.append(_outside(z0, z1))
        for c in contacts:
            if c.arc_deg is None:
                continue
            for ang in (c.angle_center_deg - 0.5 * c.arc_deg, c.angle_center_deg + 0.5 * c.arc_deg):
                px, py = r * math.cos(math.radians(ang)), r * math.sin(math.radians(ang))
                axial.append(_hypot(f"x-({_num(px)})", f"y-({_num(py)})", _outside(z0, z1)))
    if bands:  # min over bands of hypot(dr, dz_i) = hypot(dr, min_i dz_i)
        surf.append(_hypot(dr, _min(bands)))

    def circles(zs: set[float]) -> str:
        return _hypot(dr, _min([f"Max(z-{_num(e)},{_num(e)}-z)" for e in sorted(zs)]))

    edge_terms = [circles(edges_z)] if edges_z else []
    seg_terms = ([circles(seg_z)] if seg_z else []) + axial
    return surf, edge_terms, seg_terms


def _size_expression(lead: LeadModel, preset: MeshPreset, length_mm: float,
                     segment_distance: str | None = None) -> str:
    """Element size (mm) as a gmsh MathEval expression of the lead's local x, y, z.

    ``min(far, edge + g_e d_edge, contact + g d_contact, lead + g d_lead[, shaft + g
    d_shaft][, span][, segment_edge + g_s d_segment_edge])`` with the distances (mm) to
    the contact edges, the contact surfaces and the lead surface (up to
    ``shaft_margin_mm`` beyond the last contact when ``size_shaft_mm`` is set, the whole
    lead otherwise) and, on directional leads, to the edges of the segments.

    ``segment_distance`` names the distance to the segment edges in the expression (a
    gmsh field such as ``"F1"``, see :func:`_segment_edge_distance_field`); ``None``
    writes it analytically (one term per edge, which gmsh then evaluates at every point
    it meshes: slow on leads with many segments).
    """
    r = lead.radius_mm
    g = preset.growth
    ge = preset.growth if preset.edge_growth is None else preset.edge_growth
    surf, edges, seg_edges = _contact_distances(lead)
    z_end = lead.contacts()[-1].z_end_mm

    def d_lead(z_top: float) -> str:
        return f"Max(0,{_hypot('x', 'y', 'z-' + _clamp('z', r, z_top))}-{_num(r)})"

    terms = [_num(preset.size_far_mm)]
    if preset.size_shaft_mm is None:
        terms.append(f"{_num(preset.size_lead_mm)}+{_num(g)}*{d_lead(length_mm)}")
    else:
        z_top = min(length_mm, z_end + preset.shaft_margin_mm)
        terms.append(f"{_num(preset.size_lead_mm)}+{_num(g)}*{d_lead(z_top)}")
        terms.append(f"{_num(preset.size_shaft_mm)}+{_num(g)}*{d_lead(length_mm)}")
    terms += [f"{_num(preset.size_contact_mm)}+{_num(g)}*{d}" for d in surf]
    if seg_edges and segment_distance is not None:
        seg_edges = [segment_distance]
    terms += [f"{_num(preset.size_edge_mm)}+{_num(ge)}*{d}" for d in edges + seg_edges]
    terms += _segment_edge_terms(preset, seg_edges)
    if preset.size_span_mm is not None:
        d_span = f"Max(0,{_hypot('x', 'y', 'z-' + _clamp('z', 0.0, z_end))}-{_num(preset.span_radius_mm)})"
        terms.append(f"{_num(preset.size_span_mm)}+{_num(g)}*{d_span}")
    return _min(terms)


def _segment_edge_terms(preset: MeshPreset, segment_edges: Sequence[str]) -> list[str]:
    """Size terms (mm, gmsh MathEval) at the edges of segmented contacts:
    ``segment_edge_mm + segment_edge_growth * d`` for each distance expression d in
    ``segment_edges`` (to the circles at the ends of segmented levels and to the axial
    edges of each segment); empty for a lead without segments or a preset without
    ``segment_edge_mm``.

    The field is singular at the edges (|E| ~ d^-1/2) and the impedance of a segment
    converges slowly with the edge size, so segment edges may need a smaller size than
    ``size_edge_mm``; the edge layers of :mod:`vta.fem.mesh_edge_layers` then thin the
    tets that touch them.
    """
    if preset.segment_edge_mm is None:
        return []
    ge = preset.growth if preset.edge_growth is None else preset.edge_growth
    sg = ge if preset.segment_edge_growth is None else preset.segment_edge_growth
    return [f"{_num(preset.segment_edge_mm)}+{_num(sg)}*{d}" for d in segment_edges]


def _segment_edge_distance_field(gmsh, lead: LeadModel, named: dict[str, list[int]],
                                 preset: MeshPreset) -> str | None:
    """A gmsh ``Distance`` field to the boundary curves of the segmented contacts (their
    axial edges and the arcs at the ends of their levels), as ``"F<tag>"`` for
    :func:`_size_expression`; ``None`` for a lead without segments.

    gmsh samples each curve uniformly and answers the distance to the nearest sample
    from a k-d tree: the samples are ``segment_edge_mm / 4`` apart (the size at an edge
    is then at most ~8 % above ``segment_edge_mm``), and one lookup costs far less than
    the analytic distance to every edge.
    """
    surfaces = [t for c in lead.contacts() if c.arc_deg is not None for t in named[f"contact_{c.index}"]]
    if not surfaces:
        return None
    curves = sorted({abs(tag) for _, tag in gmsh.model.getBoundary(
        [(2, t) for t in surfaces], combined=False, oriented=False)})
    longest = max(_curve_length(gmsh, c) for c in curves)
    spacing = 0.25 * (preset.segment_edge_mm or preset.size_edge_mm)
    field = gmsh.model.mesh.field
    tag = field.add("Distance")
    field.setNumbers(tag, "CurvesList", curves)
    field.setNumber(tag, "Sampling", max(20, math.ceil(longest / spacing) + 1))
    return f"F{tag}"


def _curve_length(gmsh, tag: int) -> float:
    """Length (mm) of a model curve: a 32-piece polyline through it (within 0.1 % for
    the lines and arcs that bound contacts)."""
    lo, hi = gmsh.model.getParametrizationBounds(1, tag)
    ts = np.linspace(lo[0], hi[0], 33)
    xyz = np.asarray(gmsh.model.getValue(1, tag, ts)).reshape(-1, 3)
    return float(np.linalg.norm(np.diff(xyz, axis=0), axis=1).sum())


def _set_size_field(gmsh, expr: str) -> None:
    """Background size field: ``expr`` of the (lead-local) model coordinates."""
    field = gmsh.model.mesh.field
    tag = field.add("MathEval")
    field.setString(tag, "F", expr)
    field.setAsBackgroundMesh(tag)


# ----------------------------------------------------------------------------- meshing with fallbacks



class _HxtFailed(Exception):
    """gmsh's HXT 3D algorithm failed (it occasionally cannot recover the boundary)."""


def _mesh_with_fallbacks(lead, placement, domain, p: MeshPreset, shell: float, length: float):
    """:func:`_mesh_scene`, falling back to the Delaunay 3D algorithm if HXT fails."""
    try:
        return _mesh_scene(lead, placement, domain, p, shell, length)
    except _HxtFailed as exc:
        logger.warning("%s; meshing again with the Delaunay 3D algorithm", exc)
    return _mesh_scene(lead, placement, domain, replace(p, algorithm="delaunay"), shell, length)


def _mesh_scene(lead: LeadModel, placement: LeadPlacement, domain: Domain, p: MeshPreset,
                shell: float, length: float):
    """Geometry, mesh and conversion; returns the skfem mesh in the lead's local frame
    (:func:`vta.fem.mesh_templates.place_mesh` moves it to world mm) and the times at
    which meshing started and ended (perf_counter)."""
    with _gmsh_session("vta_lead") as gmsh:
        occ = gmsh.model.occ
        dom = _add_domain(occ, domain, placement)
        pieces = _add_lead_pieces(occ, lead, placement, length)
        shell_tag = _add_shell_solid(occ, lead.radius_mm, shell, length, placement) if shell > 0 else None
        volumes, surfaces = _fragment(gmsh, dom, pieces, shell_tag)
        _check_contacts(lead, surfaces)
        named = _named_surfaces(lead, surfaces)
        _add_physical_groups(gmsh, named, volumes)
        t1 = time.perf_counter()
        _set_mesh_options(gmsh, p)
        segment_distance = _segment_edge_distance_field(gmsh, lead, named, p)
        _set_size_field(gmsh, _size_expression(lead, p, length, segment_distance))
        try:
            _generate(gmsh)
        except VtaError as exc:
            if p.algorithm != "delaunay":
                raise _HxtFailed(str(exc)) from None
            raise
        t2 = time.perf_counter()
        mesh = _to_skfem(gmsh, volumes, named)
    return mesh, (t1, t2)


def _generate(gmsh) -> None:
    """Generate the 3D mesh; a gmsh failure becomes a VtaError."""
    try:
        gmsh.model.mesh.generate(3)
    except Exception as exc:  # gmsh raises plain Exception
        raise VtaError(f"meshing failed in gmsh: {exc}") from None


def _check_contacts(lead: LeadModel, surfaces: dict) -> None:
    missing = [c.index for c in lead.contacts() if not surfaces.get(c.index)]
    if missing:
        raise VtaError(f"meshing failed: contacts {missing} of '{lead.name}' have no surface in the domain")


def _named_surfaces(lead: LeadModel, surfaces: dict) -> dict[str, list[int]]:
    named = {f"contact_{c.index}": surfaces.get(c.index, []) for c in lead.contacts()}
    named["insulation"] = surfaces.get(_INSULATION, [])
    named["outer"] = surfaces.get("outer", [])
    return named


def _add_physical_groups(gmsh, named: dict[str, list[int]], volumes: dict[str, list[int]]) -> None:
    """gmsh physical groups with the skfem names (for .msh export while debugging)."""
    for name, tags in named.items():
        if tags:
            gmsh.model.addPhysicalGroup(2, tags, name=name)
    for name, tags in volumes.items():
        if tags:
            gmsh.model.addPhysicalGroup(3, tags, name=name)
