"""Offscreen OpenGL for the targeting views: probe it once, then import pyvista.

Rendering is offscreen only. Without a working OpenGL (Mesa EGL or OSMesa) VTK
crashes the process, so rendering is probed once in a subprocess first
(:func:`check_rendering`) and a clear :class:`~vta.errors.VtaError` is raised if it
fails. pyvista is imported lazily, only after the probe succeeded.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys

from ..errors import VtaError

log = logging.getLogger(__name__)


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
