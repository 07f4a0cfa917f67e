"""Planning figure: axial, coronal and sagittal slices through the active contacts.

:func:`render_slices` writes ``render_slices.png``: three anatomical planes (world
axes, not the lead's frame) through the current-weighted centre of the contacts that
carry current. Each panel shows, in the anatomy's world coordinates (mm):

- the T1 (grey) with the outlines of the anatomy's structures, each in its colour;
- the VTA outline (``|E|`` = threshold, from the VTA grid) and a few labelled
  ``|E|`` iso-lines (V/mm, sampled from the field basis);
- the lead as its projection onto the plane (a band) with the projected contact
  outlines; contacts that the plane cuts are filled, the others drawn open;
- contact labels ``C0..Cn`` with the amplitude of the active ones, a 5 mm scale bar
  and orientation letters (neurological convention: patient's left on the left).

A caption gives the tip, entry and active-contact coordinates, the lead, the setting
and the VTA volume, and says when the anatomy is the MNI template rather than the
patient's MRI. The figure is drawn with matplotlib's Agg canvas (no pyplot state).
The sampling helpers live in :mod:`vta.views.slice_data`.
"""

from __future__ import annotations

import logging
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .slice_data import (PANELS, PanelData, SlicePlane, contact_outlines, entry_point, field_levels, lead_outline,
                         sample_panels, slice_planes)
from .view_scene import (COLORS, STRUCTURE_COLORS, ViewScene, _EXTRA_COLORS, active_centre_mm, case_return_text,
                         contact_label_texts, format_mm, signed, space_name, spread, view_from_simulation)

log = logging.getLogger(__name__)

#: Default size of the slice figure (width, height in pixels): 7.5 x 4.6 inches at 240 dpi,
#: so that it prints across a page with its text at 6-8 pt.
SLICES_SIZE = (1800, 1104)
#: Print width of the figure (inches); the dpi follows from the pixel width.
_WIDTH_IN = 7.5
#: Length of the scale bar (mm).
SCALE_BAR_MM = 5.0
#: The note on a figure drawn on the default (template) anatomy.
TEMPLATE_NOTE = "template anatomy (MNI152 2009), not patient MRI"

#: Panel layout (inches): left margin, panel side, gap between panels.
_LEFT_IN, _PANEL_IN, _GAP_IN = 0.40, 2.12, 0.36
_PANEL_BG = "#101318"
_LETTER_PT = 8.0
_FIELD_COLOUR = "#ffffff"


@dataclass(frozen=True)
class SliceFigure:
    """What :func:`render_slices` drew.

    Attributes
    ----------
    path : Path
        The PNG written.
    size : tuple of int
        (width, height) in pixels.
    centre_mm : ndarray, shape (3,)
        Current-weighted centre of the active contacts (world mm): every plane passes
        through it.
    planes : dict of str -> SlicePlane
        ``"axial"``, ``"coronal"``, ``"sagittal"``: each panel's plane and mm axes.
    caption : list of str
        The caption lines drawn under the panels.
    contact_labels : dict of str -> list of str
        Per panel, the contact labels drawn (e.g. ``"C2 −2.0 mA"``).
    cut_contacts : dict of str -> list of int
        Per panel, the contacts that the plane cuts.
    structures : list of str
        Structures outlined in at least one panel (legend names).
    field_levels_V_per_mm : list of float
        The |E| iso-lines drawn (V/mm), besides the VTA outline at the threshold.
    """

    path: Path
    size: tuple[int, int]
    centre_mm: np.ndarray
    planes: dict[str, SlicePlane]
    caption: list[str]
    contact_labels: dict[str, list[str]]
    cut_contacts: dict[str, list[int]]
    structures: list[str]
    field_levels_V_per_mm: list[float]


