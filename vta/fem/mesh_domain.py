"""What a 3D lead mesh is built from and what it returns: the tissue :class:`Domain`,
the :class:`Encapsulation` layer, the element sizes of a :class:`MeshPreset` (and the
named :data:`PRESETS`), the resulting :class:`LeadMesh`, and :func:`check_placement`,
the rule that the active part of the lead lies inside the domain.

No gmsh here: :mod:`vta.fem.mesh` builds the mesh (:func:`vta.fem.mesh.build_mesh`) and
re-exports every public name of this module. Lengths in mm (world frame), conductivity
in S/m.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import VtaError
from ..leads import LeadModel, LeadPlacement

__all__ = [
    "PRESETS",
    "Domain",
    "Encapsulation",
    "LeadMesh",
    "MeshPreset",
    "check_placement",
]

_MARGIN_MM = 1.0  # minimum clearance between the active lead part and the domain boundary
_ALGORITHMS_3D = {"delaunay": 1, "hxt": 10}


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
    segment_edge_mm : float or None
        Element size at the edges of segmented (directional) contacts: the circles at
        the ends of their levels and the axial edges of each segment (mm); ``None``:
        ``size_edge_mm``. The impedance of a segment converges slowly with it, so
        directional presets set it smaller than ring edges.
    segment_edge_growth : float or None
        Growth of the element size away from the segment edges (mm per mm); ``None``:
        ``edge_growth``. A fast growth keeps that refinement local.
    algorithm : str
        gmsh 3D algorithm: ``"delaunay"`` (fastest below ~10^5 tets) or ``"hxt"``
        (multi-threaded).
    edge_layers : int
        Geometric layers cut into the tets that touch a contact edge after meshing
        (:mod:`vta.fem.mesh_edge_layers`; 0: none). Each layer cuts those tets at
        ``edge_layer_ratio`` of their edges from the contact edge: thin elements along
        the edge where |E| ~ d^-1/2.
    edge_layer_ratio : float
        Cut position of the edge layers, a fraction of each edge, in (0, 0.5].
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
    segment_edge_mm: float | None = None
    segment_edge_growth: float | None = None
    algorithm: str = "delaunay"
    edge_layers: int = 0
    edge_layer_ratio: float = 0.25

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS_3D:
            raise VtaError(f"mesh preset '{self.name}': algorithm must be one of {', '.join(_ALGORITHMS_3D)}")
        for key in ("size_contact_mm", "size_edge_mm", "size_lead_mm", "growth", "size_far_mm", "span_radius_mm",
                    "shaft_margin_mm"):
            _positive(getattr(self, key), f"mesh preset '{self.name}' {key}")
        for key in ("size_span_mm", "edge_growth", "size_shaft_mm", "segment_edge_mm", "segment_edge_growth"):
            if getattr(self, key) is not None:
                _positive(getattr(self, key), f"mesh preset '{self.name}' {key}")
        if int(self.edge_layers) != self.edge_layers or not 0 <= self.edge_layers <= 4:
            raise VtaError(f"mesh preset '{self.name}': edge_layers must be an integer from 0 to 4")
        if not 0.0 < self.edge_layer_ratio <= 0.5:
            raise VtaError(f"mesh preset '{self.name}': edge_layer_ratio must be in (0, 0.5]")

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
            segment_edge_mm=None if self.segment_edge_mm is None else self.segment_edge_mm * s,
        )


PRESETS: dict[str, MeshPreset] = {
    # Every contact edge gets geometric layers cut into the tets that touch it
    # (``edge_layers``, :mod:`vta.fem.mesh_edge_layers`): thin elements along the edge,
    # where |E| ~ d^-1/2. Medtronic 3389 in a 25 mm sphere, contact 1 at -1 mA, others
    # floating, 0.2 S/m, against the converged axisymmetric reference (540.58 ohm,
    # 9.716 mm^3), 3D P2:
    #   fast     45k DOFs  impedance -0.17 %  VTA +0.2 %
    #   default  96k DOFs  impedance -0.07 %  VTA -0.2 %
    #   fine    385k DOFs  impedance -0.02 %  VTA -0.08 %
    # (before the layers, with a revolved prism layer round the ring contacts instead:
    # -0.73 % / -0.29 % / -0.08 % impedance for 35k / 75k / 276k DOFs). The VTA of one
    # mesh scatters by a few tenths of a percent with the mesh.
    "fast": MeshPreset("fast", size_contact_mm=0.3, size_edge_mm=0.15, size_lead_mm=0.5,
                       growth=0.35, size_far_mm=6.0, size_shaft_mm=1.0, segment_edge_mm=0.04,
                       segment_edge_growth=0.7, algorithm="hxt", edge_layers=2, edge_layer_ratio=0.3),
    "default": MeshPreset("default", size_contact_mm=0.2, size_edge_mm=0.09, size_lead_mm=0.35,
                          growth=0.27, size_far_mm=5.0, size_shaft_mm=0.8, segment_edge_mm=0.02,
                          segment_edge_growth=0.6, algorithm="hxt", edge_layers=2, edge_layer_ratio=0.3),
    "fine": MeshPreset("fine", size_contact_mm=0.1, size_edge_mm=0.04, size_lead_mm=0.2,
                       growth=0.2, size_far_mm=3.5, size_shaft_mm=0.5, segment_edge_mm=0.01,
                       segment_edge_growth=0.5, algorithm="hxt", edge_layers=3, edge_layer_ratio=0.3),
}


#: The presets for leads with segmented (directional) contacts. Their accuracy is set by
#: the segment edges (the axial edges of each segment and the circles that bound a
#: segmented level) and by the bulk size where the VTA boundary lies. One segment of
#: each directional lead of the catalogue at 1 mA, 0.2 S/m, grounded 25 mm sphere,
#: against a reference extrapolated from graded refinements
#: (benchmarks/bench_directional_models.py, docs/benchmarks.md), Vercise Directed /
#: SenSight B33005:
#:   fast     68k / 73k DOFs   impedance -1.20 / -1.03 %  VTA -1.1 / -1.0 %
#:   default 189k / 206k DOFs  impedance -0.44 / -0.33 %  VTA -0.45 / -0.23 %
#:   fine    437k / 478k DOFs  impedance -0.25 / -0.13 %  VTA +0.01 / +0.10 %
#: (without edge layers, segment edges graded to 0.015 mm: default 168k / 181k DOFs,
#: -0.68 / -0.55 %). The segment edges gain less from the layers than ring edges do
#: (3389: 3x fewer DOFs for the same impedance error). Coarser segment edges with more
#: layers (0.03-0.04 mm, 2 layers) do as well without encapsulation but lose 0.3-0.5 %
#: of impedance in a 0.1 mm encapsulation layer (examples/directional_vercise.toml:
#: 0.025 mm with one layer -0.17 %, 0.03 mm with two -0.5 %, against "fine"). The VTA
#: scatters by +-0.3 % around -0.2 % with the mesh; the bulk growth 0.24 (ring leads:
#: 0.27) keeps it within 0.5 % on every model (with 0.27: SenSight B33015 -0.61 %).
SEGMENTED_PRESETS: dict[str, MeshPreset] = {
    "fast": replace(PRESETS["fast"], edge_layers=1, edge_layer_ratio=0.25),
    "default": replace(PRESETS["default"], growth=0.24, size_edge_mm=0.06, segment_edge_mm=0.025,
                       segment_edge_growth=0.45, edge_layers=1, edge_layer_ratio=0.25),
    "fine": replace(PRESETS["fine"], segment_edge_mm=0.02, edge_layers=2, edge_layer_ratio=0.25),
}


def _resolve_preset(preset: str | MeshPreset, scale: float, segmented: bool = False) -> MeshPreset:
    """The preset named ``preset`` (from :data:`SEGMENTED_PRESETS` for a lead with
    segmented contacts), or ``preset`` itself, scaled by ``scale``."""
    if isinstance(preset, MeshPreset):
        p = preset
    elif isinstance(preset, str) and preset in PRESETS:
        p = (SEGMENTED_PRESETS if segmented else PRESETS)[preset]
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
    from_template : bool
        Whether the mesh came from a lead-local template (:mod:`vta.fem.mesh_templates`)
        instead of a gmsh run (the same mesh either way).
    """

    mesh: "skfem.MeshTet"  # noqa: F821
    n_contacts: int
    preset: str
    build_time_s: float = 0.0
    mesh_preset: MeshPreset | None = None
    from_template: bool = False

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
            "from_template": self.from_template,
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
