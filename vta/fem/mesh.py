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

Ring-contact leads (no encapsulation) get a *revolved layer*: a thin tube round the
lead over the contacts, meshed by revolving its graded (r, z) section in ``tube_sectors``
structured sectors (prisms split into tets). Its section is refined to ``tube_edge_mm``
at the contact edges while the sectors stay wide: the edge singularity is 2D in (r, z),
and isotropic tets that small all round each edge would cost ~10x more. The layer is an
inscribed regular polygon round the axis; the lead radius in the model is widened so
that the polygon's logarithmic capacity equals the true circle's
(:func:`polygon_capacity_ratio`), which makes the exterior field and the impedance those
of the round lead. Elsewhere (and for directional leads) the tets are isotropic.

gmsh is global, non-thread-safe state: every build runs under a module lock and
finalizes what it initialised. Builds use one gmsh thread: deterministic meshes, and on
two cores no slower.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np

from ..errors import VtaError
from ..leads import ContactGeometry, LeadModel, LeadPlacement
from ..threads import run_interruptibly

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

_GMSH_LOCK = threading.RLock()
_INSULATION = -1  # label of lead pieces that are not a contact
_MARGIN_MM = 1.0  # minimum clearance between the active lead part and the domain boundary
_ALGORITHMS_3D = {"delaunay": 1, "hxt": 10}
_PACK_LIMIT = 2**21  # nodes: below it a face's three vertex indices pack into one int64


# ----------------------------------------------------------------------------- inputs


def _vec3(value: Sequence[float], what: str) -> np.ndarray:
    a = np.asarray(value, dtype=float).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise VtaError(f"{what} must be three finite numbers, got {list(np.ravel(value))}")
    return a


