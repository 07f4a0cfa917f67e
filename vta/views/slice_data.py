"""What the planning slices draw, sampled on regular grids (world mm, V/mm).

The geometry of the three anatomical planes through a point (:func:`slice_planes`),
the T1, structure, VTA and |E| samples on them (:func:`sample_panels`), the lead's and
the contacts' projections onto a plane (:func:`lead_outline`,
:func:`contact_outlines`), the |E| iso-line levels (:func:`field_levels`) and the
entry point of the trajectory (:func:`entry_point`). Drawn by :mod:`vta.views.slices`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The panels, left to right.
PANELS = ("axial", "coronal", "sagittal")

# per panel: (normal axis, horizontal axis, vertical axis); every mm axis increases to
# the right and upwards, so patient's left is on the left (neurological) in the axial
# and coronal panels and anterior is on the right in the sagittal panel
_AXES = {"axial": (2, 0, 1), "coronal": (1, 0, 2), "sagittal": (0, 1, 2)}
# edge letters (left, right, top, bottom) in RAS world coordinates (MNI, scanner)
_LETTERS = {"axial": ("L", "R", "A", "P"), "coronal": ("L", "R", "S", "I"), "sagittal": ("P", "A", "S", "I")}

#: Distance of the nominal entry point from the tip along the trajectory (mm), as in
#: :mod:`vta.anatomy.targets`.
NOMINAL_ENTRY_MM = 70.0


@dataclass(frozen=True)
class SlicePlane:
    """One axis-aligned slice and its sample grid (world mm).

    Attributes
    ----------
    name : str
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    normal_axis : int
        World axis normal to the plane (0 = x, 1 = y, 2 = z).
    coordinate_mm : float
        Position of the plane along ``normal_axis`` (mm).
    h_axis, v_axis : int
        World axes along the panel's horizontal (increasing to the right) and vertical
        (increasing upwards) directions.
    h_mm, v_mm : ndarray
        Sample positions along the horizontal and vertical axes (mm).
    centre_mm : ndarray, shape (3,)
        The point the plane passes through, at the panel's centre (mm).
    edge_letters : tuple of str
        Orientation letters at the (left, right, top, bottom) edges.
    """

    name: str
    normal_axis: int
    coordinate_mm: float
    h_axis: int
    v_axis: int
    h_mm: np.ndarray
    v_mm: np.ndarray
    centre_mm: np.ndarray
    edge_letters: tuple[str, str, str, str]

    @property
    def h_range_mm(self) -> tuple[float, float]:
        """(left, right) limits of the panel (mm)."""
        return float(self.h_mm[0]), float(self.h_mm[-1])

    @property
    def v_range_mm(self) -> tuple[float, float]:
        """(bottom, top) limits of the panel (mm)."""
        return float(self.v_mm[0]), float(self.v_mm[-1])

    def points(self) -> np.ndarray:
        """World sample positions, shape (len(v_mm), len(h_mm), 3) (mm)."""
        pts = np.empty((len(self.v_mm), len(self.h_mm), 3))
        pts[..., self.normal_axis] = self.coordinate_mm
        pts[..., self.h_axis] = self.h_mm[None, :]
        pts[..., self.v_axis] = self.v_mm[:, None]
        return pts

    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """Orthographic projection of world points (N, 3) onto the panel: (N, 2) mm."""
        p = np.atleast_2d(np.asarray(points_mm, float))
        return p[:, [self.h_axis, self.v_axis]]


@dataclass
class PanelData:
    """Samples on one panel's grid, shape (len(v_mm), len(h_mm)) each.

    Attributes
    ----------
    field : ndarray
        |E| from the field basis (V/mm); NaN inside the lead and outside the domain.
    vta : ndarray or None
        |E| interpolated from the VTA grid (V/mm; 0 outside it): its threshold contour
        is the outline of the VTA mask.
    t1 : ndarray or None
        T1 intensity (arbitrary units), None without an anatomy.
    t1_window : tuple of float
        (low, high) intensities for the grey scale, shared by the panels.
    structures : dict of str -> ndarray
        Smoothed structure masks in [0, 1] (outline at 0.5), only those present here.
    """

    field: np.ndarray
    vta: np.ndarray | None
    t1: np.ndarray | None = None
    t1_window: tuple[float, float] = (0.0, 1.0)
    structures: dict[str, np.ndarray] | None = None


def slice_planes(centre_mm: np.ndarray, fov_mm: float, spacing_mm: float = 0.15,
                 anatomical: bool = True) -> dict[str, SlicePlane]:
    """The axial, coronal and sagittal planes through a point, each a square panel.

    Parameters
    ----------
    centre_mm : ndarray, shape (3,)
        The point every plane passes through, at the centre of each panel (mm).
    fov_mm : float
        Side of each panel (mm).
    spacing_mm : float
        Sample spacing (mm).
    anatomical : bool
        Orientation letters L/R, A/P, S/I (RAS world coordinates); otherwise the world
        axes (``-x``/``+x``...), for a homogeneous domain in the lead's frame.
    """
    c = np.asarray(centre_mm, float)
    half = 0.5 * float(fov_mm)
    n = int(math.ceil(2 * half / spacing_mm)) + 1
    t = np.linspace(-half, half, n)
    out = {}
    for name in PANELS:
        normal, h, v = _AXES[name]
        if anatomical:
            letters = _LETTERS[name]
        else:
            letters = (f"−{'xyz'[h]}", f"+{'xyz'[h]}", f"+{'xyz'[v]}", f"−{'xyz'[v]}")
        out[name] = SlicePlane(name, normal, float(c[normal]), h, v, c[h] + t, c[v] + t, c.copy(), letters)
    return out


def field_levels(threshold_V_per_mm: float) -> list[float]:
    """|E| iso-lines to draw (V/mm): round values at about 1/4, 1/2 and 2.5 times the
    threshold (the threshold itself is the VTA outline)."""
    nice = np.array([1, 2, 5])
    out = []
    for factor in (0.25, 0.5, 2.5):
        target = factor * threshold_V_per_mm
        exp = math.floor(math.log10(target))
        cands = np.concatenate([nice * 10.0 ** (exp - 1), nice * 10.0 ** exp, nice * 10.0 ** (exp + 1)])
        best = float(cands[np.argmin(np.abs(np.log(cands / target)))])
        if abs(math.log(best / threshold_V_per_mm)) > 0.2 and best not in out:
            out.append(float(f"{best:.3g}"))
    return sorted(out)


def _sample(data: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    return map_coordinates(np.asarray(data, np.float32), ijk.T, order=1, mode="constant", cval=0.0)


def sample_panels(sim, view, planes: dict[str, SlicePlane]) -> dict[str, PanelData]:
    """Sample |E|, the VTA grid, the T1 and the structures on every panel.

    Parameters
    ----------
    sim : vta.scene.Simulation
    view : vta.views.view_scene.ViewScene
        Its VTA grid gives the VTA outline.
    planes : dict of str -> SlicePlane
    """
    basis = sim.basis
    weights = np.asarray(sim.potentials_V, float)
    g = view.vta.grid
    out = {}
    for name, plane in planes.items():
        pts = plane.points()
        flat = pts.reshape(-1, 3)
        field = np.linalg.norm(basis.field_at(flat, weights), axis=1).reshape(pts.shape[:2])
        ijk = (flat - g.origin_mm) / g.spacing_mm
        vta = _sample(view.vta.field_norm_V_per_mm, ijk).reshape(pts.shape[:2])
        out[name] = PanelData(field=field, vta=vta, structures={})
    anatomy = sim.scene.anatomy
    if anatomy is None:
        return out
    if anatomy.t1 is not None:
        vals = []
        for name, plane in planes.items():
            pts = plane.points()
            out[name].t1 = _sample(anatomy.t1.data, anatomy.t1.world_to_voxel(pts.reshape(-1, 3))).reshape(pts.shape[:2])
            vals.append(out[name].t1.ravel())
        allv = np.concatenate(vals)
        allv = allv[allv > 0]
        window = (float(np.percentile(allv, 1)), float(np.percentile(allv, 99.5))) if len(allv) else (0.0, 1.0)
        for d in out.values():
            d.t1_window = window
    _sample_structures(anatomy, planes, out)
    return out


def _sample_structures(anatomy, planes: dict[str, SlicePlane], out: dict[str, PanelData]) -> None:
    """Smoothed masks of every structure that reaches a panel (sigma 0.7 voxel, as the
    3D surfaces)."""
    from scipy.ndimage import gaussian_filter

    lo_w = np.min([[p.h_mm[0] if a == p.h_axis else p.v_mm[0] if a == p.v_axis else p.coordinate_mm
                    for a in range(3)] for p in planes.values()], axis=0)
    hi_w = np.max([[p.h_mm[-1] if a == p.h_axis else p.v_mm[-1] if a == p.v_axis else p.coordinate_mm
                    for a in range(3)] for p in planes.values()], axis=0)
    corners = np.array([[(lo_w, hi_w)[i][0], (lo_w, hi_w)[j][1], (lo_w, hi_w)[k][2]]
                        for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    for sname, structure in anatomy.structures.items():
        mask = structure.mask()
        data = np.asarray(mask.data, bool)
        ijk = mask.world_to_voxel(corners)
        lo = np.clip(np.floor(ijk.min(0)).astype(int) - 3, 0, np.array(data.shape))
        hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 4, 0, np.array(data.shape))
        crop = data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if not crop.any():
            continue
        vol = gaussian_filter(crop.astype(np.float32), sigma=0.7)
        for name, plane in planes.items():
            pts = plane.points()
            vals = _sample(vol, mask.world_to_voxel(pts.reshape(-1, 3)) - lo).reshape(pts.shape[:2])
            if vals.max() >= 0.5:
                out[name].structures[sname] = vals


# --- the lead on a plane ------------------------------------------------------------------


def _hull(points_2d: np.ndarray) -> np.ndarray:
    """Convex hull polygon (M, 2) of 2D points; their bounding box if degenerate."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(points_2d)
        return points_2d[hull.vertices]
    except (QhullError, ValueError):
        lo, hi = points_2d.min(0), points_2d.max(0)
        return np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])


