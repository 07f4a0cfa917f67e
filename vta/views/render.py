"""3D targeting views: the lead, the VTA, an |E| slice, anatomy and fibres -> PNG / HTML.

The workflow of the views: :func:`render` writes the views of a simulated setting into
a folder, :func:`write_views` renders them to given paths, and :func:`views_writer`
adds them to :func:`vta.outputs.run`. The work is done by:

- :mod:`vta.views.view_scene`: the plain-data :class:`ViewScene` (world mm), built from
  a simulated setting by :func:`view_from_simulation`; colours, cameras, cut planes;
- :mod:`vta.views.gl`: the offscreen OpenGL probe :func:`check_rendering`;
- :mod:`vta.views.meshes`: the scene's pyvista geometry;
- :mod:`vta.views.draw`: the scene in a pyvista plotter (shared by PNG and HTML);
- :mod:`vta.views.png`: offscreen cutaway PNGs, :func:`render_png`;
- :mod:`vta.views.slices` (+ :mod:`vta.views.slice_data`): the 2D planning figure,
  axial/coronal/sagittal slices through the active contacts (matplotlib),
  :func:`render_slices`;
- :mod:`vta.views.html`: a self-contained interactive page (vtk.js embedded, nothing
  fetched at view time), :func:`render_html`.

Every public name of those modules that this module has always offered is
re-exported here. pyvista is imported lazily, after the probe.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from .gl import check_rendering
from .html import render_html
from .meshes import (field_slice_mesh, fibre_meshes, lead_cross_section, lead_meshes, structure_surface, t1_planes,
                     vta_surface)
from .png import RenderInfo, parse_cameras, parse_size, render_png
from .slices import SLICES_SIZE, SliceFigure, render_slices
from .view_scene import (CAMERAS, COLORS, ELEVATION_DEG, FIELD_CMAP, FIELD_RANGE, MAX_FIBRES_DRAWN,
                         SLICE_SPACING_MM, STRUCTURE_COLORS, FieldSlice, ViewScene, camera_frame, cut_plane,
                         fibres_from_tracts, view_from_simulation)

__all__ = [
    "CAMERAS",
    "COLORS",
    "ELEVATION_DEG",
    "FIELD_CMAP",
    "FIELD_RANGE",
    "MAX_FIBRES_DRAWN",
    "SLICE_SPACING_MM",
    "STRUCTURE_COLORS",
    "FieldSlice",
    "RenderInfo",
    "SLICES_SIZE",
    "SliceFigure",
    "ViewScene",
    "camera_frame",
    "check_rendering",
    "cut_plane",
    "fibre_meshes",
    "fibres_from_tracts",
    "field_slice_mesh",
    "lead_cross_section",
    "lead_meshes",
    "parse_cameras",
    "parse_size",
    "render",
    "render_html",
    "render_png",
    "render_slices",
    "structure_surface",
    "t1_planes",
    "view_from_simulation",
    "views_writer",
    "vta_surface",
    "write_views",
]

log = logging.getLogger(__name__)


def views_writer(cameras: Sequence[str] = CAMERAS, size: Sequence[int] = (1400, 1000), write_html: bool = True):
    """An ``extra`` writer for :func:`vta.outputs.run`: the targeting views of the run.

    ``run(scene, out, extra=views_writer())`` writes ``render_<camera>.png`` for each
    camera, ``render_slices.png`` and ``scene.html`` next to the run's other outputs, in the same
    all-or-nothing transaction. Call :func:`check_rendering` first.
    """
    import time

    def write(sim, tx):
        t0 = time.perf_counter()
        written = write_views(sim, tx.path, cameras, size, write_html)
        return written, {"render": time.perf_counter() - t0}

    return write


def write_views(sim, path_of, cameras: Sequence[str] = CAMERAS, size: Sequence[int] = (1400, 1000),
                write_html: bool = True, slices: bool = True) -> list[str]:
    """Render the views of a simulation: ``render_<camera>.png`` per camera, the
    planning slices ``render_slices.png`` (its own print layout, :data:`SLICES_SIZE`;
    ``size`` is the 3D views') and ``scene.html``, each at ``path_of(name)``; returns
    the names written."""
    fibres, activation = fibres_from_tracts(sim.tracts)  # the [tracts] axons near the lead, if any
    view = view_from_simulation(sim, fibres, activation)
    written = []
    for camera in cameras:
        log.info("rendering the %s view", camera)
        render_png(view, path_of(f"render_{camera}.png"), camera, size)
        written.append(f"render_{camera}.png")
    if slices:
        log.info("drawing the planning slices")
        render_slices(sim, path_of("render_slices.png"), view=view)
        written.append("render_slices.png")
    if write_html:
        log.info("writing the interactive scene")
        render_html(view, path_of("scene.html"))
        written.append("scene.html")
    return written


def render(sim, out_dir: str | Path, cameras: Sequence[str] = CAMERAS, size: Sequence[int] = (1400, 1000),
           html: bool = True) -> list[Path]:
    """Render the targeting views of a simulated setting into ``out_dir`` (one set:
    the previous views there are replaced). Needs offscreen OpenGL
    (:func:`check_rendering`).

    Returns
    -------
    list of Path
        The PNGs (the 3D views and ``render_slices.png``) and ``scene.html`` written.
    """
    from ..io import OutputTransaction

    check_rendering()
    with OutputTransaction(out_dir, kind="views") as tx:
        names = write_views(sim, tx.path, parse_cameras(",".join(cameras)), parse_size(size), html)
    return [Path(out_dir) / n for n in names]
