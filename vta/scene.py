"""The Scene: everything one configuration determines, resolved once.

A :class:`Scene` is built from a parsed configuration (:mod:`vta.config`): it places
the lead (tip/direction, a target preset, or a Lead-DBS reconstruction), loads the
anatomy and DTI, builds the conductivity model, chooses the solver path, fixes the
model domain and its bounding box, the default target structures, the activation
threshold at any pulse width, and the one rule for the voxel grid of NIfTI outputs.
Its field basis (one unit solution per contact) is solved - or read from the cache -
on first use and kept.

Every workflow takes a Scene and a setting: :meth:`Scene.simulate` (one setting,
:class:`Simulation`), :func:`vta.studies.sweep.sweep_scene`,
:func:`vta.studies.optimise.optimise_scene`, :func:`vta.views.render.render`, and the
cohort batches. Nothing downstream re-reads the configuration or a summary.json.

Units: mm, V, mA, S/m at the interface (S/mm inside the FEM), V/mm, us.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import __version__
from .activation.efield import (
    astrom_threshold,
    auto_grid,
    charge_metrics,
    field_norm_on_grid,
    grid_clipping_warning,
    structure_coverage,
)
from .anatomy.default import default_anatomy
from .anatomy.dti import load_dti_tensor
from .anatomy.leaddbs import load_leaddbs_reconstruction
from .anatomy.model import Anatomy
from .anatomy.targets import TARGET_PRESETS, placement_for_target
from .anatomy.tissue import ConductivityModel, element_conductivity
from .config import (
    DomainConfig,
    LeadConfig,
    RunConfig,
    check_contacts_exist,
    load_config,
    parse_config,
)
from .errors import ConfigError, VtaError
from .fem.axisym import build_axisymmetric_basis
from .fem.basis import FieldBasis
from .fem.cache import cached_basis, file_digest
from .fem.grid import VoxelGrid
from .fem.mesh import Domain, Encapsulation, LeadMesh, build_mesh, check_placement
from .fem.stimulation import ContactState, Setting, carrying_contacts, monopolar_impedances_ohm, resolve
from .io import to_jsonable
from .leads import LeadPlacement, get_lead
from .notices import collecting

__all__ = ["Scene", "Simulation", "DEFAULT_AF_DIAMETER_UM"]

log = logging.getLogger(__name__)

#: Phases of :meth:`Scene.simulate`, for the progress bar and ``timings_s``.
PHASES = ("mesh+solve", "setting", "vta", "grid", "af-vta", "structures", "tracts", "time-domain")
#: Fibre diameter (um) of the activating-function VTA when neither ``[vta]
#: fiber_diameter_um`` nor ``[tracts] fiber_diameter_um`` gives one (MRG table row).
DEFAULT_AF_DIAMETER_UM = 5.7
#: Radius of the default domain with an anatomy (mm): a grounded sphere centred on the
#: middle of the contacts.
DEFAULT_DOMAIN_RADIUS_MM = 30.0


class _PhaseTimer:
    """Times named phases and drives a progress bar on a terminal."""

    def __init__(self, progress: bool):
        from tqdm.auto import tqdm

        self.timings: dict[str, float] = {}
        self._bar = tqdm(total=len(PHASES), desc="vta run", unit="phase", disable=None if progress else True, leave=False)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._bar.set_postfix_str(name)
        log.info("phase %s", name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - t0
            self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


class Scene:
    """A configuration resolved once: lead, anatomy, tissue, solver path, region,
    targets, thresholds, grid rule, and the (cached) field basis.

    Build it with :meth:`from_toml`, :meth:`from_dict` or :meth:`from_config`.

    Attributes
    ----------
    config : RunConfig
        The parsed configuration, as written.
    lead : LeadConfig
        Lead model and placement (world mm).
    anatomy : vta.anatomy.model.Anatomy or None
    dti : DTI tensor field or None
    conductivity : ConductivityModel
        Per-class conductivities (S/m) at the stimulation frequency.
    domain : DomainConfig
        The model domain (``[domain]``, or a 30 mm grounded sphere around the contacts).
    method : str
        ``"axisymmetric"`` or ``"3d"``.
    region_mm : ndarray, shape (2, 3)
        World bounding box of the domain (mm).
    default_targets : list of str
        NAc and ALIC on the lead's side, where the anatomy has them.
    """

    def __init__(self, config: RunConfig, *, method: str | None = None):
        self.config = config
        self.anatomy = _load_anatomy(config)
        self.lead = _resolve_lead(config, self.anatomy)
        check_contacts_exist(config.stimulation, self.lead.model)
        if self.anatomy is not None:
            _check_lead_in_anatomy(self.lead, self.anatomy)
        self.dti = _load_dti(config)
        self.domain = config.domain if config.domain is not None else _default_domain(self.lead)
        self.conductivity = _conductivity_model(config)
        self.method = _choose_method(config, self.lead, self.domain, method or config.solver.method)
        self.region_mm = _domain_box(self.domain)
        self.default_targets = self._default_targets()
        self.threshold_V_per_mm = self.threshold_at(config.stimulation.pulse_width_us)
        if config.tracts is not None:
            _check_mrg_diameter(config.tracts.fiber_diameter_um, "tracts.fiber_diameter_um")
        self.af_diameter_um = self._af_diameter()
        self.signal = _signal_config(config)
        check_placement(self.lead.model, self.lead.placement, self.mesh_domain,
                        config.tissue.encapsulation_thickness_mm)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: RunConfig, *, method: str | None = None) -> "Scene":
        """Resolve a parsed configuration; ``method`` overrides ``[solver] method``."""
        return cls(config, method=method)

    @classmethod
    def from_toml(cls, path: str | Path, *, method: str | None = None) -> "Scene":
        """Read, validate and resolve a TOML configuration file."""
        return cls(load_config(path), method=method)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>", *, method: str | None = None) -> "Scene":
        """Validate and resolve a configuration mapping (as TOML would give it)."""
        return cls(parse_config(data, source), method=method)

    def with_config(self, data: dict) -> "Scene":
        """The scene of another configuration mapping (same source), keeping this
        scene's solved basis when the new one would be the same (a changed setting,
        pulse width or threshold): no re-solve, no cache read."""
        scene = Scene.from_dict(data, self.config.source, method=self.method)
        if "basis" in self.__dict__ and scene.basis_key() == self.basis_key():
            scene.__dict__["basis"] = self.__dict__["basis"]
        return scene

    # ------------------------------------------------------------------ facts
    @property
    def mesh_domain(self) -> Domain:
        """The domain as the mesher takes it."""
        d = self.domain
        return Domain(d.shape, d.center_mm, d.radius_mm, d.size_mm)

    @property
    def structures(self) -> dict:
        """Named structures of the anatomy (empty without one)."""
        return {} if self.anatomy is None else self.anatomy.structures

    @property
    def sigma_min_S_per_m(self) -> float:
        """The lower of the grey- and white-matter conductivities (S/m): the conductivity
        that the voxel-grid and tract search radii assume (larger VTAs)."""
        return min(self.conductivity.wm_S_per_m, self.conductivity.gm_S_per_m)

    def threshold_at(self, pulse_width_us: float) -> float:
        """The |E| activation threshold (V/mm) at a pulse width (us): the fixed
        ``threshold_V_per_mm``, or the Astrom 2015 threshold of ``fiber_diameter_um``."""
        vta = self.config.vta
        if vta.fiber_diameter_um is None:
            return float(vta.threshold_V_per_mm)
        try:
            return astrom_threshold(vta.fiber_diameter_um, pulse_width_us)
        except VtaError as exc:
            raise ConfigError("vta.fiber_diameter_um", str(exc)) from None

    def voxel_grid(self, currents_mA: np.ndarray, threshold_V_per_mm: float | None = None) -> VoxelGrid:
        """The voxel grid of the NIfTI outputs for contact currents (mA): around the
        contacts that carry current (all, if none), wide enough for the VTA of a point
        source of the total current in the lower of GM/WM conductivities, or
        ``[output] grid_margin_mm``, and never past the domain."""
        lead, out = self.lead, self.config.output
        currents = np.asarray(currents_mA, float)
        carrying = carrying_contacts(currents)
        centers = np.array([lead.placement.contact_center_mm(lead.model, k) for k in carrying])
        thr = self.threshold_V_per_mm if threshold_V_per_mm is None else threshold_V_per_mm
        return auto_grid(centers, currents[carrying], self.sigma_min_S_per_m, thr, out.grid_spacing_mm,
                         out.grid_margin_mm, bounds_mm=self.region_mm)

    def signal_at(self, pulse_width_us: float):
        """The ``[signal]`` with another pulse width (us), e.g. for a sweep over pulse
        widths; None without ``[signal]``."""
        return _signal_config(self.config, pulse_width_us)

    def setting(self, contacts: dict[int, float] | None = None, mode: str | None = None) -> Setting:
        """A stimulation setting: the configuration's, or other amplitudes (mA or V)."""
        stim = self.config.stimulation
        return Setting(mode or stim.mode, dict(stim.contacts if contacts is None else contacts))

    # ------------------------------------------------------------------ the basis
    @cached_property
    def basis(self) -> FieldBasis:
        """The field basis (solved on first use, or read from the basis cache)."""
        return self._build_basis()

    def _build_basis(self) -> FieldBasis:
        lead, placement, tissue, solver = self.lead.model, self.lead.placement, self.config.tissue, self.config.solver
        outer = "ground" if self.domain.outer_grounded else "insulating"
        if self.method == "axisymmetric":
            return build_axisymmetric_basis(
                lead, placement, self.domain.center_mm, self.domain.radius_mm, tissue.conductivity_S_per_m,
                outer=outer, encapsulation_thickness_mm=tissue.encapsulation_thickness_mm,
                encapsulation_sigma_S_per_m=tissue.encapsulation_conductivity_S_per_m,
                preset=solver.preset, order=solver.order,
            )
        def build() -> FieldBasis:
            from .fem.solve import (
                solve_unit_fields,  # numba: imported when a 3D solve is needed
            )

            lead_mesh = self.lead_mesh()
            basis = solve_unit_fields(lead_mesh, self.element_sigma_S_per_mm(lead_mesh.mesh), lead.n_contacts,
                                      outer=outer, order=solver.order, solver=solver.linear_solver)
            basis.timings = {"mesh": lead_mesh.build_time_s, **basis.timings}
            basis.mesh_info["preset"] = solver.preset
            return basis

        return cached_basis(self.basis_key(), build)

    def lead_mesh(self) -> LeadMesh:
        """The 3D tetrahedral mesh of the scene (the domain minus the lead, with the
        encapsulation layer; read from its lead-local template when one exists, see
        :mod:`vta.fem.mesh_templates`)."""
        tissue = self.config.tissue
        return build_mesh(self.lead.model, self.lead.placement, self.mesh_domain,
                          Encapsulation(tissue.encapsulation_thickness_mm, tissue.encapsulation_conductivity_S_per_m),
                          preset=self.config.solver.preset)

    def basis_key(self) -> dict:
        """Everything a 3D field basis depends on (not the setting): the cache key."""
        r = self.resolved()
        key = {"method": self.method, "lead": r["lead"], "domain": r["domain"], "tissue": r["tissue"],
               "conductivity": self.conductivity.to_dict(), "solver": r["solver"]}
        if self.anatomy is not None:
            digest = hashlib.sha256(np.ascontiguousarray(self.anatomy.tissue.data).tobytes())
            digest.update(np.asarray(self.anatomy.tissue.affine, float).tobytes())
            key["anatomy_tissue"] = digest.hexdigest()
            if self.config.anatomy.dti is not None:
                key["dti"] = {**self.config.anatomy.dti, "path": file_digest(self.config.anatomy.dti["path"])}
        return key

    def element_sigma_S_per_mm(self, mesh, with_dti: bool = True) -> np.ndarray:
        """Conductivity of every tetrahedron of ``mesh`` (S/mm; (M,) or (M, 3, 3) with
        DTI; ``with_dti=False``: the isotropic conductivities the elements would have
        without the DTI)."""
        n = mesh.t.shape[1]
        encapsulated = np.zeros(n, dtype=bool)
        if mesh.subdomains and len(mesh.subdomains.get("encapsulation", [])):
            encapsulated[mesh.subdomains["encapsulation"]] = True
        dti_cfg = self.config.anatomy.dti if self.config.anatomy is not None else None
        centroids = mesh.p[:, mesh.t].mean(axis=1).T
        return element_conductivity(
            centroids, self.anatomy, self.conductivity, self.dti if with_dti else None,
            encapsulation_mask=encapsulated,
            encapsulation_sigma=self.config.tissue.encapsulation_conductivity_S_per_m,
            dti_mapping=dti_cfg["mapping"] if dti_cfg is not None else "normalized",
        )

    def element_anisotropy(self, mesh) -> np.ndarray | None:
        """Dimensionless anisotropy of every tetrahedron of ``mesh`` with DTI, (M, 3, 3):
        its conductivity tensor divided by the isotropic conductivity it would have
        without the DTI (the identity where the DTI does not reach, e.g. the
        encapsulation); None without DTI. The time-domain path scales it by each class's
        complex conductivity at every frequency (the anisotropy is taken as frequency
        independent), so that resistive tissue reproduces the quasi-static tensors."""
        if self.dti is None:
            return None
        tensors = np.asarray(self.element_sigma_S_per_mm(mesh), dtype=float)
        iso = np.asarray(self.element_sigma_S_per_mm(mesh, with_dti=False), dtype=float)
        if tensors.ndim == 1:
            tensors = tensors[:, None, None] * np.eye(3)
        return tensors / iso[:, None, None]

    # ------------------------------------------------------------------ workflows
    def simulate(self, setting: Setting | None = None, progress: bool = False) -> "Simulation":
        """Compute one setting (default: the configuration's) without writing anything.

        Every warning logged meanwhile (and inside an enclosing
        :func:`vta.notices.collecting` block) is kept in :attr:`Simulation.warnings`.
        """
        with collecting() as messages:
            sim = _simulate(self, setting or self.setting(), progress)
            sim.warnings = list(messages)
        return sim

    def tract_setup(self):
        """What tract activation needs from the scene (None without ``[tracts]``)."""
        if self.config.tracts is None:
            return None
        from .activation.tract_activation import TractSetup

        return TractSetup(self.config.tracts, self.lead, self.anatomy, self.sigma_min_S_per_m)

    # ------------------------------------------------------------------ plain data
    def resolved(self) -> dict:
        """Plain-data form of the resolved configuration (summary.json ``config``)."""
        c, lead = self.config, self.lead.model
        vta = {"threshold_V_per_mm": self.threshold_V_per_mm, "fiber_diameter_um": c.vta.fiber_diameter_um,
               "threshold_source": c.vta.threshold_source, "method": c.vta.method}
        return {
            "lead": {
                "model": lead.name, "levels": list(lead.levels), "diameter_mm": lead.diameter_mm,
                "contact_length_mm": lead.contact_length_mm, "gaps_mm": list(lead.gaps_mm),
                "tip_length_mm": lead.tip_length_mm, "tip_is_contact": lead.tip_is_contact,
                **self.lead.placement.to_dict(),
            },
            "anatomy": None if c.anatomy is None else c.anatomy.describe(),
            "domain": to_jsonable(asdict(self.domain)),
            "tissue": to_jsonable(asdict(c.tissue)),
            "stimulation": {**to_jsonable(asdict(c.stimulation)),
                            "contacts": {str(k): v for k, v in c.stimulation.contacts.items()}},
            "vta": vta,
            "solver": to_jsonable(asdict(c.solver)),
            "output": to_jsonable(asdict(c.output)),
            "tracts": None if c.tracts is None else {
                **{k: v for k, v in asdict(c.tracts).items() if k != "files"},
                "files": [{"path": str(f.path), "name": f.name,
                           "offset_mm": None if f.offset_mm is None else list(f.offset_mm)} for f in c.tracts.files],
            },
        }

    # ------------------------------------------------------------------ helpers
    def _default_targets(self) -> list[str]:
        side = self.lead.hemisphere
        names = []
        for prefix in ("NAc", "ALIC"):
            names += [n for n in self.structures if n.lower() == f"{prefix}_{side}".lower()]
        return names

    def _af_diameter(self) -> float:
        """Fibre diameter (um) of the activating-function VTA: ``[vta] fiber_diameter_um``,
        else ``[tracts] fiber_diameter_um``, else 5.7 um; an MRG table row."""
        c = self.config
        if c.vta.fiber_diameter_um is not None:
            diam, key = c.vta.fiber_diameter_um, "vta.fiber_diameter_um"
        elif c.tracts is not None:
            diam, key = c.tracts.fiber_diameter_um, "tracts.fiber_diameter_um"
        else:
            diam, key = DEFAULT_AF_DIAMETER_UM, None
        if c.vta.method == "activating_function" and key is not None:
            _check_mrg_diameter(diam, key, why=" (the activating-function VTA is calibrated with the MRG model)")
        return float(diam)


