"""The plain-data targeting view of a simulated setting (world mm, V, V/mm).

A :class:`ViewScene` holds the lead and its contact polarities, the VTA grid, |E|
sampled on one cut plane per camera (:class:`FieldSlice`), the T1 image for the
backdrop planes, structure masks and fibres. :func:`view_from_simulation` builds it
from a simulated setting; :func:`fibres_from_tracts` gives the fibres to draw from
tract-activation results. This module also fixes the colours and the camera presets
(:func:`camera_frame`, :func:`cut_plane`). Nothing here needs pyvista.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import VtaError
from ..scene import coordinate_spaces

#: Camera presets: from the front, from the side of the lead's hemisphere, and along
#: the lead from the entry point towards the tip.
CAMERAS = ("anterior", "lateral", "trajectory")

#: Fixed colours (hex) of the scene elements.
COLORS = {
    "vta": "#ff7f0e",
    "cathode": "#1f6bff",
    "anode": "#e8202a",
    "inactive": "#8a8f96",
    "shaft": "#e9e4d8",
    "fibre_active": "#ff3df2",
    "fibre_inactive": "#9aa0a6",
    "background": "#0c0f14",
    "text": "#f2f2f2",
}

#: Structure colours by base name (lower case, hemisphere suffix removed).
STRUCTURE_COLORS = {
    "nac": "#2ecc71",
    "alic": "#b388ff",
    "caudate": "#f4d03f",
    "putamen": "#f08080",
}
_EXTRA_COLORS = ("#4dd0e1", "#a1887f", "#aed581", "#ffb74d", "#90a4ae", "#f48fb1")
_STRUCTURE_OPACITY = {"nac": 0.45, "alic": 0.35}
_DEFAULT_STRUCTURE_OPACITY = 0.25

#: Elevation of the anterior and lateral cameras above the horizontal (degrees).
ELEVATION_DEG = 15.0
#: Sample spacing of the |E| cut planes (mm).
SLICE_SPACING_MM = 0.2
#: The |E| colour map spans [threshold / FIELD_RANGE, threshold] (log scale).
FIELD_RANGE = 4.0
#: Colour map of the |E| plane (no orange, red or strong blue: those mark the VTA and contacts).
FIELD_CMAP = "viridis"
#: Fibres drawn at most; inactive fibres beyond this are subsampled for display.
MAX_FIBRES_DRAWN = 3000


# --- the scene -------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSlice:
    """|E| sampled on a square patch of a plane (world mm).

    Attributes
    ----------
    origin_mm : ndarray, shape (3,)
        World position of sample ``[0, 0]`` (mm).
    axis_u, axis_v : ndarray, shape (3,)
        Orthonormal in-plane directions of the sample axes.
    spacing_mm : float
        Sample spacing (mm).
    values_V_per_mm : ndarray, shape (nu, nv)
        |E| (V/mm); NaN inside the lead and outside the domain.
    center_mm : ndarray, shape (3,)
        The point the plane was centred on (mm): the cutaway plane passes through it.
    """

    origin_mm: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    spacing_mm: float
    values_V_per_mm: np.ndarray
    center_mm: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the plane."""
        return np.cross(self.axis_u, self.axis_v)

    def points(self) -> np.ndarray:
        """Sample positions, shape (nu, nv, 3) (mm)."""
        nu, nv = self.values_V_per_mm.shape
        iu = np.arange(nu)[:, None, None] * self.spacing_mm
        iv = np.arange(nv)[None, :, None] * self.spacing_mm
        return self.origin_mm + iu * self.axis_u + iv * self.axis_v


