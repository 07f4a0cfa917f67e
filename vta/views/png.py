"""Offscreen PNG targeting views: :func:`render_png` and where things land in the image.

The PNG views are cutaways: the VTA isosurface (``|E| = threshold``) is cut by the
plane through the lead axis that faces the camera, and its far half is drawn; on that
plane the field just outside the VTA is drawn as a log colour map, so the view shows
the lead, the VTA's extent, and how fast the field falls off. The T1 planes are
backdrops just behind the VTA (coronal for the anterior view, sagittal for the lateral
view) and under it (axial), so they never hide the lead or the VTA. A title, notes
(with the tip and active-contact coordinates), a legend, orientation axes and the
contact labels (``C0..Cn``, with the amplitude of the active contacts) are drawn over
the image.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import VtaError
from .draw import _camera, _populate
from .gl import _pyvista
from .meshes import field_slice_mesh
from .view_scene import CAMERAS, COLORS, FIELD_CMAP, FIELD_RANGE, ViewScene, spread

log = logging.getLogger(__name__)


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


def render_png(scene: ViewScene, path: str | Path, camera: str = "anterior", size: Sequence[int] = (1400, 1000)) -> RenderInfo:
    """Render one targeting view to a PNG (offscreen).

    Parameters
    ----------
    scene : ViewScene
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
        _contact_labels(plotter, scene, camera, world_to_px, width, height)
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


def _world_to_pixels(plotter, points: np.ndarray, height: int) -> np.ndarray:
    ren = plotter.renderer
    out = []
    for p in np.atleast_2d(points):
        ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
        ren.WorldToDisplay()
        x, y, _ = ren.GetDisplayPoint()
        out.append((x, height - 1 - y))
    return np.array(out)


# --- decorations: title, notes, legend --------------------------------------------------


_VIEW_TEXT = {
    "anterior": "anterior view (patient's right on the left)",
    "lateral": "lateral view from the {side} side",
    "trajectory": "view along the lead, entry -> tip",
}


def _decorate(plotter, scene: ViewScene, camera: str, legend, planes: Sequence[str], width: int, height: int) -> None:
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
    info += list(scene.coordinates)
    size = int(14 * scale)
    for i, line in enumerate(reversed(info)):
        _text(plotter, line, pad, pad + i * int(1.4 * size), size, "#c8c8c8", top=False)
    if legend:
        _legend(plotter, legend, width, height, scale)
    y0 = min((pad + len(info) * 1.4 * size + 4) / height, 0.6)  # the axes widget above the notes
    plotter.add_axes(xlabel="R", ylabel="A", zlabel="S", line_width=3, color=COLORS["text"],
                     viewport=(0.0, y0, 0.11, y0 + 0.15))


# --- contact labels ------------------------------------------------------------------------