# ----------------------------------------------------------------------------- resolution


def _signal_config(config: RunConfig, pulse_width_us: float | None = None):
    """The validated ``[signal]`` table (:func:`vta.timedomain.signal.parse_signal`), or
    None; pulse width (unless given) and frequency default to ``[stimulation]``'s."""
    if config.signal is None:
        return None
    from .timedomain.signal import parse_signal

    base = Path(config.source).parent if config.source != "<dict>" else Path.cwd()
    stim = config.stimulation
    pw = stim.pulse_width_us if pulse_width_us is None else float(pulse_width_us)
    return parse_signal(config.signal, base, pulse_width_us=pw, frequency_hz=stim.frequency_hz)


def _load_anatomy(config: RunConfig):
    if config.anatomy is None:
        return None

    a = config.anatomy
    if a.is_default:
        return default_anatomy("aal3" if a.atlas == "default-aal3" else "hcpex")
    return Anatomy.from_files(**a.files)


def _load_dti(config: RunConfig):
    if config.anatomy is None or config.anatomy.dti is None:
        return None
    return load_dti_tensor(config.anatomy.dti["path"], order=config.anatomy.dti["order"])


def _resolve_lead(config: RunConfig, anatomy) -> LeadConfig:
    spec = config.lead
    if spec.placement is not None:
        return LeadConfig(spec.model, spec.placement)
    rotation = 0.0 if spec.rotation_deg is None else spec.rotation_deg
    if spec.target is not None:
        if spec.target not in TARGET_PRESETS:
            raise ConfigError("lead.target", f"must be one of {', '.join(repr(t) for t in TARGET_PRESETS)}, "
                                             f"got {spec.target!r}")
        try:
            placement = placement_for_target(spec.target, spec.model, anatomy, rotation_deg=rotation, align=spec.align)
        except VtaError as exc:
            raise ConfigError("lead.target", str(exc)) from None
        return LeadConfig(spec.model, placement)
    _check_spaces(spec.space, config.anatomy)
    placement, name = load_leaddbs_reconstruction(spec.reconstruction, side=spec.side, space=spec.space,
                                                  lead=spec.model)
    model = spec.model
    if model is None:
        if name is None:
            raise ConfigError("lead.model", f"'{spec.reconstruction}' names no catalogue lead; set lead.model")
        model = get_lead(name)
    if spec.rotation_deg is not None:
        placement = LeadPlacement(placement.tip_mm, placement.direction, spec.rotation_deg)
    return LeadConfig(model, placement)


