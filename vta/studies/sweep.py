"""Settings sweeps on a solved field basis, without any re-solve.

By linearity the field of one contact configuration (a set of active contacts with
fixed relative weights) at amplitude ``a`` is ``a * E_unit``, so

    |E| >= thr   <=>   |E_unit| >= thr / a.

:func:`sweep` therefore evaluates ``|E_unit|`` once per configuration at the
quadrature points of the mesh-integrated VTA volume (:meth:`FieldBasis.volume_samples`,
the same points and weights as ``vta run``) and at the sub-voxels of each structure,
sorts it once, and reads the VTA volume and every structure overlap of *all*
amplitudes and pulse widths (the threshold may depend on the pulse width through
:func:`vta.activation.efield.astrom_threshold`) by ``np.searchsorted``: thousands of settings
for the cost of K evaluations.

Per setting (one row): configuration label, active contacts, amplitude, pulse width,
threshold, VTA volume (mm^3), ``vta_clipped_by_domain`` (|E| reaches the threshold on
the outer boundary of the model: the VTA is cut off there), per-structure overlap (mm^3
and fraction of
the structure), spill (VTA outside the target structures, mm^3), impedance (ohm), and
per contact the current (mA), charge per phase (uC) and charge density (uC/cm^2), with
the flags ``exceeds_30uC_cm2`` and ``exceeds_shannon`` (Shannon 1992,
``log10(D) > k - log10(Q)`` with ``k = 1.85``).

Tract (pathway) activation: with ``tract_thresholds`` (axon-model thresholds of the unit
setting, found once per configuration and pulse width) a fibre fires at every amplitude
at or above its threshold, so tract columns cost one comparison per setting.

The VTA volume is integrated on the mesh as in ``vta run``: on the 3D path it equals
:meth:`FieldBasis.vta_volume_mm3` to rounding, on the axisymmetric path to about 0.1 %
(sub-triangle centroids instead of the exact clipped integral). A sweep and a run of
the same setting agree within 2 % also for VTAs of a few mm^3, where voxel counting
was 20 % off.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..activation.efield import (CHARGE_DENSITY_LIMIT_UC_CM2, SHANNON_K, astrom_threshold, charge_metrics,
                         structure_samples)
from ..config import MAX_CURRENT_MA, MAX_VOLTAGE_V
from ..errors import VtaError
from ..io import atomic_write_bytes, write_table
from ..fem.stimulation import Setting, resolve

__all__ = [
    "ContactConfig",
    "SHANNON_K",
    "CHARGE_DENSITY_LIMIT_UC_CM2",
    "SweepSpec",
    "charge_metrics",
    "parse_amplitudes",
    "parse_pulse_widths",
    "plot_coverage",
    "segmented_levels",
    "standard_configs",
    "sweep",
    "sweep_scene",
    "write_table",
]

log = logging.getLogger(__name__)

#: Plausibility limits of sweep amplitudes (mA in current mode, V in voltage mode): the
#: same limits as a single ``vta run`` (:data:`vta.config.MAX_CURRENT_MA`, ``MAX_VOLTAGE_V``).
MAX_AMPLITUDE = {"current": MAX_CURRENT_MA, "voltage": MAX_VOLTAGE_V}


@dataclass(frozen=True)
class ContactConfig:
    """Active contacts with relative (signed) weights; amplitude 1 = ``weights`` in mA or V.

    Cathodic contacts have negative weights, e.g. monopolar ``{1: -1.0}``, bipolar
    ``{1: -1.0, 2: +1.0}``, a directional split of the cathodic current between two
    segments ``{1: -0.75, 2: -0.25}`` (label ``"c1:0.75-c2:0.25-"``). In voltage mode
    the weights are contact voltages per volt of amplitude: unequal cathodic weights
    assume a stimulator with one voltage source per contact.
    """

    label: str
    weights: dict[int, float]

    def __post_init__(self) -> None:
        if not self.weights:
            raise VtaError(f"contact configuration {self.label!r} has no active contact")

    def describe(self) -> str:
        """Active contacts with polarity, e.g. ``"1- 2+"``; where the contacts of one
        polarity carry unequal shares, each one's share of that polarity's total, e.g.
        ``"1-75% 2-25%"``."""
        parts = []
        for k in sorted(self.weights):
            w = self.weights[k]
            same = [abs(v) for v in self.weights.values() if (v < 0) == (w < 0)]
            share = f"{round(100 * abs(w) / sum(same), 2):g}%" if max(same) - min(same) > 1e-12 * max(same) else ""
            parts.append(f"{k}{'-' if w < 0 else '+'}{share}")
        return " ".join(parts)


#: Kinds of contact configurations :func:`standard_configs` knows.
CONFIG_KINDS = ("monopolar", "bipolar-adjacent", "double-monopolar", "segments", "segment-split")
#: Kinds that need a directional lead (segmented levels).
SEGMENT_KINDS = ("segments", "segment-split")


def segmented_levels(lead) -> list[list[int]]:
    """Contact indices of each segmented level of a lead model, distal first, each
    level's segments in their order about the lead axis (counter-clockwise from the
    marker). Ring-only leads have none."""
    levels: dict[int, list] = {}
    for c in lead.contacts():
        if not c.is_ring:
            levels.setdefault(c.level, []).append(c)
    return [[c.index for c in sorted(cs, key=lambda c: (c.angle_center_deg, c.index))]
            for _, cs in sorted(levels.items())]


def _split_fractions(split_step: float) -> list[float]:
    """Fractions of the first segment of a pair: ``1 - step, ..., step`` (1 and 0 are
    the single segments)."""
    try:
        step = float(split_step)
    except (TypeError, ValueError):
        raise VtaError(f"split_step must be a number, got {split_step!r}") from None
    n = round(1.0 / step) if math.isfinite(step) and step > 0 else 0
    if not (0.01 <= step <= 0.5) or abs(n * step - 1.0) > 1e-6:
        raise VtaError(f"split_step must divide 1 into equal steps between 0.01 and 0.5 (e.g. 0.25, 0.1), "
                       f"got {split_step!r}")
    return [(n - i) / n for i in range(1, n)]


def _fraction_text(f: float) -> str:
    return f"{round(f, 4):g}"


def standard_configs(n_contacts_or_lead, kinds: Sequence[str] = ("monopolar", "bipolar-adjacent"),
                     mode: str = "current", *, lead=None, split_step: float = 0.25) -> list[ContactConfig]:
    """Standard contact configurations.

    Parameters
    ----------
    n_contacts_or_lead : int or LeadModel or LeadConfig
        The number of contacts, or the lead model (``scene.lead.model``; a
        :class:`vta.config.LeadConfig` such as ``scene.lead`` is taken too). The
        segment kinds need the lead model (here or as ``lead``).
    kinds : sequence of str
        ``monopolar``: one cathode on each contact (case return); ``bipolar-adjacent``:
        each adjacent pair, k cathode and k+1 anode; ``double-monopolar``: each adjacent
        pair as two cathodes, sharing the amplitude (-0.5/-0.5 in current mode, both at
        -1 in voltage mode); ``segments``: each segment of each segmented level alone as
        the cathode (the ``monopolar`` configurations of the segments);
        ``segment-split``: for each segmented level and each pair of neighbouring
        segments about the axis (on a three-segment level every pair), the cathodic
        current split between the two in steps of ``split_step`` (0.25: 0.75/0.25,
        0.5/0.5, 0.25/0.75; the whole current on one segment is ``segments``),
        labelled with the fractions, e.g. ``"c1:0.75-c2:0.25-"``. At amplitude ``a``
        mA the two segments carry ``-0.75 a`` and ``-0.25 a`` mA (the case returns
        ``a``): multiple-independent-current-control steering, as the directional
        systems program it.

        ``segment-split`` is current steering and needs ``mode="current"``: a
        voltage-mode program drives its active contacts from one voltage source, so
        two cathodes share one voltage (``double-monopolar``) and their current split
        follows the tissue, not a setting. (A :class:`ContactConfig` with unequal
        cathodic weights can still be swept in voltage mode: each contact at its own
        fraction of the amplitude, as with one voltage source per contact.)
    mode : str
        ``"current"`` or ``"voltage"``.
    lead : LeadModel or LeadConfig, optional
        The lead model when ``n_contacts_or_lead`` is a number.
    split_step : float
        Fraction step of ``segment-split`` (1/split_step a whole number; default 0.25).

    Returns
    -------
    list of ContactConfig
        In the order of ``kinds``; a configuration that two kinds both give (e.g. a
        segment's ``monopolar`` and ``segments``) is listed once.

    Raises
    ------
    VtaError
        For an unknown kind, a segment kind without a lead model or on a ring-only
        lead, ``segment-split`` in voltage mode, or a bad ``split_step``.
    """
    model = getattr(lead, "model", lead)
    if isinstance(n_contacts_or_lead, (int, np.integer)):
        n_contacts = int(n_contacts_or_lead)
        if model is not None and model.n_contacts != n_contacts:
            raise VtaError(f"standard_configs: {n_contacts} contacts, but lead '{model.name}' has {model.n_contacts}")
    else:
        if model is not None:
            raise VtaError("standard_configs: give the lead model either first or as lead=, not both")
        model = getattr(n_contacts_or_lead, "model", n_contacts_or_lead)
        if not hasattr(model, "contacts") or not hasattr(model, "levels"):
            raise VtaError(f"standard_configs needs a number of contacts or a lead model, got {n_contacts_or_lead!r}")
        n_contacts = int(model.n_contacts)
    out: list[ContactConfig] = []
    for kind in kinds:
        segs: list[list[int]] = []
        if kind in SEGMENT_KINDS:
            if model is None:
                raise VtaError(f"contact configuration kind {kind!r} needs the lead model: "
                               f"standard_configs(scene.lead.model, ...)")
            segs = segmented_levels(model)
            if not segs:
                raise VtaError(f"contact configuration kind {kind!r} needs a directional lead: "
                               f"'{model.name}' has ring contacts only")
        if kind == "monopolar":
            out += [ContactConfig(f"c{k}-", {k: -1.0}) for k in range(n_contacts)]
        elif kind == "bipolar-adjacent":
            out += [ContactConfig(f"c{k}-c{k + 1}+", {k: -1.0, k + 1: 1.0}) for k in range(n_contacts - 1)]
        elif kind == "double-monopolar":
            w = -0.5 if mode == "current" else -1.0
            out += [ContactConfig(f"c{k}-c{k + 1}-", {k: w, k + 1: w}) for k in range(n_contacts - 1)]
        elif kind == "segments":
            out += [ContactConfig(f"c{k}-", {k: -1.0}) for level in segs for k in level]
        elif kind == "segment-split":
            if mode != "current":
                raise VtaError("contact configuration kind 'segment-split' splits the cathodic current between "
                               "segments and needs current mode (a voltage-mode program drives its cathodes at "
                               "one voltage: use segments or double-monopolar)")
            fractions = _split_fractions(split_step)
            for level in segs:
                n = len(level)
                pairs = [(level[s], level[(s + 1) % n]) for s in range(n if n > 2 else n - 1)]
                for a, b in (tuple(sorted(p)) for p in pairs):
                    for f in fractions:
                        fa, fb = f, 1.0 - f
                        out.append(ContactConfig(f"c{a}:{_fraction_text(fa)}-c{b}:{_fraction_text(fb)}-",
                                                 {a: -fa, b: -fb}))
        else:
            raise VtaError(f"unknown contact configuration kind {kind!r} (use {', '.join(CONFIG_KINDS)})")
    unique: dict[tuple, ContactConfig] = {}
    for c in out:
        unique.setdefault(tuple(sorted((int(k), float(w)) for k, w in c.weights.items())), c)
    return list(unique.values())


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep.

    Attributes
    ----------
    configs : list of ContactConfig
    amplitudes : sequence of float
        Positive magnitudes (mA in current mode, V in voltage mode), multiplying each
        configuration's weights: bipolar ``{k: -1, k+1: +1}`` at 3 V in voltage mode is
        -3 V / +3 V (6 V apart); at 3 mA in current mode, 3 mA from anode to cathode.
    pulse_widths_us : sequence of float
    mode : str
        ``"current"`` or ``"voltage"``.
    """

    configs: list[ContactConfig]
    amplitudes: Sequence[float]
    pulse_widths_us: Sequence[float] = (60.0,)
    mode: str = "current"

    def __post_init__(self) -> None:
        if self.mode not in MAX_AMPLITUDE:
            raise VtaError(f"sweep mode must be 'current' or 'voltage', got {self.mode!r}")
        if not self.configs:
            raise VtaError("the sweep needs at least one contact configuration")
        amps = np.asarray(self.amplitudes, float).reshape(-1)
        if amps.size == 0:
            raise VtaError("the sweep needs at least one amplitude")
        unit = "mA" if self.mode == "current" else "V"
        limit = MAX_AMPLITUDE[self.mode]
        if not np.all(np.isfinite(amps)) or np.any(amps <= 0) or np.any(amps > limit):
            raise VtaError(f"sweep amplitudes must be in (0, {limit:g}] {unit}, got {amps.tolist()}")
        pws = np.asarray(self.pulse_widths_us, float).reshape(-1)
        if pws.size == 0:
            raise VtaError("the sweep needs at least one pulse width")
        if not np.all(np.isfinite(pws)) or np.any(pws <= 0) or np.any(pws > 1000):
            raise VtaError(f"sweep pulse widths must be in (0, 1000] us, got {pws.tolist()}")

    @property
    def n_settings(self) -> int:
        return len(self.configs) * len(self.amplitudes) * len(self.pulse_widths_us)


def parse_amplitudes(text: str) -> list[float]:
    """``"0.5:5:0.5"`` (start:stop:step, stop included) or ``"1,2,3"`` -> list of floats."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if not (step > 0 and stop >= start):
                raise VtaError(f"amplitude range {text!r} needs step > 0 and stop >= start")
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            if n > 100_000:
                raise VtaError(f"amplitude range {text!r} has {n} values (at most 100000)")
            values = [round(start + i * step, 12) for i in range(n)]
        else:
            values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise VtaError(f"cannot read amplitudes {text!r} (use start:stop:step or a,b,c)") from None
    if not values:
        raise VtaError("the amplitude list is empty")
    return values


def parse_pulse_widths(text: str) -> list[float]:
    """``"60,90,120"`` -> list of floats (us)."""
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise VtaError(f"cannot read pulse widths {text!r} (use a,b,c in us)") from None
    if not values:
        raise VtaError("the pulse-width list is empty")
    return values


class ConfigResponse:
    """How one contact configuration's VTA grows with the amplitude, from one evaluation.

    The unit field ``|E_unit|`` (amplitude 1) is evaluated once at the VTA quadrature
    points of the mesh and at every structure sub-voxel and sorted; the VTA volume and
    each structure overlap at any ratio ``threshold / amplitude`` are then one
    ``np.searchsorted`` each.

    Attributes
    ----------
    config : ContactConfig
    state : ContactState
        The resolved unit setting (amplitude 1).
    boundary_norm : float
        Largest unit |E| on the outer boundary of the model (V/mm): amplitudes with
        ``boundary_norm * a >= threshold`` have VTAs cut off by the domain.
    structure_volume_mm3 : dict of str -> float
    """

    def __init__(self, config: ContactConfig, state, volume_samples: tuple[np.ndarray, np.ndarray],
                 boundary_norm: float, structures: dict[str, tuple[np.ndarray, np.ndarray, float]]):
        self.config = config
        self.state = state
        self._volume = volume_samples
        self.boundary_norm = float(boundary_norm)
        self._structures = structures
        self.structure_volume_mm3 = {name: v for name, (_, _, v) in structures.items()}

    @staticmethod
    def _sorted(norms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sorted norms and the weight at or above each (one more entry: 0)."""
        norms = np.where(np.isfinite(norms), norms, 0.0)
        order = np.argsort(norms)
        return norms[order], np.concatenate([np.cumsum(weights[order][::-1])[::-1], [0.0]])

    @classmethod
    def evaluate(cls, basis, config: ContactConfig, state, structs: dict, min_ratio: float = 0.0) -> "ConfigResponse":
        """Evaluate the unit |E| of ``state`` at the mesh's VTA quadrature points that can
        reach ``min_ratio`` (the smallest threshold / amplitude of interest, V/mm) and at
        the structure samples (as returned by :func:`vta.activation.efield.structure_samples`)."""
        volume = cls._sorted(*basis.volume_samples(state.potentials_V, min_ratio))
        per_structure = {}
        for name, (pts, w, vol) in structs.items():
            if len(pts):
                E = basis.field_at(pts, state.potentials_V)
                ns, cw = cls._sorted(np.sqrt(np.einsum("ij,ij->i", E, E)), w)
            else:
                ns, cw = np.zeros(0), np.zeros(1)
            per_structure[name] = (ns, cw, float(vol))
        return cls(config, state, volume, basis.boundary_field_max(state.potentials_V), per_structure)

    def vta_mm3(self, ratio: np.ndarray) -> np.ndarray:
        """VTA volume (mm^3) where ``|E_unit| >= ratio`` (ratio = thr / a)."""
        ns, cw = self._volume
        return cw[np.searchsorted(ns, np.asarray(ratio, float), side="left")]

    def clipped(self, ratio: np.ndarray) -> np.ndarray:
        """True where the VTA at ``ratio = thr / a`` reaches the model's outer boundary."""
        return self.boundary_norm >= np.asarray(ratio, float)

    def overlap_mm3(self, name: str, ratio: np.ndarray) -> np.ndarray:
        """Overlap of the VTA with structure ``name`` (mm^3) at ``ratio = thr / a``."""
        ns, cw, _ = self._structures[name]
        return cw[np.searchsorted(ns, np.asarray(ratio, float), side="left")]


def thresholds_for(pulse_widths_us: np.ndarray, threshold_V_per_mm=None, fiber_diameter_um: float | None = None) -> np.ndarray:
    """|E| threshold (V/mm) for each pulse width: fixed, a function of the pulse width,
    or the Astrom threshold of an axon diameter."""
    pws = np.asarray(pulse_widths_us, float).reshape(-1)
    if fiber_diameter_um is not None:
        thr = np.array([astrom_threshold(fiber_diameter_um, pw) for pw in pws])
    elif callable(threshold_V_per_mm):
        thr = np.array([float(threshold_V_per_mm(pw)) for pw in pws])
    elif threshold_V_per_mm is not None:
        thr = np.full(pws.shape, float(threshold_V_per_mm))
    else:
        raise VtaError("a sweep needs threshold_V_per_mm or fiber_diameter_um")
    if not np.all((thr > 0) & np.isfinite(thr)):
        raise VtaError(f"thresholds must be positive, got {thr.tolist()}")
    return thr


#: ``tract_thresholds(config, state, pulse_width_us) -> {tract: s*}``: per fibre the
#: amplitude (in the sweep's unit) from which it fires, for the unit setting ``state``.
TractThresholds = Callable[[ContactConfig, object, float], dict]


@dataclass
class SweepSetup:
    """What every setting of a sweep or an optimisation shares.

    Attributes
    ----------
    states : list of ContactState
        The unit setting (amplitude 1) of each configuration.
    areas_mm2 : ndarray (K,)
        Contact areas (NaN without a lead).
    min_ratio : float
        Smallest threshold / amplitude of interest (V/mm): mesh points whose unit |E|
        stays below it are in no VTA of the sweep.
    structs : dict
        Structure samples (:func:`vta.activation.efield.structure_samples`).
    target_names : list of str
    """

    states: list
    areas_mm2: np.ndarray
    min_ratio: float
    structs: dict
    target_names: list

    def responses(self, basis, configs: Sequence[ContactConfig], desc: str = "configurations"):
        """One :class:`ConfigResponse` per configuration (lazily, in order), with a
        progress bar on a terminal."""
        from tqdm.auto import tqdm

        for c, state in tqdm(list(zip(configs, self.states)), desc=desc, unit="config", disable=None, leave=False):
            yield ConfigResponse.evaluate(basis, c, state, self.structs, self.min_ratio)


def setup_sweep(basis, configs: Sequence[ContactConfig], mode: str, max_amplitude: float, min_threshold: float, *,
                structures: dict | None = None, targets: Sequence[str] | None = None,
                lead=None, region_mm: np.ndarray | None = None, supersample: int = 3) -> SweepSetup:
    """Resolve the unit settings and sample the structures."""
    K = basis.n_contacts
    for c in configs:
        for k in c.weights:
            if not 0 <= int(k) < K:
                raise VtaError(f"configuration {c.label!r}: contact {k} is out of range (0..{K - 1})")
    states = [resolve(Setting(mode, dict(c.weights)), basis.conductance_S, basis.outer_grounded) for c in configs]
    areas = np.full(K, np.nan)
    if lead is not None:
        areas = np.array([c.area_mm2 for c in lead.model.contacts()], float)
    structs = structure_samples(structures or {}, region_mm, supersample)
    target_names = list(structs) if targets is None else [t for t in targets if t in structs]
    min_ratio = float(min_threshold) / float(max_amplitude) * (1 - 1e-9)
    return SweepSetup(states, areas, min_ratio, structs, target_names)


def sweep(
    basis,
    spec: SweepSpec,
    *,
    threshold_V_per_mm: float | Callable[[float], float] | None = None,
    fiber_diameter_um: float | None = None,
    structures: dict | None = None,
    targets: Sequence[str] | None = None,
    lead=None,
    region_mm: np.ndarray | None = None,
    supersample: int = 3,
    tract_thresholds: TractThresholds | None = None,
) -> list[dict]:
    """Evaluate every setting of ``spec`` on a solved field basis (no re-solve).

    Parameters
    ----------
    basis : FieldBasis
        ``TetFieldBasis`` or ``AxisymmetricBasis``.
    spec : SweepSpec
    threshold_V_per_mm : float or callable, optional
        Fixed |E| threshold (V/mm), or a function of the pulse width (us).
    fiber_diameter_um : float, optional
        Instead of ``threshold_V_per_mm``: the Astrom threshold for this axon diameter at
        each pulse width.
    structures : dict of str -> vta.anatomy.atlas_io.Structure, optional
        Structures whose overlap with the VTA is reported (as
        :func:`vta.activation.efield.structure_coverage`).
    targets : sequence of str, optional
        The target structures (default: all of ``structures``); ``spill_mm3`` is the
        VTA volume outside them.
    lead : LeadConfig, optional
        Lead model and placement: contact areas (charge density).
    region_mm : ndarray (2, 3), optional
        Box worth evaluating for structure overlap (e.g. the mesh domain).
    supersample : int
        Sub-voxels per structure voxel edge.
    tract_thresholds : callable, optional
        ``(config, unit_state, pulse_width_us) -> {tract: thresholds}``: per fibre the
        amplitude from which it fires (axon-model threshold search on the unit
        setting, :mod:`vta.activation.tract_activation`); adds ``tract_<name>_fraction`` and
        ``tract_<name>_activated`` columns.

    Returns
    -------
    list of dict
        One row per (configuration, amplitude, pulse width).
    """
    amps = np.asarray(spec.amplitudes, float).reshape(-1)
    pws = np.asarray(spec.pulse_widths_us, float).reshape(-1)
    thr = thresholds_for(pws, threshold_V_per_mm, fiber_diameter_um)
    setup = setup_sweep(basis, spec.configs, spec.mode, float(amps.max()), float(thr.min()), structures=structures,
                        targets=targets, lead=lead, region_mm=region_mm, supersample=supersample)
    K = basis.n_contacts
    structs, target_names, areas = setup.structs, setup.target_names, setup.areas_mm2

    rows: list[dict] = []
    # ratio thr/a for every (amplitude, pulse width), amplitude-major
    ratio = thr[None, :] / amps[:, None]                     # (na, npw)
    A = np.repeat(amps, len(pws))
    P = np.tile(pws, len(amps))
    T = np.tile(thr, len(amps))
    for resp in setup.responses(basis, spec.configs):
        c, state = resp.config, resp.state
        vta = resp.vta_mm3(ratio.ravel())
        clipped = resp.clipped(ratio.ravel())
        overlaps = {name: (resp.overlap_mm3(name, ratio.ravel()), resp.structure_volume_mm3[name]) for name in structs}
        target_sum = sum((overlaps[t][0] for t in target_names), np.zeros(ratio.size))
        spill = np.maximum(vta - target_sum, 0.0)
        cur = A[:, None] * state.currents_mA[None, :]         # (n, K)
        q, d, over30, shannon = charge_metrics(cur, P[:, None], areas[None, :])
        tracts: dict[str, tuple[np.ndarray, int]] = {}   # name -> (fibres active per row, fibres)
        for pw in (pws if tract_thresholds is not None else []):
            rows_pw = P == pw
            for name, t in tract_thresholds(c, state, float(pw)).items():
                t = np.sort(np.asarray(t, float))
                n_act = tracts.setdefault(name, (np.zeros(A.size, int), t.size))[0]
                n_act[rows_pw] = np.searchsorted(t, A[rows_pw], side="right")
        active = sorted(int(k) for k in c.weights)
        act_idx = np.array(active)
        imp = state.impedance_ohm
        for i in range(ratio.size):
            row = {
                "config": c.label,
                "active_contacts": c.describe(),
                "mode": spec.mode,
                "amplitude": float(A[i]),
                "pulse_width_us": float(P[i]),
                "threshold_V_per_mm": float(T[i]),
                "vta_volume_mm3": float(vta[i]),
                "vta_clipped_by_domain": bool(clipped[i]),
            }
            for name, (ov, volume) in overlaps.items():
                row[f"{name}_overlap_mm3"] = float(ov[i])
                row[f"{name}_fraction"] = float(ov[i] / volume) if volume > 0 else 0.0
            row["spill_mm3"] = float(spill[i])
            for name, (n_act, n_total) in tracts.items():
                row[f"tract_{name}_activated"] = int(n_act[i])
                row[f"tract_{name}_fraction"] = float(n_act[i] / n_total) if n_total else 0.0
            row["impedance_ohm"] = float(imp)
            qa, da = q[i, act_idx], d[i, act_idx]
            row["charge_per_phase_uC"] = float(qa.max())
            row["charge_density_uC_per_cm2"] = float(da.max()) if np.isfinite(da).any() else float("nan")
            for k in range(K):
                row[f"c{k}_current_mA"] = float(cur[i, k])
                row[f"c{k}_charge_uC"] = float(q[i, k])
                row[f"c{k}_charge_density_uC_per_cm2"] = float(d[i, k])
            row["exceeds_30uC_cm2"] = bool(over30[i, act_idx].any())
            row["exceeds_shannon"] = bool(shannon[i, act_idx].any())
            rows.append(row)
    n30 = sum(r["exceeds_30uC_cm2"] for r in rows)
    nsh = sum(r["exceeds_shannon"] for r in rows)
    if n30 or nsh:
        log.warning("%d of %d settings exceed %g uC/cm^2 per phase and %d exceed the Shannon limit (k = %g)",
                    n30, len(rows), CHARGE_DENSITY_LIMIT_UC_CM2, nsh, SHANNON_K)
    nb = sum(r["vta_clipped_by_domain"] for r in rows)
    if nb:
        log.warning("%d of %d settings' VTA reaches the outer boundary of the model domain (column "
                    "vta_clipped_by_domain: their volumes and overlaps are lower bounds)", nb, len(rows))
    return rows


def plot_coverage(rows: list[dict], structure: str, path: str | Path, pulse_width_us: float | None = None) -> Path:
    """PNG of the coverage (% of ``structure``) vs amplitude, one line per configuration.

    ``pulse_width_us``: which pulse width to plot (default: the smallest in the rows).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise VtaError("plotting needs matplotlib (pip install matplotlib)") from None
    key = f"{structure}_fraction"
    if not rows or key not in rows[0]:
        raise VtaError(f"the sweep has no coverage of structure {structure!r}")
    pw = min(r["pulse_width_us"] for r in rows) if pulse_width_us is None else float(pulse_width_us)
    sel = [r for r in rows if r["pulse_width_us"] == pw]
    if not sel:
        raise VtaError(f"the sweep has no pulse width {pw:g} us")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        labels = list(dict.fromkeys(r["config"] for r in sel))
        for lab in labels:
            rr = sorted((r for r in sel if r["config"] == lab), key=lambda r: r["amplitude"])
            ax.plot([r["amplitude"] for r in rr], [100 * r[key] for r in rr], marker=".", label=lab)
        unit = "mA" if sel[0]["mode"] == "current" else "V"
        ax.set_xlabel(f"amplitude ({unit})")
        ax.set_ylabel(f"{structure} covered by the VTA (%)")
        ax.set_title(f"{structure}, {pw:g} us")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def tract_thresholds_of(scene, max_amplitude: float) -> TractThresholds | None:
    """Axon-model thresholds of the scene's ``[tracts]`` for sweeps (None without)."""
    setup = scene.tract_setup()
    if setup is None:
        return None
    from ..activation.tract_activation import sweep_thresholds

    return sweep_thresholds(setup, scene.basis, max_amplitude)


def warn_if_signal_ignored(scene, what: str) -> None:
    """Say (stderr) that a scene's ``[signal]`` does not apply to ``what``: its rows are
    quasi-static; time-domain results come from ``vta run``."""
    if getattr(scene, "signal", None) is not None:
        log.warning("the configuration's [signal] is not applied by %s: every row is quasi-static (the "
                    "resistive field at frequency_hz); time-domain results come from vta run", what)


def add_time_domain_columns(scene, spec: SweepSpec, rows: list[dict]) -> None:
    """Add the time-domain columns of the scene's ``[signal]`` to sweep rows (in place):
    ``td_vta_mm3``, ``td_peak_field_V_per_mm``, ``td_peak_current_mA``,
    ``td_peak_voltage_V``, ``td_impedance_ohm``, ``n_solve``. One frequency-domain basis
    per pulse width serves every setting (:func:`vta.timedomain.sweep_td.time_domain_sweep`)."""
    from ..fem.stimulation import Setting
    from ..timedomain.sweep_td import time_domain_sweep

    weights = {c.label: c.weights for c in spec.configs}
    for pw in sorted({r["pulse_width_us"] for r in rows}):
        chosen = [r for r in rows if r["pulse_width_us"] == pw]
        settings = [Setting(r["mode"], {k: r["amplitude"] * w for k, w in weights[r["config"]].items()})
                    for r in chosen]
        for row, td in zip(chosen, time_domain_sweep(scene, settings, pulse_width_us=pw,
                                                     threshold_V_per_mm=chosen[0]["threshold_V_per_mm"])):
            row.update(td)


def sweep_scene(scene, spec: SweepSpec, *, targets: Sequence[str] | None = None, tracts: bool = True,
                supersample: int = 3, time_domain: bool = True) -> list[dict]:
    """Sweep the settings of ``spec`` on a scene's field basis (no re-solve).

    The scene gives everything else: the threshold at each pulse width (fixed, or the
    Astrom 2015 value of ``[vta] fiber_diameter_um``), the structures and the default
    targets (NAc/ALIC on the lead's side; ``targets`` overrides), the lead (contact
    areas), the domain's box, and the ``[tracts]`` axon thresholds.

    Parameters
    ----------
    scene : vta.scene.Scene
    spec : SweepSpec
    targets : sequence of str, optional
    tracts : bool
        Add the tract columns when the scene has ``[tracts]``.
    time_domain : bool
        With a ``[signal]`` in the scene, add the time-domain columns
        (:func:`add_time_domain_columns`: one frequency-domain basis per pulse width).

    Returns
    -------
    list of dict
        One row per setting (see :func:`sweep`).
    """
    chosen = list(targets) if targets is not None else scene.default_targets
    rows = sweep(scene.basis, spec, threshold_V_per_mm=scene.threshold_at, structures=scene.structures,
                 targets=chosen or None, lead=scene.lead, region_mm=scene.region_mm, supersample=supersample,
                 tract_thresholds=tract_thresholds_of(scene, float(max(spec.amplitudes))) if tracts else None)
    if time_domain and getattr(scene, "signal", None) is not None:
        add_time_domain_columns(scene, spec, rows)
    else:
        warn_if_signal_ignored(scene, "this sweep")
    return rows