@dataclass
class ViewScene:
    """Everything a targeting view draws (world mm, V, V/mm).

    Attributes
    ----------
    lead : vta.leads.LeadModel
    placement : vta.leads.LeadPlacement
    polarity : tuple of str
        Per contact: ``"cathode"``, ``"anode"`` or ``"inactive"``.
    focus_mm : ndarray, shape (3,)
        Centre of the active contacts (mm); the cameras look at it.
    hemisphere : str
        ``"R"`` or ``"L"``: the side of the lead (sign of world x at the focus).
    fov_mm : float
        Height of the field of view (mm).
    threshold_V_per_mm : float
        VTA threshold (V/mm).
    vta : vta.activation.efield.VtaGrid
        |E| on a voxel grid; the VTA surface is its ``threshold`` isosurface.
    field_slices : dict of str -> FieldSlice
        The |E| cut plane of each camera.
    t1 : vta.anatomy.atlas_io.Image or None
        T1 image for the backdrop planes.
    structures : dict of str -> vta.anatomy.atlas_io.Image
        Boolean masks of the structures to draw (each on its own grid).
    fibres : list of ndarray (n_i, 3)
        Fibre polylines (mm).
    fibre_activation : ndarray, shape (n_fibres,)
        Activation of each fibre in [0, 1] (>= 0.5 counts as activated).
    title : list of str
        Title lines (lead; setting; VTA volume; structure overlaps).
    contact_labels : tuple of str
        Per contact: ``"C<k>"``, with the setting's amplitude for the active ones
        (e.g. ``"C2 −2.0 mA"``); empty for a scene built by hand.
    coordinates : list of str
        Caption lines with the tip and the active-contact coordinates (mm, in the
        anatomy's space).
    """

    lead: object
    placement: object
    polarity: tuple[str, ...]
    focus_mm: np.ndarray
    hemisphere: str
    fov_mm: float
    threshold_V_per_mm: float
    vta: object
    field_slices: dict[str, FieldSlice]
    t1: object | None = None
    structures: dict[str, object] = field(default_factory=dict)
    fibres: list[np.ndarray] = field(default_factory=list)
    fibre_activation: np.ndarray | None = None
    title: list[str] = field(default_factory=list)
    contact_labels: tuple[str, ...] = ()
    coordinates: list[str] = field(default_factory=list)

    @property
    def axis(self) -> np.ndarray:
        """Unit lead axis from the tip towards the entry point."""
        return np.asarray(self.placement.direction, float)


def _label(name: str) -> str:
    return name.replace("_", " ")


def _base_name(name: str) -> tuple[str, str | None]:
    """(lower-case base name, side 'R'/'L' or None) of a structure name."""
    low = name.lower()
    for suffix, side in (("_r", "R"), ("_l", "L"), ("_right", "R"), ("_left", "L"), ("-r", "R"), ("-l", "L")):
        if low.endswith(suffix):
            return low[: -len(suffix)], side
    return low, None


def _structure_colours(names: Sequence[str]) -> dict[str, tuple[str, float]]:
    out, extra = {}, 0
    for name in names:
        base, _ = _base_name(name)
        if base in STRUCTURE_COLORS:
            out[name] = (STRUCTURE_COLORS[base], _STRUCTURE_OPACITY.get(base, _DEFAULT_STRUCTURE_OPACITY))
        else:
            out[name] = (_EXTRA_COLORS[extra % len(_EXTRA_COLORS)], _DEFAULT_STRUCTURE_OPACITY)
            extra += 1
    return out


# --- contact labels and coordinates (shared by the 3D views and the slice figure) -------


def signed(value: float, digits: int = 1) -> str:
    """A number with an explicit sign and a typographic minus (``"+1.5"``, ``"−2.0"``)."""
    text = f"{value:+.{digits}f}"
    if float(text) == 0.0:
        text = f"{0.0:.{digits}f}"
    return text.replace("-", "\u2212")


def format_mm(point_mm: Sequence[float]) -> str:
    """A world point as ``"(+10.8, +9.6, −9.4)"`` (mm, one decimal)."""
    return "(" + ", ".join(signed(float(v)) for v in point_mm) + ")"