#: The template of the default anatomy (nilearn's MNI152 2009 files).
DEFAULT_TEMPLATE = "MNI152 ICBM 2009a symmetric (nilearn)"


def _check_spaces(lead_space: str, anatomy) -> None:
    """A reconstruction must be in the anatomy's coordinate space: native or scrf
    coordinates against the MNI default anatomy would put the lead somewhere else in the
    brain (silently: the VTA lands in whatever structure lies there)."""
    anatomy_space = None if anatomy is None else anatomy.space
    if anatomy_space is not None and anatomy_space != lead_space:
        where = "the default anatomy" if anatomy.is_default else "[anatomy] (space = ...)"
        raise ConfigError("lead.space", f"the Lead-DBS reconstruction is read in {lead_space} space but "
                                        f"{where} is in {anatomy_space} space; use space = \"{anatomy_space}\" "
                                        f"or give anatomy files in {lead_space} space")


def coordinate_spaces(config: RunConfig) -> dict:
    """The coordinate space of every input and output of a run (summary.json
    ``coordinate_space``): ``"mni"``, ``"native"``, ``"scrf"`` or ``"unspecified"`` (user
    anatomy without ``space``, or a homogeneous domain in the lead's own frame)."""
    anatomy = config.anatomy
    anatomy_space = None if anatomy is None else anatomy.space
    lead_space = config.lead.space if config.lead.reconstruction is not None else anatomy_space
    space = anatomy_space or lead_space or "unspecified"
    return {
        "anatomy": None if anatomy is None else (anatomy_space or "unspecified"),
        "template": DEFAULT_TEMPLATE if anatomy is not None and anatomy.is_default else None,
        "lead": lead_space or "unspecified",
        "outputs": space,
        "nifti_xform_code": 4 if space == "mni" else 2,
    }


