"""Geometry and gmsh meshing of the axisymmetric (r, z) domain of :mod:`vta.fem.axisym`.

The meridian half-plane of a ring-contact lead (or of a spherical electrode) in a
sphere centred on the lead axis or a cylinder coaxial with it is described as closed
loops of lines and circle arcs per region ("tissue", "encapsulation"): the lead
profile split at the contact edges (the hemispherical tip is an arc), the optional
encapsulation interface, the outer boundary and the axis. gmsh's built-in kernel
meshes it into straight-sided triangles with one analytic size field (``MathEval``):
finest at the contact edges, where the field is singular, graded linearly with the
distance from them and from the lead surface, and capped by a far-field size.

Frame and units
---------------
* (r, z) is the lead's local frame of :mod:`vta.leads`: z along the lead axis with
  z = 0 at the distal end, r >= 0; lengths in mm.
* The lead occupies ``r <= a`` for ``z >= a`` plus the quarter disc of radius ``a``
  centred at ``(0, a)`` (the hemispherical tip), ``a`` = lead radius.

Boundary names: ``contact_k``, ``insulation``, ``interface`` (tissue/encapsulation),
``outer`` and ``axis``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import VtaError
from ..leads import LeadModel

__all__ = ["PRESETS", "AxisymPreset"]


# --------------------------------------------------------------------------------------
# accuracy presets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisymPreset:
    """Mesh sizes of one accuracy preset (all lengths in mm).

    Attributes
    ----------
    h_edge_mm : float
        Element size at the contact edges, where the field is singular.
    h_lead_mm : float
        Element size along the rest of the lead surface.
    growth : float
        Size increase per mm of distance (dimensionless): the size at distance ``d``
        from an edge is ``h_edge + growth * d`` (geometric grading), capped by
        ``h_far_mm``.
    h_far_mm : float
        Largest element size (far field, outer boundary).
    vta_level : int
        Sub-division level of the VTA integration: each triangle is split into
        ``4**vta_level`` sub-triangles on which ``|E|^2`` is interpolated linearly and
        the super-threshold part is integrated exactly.
    arc_fraction : float
        Element size on curved boundaries (the tip hemisphere, a spherical electrode)
        as a fraction of their radius (dimensionless); bounds the error of the
        straight-sided (faceted) boundary, whose sag is ``radius * arc_fraction^2 / 8``.
    """

    h_edge_mm: float
    h_lead_mm: float
    growth: float
    h_far_mm: float
    vta_level: int = 3
    arc_fraction: float = 0.1


PRESETS: dict[str, AxisymPreset] = {
    "fast": AxisymPreset(0.004, 0.35, 0.45, 6.0, vta_level=3, arc_fraction=0.15),
    "default": AxisymPreset(0.002, 0.2, 0.25, 4.0, vta_level=3, arc_fraction=0.1),
    "fine": AxisymPreset(0.001, 0.1, 0.15, 2.0, vta_level=4, arc_fraction=0.05),
}


def _scaled_preset(preset: str, size_scale: float) -> AxisymPreset:
    if preset not in PRESETS:
        raise VtaError(f"unknown axisymmetric mesh preset {preset!r}; choose one of {sorted(PRESETS)}")
    if not (size_scale > 0 and math.isfinite(size_scale)):
        raise VtaError(f"size_scale must be a positive number, got {size_scale}")
    p = PRESETS[preset]
    s = float(size_scale)
    return AxisymPreset(p.h_edge_mm * s, p.h_lead_mm * s, p.growth * s, p.h_far_mm * s,
                        p.vta_level, p.arc_fraction * s)


# --------------------------------------------------------------------------------------
# geometry description in the (r, z) half-plane
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Curve:
    """A boundary or interface curve: a line or a circle arc (< pi) from p to q."""

    p: tuple[float, float]
    q: tuple[float, float]
    name: str
    center: tuple[float, float] | None = None


@dataclass
class _Geometry:
    """Closed loops of curves per region plus the singular points for mesh grading.

    ``regions`` maps a region name ("tissue", "encapsulation") to its closed loop of
    curves; ``edge_points`` are the contact edges (singular points of the field);
    ``surface_distance`` is a gmsh MathEval expression in x = r, y = z of the distance
    (mm) to the lead (or electrode) surface, where the mesh size is ``h_lead``;
    ``arcs`` are the (centre, radius) of curved boundaries sized by ``arc_fraction``.
    """

    regions: dict[str, list[_Curve]]
    edge_points: list[tuple[float, float]]
    contact_names: list[str]
    surface_distance: str
    arcs: list[tuple[tuple[float, float], float]] = field(default_factory=list)


def _arc_point(a: float, z: float) -> tuple[float, float]:
    """Point of the tip hemisphere (radius a, centre (0, a)) at height z in [0, a]."""
    return (math.sqrt(max(a * a - (a - z) ** 2, 0.0)), z)


def _lead_profile(lead: LeadModel, z_exit: float) -> list[_Curve]:
    """Curves of the lead surface from the tip (0, 0) to the exit point (a, z_exit),
    split at the contact edges and named "contact_k" or "insulation"."""
    a = lead.radius_mm
    breaks = {a, z_exit}
    for c in lead.contacts():
        breaks.update(z for z in (c.z_start_mm, c.z_end_mm) if 0.0 < z < z_exit)
    curves: list[_Curve] = []
    prev_z, prev = 0.0, (0.0, 0.0)
    for z in sorted(breaks):
        name = _profile_name(lead, 0.5 * (prev_z + z))
        if z <= a:  # on the hemispherical tip: arc about (0, a)
            pt = _arc_point(a, z)
            curves.append(_Curve(prev, pt, name, center=(0.0, a)))
        else:
            pt = (a, z)
            curves.append(_Curve(prev, pt, name))
        prev, prev_z = pt, z
    return curves


def _profile_name(lead: LeadModel, z_mid: float) -> str:
    for c in lead.contacts():
        z0 = 0.0 if c.is_tip else c.z_start_mm
        if z0 <= z_mid <= c.z_end_mm:
            return f"contact_{c.index}"
    return "insulation"


def _contact_edges(lead: LeadModel) -> list[tuple[float, float]]:
    """Contact edges on the lead surface (r, z): singular points of the field (mm)."""
    a = lead.radius_mm
    pts = []
    for c in lead.contacts():
        zs = (c.z_end_mm,) if c.is_tip else (c.z_start_mm, c.z_end_mm)
        for z in zs:
            pts.append(_arc_point(a, z) if z < a else (a, z))
    return pts


@dataclass(frozen=True)
class _OuterShape:
    """Outer boundary: sphere (centre z_c, radius R) or cylinder (radius R, z in [z0, z1])."""

    kind: str
    z_c: float
    radius: float
    z_bottom: float
    z_top_cyl: float = 0.0

    def z_exit(self, rho: float) -> float:
        """Axial position where the surface r = rho leaves the domain (mm)."""
        if self.kind == "sphere":
            return self.z_c + math.sqrt(self.radius**2 - rho**2)
        return self.z_top_cyl

    def curves(self, rho_from: float, rho_to: float, name: str = "outer") -> list[_Curve]:
        """Outer boundary from the exit point at r = rho_from outwards and down to the
        axis (rho_to = 0), or to the exit point at r = rho_to."""
        p = (rho_from, self.z_exit(rho_from))
        if self.kind == "sphere":
            c = (0.0, self.z_c)
            if rho_to > 0.0:
                return [_Curve(p, (rho_to, self.z_exit(rho_to)), name, center=c)]
            eq = (self.radius, self.z_c)
            return [_Curve(p, eq, name, center=c), _Curve(eq, (0.0, self.z_bottom), name, center=c)]
        if rho_to > 0.0:
            return [_Curve(p, (rho_to, self.z_top_cyl), name)]
        c1 = (self.radius, self.z_top_cyl)
        c2 = (self.radius, self.z_bottom)
        return [_Curve(p, c1, name), _Curve(c1, c2, name), _Curve(c2, (0.0, self.z_bottom), name)]


def _reverse(curves: Sequence[_Curve]) -> list[_Curve]:
    return [_Curve(c.q, c.p, c.name, c.center) for c in reversed(curves)]


def _lead_geometry(lead: LeadModel, shape: _OuterShape, t_encap: float) -> _Geometry:
    """Tissue (and encapsulation) loops for a lead in a sphere or cylinder."""
    a = lead.radius_mm
    b = a + t_encap
    z_exit_a = shape.z_exit(a)
    profile = _lead_profile(lead, z_exit_a)
    names = [f"contact_{c.index}" for c in lead.contacts()]
    edges = _contact_edges(lead)
    dist = f"sqrt(x^2+min(y-({a!r}),0)^2)-({a!r})"  # distance to the lead body
    if t_encap <= 0.0:
        loop = [_Curve((0.0, shape.z_bottom), (0.0, 0.0), "axis")]
        loop += profile
        loop += shape.curves(a, 0.0)
        return _Geometry({"tissue": _orient(loop)}, edges, names, dist, [((0.0, a), a)])
    z_exit_b = shape.z_exit(b)
    iface = [
        _Curve((0.0, -t_encap), (b, a), "interface", center=(0.0, a)),
        _Curve((b, a), (b, z_exit_b), "interface"),
    ]
    encap = [_Curve((0.0, -t_encap), (0.0, 0.0), "axis")] + profile
    encap += shape.curves(a, b) + _reverse(iface)
    tissue = [_Curve((0.0, shape.z_bottom), (0.0, -t_encap), "axis")] + iface + shape.curves(b, 0.0)
    return _Geometry({"tissue": _orient(tissue), "encapsulation": _orient(encap)}, edges, names, dist,
                     [((0.0, a), a), ((0.0, a), b)])


def _orient(loop: list[_Curve]) -> list[_Curve]:
    """Check that a loop is closed (consecutive end points coincide)."""
    for c0, c1 in zip(loop, loop[1:] + loop[:1]):
        if math.dist(c0.q, c1.p) > 1e-9:
            raise VtaError(f"internal error: open boundary loop at {c0.q} -> {c1.p}")
    return loop


def _spheres_geometry(a: float, R: float) -> _Geometry:
    """Spherical electrode of radius a (contact_0) inside a sphere of radius R."""
    loop = [
        _Curve((0.0, -R), (0.0, -a), "axis"),
        _Curve((0.0, -a), (a, 0.0), "contact_0", center=(0.0, 0.0)),
        _Curve((a, 0.0), (0.0, a), "contact_0", center=(0.0, 0.0)),
        _Curve((0.0, a), (0.0, R), "axis"),
        _Curve((0.0, R), (R, 0.0), "outer", center=(0.0, 0.0)),
        _Curve((R, 0.0), (0.0, -R), "outer", center=(0.0, 0.0)),
    ]
    return _Geometry({"tissue": loop}, [], ["contact_0"], f"sqrt(x^2+y^2)-({a!r})", [((0.0, 0.0), a)])


# --------------------------------------------------------------------------------------
# meshing (gmsh, built-in kernel)
# --------------------------------------------------------------------------------------


@dataclass
class _TriMesh:
    """Straight-sided triangle mesh of the (r, z) domain.

    Attributes
    ----------
    points : (N, 2) vertex coordinates (r, z) in mm.
    tris : (M, 3) vertex indices, counter-clockwise.
    region : (M,) 0 = tissue, 1 = encapsulation.
    boundary : boundary name -> (E, 2) vertex indices of its edges.
    """

    points: np.ndarray
    tris: np.ndarray
    region: np.ndarray
    boundary: dict[str, np.ndarray]


class _GmshGeo:
    """Deduplicating wrapper around gmsh.model.geo for loops of :class:`_Curve`."""

    def __init__(self, gmsh_mod) -> None:
        self.g = gmsh_mod
        self.points: dict[tuple[float, float], int] = {}
        self.curves: dict[tuple, int] = {}
        self.names: dict[str, list[int]] = {}

    def point(self, xy: tuple[float, float]) -> int:
        key = (round(xy[0], 12), round(xy[1], 12))
        if key not in self.points:
            self.points[key] = self.g.model.geo.addPoint(xy[0], xy[1], 0.0)
        return self.points[key]

    def curve(self, c: _Curve) -> int:
        p, q = self.point(c.p), self.point(c.q)
        if (q, p) in self.curves:
            return -self.curves[(q, p)]
        if (p, q) not in self.curves:
            if c.center is None:
                tag = self.g.model.geo.addLine(p, q)
            else:
                tag = self.g.model.geo.addCircleArc(p, self.point(c.center), q)
            self.curves[(p, q)] = tag
            self.names.setdefault(c.name, []).append(tag)
        return self.curves[(p, q)]

    def surface(self, loop: list[_Curve]) -> int:
        loop_tag = self.g.model.geo.addCurveLoop([self.curve(c) for c in loop])
        return self.g.model.geo.addPlaneSurface([loop_tag])


def _nested_min(terms: list[str]) -> str:
    out = terms[0]
    for t in terms[1:]:
        out = f"min({out}, {t})"
    return out


def _size_expression(geom: _Geometry, p: AxisymPreset) -> str:
    """gmsh MathEval size (mm) at (x, y) = (r, z): ``h_edge + growth * d`` from the
    contact edges, ``h_lead + growth * d`` from the lead (or electrode) surface,
    capped by ``h_far``."""
    terms = [f"{p.h_far_mm!r}"]
    if geom.edge_points:
        dists = [f"sqrt((x-({r!r}))^2+(y-({z!r}))^2)" for r, z in geom.edge_points]
        terms.append(f"{p.h_edge_mm!r}+{p.growth!r}*{_nested_min(dists)}")
    terms.append(f"{p.h_lead_mm!r}+{p.growth!r}*max({geom.surface_distance}, 0)")
    for (cr, cz), rad in geom.arcs:
        dist = f"max(sqrt((x-({cr!r}))^2+(y-({cz!r}))^2)-({rad!r}), 0)"
        terms.append(f"{p.arc_fraction * rad!r}+{p.growth!r}*{dist}")
    return _nested_min(terms)


def _size_fields(gmsh_mod, geom: _Geometry, p: AxisymPreset) -> None:
    """Background size field: fine at contact edges and on the lead, graded outwards."""
    f = gmsh_mod.model.mesh.field
    tag = f.add("MathEval")
    f.setString(tag, "F", _size_expression(geom, p))
    f.setAsBackgroundMesh(tag)


def _mesh(geom: _Geometry, p: AxisymPreset) -> _TriMesh:
    """Mesh the (r, z) geometry with gmsh (2D, Frontal-Delaunay), quietly."""
    import gmsh

    initialised_here = not gmsh.isInitialized()
    if initialised_here:
        gmsh.initialize(readConfigFiles=False, interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.Verbosity", 0)
        gmsh.model.add("vta_axisym")
        geo = _GmshGeo(gmsh)
        surfaces = {name: geo.surface(loop) for name, loop in geom.regions.items()}
        gmsh.model.geo.synchronize()
        _size_fields(gmsh, geom, p)
        for key, val in {
            "Mesh.MeshSizeExtendFromBoundary": 0,
            "Mesh.MeshSizeFromPoints": 0,
            "Mesh.MeshSizeFromCurvature": 0,
            "Mesh.Algorithm": 5,
            "Mesh.MeshSizeMax": p.h_far_mm,
            "Mesh.LcIntegrationPrecision": 1e-3,  # 1D sizing: default 1e-9 is very slow
        }.items():
            gmsh.option.setNumber(key, val)
        gmsh.model.mesh.generate(2)
        return _extract_mesh(gmsh, geo, surfaces)
    finally:
        gmsh.model.remove()
        if initialised_here:
            gmsh.finalize()


def _extract_mesh(gmsh_mod, geo: _GmshGeo, surfaces: dict[str, int]) -> _TriMesh:
    tags, coords, _ = gmsh_mod.model.mesh.getNodes()
    lookup = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
    lookup[tags.astype(np.int64)] = np.arange(tags.size)
    points = coords.reshape(-1, 3)[:, :2].copy()
    tris, region = [], []
    for reg_id, name in enumerate(("tissue", "encapsulation")):
        if name not in surfaces:
            continue
        etypes, _, enodes = gmsh_mod.model.mesh.getElements(2, surfaces[name])
        for et, en in zip(etypes, enodes):
            if et != 2:
                raise VtaError(f"internal error: unexpected gmsh element type {et}")
            t = lookup[en.astype(np.int64)].reshape(-1, 3)
            tris.append(t)
            region.append(np.full(t.shape[0], reg_id, dtype=np.int8))
    tris_a = np.concatenate(tris)
    boundary = {}
    for name, ctags in geo.names.items():
        segs = []
        for ct in ctags:
            etypes, _, enodes = gmsh_mod.model.mesh.getElements(1, ct)
            for et, en in zip(etypes, enodes):
                segs.append(lookup[en.astype(np.int64)].reshape(-1, 2))
        boundary[name] = np.concatenate(segs) if segs else np.empty((0, 2), dtype=np.int64)
    # drop unused nodes (e.g. arc centres) and orient triangles counter-clockwise
    used = np.unique(tris_a)
    remap = np.full(points.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    points = points[used]
    tris_a = remap[tris_a]
    boundary = {k: remap[v] for k, v in boundary.items()}
    d = points[tris_a]
    det = (d[:, 1, 0] - d[:, 0, 0]) * (d[:, 2, 1] - d[:, 0, 1]) - (d[:, 2, 0] - d[:, 0, 0]) * (d[:, 1, 1] - d[:, 0, 1])
    flip = det < 0
    tris_a[flip] = tris_a[flip][:, [0, 2, 1]]
    points[:, 0] = np.maximum(points[:, 0], 0.0)  # r >= 0 exactly on the axis
    return _TriMesh(points, tris_a, np.concatenate(region), boundary)