def render_slices(sim, path: str | Path, view: ViewScene | None = None, size: Sequence[int] = SLICES_SIZE,
                  fov_mm: float | None = None) -> SliceFigure:
    """Write the planning figure of a simulated setting (axial, coronal, sagittal).

    Parameters
    ----------
    sim : vta.scene.Simulation
        The simulated setting.
    path : str or Path
        Output PNG; written atomically (temporary file, then rename).
    view : ViewScene, optional
        The setting's 3D view (:func:`view_from_simulation`), reused for its VTA grid
        and field of view; built when not given.
    size : (int, int)
        Image width and height (pixels); the figure is laid out for a 7.5 inch print
        width, the pixel width sets the resolution.
    fov_mm : float, optional
        Side of each square panel (mm); default the 3D views' field of view (40 mm with
        an anatomy, 25 mm without, widened to hold the VTA).

    Returns
    -------
    SliceFigure
        The planes drawn (their mm axes), the caption and the labels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if view is None:
        view = view_from_simulation(sim)
    width, height = int(size[0]), int(size[1])
    dpi = width / _WIDTH_IN
    centre = active_centre_mm(sim)
    fov = float(fov_mm) if fov_mm is not None else float(view.fov_mm)
    space = space_name(sim.scene.config)
    planes = slice_planes(centre, fov, spacing_mm=max(fov / 300.0, 0.1), anatomical=bool(space))
    data = sample_panels(sim, view, planes)
    levels = field_levels(view.threshold_V_per_mm)

    fig = Figure(figsize=(_WIDTH_IN, height / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    caption = _caption(sim, centre, planes, view)
    labels_drawn, cut = {}, {}
    colours = _structure_legend_colours([n for d in data.values() for n in d.structures])
    shown_structures: list[str] = []
    h_in = height / dpi
    top_in = 0.62
    for i, name in enumerate(PANELS):
        x0 = _LEFT_IN + i * (_PANEL_IN + _GAP_IN)
        ax = fig.add_axes((x0 / _WIDTH_IN, 1 - (top_in + _PANEL_IN) / h_in, _PANEL_IN / _WIDTH_IN, _PANEL_IN / h_in))
        drawn, cut[name], structs = _draw_panel(ax, sim, view, planes[name], data[name], levels, colours, space)
        labels_drawn[name] = drawn
        shown_structures += [s for s in structs if s not in shown_structures]

    _title(fig, sim, centre, space, h_in)
    legend = _legend(fig, sim, view, shown_structures, colours, levels, 1 - (top_in + _PANEL_IN + 0.38) / h_in)
    bottom = legend.get_window_extent(fig.canvas.get_renderer()).y0 / height
    _draw_caption(fig, caption, bottom - 0.08 / h_in)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi, facecolor="white")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote %s (slices through %s mm, %dx%d)", path, format_mm(centre), width, height)
    return SliceFigure(path, (width, height), centre, planes, caption, labels_drawn, cut, shown_structures, levels)


# --- one panel ---------------------------------------------------------------------------


def _draw_panel(ax, sim, view: ViewScene, plane: SlicePlane, d: PanelData, levels: list[float],
                colours: dict[str, str], space: str) -> tuple[list[str], list[int], list[str]]:
    """Draw one slice; returns (contact labels drawn, contacts cut by the plane, structures drawn)."""
    import matplotlib.patheffects as pe

    h, v = plane.h_mm, plane.v_mm
    extent = (h[0], h[-1], v[0], v[-1])
    ax.set_facecolor(_PANEL_BG)
    if d.t1 is not None:
        lo, hi = d.t1_window
        ax.imshow(d.t1, cmap="gray", vmin=lo, vmax=lo + 1.35 * (hi - lo), origin="lower", extent=extent,
                  interpolation="bilinear", zorder=0)
    drawn_structures = []
    for name, prob in d.structures.items():
        base = _legend_name(name)
        ax.contour(h, v, prob, levels=[0.5], colors=[colours[base]], linewidths=1.1, zorder=2)
        if base not in drawn_structures:
            drawn_structures.append(base)

    labels = []
    field = _smooth_log(d.field, 0.25 / float(h[1] - h[0]))
    if np.any(np.isfinite(field)):
        cs = ax.contour(h, v, field, levels=levels, colors=_FIELD_COLOUR, linewidths=0.6, linestyles="--",
                        zorder=3)
        labels = ax.clabel(cs, levels=cs.levels, inline=False, fontsize=4.8, fmt=_level_text)
        for t in labels:
            t.set_path_effects([pe.withStroke(linewidth=1.4, foreground="black")])
            t.set_zorder(9)
            t.set_rotation(0)
    if d.vta is not None and np.nanmax(d.vta) >= view.threshold_V_per_mm:
        ax.contour(h, v, d.vta, levels=[view.threshold_V_per_mm], colors=[COLORS["vta"]], linewidths=1.8, zorder=4)

    cut, shapes = _draw_lead(ax, sim, view, plane)
    ax.set_xlim(h[0], h[-1])
    ax.set_ylim(v[0], v[-1])
    _decorate_panel(ax, plane, space)
    drawn, artists = _contact_labels(ax, sim, view, plane, d)
    _drop_covered(ax, labels, artists + [t for t in ax.texts if t not in labels], shapes)
    return drawn, cut, drawn_structures


def _smooth_log(field: np.ndarray, sigma: float) -> np.ndarray:
    """|E| smoothed in log space over finite samples (for tidy iso-lines); NaN kept."""
    from scipy.ndimage import gaussian_filter

    ok = np.isfinite(field) & (field > 0)
    if not ok.any() or sigma <= 0:
        return field
    logf = np.where(ok, np.log(np.where(ok, field, 1.0)), 0.0)
    num = gaussian_filter(logf, sigma)
    den = gaussian_filter(ok.astype(float), sigma)
    out = np.exp(num / np.maximum(den, 1e-12))
    return np.where(ok, out, np.nan)


def _drop_covered(ax, labels: list, obstacles: list, shapes: list[np.ndarray]) -> None:
    """Remove iso-line labels that touch another label, a letter or the lead."""
    from matplotlib.path import Path as MplPath

    if not labels:
        return
    renderer = ax.figure.canvas.get_renderer()
    boxes = [o.get_window_extent(renderer).expanded(1.15, 1.3) for o in obstacles]
    paths = [MplPath(ax.transData.transform(s)) for s in shapes]
    kept = []
    for t in labels:
        bb = t.get_window_extent(renderer)
        corners = np.array([[bb.x0, bb.y0], [bb.x1, bb.y0], [bb.x1, bb.y1], [bb.x0, bb.y1],
                            [0.5 * (bb.x0 + bb.x1), 0.5 * (bb.y0 + bb.y1)]])
        hit = any(bb.overlaps(b) for b in boxes) or any(p.contains_points(corners, radius=3).any() for p in paths)
        hit = hit or any(bb.overlaps(k.get_window_extent(renderer)) for k in kept)
        if hit:
            t.remove()
        else:
            kept.append(t)


def _level_text(value: float) -> str:
    return f"{value:g}"


def _draw_lead(ax, sim, view: ViewScene, plane: SlicePlane) -> tuple[list[int], list[np.ndarray]]:
    """The lead's projection (a band) and the projected contacts; returns the contacts
    the plane cuts (filled; the others are drawn open) and the polygons drawn (mm)."""
    from matplotlib.patches import Polygon

    lead, placement = view.lead, view.placement
    band = lead_outline(lead, placement, plane)
    ax.add_patch(Polygon(band, closed=True, facecolor=COLORS["shaft"], alpha=0.45, edgecolor="#d8d2c4",
                         linewidth=0.6, zorder=5))
    cut, shapes = [], [band]
    for k, (poly, crosses) in enumerate(contact_outlines(lead, placement, plane)):
        shapes.append(poly)
        colour = COLORS[view.polarity[k]]
        if crosses:
            cut.append(k)
            ax.add_patch(Polygon(poly, closed=True, facecolor=colour, edgecolor="white", linewidth=0.8,
                                 alpha=0.95, zorder=7))
        else:
            ax.add_patch(Polygon(poly, closed=True, facecolor="none", edgecolor=colour, linewidth=0.9, zorder=6))
    # where the lead axis crosses the plane (between the tip and the top of the lead)
    n = plane.normal_axis
    dz = float(placement.direction[n])
    if abs(dz) > 1e-6:
        s = (plane.coordinate_mm - placement.tip_mm[n]) / dz
        if 0.0 <= s <= lead.body_length_mm:
            p = placement.tip_mm + s * placement.direction
            ax.plot([p[plane.h_axis]], [p[plane.v_axis]], marker="+", color="white", markersize=5, mew=0.8,
                    zorder=8)
    return cut, shapes


def _contact_labels(ax, sim, view: ViewScene, plane: SlicePlane, d: PanelData) -> tuple[list[str], list]:
    """Contact labels in a column beside the lead and its VTA, with leader lines.

    Returns the texts drawn and their annotation artists.
    """
    lead, placement = view.lead, view.placement
    texts = view.contact_labels or contact_label_texts(sim)
    h_lo, h_hi = plane.h_range_mm
    v_lo, v_hi = plane.v_range_mm
    span = h_hi - h_lo
    anchors = []
    for k in range(lead.n_contacts):
        c = placement.contact_center_mm(lead, k)
        x, y = float(c[plane.h_axis]), float(c[plane.v_axis])
        if h_lo + 0.02 * span <= x <= h_hi - 0.02 * span and v_lo + 0.02 * span <= y <= v_hi - 0.02 * span:
            anchors.append((k, x, y))
    if not anchors:
        return [], []
    xs = np.array([a[1] for a in anchors])
    ys = np.array([a[2] for a in anchors])
    # what the labels should not cover: the contacts and the VTA
    left_edge, right_edge = xs.min() - lead.radius_mm, xs.max() + lead.radius_mm
    if d.vta is not None:
        cols = np.flatnonzero((d.vta >= view.threshold_V_per_mm).any(axis=0))
        if len(cols):
            left_edge = min(left_edge, float(plane.h_mm[cols[0]]))
            right_edge = max(right_edge, float(plane.h_mm[cols[-1]]))
    renderer = ax.figure.canvas.get_renderer()
    mm_px = float(ax.transData.transform((1.0, 0.0))[0] - ax.transData.transform((0.0, 0.0))[0])
    style = dict(fontsize=5.6, va="center", zorder=10, annotation_clip=False)
    width = 0.0
    for k, _, _ in anchors:
        t = ax.text(0, 0, texts[k], fontsize=5.6, fontweight="bold")
        width = max(width, t.get_window_extent(renderer).width / mm_px)
        t.remove()
    width += 0.6  # the label box's padding (mm)
    gap = 0.03 * span
    letters = []
    for letter in plane.edge_letters[:2]:  # clear of the left/right orientation letters
        t = ax.text(0, 0, letter, fontsize=_LETTER_PT, fontweight="bold")
        letters.append(t.get_window_extent(renderer).width / mm_px)
        t.remove()
    inner_lo, inner_hi = h_lo + letters[0] + 0.03 * span, h_hi - letters[1] - 0.03 * span
    step = 0.052 * (v_hi - v_lo)  # one label line (6 pt text on a 2.2 inch panel)
    order = np.argsort(ys)
    y_lab = spread(ys[order], step, v_lo + 0.12 * (v_hi - v_lo), v_hi - 0.12 * (v_hi - v_lo))
    # the side whose label column hides the least: VTA, lead, structure outlines
    # (those the VTA reaches count three times), with a penalty for too little room
    band = lead_outline(lead, placement, plane)
    rows = (y_lab.min() - 0.6 * step, y_lab.max() + 0.6 * step)
    best = None
    for x0 in (min(right_edge + gap, inner_hi - width), max(left_edge - gap - width, inner_lo)):
        cost = _clutter(sim, view, plane, d, band, (x0, x0 + width), rows)
        overlap = max(0.0, min(x0 + width, right_edge) - max(x0, left_edge)) / width  # over the lead/VTA
        cost += 4.0 * overlap
        if best is None or cost < best[0] - 1e-9:
            best = (cost, x0)
    x0 = best[1]
    drawn, artists = [], []
    for j, idx in enumerate(order):
        k, x, y = anchors[idx]
        text = texts[k]
        active = view.polarity[k] != "inactive"
        ann = ax.annotate(text, xy=(x, y), xytext=(x0 + 0.3, y_lab[j]), textcoords="data",
                          color="white" if active else "#e6e6e6", fontweight="bold" if active else "normal",
                          ha="left", bbox=dict(boxstyle="round,pad=0.18",
                                               fc=COLORS[view.polarity[k]] if active else "#2a2f38", ec="none",
                                               alpha=0.92),
                          arrowprops=dict(arrowstyle="-", color="#f0f0f0", lw=0.5, shrinkA=0, shrinkB=1.0,
                                          alpha=0.9), **style)
        drawn.append(text)
        artists.append(ann)
    return drawn, artists


def _clutter(sim, view: ViewScene, plane: SlicePlane, d: PanelData, band: np.ndarray, xr: tuple[float, float],
             yr: tuple[float, float]) -> float:
    """How much a label rectangle (mm) would hide: fractions of its area on structure
    outlines (x3 for structures the VTA reaches), the VTA (x3) and the lead (x2)."""
    from matplotlib.path import Path as MplPath

    ih = np.flatnonzero((plane.h_mm >= xr[0]) & (plane.h_mm <= xr[1]))
    iv = np.flatnonzero((plane.v_mm >= yr[0]) & (plane.v_mm <= yr[1]))
    if len(ih) == 0 or len(iv) == 0:
        return 0.0
    sub = np.ix_(iv, ih)
    cost = 0.0
    for name, prob in (d.structures or {}).items():
        p = prob[sub]
        weight = 3.0 if sim.structures.get(name, {}).get("overlap_mm3", 0) > 0 else 1.0
        cost += weight * 10.0 * float(((p > 0.3) & (p < 0.7)).mean())
    if d.vta is not None:
        cost += 3.0 * float((d.vta[sub] >= view.threshold_V_per_mm).mean())
    hh, vv = np.meshgrid(plane.h_mm[ih[::4]], plane.v_mm[iv[::4]])
    cost += 2.0 * float(MplPath(band).contains_points(np.column_stack([hh.ravel(), vv.ravel()])).mean())
    return cost


def _decorate_panel(ax, plane: SlicePlane, space: str) -> None:
    """Panel title, mm axes, orientation letters and the scale bar."""
    import matplotlib.patheffects as pe

    axis_name = "xyz"
    unit = f"mm, {space}" if space else "mm"
    ax.set_xlabel(f"{axis_name[plane.h_axis]} ({unit})", fontsize=6, labelpad=1.5)
    ax.set_ylabel(f"{axis_name[plane.v_axis]} ({unit})", fontsize=6, labelpad=1.5)
    ax.tick_params(labelsize=5.5, length=2, pad=1.5, width=0.5)
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
    ax.set_aspect("equal")
    title = f"{plane.name.capitalize()}  {axis_name[plane.normal_axis]} = {signed(plane.coordinate_mm)} mm"
    ax.set_title(title, fontsize=7.5, fontweight="bold", pad=3)
    stroke = [pe.withStroke(linewidth=1.6, foreground="black")]
    left, right, top, bottom = plane.edge_letters
    style = dict(transform=ax.transAxes, color="white", fontsize=_LETTER_PT, fontweight="bold", zorder=12, path_effects=stroke)
    ax.text(0.015, 0.5, left, ha="left", va="center", **style)
    ax.text(0.985, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.985, top, ha="center", va="top", **style)
    ax.text(0.5, 0.015, bottom, ha="center", va="bottom", **style)
    # the scale bar, lower left
    h0, h1 = plane.h_range_mm
    v0, v1 = plane.v_range_mm
    x0 = h0 + 0.05 * (h1 - h0)
    y0 = v0 + 0.05 * (v1 - v0)
    ax.plot([x0, x0 + SCALE_BAR_MM], [y0, y0], color="white", lw=1.6, solid_capstyle="butt", zorder=12,
            path_effects=stroke)
    ax.text(x0 + 0.5 * SCALE_BAR_MM, y0 + 0.015 * (v1 - v0), f"{SCALE_BAR_MM:g} mm", ha="center", va="bottom",
            color="white", fontsize=5.5, zorder=12, path_effects=stroke)


# --- title, legend, caption ---------------------------------------------------------------


def _legend_name(name: str) -> str:
    """Legend name of a structure: the hemisphere suffix dropped (``NAc_R`` -> ``NAc``)."""
    for suffix in ("_R", "_L", "_r", "_l", "_right", "_left", "-R", "-L"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _structure_legend_colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per legend name: the 3D views' colours for NAc/ALIC/caudate/putamen."""
    out: dict[str, str] = {}
    extra = 0
    for name in names:
        base = _legend_name(name)
        if base in out:
            continue
        known = STRUCTURE_COLORS.get(base.lower())
        if known is None:
            known = _EXTRA_COLORS[extra % len(_EXTRA_COLORS)]
            extra += 1
        out[base] = known
    return out