def _check_lead_in_anatomy(lead: LeadConfig, anatomy) -> None:
    centres = np.array([lead.placement.contact_center_mm(lead.model, c.index) for c in lead.model.contacts()])
    inside = anatomy.contains(centres)
    if not inside.all():
        bad = int(np.flatnonzero(~inside)[0])
        lo, hi = anatomy.bounds_mm()
        raise ConfigError(
            "lead",
            f"contact {bad} at {np.round(centres[bad], 1).tolist()} mm lies outside the anatomy "
            f"(x {lo[0]:.0f}..{hi[0]:.0f}, y {lo[1]:.0f}..{hi[1]:.0f}, z {lo[2]:.0f}..{hi[2]:.0f} mm)",
        )


def _default_domain(lead: LeadConfig) -> DomainConfig:
    """A grounded sphere centred on the middle of the contacts (with anatomy)."""
    ext = lead.model.level_extents_mm()
    middle = 0.5 * (ext[0][0] + ext[-1][1])
    center = lead.placement.to_world(np.array([0.0, 0.0, middle]))
    return DomainConfig("sphere", center, DEFAULT_DOMAIN_RADIUS_MM, None, "ground")


def _domain_box(domain: DomainConfig) -> np.ndarray:
    """World bounding box of the domain (mm), shape (2, 3)."""
    half = np.full(3, domain.radius_mm) if domain.shape == "sphere" else 0.5 * np.asarray(domain.size_mm)
    return np.array([domain.center_mm - half, domain.center_mm + half])


