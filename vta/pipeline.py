"""One `vta run`: configuration -> mesh -> unit solutions -> setting -> VTA -> outputs."""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import __version__
from .activation.efield import auto_grid, charge_metrics, field_norm_on_grid, grid_clipping_warning, structure_coverage
from .config import RunConfig
from .errors import VtaError
from .io import OutputTransaction, os_error
from .notices import collecting
from .fem.stimulation import ContactState, Setting, monopolar_impedances_ohm, resolve

__all__ = ["Simulation", "build_basis", "choose_method", "run", "run_simulation", "simulate"]

log = logging.getLogger(__name__)

PHASES = ("mesh+solve", "setting", "vta", "grid", "af-vta", "structures", "tracts")


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


def choose_method(config: RunConfig) -> str:
    """``"axisymmetric"`` when the case is exactly axisymmetric, else ``"3d"``.

    Axisymmetric needs ring-only contacts, homogeneous isotropic tissue and a spherical
    domain centred on the lead axis. ``solver.method`` forces a choice; forcing
    ``"axisymmetric"`` on a case that is not is an error.
    """
    lead, placement, domain = config.lead.model, config.lead.placement, config.domain
    reasons = []
    if config.anatomy is not None:
        reasons.append("the tissue is heterogeneous (anatomy)")
    if not lead.is_axisymmetric:
        reasons.append(f"'{lead.name}' has directional segments")
    if domain.shape != "sphere":
        reasons.append("the domain is not a sphere")
    else:
        offset = placement.to_local(domain.center_mm)
        if math.hypot(offset[0], offset[1]) > 1e-6:
            reasons.append("the domain centre is off the lead axis")
    if config.solver.method == "3d":
        return "3d"
    if config.solver.method == "axisymmetric":
        if reasons:
            raise VtaError("solver.method = 'axisymmetric' is impossible: " + "; ".join(reasons))
        return "axisymmetric"
    return "3d" if reasons else "axisymmetric"


def build_basis(config: RunConfig, method: str | None = None):
    """Mesh the scene and solve one unit solution per contact.

    Returns
    -------
    FieldBasis
        ``AxisymmetricBasis`` or ``TetFieldBasis`` (see ``docs/architecture.md``), with a
        ``timings`` dict of its own phases (s).
    """
    method = method or choose_method(config)
    lead, placement, domain, tissue, solver = (
        config.lead.model,
        config.lead.placement,
        config.domain,
        config.tissue,
        config.solver,
    )
    outer = "ground" if domain.outer_grounded else "insulating"
    from .fem.mesh import Domain, check_placement

    check_placement(lead, placement, Domain(domain.shape, domain.center_mm, domain.radius_mm, domain.size_mm),
                    tissue.encapsulation_thickness_mm)
    if method == "axisymmetric":
        from .fem.axisym import build_axisymmetric_basis

        return build_axisymmetric_basis(
            lead,
            placement,
            domain.center_mm,
            domain.radius_mm,
            tissue.conductivity_S_per_m,
            outer=outer,
            encapsulation_thickness_mm=tissue.encapsulation_thickness_mm,
            encapsulation_sigma_S_per_m=tissue.encapsulation_conductivity_S_per_m,
            preset=solver.preset,
            order=solver.order,
        )
    from .fem.cache import cached_basis

    def build():
        from .fem.mesh import Encapsulation, build_mesh
        from .fem.solve import solve_unit_fields

        lead_mesh = build_mesh(
            lead,
            placement,
            Domain(domain.shape, domain.center_mm, domain.radius_mm, domain.size_mm),
            Encapsulation(tissue.encapsulation_thickness_mm, tissue.encapsulation_conductivity_S_per_m),
            preset=solver.preset,
        )
        sigma = element_sigma_S_per_mm(config, lead_mesh.mesh)
        basis = solve_unit_fields(
            lead_mesh,
            sigma,
            lead.n_contacts,
            outer=outer,
            order=solver.order,
            solver=solver.linear_solver,
        )
        basis.timings = {"mesh": lead_mesh.build_time_s, **basis.timings}
        basis.mesh_info["preset"] = solver.preset
        return basis

    return cached_basis(_basis_key(config, method), build)