def space_name(config) -> str:
    """The display name of a run's output coordinate space (``"MNI"``, ``"native"``,
    ``"scrf"``) or ``""`` when unspecified (a homogeneous domain in the lead's frame)."""
    space = coordinate_spaces(config)["outputs"]
    return {"mni": "MNI", "native": "native", "scrf": "scrf"}.get(space, "")


def contact_label_texts(sim) -> tuple[str, ...]:
    """Per contact: ``"C<k>"``, plus the setting's amplitude for the active contacts.

    Examples: ``"C0"`` (inactive), ``"C2 −2.0 mA"`` (current mode), ``"C0 −3.0 V"``
    (voltage mode).
    """
    unit = "mA" if sim.setting.mode == "current" else "V"
    active = sim.setting.amplitudes
    return tuple(f"C{k} {signed(float(active[k]))} {unit}" if k in active else f"C{k}"
                 for k in range(sim.scene.lead.model.n_contacts))


def case_return_text(sim) -> str | None:
    """``"case +"`` (or ``"case −"``) when the outer boundary (the case) returns current
    (monopolar); None when the contacts carry all the current (bipolar)."""
    currents = np.asarray(sim.state.currents_mA, float)
    if not sim.basis.outer_grounded or len(currents) == 0:
        return None
    net = float(currents.sum())
    if abs(net) <= 1e-6 * max(float(np.abs(currents).max()), 1e-12):
        return None
    return "case +" if net < 0 else "case \u2212"


def active_centre_mm(sim) -> np.ndarray:
    """Current-weighted centre of the contacts carrying current (world mm).

    Weights are |I_k| (mA); contacts carrying less than 1e-6 of the largest current
    count as carrying none. Without any current, the mean of the active contacts (or
    of all contacts).
    """
    lead, placement = sim.scene.lead.model, sim.scene.lead.placement
    currents = np.abs(np.asarray(sim.state.currents_mA, float))
    centres = np.array([placement.contact_center_mm(lead, k) for k in range(lead.n_contacts)])
    if currents.size and currents.max() > 0:
        w = np.where(currents >= 1e-6 * currents.max(), currents, 0.0)
        return (w[:, None] * centres).sum(0) / w.sum()
    active = list(sim.setting.amplitudes) or list(range(lead.n_contacts))
    return centres[active].mean(0)


def coordinate_lines(sim) -> list[str]:
    """Caption lines: the tip and the active contacts' centres (world mm, in the
    anatomy's space)."""
    lead, placement = sim.scene.lead.model, sim.scene.lead.placement
    space = space_name(sim.scene.config)
    unit = f"mm {space}" if space else "mm"
    active = sorted(sim.setting.amplitudes)
    parts = [f"C{k} {format_mm(placement.contact_center_mm(lead, k))}" for k in active]
    return [f"tip {format_mm(placement.tip_mm)} {unit}",
            f"active {', '.join(parts)} {unit}" if parts else "no active contact"]


def spread(y: Sequence[float], step: float, lo: float, hi: float) -> np.ndarray:
    """Label positions near sorted positions ``y``, at least ``step`` apart, within [lo, hi].

    Neighbours closer than ``step`` are pushed apart symmetrically; the whole set is
    then shifted back inside [lo, hi] (labels in a column beside the lead).
    """
    out = np.clip(np.asarray(y, float).copy(), lo, hi)
    for _ in range(100):
        moved = False
        for i in range(1, len(out)):
            if out[i] - out[i - 1] < step - 1e-9:
                push = 0.5 * (step - (out[i] - out[i - 1]))
                out[i - 1] -= push
                out[i] += push
                moved = True
        if len(out) and out[0] < lo:
            out += lo - out[0]
        if len(out) and out[-1] > hi:
            out -= out[-1] - hi
        if not moved:
            break
    return out