def _conductivity_model(config: RunConfig) -> ConductivityModel:
    tissue = config.tissue
    if config.anatomy is None:
        return ConductivityModel.homogeneous(tissue.conductivity_S_per_m)
    try:
        model = ConductivityModel.preset(tissue.model, config.stimulation.frequency_hz,
                                         background=tissue.conductivity_S_per_m)
    except VtaError as exc:
        raise ConfigError("tissue.model", str(exc)) from None
    if not tissue.class_S_per_m:
        return model
    given = ", ".join(f"{name} {value:g}" for name, value in tissue.class_S_per_m.items())
    return replace(model, **{f"{name.lower()}_S_per_m": value for name, value in tissue.class_S_per_m.items()},
                   name=f"{model.name} + [tissue] values", source=f"{model.source}; [tissue] {given} S/m")


def _choose_method(config: RunConfig, lead: LeadConfig, domain: DomainConfig, requested: str) -> str:
    """``"axisymmetric"`` when the case is exactly axisymmetric (ring contacts,
    homogeneous isotropic tissue, a sphere centred on the lead axis), else ``"3d"``;
    ``requested`` ``"3d"``/``"axisymmetric"`` forces a choice (an impossible
    ``"axisymmetric"`` is an error)."""
    reasons = []
    if config.anatomy is not None:
        reasons.append("the tissue is heterogeneous (anatomy)")
    if not lead.model.is_axisymmetric:
        reasons.append(f"'{lead.model.name}' has directional segments")
    if domain.shape != "sphere":
        reasons.append("the domain is not a sphere")
    else:
        offset = lead.placement.to_local(domain.center_mm)
        if math.hypot(offset[0], offset[1]) > 1e-6:
            reasons.append("the domain centre is off the lead axis")
    if requested == "3d":
        return "3d"
    if requested == "axisymmetric":
        if reasons:
            raise VtaError("solver.method = 'axisymmetric' is impossible: " + "; ".join(reasons))
        return "axisymmetric"
    return "3d" if reasons else "axisymmetric"


