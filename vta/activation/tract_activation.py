"""Fibre-tract activation: axon cable models placed on streamlines near the lead.

For each tract (a streamline file or the synthetic default ALIC bundle) every streamline
passing within ``max_distance_mm`` of the active contacts gets one axon model
(:mod:`vta.activation.axons`, MRG double cable or nodes-only) of ``axon_length_mm``, centred on its
point closest to the active contacts. The extracellular potential at the compartments
comes from the solved field basis; by linearity the potential of any amplitude of one
contact configuration is a multiple of it, so one threshold search per fibre
(:func:`vta.activation.axons.thresholds`) answers every amplitude: a fibre fires at amplitude ``A``
iff ``A >= s*``.

Fibres that pass through the lead body cannot be evaluated (the potential is not
defined inside the lead, and a real axon there would be severed); they are counted as
``n_through_lead`` and never activated. Compartments outside the model domain take the
potential of the nearest compartment inside (zero at a grounded outer boundary).
Fibres farther than the search radius (``max_distance_mm``, or by default where a point
source of the largest current falls below 0.03 V/mm) are not simulated and count as not
activated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .axons import AxonModel, Pulse, compartment_offsets_mm, mrg_model, simplified_model, thresholds
from ..config import LeadConfig, TractsConfig
from ..errors import VtaError
from ..fem.stimulation import ContactState, carrying_contacts
from .tracts import FibreSegments, Tract, default_alic_bundle, fibre_segments_near, load_tract

__all__ = ["PlacedTract", "TractSetup", "axon_model", "load_config_tracts", "place_tract", "fibre_potentials",
           "unit_thresholds", "tract_activation", "sweep_thresholds"]

log = logging.getLogger(__name__)

#: Fibres whose threshold exceeds this multiple of the configured setting are reported
#: as ``inf`` by ``vta run`` (the bisection stops there).
RUN_THRESHOLD_CAP = 2.0


def axon_model(cfg: TractsConfig) -> AxonModel:
    """The axon model a ``[tracts]`` section asks for."""
    make = mrg_model if cfg.axon_model == "mrg" else simplified_model
    return make(cfg.fiber_diameter_um)


@dataclass(frozen=True)
class TractSetup:
    """What tract activation takes from a scene (:meth:`vta.scene.Scene.tract_setup`).

    Attributes
    ----------
    tracts : TractsConfig
        The ``[tracts]`` section.
    lead : LeadConfig
        Lead model and placement (world mm).
    anatomy : Anatomy or None
        For the synthetic default ALIC bundle.
    sigma_min_S_per_m : float
        The lower of the GM/WM conductivities (S/m), for the automatic search radius.
    """

    tracts: TractsConfig
    lead: LeadConfig
    anatomy: object
    sigma_min_S_per_m: float


def load_config_tracts(setup: TractSetup) -> list[Tract]:
    """The configured tracts: files (with their offsets) and the default bundle."""
    cfg = setup.tracts
    out = [load_tract(f.path, name=f.name, offset_mm=f.offset_mm) for f in cfg.files]
    if cfg.default_bundle == "ALIC":
        out.append(default_alic_bundle(setup.anatomy, side=setup.lead.hemisphere, n_fibres=200, seed=0,
                                       name="ALIC_bundle"))
    return out


@dataclass(frozen=True)
class PlacedTract:
    """Axon models placed on one tract.

    Attributes
    ----------
    tract : Tract
        The whole tract (for rendering).
    segments : FibreSegments
        One axon per simulated streamline: compartment positions ``points_mm`` (n, m, 3).
    through_lead : ndarray of bool (n,)
        Axons crossing the lead body (not evaluated, never active).
    """

    tract: Tract
    segments: FibreSegments
    through_lead: np.ndarray

    @property
    def name(self) -> str:
        return self.tract.name

    @property
    def n_fibres(self) -> int:
        return len(self.tract.streamlines)


def _inside_lead(lead_cfg: LeadConfig, points_mm: np.ndarray) -> np.ndarray:
    """Whether points (..., 3) lie inside the lead body (cylinder from the tip up)."""
    lead, place = lead_cfg.model, lead_cfg.placement
    shape = points_mm.shape[:-1]
    loc = place.to_local(points_mm.reshape(-1, 3))
    r = np.hypot(loc[:, 0], loc[:, 1])
    return ((r < lead.radius_mm) & (loc[:, 2] >= 0.0)).reshape(shape)


#: |E| (V/mm) below which no fibre of the MRG table fires at clinical pulse widths: the
#: Astrom 2015 thresholds fall to ~0.07 V/mm for 5 um fibres at 120 us; larger fibres
#: need less, so the margin is generous.
E_MIN_V_PER_MM = 0.03
#: Smallest automatic search radius (mm).
MIN_RADIUS_MM = 3.0


def search_radius_mm(setup: TractSetup, currents_mA: np.ndarray) -> float:
    """How far from the active contacts axons are simulated (mm).

    ``max_distance_mm`` when configured; otherwise the distance at which a point
    source of the largest contact current (mA) in the lower tissue conductivity falls
    to :data:`E_MIN_V_PER_MM`: ``r = sqrt(I / (4 pi sigma E_min))``.
    """
    if setup.tracts.max_distance_mm is not None:
        return float(setup.tracts.max_distance_mm)
    sigma = setup.sigma_min_S_per_m
    i_max = float(np.max(np.abs(currents_mA))) if len(currents_mA) else 0.0
    # I [mA] / (4 pi sigma [S/m] E [V/mm]) has units of mm^2
    return max(MIN_RADIUS_MM, float(np.sqrt(i_max / (4 * np.pi * sigma * E_MIN_V_PER_MM))))


def place_tract(setup: TractSetup, tract: Tract, model: AxonModel, active: list[int], radius_mm: float) -> PlacedTract:
    """Place axon models of ``[tracts] axon_length_mm`` on the streamlines of ``tract``
    that pass within ``radius_mm`` of the active contacts."""
    cfg = setup.tracts
    lead, place = setup.lead.model, setup.lead.placement
    centres = np.array([place.contact_center_mm(lead, k) for k in active])
    centre = centres.mean(axis=0)
    half_span = float(np.max(np.linalg.norm(centres - centre, axis=1))) if len(centres) > 1 else 0.0
    n_nodes = int(np.floor((cfg.axon_length_mm + 2 * half_span) / model.node_spacing_mm)) // 2 * 2 + 1
    offsets = compartment_offsets_mm(model, n_nodes)
    offsets = offsets - 0.5 * (offsets[0] + offsets[-1])
    seg = fibre_segments_near(tract, centre, float(offsets[-1] - offsets[0]) + 1e-9, radius_mm + half_span,
                              offsets_mm=offsets, max_fibres=cfg.max_fibres)
    if len(seg) and half_span > 0:
        # the distance to the nearest active contact, not to their centre
        d = np.min(np.linalg.norm(seg.points_mm[:, :, None, :] - centres[None, None], axis=-1), axis=(1, 2))
        keep = d <= radius_mm
        seg = FibreSegments(seg.points_mm[keep], seg.offsets_mm, seg.streamline_index[keep], d[keep],
                            seg.centre_mm[keep], seg.extension_mm[keep], seg.tract_name, seg.fiber_diameter_um)
    through = _inside_lead(setup.lead, seg.points_mm).any(axis=1) if len(seg) else np.zeros(0, bool)
    return PlacedTract(tract, seg, through)


def fibre_potentials(basis, weights_V: np.ndarray, placed: PlacedTract) -> np.ndarray:
    """Extracellular potential (V) at every compartment of the evaluable axons, (n_ok, m).

    NaN compartments (outside the model domain) take the value of the nearest
    compartment inside along the fibre.
    """
    pts = placed.segments.points_mm[~placed.through_lead]
    if len(pts) == 0:
        return np.zeros((0, len(placed.segments.offsets_mm)))
    n, m, _ = pts.shape
    ve = np.asarray(basis.potential_at(pts.reshape(-1, 3), weights_V), float).reshape(n, m)
    bad = ~np.isfinite(ve)
    if bad.any():
        idx = np.where(~bad, np.arange(m)[None, :], -1)
        fwd = np.maximum.accumulate(idx, axis=1)                     # last valid at or before j
        idx_b = np.where(~bad, np.arange(m)[None, :], m)
        bwd = np.minimum.accumulate(idx_b[:, ::-1], axis=1)[:, ::-1]  # next valid at or after j
        j = np.arange(m)[None, :]
        use_f = (fwd >= 0) & ((bwd >= m) | (j - fwd <= bwd - j))
        src = np.where(use_f, fwd, np.where(bwd < m, bwd, 0))
        filled = np.take_along_axis(ve, src, axis=1)
        empty = bad.all(axis=1)
        filled[empty] = 0.0
        ve = np.where(bad, filled, ve)
    return ve


def unit_thresholds(basis, weights_V: np.ndarray, placed: PlacedTract, model: AxonModel, pulse: Pulse,
                    s_max: float) -> np.ndarray:
    """Threshold multiple ``s*`` of the setting ``weights_V`` for every placed axon
    (``inf`` through the lead or above ``s_max``), shape (n_placed,)."""
    out = np.full(len(placed.segments), np.inf)
    ok = ~placed.through_lead
    if ok.any():
        ve = fibre_potentials(basis, weights_V, placed)
        out[ok] = thresholds(model, ve, pulse, s_max=s_max)
    return out


@dataclass(frozen=True)
class TractResult:
    """Activation of one tract at the configured setting."""

    placed: PlacedTract
    threshold_factor: np.ndarray   # per placed axon: s* (multiple of the setting; inf = none)
    radius_mm: float               # axons were placed within this distance of the active contacts

    @property
    def activated(self) -> np.ndarray:
        return self.threshold_factor <= 1.0

    def summary(self, cfg: TractsConfig) -> dict:
        n_act = int(self.activated.sum())
        return {
            "n_fibres": self.placed.n_fibres,
            "n_simulated": int((~self.placed.through_lead).sum()),
            "n_through_lead": int(self.placed.through_lead.sum()),
            "n_activated": n_act,
            "fraction_activated": n_act / self.placed.n_fibres if self.placed.n_fibres else 0.0,
            "axon_model": cfg.axon_model,
            "fiber_diameter_um": cfg.fiber_diameter_um,
            "axon_length_mm": cfg.axon_length_mm,
            "search_radius_mm": self.radius_mm,
            "source": self.placed.tract.source.get("note") or self.placed.tract.source.get("file", ""),
        }

    def fibre_rows(self) -> list[dict]:
        seg = self.placed.segments
        return [{
            "tract": self.placed.name,
            "streamline": int(seg.streamline_index[i]),
            "distance_mm": float(seg.distance_mm[i]),
            "through_lead": bool(self.placed.through_lead[i]),
            "threshold_factor": float(self.threshold_factor[i]),
            "activated": bool(self.activated[i]),
        } for i in range(len(seg))]


def tract_activation(setup: TractSetup | None, basis, state: ContactState, pulse_width_us: float) -> list[TractResult]:
    """Threshold factor of every axon of every configured tract at the setting ``state``
    (contact potentials in V, currents in mA) with a pulse of ``pulse_width_us``."""
    if setup is None:
        return []
    model = axon_model(setup.tracts)
    pulse = Pulse(float(pulse_width_us), setup.tracts.recharge)
    active = carrying_contacts(state.currents_mA)
    results = []
    radius = search_radius_mm(setup, state.currents_mA * RUN_THRESHOLD_CAP)
    for tract in load_config_tracts(setup):
        placed = place_tract(setup, tract, model, active, radius)
        if len(placed.segments) == 0:
            log.warning("tract %s: no fibre passes within %.1f mm of the active contacts; none is activated",
                        tract.name, radius)
        s = unit_thresholds(basis, state.potentials_V, placed, model, pulse, RUN_THRESHOLD_CAP)
        results.append(TractResult(placed, s, radius))
        _warn_if_capped(placed, s <= 1.0, setup.tracts.max_fibres)
        log.info("tract %s: %d of %d fibres simulated, %d activated", tract.name, int((~placed.through_lead).sum()),
                 placed.n_fibres, int((s <= 1).sum()))
    return results


def _warn_if_capped(placed: PlacedTract, active: np.ndarray, max_fibres: int) -> None:
    """Warn when ``max_fibres`` cut the tract and the farthest simulated axons still fire:
    unsimulated fibres beyond them may fire too (the fraction is then a lower bound)."""
    n = len(placed.segments)
    if n < max_fibres or n == 0:
        return
    far = np.argsort(placed.segments.distance_mm)[-max(1, n // 10):]
    if active[far].any():
        log.warning("tract %s: only the %d nearest fibres were simulated and some of the farthest of them fire; "
                    "the activated fraction is a lower bound (raise [tracts] max_fibres)", placed.name, n)


def sweep_thresholds(setup: TractSetup | None, basis, max_amplitude: float) -> Callable:
    """A ``tract_thresholds`` callable for :func:`vta.studies.sweep.sweep` / :func:`vta.studies.optimise.optimise`.

    Axons are placed once per set of active contacts; per (configuration, pulse width) the
    thresholds of the unit setting are searched once, in the sweep's amplitude unit.
    Fibres not simulated count as never active (threshold ``inf``).
    """
    if setup is None:
        raise VtaError("tract thresholds need a [tracts] section")
    model = axon_model(setup.tracts)
    tracts = load_config_tracts(setup)
    placed_cache: dict[tuple, list[PlacedTract]] = {}
    cache: dict[tuple, dict] = {}

    def thresholds_of(contact_config, state: ContactState, pulse_width_us: float) -> dict:
        key = (contact_config.label, float(pulse_width_us))
        if key not in cache:
            active = tuple(carrying_contacts(state.currents_mA))
            radius = search_radius_mm(setup, state.currents_mA * max_amplitude)
            if (active, radius) not in placed_cache:
                placed_cache[(active, radius)] = [place_tract(setup, t, model, list(active), radius) for t in tracts]
            pulse = Pulse(float(pulse_width_us), setup.tracts.recharge)
            out = {}
            for placed in placed_cache[(active, radius)]:
                s = unit_thresholds(basis, state.potentials_V, placed, model, pulse, 1.01 * max_amplitude)
                out[placed.name] = np.concatenate([s, np.full(placed.n_fibres - len(s), np.inf)])
            cache[key] = out
        return cache[key]

    return thresholds_of
