"""3D targeting views: the lead, the VTA, an |E| slice, anatomy and fibres -> PNG / HTML.

A :class:`Scene` is plain data (world mm): the lead and its contact polarities, the
VTA grid, |E| sampled on one cut plane per camera, T1 backdrop planes, structure
masks and fibres. :func:`scene_from_run` builds it from a simulated run;
:func:`render_png` draws it offscreen with pyvista and :func:`render_html` writes a
self-contained interactive page (vtk.js embedded, nothing fetched at view time).

The PNG views are cutaways: the VTA isosurface (``|E| = threshold``) is cut by the
plane through the lead axis that faces the camera, and its far half is drawn; on that
plane the field just outside the VTA is drawn as a log colour map, so the view shows
the lead, the VTA's extent, and how fast the field falls off. The T1 planes are
backdrops just behind the VTA (coronal for the anterior view, sagittal for the lateral
view) and under it (axial), so they never hide the lead or the VTA.

Rendering is offscreen only. Without a working OpenGL (Mesa EGL or OSMesa) VTK
crashes the process, so rendering is probed once in a subprocess first and a clear
:class:`~vta.errors.VtaError` is raised if it fails. pyvista is imported lazily.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import logging
import math
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import VtaError

__all__ = [
    "CAMERAS",
    "COLORS",
    "FieldSlice",
    "RenderInfo",
    "Scene",
    "check_rendering",
    "fibres_from_tracts",
    "parse_cameras",
    "parse_size",
    "render_html",
    "render_png",
    "scene_from_run",
]

log = logging.getLogger(__name__)

#: Camera presets: from the front, from the side of the lead's hemisphere, and along
#: the lead from the entry point towards the tip.
CAMERAS = ("anterior", "lateral", "trajectory")

#: Fixed colours (hex) of the scene elements.
COLORS = {
    "vta": "#ff7f0e",
    "cathode": "#1f6bff",
    "anode": "#e8202a",
    "inactive": "#8a8f96",
    "shaft": "#e9e4d8",
    "fibre_active": "#ff3df2",
    "fibre_inactive": "#9aa0a6",
    "background": "#0c0f14",
    "text": "#f2f2f2",
}

#: Structure colours by base name (lower case, hemisphere suffix removed).
STRUCTURE_COLORS = {
    "nac": "#2ecc71",
    "alic": "#b388ff",
    "caudate": "#f4d03f",
    "putamen": "#f08080",
}
_EXTRA_COLORS = ("#4dd0e1", "#a1887f", "#aed581", "#ffb74d", "#90a4ae", "#f48fb1")
_STRUCTURE_OPACITY = {"nac": 0.45, "alic": 0.35}
_DEFAULT_STRUCTURE_OPACITY = 0.25

#: Elevation of the anterior and lateral cameras above the horizontal (degrees).
ELEVATION_DEG = 15.0
#: Sample spacing of the |E| cut planes (mm).
SLICE_SPACING_MM = 0.2
#: The |E| colour map spans [threshold / FIELD_RANGE, threshold] (log scale).
FIELD_RANGE = 4.0
#: Colour map of the |E| plane (no orange, red or strong blue: those mark the VTA and contacts).
FIELD_CMAP = "viridis"
#: Fibres drawn at most; inactive fibres beyond this are subsampled for display.
MAX_FIBRES_DRAWN = 3000


# --- the scene -------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSlice:
    """|E| sampled on a square patch of a plane (world mm).

    Attributes
    ----------
    origin_mm : ndarray, shape (3,)
        World position of sample ``[0, 0]`` (mm).
    axis_u, axis_v : ndarray, shape (3,)
        Orthonormal in-plane directions of the sample axes.
    spacing_mm : float
        Sample spacing (mm).
    values_V_per_mm : ndarray, shape (nu, nv)
        |E| (V/mm); NaN inside the lead and outside the domain.
    center_mm : ndarray, shape (3,)
        The point the plane was centred on (mm): the cutaway plane passes through it.
    """

    origin_mm: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    spacing_mm: float
    values_V_per_mm: np.ndarray
    center_mm: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the plane."""
        return np.cross(self.axis_u, self.axis_v)

    def points(self) -> np.ndarray:
        """Sample positions, shape (nu, nv, 3) (mm)."""
        nu, nv = self.values_V_per_mm.shape
        iu = np.arange(nu)[:, None, None] * self.spacing_mm
        iv = np.arange(nv)[None, :, None] * self.spacing_mm
        return self.origin_mm + iu * self.axis_u + iv * self.axis_v


@dataclass
class Scene:
    """Everything a targeting view draws (world mm, V, V/mm).

    Attributes
    ----------
    lead : vta.leads.LeadModel
    placement : vta.leads.LeadPlacement
    polarity : tuple of str
        Per contact: ``"cathode"``, ``"anode"`` or ``"inactive"``.
    focus_mm : ndarray, shape (3,)
        Centre of the active contacts (mm); the cameras look at it.
    hemisphere : str
        ``"R"`` or ``"L"``: the side of the lead (sign of world x at the focus).
    fov_mm : float
        Height of the field of view (mm).
    threshold_V_per_mm : float
        VTA threshold (V/mm).
    vta : vta.activation.efield.VtaGrid
        |E| on a voxel grid; the VTA surface is its ``threshold`` isosurface.
    field_slices : dict of str -> FieldSlice
        The |E| cut plane of each camera.
    t1 : vta.anatomy.atlas_io.Image or None
        T1 image for the backdrop planes.
    structures : dict of str -> vta.anatomy.atlas_io.Image
        Boolean masks of the structures to draw (each on its own grid).
    fibres : list of ndarray (n_i, 3)
        Fibre polylines (mm).
    fibre_activation : ndarray, shape (n_fibres,)
        Activation of each fibre in [0, 1] (>= 0.5 counts as activated).
    title : list of str
        Title lines (lead; setting; VTA volume; structure overlaps).
    """

    lead: object
    placement: object
    polarity: tuple[str, ...]
    focus_mm: np.ndarray
    hemisphere: str
    fov_mm: float
    threshold_V_per_mm: float
    vta: object
    field_slices: dict[str, FieldSlice]
    t1: object | None = None
    structures: dict[str, object] = field(default_factory=dict)
    fibres: list[np.ndarray] = field(default_factory=list)
    fibre_activation: np.ndarray | None = None
    title: list[str] = field(default_factory=list)

    @property
    def axis(self) -> np.ndarray:
        """Unit lead axis from the tip towards the entry point."""
        return np.asarray(self.placement.direction, float)


@dataclass(frozen=True)
class RenderInfo:
    """What :func:`render_png` drew and where things landed in the image.

    Attributes
    ----------
    path : Path
    size : tuple of int
        (width, height) in pixels.
    camera : str
    focus_px : ndarray, shape (2,)
        Image position (column, row from the top) of the focus.
    contacts_px : ndarray, shape (n_contacts, 2)
        Image positions of the contact centres.
    world_to_px : ndarray, shape (2, 4)
        The (parallel) projection: image (column, row) = ``world_to_px @ [x, y, z, 1]``.
    """

    path: Path
    size: tuple[int, int]
    camera: str
    focus_px: np.ndarray
    contacts_px: np.ndarray
    world_to_px: np.ndarray

    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """Image positions (column, row from the top) of world points (N, 3) in mm."""
        return _project(self.world_to_px, points_mm)