def _check_mrg_diameter(diam: float, key: str, why: str = "") -> None:
    from .activation.axons import MRG_DIAMETERS_UM

    if not any(abs(diam - d) < 1e-6 for d in MRG_DIAMETERS_UM):
        raise ConfigError(key, f"must be one of the MRG table diameters "
                               f"{', '.join(f'{d:g}' for d in MRG_DIAMETERS_UM)} um{why}, got {diam:g}")


# ----------------------------------------------------------------------------- simulation


@dataclass
class Simulation:
    """One simulated setting of a scene (nothing written yet).

    Attributes
    ----------
    scene : Scene
    setting : Setting
    state : ContactState
        Contact potentials (V) and currents (mA) of the setting, resolved on ``G``.
    impedances_ohm : ndarray (K,)
        Monopolar impedance of every contact (ohm).
    vta_volume_mm3 : float
        Mesh-integrated VTA (mm^3).
    clipped_by_domain : bool
        |E| reaches the threshold on the outer boundary: the domain cuts the VTA off.
    vta_grid, af_grid : VtaGrid or None
        |E| (and the activating function) with the VTA masks on the output voxel grid.
    clipped_by_grid : bool or None
    structures : dict
        Per structure: overlap (mm^3), fraction, volume.
    tracts : list of TractResult
    af_info : dict or None
    timings_s : dict
    warnings : list of str
    """

    scene: Scene
    setting: Setting
    state: ContactState
    impedances_ohm: np.ndarray
    vta_volume_mm3: float
    clipped_by_domain: bool
    vta_grid: Any = None
    clipped_by_grid: bool | None = None
    structures: dict = field(default_factory=dict)
    tracts: list = field(default_factory=list)
    af_grid: Any = None
    af_info: dict | None = None
    time_domain: Any = None
    timings_s: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @property
    def basis(self) -> FieldBasis:
        """The scene's field basis."""
        return self.scene.basis

    @property
    def potentials_V(self) -> np.ndarray:
        """Contact potentials (V) of the setting: the weights of the unit solutions."""
        return self.state.potentials_V

    @property
    def threshold_V_per_mm(self) -> float:
        return self.scene.threshold_V_per_mm

    def contact_table(self) -> dict:
        """Per contact: potential, current, impedance, area, charge and density, centre."""
        scene, state = self.scene, self.state
        lead, pw = scene.lead.model, scene.config.stimulation.pulse_width_us
        table = {}
        for c in lead.contacts():
            k = c.index
            charge_uC, density, _, _ = charge_metrics(state.currents_mA[k], pw, c.area_mm2)
            table[str(k)] = {
                "active": k in self.setting.amplitudes,
                "potential_V": float(state.potentials_V[k]),
                "current_mA": float(state.currents_mA[k]),
                "monopolar_impedance_ohm": float(self.impedances_ohm[k]),
                "area_mm2": c.area_mm2,
                "charge_per_phase_uC": float(charge_uC),
                "charge_density_uC_per_cm2": float(density),
                "center_mm": scene.lead.placement.contact_center_mm(lead, k).tolist(),
            }
        return table

    def summary(self) -> dict:
        """The summary.json content (without ``outputs`` and ``resources``)."""
        basis, scene = self.basis, self.scene
        numeric = {k: v for k, v in basis.timings.items() if isinstance(v, (int, float))}
        solver_info = {k: v for k, v in basis.timings.items() if not isinstance(v, (int, float))}
        return {
            "version": __version__,
            "vta_volume_mm3": self.vta_volume_mm3,
            "vta_clipped_by_domain": self.clipped_by_domain,
            "vta_grid_volume_mm3": None if self.vta_grid is None else self.vta_grid.volume_mm3,
            "vta_clipped_by_grid": self.clipped_by_grid,
            "threshold_V_per_mm": scene.threshold_V_per_mm,
            "impedance_ohm": self.state.impedance_ohm,
            "ground_current_mA": self.state.ground_current_mA,
            "contacts": self.contact_table(),
            "structures": self.structures,
            "tracts": {r.placed.name: r.summary(scene.config.tracts) for r in self.tracts},
            **({"activating_function_vta": self.af_info} if self.af_info is not None else {}),
            "field_max_on_grid_V_per_mm": None if self.vta_grid is None else float(self.vta_grid.field_norm_V_per_mm.max()),
            "method": scene.method,
            "mesh": {**basis.mesh_info, **({"solver": solver_info} if solver_info else {})},
            "timings_s": {**numeric, **self.timings_s},
            "config": scene.resolved(),
            "coordinate_space": coordinate_spaces(scene.config),
            **({"time_domain": self.time_domain.summary(None if self.vta_grid is None else self.vta_grid.volume_mm3)}
               if self.time_domain is not None else {}),
            "warnings": list(self.warnings),
        }


