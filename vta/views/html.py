"""The interactive targeting view: one self-contained vtk.js HTML page (:func:`render_html`).

The scene is drawn in an offscreen pyvista plotter, serialised with trame-vtk into a
vtk.js OfflineLocalView archive and embedded (base64) in trame-vtk's stock viewer
page, with a title and legend overlay; the page fetches nothing at view time.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import VtaError
from .draw import _camera, _populate
from .gl import _pyvista
from .meshes import field_slice_mesh
from .view_scene import COLORS, FIELD_CMAP, FIELD_RANGE, ViewScene, camera_frame

log = logging.getLogger(__name__)


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


def _overlay_html(scene: ViewScene, legend: list[tuple[str, str]], planes: list[str]) -> str:
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


def render_html(scene: ViewScene, path: str | Path) -> Path:
    """Write the scene as one self-contained interactive HTML file (vtk.js inside).

    The page embeds the vtk.js viewer and the scene data (base64); it loads nothing
    from the network. The VTA is drawn whole and semi-transparent, with the |E| cut
    plane of the anterior view and the T1 backdrop planes.

    Parameters
    ----------
    scene : ViewScene
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