# --- cameras and cut planes ------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def camera_frame(camera: str, axis: np.ndarray, hemisphere: str) -> tuple[np.ndarray, np.ndarray]:
    """Viewing direction and view-up of a camera preset.

    Parameters
    ----------
    camera : str
        One of :data:`CAMERAS`.
    axis : ndarray, shape (3,)
        Unit lead axis from the tip towards the entry point.
    hemisphere : str
        ``"R"`` or ``"L"``.

    Returns
    -------
    to_camera : ndarray, shape (3,)
        Unit vector from the focus towards the camera.
    view_up : ndarray, shape (3,)
    """
    e = math.radians(ELEVATION_DEG)
    up_world = np.array([0.0, 0.0, 1.0])
    if camera == "anterior":
        horizontal = np.array([0.0, 1.0, 0.0])
    elif camera == "lateral":
        horizontal = np.array([1.0 if hemisphere == "R" else -1.0, 0.0, 0.0])
    elif camera == "trajectory":
        d = _unit(np.asarray(axis, float))
        ref = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else up_world
        return d, _unit(ref - (ref @ d) * d)
    else:
        raise VtaError(f"unknown camera '{camera}' (use {', '.join(CAMERAS)})")
    to_camera = math.cos(e) * horizontal + math.sin(e) * up_world
    view_up = -math.sin(e) * horizontal + math.cos(e) * up_world
    return to_camera, view_up