def _project(world_to_px: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    p = np.atleast_2d(np.asarray(points_mm, float))
    return p @ world_to_px[:, :3].T + world_to_px[:, 3]


# --- building the scene from a run -------------------------------------------------------


def _polarity(summary: dict, config) -> tuple[str, ...]:
    active = set(config.stimulation.contacts)
    out = []
    for k in range(config.lead.model.n_contacts):
        c = summary["contacts"][str(k)]
        if k not in active:
            out.append("inactive")
            continue
        current = float(c.get("current_mA", 0.0))
        sign = current if abs(current) > 1e-9 else float(config.stimulation.contacts[k])
        out.append("cathode" if sign < 0 else "anode")
    return tuple(out)


def _focus(config, polarity: Sequence[str]) -> np.ndarray:
    lead, placement = config.lead.model, config.lead.placement
    active = [k for k, p in enumerate(polarity) if p != "inactive"] or list(range(lead.n_contacts))
    return np.mean([placement.contact_center_mm(lead, k) for k in active], axis=0)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def camera_frame(camera: str, axis: np.ndarray, hemisphere: str) -> tuple[np.ndarray, np.ndarray]:
    """Viewing direction and view-up of a camera preset.

    Parameters
    ----------
    camera : str
        One of :data:`CAMERAS`.
    axis : ndarray, shape (3,)
        Unit lead axis from the tip towards the entry point.
    hemisphere : str
        ``"R"`` or ``"L"``.

    Returns
    -------
    to_camera : ndarray, shape (3,)
        Unit vector from the focus towards the camera.
    view_up : ndarray, shape (3,)
    """
    e = math.radians(ELEVATION_DEG)
    up_world = np.array([0.0, 0.0, 1.0])
    if camera == "anterior":
        horizontal = np.array([0.0, 1.0, 0.0])
    elif camera == "lateral":
        horizontal = np.array([1.0 if hemisphere == "R" else -1.0, 0.0, 0.0])
    elif camera == "trajectory":
        d = _unit(np.asarray(axis, float))
        ref = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else up_world
        return d, _unit(ref - (ref @ d) * d)
    else:
        raise VtaError(f"unknown camera '{camera}' (use {', '.join(CAMERAS)})")
    to_camera = math.cos(e) * horizontal + math.sin(e) * up_world
    view_up = -math.sin(e) * horizontal + math.cos(e) * up_world
    return to_camera, view_up


def cut_plane(camera: str, axis: np.ndarray, hemisphere: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cutaway plane of a camera: unit normal (towards the camera) and in-plane axes.

    Anterior and lateral views cut along the plane through the lead axis that faces
    the camera; the trajectory view (and any view nearly along the lead) cuts across
    the lead.
    """
    a = _unit(np.asarray(axis, float))
    to_camera, view_up = camera_frame(camera, a, hemisphere)
    n = to_camera - (to_camera @ a) * a
    if camera == "trajectory" or np.linalg.norm(n) < 0.3:
        n = a if to_camera @ a >= 0 else -a
        u = _unit(view_up - (view_up @ n) * n)
        return n, u, np.cross(n, u)
    n = _unit(n)
    return n, a, np.cross(n, a)


def _field_slice(basis, weights_V, center, normal, u, v, half_mm: float, spacing_mm: float) -> FieldSlice:
    n = int(math.ceil(2 * half_mm / spacing_mm)) + 1
    origin = center - half_mm * u - half_mm * v
    iu = np.arange(n) * spacing_mm
    pts = origin + iu[:, None, None] * u + iu[None, :, None] * v
    E = basis.field_at(pts.reshape(-1, 3), weights_V)
    norm = np.linalg.norm(E, axis=1).reshape(n, n)
    return FieldSlice(np.asarray(origin, float), np.asarray(u, float), np.asarray(v, float), spacing_mm, norm,
                      np.asarray(center, float))


def _base_name(name: str) -> tuple[str, str | None]:
    """(lower-case base name, side 'R'/'L' or None) of a structure name."""
    low = name.lower()
    for suffix, side in (("_r", "R"), ("_l", "L"), ("_right", "R"), ("_left", "L"), ("-r", "R"), ("-l", "L")):
        if low.endswith(suffix):
            return low[: -len(suffix)], side
    return low, None


def _select_structures(structures: dict, hemisphere: str, box: np.ndarray) -> dict:
    """Masks of the structures worth drawing: the lead's hemisphere, inside the view box.

    The NAc, ALIC, caudate and putamen are drawn when present; a user anatomy with
    none of them gets all its structures that reach into the view box (at most 8).
    """
    candidates = {}
    for name, s in structures.items():
        base, side = _base_name(name)
        if side is not None and side != hemisphere:
            continue
        mask = s.mask()
        ijk = np.argwhere(mask.data)
        if len(ijk) == 0:
            continue
        world = mask.voxel_to_world(ijk)
        if not np.any(np.all((world >= box[0]) & (world <= box[1]), axis=1)):
            continue
        candidates[name] = (base, mask)
    preferred = {n: m for n, (b, m) in candidates.items() if b in STRUCTURE_COLORS}
    if preferred:
        return preferred
    return dict(list({n: m for n, (b, m) in candidates.items()}.items())[:8])


def _setting_text(config, summary: dict) -> str:
    stim = config.stimulation
    unit = "mA" if stim.mode == "current" else "V"
    parts = [f"C{k} {v:+g} {unit}" for k, v in sorted(stim.contacts.items())]
    return f"{', '.join(parts)} · {stim.pulse_width_us:g} µs · {stim.frequency_hz:g} Hz"


def _title(config, summary: dict, shown: Sequence[str], fibre_activation) -> list[str]:
    lines = [f"{config.lead.model.name}", _setting_text(config, summary),
             f"VTA {summary['vta_volume_mm3']:.1f} mm³ (E ≥ {summary['threshold_V_per_mm']:.3g} V/mm)"]
    overlaps = []
    for name in shown:
        s = summary.get("structures", {}).get(name)
        if s and s.get("overlap_mm3", 0) > 0:
            pct = 100 * s["fraction"]
            overlaps.append(f"{_label(name)} {s['overlap_mm3']:.1f} mm³ ({pct:.1f} %)" if pct < 10
                            else f"{_label(name)} {s['overlap_mm3']:.1f} mm³ ({pct:.0f} %)")
    if overlaps:
        lines.append("VTA overlap: " + ", ".join(overlaps))
    if fibre_activation is not None and len(fibre_activation):
        k = int(np.sum(fibre_activation >= 0.5))
        lines.append(f"axons activated: {k} of {len(fibre_activation)} simulated")
    return lines


def scene_from_run(
    config,
    summary: dict,
    basis,
    vta_grid=None,
    fibres: Sequence[np.ndarray] | None = None,
    fibre_activation: Sequence[float] | np.ndarray | None = None,
    fov_mm: float | None = None,
) -> Scene:
    """Build the scene of a simulated run.

    Parameters
    ----------
    config : vta.config.RunConfig
    summary : dict
        The summary from :func:`vta.pipeline.simulate` (contacts, VTA volume,
        structures).
    basis : FieldBasis
        The solved basis (``field_at(points_mm, weights_V)``).
    vta_grid : vta.activation.efield.VtaGrid, optional
        |E| on a voxel grid; computed here when None (``output.nifti = false``).
    fibres : list of ndarray (n_i, 3), optional
        Fibre polylines in world mm.
    fibre_activation : sequence of float or bool, optional
        Per fibre, in [0, 1] (bool accepted); >= 0.5 is drawn as activated.
    fov_mm : float, optional
        Smallest height of the field of view (mm), widened to hold the VTA; default
        40 mm with anatomy (context around the target), 25 mm without.
    """
    from ..activation.efield import field_norm_on_grid
    from ..fem.grid import VoxelGrid

    fib: list[np.ndarray] = []
    act = None
    if fibres is not None:
        for i, f in enumerate(fibres):
            a = np.asarray(f, float)
            if a.ndim != 2 or a.shape[1] != 3 or len(a) < 2 or not np.all(np.isfinite(a)):
                raise VtaError(f"fibre {i} must be an (n >= 2, 3) array of finite mm coordinates, got shape {a.shape}")
            fib.append(a)
        if fibre_activation is None:
            act = np.zeros(len(fib))
        else:
            act = np.asarray(fibre_activation, dtype=float).ravel()
            if len(act) != len(fib):
                raise VtaError(f"fibre_activation has {len(act)} values for {len(fib)} fibres")
            if np.any(~np.isfinite(act)) or np.any((act < 0) | (act > 1)):
                raise VtaError("fibre_activation values must lie in [0, 1]")
    elif fibre_activation is not None:
        raise VtaError("fibre_activation given without fibres")

    lead, placement = config.lead.model, config.lead.placement
    weights = np.array([summary["contacts"][str(k)]["potential_V"] for k in range(lead.n_contacts)], float)
    threshold = float(summary["threshold_V_per_mm"])
    polarity = _polarity(summary, config)
    focus = _focus(config, polarity)
    hemisphere = "R" if focus[0] >= 0 else "L"

    if vta_grid is None:  # output.nifti = false: sample |E| around the contacts that carry current
        currents = np.array([summary["contacts"][str(k)]["current_mA"] for k in range(lead.n_contacts)])
        carrying = [k for k in range(lead.n_contacts) if abs(currents[k]) > 1e-9] or list(range(lead.n_contacts))
        centers = np.array([placement.contact_center_mm(lead, k) for k in carrying])
        radius = (3.0 * max(float(summary["vta_volume_mm3"]), 0.0) / (4.0 * math.pi)) ** (1.0 / 3.0)
        margin = config.output.grid_margin_mm or 1.5 * radius + 2.0
        grid = VoxelGrid.around(centers.min(axis=0) - margin, centers.max(axis=0) + margin,
                                max(config.output.grid_spacing_mm, 0.25))
        vta_grid = field_norm_on_grid(basis, weights, grid, threshold)

    if fov_mm is None:
        fov_mm = 40.0 if config.anatomy is not None else 25.0
    mask = vta_grid.mask
    if mask.any():
        ijk = np.argwhere(mask)
        world = vta_grid.grid.origin_mm + vta_grid.grid.spacing_mm * np.array([ijk.min(0), ijk.max(0)])
        extent = float(np.max(world[1] - world[0]))
        fov = max(float(fov_mm), 1.3 * extent + 4.0)
    else:
        fov = float(fov_mm)

    # the trajectory view cuts across the lead at the contact carrying the most current
    currents = np.array([abs(summary["contacts"][str(k)]["current_mA"]) for k in range(lead.n_contacts)])
    strongest = lead.contact(int(np.argmax(currents)))
    across = placement.to_world(np.array([0.0, 0.0, strongest.center_z_mm]))
    half = 0.5 * fov * 1.5
    slices = {}
    for cam in CAMERAS:
        n, u, v = cut_plane(cam, placement.direction, hemisphere)
        center = across if cam == "trajectory" else focus
        slices[cam] = _field_slice(basis, weights, center, n, u, v, half, SLICE_SPACING_MM)

    t1, structures, shown = None, {}, []
    if config.anatomy is not None:
        anatomy = config.anatomy.load()
        t1 = anatomy.t1
        box = np.array([focus - 0.75 * fov, focus + 0.75 * fov])
        structures = _select_structures(anatomy.structures, hemisphere, box)
        shown = list(structures)

    return Scene(
        lead=lead,
        placement=placement,
        polarity=polarity,
        focus_mm=np.asarray(focus, float),
        hemisphere=hemisphere,
        fov_mm=fov,
        threshold_V_per_mm=threshold,
        vta=vta_grid,
        field_slices=slices,
        t1=t1,
        structures=structures,
        fibres=fib,
        fibre_activation=act,
        title=_title(config, summary, shown, act),
    )


# --- offscreen rendering: probe, import ------------------------------------------------

_PROBE = """
import pyvista as pv
p = pv.Plotter(off_screen=True, window_size=(64, 48))
p.add_mesh(pv.Sphere(), color="red")
img = p.screenshot(return_img=True)
name = p.ren_win.GetClassName()
p.close()
assert img.shape == (48, 64, 3) and img[..., 0].max() > 100, "blank image"
print(name)
"""


@functools.cache
def check_rendering() -> str:
    """Make sure offscreen OpenGL works, probing in a subprocess (VTK may segfault).

    Tries VTK's default offscreen window (EGL when there is no display), then OSMesa,
    and sets ``VTK_DEFAULT_OPENGL_WINDOW`` for this process to the one that works.

    Returns
    -------
    str
        The VTK render-window class in use.

    Raises
    ------
    VtaError
        If no offscreen rendering backend works.
    """
    options: list[str | None] = []
    if os.environ.get("VTK_DEFAULT_OPENGL_WINDOW"):
        options.append(os.environ["VTK_DEFAULT_OPENGL_WINDOW"])
    elif not os.environ.get("DISPLAY"):
        options.append("vtkEGLRenderWindow")
    else:
        options.append(None)
    options += [w for w in ("vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow") if w not in options]
    reasons = []
    for window in options:
        env = dict(os.environ)
        if window:
            env["VTK_DEFAULT_OPENGL_WINDOW"] = window
        try:
            proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            reasons.append(f"{window or 'default'}: timed out")
            continue
        if proc.returncode == 0:
            if window:
                os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = window
            log.debug("offscreen rendering with %s", proc.stdout.strip())
            return proc.stdout.strip() or (window or "default")
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        reasons.append(f"{window or 'default'}: {tail[:160]}")
    raise VtaError("offscreen rendering does not work here (" + "; ".join(reasons)
                   + "); install Mesa EGL/OSMesa (scripts/system-deps.sh)")


def _pyvista():
    check_rendering()
    import pyvista as pv

    pv.OFF_SCREEN = True
    return pv


# --- geometry ------------------------------------------------------------------------------


def _transform(pv, mesh, placement):
    """Move a mesh from the lead's local frame into world mm."""
    m = np.eye(4)
    m[:3, :3] = placement.frame
    m[:3, 3] = placement.tip_mm
    return mesh.transform(m, inplace=False)


def _band(pv, r0: float, r1: float, z0: float, z1: float, a0_deg: float, a1_deg: float, n_theta: int):
    """Closed surface of a (partial) cylindrical shell in the lead's local frame."""
    theta = np.radians(np.linspace(a0_deg, a1_deg, n_theta))
    r, t, z = np.meshgrid([r0, r1], theta, [z0, z1], indexing="ij")
    grid = pv.StructuredGrid(r * np.cos(t), r * np.sin(t), z)
    return grid.extract_surface(algorithm="dataset_surface").triangulate()


def lead_meshes(scene: Scene, shaft_length_mm: float = 120.0) -> list[tuple[object, str, str]]:
    """The lead as world-space meshes: ``(mesh, colour, kind)``, kind = shaft/polarity."""
    pv = _pyvista()
    lead, placement = scene.lead, scene.placement
    r = lead.radius_mm
    out = []
    z_top = min(lead.contacts()[-1].z_end_mm + shaft_length_mm, lead.body_length_mm)
    shaft = pv.Cylinder(center=(0, 0, 0.5 * (r + z_top)), direction=(0, 0, 1), radius=r, height=z_top - r,
                        resolution=48, capping=True)
    tip = pv.Sphere(radius=r, center=(0, 0, r), theta_resolution=48, phi_resolution=24)
    out.append((_transform(pv, shaft.triangulate(), placement), COLORS["shaft"], "shaft"))
    out.append((_transform(pv, tip, placement), COLORS["shaft"], "shaft"))
    rc = r * 1.03  # contacts drawn a hair outside the shaft
    for c in lead.contacts():
        colour = COLORS[scene.polarity[c.index]]
        if c.is_tip:
            cap = pv.Sphere(radius=rc, center=(0, 0, r), theta_resolution=48, phi_resolution=24, start_phi=89.5)
            parts = [cap]
            if c.z_end_mm > r:
                parts.append(_band(pv, r, rc, r, c.z_end_mm, 0, 360, 49))
            mesh = parts[0].merge(parts[1:]) if len(parts) > 1 else parts[0]
        elif c.is_ring:
            mesh = _band(pv, r, rc, c.z_start_mm, c.z_end_mm, 0, 360, 49)
        else:
            half = 0.5 * c.arc_deg
            mesh = _band(pv, r, rc * 1.01, c.z_start_mm, c.z_end_mm, c.angle_center_deg - half,
                         c.angle_center_deg + half, 16)
        out.append((_transform(pv, mesh, placement), colour, scene.polarity[c.index]))
    return out


def lead_cross_section(scene: Scene, point_mm: np.ndarray) -> list[tuple[object, str]]:
    """The lead cut across at a point on its axis: a shaft disc and a rim per contact there.

    Contacts at that level are drawn as annular sectors (whole rings, or the segments
    of a directional level) in their polarity colour, widened for visibility.
    """
    pv = _pyvista()
    lead, placement = scene.lead, scene.placement
    z = float(placement.to_local(point_mm)[2])
    r = lead.radius_mm
    out = [(_transform(pv, _annulus(pv, 0.0, r, 0.0, 360.0, z), placement), COLORS["shaft"])]
    for c in lead.contacts():
        if not (c.z_start_mm - 1e-9 <= z <= c.z_end_mm + 1e-9):
            continue
        a0, a1 = (0.0, 360.0) if c.is_ring else (c.angle_center_deg - 0.5 * c.arc_deg, c.angle_center_deg + 0.5 * c.arc_deg)
        out.append((_transform(pv, _annulus(pv, r, 1.35 * r, a0, a1, z), placement), COLORS[scene.polarity[c.index]]))
    return out


def _annulus(pv, r0: float, r1: float, a0_deg: float, a1_deg: float, z: float):
    theta = np.radians(np.linspace(a0_deg, a1_deg, 49))
    rr, tt = np.meshgrid([r0, r1], theta, indexing="ij")
    grid = pv.StructuredGrid(rr * np.cos(tt), rr * np.sin(tt), np.full(rr.shape, z))
    return grid.extract_surface(algorithm="dataset_surface")


def vta_surface(scene: Scene):
    """The VTA isosurface ``|E| = threshold`` (world mm), lightly smoothed; None if empty."""
    pv = _pyvista()
    g = scene.vta.grid
    if not scene.vta.mask.any():
        return None
    img = pv.ImageData(dimensions=g.shape, spacing=(g.spacing_mm,) * 3, origin=tuple(g.origin_mm))
    img.point_data["E"] = np.asarray(scene.vta.field_norm_V_per_mm, float).ravel(order="F")
    surf = img.contour([scene.threshold_V_per_mm], scalars="E")
    if surf.n_points == 0:
        return None
    return surf.smooth_taubin(n_iter=20, pass_band=0.1).compute_normals(auto_orient_normals=False)


def structure_surface(mask_image, box: np.ndarray | None = None):
    """Smoothed surface of a boolean mask image (world mm, the image's affine)."""
    pv = _pyvista()
    from scipy.ndimage import gaussian_filter

    data = np.asarray(mask_image.data, bool)
    lo = np.zeros(3, int)
    if box is not None:  # crop to the part near the view (voxel bounding box of the world box)
        corners = np.array([[box[i][0], box[j][1], box[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        ijk = mask_image.world_to_voxel(corners)
        lo = np.clip(np.floor(ijk.min(0)).astype(int) - 1, 0, np.array(data.shape))
        hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 2, 0, np.array(data.shape))
        data = data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    if not data.any():
        return None
    vol = gaussian_filter(np.pad(data.astype(np.float32), 2), sigma=0.8)
    img = pv.ImageData(dimensions=vol.shape, spacing=(1.0, 1.0, 1.0), origin=tuple(lo - 2.0))
    img.point_data["m"] = vol.ravel(order="F")
    surf = img.contour([0.5], scalars="m")
    if surf.n_points == 0:
        return None
    surf = surf.transform(np.asarray(mask_image.affine, float), inplace=False)
    return surf.smooth_taubin(n_iter=20, pass_band=0.1).compute_normals(auto_orient_normals=False)


def _slice_grid(pv, fs: FieldSlice):
    p = fs.points()
    grid = pv.StructuredGrid(p[..., 0], p[..., 1], p[..., 2])
    grid.point_data["E"] = np.ascontiguousarray(fs.values_V_per_mm).ravel(order="F")
    return grid


def field_slice_mesh(scene: Scene, camera: str, outside_vta_only: bool = True):
    """The camera's |E| cut plane as a mesh with point data ``E`` (V/mm), clipped to the colour range."""
    pv = _pyvista()
    fs = scene.field_slices[camera]
    grid = _slice_grid(pv, fs)
    thr = scene.threshold_V_per_mm
    vals = np.nan_to_num(grid.point_data["E"], nan=0.0)
    grid.point_data["E"] = vals
    part = grid.clip_scalar(scalars="E", value=thr / FIELD_RANGE, invert=False)
    if outside_vta_only and part.n_cells:
        part = part.clip_scalar(scalars="E", value=thr, invert=True)
    return part.extract_surface(algorithm="dataset_surface") if part.n_cells else None


def _sample_image(image, points: np.ndarray) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    ijk = image.world_to_voxel(points.reshape(-1, 3))
    vals = map_coordinates(np.asarray(image.data, np.float32), ijk.T, order=1, mode="constant", cval=0.0)
    return vals.reshape(points.shape[:-1])


def t1_planes(scene: Scene, camera: str) -> list[tuple[object, str]]:
    """T1 backdrop planes of a camera: ``(mesh with point data 'T1', description)``.

    Anterior view: a coronal plane just behind the VTA and the active contacts and an
    axial plane just under them; lateral view: a sagittal plane on the medial side and
    the axial plane; trajectory view: a plane across the lead just beyond the VTA's
    deepest point.
    """
    if scene.t1 is None:
        return []
    pv = _pyvista()
    to_camera, _ = camera_frame(camera, scene.axis, scene.hemisphere)
    content = _content_box(scene)
    f = scene.focus_mm
    half = 0.5 * scene.fov_mm * 1.6
    step = 0.5
    specs = []  # (center, u, v, description)
    ex, ey, ez = np.eye(3)
    if camera == "trajectory":
        fs = scene.field_slices[camera]
        a = scene.axis
        corners = np.array([[content[i][0], content[j][1], content[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        depth = float(np.min((corners - fs.center_mm) @ a)) - 1.5
        tip_depth = float((scene.placement.tip_mm - fs.center_mm) @ a)
        specs.append((fs.center_mm + depth * a, fs.axis_u, fs.axis_v,
                      f"across the lead {tip_depth - depth:.1f} mm beyond the tip"))
    else:
        if camera == "anterior":
            y = content[0][1] - 1.5 if to_camera[1] >= 0 else content[1][1] + 1.5
            specs.append((np.array([f[0], y, f[2]]), ex, ez, f"coronal y = {y:.1f} mm"))
        else:
            x = content[0][0] - 1.5 if to_camera[0] >= 0 else content[1][0] + 1.5
            specs.append((np.array([x, f[1], f[2]]), ey, ez, f"sagittal x = {x:.1f} mm"))
        z = content[0][2] - 1.5
        specs.append((np.array([f[0], f[1], z]), ex, ey, f"axial z = {z:.1f} mm"))
    planes = []
    t = np.arange(-half, half + 1e-9, step)
    for center, u, v, description in specs:
        pts = center + t[:, None, None] * u + t[None, :, None] * v
        vals = _sample_image(scene.t1, pts)
        grid = pv.StructuredGrid(pts[..., 0], pts[..., 1], pts[..., 2])
        grid.point_data["T1"] = vals.ravel(order="F")
        planes.append((grid, description))
    return planes


def _content_box(scene: Scene) -> np.ndarray:
    """World box (2, 3) of the VTA and the active contacts (mm)."""
    pts = [scene.placement.contact_center_mm(scene.lead, k) for k, p in enumerate(scene.polarity) if p != "inactive"]
    pts.append(scene.focus_mm)
    if scene.vta.mask.any():
        ijk = np.argwhere(scene.vta.mask)
        g = scene.vta.grid
        pts += list(g.origin_mm + g.spacing_mm * np.array([ijk.min(0), ijk.max(0)]))
    pts = np.array(pts)
    return np.array([pts.min(0), pts.max(0)])


def fibre_meshes(scene: Scene):
    """(activated, not activated) fibre polylines as PolyData (None when empty)."""
    pv = _pyvista()
    if not scene.fibres:
        return None, None
    act = scene.fibre_activation >= 0.5
    idx_on = np.flatnonzero(act)
    idx_off = np.flatnonzero(~act)
    if len(idx_on) + len(idx_off) > MAX_FIBRES_DRAWN and len(idx_off):
        keep = max(MAX_FIBRES_DRAWN - len(idx_on), 0)
        rng = np.random.default_rng(0)
        idx_off = np.sort(rng.choice(idx_off, size=min(keep, len(idx_off)), replace=False))
        log.info("drawing %d of the not-activated fibres", len(idx_off))

    def lines(indices):
        if len(indices) == 0:
            return None
        pts = np.vstack([scene.fibres[i] for i in indices])
        cells, start = [], 0
        for i in indices:
            n = len(scene.fibres[i])
            cells.append(np.concatenate([[n], np.arange(start, start + n)]))
            start += n
        return pv.PolyData(pts, lines=np.concatenate(cells))

    return lines(idx_on), lines(idx_off)


# --- drawing ----------------------------------------------------------------------------------


def _label(name: str) -> str:
    return name.replace("_", " ")


def _structure_colours(names: Sequence[str]) -> dict[str, tuple[str, float]]:
    out, extra = {}, 0
    for name in names:
        base, _ = _base_name(name)
        if base in STRUCTURE_COLORS:
            out[name] = (STRUCTURE_COLORS[base], _STRUCTURE_OPACITY.get(base, _DEFAULT_STRUCTURE_OPACITY))
        else:
            out[name] = (_EXTRA_COLORS[extra % len(_EXTRA_COLORS)], _DEFAULT_STRUCTURE_OPACITY)
            extra += 1
    return out


def _t1_window(planes) -> tuple[float, float]:
    vals = np.concatenate([np.asarray(g.point_data["T1"]) for g, _ in planes])
    vals = vals[vals > 0]
    if len(vals) == 0:
        return 0.0, 1.0
    return float(np.percentile(vals, 1)), float(np.percentile(vals, 99.5))


def _populate(pv, plotter, scene: Scene, camera: str, cutaway: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """Add every scene element; returns legend entries (label, colour) and T1 plane descriptions."""
    legend: list[tuple[str, str]] = []
    fs = scene.field_slices[camera]
    normal, origin = fs.normal, fs.center_mm
    box = np.array([scene.focus_mm - scene.fov_mm, scene.focus_mm + scene.fov_mm])

    planes = t1_planes(scene, camera)
    if planes:
        lo, hi = _t1_window(planes)
        for grid, _ in planes:
            plotter.add_mesh(grid, scalars="T1", cmap="gray", clim=(lo, lo + 1.6 * (hi - lo)), show_scalar_bar=False,
                             lighting=False)

    for name, (colour, opacity) in _structure_colours(list(scene.structures)).items():
        surf = structure_surface(scene.structures[name], box)
        if surf is None:
            continue
        if cutaway:
            _add_cut(plotter, surf, normal, origin, colour, opacity)
        else:
            plotter.add_mesh(surf, color=colour, opacity=opacity, smooth_shading=True, specular=0.2)
        legend.append((_label(name), colour))

    if cutaway and camera == "trajectory":  # looking down the lead: its cross-section at the cut
        for mesh, colour in lead_cross_section(scene, fs.center_mm + 0.2 * normal):
            plotter.add_mesh(mesh, color=colour, lighting=False)
    else:
        for mesh, colour, kind in lead_meshes(scene):
            plotter.add_mesh(mesh, color=colour, smooth_shading=True, specular=0.6 if kind != "shaft" else 0.2,
                             specular_power=30)
    used = [p for p in ("cathode", "anode") if p in scene.polarity]
    for p in used:
        legend.append((f"{p} contact", COLORS[p]))
    if "inactive" in scene.polarity:
        legend.append(("inactive contact", COLORS["inactive"]))

    surf = vta_surface(scene)
    if surf is not None:
        if cutaway:
            _add_cut(plotter, surf, normal, origin, COLORS["vta"], 1.0, line_width=4)
        else:
            plotter.add_mesh(surf, color=COLORS["vta"], opacity=0.6, smooth_shading=True, specular=0.3)
        legend.append((f"VTA (E ≥ {scene.threshold_V_per_mm:.3g} V/mm)", COLORS["vta"]))

    on, off = fibre_meshes(scene)
    if off is not None:
        plotter.add_mesh(off, color=COLORS["fibre_inactive"], opacity=0.35, line_width=1.5)
    if on is not None:
        tubes = on.tube(radius=0.08, n_sides=8) if on.n_points < 200_000 else on
        plotter.add_mesh(tubes, color=COLORS["fibre_active"], line_width=3, smooth_shading=True)
    if scene.fibres:
        n_on = int(np.sum(scene.fibre_activation >= 0.5))
        legend.append((f"axons activated ({n_on}/{len(scene.fibres)})", COLORS["fibre_active"]))
        legend.append(("axons not activated", COLORS["fibre_inactive"]))
    return legend, [d for _, d in planes]


def _add_cut(plotter, surf, normal: np.ndarray, origin: np.ndarray, colour: str, opacity: float,
             line_width: float = 3) -> None:
    """Draw the half of a closed surface behind the cut plane and its outline on the plane."""
    half = surf.clip(normal=tuple(normal), origin=tuple(origin), invert=True)
    if half.n_points:
        plotter.add_mesh(half, color=colour, opacity=opacity, smooth_shading=True, specular=0.2)
    outline = surf.slice(normal=tuple(normal), origin=tuple(origin))
    if outline.n_points:
        outline = outline.translate(0.15 * np.asarray(normal), inplace=False)  # just in front of the |E| plane
        plotter.add_mesh(outline, color=colour, line_width=line_width, lighting=False)


def _camera(plotter, scene: Scene, camera: str) -> None:
    to_camera, view_up = camera_frame(camera, scene.axis, scene.hemisphere)
    distance = 300.0
    cam = plotter.camera
    cam.focal_point = tuple(scene.focus_mm)
    cam.position = tuple(scene.focus_mm + distance * to_camera)
    cam.up = tuple(view_up)
    cam.parallel_projection = True
    cam.parallel_scale = 0.5 * scene.fov_mm
    plotter.renderer.ResetCameraClippingRange()


def _world_to_pixels(plotter, points: np.ndarray, height: int) -> np.ndarray:
    ren = plotter.renderer
    out = []
    for p in np.atleast_2d(points):
        ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
        ren.WorldToDisplay()
        x, y, _ = ren.GetDisplayPoint()
        out.append((x, height - 1 - y))
    return np.array(out)


def parse_size(size: str | Sequence[int]) -> tuple[int, int]:
    """Image size ``"WxH"`` or ``(width, height)`` in pixels, validated (64..8000 each)."""
    if isinstance(size, str):
        parts = size.lower().replace("×", "x").split("x")
        if len(parts) != 2:
            raise VtaError(f"image size must look like 1400x1000 (width x height in pixels), got '{size}'")
        size = parts
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise VtaError(f"image size must be width x height in whole pixels, got {size!r}") from None
    if not (64 <= w <= 8000 and 64 <= h <= 8000):
        raise VtaError(f"image size must be 64..8000 pixels per side, got {w}x{h}")
    return w, h


def parse_cameras(text: str) -> list[str]:
    """Camera presets from a comma-separated list (duplicates dropped, order kept)."""
    names = [c.strip().lower() for c in str(text).split(",") if c.strip()]
    if not names:
        raise VtaError(f"the camera list is empty (use {', '.join(CAMERAS)})")
    for name in names:
        if name not in CAMERAS:
            raise VtaError(f"unknown camera '{name}' (use {', '.join(CAMERAS)})")
    return list(dict.fromkeys(names))


def fibres_from_tracts(tract_results: Sequence) -> tuple[list[np.ndarray] | None, np.ndarray | None]:
    """Fibres to draw from tract-activation results, with their activation (0 or 1).

    Draws the simulated axons (the fixed-length pieces of the streamlines near the
    active contacts that carried the cable models), not whole streamlines: that is
    what was modelled, and it keeps the view around the lead readable. Axons through
    the lead body are drawn as not activated. Returns ``(None, None)`` without tracts.
    """
    fibres: list[np.ndarray] = []
    activation: list[float] = []
    for result in tract_results or []:
        pts = np.asarray(result.placed.segments.points_mm, float)
        if len(pts) == 0:
            continue
        stride = max(1, pts.shape[1] // 100)            # ~100 points per axon are plenty to draw
        idx = np.unique(np.r_[np.arange(0, pts.shape[1], stride), pts.shape[1] - 1])
        active = np.asarray(result.activated, bool)
        for i in range(len(pts)):
            fibres.append(pts[i, idx])
            activation.append(float(active[i]))
    if not fibres:
        return None, None
    return fibres, np.array(activation)


def render_png(scene: Scene, path: str | Path, camera: str = "anterior", size: Sequence[int] = (1400, 1000)) -> RenderInfo:
    """Render one targeting view to a PNG (offscreen).

    Parameters
    ----------
    scene : Scene
    path : str or Path
        Output PNG; written atomically (temporary file, then rename).
    camera : str
        ``"anterior"``, ``"lateral"`` or ``"trajectory"`` (see :data:`CAMERAS`).
    size : (int, int)
        Image width and height (pixels).

    Returns
    -------
    RenderInfo
        Where the focus and the contact centres project in the image.

    Raises
    ------
    VtaError
        Unknown camera, bad size, or no offscreen rendering on this machine.
    """
    if camera not in CAMERAS:
        raise VtaError(f"unknown camera '{camera}' (use {', '.join(CAMERAS)})")
    width, height = parse_size(size)
    pv = _pyvista()
    path = Path(path)
    plotter = pv.Plotter(off_screen=True, window_size=(width, height), lighting="three lights")
    try:
        plotter.set_background(COLORS["background"])
        legend, planes = _populate(pv, plotter, scene, camera, cutaway=True)
        fmesh = field_slice_mesh(scene, camera, outside_vta_only=True)
        thr = scene.threshold_V_per_mm
        if fmesh is not None:
            scale = max(max(width, height) / 1400.0, 0.75)
            plotter.add_mesh(
                fmesh, scalars="E", cmap=FIELD_CMAP, log_scale=True, clim=(thr / FIELD_RANGE, thr),
                opacity=0.9, lighting=False,
                scalar_bar_args=dict(title="E-field (V/mm)", vertical=True, position_x=0.9, position_y=0.08,
                                     height=0.35, width=0.035, title_font_size=int(16 * scale),
                                     label_font_size=int(13 * scale), n_labels=3, fmt="%.2g",
                                     color=COLORS["text"]),
            )
        _decorate(plotter, scene, camera, legend, planes, width, height)
        _camera(plotter, scene, camera)
        plotter.render()
        f = scene.focus_mm
        p0, px, py, pz = _world_to_pixels(plotter, np.array([f, f + (1, 0, 0), f + (0, 1, 0), f + (0, 0, 1)]), height)
        linear = np.column_stack([px - p0, py - p0, pz - p0])
        world_to_px = np.column_stack([linear, p0 - linear @ f])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        try:
            plotter.screenshot(str(tmp), transparent_background=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        plotter.close()
    log.info("wrote %s (%s view, %dx%d)", path, camera, width, height)
    centers = np.array([scene.placement.contact_center_mm(scene.lead, k) for k in range(scene.lead.n_contacts)])
    return RenderInfo(path, (width, height), camera, _project(world_to_px, f)[0], _project(world_to_px, centers),
                      world_to_px)


_VIEW_TEXT = {
    "anterior": "anterior view (patient's right on the left)",
    "lateral": "lateral view from the {side} side",
    "trajectory": "view along the lead, entry -> tip",
}


def _decorate(plotter, scene: Scene, camera: str, legend, planes: Sequence[str], width: int, height: int) -> None:
    scale = max(max(width, height) / 1400.0, 0.75)
    pad = int(12 * scale)
    y = height - pad
    for i, line in enumerate(scene.title):
        size = int((22 if i == 0 else 17) * scale)
        _text(plotter, line, pad, y, size, COLORS["text"], bold=(i == 0))
        y -= int(1.4 * size)
    view = _VIEW_TEXT[camera].format(side="right" if scene.hemisphere == "R" else "left")
    info = [view, f"field of view {scene.fov_mm:.0f} mm"]
    if planes:
        info.append("T1: " + ", ".join(planes))
    size = int(14 * scale)
    for i, line in enumerate(reversed(info)):
        _text(plotter, line, pad, pad + i * int(1.4 * size), size, "#c8c8c8", top=False)
    if legend:
        _legend(plotter, legend, width, height, scale)
    plotter.add_axes(xlabel="R", ylabel="A", zlabel="S", line_width=3, color=COLORS["text"],
                     viewport=(0.0, 0.1, 0.11, 0.25))


def _text(plotter, text: str, x: float, y: float, size: int, colour: str, bold: bool = False, top: bool = True):
    """A line of text at window pixel (x, y): its top-left corner (``top``) or bottom-left."""
    from pyvista import _vtk

    actor = _vtk.vtkTextActor()
    actor.SetInput(text)
    prop = actor.GetTextProperty()
    prop.SetFontSize(max(size, 6))
    prop.SetColor(*_rgb(colour))
    prop.SetBold(bold)
    prop.SetShadow(True)
    if top:
        prop.SetVerticalJustificationToTop()
    else:
        prop.SetVerticalJustificationToBottom()
    actor.SetPosition(x, y)
    plotter.renderer.AddActor(actor)
    return actor


def _legend(plotter, entries: list[tuple[str, str]], width: int, height: int, scale: float) -> None:
    """A legend box in the upper right: a coloured square and a label per entry."""
    from pyvista import _vtk

    font = max(int(15 * scale), 8)
    line_h = int(round(1.5 * font))
    pad = int(round(0.6 * font))
    n = len(entries)
    labels = []
    for i, (text, colour) in enumerate(entries):
        actor = _vtk.vtkTextActor()
        actor.SetInput(text)
        prop = actor.GetTextProperty()
        prop.SetFontSize(font)
        prop.SetColor(*_rgb(COLORS["text"]))
        prop.SetVerticalJustificationToBottom()
        labels.append(actor)
    widths = []
    for actor in labels:
        bbox = [0.0, 0.0, 0.0, 0.0]
        actor.GetBoundingBox(plotter.renderer, bbox)
        widths.append(bbox[1] - bbox[0])
    box_w = int(max(widths) + 2.5 * font + 2 * pad)
    box_h = n * line_h + 2 * pad
    x0, y1 = width - box_w - pad, height - pad
    y0 = y1 - box_h
    _rectangle(plotter, x0, y0, x0 + box_w, y1, "#1b2028", 0.8)
    for i, ((_, colour), actor) in enumerate(zip(entries, labels)):
        y = y1 - pad - (i + 1) * line_h + int(0.3 * font)
        sq = int(0.8 * font)
        _rectangle(plotter, x0 + pad, y, x0 + pad + sq, y + sq, colour, 1.0)
        actor.SetPosition(x0 + pad + 1.6 * font, y - 0.15 * font)
        plotter.renderer.AddActor(actor)


def _rgb(colour: str) -> tuple[float, float, float]:
    c = colour.lstrip("#")
    return tuple(int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


def _rectangle(plotter, x0: float, y0: float, x1: float, y1: float, colour: str, opacity: float) -> None:
    """A filled rectangle in window pixels (origin lower left)."""
    from pyvista import _vtk

    points = _vtk.vtkPoints()
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        points.InsertNextPoint(x, y, 0.0)
    cells = _vtk.vtkCellArray()
    cells.InsertNextCell(4)
    for i in range(4):
        cells.InsertCellPoint(i)
    poly = _vtk.vtkPolyData()
    poly.SetPoints(points)
    poly.SetPolys(cells)
    mapper = _vtk.vtkPolyDataMapper2D()
    mapper.SetInputData(poly)
    actor = _vtk.vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*_rgb(colour))
    actor.GetProperty().SetOpacity(opacity)
    plotter.renderer.AddActor(actor)


# --- interactive HTML ----------------------------------------------------------------------


def _serialize_scene(plotter) -> bytes:
    """The render window as a vtk.js OfflineLocalView archive (zip of index.json)."""
    try:
        from trame_vtk.modules.vtk.serializers import (SynchronizationContext, extract_array_hash,
                                                       initialize_serializers, reference_id, serialize)
    except ImportError as exc:
        raise VtaError(f"HTML export needs trame-vtk >= 2.10 (pip install trame-vtk): {exc}") from None

    initialize_serializers()
    context = SynchronizationContext()
    window = plotter.render_window
    camera = plotter.renderer.GetActiveCamera()
    state = serialize(None, window, "vta-scene", context, 1)
    if state is None:
        raise VtaError("could not serialise the 3D scene for HTML export")
    state["extra"] = {"vtkRefId": reference_id(window), "centerOfRotation": list(camera.GetFocalPoint()),
                      "camera": reference_id(camera)}
    hashes = {}
    for entry in extract_array_hash(state):
        h = entry["hash"]
        hashes[h] = dict(**entry, content=context.get_cached_data_array(h, False))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.json", json.dumps({"hashes": hashes, "scene": state}), compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _colormap_css(name: str, n: int = 12) -> str:
    from matplotlib import colormaps

    cmap = colormaps[name]
    stops = []
    for i in range(n):
        r, g, b, _ = cmap(i / (n - 1))
        stops.append(f"rgb({int(255 * r)},{int(255 * g)},{int(255 * b)}) {100 * i / (n - 1):.0f}%")
    return f"linear-gradient(to top, {', '.join(stops)})"


def _overlay_html(scene: Scene, legend: list[tuple[str, str]], planes: list[str]) -> str:
    thr = scene.threshold_V_per_mm
    items = "".join(
        f'<div><span style="display:inline-block;width:12px;height:12px;margin-right:6px;background:{c}"></span>'
        f"{html.escape(lab)}</div>" for lab, c in legend)
    title = "<br>".join(html.escape(t) for t in scene.title)
    note = "drag: rotate · wheel: zoom · shift-drag: pan"
    if planes:
        note += "<br>T1: " + html.escape(", ".join(planes))
    bar = (f'<div style="display:flex;align-items:stretch;gap:6px;margin-top:10px">'
           f'<div style="width:14px;height:120px;background:{_colormap_css(FIELD_CMAP)}"></div>'
           f'<div style="display:flex;flex-direction:column;justify-content:space-between;height:120px">'
           f"<span>{thr:.2g}</span><span>{thr / math.sqrt(FIELD_RANGE):.2g}</span><span>{thr / FIELD_RANGE:.2g}</span>"
           f"</div><div style=\"writing-mode:vertical-rl\">|E| (V/mm), log</div></div>")
    style = ("position:fixed;z-index:10;font:13px sans-serif;color:#eee;background:rgba(20,24,32,0.75);"
             "padding:8px 10px;border-radius:4px;pointer-events:none")
    return (f'<div id="vta-title" style="{style};top:8px;left:8px;max-width:58%">{title}'
            f'<div style="color:#bbb;margin-top:6px;font-size:11px">{note}</div></div>'
            f'<div id="vta-legend" style="{style};top:8px;right:8px">{items}{bar}</div>')


def render_html(scene: Scene, path: str | Path) -> Path:
    """Write the scene as one self-contained interactive HTML file (vtk.js inside).

    The page embeds the vtk.js viewer and the scene data (base64); it loads nothing
    from the network. The VTA is drawn whole and semi-transparent, with the |E| cut
    plane of the anterior view and the T1 backdrop planes.

    Parameters
    ----------
    scene : Scene
    path : str or Path
        Output ``.html``; written atomically.

    Returns
    -------
    Path
    """
    pv = _pyvista()
    try:
        from trame_vtk.tools.vtksz2html import HTML_VIEWER_PATH
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise VtaError(f"HTML export needs trame-vtk ({exc})") from None
    camera = "anterior"
    plotter = pv.Plotter(off_screen=True, window_size=(1200, 900))
    try:
        plotter.set_background(COLORS["background"])
        legend, planes = _populate(pv, plotter, scene, camera, cutaway=False)
        fmesh = field_slice_mesh(scene, camera, outside_vta_only=True)
        if fmesh is not None:
            thr = scene.threshold_V_per_mm
            fmesh.point_data["log10E"] = np.log10(np.clip(fmesh.point_data["E"], thr / FIELD_RANGE, thr))
            plotter.add_mesh(fmesh, scalars="log10E", cmap=FIELD_CMAP,
                             clim=(math.log10(thr / FIELD_RANGE), math.log10(thr)), opacity=0.8,
                             lighting=False, show_scalar_bar=False)
        _camera(plotter, scene, camera)
        plotter.render()
        data = _serialize_scene(plotter)
    finally:
        plotter.close()
    viewer = Path(HTML_VIEWER_PATH).read_text(encoding="utf-8")
    # the stock viewer adds favicon links to a web site; point them at an empty data URL
    viewer = re.sub(r"https://kitware\.github\.io/vtk-js/icon/[^`'\"]*", "data:,", viewer)
    viewer = viewer.replace("<title>VTK.js | Example - OfflineLocalView</title>",
                            f"<title>{html.escape(scene.title[0] if scene.title else 'vta scene')}</title>"
                            '<link rel="icon" href="data:,">')
    payload = base64.b64encode(data).decode("ascii")
    to_camera, view_up = camera_frame(camera, scene.axis, scene.hemisphere)
    distance = 0.5 * scene.fov_mm * 1.3 / math.tan(math.radians(15.0))
    view = {"focal": scene.focus_mm.tolist(), "position": (scene.focus_mm + distance * to_camera).tolist(),
            "up": np.asarray(view_up).tolist()}
    overlay = json.dumps(_overlay_html(scene, legend, planes)).replace("</", "<\\/")
    loader = (
        "<script>\n"
        f"const VTA_OVERLAY = {overlay};\n"
        f"const VTA_VIEW = {json.dumps(view)};\n"
        "function loadDataSet() {\n"
        "  const container = document.querySelector('.content') || document.querySelector('body');\n"
        f'  const base64Str = "{payload}";\n'
        "  OfflineLocalView.load(container, { base64Str });\n"
        "  container.insertAdjacentHTML('beforeend', VTA_OVERLAY);\n"
        "  let tries = 0;\n"
        "  const aim = () => {\n"
        "    const rw = window.global && window.global.renderWindow;\n"
        "    const ren = rw && rw.getRenderers().find((r) => r.getActors().length > 0);\n"
        "    if (!ren) { if (tries++ < 400) setTimeout(aim, 50); return; }\n"
        "    const cam = ren.getActiveCamera();\n"
        "    cam.setViewAngle(30); cam.setFocalPoint(...VTA_VIEW.focal);\n"
        "    cam.setPosition(...VTA_VIEW.position); cam.setViewUp(...VTA_VIEW.up);\n"
        "    ren.resetCameraClippingRange(); rw.render();\n"
        "    document.body.setAttribute('data-vta-ready', String(ren.getActors().length));\n"
        "  };\n"
        "  aim();\n"
        "}\n</script>\n"
    )
    if "</body>" not in viewer:
        raise VtaError(f"unexpected vtk.js viewer template at {HTML_VIEWER_PATH}")
    page = viewer.replace("</body>", loader + "</body>", 1)
    from ..io import atomic_write_bytes

    out = atomic_write_bytes(Path(path), page.encode("utf-8"))
    log.info("wrote %s (%.1f MB)", out, len(page) / 1e6)
    return out


def views_writer(config, cameras: Sequence[str] = CAMERAS, size: Sequence[int] = (1400, 1000), write_html: bool = True):
    """An ``extra`` writer for :func:`vta.pipeline.run`: the targeting views of the run.

    ``run(config, out, extra=views_writer(config))`` writes ``render_<camera>.png`` for
    each camera and ``scene.html`` next to the run's other outputs, in the same
    all-or-nothing transaction. Call :func:`check_rendering` first.
    """
    import time

    def write(sim, tx):
        t0 = time.perf_counter()
        fibres, activation = fibres_from_tracts(sim.tracts)  # the [tracts] axons near the lead, if any
        scene = scene_from_run(config, sim.summary, sim.basis, sim.vta_grid, fibres, activation)
        written = []
        for camera in cameras:
            log.info("rendering the %s view", camera)
            render_png(scene, tx.path(f"render_{camera}.png"), camera, size)
            written.append(f"render_{camera}.png")
        if write_html:
            log.info("writing the interactive scene")
            render_html(scene, tx.path("scene.html"))
            written.append("scene.html")
        return written, {"render": time.perf_counter() - t0}

    return write