def _basis_key(config: RunConfig, method: str) -> dict:
    """Everything a 3D field basis depends on (not the stimulation setting)."""
    import hashlib

    r = config.resolved()
    key = {
        "method": method,
        "lead": r["lead"],
        "domain": r["domain"],
        "tissue": r["tissue"],
        "conductivity": conductivity_model(config).to_dict(),
        "solver": r["solver"],
    }
    if config.anatomy is not None:
        anatomy = config.anatomy.load()
        digest = hashlib.sha256(np.ascontiguousarray(anatomy.tissue.data).tobytes())
        digest.update(np.asarray(anatomy.tissue.affine, float).tobytes())
        key["anatomy_tissue"] = digest.hexdigest()
        if config.anatomy.dti is not None:
            from .fem.cache import file_digest

            key["dti"] = {**config.anatomy.dti, "path": file_digest(config.anatomy.dti["path"])}
    return key


def conductivity_model(config: RunConfig):
    """The per-class conductivity model (S/m) of a configuration."""
    from .anatomy.tissue import ConductivityModel

    tissue = config.tissue
    if config.anatomy is None:
        return ConductivityModel.homogeneous(tissue.conductivity_S_per_m)
    return ConductivityModel.preset(tissue.model, config.stimulation.frequency_hz, background=tissue.conductivity_S_per_m)


def element_sigma_S_per_mm(config: RunConfig, mesh) -> np.ndarray:
    """Conductivity of every tetrahedron (S/mm; (M,) or (M, 3, 3) with DTI)."""
    from .anatomy.tissue import element_conductivity

    n = mesh.t.shape[1]
    encapsulated = np.zeros(n, dtype=bool)
    if mesh.subdomains and len(mesh.subdomains.get("encapsulation", [])):
        encapsulated[mesh.subdomains["encapsulation"]] = True
    anatomy = dti = None
    mapping = "normalized"
    if config.anatomy is not None:
        anatomy = config.anatomy.load()
        dti = config.anatomy.load_dti()
        if config.anatomy.dti is not None:
            mapping = config.anatomy.dti["mapping"]
    centroids = mesh.p[:, mesh.t].mean(axis=1).T
    return element_conductivity(
        centroids,
        anatomy,
        conductivity_model(config),
        dti,
        encapsulation_mask=encapsulated,
        encapsulation_sigma=config.tissue.encapsulation_conductivity_S_per_m,
        dti_mapping=mapping,
    )


def _contact_table(config: RunConfig, state: ContactState, impedances_ohm: np.ndarray) -> dict:
    lead = config.lead.model
    table = {}
    for c in lead.contacts():
        k = c.index
        charge_uC, density, _, _ = charge_metrics(state.currents_mA[k], config.stimulation.pulse_width_us, c.area_mm2)
        table[str(k)] = {
            "active": k in config.stimulation.contacts,
            "potential_V": float(state.potentials_V[k]),
            "current_mA": float(state.currents_mA[k]),
            "monopolar_impedance_ohm": float(impedances_ohm[k]),
            "area_mm2": c.area_mm2,
            "charge_per_phase_uC": float(charge_uC),
            "charge_density_uC_per_cm2": float(density),
            "center_mm": config.lead.placement.contact_center_mm(lead, k).tolist(),
        }
    return table


def _domain_box(config: RunConfig) -> np.ndarray:
    """World bounding box of the mesh domain (mm), shape (2, 3)."""
    d = config.domain
    half = np.full(3, d.radius_mm) if d.shape == "sphere" else 0.5 * np.asarray(d.size_mm)
    return np.array([d.center_mm - half, d.center_mm + half])


@dataclass
class Simulation:
    """Everything one simulated setting produced (nothing written yet).

    Attributes
    ----------
    summary : dict
        The summary.json content (without ``outputs``).
    basis : FieldBasis
    vta_grid : VtaGrid or None
    tracts : list of TractResult
        Per configured tract: the placed axons and their threshold factors.
    af_grid : VtaGrid or None
        The activating-function VTA (``[vta] method = "activating_function"``).
    """

    summary: dict
    basis: object
    vta_grid: object
    tracts: list = field(default_factory=list)
    af_grid: object = None