def _title(fig, sim, centre: np.ndarray, space: str, h_in: float) -> None:
    unit = f"mm {space}" if space else "mm"
    x = 0.21 / _WIDTH_IN
    fig.text(x, 1 - 0.12 / h_in, f"Planning slices through the active-contact centre {format_mm(centre)} {unit}",
             fontsize=9, fontweight="bold", ha="left", va="top")
    if space:
        sub = ("Neurological convention: patient's left on the image left. Slices through the current-weighted "
               "centre of the contacts carrying current.")
    else:
        sub = ("No anatomy (homogeneous tissue): the axes are the configuration's world frame. Slices through the "
               "current-weighted centre of the contacts carrying current.")
    fig.text(x, 1 - 0.30 / h_in, sub, fontsize=6.5, ha="left", va="top", color="#333333")


def _legend(fig, sim, view: ViewScene, structures: list[str], colours: dict[str, str], levels: list[float],
            top: float):
    """The legend under the panels (its top at figure fraction ``top``); returns it."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=colours[s], lw=1.4, label=s) for s in structures]
    handles.append(Line2D([], [], color=COLORS["vta"], lw=2.0, label=f"VTA (|E| ≥ {view.threshold_V_per_mm:g} V/mm)"))
    handles.append(Line2D([], [], color="#555555", lw=0.8, ls="--",
                          label="|E| iso-lines (V/mm): " + ", ".join(f"{v:g}" for v in levels)))
    for p in ("cathode", "anode"):
        if p in view.polarity:
            handles.append(Patch(facecolor=COLORS[p], edgecolor="none", label=f"{p} contact"))
    handles.append(Patch(facecolor="white", edgecolor="#555555", lw=0.8, label="open: projected contact"))
    handles.append(Patch(facecolor="#777777", edgecolor="white", label="filled: contact cut by the plane"))
    handles.append(Patch(facecolor=COLORS["shaft"], alpha=0.6, edgecolor="#999999", label="lead (projection)"))
    case = case_return_text(sim)
    if case:
        handles.append(Line2D([], [], color=COLORS["anode"] if case.endswith("+") else COLORS["cathode"],
                              marker="$+$" if case.endswith("+") else "$-$", ls="none", markersize=6,
                              label=f"{case} (return)"))
    return fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, top), ncol=min(5, len(handles)),
               fontsize=5.8, frameon=False, handlelength=1.8, columnspacing=1.2, handletextpad=0.5,
               borderaxespad=0.0)


def _caption(sim, centre: np.ndarray, planes: dict[str, SlicePlane], view: ViewScene) -> list[str]:
    """Caption lines: coordinates, lead, setting, VTA, slice positions and the anatomy note."""
    from ..scene import coordinate_spaces

    scene = sim.scene
    lead, placement = scene.lead.model, scene.lead.placement
    space = space_name(scene.config)
    unit = f"mm, {space}" if space else "mm, the configuration's frame"
    entry, entry_what = entry_point(scene)
    entry_text = f"{entry_what} {format_mm(entry)}"
    if entry_what != "entry":
        entry_text += " (70 mm from the tip along the trajectory)"
    lines = [f"Lead {lead.name}. Coordinates ({unit}): tip {format_mm(placement.tip_mm)}; {entry_text}."]
    mode_unit = "mA" if sim.setting.mode == "current" else "V"
    active = sorted(sim.setting.amplitudes)
    parts = []
    for k in active:
        amp = f"{signed(float(sim.setting.amplitudes[k]))} {mode_unit}"
        current = "" if mode_unit == "mA" else f" ({signed(float(sim.state.currents_mA[k]), 2)} mA)"
        parts.append(f"C{k} {amp}{current} at {format_mm(placement.contact_center_mm(lead, k))}")
    lines.append("Active contacts: " + ("; ".join(parts) if parts else "none") + ".")
    stim = scene.config.stimulation
    case = case_return_text(sim)
    setting = ", ".join(f"C{k} {signed(float(sim.setting.amplitudes[k]))} {mode_unit}" for k in active)
    if case:
        setting += f", {case}"
    lines.append(f"Setting: {setting} ({'monopolar' if case else 'bipolar'}), {stim.pulse_width_us:g} µs, "
                 f"{stim.frequency_hz:g} Hz. VTA {sim.vta_volume_mm3:.1f} mm³ at |E| ≥ "
                 f"{view.threshold_V_per_mm:.3g} V/mm.")
    axis_name = "xyz"
    lines.append(f"Slices through the current-weighted active-contact centre {format_mm(centre)}: "
                 + ", ".join(f"{p.name} {axis_name[p.normal_axis]} = {signed(p.coordinate_mm)} mm"
                             for p in planes.values())
                 + (". Neurological convention: patient's left on the image left." if space else "."))
    spaces = coordinate_spaces(scene.config)
    if spaces["template"] is not None:
        lines.append(f"Anatomy: {TEMPLATE_NOTE}; template: {spaces['template']}.")
    elif scene.anatomy is None:
        lines.append("No anatomy: homogeneous tissue; the field, the VTA and the lead only.")
    else:
        lines.append(f"Anatomy: user-supplied ({spaces['anatomy']} space).")
    return lines


def _draw_caption(fig, lines: list[str], top: float) -> None:
    """The caption, wrapped, its top at figure fraction ``top``."""
    wrapped = []
    for line in lines:
        wrapped += textwrap.wrap(line, width=165, subsequent_indent="    ") or [""]
    fig.text(0.21 / _WIDTH_IN, top, "\n".join(wrapped), fontsize=6.2, ha="left", va="top",
             linespacing=1.45, color="#111111")
