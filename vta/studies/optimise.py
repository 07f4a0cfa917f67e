"""Settings optimisation on a solved field basis: the most target coverage within limits.

For one contact configuration (fixed relative weights) and pulse width, every quantity
the limits restrict grows monotonically with the amplitude ``a``: the VTA is the nested
set ``|E_unit| >= thr / a``, so the spill outside the targets, the overlap with any
structure to avoid and the fraction of a tract's fibres above their threshold never
shrink; charge per phase and charge density are linear in ``a``. The target coverage
grows too. Hence the best setting of a configuration is the smallest amplitude that
reaches the largest coverage among the amplitudes that satisfy every limit, and
:func:`optimise` finds it on a fine amplitude grid from the sorted unit responses of
:class:`vta.studies.sweep.ConfigResponse` (no re-solve, no field re-evaluation per amplitude).
The configurations are then ranked by coverage (ties: lower charge per phase first).

The result is exact for the candidate configurations given (monopolar, bipolar and
double-monopolar pairs by default); it does not search continuous current splits
between more contacts. Directional steering is searched on a grid of splits: the
``segments`` and ``segment-split`` kinds of :func:`vta.studies.sweep.standard_configs`
give every segment alone and the cathodic current split between neighbouring segments
of a level in steps of ``split_step`` (0.25 by default; current mode), e.g.::

    configs = standard_configs(scene.lead.model, ["monopolar", "segments", "segment-split"],
                               "current", split_step=0.1)
    ranked = optimise_scene(scene, configs, Limits(max_spill_mm3=50))

(``vta optimise --configs monopolar,segments,segment-split``). Each split is one more
configuration (one field evaluation), so a finer step costs linearly more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..activation.efield import CHARGE_DENSITY_LIMIT_UC_CM2, SHANNON_K, charge_metrics
from ..errors import VtaError
from .sweep import MAX_AMPLITUDE, ContactConfig, TractThresholds, setup_sweep, thresholds_for

__all__ = ["Limits", "optimise", "optimise_scene"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Limits a recommended setting must respect.

    Attributes
    ----------
    max_spill_mm3 : float or None
        Largest VTA volume outside the target structures (mm^3).
    max_overlap_mm3 : mapping of str -> float
        Structures to avoid: largest overlap with the VTA (mm^3) each.
    max_tract_fraction : mapping of str -> float
        Tracts to avoid: largest fraction of their fibres activated (0-1) each.
    max_charge_density_uC_per_cm2 : float or None
        Charge density per phase on any active contact (default 30 uC/cm^2).
    shannon_k : float or None
        Shannon (1992) limit ``log10(D) < k - log10(Q)`` (default k = 1.85); None: off.
    max_amplitude : float or None
        Device limit (mA or V; default the plausibility limit of the mode).
    """

    max_spill_mm3: float | None = None
    max_overlap_mm3: Mapping[str, float] = field(default_factory=dict)
    max_tract_fraction: Mapping[str, float] = field(default_factory=dict)
    max_charge_density_uC_per_cm2: float | None = CHARGE_DENSITY_LIMIT_UC_CM2
    shannon_k: float | None = SHANNON_K
    max_amplitude: float | None = None

    def __post_init__(self) -> None:
        for what, value in (("max_spill_mm3", self.max_spill_mm3),
                            ("max_charge_density_uC_per_cm2", self.max_charge_density_uC_per_cm2),
                            ("max_amplitude", self.max_amplitude)):
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise VtaError(f"limit {what} must be a non-negative number, got {value}")
        for name, value in self.max_overlap_mm3.items():
            if not (np.isfinite(value) and value >= 0):
                raise VtaError(f"overlap limit for {name!r} must be a non-negative volume (mm^3), got {value}")
        for name, value in self.max_tract_fraction.items():
            if not (np.isfinite(value) and 0 <= value <= 1):
                raise VtaError(f"tract limit for {name!r} must be a fraction in [0, 1], got {value}")