def cut_plane(camera: str, axis: np.ndarray, hemisphere: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cutaway plane of a camera: unit normal (towards the camera) and in-plane axes.

    Anterior and lateral views cut along the plane through the lead axis that faces
    the camera; the trajectory view (and any view nearly along the lead) cuts across
    the lead.
    """
    a = _unit(np.asarray(axis, float))
    to_camera, view_up = camera_frame(camera, a, hemisphere)
    n = to_camera - (to_camera @ a) * a
    if camera == "trajectory" or np.linalg.norm(n) < 0.3:
        n = a if to_camera @ a >= 0 else -a
        u = _unit(view_up - (view_up @ n) * n)
        return n, u, np.cross(n, u)
    n = _unit(n)
    return n, a, np.cross(n, a)


# --- building the scene from a run -------------------------------------------------------


def _polarity(sim) -> tuple[str, ...]:
    """Per contact: ``"cathode"``, ``"anode"`` or ``"inactive"`` in the simulated setting."""
    active = sim.setting.amplitudes
    out = []
    for k in range(sim.scene.lead.model.n_contacts):
        if k not in active:
            out.append("inactive")
            continue
        current = float(sim.state.currents_mA[k])
        sign = current if abs(current) > 1e-9 else float(active[k])
        out.append("cathode" if sign < 0 else "anode")
    return tuple(out)


def _focus(lead_cfg, polarity: Sequence[str]) -> np.ndarray:
    lead, placement = lead_cfg.model, lead_cfg.placement
    active = [k for k, p in enumerate(polarity) if p != "inactive"] or list(range(lead.n_contacts))
    return np.mean([placement.contact_center_mm(lead, k) for k in active], axis=0)


def _field_slice(basis, weights_V, center, normal, u, v, half_mm: float, spacing_mm: float) -> FieldSlice:
    n = int(math.ceil(2 * half_mm / spacing_mm)) + 1
    origin = center - half_mm * u - half_mm * v
    iu = np.arange(n) * spacing_mm
    pts = origin + iu[:, None, None] * u + iu[None, :, None] * v
    E = basis.field_at(pts.reshape(-1, 3), weights_V)
    norm = np.linalg.norm(E, axis=1).reshape(n, n)
    return FieldSlice(np.asarray(origin, float), np.asarray(u, float), np.asarray(v, float), spacing_mm, norm,
                      np.asarray(center, float))


def _select_structures(structures: dict, hemisphere: str, box: np.ndarray) -> dict:
    """Masks of the structures worth drawing: the lead's hemisphere, inside the view box.

    The NAc, ALIC, caudate and putamen are drawn when present; a user anatomy with
    none of them gets all its structures that reach into the view box (at most 8).
    """
    candidates = {}
    for name, s in structures.items():
        base, side = _base_name(name)
        if side is not None and side != hemisphere:
            continue
        mask = s.mask()
        ijk = np.argwhere(mask.data)
        if len(ijk) == 0:
            continue
        world = mask.voxel_to_world(ijk)
        if not np.any(np.all((world >= box[0]) & (world <= box[1]), axis=1)):
            continue
        candidates[name] = (base, mask)
    preferred = {n: m for n, (b, m) in candidates.items() if b in STRUCTURE_COLORS}
    if preferred:
        return preferred
    return dict(list({n: m for n, (b, m) in candidates.items()}.items())[:8])


def _setting_text(setting, stim) -> str:
    unit = "mA" if setting.mode == "current" else "V"
    parts = [f"C{k} {v:+g} {unit}" for k, v in sorted(setting.amplitudes.items())]
    return f"{', '.join(parts)} · {stim.pulse_width_us:g} µs · {stim.frequency_hz:g} Hz"


def _title(sim, shown: Sequence[str], fibre_activation) -> list[str]:
    lines = [f"{sim.scene.lead.model.name}", _setting_text(sim.setting, sim.scene.config.stimulation),
             f"VTA {sim.vta_volume_mm3:.1f} mm³ (E ≥ {sim.threshold_V_per_mm:.3g} V/mm)"]
    overlaps = []
    for name in shown:
        s = sim.structures.get(name)
        if s and s.get("overlap_mm3", 0) > 0:
            pct = 100 * s["fraction"]
            overlaps.append(f"{_label(name)} {s['overlap_mm3']:.1f} mm³ ({pct:.1f} %)" if pct < 10
                            else f"{_label(name)} {s['overlap_mm3']:.1f} mm³ ({pct:.0f} %)")
    if overlaps:
        lines.append("VTA overlap: " + ", ".join(overlaps))
    if fibre_activation is not None and len(fibre_activation):
        k = int(np.sum(fibre_activation >= 0.5))
        lines.append(f"axons activated: {k} of {len(fibre_activation)} simulated")
    return lines


def view_from_simulation(
    sim,
    fibres: Sequence[np.ndarray] | None = None,
    fibre_activation: Sequence[float] | np.ndarray | None = None,
    fov_mm: float | None = None,
) -> ViewScene:
    """Build the view of a simulated setting.

    Parameters
    ----------
    sim : vta.scene.Simulation
        The simulated setting (its scene gives the lead, the anatomy and the grid rule).
    fibres : list of ndarray (n_i, 3), optional
        Fibre polylines in world mm.
    fibre_activation : sequence of float or bool, optional
        Per fibre, in [0, 1] (bool accepted); >= 0.5 is drawn as activated.
    fov_mm : float, optional
        Smallest height of the field of view (mm), widened to hold the VTA; default
        40 mm with anatomy (context around the target), 25 mm without.
    """
    from ..activation.efield import field_norm_on_grid

    fib: list[np.ndarray] = []
    act = None
    if fibres is not None:
        for i, f in enumerate(fibres):
            a = np.asarray(f, float)
            if a.ndim != 2 or a.shape[1] != 3 or len(a) < 2 or not np.all(np.isfinite(a)):
                raise VtaError(f"fibre {i} must be an (n >= 2, 3) array of finite mm coordinates, got shape {a.shape}")
            fib.append(a)
        if fibre_activation is None:
            act = np.zeros(len(fib))
        else:
            act = np.asarray(fibre_activation, dtype=float).ravel()
            if len(act) != len(fib):
                raise VtaError(f"fibre_activation has {len(act)} values for {len(fib)} fibres")
            if np.any(~np.isfinite(act)) or np.any((act < 0) | (act > 1)):
                raise VtaError("fibre_activation values must lie in [0, 1]")
    elif fibre_activation is not None:
        raise VtaError("fibre_activation given without fibres")

    scene, basis = sim.scene, sim.basis
    lead, placement = scene.lead.model, scene.lead.placement
    weights = np.asarray(sim.potentials_V, float)
    threshold = float(sim.threshold_V_per_mm)
    polarity = _polarity(sim)
    focus = _focus(scene.lead, polarity)
    hemisphere = "R" if focus[0] >= 0 else "L"
    vta_grid = sim.vta_grid
    if vta_grid is None:  # output.nifti = false: |E| on the scene's voxel grid (at least 0.25 mm voxels)
        grid = scene.voxel_grid(sim.state.currents_mA)
        if grid.spacing_mm < 0.25:
            from ..fem.grid import VoxelGrid

            hi = grid.origin_mm + grid.spacing_mm * (np.asarray(grid.shape) - 1)
            grid = VoxelGrid.around(grid.origin_mm, hi, 0.25)
        vta_grid = field_norm_on_grid(basis, weights, grid, threshold)

    if fov_mm is None:
        fov_mm = 40.0 if scene.anatomy is not None else 25.0
    mask = vta_grid.mask
    if mask.any():
        ijk = np.argwhere(mask)
        world = vta_grid.grid.origin_mm + vta_grid.grid.spacing_mm * np.array([ijk.min(0), ijk.max(0)])
        extent = float(np.max(world[1] - world[0]))
        fov = max(float(fov_mm), 1.3 * extent + 4.0)
    else:
        fov = float(fov_mm)

    # the trajectory view cuts across the lead at the contact carrying the most current
    currents = np.abs(np.asarray(sim.state.currents_mA, float))
    strongest = lead.contact(int(np.argmax(currents)))
    across = placement.to_world(np.array([0.0, 0.0, strongest.center_z_mm]))
    half = 0.5 * fov * 1.5
    slices = {}
    for cam in CAMERAS:
        n, u, v = cut_plane(cam, placement.direction, hemisphere)
        center = across if cam == "trajectory" else focus
        slices[cam] = _field_slice(basis, weights, center, n, u, v, half, SLICE_SPACING_MM)

    t1, structures, shown = None, {}, []
    if scene.anatomy is not None:
        anatomy = scene.anatomy
        t1 = anatomy.t1
        box = np.array([focus - 0.75 * fov, focus + 0.75 * fov])
        structures = _select_structures(anatomy.structures, hemisphere, box)
        shown = list(structures)

    return ViewScene(
        lead=lead,
        placement=placement,
        polarity=polarity,
        focus_mm=np.asarray(focus, float),
        hemisphere=hemisphere,
        fov_mm=fov,
        threshold_V_per_mm=threshold,
        vta=vta_grid,
        field_slices=slices,
        t1=t1,
        structures=structures,
        fibres=fib,
        fibre_activation=act,
        title=_title(sim, shown, act),
        contact_labels=contact_label_texts(sim),
        coordinates=coordinate_lines(sim),
    )


def fibres_from_tracts(tract_results: Sequence) -> tuple[list[np.ndarray] | None, np.ndarray | None]:
    """Fibres to draw from tract-activation results, with their activation (0 or 1).

    Draws the simulated axons (the fixed-length pieces of the streamlines near the
    active contacts that carried the cable models), not whole streamlines: that is
    what was modelled, and it keeps the view around the lead readable. Axons through
    the lead body are drawn as not activated. Returns ``(None, None)`` without tracts.
    """
    fibres: list[np.ndarray] = []
    activation: list[float] = []
    for result in tract_results or []:
        pts = np.asarray(result.placed.segments.points_mm, float)
        if len(pts) == 0:
            continue
        stride = max(1, pts.shape[1] // 100)            # ~100 points per axon are plenty to draw
        idx = np.unique(np.r_[np.arange(0, pts.shape[1], stride), pts.shape[1] - 1])
        active = np.asarray(result.activated, bool)
        for i in range(len(pts)):
            fibres.append(pts[i, idx])
            activation.append(float(active[i]))
    if not fibres:
        return None, None
    return fibres, np.array(activation)
