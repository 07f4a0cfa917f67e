"""Write a simulated setting to an output folder: summary.json, NIfTI, VTU, tracts.csv.

:func:`write` publishes everything as one run (:class:`vta.io.OutputTransaction`);
:func:`run` is `vta run`: resolve nothing new, simulate the scene's setting and write.
summary.json is output only: nothing in vta reads it back.

With ``[output] leaddbs`` the VTA and |E| also go into a Lead-DBS stimulation folder
(:mod:`vta.leaddbs_export`, listed in summary.json as ``leaddbs_export``). Those files
are renamed into place just before the output folder is published, and put back as they
were if publishing fails, so a run leaves both folders complete or both as before (a
process killed between the two renames leaves the new Lead-DBS files and the previous
output folder; the next run replaces them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from .io import OutputTransaction, nifti_bytes, os_error
from .leaddbs_export import LeadDbsExport
from .notices import collecting
from .scene import Scene, Simulation, coordinate_spaces

__all__ = ["run", "write", "peak_memory_mb"]

#: ``extra(simulation, transaction) -> (names, seconds_by_phase)``: more files in the
#: same all-or-nothing output (e.g. rendered views).
ExtraWriter = Callable[[Simulation, OutputTransaction], tuple[list[str], dict[str, float]]]


def peak_memory_mb() -> float | None:
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


def _write_files(sim: Simulation, tx: OutputTransaction, out_dir: Path) -> list[str]:
    outputs = []
    if sim.tracts:
        from .io import write_table

        write_table([row for r in sim.tracts for row in r.fibre_rows()] or
                    [{"tract": r.placed.name} for r in sim.tracts], tx.path("tracts.csv"))
        outputs.append("tracts.csv")
    # 4: MNI template space; 2: aligned to the anatomy's (or the lead's) world space
    xform_code = coordinate_spaces(sim.scene.config)["nifti_xform_code"]
    images = []
    if sim.vta_grid is not None:
        affine = sim.vta_grid.grid.affine
        images += [("efield_norm.nii.gz", sim.vta_grid.field_norm_V_per_mm, affine),
                   ("vta.nii.gz", sim.vta_grid.mask.astype(np.uint8), affine)]
        if sim.af_grid is not None:
            images += [("activating_function.nii.gz", sim.af_grid.field_norm_V_per_mm, affine),
                       ("vta_af.nii.gz", sim.af_grid.mask.astype(np.uint8), affine)]
    td = sim.time_domain
    if td is not None:
        images += [("efield_peak_time_domain.nii.gz", td.peak_field_V_per_mm, td.grid.affine),
                   ("vta_time_domain.nii.gz", td.vta_mask.astype(np.uint8), td.grid.affine)]
        if td.field_series_V_per_mm is not None:  # 4D: x, y, z, instant (summary: the instants)
            images.append(("efield_time_series.nii.gz", td.field_series_V_per_mm, td.grid.affine))
    for name, data, affine in images:
        blob = nifti_bytes(data, affine, xform_code)
        try:
            with open(tx.path(name), "wb") as fh:
                fh.write(blob)
        except OSError as exc:
            raise os_error(exc, out_dir / name) from None
        outputs.append(name)
    if td is not None:
        from .io import write_table

        n_points = 0 if td.point_potential_V is None else td.point_potential_V.shape[0]
        rows = [{"t_us": float(t), **{f"I{k}_mA": float(td.currents_mA[k, j]) for k in range(td.currents_mA.shape[0])},
                 **{f"V{k}_V": float(td.voltages_V[k, j]) for k in range(td.voltages_V.shape[0])},
                 **{f"u_p{p}_V": float(td.point_potential_V[p, j]) for p in range(n_points)},
                 **{f"E_p{p}_V_per_mm": float(td.point_field_V_per_mm[p, j]) for p in range(n_points)}}
                for j, t in enumerate(td.time.t_us)]
        write_table(rows, tx.path("waveforms.csv"))
        outputs.append("waveforms.csv")
    if sim.scene.config.output.vtu:
        from .fem.export import setting_to_vtu

        setting_to_vtu(sim.basis, sim.potentials_V, tx.path("field.vtu"))
        outputs.append("field.vtu")
    return outputs


def write(sim: Simulation, out_dir: str | Path, extra: ExtraWriter | None = None) -> dict:
    """Write ``sim`` into ``out_dir`` as one run (replacing the folder's previous run).

    Returns
    -------
    dict
        The summary written to ``out_dir/summary.json``.
    """
    started = time.perf_counter()
    with collecting() as messages:
        return _publish(lambda: sim, out_dir, messages, extra, started)


def _publish(simulate: Callable[[], Simulation], out_dir: str | Path, messages: list[str],
             extra: ExtraWriter | None, started: float) -> dict:
    """Simulate and write inside one output transaction; the Lead-DBS export (if any) is
    committed just before the transaction publishes and undone if that fails."""
    export: list[LeadDbsExport] = []
    try:
        with OutputTransaction(out_dir) as tx:
            summary = _write_into(simulate(), tx, Path(out_dir), messages, extra, started, export)
            for e in export:
                e.commit()
    except BaseException:
        for e in export:
            e.rollback()
        raise
    for e in export:
        e.finish()
    return summary


def _leaddbs_export(sim: Simulation) -> LeadDbsExport | None:
    """Prepare the Lead-DBS files of ``[output] leaddbs`` (temporary names), or None."""
    out = sim.scene.config.output
    if out.leaddbs is None or sim.vta_grid is None:
        return None
    spec = sim.scene.config.lead
    # a reconstruction knows its side; otherwise the side of the distal contact (MNI x > 0: right)
    hemisphere = ("R" if spec.side == "right" else "L") if spec.reconstruction is not None else sim.scene.lead.hemisphere
    grid = sim.vta_grid
    return LeadDbsExport.prepare(out.leaddbs, out.leaddbs_label, out.leaddbs_model, hemisphere, grid.grid.affine,
                                 grid.mask, grid.field_norm_V_per_mm, legacy=out.leaddbs_legacy)


def _write_into(sim: Simulation, tx: OutputTransaction, out_dir: Path, messages: list[str],
                extra: ExtraWriter | None, started: float, export: list[LeadDbsExport]) -> dict:
    t_write = time.perf_counter()
    messages.extend(m for m in sim.warnings if m not in messages)
    summary = sim.summary()
    outputs = _write_files(sim, tx, out_dir)
    prepared = _leaddbs_export(sim)
    if prepared is not None:
        export.append(prepared)  # the caller commits it, or rolls it back
        summary["leaddbs_export"] = prepared.describe()
    summary["timings_s"]["write"] = time.perf_counter() - t_write
    if extra is not None:
        names, seconds = extra(sim, tx)
        outputs += list(names)
        summary["timings_s"].update(seconds)
    summary["outputs"] = outputs + ["summary.json"]
    summary["timings_s"]["total"] = time.perf_counter() - started
    summary["resources"] = {"peak_memory_MB": peak_memory_mb()}
    summary["warnings"] = list(messages)  # with those of writing the outputs
    tx.write_json("summary.json", summary)
    return summary


def run(scene: Scene, out_dir: str | Path, progress: bool = False, extra: ExtraWriter | None = None) -> dict:
    """`vta run`: simulate the scene's setting and write it into ``out_dir`` atomically.

    The output folder is locked (and created) before the computation, so a bad or busy
    ``--out`` fails at once.

    Parameters
    ----------
    scene : Scene
    out_dir : str or Path
    progress : bool
        Show a progress bar.
    extra : callable, optional
        See :data:`ExtraWriter`; its file names join ``outputs`` and its phases
        ``timings_s``.

    Returns
    -------
    dict
        The summary written to ``out_dir/summary.json``.
    """
    t0 = time.perf_counter()
    with collecting() as messages:
        return _publish(lambda: scene.simulate(progress=progress), out_dir, messages, extra, t0)