def simulate(config: RunConfig, progress: bool = False) -> tuple[dict, object, object]:
    """Run the whole computation without writing anything.

    Returns
    -------
    summary : dict
        The summary.json content (without ``outputs``).
    basis : FieldBasis
    vta_grid : VtaGrid or None
    """
    sim = run_simulation(config, progress)
    return sim.summary, sim.basis, sim.vta_grid


def run_simulation(config: RunConfig, progress: bool = False) -> Simulation:
    """Run the whole computation without writing anything; see :class:`Simulation`.

    Every warning logged while it runs (and inside an enclosing
    :func:`vta.notices.collecting` block, e.g. while the CLI loaded the configuration)
    is listed in ``summary["warnings"]``.
    """
    with collecting() as messages:
        sim = _run_simulation(config, progress)
        sim.summary["warnings"] = list(messages)
    return sim


def _clipping_warning(basis, weights_V: np.ndarray, threshold: float) -> bool:
    """Warn (and return True) when |E| reaches the threshold on the domain boundary."""
    edge = basis.boundary_field_max(weights_V)
    if edge >= threshold:
        log.warning("the VTA reaches the outer boundary of the model domain (|E| up to %.3g V/mm there, threshold "
                    "%.3g V/mm): the VTA volume and overlaps are cut off by the domain; enlarge [domain] or lower "
                    "the amplitude", edge, threshold)
        return True
    return False


def _run_simulation(config: RunConfig, progress: bool) -> Simulation:
    t_start = time.perf_counter()
    timer = _PhaseTimer(progress)
    try:
        method = choose_method(config)
        with timer.phase("mesh+solve"):
            basis = build_basis(config, method)
        with timer.phase("setting"):
            state = resolve(Setting(config.stimulation.mode, config.stimulation.contacts), basis.conductance_S, basis.outer_grounded)
            impedances = monopolar_impedances_ohm(basis.conductance_S, basis.outer_grounded)
        threshold = config.vta.threshold_V_per_mm
        with timer.phase("vta"):
            volume = float(basis.vta_volume_mm3(state.potentials_V, threshold))
            clipped = _clipping_warning(basis, state.potentials_V, threshold)
        vta_grid = None
        if config.output.nifti or config.vta.method == "activating_function":
            with timer.phase("grid"):
                lead = config.lead.model
                carrying = [k for k in range(lead.n_contacts) if abs(state.currents_mA[k]) > 1e-9] or list(range(lead.n_contacts))
                centers = np.array([config.lead.placement.contact_center_mm(lead, k) for k in carrying])
                model = conductivity_model(config)
                sigma_min = min(model.wm_S_per_m, model.gm_S_per_m)
                grid = auto_grid(
                    centers,
                    state.currents_mA[carrying],
                    sigma_min,
                    threshold,
                    config.output.grid_spacing_mm,
                    config.output.grid_margin_mm,
                    bounds_mm=_domain_box(config),
                )
                vta_grid = field_norm_on_grid(basis, state.potentials_V, grid, threshold)
                grid_clipped = grid_clipping_warning(vta_grid, clipped)
        structures = {}
        if config.anatomy is not None:
            with timer.phase("structures"):
                structures = structure_coverage(
                    basis, state.potentials_V, threshold, config.anatomy.load().structures, _domain_box(config)
                )
        af_grid, af_info = None, None
        if config.vta.method == "activating_function" and vta_grid is not None:
            from .activation.af_vta import af_vta

            with timer.phase("af-vta"):
                diam = config.tracts.fiber_diameter_um if config.tracts is not None else 5.7
                recharge = config.tracts.recharge if config.tracts is not None else "passive"
                af_grid, af_info = af_vta(basis, state.potentials_V, vta_grid.grid, volume, fiber_diameter_um=diam,
                                          pulse_width_us=config.stimulation.pulse_width_us, recharge=recharge)
        tract_results = []
        if config.tracts is not None:
            from .activation.tract_activation import tract_activation

            with timer.phase("tracts"):
                tract_results = tract_activation(config, basis, state)
    finally:
        timer.close()
    numeric = {k: v for k, v in basis.timings.items() if isinstance(v, (int, float))}
    solver_info = {k: v for k, v in basis.timings.items() if not isinstance(v, (int, float))}
    timings = {**numeric, **{k: v for k, v in timer.timings.items() if k != "mesh+solve"}}
    timings["total"] = time.perf_counter() - t_start
    summary = {
        "version": __version__,
        "vta_volume_mm3": volume,
        "vta_clipped_by_domain": clipped,
        "vta_grid_volume_mm3": None if vta_grid is None else vta_grid.volume_mm3,
        "vta_clipped_by_grid": None if vta_grid is None else grid_clipped,
        "threshold_V_per_mm": threshold,
        "impedance_ohm": state.impedance_ohm,
        "ground_current_mA": state.ground_current_mA,
        "contacts": _contact_table(config, state, impedances),
        "structures": structures,
        "tracts": {r.placed.name: r.summary(config.tracts) for r in tract_results},
        **({"activating_function_vta": af_info} if af_info is not None else {}),
        "field_max_on_grid_V_per_mm": None if vta_grid is None else float(vta_grid.field_norm_V_per_mm.max()),
        "method": method,
        "mesh": {**basis.mesh_info, **({"solver": solver_info} if solver_info else {})},
        "timings_s": timings,
        "config": config.resolved(),
    }
    return Simulation(summary, basis, vta_grid, tract_results, af_grid)