def _contact_labels(plotter, scene: ViewScene, camera: str, world_to_px: np.ndarray, width: int,
                    height: int) -> list[str]:
    """``C0..Cn`` labels with leader lines, in a column beside the lead and the VTA (or,
    looking down the lead, around the contacts of the level it is cut at).

    Returns the label texts drawn.
    """
    if not scene.contact_labels:
        return []
    from pyvista import _vtk

    lead, placement = scene.lead, scene.placement
    scale = max(max(width, height) / 1400.0, 0.75)
    font = max(int(15 * scale), 8)
    indices = list(range(lead.n_contacts))
    if camera == "trajectory":  # only the contacts at the level the view cuts across
        z = float(placement.to_local(scene.field_slices["trajectory"].center_mm)[2])
        indices = [c.index for c in lead.contacts() if c.z_start_mm - 1e-9 <= z <= c.z_end_mm + 1e-9]
    if not indices:
        return []
    anchors = _project(world_to_px, np.array([placement.contact_center_mm(lead, k) for k in indices]))
    actors = []
    for k in indices:
        actor = _vtk.vtkTextActor()
        actor.SetInput(scene.contact_labels[k])
        prop = actor.GetTextProperty()
        prop.SetFontSize(font)
        prop.SetColor(*_rgb(COLORS["text"]))
        prop.SetBold(scene.polarity[k] != "inactive")
        prop.SetBackgroundColor(*_rgb("#1b2028"))
        prop.SetBackgroundOpacity(0.8)
        prop.SetVerticalJustificationToCentered()
        actors.append(actor)
    widths = []
    for actor in actors:
        bbox = [0.0, 0.0, 0.0, 0.0]
        actor.GetBoundingBox(plotter.renderer, bbox)
        widths.append(bbox[1] - bbox[0])
    label_w = max(widths)
    mm_px = float(np.linalg.norm(world_to_px[:, :3], axis=1).max())
    r_px = lead.radius_mm * mm_px
    gap = 18 * scale
    if camera == "trajectory":
        axis_px = _project(world_to_px, placement.tip_mm)[0]
        positions = []
        for a, k in zip(anchors, indices):
            d = a - axis_px
            d = d / np.linalg.norm(d) if np.linalg.norm(d) > 0.2 * r_px else np.array([1.0, 0.0])
            x, y = a + d * (0.6 * r_px + gap)
            positions.append((x if d[0] >= 0 else x - widths[len(positions)], y))
    else:
        # a column on the side of the lead and the VTA with more room, clear of the legend
        left, right = anchors[:, 0].min() - r_px, anchors[:, 0].max() + r_px
        if scene.vta.mask.any():
            g = scene.vta.grid
            ijk = np.argwhere(scene.vta.mask)
            cols = _project(world_to_px, g.origin_mm + g.spacing_mm * ijk)[:, 0]
            left, right = min(left, float(cols.min())), max(right, float(cols.max()))
        x_right, x_left = right + gap, left - gap - label_w
        fits_right = x_right + label_w <= 0.86 * width
        x = x_right if fits_right or x_left < 0.12 * width else x_left
        order = np.argsort(anchors[:, 1])
        rows = spread(anchors[order, 1], 1.45 * font, 0.12 * height, 0.88 * height)
        positions = [None] * len(indices)
        for j, i in enumerate(order):
            positions[i] = (x, rows[j])
    for (x, row), a, actor, w in zip(positions, anchors, actors, widths):
        y = height - 1 - row
        actor.SetPosition(x, y)
        end = x if abs(x - a[0]) <= abs(x + w - a[0]) else x + w
        _line(plotter, (end, y), (a[0], height - 1 - a[1]), "#e6e6e6", 1.5 * scale)
        plotter.renderer.AddActor(actor)
    return [scene.contact_labels[k] for k in indices]


def _line(plotter, p0: tuple[float, float], p1: tuple[float, float], colour: str, width: float) -> None:
    """A line in window pixels (origin lower left)."""
    _overlay_2d(plotter, [p0, p1], False, colour).SetLineWidth(width)


def _overlay_2d(plotter, corners: list[tuple[float, float]], filled: bool, colour: str):
    """A polyline (or, ``filled``, a polygon) in window pixels as a 2D actor; returns its
    property for width or opacity."""
    from pyvista import _vtk

    points = _vtk.vtkPoints()
    for x, y in corners:
        points.InsertNextPoint(x, y, 0.0)
    cells = _vtk.vtkCellArray()
    cells.InsertNextCell(len(corners))
    for i in range(len(corners)):
        cells.InsertCellPoint(i)
    poly = _vtk.vtkPolyData()
    poly.SetPoints(points)
    if filled:
        poly.SetPolys(cells)
    else:
        poly.SetLines(cells)
    mapper = _vtk.vtkPolyDataMapper2D()
    mapper.SetInputData(poly)
    actor = _vtk.vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*_rgb(colour))
    plotter.renderer.AddActor(actor)
    return actor.GetProperty()


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
    _overlay_2d(plotter, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], True, colour).SetOpacity(opacity)
