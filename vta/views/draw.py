"""Put a :class:`~vta.views.view_scene.ViewScene` into a pyvista plotter.

Shared by the PNG views and the HTML export: the T1 backdrop planes, the structures,
the lead, the VTA and the fibres with their colours (whole, or as cutaways behind a
camera's cut plane), and the camera aimed at the focus.
"""

from __future__ import annotations

import numpy as np

from .meshes import fibre_meshes, lead_cross_section, lead_meshes, structure_surface, t1_planes, vta_surface
from .view_scene import COLORS, ViewScene, _label, _structure_colours, camera_frame


def _t1_window(planes) -> tuple[float, float]:
    vals = np.concatenate([np.asarray(g.point_data["T1"]) for g, _ in planes])
    vals = vals[vals > 0]
    if len(vals) == 0:
        return 0.0, 1.0
    return float(np.percentile(vals, 1)), float(np.percentile(vals, 99.5))


def _populate(pv, plotter, scene: ViewScene, camera: str, cutaway: bool) -> tuple[list[tuple[str, str]], list[str]]:
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


def _camera(plotter, scene: ViewScene, camera: str) -> None:
    to_camera, view_up = camera_frame(camera, scene.axis, scene.hemisphere)
    distance = 300.0
    cam = plotter.camera
    cam.focal_point = tuple(scene.focus_mm)
    cam.position = tuple(scene.focus_mm + distance * to_camera)
    cam.up = tuple(view_up)
    cam.parallel_projection = True
    cam.parallel_scale = 0.5 * scene.fov_mm
    plotter.renderer.ResetCameraClippingRange()