def optimise(
    basis,
    configs: Sequence[ContactConfig],
    targets: Sequence[str],
    structures: dict,
    limits: Limits = Limits(),
    *,
    mode: str = "current",
    pulse_widths_us: Sequence[float] = (60.0,),
    threshold_V_per_mm=None,
    fiber_diameter_um: float | None = None,
    lead=None,
    region_mm: np.ndarray | None = None,
    resolution: float = 0.05,
    supersample: int = 3,
    tract_thresholds: TractThresholds | None = None,
    top: int | None = None,
) -> list[dict]:
    """Rank contact configurations by the target coverage they reach within ``limits``.

    Parameters
    ----------
    basis : FieldBasis
    configs : sequence of ContactConfig
        Candidate configurations (e.g. :func:`vta.studies.sweep.standard_configs`,
        with ``segment-split`` for current splits between directional segments).
    targets : sequence of str
        Target structures (names in ``structures``): coverage = summed overlap / summed
        volume.
    structures : dict of str -> Structure
        Targets and structures named in ``limits.max_overlap_mm3``.
    limits : Limits
    mode : str
        ``"current"`` (mA) or ``"voltage"`` (V).
    pulse_widths_us : sequence of float
        Candidate pulse widths (us); each (configuration, pulse width) is ranked.
    threshold_V_per_mm, fiber_diameter_um
        The |E| threshold, as in :func:`vta.studies.sweep.sweep`.
    lead, region_mm, supersample
        As in :func:`vta.studies.sweep.sweep`.
    resolution : float
        Amplitude step of the search (mA or V).
    tract_thresholds : callable, optional
        Per-fibre thresholds of the unit setting (needed for ``limits.max_tract_fraction``;
        tract fractions are also reported).
    top : int, optional
        Keep only the best ``top`` rows.

    Returns
    -------
    list of dict
        Ranked rows (best first): rank, config, active_contacts, pulse_width_us,
        amplitude, target_coverage, per-target overlap/fraction, spill, VTA volume,
        charge per phase and density, the limit that stops a higher amplitude
        (``limited_by``), and ``feasible`` (False when even the smallest amplitude
        breaks a limit; such rows rank last).
    """
    if mode not in MAX_AMPLITUDE:
        raise VtaError(f"mode must be 'current' or 'voltage', got {mode!r}")
    if not configs:
        raise VtaError("optimisation needs at least one contact configuration")
    missing = [t for t in list(targets) + list(limits.max_overlap_mm3) if t not in structures]
    if not targets:
        raise VtaError("optimisation needs at least one target structure")
    if missing:
        raise VtaError(f"unknown structure(s) {missing}; known: {sorted(structures)}")
    if limits.max_tract_fraction and tract_thresholds is None:
        raise VtaError("tract limits need tract thresholds (configure [tracts])")
    if not (np.isfinite(resolution) and resolution > 0):
        raise VtaError(f"amplitude resolution must be positive, got {resolution}")
    a_max = float(limits.max_amplitude if limits.max_amplitude is not None else MAX_AMPLITUDE[mode])
    if a_max <= 0 or a_max > MAX_AMPLITUDE[mode]:
        raise VtaError(f"max_amplitude must be in (0, {MAX_AMPLITUDE[mode]:g}], got {a_max:g}")
    amps = np.arange(1, int(np.floor(a_max / resolution + 1e-9)) + 1) * resolution
    if amps.size == 0:
        raise VtaError(f"amplitude resolution {resolution:g} is above the amplitude limit {a_max:g}")
    pws = np.asarray(pulse_widths_us, float).reshape(-1)
    thr = thresholds_for(pws, threshold_V_per_mm, fiber_diameter_um)
    needed = {n: structures[n] for n in dict.fromkeys(list(targets) + list(limits.max_overlap_mm3))}
    setup = setup_sweep(basis, configs, mode, a_max, float(thr.min()), structures=needed, targets=targets,
                        lead=lead, region_mm=region_mm, supersample=supersample)
    target_volume = sum(setup.structs[t][2] for t in targets)
    if target_volume <= 0:
        raise VtaError(f"the target structures {list(targets)} have no volume in the model domain")

    rows = []
    for resp in setup.responses(basis, configs):
        c, state = resp.config, resp.state
        act_idx = np.array(sorted(int(k) for k in c.weights))
        for pw, t in zip(pws, thr):
            ratio = t / amps
            vta = resp.vta_mm3(ratio)
            over = {n: resp.overlap_mm3(n, ratio) for n in needed}
            covered = sum(over[n] for n in targets)
            spill = np.maximum(vta - covered, 0.0)
            cur = amps[:, None] * state.currents_mA[None, :]
            limit_d = limits.max_charge_density_uC_per_cm2
            q, d, over_d, shannon = charge_metrics(
                cur, np.full((amps.size, 1), pw), setup.areas_mm2[None, :],
                shannon_k=SHANNON_K if limits.shannon_k is None else limits.shannon_k,
                density_limit_uC_cm2=np.inf if limit_d is None else limit_d)
            qa, da = q[:, act_idx].max(axis=1), d[:, act_idx]
            checks: dict[str, np.ndarray] = {}
            if limits.max_spill_mm3 is not None:
                checks["spill"] = spill <= limits.max_spill_mm3
            for n, lim in limits.max_overlap_mm3.items():
                checks[f"{n} overlap"] = over[n] <= lim
            fractions = {}
            if tract_thresholds is not None:
                for n, s in tract_thresholds(c, state, float(pw)).items():
                    s = np.sort(np.asarray(s, float))
                    fractions[n] = np.searchsorted(s, amps, side="right") / max(s.size, 1)
                for n, lim in limits.max_tract_fraction.items():
                    if n not in fractions:
                        raise VtaError(f"unknown tract {n!r}; known: {sorted(fractions)}")
                    checks[f"tract {n}"] = fractions[n] <= lim
            if limit_d is not None:
                checks["charge density"] = ~over_d[:, act_idx].any(axis=1)
            if limits.shannon_k is not None:
                checks["Shannon"] = ~shannon[:, act_idx].any(axis=1)
            ok = np.ones(amps.size, bool)
            for v in checks.values():
                ok &= v
            # every check is monotone in the amplitude: the feasible set is a prefix
            n_ok = int(np.argmin(ok)) if not ok.all() else amps.size
            cov = covered / target_volume
            if n_ok == 0:
                i, feasible = 0, False
                limited_by = ", ".join(k for k, v in checks.items() if not v[0])
            else:
                feasible = True
                best = cov[:n_ok].max()
                i = int(np.argmax(cov[:n_ok] >= best - 1e-12))
                limited_by = "max amplitude" if n_ok == amps.size else \
                    ", ".join(k for k, v in checks.items() if not v[n_ok])
                if i < n_ok - 1 and cov[n_ok - 1] <= cov[i] + 1e-12:
                    limited_by = "coverage saturates"
            row = {
                "config": c.label,
                "active_contacts": c.describe(),
                "mode": mode,
                "pulse_width_us": float(pw),
                "amplitude": float(amps[i]),
                "feasible": feasible,
                "target_coverage": float(cov[i]),
            }
            for n in needed:
                vol = setup.structs[n][2]
                row[f"{n}_overlap_mm3"] = float(over[n][i])
                row[f"{n}_fraction"] = float(over[n][i] / vol) if vol > 0 else 0.0
            row["spill_mm3"] = float(spill[i])
            row["vta_volume_mm3"] = float(vta[i])
            row["vta_clipped_by_domain"] = bool(resp.clipped(ratio[i]))
            for n, f in fractions.items():
                row[f"tract_{n}_fraction"] = float(f[i])
            row["charge_per_phase_uC"] = float(qa[i])
            row["charge_density_uC_per_cm2"] = float(np.nanmax(da[i])) if np.isfinite(da[i]).any() else float("nan")
            row["impedance_ohm"] = float(state.impedance_ohm)
            row["limited_by"] = limited_by
            rows.append(row)
    rows.sort(key=lambda r: (not r["feasible"], -r["target_coverage"], r["charge_per_phase_uC"]))
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    rows = [{"rank": r.pop("rank"), **r} for r in rows]
    if rows and not rows[0]["feasible"]:
        log.warning("no candidate setting satisfies the limits; rows list what each one breaks first")
    return rows[:top] if top else rows