def _positive(value: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise VtaError(f"{what} must be a positive number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise VtaError(f"{what} must be a positive number, got {value!r}")
    return v


@dataclass(frozen=True)
class Domain:
    """The tissue domain: a sphere or an axis-aligned box in world coordinates.

    Attributes
    ----------
    shape : str
        ``"sphere"`` or ``"box"``.
    center_mm : ndarray, shape (3,)
        Centre of the sphere or box (mm).
    radius_mm : float or None
        Sphere radius (mm); ``None`` for a box.
    size_mm : ndarray, shape (3,), or None
        Box edge lengths along world x, y, z (mm); ``None`` for a sphere.
    """

    shape: str
    center_mm: np.ndarray
    radius_mm: float | None = None
    size_mm: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.shape not in ("sphere", "box"):
            raise VtaError(f"domain shape must be 'sphere' or 'box', got {self.shape!r}")
        object.__setattr__(self, "center_mm", _vec3(self.center_mm, "domain center_mm"))
        if self.shape == "sphere":
            if self.radius_mm is None:
                raise VtaError("a sphere domain needs radius_mm")
            object.__setattr__(self, "radius_mm", _positive(self.radius_mm, "domain radius_mm"))
            object.__setattr__(self, "size_mm", None)
        else:
            if self.size_mm is None:
                raise VtaError("a box domain needs size_mm (three edge lengths)")
            size = _vec3(self.size_mm, "domain size_mm")
            if np.any(size <= 0):
                raise VtaError(f"domain size_mm must be positive, got {list(size)}")
            object.__setattr__(self, "size_mm", size)
            object.__setattr__(self, "radius_mm", None)

    @classmethod
    def sphere(cls, center_mm: Sequence[float], radius_mm: float) -> "Domain":
        """A sphere of ``radius_mm`` (mm) centred at ``center_mm`` (mm)."""
        return cls("sphere", np.asarray(center_mm, dtype=float), radius_mm=radius_mm)

    @classmethod
    def box(cls, center_mm: Sequence[float], size_mm: Sequence[float]) -> "Domain":
        """An axis-aligned box with edge lengths ``size_mm`` (mm) centred at ``center_mm``."""
        return cls("box", np.asarray(center_mm, dtype=float), size_mm=np.asarray(size_mm, dtype=float))

    @property
    def volume_mm3(self) -> float:
        """Volume of the domain (mm^3), lead included."""
        if self.shape == "sphere":
            return 4.0 / 3.0 * math.pi * self.radius_mm**3
        return float(np.prod(self.size_mm))

    def depth_mm(self, points_mm: np.ndarray) -> np.ndarray:
        """Distance (mm) from points (..., 3) to the boundary, positive inside."""
        d = np.asarray(points_mm, dtype=float) - self.center_mm
        if self.shape == "sphere":
            return self.radius_mm - np.linalg.norm(d, axis=-1)
        return np.min(0.5 * self.size_mm - np.abs(d), axis=-1)

    def farthest_distance_mm(self, point_mm: np.ndarray) -> float:
        """Largest distance (mm) from a point to any point of the domain."""
        d = np.asarray(point_mm, dtype=float) - self.center_mm
        if self.shape == "sphere":
            return float(np.linalg.norm(d) + self.radius_mm)
        return float(np.linalg.norm(np.abs(d) + 0.5 * self.size_mm))

    def describe(self) -> str:
        """One-line description for messages."""
        c = ", ".join(f"{v:g}" for v in self.center_mm)
        if self.shape == "sphere":
            return f"sphere centre ({c}) mm radius {self.radius_mm:g} mm"
        s = " x ".join(f"{v:g}" for v in self.size_mm)
        return f"box centre ({c}) mm size {s} mm"


@dataclass(frozen=True)
class Encapsulation:
    """A fibrous encapsulation layer around the lead.

    Attributes
    ----------
    thickness_mm : float
        Layer thickness (mm); 0 means no layer.
    conductivity_S_per_m : float
        Conductivity of the layer (S/m); carried for the solver, not used here.
    """

    thickness_mm: float
    conductivity_S_per_m: float = 0.1

    def __post_init__(self) -> None:
        t = float(self.thickness_mm)
        if not (t >= 0 and math.isfinite(t)):
            raise VtaError(f"encapsulation thickness_mm must be >= 0, got {self.thickness_mm!r}")
        object.__setattr__(self, "thickness_mm", t)
        _positive(self.conductivity_S_per_m, "encapsulation conductivity_S_per_m")


@dataclass(frozen=True)
class MeshPreset:
    """Element sizes of a lead mesh (all in mm).

    The size at a point is the minimum of: ``size_edge_mm`` at contact edges,
    ``size_contact_mm`` on contact surfaces, ``size_lead_mm`` on the insulation, each
    growing by ``growth`` mm per mm of distance, and ``size_span_mm`` inside a
    cylinder of radius ``span_radius_mm`` around the active span (growing the same
    way outside it); nowhere larger than ``size_far_mm``.

    Attributes
    ----------
    name : str
    size_contact_mm : float
        Element size on the contact surfaces (mm).
    size_edge_mm : float
        Element size at the contact edges (mm).
    size_lead_mm : float
        Element size on the insulating lead surface (mm).
    growth : float
        Linear growth of the element size with distance (mm per mm, dimensionless).
    size_far_mm : float
        Largest element size (mm), reached far from the lead.
    size_span_mm : float or None
        Element size within ``span_radius_mm`` of the active span (mm); ``None``: off.
    span_radius_mm : float
        Radius of the refined region around the active span axis (mm).
    edge_growth : float or None
        Growth of the element size away from the contact edges (mm per mm); ``None``:
        ``growth``. A faster growth keeps the edge refinement local.
    size_shaft_mm : float or None
        Element size on the lead body more than ``shaft_margin_mm`` beyond the last
        contact (mm), where the field hardly matters; ``None``: ``size_lead_mm``.
    shaft_margin_mm : float
        Axial distance beyond the last contact before ``size_shaft_mm`` applies (mm).
    algorithm : str
        gmsh 3D algorithm: ``"delaunay"`` (fastest below ~10^5 tets) or ``"hxt"``
        (multi-threaded).
    """

    name: str
    size_contact_mm: float
    size_edge_mm: float
    size_lead_mm: float
    growth: float
    size_far_mm: float
    size_span_mm: float | None = None
    span_radius_mm: float = 3.0
    edge_growth: float | None = None
    size_shaft_mm: float | None = None
    shaft_margin_mm: float = 2.0
    tube_sectors: int = 0
    tube_thickness_mm: float = 0.15
    tube_edge_mm: float = 0.01
    tube_growth: float = 0.4
    tube_margin_mm: float = 0.5
    algorithm: str = "delaunay"

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS_3D:
            raise VtaError(f"mesh preset '{self.name}': algorithm must be one of {', '.join(_ALGORITHMS_3D)}")
        for key in ("size_contact_mm", "size_edge_mm", "size_lead_mm", "growth", "size_far_mm", "span_radius_mm",
                    "shaft_margin_mm"):
            _positive(getattr(self, key), f"mesh preset '{self.name}' {key}")
        for key in ("size_span_mm", "edge_growth", "size_shaft_mm"):
            if getattr(self, key) is not None:
                _positive(getattr(self, key), f"mesh preset '{self.name}' {key}")
        if self.tube_sectors:
            if int(self.tube_sectors) != self.tube_sectors or self.tube_sectors < 8 or self.tube_sectors % 4:
                raise VtaError(f"mesh preset '{self.name}': tube_sectors must be a multiple of 4, >= 8 (or 0)")
            for key in ("tube_thickness_mm", "tube_edge_mm", "tube_growth", "tube_margin_mm"):
                _positive(getattr(self, key), f"mesh preset '{self.name}' {key}")

    def scaled(self, scale: float) -> "MeshPreset":
        """All element sizes multiplied by ``scale`` (growth and radii unchanged)."""
        s = _positive(scale, "mesh scale")
        if s == 1.0:
            return self
        return replace(
            self,
            name=f"{self.name}*{s:g}",
            size_contact_mm=self.size_contact_mm * s,
            size_edge_mm=self.size_edge_mm * s,
            size_lead_mm=self.size_lead_mm * s,
            size_far_mm=self.size_far_mm * s,
            size_span_mm=None if self.size_span_mm is None else self.size_span_mm * s,
            size_shaft_mm=None if self.size_shaft_mm is None else self.size_shaft_mm * s,
            tube_thickness_mm=self.tube_thickness_mm * s,
            tube_edge_mm=self.tube_edge_mm * s,
            tube_sectors=0 if not self.tube_sectors else 4 * max(2, round(self.tube_sectors / (4 * s))),
        )


PRESETS: dict[str, MeshPreset] = {
    # Ring-contact leads get the revolved layer (``tube_*``): its (r, z) section is
    # graded to tube_edge_mm at the contact edges while the sectors stay wide, which
    # isotropic tets cannot do. Medtronic 3389 in a 25 mm sphere, contact 1 at -1/-3 mA,
    # against the converged axisymmetric reference (540.58 ohm, 9.716/50.05 mm^3):
    #   fast     35k DOFs  impedance -0.73 %  VTA -1.9 % / -0.1 %
    #   default  75k DOFs  impedance -0.29 %  VTA -0.3..0.0 % / 0.0..+0.1 %
    #   fine    276k DOFs  impedance -0.08 %  VTA -0.08 % / -0.17 %
    # (ranges: meshes of domains moved by up to 0.07 mm; the VTA of one mesh scatters by
    # a few tenths of a percent, up to ~0.7 % on other cases: 3387 at -2 V +0.7 %).
    # Directional leads (and leads with encapsulation) get isotropic tets refined to
    # size_edge_mm at the contact edges: about 1 % low on impedance at "default".
    "fast": MeshPreset("fast", size_contact_mm=0.3, size_edge_mm=0.15, size_lead_mm=0.5,
                       growth=0.35, size_far_mm=6.0, size_shaft_mm=1.0, tube_sectors=12,
                       tube_edge_mm=0.02, tube_growth=0.8, algorithm="hxt"),
    "default": MeshPreset("default", size_contact_mm=0.2, size_edge_mm=0.09, size_lead_mm=0.35,
                          growth=0.27, size_far_mm=5.0, size_shaft_mm=0.8, tube_sectors=16,
                          tube_edge_mm=0.01, tube_growth=0.7, algorithm="hxt"),
    "fine": MeshPreset("fine", size_contact_mm=0.1, size_edge_mm=0.04, size_lead_mm=0.2,
                       growth=0.2, size_far_mm=3.5, size_shaft_mm=0.5, tube_sectors=32,
                       tube_edge_mm=0.005, tube_growth=0.5, algorithm="hxt"),
}


def _resolve_preset(preset: str | MeshPreset, scale: float) -> MeshPreset:
    if isinstance(preset, MeshPreset):
        p = preset
    elif isinstance(preset, str) and preset in PRESETS:
        p = PRESETS[preset]
    else:
        raise VtaError(f"unknown mesh preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return p.scaled(scale)


# ----------------------------------------------------------------------------- result


@dataclass
class LeadMesh:
    """A tetrahedral mesh around a lead, with tagged contacts.

    Attributes
    ----------
    mesh : skfem.MeshTet
        World mm. Boundaries ``"contact_0"`` .. ``"contact_{K-1}"``, ``"insulation"``,
        ``"outer"``; subdomains ``"tissue"``, ``"encapsulation"`` (possibly empty).
    n_contacts : int
        Number of contacts K.
    preset : str
        Name of the mesh preset used.
    build_time_s : float
        Wall time of geometry + meshing + conversion (s).
    mesh_preset : MeshPreset or None
        The sizes actually used (after ``scale``).
    """

    mesh: "skfem.MeshTet"  # noqa: F821
    n_contacts: int
    preset: str
    build_time_s: float = 0.0
    mesh_preset: MeshPreset | None = None

    def contact_facets(self, k: int) -> np.ndarray:
        """Facet indices (into ``mesh.facets``) of contact ``k``."""
        if not isinstance(k, (int, np.integer)) or not 0 <= k < self.n_contacts:
            raise VtaError(f"contact index {k} is out of range (contacts 0..{self.n_contacts - 1})")
        return self.mesh.boundaries[f"contact_{int(k)}"]

    @property
    def n_nodes(self) -> int:
        """Number of mesh vertices."""
        return int(self.mesh.p.shape[1])

    @property
    def n_elements(self) -> int:
        """Number of tetrahedra."""
        return int(self.mesh.t.shape[1])

    def info(self) -> dict:
        """Plain-data summary: kind, nodes, elements, preset, build time (s)."""
        return {
            "kind": "tet",
            "nodes": self.n_nodes,
            "elements": self.n_elements,
            "preset": self.preset,
            "build_time_s": round(self.build_time_s, 3),
        }


# ----------------------------------------------------------------------------- checks


def check_placement(lead: LeadModel, placement: LeadPlacement, domain: Domain, shell_mm: float = 0.0) -> None:
    """The active part of the lead (tip to the last contact) must be inside the domain.

    Both ends need a clearance of the lead radius + ``shell_mm`` (encapsulation) +
    1 mm from the domain boundary. The one rule of the 3D and the axisymmetric paths.

    Raises
    ------
    VtaError
        Naming the end of the lead that is too close to (or outside) the boundary.
    """
    need = lead.radius_mm + shell_mm + _MARGIN_MM
    tip = placement.tip_mm
    if domain.depth_mm(tip) < need:
        where = "outside" if domain.depth_mm(tip) <= 0 else "too close to the boundary of"
        raise VtaError(
            f"lead tip at ({', '.join(f'{v:g}' for v in tip)}) mm is {where} the domain "
            f"({domain.describe()}); it must be at least {need:g} mm inside"
        )
    last = lead.contacts()[-1]
    end = placement.to_world(np.array([0.0, 0.0, last.z_end_mm]))
    if domain.depth_mm(end) < need:
        raise VtaError(
            f"contact {last.index} of '{lead.name}' (proximal end at "
            f"({', '.join(f'{v:.3g}' for v in end)}) mm) is not at least {need:g} mm inside the domain "
            f"({domain.describe()})"
        )


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
    if preset.tube_sectors:
        smallest = min(smallest, preset.tube_edge_mm)
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


def _breakpoints(lead: LeadModel, length_mm: float, radius_mm: float | None = None) -> list[float]:
    r = lead.radius_mm if radius_mm is None else radius_mm
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


def _add_lead_pieces(occ, lead: LeadModel, placement: LeadPlacement, length_mm: float,
                     radius_mm: float | None = None) -> list[tuple[int, int]]:
    """The lead body as volumes labelled by contact index (or insulation), in the lead's
    local frame (radius ``radius_mm``, default the lead's)."""
    r = lead.radius_mm if radius_mm is None else radius_mm
    contacts = lead.contacts()
    tip = contacts[0] if contacts[0].is_tip else None
    if tip is not None and tip.z_end_mm < r - 1e-9:
        raise VtaError(f"lead '{lead.name}': a tip contact shorter than the tip radius is not supported")
    pieces = [(occ.addSphere(0, 0, r, r, angle1=-0.5 * math.pi, angle2=0.0), tip.index if tip else _INSULATION)]
    zs = _breakpoints(lead, length_mm, r)
    for z0, z1 in zip(zs[:-1], zs[1:]):
        covering = _level_of(lead, z0, z1)
        if len(covering) > 1:
            pieces.extend(_add_wedges(occ, z0, z1, r, covering))
        else:
            label = covering[0].index if covering else _INSULATION
            pieces.append((occ.addCylinder(0, 0, z0, 0, 0, z1 - z0, r), label))
    return pieces


@dataclass(frozen=True)
class _Tube:
    """The revolved layer around the lead: r in [r_in, r_out], z in [z_lo, z_hi] (local
    mm), ``sectors`` equal sectors round the axis, section points at ``z_points``."""

    r_in: float
    r_out: float
    z_lo: float
    z_hi: float
    sectors: int
    z_points: tuple[float, ...]


def polygon_capacity_ratio(n: int) -> float:
    """Logarithmic capacity of a regular n-gon over its circumradius.

    ``sin(pi/n) Gamma(1/n) / (2^(2/n) sqrt(pi) Gamma(1/2 + 1/n))`` (Polya and Szego):
    far from it, a prism with this cross-section conducts like a circular cylinder of
    radius ``ratio * circumradius``. ``1 - ratio`` is about ``3.2 / n^2`` (0.79 % for
    n = 20), close to the area deficit ``pi^2 / (3 n^2)`` and twice the perimeter
    deficit ``pi^2 / (6 n^2)``.
    """
    n = int(n)
    if n < 3:
        raise VtaError(f"a polygon needs at least 3 sides, got {n}")
    return (math.sin(math.pi / n) * math.gamma(1.0 / n)
            / (2.0 ** (2.0 / n) * math.sqrt(math.pi) * math.gamma(0.5 + 1.0 / n)))


def _ring_label(lead: LeadModel):
    """z (local mm) -> the label of the ring lead's surface there: contact index or
    insulation (a tip contact covers the hemisphere)."""
    spans = [(c.z_start_mm, c.z_end_mm, c.index, c.is_tip) for c in lead.contacts()]

    def label(z: float):
        for z0, z1, index, tip in spans:
            if (tip or z0 < z) and z < z1:
                return index
        return _INSULATION
    return label


def _plan_tube(lead: LeadModel, preset: MeshPreset, shell_mm: float, radius_mm: float) -> _Tube | None:
    """The revolved layer for a ring-contact lead, or None (directional lead, tube off,
    or edges too close to the tip hemisphere)."""
    if not preset.tube_sectors or not lead.is_axisymmetric or shell_mm > 0:
        # (with an encapsulation layer gmsh loses the revolved layers in the Boolean
        # operations: the contact edges get isotropic tets)
        return None
    edges = sorted({z for z0, z1 in lead.level_extents_mm() for z in (z0, z1) if z > 1e-9})
    z_lo = edges[0] - preset.tube_margin_mm
    z_hi = edges[-1] + preset.tube_margin_mm
    if z_lo < radius_mm + 0.05:  # the layer must stay on the cylindrical part
        z_lo = radius_mm + 0.05
        if edges[0] - z_lo < 0.05:
            return None
    t = preset.tube_thickness_mm
    pts = tuple([z_lo] + [z for z in edges if z_lo < z < z_hi] + [z_hi])
    return _Tube(radius_mm, radius_mm + t, z_lo, z_hi, int(preset.tube_sectors), pts)


def _add_tube(occ, tube: _Tube, placement: LeadPlacement) -> list[int]:
    """Revolve the (r, z) section of the layer round the lead axis in four quarters of
    ``sectors / 4`` structured layers each (gmsh extrusion: prisms split into tets);
    return the volume tags (lead-local frame: gmsh keeps the revolution parameters of
    an extruded entity and would lose the layers if it were moved afterwards)."""
    local = [(tube.r_in, z) for z in tube.z_points] + [(tube.r_out, tube.z_hi), (tube.r_out, tube.z_lo)]
    ring = [occ.addPoint(r, 0.0, z) for r, z in local]
    lines = [occ.addLine(ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))]
    surf = occ.addPlaneSurface([occ.addCurveLoop(lines)])
    vols, cur = [], [(2, surf)]
    for _ in range(4):
        ext = occ.revolve(cur, 0, 0, 0, 0, 0, 1, 0.5 * math.pi, numElements=[tube.sectors // 4])
        vols += [tag for dim, tag in ext if dim == 3]
        cur = [ext[0]]
    return vols


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


def _fragment(gmsh, domain_tag: int, pieces: list[tuple[int, int]], shell_tag: int | None,
              layer: Sequence[int] = (), lead_labels=None):
    """Fragment domain, lead pieces, shell and the revolved layer (``layer``, tissue
    volumes that must come through unchanged to keep their structured mesh); keep
    tissue and encapsulation volumes.

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
    drop = [(3, v) for _, v in occ.getEntities(3) if v not in kept and v not in layer]
    occ.remove(drop, recursive=True)
    occ.synchronize()
    if layer:
        # carve the revolved layer out of the tissue (or encapsulation) it lies in; its
        # inner faces merge with the lead surface, whose labels are kept by tag
        host = encaps if encaps else tissue
        objs = [(3, v) for v in host]
        _, mapping = occ.fragment(objs, [(3, t) for t in layer])
        occ.synchronize()
        for i, tag in enumerate(layer):
            if _children(mapping, len(objs) + i) != {tag}:
                raise VtaError("meshing failed: the revolved layer around the lead was cut by the geometry")
        new_host = sorted(set().union(*(_children(mapping, i) for i in range(len(objs)))) - set(layer))
        if encaps:
            encaps = new_host + list(layer)
        else:
            tissue = new_host + list(layer)
        kept = tissue + encaps
        surfaces = _label_ring_lead_faces(gmsh, kept, lead_labels)
    return {"tissue": tissue, "encapsulation": encaps}, surfaces


def _label_ring_lead_faces(gmsh, kept: list[int], lead_labels) -> dict:
    """Label the boundary faces of the kept volumes geometrically (lead-local model
    frame): faces within the lead radius are the lead, labelled by ``lead_labels(z)``
    at their axial middle; the rest is the outer boundary. For ring-contact leads, whose
    faces the revolved layer has re-cut."""
    radius, label_at = lead_labels
    bnd = {t for _, t in gmsh.model.getBoundary([(3, v) for v in kept], combined=True, oriented=False)}
    surfaces: dict = {"outer": []}
    tol = 1e-6 * max(1.0, radius)
    for s in sorted(bnd):
        x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(2, s)
        if max(abs(x0), abs(x1), abs(y0), abs(y1)) <= radius + tol:
            surfaces.setdefault(label_at(0.5 * (z0 + z1)), []).append(s)
        else:
            surfaces["outer"].append(s)
    return surfaces


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


def _contact_distances(lead: LeadModel, radius_mm: float | None = None) -> tuple[list[str], list[str]]:
    """Local-frame distance expressions (mm) to the contact surfaces and their edges.

    Segmented levels count as full bands for the surface distance (a slightly larger
    refined region); their axial edges are included exactly.
    """
    r = lead.radius_mm if radius_mm is None else radius_mm
    dr = f"Sqrt(x*x+y*y)-{_num(r)}"
    surf, bands, edges_z, edge_terms = [], [], set(), []
    for level, (z0, z1) in enumerate(lead.level_extents_mm()):
        contacts = [c for c in lead.contacts() if c.level == level]
        edges_z.add(z1)
        if contacts[0].is_tip:
            sphere = f"{_hypot('x', 'y', f'Min(z,{_num(r)})-{_num(r)}')}-{_num(r)}"
            surf.append(_hypot(sphere, f"Max(0,z-{_num(z1)})"))
            continue
        edges_z.add(z0)
        bands.append(_outside(z0, z1))
        for c in contacts:
            if c.arc_deg is None:
                continue
            for ang in (c.angle_center_deg - 0.5 * c.arc_deg, c.angle_center_deg + 0.5 * c.arc_deg):
                px, py = r * math.cos(math.radians(ang)), r * math.sin(math.radians(ang))
                edge_terms.append(_hypot(f"x-({_num(px)})", f"y-({_num(py)})", _outside(z0, z1)))
    if bands:  # min over bands of hypot(dr, dz_i) = hypot(dr, min_i dz_i)
        surf.append(_hypot(dr, _min(bands)))
    ring_dz = _min([f"Max(z-{_num(e)},{_num(e)}-z)" for e in sorted(edges_z)])
    edge_terms.insert(0, _hypot(dr, ring_dz))
    return surf, edge_terms


def _size_expression(lead: LeadModel, preset: MeshPreset, length_mm: float,
                     radius_mm: float | None = None, tube: "_Tube | None" = None) -> str:
    """Element size (mm) as a gmsh MathEval expression of the lead's local x, y, z.

    ``min(far, edge + g_e d_edge, contact + g d_contact, lead + g d_lead[, shaft + g
    d_shaft][, span])`` with the distances (mm) to the contact edges, the contact
    surfaces and the lead surface (up to ``shaft_margin_mm`` beyond the last contact
    when ``size_shaft_mm`` is set, the whole lead otherwise).
    """
    r = lead.radius_mm if radius_mm is None else radius_mm
    g = preset.growth
    ge = preset.growth if preset.edge_growth is None else preset.edge_growth
    surf, edges = _contact_distances(lead, r)
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
    terms += [f"{_num(preset.size_edge_mm)}+{_num(ge)}*{d}" for d in edges]
    if preset.size_span_mm is not None:
        d_span = f"Max(0,{_hypot('x', 'y', 'z-' + _clamp('z', 0.0, z_end))}-{_num(preset.span_radius_mm)})"
        terms.append(f"{_num(preset.size_span_mm)}+{_num(g)}*{d_span}")
    if tube is not None:
        # inside the revolved tube only (a large penalty elsewhere): the (r, z) section
        # is graded to tube_edge_mm at the ring edges and no coarser than the sector
        # width, so that the prisms away from the edges are about isotropic
        rr = "Sqrt(x*x+y*y)"
        outside = (f"1000*(Max(0,{rr}-{_num(tube.r_out)})+Max(0,{_num(tube.z_lo)}-z)"
                   f"+Max(0,z-{_num(tube.z_hi)}))")
        terms.append(f"{_num(preset.tube_edge_mm)}+{_num(preset.tube_growth)}*{edges[0]}+{outside}")
        terms.append(f"{_num(2 * math.pi / tube.sectors)}*{rr}+{outside}")
    return _min(terms)


def _set_size_field(gmsh, expr: str) -> None:
    """Background size field: ``expr`` of the (lead-local) model coordinates."""
    field = gmsh.model.mesh.field
    tag = field.add("MathEval")
    field.setString(tag, "F", expr)
    field.setAsBackgroundMesh(tag)


# ----------------------------------------------------------------------------- conversion


def _face_keys(tri: np.ndarray, n_nodes: int) -> np.ndarray:
    """One sortable key per triangle (3, n) of vertex indices, ordered like the
    lexicographic order of the sorted triples: a packed int64 below 2**21 nodes, else a
    (a * n_nodes + b, c) record."""
    tri = np.sort(tri, axis=0).astype(np.int64)
    if n_nodes < _PACK_LIMIT:
        return (tri[0] << 42) | (tri[1] << 21) | tri[2]
    return np.rec.fromarrays([tri[0] * n_nodes + tri[1], tri[2]], names="ab,c")


def _build_facets(t: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """skfem-compatible ``facets`` (3, nf; sorted columns in lexicographic order) and
    ``t2f`` (4, nt), plus the sorted facet keys (see :func:`_face_keys`)."""
    from skfem import MeshTet

    idx = MeshTet.elem.refdom.facets
    faces = np.sort(np.hstack([t[list(ix)] for ix in idx]), axis=0)
    keys, first, inverse = np.unique(_face_keys(faces, n_nodes), return_index=True, return_inverse=True)
    facets = np.ascontiguousarray(faces[:, first].astype(np.int32))
    t2f = inverse.reshape(len(idx), t.shape[1]).astype(np.int32)
    return facets, t2f, keys


def _facet_indices(facet_keys: np.ndarray, tri: np.ndarray, n_nodes: int) -> np.ndarray:
    """Indices into the facets of triangles (3, n), by binary search on the sorted keys."""
    if tri.shape[1] == 0:
        return np.zeros(0, dtype=np.int32)
    keys = _face_keys(tri, n_nodes)
    ix = np.minimum(np.searchsorted(facet_keys, keys), len(facet_keys) - 1)
    if not np.all(facet_keys[ix] == keys):
        raise VtaError("meshing failed: a tagged boundary triangle is not a face of the volume mesh")
    return np.unique(ix).astype(np.int32)


def _elements(gmsh, dim: int, tags: list[int], node_index: np.ndarray) -> np.ndarray:
    etype = 4 if dim == 3 else 2
    n = 4 if dim == 3 else 3
    parts = [np.zeros((n, 0), dtype=np.int64)]
    for tag in tags:
        _, nodes = gmsh.model.mesh.getElementsByType(etype, tag)
        parts.append(node_index[np.asarray(nodes, dtype=np.int64)].reshape(-1, n).T)
    return np.hstack(parts)


def _orient(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Swap two vertices of negatively oriented tets (positive Jacobian everywhere)."""
    e1, e2, e3 = (p[:, t[i]] - p[:, t[0]] for i in (1, 2, 3))
    neg = np.einsum("ij,ij->j", e1, np.cross(e2, e3, axis=0)) < 0
    if np.any(neg):
        t = t.copy()
        t[1, neg], t[2, neg] = t[2, neg], t[1, neg]
    return t


def _to_skfem(gmsh, volumes: dict[str, list[int]], surfaces: dict[str, list[int]],
              placement: LeadPlacement | None = None):
    """skfem MeshTet (unused nodes dropped) with named boundaries and subdomains; with
    ``placement``, the gmsh model is in the lead's local frame and the nodes are mapped
    to world mm (a rigid motion: orientations are kept)."""
    from skfem import MeshTet

    tags, coords, _ = gmsh.model.mesh.getNodes()
    tags = np.asarray(tags, dtype=np.int64)
    node_index = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
    node_index[tags] = np.arange(len(tags))
    xyz = np.asarray(coords, dtype=float).reshape(-1, 3).T
    if placement is not None:
        xyz = placement.frame @ xyz + placement.tip_mm[:, None]
    t_parts = {name: _elements(gmsh, 3, vols, node_index) for name, vols in volumes.items()}
    t = np.hstack(list(t_parts.values()))
    used, t = np.unique(t, return_inverse=True)
    t = t.reshape(4, -1)
    remap = np.full(len(tags), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    p = np.ascontiguousarray(xyz[:, used])
    t = _orient(p, t)
    n = p.shape[1]
    facets, t2f, keys = _build_facets(t, n)
    boundaries = {name: _facet_indices(keys, remap[_elements(gmsh, 2, s, node_index)], n)
                  for name, s in surfaces.items()}
    start, subdomains = 0, {}
    for name, part in t_parts.items():
        subdomains[name] = np.arange(start, start + part.shape[1], dtype=np.int32)
        start += part.shape[1]
    mesh = MeshTet(p, t.astype(np.int32)).with_boundaries(boundaries).with_subdomains(subdomains)
    # the very arrays skfem would build with np.unique(axis=1), ~10x faster
    mesh._facets, mesh._t2f = facets, t2f
    return mesh


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
    p = _resolve_preset(preset, scale)
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
    mesh, (t1, t2) = run_interruptibly(_mesh_with_fallbacks, lead, placement, domain, p, shell, length,
                                       name="vta-gmsh")
    t3 = time.perf_counter()
    logger.debug("mesh timings: geometry %.3f s, meshing %.3f s, conversion %.3f s", t1 - t0, t2 - t1, t3 - t2)
    elapsed = time.perf_counter() - t0
    logger.info("meshed %s (%s): %d nodes, %d tets in %.2f s", lead.name, p.name,
                mesh.p.shape[1], mesh.t.shape[1], elapsed)
    return LeadMesh(mesh=mesh, n_contacts=lead.n_contacts, preset=p.name, build_time_s=elapsed, mesh_preset=p)


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


class _LayerFailed(Exception):
    """The revolved layer could not be meshed as structured layers."""


class _HxtFailed(Exception):
    """gmsh's HXT 3D algorithm failed (it occasionally cannot recover the boundary)."""


def _mesh_with_fallbacks(lead, placement, domain, p: MeshPreset, shell: float, length: float):
    """:func:`_mesh_scene`, falling back to the Delaunay 3D algorithm if HXT fails and
    to isotropic edges if the revolved layer fails."""
    tube = _plan_tube(lead, p, shell, lead.radius_mm)
    for _ in range(3):
        try:
            return _mesh_scene(lead, placement, domain, p, shell, length, tube)
        except _HxtFailed as exc:
            logger.warning("%s; meshing again with the Delaunay 3D algorithm", exc)
            p = replace(p, algorithm="delaunay")
        except _LayerFailed as exc:
            # gmsh occasionally loses the structured layers of the revolved layer in the
            # Boolean operations: mesh without it
            logger.warning("meshing with the revolved layer failed (%s); using isotropic "
                           "tets at the contact edges", exc)
            tube = None
    return _mesh_scene(lead, placement, domain, p, shell, length, tube)


def _mesh_scene(lead: LeadModel, placement: LeadPlacement, domain: Domain, p: MeshPreset,
                shell: float, length: float, tube: "_Tube | None"):
    """Geometry, mesh and conversion; returns the skfem mesh and the times at which
    meshing started and ended (perf_counter)."""
    radius = lead.radius_mm
    if tube is not None:
        # the layer is an inscribed regular polygon round the axis: widen it so that its
        # logarithmic capacity (its exterior field) equals the true cylinder's
        radius = lead.radius_mm / polygon_capacity_ratio(tube.sectors)
        tube = _plan_tube(lead, p, shell, radius)
    with _gmsh_session("vta_lead") as gmsh:
        occ = gmsh.model.occ
        dom = _add_domain(occ, domain, placement)
        pieces = _add_lead_pieces(occ, lead, placement, length, radius)
        shell_tag = _add_shell_solid(occ, radius, shell, length, placement) if shell > 0 else None
        layer = _add_tube(occ, tube, placement) if tube is not None else []
        try:
            volumes, surfaces = _fragment(gmsh, dom, pieces, shell_tag, layer, (radius, _ring_label(lead)))
        except VtaError as exc:
            if layer:
                raise _LayerFailed(str(exc)) from None
            raise
        _check_contacts(lead, surfaces)
        named = _named_surfaces(lead, surfaces)
        _add_physical_groups(gmsh, named, volumes)
        t1 = time.perf_counter()
        _set_mesh_options(gmsh, p)
        _set_size_field(gmsh, _size_expression(lead, p, length, radius, tube))
        try:
            _generate(gmsh)
        except VtaError as exc:
            if p.algorithm != "delaunay":
                raise _HxtFailed(str(exc)) from None
            if layer:
                raise _LayerFailed(str(exc)) from None
            raise
        if layer:
            _check_layer(gmsh, layer, tube.sectors)
        t2 = time.perf_counter()
        try:
            mesh = _to_skfem(gmsh, volumes, named, placement)
        except VtaError as exc:
            if layer:
                raise _LayerFailed(str(exc)) from None
            raise
    return mesh, (t1, t2)


def _check_layer(gmsh, layer: Sequence[int], sectors: int) -> None:
    """The layer volumes must be meshed as revolved layers: every node on one of the
    ``sectors`` half-planes through the axis (model frame: the lead's)."""
    step = 2.0 * math.pi / sectors
    for tag in layer:
        if not len(gmsh.model.mesh.getElements(3, tag)[1]):
            raise _LayerFailed(f"no elements in layer volume {tag}")
        _, xyz, _ = gmsh.model.mesh.getNodes(3, tag, includeBoundary=True)
        xyz = np.asarray(xyz).reshape(-1, 3)
        k = np.arctan2(xyz[:, 1], xyz[:, 0]) / step
        if np.abs(k - np.round(k)).max() > 1e-6:
            raise _LayerFailed(f"layer volume {tag} was not meshed in revolved layers")


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