def lead_outline(lead, placement, plane: SlicePlane, length_mm: float = 150.0) -> np.ndarray:
    """The lead's projection onto a plane: a band polygon (M, 2) in panel mm.

    The lead (rounded tip, shaft up to ``length_mm`` from the tip, or its body length)
    projected along the plane's normal.
    """
    r = lead.radius_mm
    top = min(float(length_mm), float(lead.body_length_mm))
    theta = np.linspace(0, 2 * np.pi, 33)[:-1]
    phi = np.linspace(0, 0.5 * np.pi, 7)
    tip = np.array([[r * math.sin(p) * math.cos(t), r * math.sin(p) * math.sin(t), r - r * math.cos(p)]
                    for p in phi for t in theta])
    shaft = np.array([[r * math.cos(t), r * math.sin(t), z] for z in (r, top) for t in theta])
    world = placement.to_world(np.vstack([tip, shaft]))
    return _hull(plane.project(world))


def _contact_surface(c, n_theta: int = 24, n_z: int = 6) -> np.ndarray:
    """Points (N, 3) on a contact's surface, lead frame (mm)."""
    r = c.radius_mm
    if c.is_ring:
        theta = np.linspace(0, 2 * np.pi, n_theta + 1)[:-1]
    else:
        a = math.radians(c.angle_center_deg)
        h = 0.5 * math.radians(c.arc_deg)
        theta = np.linspace(a - h, a + h, max(n_theta // 2, 6))
    z0 = max(c.z_start_mm, r) if c.is_tip else c.z_start_mm
    pts = [[r * math.cos(t), r * math.sin(t), z] for z in np.linspace(z0, max(c.z_end_mm, z0), n_z) for t in theta]
    if c.is_tip:  # the hemispherical tip
        pts += [[r * math.sin(p) * math.cos(t), r * math.sin(p) * math.sin(t), r - r * math.cos(p)]
                for p in np.linspace(0, 0.5 * np.pi, 5) for t in theta]
    return np.array(pts)


def contact_outlines(lead, placement, plane: SlicePlane) -> list[tuple[np.ndarray, bool]]:
    """Per contact: its projected outline (M, 2) in panel mm and whether the plane cuts it."""
    out = []
    for c in lead.contacts():
        world = placement.to_world(_contact_surface(c))
        d = world[:, plane.normal_axis] - plane.coordinate_mm
        out.append((_hull(plane.project(world)), bool(d.min() <= 0.0 <= d.max())))
    return out


def entry_point(scene) -> tuple[np.ndarray, str]:
    """The trajectory's entry point (world mm) and how to call it in a caption.

    The ``entry_mm`` of the configuration file when it gave one (and it lies on the
    placed lead's axis); otherwise the nominal entry, :data:`NOMINAL_ENTRY_MM` from the
    tip along the trajectory (as the target presets define it).
    """
    placement = scene.lead.placement
    src = Path(str(scene.config.source))
    if src.suffix == ".toml" and src.is_file():
        try:
            lead = tomllib.loads(src.read_text(encoding="utf-8")).get("lead", {})
            tip, entry = np.asarray(lead["tip_mm"], float), np.asarray(lead["entry_mm"], float)
        except (KeyError, TypeError, ValueError, OSError, tomllib.TOMLDecodeError):
            pass
        else:
            d = entry - tip
            if (tip.shape == entry.shape == (3,) and np.allclose(tip, placement.tip_mm, atol=1e-6)
                    and np.linalg.norm(d) > 0 and np.allclose(d / np.linalg.norm(d), placement.direction, atol=1e-6)):
                return entry, "entry"
    return placement.tip_mm + NOMINAL_ENTRY_MM * placement.direction, "nominal entry"