def optimise_scene(scene, configs: Sequence[ContactConfig], limits: Limits = Limits(), *,
                   targets: Sequence[str] | None = None, pulse_widths_us: Sequence[float] | None = None,
                   resolution: float = 0.05, top: int | None = None) -> list[dict]:
    """Rank contact configurations of a scene by target coverage within ``limits``.

    The scene gives the field basis, the structures, the default target (the NAc on the
    lead's side; ``targets`` overrides), the threshold at each pulse width, the mode and
    pulse width of its configuration (``pulse_widths_us`` overrides), the lead, the
    domain's box and the ``[tracts]`` axon thresholds. See :func:`optimise`.

    ``configs`` for a directional lead: ``standard_configs(scene.lead.model, ["segments",
    "segment-split"], split_step=0.25)`` ranks every segment and every split of the
    cathodic current between neighbouring segments (current mode); the configuration's
    label gives the fractions (``"c1:0.75-c2:0.25-"``).
    """
    from .sweep import tract_thresholds_of, warn_if_signal_ignored

    if scene.anatomy is None:
        raise VtaError("optimisation needs an [anatomy] with target structures")
    warn_if_signal_ignored(scene, "the optimiser")
    stim = scene.config.stimulation
    chosen = list(targets) if targets else scene.default_targets[:1]
    a_max = limits.max_amplitude or MAX_AMPLITUDE[stim.mode]
    tract_fn = tract_thresholds_of(scene, a_max)
    return optimise(scene.basis, configs, chosen, scene.structures, limits, mode=stim.mode,
                    pulse_widths_us=list(pulse_widths_us) if pulse_widths_us else [stim.pulse_width_us],
                    threshold_V_per_mm=scene.threshold_at, lead=scene.lead, region_mm=scene.region_mm,
                    resolution=resolution, top=top, tract_thresholds=tract_fn)
