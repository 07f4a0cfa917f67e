"""A dimensioned drawing of a lead's contact layout: :func:`lead_picture_png`.

Two panels share the axial scale (mm from the distal end, the lead's local z):

* **side view** — the lead seen from its marker direction (local +x towards the
  viewer, so segment 0 of each directional level faces the viewer and +y, i.e.
  increasing angle, is to the right), drawn to scale with the contact levels'
  indices beside them and dimension lines for the tip, contact length, gaps,
  diameter and active span;
* **unrolled surface** — the lead's surface cut open along the side opposite the
  marker and laid flat: angle about the axis (degrees from the marker, counter-clockwise
  seen from the entry; segment ``s`` of a level centred at ``120 s``) against z, each
  contact drawn at its arc and labelled ``C0``..``Cn``.

Geometry conventions are those of :mod:`vta.leads`. The figure is drawn with
matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..errors import VtaError
from ..io import atomic_write_bytes
from ..leads import LeadModel

__all__ = ["lead_picture_bytes", "lead_picture_png"]

_INSULATION = "#d9d9d9"
_OUTLINE = "#555555"
_RING = "#3b6ea8"
_SEGMENT = "#c8553d"
_DIM = "#222222"
_ARROW = {"arrowstyle": "<|-|>", "color": _DIM, "lw": 0.7, "shrinkA": 0, "shrinkB": 0, "mutation_scale": 6}


def _fmt(x: float) -> str:
    return f"{x:g}"


def _dim_line(ax, x: float, z0: float, z1: float, text: str, side: str = "left", fontsize: float = 7.5,
              rotate: bool = False) -> None:
    """A vertical dimension line from z0 to z1 at x, with end ticks and a label (beside
    it, or along it when ``rotate``)."""
    ax.annotate("", xy=(x, z0), xytext=(x, z1),
                arrowprops=_ARROW)
    tick = 0.12
    for z in (z0, z1):
        ax.plot([x - tick, x + tick], [z, z], color=_DIM, lw=0.6)
    ha = "right" if side == "left" else "left"
    dx = -0.18 if side == "left" else 0.18
    if rotate:
        ax.text(x + dx, 0.5 * (z0 + z1), text, ha=ha, va="center", rotation=90, fontsize=fontsize, color=_DIM)
    else:
        ax.text(x + dx, 0.5 * (z0 + z1), text, ha=ha, va="center", fontsize=fontsize, color=_DIM)


def _extension(ax, x0: float, x1: float, z: float) -> None:
    """A thin extension line at height z between x0 and x1."""
    ax.plot([x0, x1], [z, z], color="#888888", lw=0.4, ls=(0, (2, 2)))


def _contact_labels(lead: LeadModel) -> list[tuple[int, str]]:
    """(level, "C0" or "C1-C3") for each level."""
    out = []
    for level, group in enumerate(_levels(lead)):
        idx = [c.index for c in group]
        out.append((level, f"C{idx[0]}" if len(idx) == 1 else f"C{idx[0]}\u2013C{idx[-1]}"))
    return out


def _levels(lead: LeadModel) -> list[list]:
    groups: list[list] = [[] for _ in lead.levels]
    for c in lead.contacts():
        groups[c.level].append(c)
    return groups


def _capsule(r: float, z1: float, n: int = 48) -> list[tuple[float, float]]:
    """Outline of the lead from its hemispherical distal end (z = 0) up to z1 >= r."""
    pts = [(r * math.cos(math.pi + math.pi * k / n), r + r * math.sin(math.pi + math.pi * k / n))
           for k in range(n + 1)]
    return pts + [(r, z1), (-r, z1)]


def _draw_side(ax, lead: LeadModel, top: float) -> None:
    from matplotlib.patches import Polygon, Rectangle

    r = lead.radius_mm
    # insulating body: hemispherical distal end + cylinder, cut with a break line at the top
    ax.add_patch(Polygon(_capsule(r, top), closed=True, facecolor=_INSULATION, edgecolor="none", zorder=1))
    outline = _capsule(r, top)[:-2]
    ax.plot([-r] + [x for x, _ in outline] + [r], [top] + [z for _, z in outline] + [top], color=_OUTLINE,
            lw=0.8, zorder=2)
    zz = [top - 0.15, top + 0.15, top - 0.15, top + 0.15]
    ax.plot([-r, -r / 3, r / 3, r], zz, color=_OUTLINE, lw=0.8, zorder=2)

    for c in lead.contacts():
        z0, z1 = c.z_start_mm, c.z_end_mm
        if c.is_tip:
            ax.add_patch(Polygon(_capsule(r, max(z1, r)), closed=True, facecolor=_RING, edgecolor=_OUTLINE, lw=0.8,
                                 zorder=3))
            continue
        if c.is_ring:
            ax.add_patch(Rectangle((-r, z0), 2 * r, z1 - z0, facecolor=_RING, edgecolor=_OUTLINE, lw=0.8, zorder=3))
            continue
        # the part of a segment on the visible (front) half, projected: y = r sin(angle)
        a0 = c.angle_center_deg - 0.5 * c.arc_deg
        a1 = c.angle_center_deg + 0.5 * c.arc_deg
        for shift in (-360.0, 0.0, 360.0):
            lo, hi = max(a0 + shift, -90.0), min(a1 + shift, 90.0)
            if hi - lo > 1e-9:
                y0, y1 = r * math.sin(math.radians(lo)), r * math.sin(math.radians(hi))
                ax.add_patch(Polygon([(y0, z0), (y1, z0), (y1, z1), (y0, z1)], closed=True, facecolor=_SEGMENT,
                                     edgecolor=_OUTLINE, lw=0.8, zorder=3))


def _annotate_side(ax, lead: LeadModel, top: float) -> None:
    r = lead.radius_mm
    ext = lead.level_extents_mm()
    x1 = -r - 0.55   # first dimension column: tip, contact, gaps
    x2 = -r - 4.3    # second column: active span (clear of the first column's labels)
    labels = _contact_labels(lead)

    # contact indices beside each level (right)
    for (level, text), (z0, z1) in zip(labels, ext):
        ax.text(r + 0.35, 0.5 * (z0 + z1), text, ha="left", va="center", fontsize=8, color="#111111",
                fontweight="bold")

    # tip: the distal end to the first ring contact, or the tip contact itself
    z_tip = ext[0][1] if lead.tip_is_contact else ext[0][0]
    _extension(ax, x1, -r, z_tip)
    _dim_line(ax, x1, 0.0, z_tip, ("tip contact " if lead.tip_is_contact else "tip ") + _fmt(lead.tip_length_mm))

    # one contact length on the first non-tip level, then each gap that differs from the one before
    k = 1 if lead.tip_is_contact else 0
    if k < len(ext):
        z0, z1 = ext[k]
        _extension(ax, x1, -r, z0)
        _extension(ax, x1, -r, z1)
        _dim_line(ax, x1, z0, z1, f"contact {_fmt(lead.contact_length_mm)}")
    previous = None
    for i, g in enumerate(lead.gaps_mm):
        if previous is not None and math.isclose(g, previous):
            continue
        previous = g
        z0, z1 = ext[i][1], ext[i + 1][0]
        _extension(ax, x1, -r, z0)
        _extension(ax, x1, -r, z1)
        _dim_line(ax, x1, z0, z1, f"gap {_fmt(g)}")

    # active span
    s0, s1 = ext[0][0], ext[-1][1]
    _extension(ax, x2, x1, s1)
    _extension(ax, x2, x1, s0)
    _dim_line(ax, x2, s0, s1, f"active span {_fmt(round(lead.active_span_mm, 3))}", rotate=True)

    # diameter above the contacts
    zd = s1 + 0.9
    ax.annotate("", xy=(-r, zd), xytext=(r, zd),
                arrowprops=_ARROW)
    ax.text(r + 0.35, zd, f"\u00d8 {_fmt(lead.diameter_mm)}", ha="left", va="center", fontsize=7.5, color=_DIM)


def _draw_unrolled(ax, lead: LeadModel, top: float) -> None:
    from matplotlib.patches import Rectangle

    lo_deg, hi_deg = -180.0, 180.0
    ax.add_patch(Rectangle((lo_deg, 0.0), hi_deg - lo_deg, top, facecolor=_INSULATION, edgecolor=_OUTLINE,
                           lw=0.8, zorder=1))
    z_min_text = 0.55  # below this a label would not fit
    for c in lead.contacts():
        z0, z1 = c.z_start_mm, c.z_end_mm
        label = f"C{c.index}" + (" (tip)" if c.is_tip else "")
        if c.is_ring:
            ax.add_patch(Rectangle((lo_deg, z0), hi_deg - lo_deg, z1 - z0, facecolor=_RING, edgecolor=_OUTLINE,
                                   lw=0.8, zorder=3))
            ax.text(0.0, 0.5 * (z0 + z1), label, ha="center", va="center", fontsize=8, color="white",
                    fontweight="bold", zorder=4)
            continue
        a0 = c.angle_center_deg - 0.5 * c.arc_deg
        a1 = c.angle_center_deg + 0.5 * c.arc_deg
        centre = None
        for shift in (-360.0, 0.0, 360.0):
            lo, hi = max(a0 + shift, lo_deg), min(a1 + shift, hi_deg)
            if hi - lo > 1e-9:
                ax.add_patch(Rectangle((lo, z0), hi - lo, z1 - z0, facecolor=_SEGMENT, edgecolor=_OUTLINE, lw=0.8,
                                       zorder=3))
                if lo_deg <= c.angle_center_deg + shift <= hi_deg:
                    centre = c.angle_center_deg + shift
        if centre is not None and z1 - z0 >= z_min_text:
            ax.text(centre, 0.5 * (z0 + z1), label, ha="center", va="center", fontsize=8, color="white",
                    fontweight="bold", zorder=4)
    ax.set_xlim(lo_deg, hi_deg)
    ax.set_xticks([-180, -120, -60, 0, 60, 120, 180])
    ax.set_xlabel("angle about the axis from the marker (deg, counter-clockwise seen from the entry)", fontsize=8)
    ax.axvline(0.0, color="#444444", lw=0.6, ls=(0, (4, 3)), zorder=2)
    ax.text(0.0, top - 0.05, "marker", ha="center", va="top", fontsize=7, color="#444444", zorder=6,
            bbox={"facecolor": _INSULATION, "edgecolor": "none", "pad": 0.5})


def lead_picture_bytes(lead: LeadModel, dpi: int = 150) -> bytes:
    """The PNG (bytes) of :func:`lead_picture_png`."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise VtaError("the lead picture needs matplotlib (pip install matplotlib)") from None

    ext = lead.level_extents_mm()
    top = ext[-1][1] + 2.2          # body drawn to a little above the last contact (break line there)
    z_lo = -0.8
    height_mm = top - z_lo + 0.6
    fig_h = min(max(5.0, 0.26 * height_mm + 1.9), 11.0)
    fig = Figure(figsize=(10.0, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, 2, width_ratios=[0.9, 1.2], wspace=0.1, left=0.05, right=0.98,
                          top=1.0 - 1.05 / fig_h, bottom=0.95 / fig_h)
    side = fig.add_subplot(gs[0, 0])
    flat = fig.add_subplot(gs[0, 1], sharey=side)

    _draw_side(side, lead, top)
    _annotate_side(side, lead, top)
    r = lead.radius_mm
    side.plot([-r - 5.8, r + 2.4], [0.0, 0.0], alpha=0.0)  # room for the annotations; the aspect widens it
    side.set_ylim(z_lo, top + 0.6)
    side.set_aspect("equal", adjustable="datalim")
    side.set_xticks([])
    side.set_ylabel("mm from the distal end (lead axis, towards the entry)", fontsize=8)
    for spine in ("top", "right", "bottom"):
        side.spines[spine].set_visible(False)
    side.set_title("side view from the marker direction (to scale)", fontsize=9)

    _draw_unrolled(flat, lead, top)
    flat.set_title("unrolled surface" if lead.is_directional else "unrolled surface (all contacts are rings)",
                   fontsize=9)
    flat.tick_params(labelleft=False, labelsize=8)
    side.tick_params(labelsize=8)
    for spine in ("top", "right"):
        flat.spines[spine].set_visible(False)

    levels = "-".join(map(str, lead.levels))
    if not lead.gaps_mm:
        gaps = "none"
    elif len(set(lead.gaps_mm)) > 1:
        gaps = ", ".join(_fmt(g) for g in lead.gaps_mm)
    else:
        gaps = _fmt(lead.gaps_mm[0])
    tip = f"tip {_fmt(lead.tip_length_mm)}" + (" (contact)" if lead.tip_is_contact else "")
    fig.suptitle(f"{lead.name}  ({lead.manufacturer})", fontsize=12, fontweight="bold", y=1.0 - 0.3 / fig_h)
    span = _fmt(round(lead.active_span_mm, 3))
    sub = (f"{lead.n_contacts} contacts, segments per level {levels} (distal first); "
           f"contact {_fmt(lead.contact_length_mm)}, gaps {gaps}, \u00d8 {_fmt(lead.diameter_mm)}, {tip}, "
           f"span {span} (mm)")
    if lead.is_directional:
        sub += f"; segments {_fmt(lead.segment_arc_deg)}\u00b0 wide"
    fig.text(0.5, 1.0 - 0.58 / fig_h, sub, ha="center", va="center", fontsize=8.5)
    handles = [Patch(facecolor=_RING, edgecolor=_OUTLINE, label="ring contact"),
               Patch(facecolor=_SEGMENT, edgecolor=_OUTLINE, label="segment"),
               Patch(facecolor=_INSULATION, edgecolor=_OUTLINE, label="insulation")]
    if not lead.is_directional:
        handles.pop(1)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def lead_picture_png(lead: LeadModel, path: str | Path, dpi: int = 150) -> Path:
    """Write a dimensioned PNG drawing of ``lead``'s contacts (side view + unrolled
    surface, contacts labelled ``C0``..``Cn``, lengths in mm) to ``path``.

    Raises
    ------
    VtaError
        Without matplotlib, or on any OS error writing ``path``.
    """
    return atomic_write_bytes(path, lead_picture_bytes(lead, dpi=dpi))