def _peak_memory_mb() -> float | None:
    """Peak resident memory of this process so far (MB), where the OS reports it.

    Reads VmHWM on Linux (getrusage's ru_maxrss survives fork/exec and would report a
    parent's peak); falls back to ru_maxrss elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(config: RunConfig, out_dir: str | Path, progress: bool = False, extra=None) -> dict:
    """Simulate and write ``summary.json`` (+ NIfTI, tracts.csv, field.vtu) into ``out_dir``
    atomically.

    Parameters
    ----------
    config : RunConfig
    out_dir : str or Path
    progress : bool
        Show a progress bar.
    extra : callable, optional
        ``extra(simulation, transaction) -> (names, seconds_by_phase)``: writes more files
        into the same all-or-nothing output (e.g. rendered views); their names join
        ``outputs`` and the phases ``timings_s``.

    Returns
    -------
    dict
        The summary written to ``out_dir/summary.json``.
    """
    t0 = time.perf_counter()
    with collecting() as messages, OutputTransaction(out_dir) as tx:
        sim = run_simulation(config, progress)
        summary, basis, vta_grid = sim.summary, sim.basis, sim.vta_grid
        t_write = time.perf_counter()
        outputs = []
        if sim.tracts:
            from .studies.sweep import write_table

            write_table([row for r in sim.tracts for row in r.fibre_rows()] or
                        [{"tract": r.placed.name} for r in sim.tracts], tx.path("tracts.csv"))
            outputs.append("tracts.csv")
        if vta_grid is not None:
            import nibabel as nib

            affine = vta_grid.grid.affine
            images = [("efield_norm.nii.gz", vta_grid.field_norm_V_per_mm), ("vta.nii.gz", vta_grid.mask.astype(np.uint8))]
            if sim.af_grid is not None:
                images += [("activating_function.nii.gz", sim.af_grid.field_norm_V_per_mm),
                           ("vta_af.nii.gz", sim.af_grid.mask.astype(np.uint8))]
            for name, data in images:
                img = nib.Nifti1Image(data, affine)
                img.set_sform(affine, code=2)
                img.set_qform(affine, code=2)
                img.header.set_xyzt_units("mm")
                try:
                    nib.save(img, tx.path(name))
                except OSError as exc:
                    raise os_error(exc, Path(out_dir) / name) from None
                outputs.append(name)
        if config.output.vtu:
            from .fem.export import setting_to_vtu

            setting_to_vtu(basis, np.array([summary["contacts"][str(k)]["potential_V"] for k in range(basis.n_contacts)]),
                           tx.path("field.vtu"))
            outputs.append("field.vtu")
        summary["timings_s"]["write"] = time.perf_counter() - t_write
        if extra is not None:
            names, seconds = extra(sim, tx)
            outputs += list(names)
            summary["timings_s"].update(seconds)
        summary["outputs"] = outputs + ["summary.json"]
        summary["timings_s"]["total"] = time.perf_counter() - t0
        summary["resources"] = {"peak_memory_MB": _peak_memory_mb()}
        summary["warnings"] = list(messages)  # with those of writing the outputs
        tx.write_json("summary.json", summary)
    return summary
