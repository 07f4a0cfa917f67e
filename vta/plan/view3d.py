"""The planning app's 3D view: one offscreen pyvista plotter updated in place.

Per lead position (:meth:`PlanView3D.set_scene`): the structures near the lead (NAc,
ALIC, caudate, putamen and any user structures on the lead's side), the lead with its
contacts coloured by polarity and labelled C0..Cn. Per setting (:meth:`PlanView3D.update`):
the VTA isosurface and an |E| plane through the active contacts (axial), from the
live planning grid. Per tract activation (:meth:`PlanView3D.show_fibres`): the
fibres, activated ones highlighted. Colours are those of ``vta render``.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np

from ..views.gl import _pyvista
from ..views.meshes import _sample_image, lead_meshes, structure_surface
from ..views.view_scene import COLORS, _structure_colours, fibres_from_tracts
from .live import LiveResponse, LiveResult

__all__ = ["PlanView3D", "polarity_of"]

log = logging.getLogger(__name__)

#: Structures shown (base names), besides any user structure on the lead's side.
SHOWN = ("nac", "alic", "caudate", "putamen")


def polarity_of(result: LiveResult, n_contacts: int) -> tuple[str, ...]:
    """Polarity per contact: cathode (negative amplitude), anode, or inactive."""
    out = []
    for k in range(n_contacts):
        a = result.setting.amplitudes.get(k, 0.0)
        out.append("cathode" if a < 0 else "anode" if a > 0 else "inactive")
    return tuple(out)


class PlanView3D:
    """An offscreen plotter for :class:`vta.plan.session.PlanSession` (see the module docstring)."""

    def __init__(self, size: tuple[int, int] = (900, 700)):
        pv = _pyvista()  # probes offscreen OpenGL first (a clear error instead of a VTK crash)
        self.pv = pv
        self.plotter = pv.Plotter(off_screen=True, window_size=list(size))
        self.plotter.set_background("#0c0f14")
        self._dynamic: list = []
        self._lead: list = []
        self._fibres: list = []
        self._live: LiveResponse | None = None
        self._polarity: tuple[str, ...] = ()
        self._plane_key = None
        self._plane = None

    @property
    def render_window(self):
        return self.plotter.ren_win

    def set_scene(self, live: LiveResponse, result: LiveResult) -> None:
        """Rebuild the static part for a new lead position and aim the camera."""
        p = self.plotter
        p.clear_actors()
        self._dynamic, self._lead, self._fibres = [], [], []
        self._polarity = ()
        self._live = live
        scene = live.scene
        centre = live.contact_centres_mm.mean(axis=0)
        box = np.array([centre - 25.0, centre + 25.0])
        side = scene.lead.hemisphere
        self._t1_backdrop(live, centre)
        names = [n for n in scene.structures if _shown(n, side)]
        for name, (colour, opacity) in _structure_colours(names).items():
            surf = structure_surface(scene.structures[name].mask(), box)
            if surf is not None:
                p.add_mesh(surf, color=colour, opacity=opacity, smooth_shading=True, name=f"structure-{name}")
        self.update(result, reset_camera=True)

    def _t1_backdrop(self, live: LiveResponse, centre: np.ndarray, half_mm: float = 25.0, step_mm: float = 0.5) -> None:
        """A coronal T1 plane behind the contacts (the camera looks from anterior)."""
        t1 = live.scene.anatomy.t1 if live.scene.anatomy is not None else None
        if t1 is None:
            return
        pv, p = self.pv, self.plotter
        lo = live.contact_centres_mm.min(axis=0) - 6.0
        ex, ey, ez = np.eye(3)
        t = np.arange(-half_mm, half_mm + 1e-9, step_mm)
        for name, origin, u, v in (("t1-coronal", np.array([centre[0], lo[1], centre[2]]), ex, ez),):
            pts = origin + t[:, None, None] * u + t[None, :, None] * v
            grid = pv.StructuredGrid(pts[..., 0], pts[..., 1], pts[..., 2])
            values = _sample_image(t1, pts)
            grid.point_data["T1"] = values.ravel(order="F")
            positive = values[values > 0]
            lo_v, hi_v = (np.percentile(positive, [1, 99.5]) if positive.size else (0.0, 1.0))
            p.add_mesh(grid, scalars="T1", cmap="gray", clim=(lo_v, lo_v + 1.6 * (hi_v - lo_v)), lighting=False,
                       show_scalar_bar=False, name=name)

    def update(self, result: LiveResult, reset_camera: bool = False) -> None:
        """Redraw the setting-dependent parts: lead polarity, VTA, |E| plane."""
        live, p, pv = self._live, self.plotter, self.pv
        if live is None:
            return
        scene = live.scene
        polarity = polarity_of(result, scene.lead.model.n_contacts)
        for name in self._dynamic:
            p.remove_actor(name)
        self._dynamic = []
        if polarity != self._polarity or not self._lead:
            self._draw_lead(live, polarity)
        g = live.grid
        img = pv.ImageData(dimensions=g.shape, spacing=(g.spacing_mm,) * 3, origin=tuple(g.origin_mm))
        img.point_data["E"] = np.asarray(result.field_norm_V_per_mm, float).ravel(order="F")
        if (result.field_norm_V_per_mm >= result.threshold_V_per_mm).any():
            surf = img.contour([result.threshold_V_per_mm], scalars="E")
            if surf.n_points:
                p.add_mesh(surf.smooth_taubin(n_iter=15, pass_band=0.1), color=COLORS["vta"], opacity=0.6,
                           smooth_shading=True, name="vta")
                self._dynamic.append("vta")
        centre = live.active_centre_mm(result.state)
        plane = self._field_plane(live, result)
        if plane is not None:
            hi = max(4.0 * result.threshold_V_per_mm, 1e-6)
            p.add_mesh(plane, scalars="E", cmap="inferno", clim=(0.0, hi), opacity=0.85, name="efield-plane",
                       scalar_bar_args={"title": "|E| (V/mm)", "color": "white", "vertical": True,
                                        "position_x": 0.88, "position_y": 0.1, "height": 0.5, "width": 0.06})
            self._dynamic.append("efield-plane")
        if reset_camera:
            self._aim(centre, scene.lead.placement.direction)

    def _field_plane(self, live: LiveResponse, result: LiveResult, half_mm: float = 15.0, step_mm: float = 0.3):
        """An axial |E| plane through the contact with the largest current (exact field,
        probe located once per lead position and plane)."""
        currents = np.abs(np.asarray(result.state.currents_mA, float))
        if not currents.any():
            return None
        centre = live.contact_centres_mm[int(np.argmax(currents))]
        key = (id(live), round(float(centre[2]), 3))
        if self._plane_key != key:
            t = np.arange(-half_mm, half_mm + 1e-9, step_mm)
            pts = np.zeros((len(t), len(t), 3))
            pts[..., 0] = centre[0] + t[:, None]
            pts[..., 1] = centre[1] + t[None, :]
            pts[..., 2] = centre[2]
            grid = self.pv.StructuredGrid(pts[..., 0], pts[..., 1], pts[..., 2])
            # vtk's point order runs over x first: the probe's points in that order
            self._plane = (grid, live.basis.field_probe(pts.transpose(1, 0, 2).reshape(-1, 3)))
            self._plane_key = key
        grid, probe = self._plane
        grid.point_data["E"] = probe.norm(result.state.potentials_V)
        return grid

    def _draw_lead(self, live: LiveResponse, polarity: tuple[str, ...]) -> None:
        """The lead with contacts coloured by polarity, and the C0..Cn labels."""
        p, scene = self.plotter, live.scene
        for name in self._lead:
            p.remove_actor(name)
        self._lead, self._polarity = [], polarity
        lead_view = SimpleNamespace(lead=scene.lead.model, placement=scene.lead.placement, polarity=polarity)
        for i, (mesh, colour, kind) in enumerate(lead_meshes(lead_view)):
            name = f"lead-{i}"
            p.add_mesh(mesh, color=colour, smooth_shading=True, specular=0.5 if kind != "shaft" else 0.2, name=name)
            self._lead.append(name)
        labels = [f"C{k}" for k in range(len(live.contact_centres_mm))]
        offset = _label_offset(scene.lead.placement.direction)
        p.add_point_labels(live.contact_centres_mm + offset, labels, font_size=14, text_color="white",
                           shape_opacity=0.0, show_points=False, name="contact-labels", always_visible=True)
        self._lead.append("contact-labels")

    def show_fibres(self, confirmed) -> None:
        """Fibres of the tract activation (:class:`vta.plan.session.Confirmed` or a
        simulation): activated ones in magenta."""
        p, pv = self.plotter, self.pv
        for name in self._fibres:
            p.remove_actor(name)
        self._fibres = []
        fibres, activation = fibres_from_tracts(getattr(confirmed, "tracts", None))
        if not fibres:
            return
        for on in (False, True):
            lines = [f for f, a in zip(fibres, activation) if (a >= 0.5) == on]
            if not lines:
                continue
            name = f"fibres-{'on' if on else 'off'}"
            p.add_mesh(_polylines(pv, lines), color=COLORS["fibre_active" if on else "fibre_inactive"],
                       opacity=1.0 if on else 0.3, line_width=3 if on else 1, name=name)
            self._fibres.append(name)

    def _aim(self, centre: np.ndarray, direction: np.ndarray) -> None:
        cam = self.plotter.camera
        side = np.cross(direction, [0.0, 0.0, 1.0])
        if np.linalg.norm(side) < 1e-6:
            side = np.array([1.0, 0.0, 0.0])
        view = -np.array([0.0, 1.0, 0.0]) + 0.4 * side / np.linalg.norm(side) + np.array([0, 0, 0.3])
        cam.focal_point = tuple(centre)
        cam.position = tuple(centre - 150.0 * view / np.linalg.norm(view))
        cam.up = (0.0, 0.0, 1.0)
        cam.parallel_projection = True
        cam.parallel_scale = 22.0
        self.plotter.renderer.ResetCameraClippingRange()

    def screenshot(self) -> np.ndarray:
        """The current image (H, W, 3) uint8."""
        return self.plotter.screenshot(return_img=True)


def _shown(name: str, side: str) -> bool:
    low = name.lower()
    base = low.rsplit("_", 1)[0] if low[-2:] in ("_r", "_l") else low
    if low[-2:] in ("_r", "_l") and low[-1] != side.lower():
        return False
    return base in SHOWN or base not in ("gpe", "gpi", "thalamus", "amygdala")


def _label_offset(direction: np.ndarray) -> np.ndarray:
    """A small world offset (mm) that puts a contact label beside the lead."""
    d = np.asarray(direction, float)
    side = np.cross(d, [0.0, 1.0, 0.0])
    if np.linalg.norm(side) < 1e-6:
        side = np.array([1.0, 0.0, 0.0])
    return 1.6 * side / np.linalg.norm(side)


def _polylines(pv, lines: list[np.ndarray]):
    points = np.concatenate(lines)
    cells, start = [], 0
    for line in lines:
        n = len(line)
        cells.extend([n, *range(start, start + n)])
        start += n
    poly = pv.PolyData(points)
    poly.lines = np.asarray(cells)
    return poly