def _clipping_warning(basis: FieldBasis, weights_V: np.ndarray, threshold: float) -> bool:
    """Warn (and return True) when |E| reaches the threshold on the domain boundary."""
    edge = basis.boundary_field_max(weights_V)
    if edge >= threshold:
        log.warning("the VTA reaches the outer boundary of the model domain (|E| up to %.3g V/mm there, threshold "
                    "%.3g V/mm): the VTA volume and overlaps are cut off by the domain; enlarge [domain] or lower "
                    "the amplitude", edge, threshold)
        return True
    return False


def _simulate(scene: Scene, setting: Setting, progress: bool) -> Simulation:
    t_start = time.perf_counter()
    timer = _PhaseTimer(progress)
    config = scene.config
    try:
        with timer.phase("mesh+solve"):
            basis = scene.basis
        with timer.phase("setting"):
            state = resolve(setting, basis.conductance_S, basis.outer_grounded)
            impedances = monopolar_impedances_ohm(basis.conductance_S, basis.outer_grounded)
        threshold = scene.threshold_V_per_mm
        with timer.phase("vta"):
            volume = float(basis.vta_volume_mm3(state.potentials_V, threshold))
            clipped = _clipping_warning(basis, state.potentials_V, threshold)
        sim = Simulation(scene, setting, state, impedances, volume, clipped)
        if config.output.nifti or config.vta.method == "activating_function":
            with timer.phase("grid"):
                grid = scene.voxel_grid(state.currents_mA)
                sim.vta_grid = field_norm_on_grid(basis, state.potentials_V, grid, threshold)
                sim.clipped_by_grid = grid_clipping_warning(sim.vta_grid, clipped)
        if scene.anatomy is not None:
            with timer.phase("structures"):
                sim.structures = structure_coverage(basis, state.potentials_V, threshold, scene.structures,
                                                    scene.region_mm)
        if config.vta.method == "activating_function" and sim.vta_grid is not None:
            from .activation.af_vta import af_vta

            with timer.phase("af-vta"):
                recharge = config.tracts.recharge if config.tracts is not None else "passive"
                sim.af_grid, sim.af_info = af_vta(basis, state.potentials_V, sim.vta_grid.grid, volume,
                                                  fiber_diameter_um=scene.af_diameter_um,
                                                  pulse_width_us=config.stimulation.pulse_width_us, recharge=recharge)
        if config.tracts is not None:
            from .activation.tract_activation import tract_activation

            with timer.phase("tracts"):
                sim.tracts = tract_activation(scene.tract_setup(), basis, state, config.stimulation.pulse_width_us)
        if scene.signal is not None:
            from .timedomain.run import simulate_time_domain

            with timer.phase("time-domain"):
                sim.time_domain = simulate_time_domain(scene, setting, None if sim.vta_grid is None
                                                       else sim.vta_grid.grid)
    finally:
        timer.close()
    sim.timings_s = {k: v for k, v in timer.timings.items() if k != "mesh+solve"}
    sim.timings_s["total"] = time.perf_counter() - t_start
    return sim
