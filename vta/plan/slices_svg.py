"""Axial, coronal and sagittal slices through the active contacts, as SVG for the app.

Each panel: the T1 (when the anatomy has one) with the structures tinted and outlined,
|E| iso-lines (0.5x, 1x = the VTA outline, 2x and 4x the threshold), the lead projected
onto the plane with contacts C0..Cn coloured by polarity and labelled with their
amplitude, mm tick labels in the anatomy's world coordinates, orientation letters
(neurological convention: the patient's left on the left) and a 5 mm scale bar.

The field is evaluated exactly on the slice points (0.3 mm) with a field probe located
once per lead position and slice centre; the image part is rebuilt only when those
change, so a new setting costs the iso-lines only.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np

from ..views.slice_data import PANELS, PanelData, SlicePlane, _sample, _sample_structures, slice_planes
from ..views.view_scene import COLORS, _structure_colours
from .live import LiveResponse, LiveResult

__all__ = ["SliceRenderer", "background_box_percent"]

HALF_WIDTH_MM = 15.0
STEP_MM = 0.3
PANEL_PX = 360
MARGIN_PX = 34
ISO_FACTORS = (0.5, 1.0, 2.0, 4.0)


@dataclass
class _Prepared:
    planes: dict[str, SlicePlane]
    background: dict[str, str]
    outlines: dict[str, list]
    probes: dict
    outline_svg: dict[str, str] = field(default_factory=dict)


def _png_data_uri(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _contours(values: np.ndarray, level: float) -> list[np.ndarray]:
    """Iso-lines of ``values`` (rows = v, columns = u) in pixel-grid coordinates."""
    import contourpy

    gen = contourpy.contour_generator(z=values, line_type="Separate")
    return [line for line in gen.lines(level) if len(line) > 1]


class SliceRenderer:
    """SVG slices for :class:`vta.plan.live.LiveResponse` results."""

    def __init__(self):
        self._prepared: _Prepared | None = None
        self._key = None

    def _prepare(self, live: LiveResponse, centre: np.ndarray) -> _Prepared:
        key = (id(live), tuple(np.round(centre / STEP_MM).astype(int)))
        if self._key == key and self._prepared is not None:
            return self._prepared
        scene = live.scene
        anatomy = scene.anatomy
        planes = slice_planes(centre, 2 * HALF_WIDTH_MM, STEP_MM, anatomical=anatomy is not None)
        panels = {name: PanelData(field=np.zeros(0), vta=None, structures={}) for name in planes}
        if anatomy is not None:
            _sample_structures(anatomy, planes, panels)
        colours = _structure_colours(_lead_side_structures(live))
        background, outlines, probes = {}, {}, {}
        for name, plane in planes.items():
            flat = plane.points().reshape(-1, 3)
            shape = (len(plane.v_mm), len(plane.h_mm))
            rgb = np.full(shape + (3,), 0.12)
            if anatomy is not None and anatomy.t1 is not None:
                t1 = _sample(anatomy.t1.data, anatomy.t1.world_to_voxel(flat)).reshape(shape)
                lo, hi = np.percentile(t1[t1 > 0], [1, 99.5]) if (t1 > 0).any() else (0.0, 1.0)
                rgb[:] = np.clip((t1 - lo) / max(hi - lo, 1e-9), 0, 1)[..., None]
            lines = []
            for sname, (colour, _) in colours.items():
                smooth = panels[name].structures.get(sname)
                if smooth is None:
                    continue
                c = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
                inside = smooth >= 0.5
                rgb[inside] = 0.7 * rgb[inside] + 0.3 * c
                lines += [(sname, colour, line) for line in _contours(smooth, 0.5)]
            background[name] = _png_data_uri((255 * rgb[::-1]).astype(np.uint8))  # image rows: top = high v
            outlines[name] = lines
            probes[name] = live.basis.field_probe(flat)
        self._prepared = _Prepared(planes, background, outlines, probes)
        self._key = key
        return self._prepared

    def legend_html(self, live: LiveResponse) -> str:
        """Colour key of the slices: structures, VTA outline, |E| iso-lines, polarity."""
        items = [(colour, name) for name, (colour, _) in _structure_colours(_lead_side_structures(live)).items()]
        items += [(COLORS["vta"], f"VTA (|E| = {live.scene.threshold_V_per_mm:.3g} V/mm)"),
                  ("#ffd27f", "|E| 0.5x, 2x, 4x threshold (dashed)"),
                  (COLORS["cathode"], "cathode"), (COLORS["anode"], "anode"), (COLORS["inactive"], "inactive")]
        chips = "".join(f'<span style="margin-right:10px"><span style="display:inline-block;width:10px;height:10px;'
                        f'background:{c};margin-right:3px"></span>{t}</span>' for c, t in items)
        return f"<div>{chips} &middot; neurological convention (patient's left on the left)</div>"

    def render(self, live: LiveResponse, result: LiveResult, embed_background: bool = True) -> dict[str, str]:
        """SVG text per plane (``axial``, ``coronal``, ``sagittal``).

        Without ``embed_background`` the T1/structure image is left out (transparent
        panel), for a page that shows :meth:`backgrounds` under the SVG and need not
        resend the image with every setting."""
        centre = live.active_centre_mm(result.state)
        prep = self._prepare(live, centre)
        return {plane: self._svg(live, result, prep, plane, embed_background) for plane in PANELS}

    def backgrounds(self, live: LiveResponse, result: LiveResult) -> dict[str, str]:
        """The panels' T1/structure images as PNG data URIs (they change only when the
        lead or the set of active contacts does)."""
        prep = self._prepare(live, live.active_centre_mm(result.state))
        return dict(prep.background)

    def _svg(self, live: LiveResponse, result: LiveResult, prep: _Prepared, name: str,
             embed_background: bool = True) -> str:
        plane = prep.planes[name]
        u_mm, v_mm = plane.h_mm, plane.v_mm
        n = len(u_mm)
        scale = PANEL_PX / (n - 1)                         # px per sample step
        px_per_mm = scale / STEP_MM
        W = H = PANEL_PX + 2 * MARGIN_PX

        def xy(ui: float, vi: float) -> tuple[float, float]:   # sample-grid index -> svg px
            return MARGIN_PX + ui * scale, MARGIN_PX + (n - 1 - vi) * scale

        def mm(u: float, v: float) -> tuple[float, float]:
            return xy((u - u_mm[0]) / STEP_MM, (v - v_mm[0]) / STEP_MM)

        out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" '
               f'class="vta-slice" data-plane="{name}" font-family="sans-serif">',
               ]
        if embed_background:
            out += [f'<rect width="{W}" height="{H}" fill="#0c0f14"/>',
                    f'<image href="{prep.background[name]}" x="{MARGIN_PX}" y="{MARGIN_PX}" width="{PANEL_PX}" '
                    f'height="{PANEL_PX}" preserveAspectRatio="none"/>']
        clip = f"vta-clip-{name}"
        out.append(f'<clipPath id="{clip}"><rect x="{MARGIN_PX}" y="{MARGIN_PX}" width="{PANEL_PX}" '
                   f'height="{PANEL_PX}"/></clipPath><g clip-path="url(#{clip})">')
        if name not in prep.outline_svg:  # static per lead position: formatted once
            prep.outline_svg[name] = "".join(_path(line, xy, colour, 1.2) for _, colour, line in prep.outlines[name])
        out.append(prep.outline_svg[name])
        norm = prep.probes[name].norm(result.state.potentials_V).reshape(n, n)
        thr = result.threshold_V_per_mm
        for f in ISO_FACTORS:
            width, colour = (2.6, COLORS["vta"]) if f == 1.0 else (0.9, "#ffd27f")
            lines = _contours(norm, f * thr)
            for line in lines:
                out.append(_path(line, xy, colour, width, dash=None if f == 1.0 else "4 3"))
            if lines and f != 1.0:
                longest = max(lines, key=len)
                x, y = xy(*longest[len(longest) // 2])
                out.append(f'<text x="{x:.1f}" y="{y:.1f}" fill="#ffd27f" font-size="9">{f * thr:.2g}</text>')
        out += self._lead(live, result, plane, mm, px_per_mm)
        out.append("</g>")
        # ticks every 5 mm, letters, scale bar, title
        for value in np.arange(np.ceil(u_mm[0] / 5) * 5, u_mm[-1] + 1e-9, 5.0):
            x, _ = mm(value, v_mm[0])
            out.append(f'<line x1="{x:.1f}" y1="{MARGIN_PX + PANEL_PX}" x2="{x:.1f}" y2="{MARGIN_PX + PANEL_PX + 4}" '
                       f'stroke="#ccc"/><text x="{x:.1f}" y="{MARGIN_PX + PANEL_PX + 15}" fill="#ccc" font-size="10" '
                       f'text-anchor="middle">{value + 0.0:g}</text>')
        for value in np.arange(np.ceil(v_mm[0] / 5) * 5, v_mm[-1] + 1e-9, 5.0):
            _, y = mm(u_mm[0], value)
            out.append(f'<line x1="{MARGIN_PX - 4}" y1="{y:.1f}" x2="{MARGIN_PX}" y2="{y:.1f}" stroke="#ccc"/>'
                       f'<text x="{MARGIN_PX - 6}" y="{y + 3:.1f}" fill="#ccc" font-size="10" '
                       f'text-anchor="end">{value + 0.0:g}</text>')
        left, right, top, bottom = plane.edge_letters
        mid = MARGIN_PX + PANEL_PX / 2
        for text, x, y in ((left, MARGIN_PX + 8, mid), (right, MARGIN_PX + PANEL_PX - 8, mid),
                           (bottom, mid, MARGIN_PX + PANEL_PX - 6), (top, mid, MARGIN_PX + 16)):
            out.append(f'<text x="{x:.1f}" y="{y:.1f}" fill="#fff" font-size="15" font-weight="bold" '
                       f'text-anchor="middle">{text}</text>')
        x0, y0 = MARGIN_PX + PANEL_PX - 12 - 5 * px_per_mm, MARGIN_PX + PANEL_PX - 12
        out.append(f'<line x1="{x0:.1f}" y1="{y0}" x2="{x0 + 5 * px_per_mm:.1f}" y2="{y0}" stroke="#fff" '
                   f'stroke-width="3"/><text x="{x0 + 2.5 * px_per_mm:.1f}" y="{y0 - 5}" fill="#fff" font-size="10" '
                   f'text-anchor="middle">5 mm</text>')
        out.append(f'<text x="{MARGIN_PX}" y="{MARGIN_PX - 10}" fill="#fff" font-size="12">{name} '
                   f'{"xyz"[plane.normal_axis]} = {plane.coordinate_mm:.1f} mm ({"xyz"[plane.h_axis]}, '
                   f'{"xyz"[plane.v_axis]} in mm)</text>')
        out.append("</svg>")
        return "".join(out)

    def _lead(self, live: LiveResponse, result: LiveResult, plane: SlicePlane, mm, px_per_mm: float) -> list[str]:
        hu, hv = plane.h_axis, plane.v_axis
        scene = live.scene
        lead, placement = scene.lead.model, scene.lead.placement
        tip, d = np.asarray(placement.tip_mm, float), np.asarray(placement.direction, float)
        top = tip + 60.0 * d
        width = max(lead.diameter_mm * px_per_mm, 2.0)
        x0, y0 = mm(tip[hu], tip[hv])
        x1, y1 = mm(top[hu], top[hv])
        out = [f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{COLORS["shaft"]}" '
               f'stroke-opacity="0.8" stroke-width="{width:.1f}" stroke-linecap="round"/>']
        amps = result.setting.amplitudes
        unit = "mA" if result.setting.mode == "current" else "V"
        for c in lead.contacts():
            a = placement.to_world(np.array([[0.0, 0.0, max(c.z_start_mm, 0.0)]]))[0]
            b = placement.to_world(np.array([[0.0, 0.0, c.z_end_mm]]))[0]
            amp = amps.get(c.index, 0.0)
            pol = "cathode" if amp < 0 else "anode" if amp > 0 else "inactive"
            (xa, ya), (xb, yb) = mm(a[hu], a[hv]), mm(b[hu], b[hv])
            out.append(f'<line x1="{xa:.1f}" y1="{ya:.1f}" x2="{xb:.1f}" y2="{yb:.1f}" stroke="{COLORS[pol]}" '
                       f'stroke-width="{width:.1f}"/>')
            label = f"C{c.index}" + (f" {amp:+g} {unit}" if amp else "")
            xm, ym = 0.5 * (xa + xb), 0.5 * (ya + yb)
            out.append(f'<text x="{xm + width / 2 + 4:.1f}" y="{ym + 4:.1f}" fill="#fff" font-size="13" font-weight="bold" '
                       f'class="contact-label">{label}</text>')
        return out


def background_box_percent() -> tuple[float, float, float]:
    """(offset, offset, size) of the image inside a panel, in % of the panel's width:
    where a page puts :meth:`SliceRenderer.backgrounds` under the SVG."""
    total = PANEL_PX + 2 * MARGIN_PX
    return 100.0 * MARGIN_PX / total, 100.0 * MARGIN_PX / total, 100.0 * PANEL_PX / total


def _lead_side_structures(live: LiveResponse) -> list[str]:
    """Structures on the lead's side (and those without a side)."""
    side = live.scene.lead.hemisphere.lower()
    return [s for s in live.scene.structures if s.lower().endswith(f"_{side}") or "_" not in s]


def _path(line: np.ndarray, xy, colour: str, width: float, dash: str | None = None) -> str:
    pts = " ".join("{:.1f},{:.1f}".format(*xy(u, v)) for u, v in line)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{width}"{dash_attr}/>'
