"""Write a simulated setting to an output folder: summary.json, NIfTI, VTU, tracts.csv.

:func:`write` publishes everything as one run (:class:`vta.io.OutputTransaction`);
:func:`run` is `vta run`: resolve nothing new, simulate the scene's setting and write.
summary.json is output only: nothing in vta reads it back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from .io import OutputTransaction, nifti_bytes, os_error
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
    if sim.vta_grid is not None:
        affine = sim.vta_grid.grid.affine
        # 4: MNI template space; 2: aligned to the anatomy's (or the lead's) world space
        xform_code = coordinate_spaces(sim.scene.config)["nifti_xform_code"]
        images = [("efield_norm.nii.gz", sim.vta_grid.field_norm_V_per_mm), ("vta.nii.gz", sim.vta_grid.mask.astype(np.uint8))]
        if sim.af_grid is not None:
            images += [("activating_function.nii.gz", sim.af_grid.field_norm_V_per_mm),
                       ("vta_af.nii.gz", sim.af_grid.mask.astype(np.uint8))]
        for name, data in images:
            blob = nifti_bytes(data, affine, xform_code)
            try:
                with open(tx.path(name), "wb") as fh:
                    fh.write(blob)
            except OSError as exc:
                raise os_error(exc, out_dir / name) from None
            outputs.append(name)
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
    with collecting() as messages, OutputTransaction(out_dir) as tx:
        return _write_into(sim, tx, Path(out_dir), messages, extra, time.perf_counter())


def _write_into(sim: Simulation, tx: OutputTransaction, out_dir: Path, messages: list[str],
                extra: ExtraWriter | None, started: float) -> dict:
    t_write = time.perf_counter()
    messages.extend(m for m in sim.warnings if m not in messages)
    summary = sim.summary()
    outputs = _write_files(sim, tx, out_dir)
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
    with collecting() as messages, OutputTransaction(out_dir) as tx:
        sim = scene.simulate(progress=progress)
        return _write_into(sim, tx, Path(out_dir), messages, extra, t0)
