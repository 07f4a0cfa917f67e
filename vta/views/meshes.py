"""The pyvista geometry of a :class:`~vta.views.view_scene.ViewScene` (world mm).

The lead (whole, or cut across at a point), the VTA isosurface, smoothed structure
surfaces, the |E| cut plane of a camera, the T1 backdrop planes and the fibre
polylines, each as a pyvista mesh. pyvista is imported lazily, after the offscreen
rendering probe (:func:`vta.views.gl.check_rendering`).
"""

from __future__ import annotations

import logging

import numpy as np

from .gl import _pyvista
from .view_scene import COLORS, FIELD_RANGE, MAX_FIBRES_DRAWN, FieldSlice, ViewScene, camera_frame

log = logging.getLogger(__name__)


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


def lead_meshes(scene: ViewScene, shaft_length_mm: float = 120.0) -> list[tuple[object, str, str]]:
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


def lead_cross_section(scene: ViewScene, point_mm: np.ndarray) -> list[tuple[object, str]]:
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


def vta_surface(scene: ViewScene):
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


def field_slice_mesh(scene: ViewScene, camera: str, outside_vta_only: bool = True):
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


def t1_planes(scene: ViewScene, camera: str) -> list[tuple[object, str]]:
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


def _content_box(scene: ViewScene) -> np.ndarray:
    """World box (2, 3) of the VTA and the active contacts (mm)."""
    pts = [scene.placement.contact_center_mm(scene.lead, k) for k, p in enumerate(scene.polarity) if p != "inactive"]
    pts.append(scene.focus_mm)
    if scene.vta.mask.any():
        ijk = np.argwhere(scene.vta.mask)
        g = scene.vta.grid
        pts += list(g.origin_mm + g.spacing_mm * np.array([ijk.min(0), ijk.max(0)]))
    pts = np.array(pts)
    return np.array([pts.min(0), pts.max(0)])


def fibre_meshes(scene: ViewScene):
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
