"""Benchmark: the homogeneous Medtronic 3389 case of README.md at each accuracy preset.

For each method (axisymmetric fast path, full 3D) and preset (fast, default, fine) this
runs ``vta run`` as a fresh process (whole-process wall time, Python start included) and
reads its summary.json: DOFs, per-phase times, peak memory, VTA and impedance. Errors
are against a converged reference: the axisymmetric P2 solution on a mesh refined far
beyond "fine" (its own convergence is printed). It also times |E| on a 1M-point grid.

Run:  .venv/bin/python benchmarks/bench_3389.py [--quick]
Writes benchmarks/results/bench_3389.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import benchlib

os.environ.setdefault("VTA_CACHE_DIR", "off")  # measure building, not cache hits
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

CASE = """
[lead]
model = "Medtronic 3389"
tip_mm = [0.0, 0.0, 0.0]
direction = [0.0, 0.0, 1.0]

[domain]
shape = "sphere"
radius_mm = 25.0
center_mm = [0.0, 0.0, 4.25]
outer_boundary = "ground"

[tissue]
conductivity_S_per_m = 0.2

[stimulation]
mode = "current"
contacts = {{ 1 = {amplitude} }}
pulse_width_us = 60
frequency_hz = 130

[vta]
threshold_V_per_mm = 0.2

[solver]
preset = "{preset}"
method = "{method}"

[output]
nifti = {nifti}
"""


def machine() -> dict:
    """CPU model, cores and library versions (see benchlib)."""
    return benchlib.machine()


def run_case(method: str, preset: str, amplitude: float, nifti: bool) -> dict:
    """One whole `vta run` process; returns its summary plus the measured wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "case.toml"
        cfg.write_text(CASE.format(amplitude=amplitude, preset=preset, method=method, nifti=str(nifti).lower()))
        out = Path(tmp) / "out"
        env = {**os.environ, "OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2", "VTA_CACHE_DIR": "off"}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "vta", "run", str(cfg), "--out", str(out), "-q"],
            capture_output=True, text=True, env=env,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"vta run failed ({method}/{preset}): {proc.stderr.strip()}")
        summary = json.loads((out / "summary.json").read_text())
    summary["wall_s"] = wall
    return summary


def reference(amplitude: float) -> dict:
    """Converged axisymmetric P2 reference by successive refinement."""
    from vta.fem.axisym import build_axisymmetric_basis
    from vta.leads import LeadPlacement, get_lead
    from vta.fem.stimulation import Setting, resolve

    lead = get_lead("Medtronic 3389")
    placement = LeadPlacement([0, 0, 0], [0, 0, 1])
    rows = []
    for scale in (1.0, 0.5, 0.35):
        basis = build_axisymmetric_basis(lead, placement, np.array([0, 0, 4.25]), 25.0, 0.2, preset="fine", size_scale=scale)
        state = resolve(Setting("current", {1: amplitude}), basis.conductance_S, True)
        rows.append({
            "size_scale": scale,
            "dofs": basis.mesh_info["dofs"],
            "vta_mm3": basis.vta_volume_mm3(state.potentials_V, 0.2),
            "impedance_ohm": state.impedance_ohm,
        })
    return {"levels": rows, "vta_mm3": rows[-1]["vta_mm3"], "impedance_ohm": rows[-1]["impedance_ohm"]}


def grid_timing() -> dict:
    """|E| on a 100^3 = 1M-point grid (5 x 5 x 5 cm^3 around the contacts) with the default 3D basis."""
    import tomllib

    from vta.scene import Scene

    basis = Scene.from_dict(tomllib.loads(CASE.format(amplitude=-1.0, preset="default", method="3d", nifti="false"))).basis
    axis = np.linspace(-10, 10, 100)
    X, Y, Z = np.meshgrid(axis, axis, axis + 4.25, indexing="ij")
    pts = np.column_stack([X.ravel(), Y.ravel(), Z.ravel()])
    weights = np.array([0.0, -1.0, 0.0, 0.0])
    basis.field_at(pts[:1000], weights)  # warm-up (JIT/cache load)
    t0 = time.perf_counter()
    E = basis.field_at(pts, weights)
    dt = time.perf_counter() - t0
    return {"points": len(pts), "seconds": dt, "located": int(np.isfinite(E[:, 0]).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="default preset only")
    parser.add_argument("--amplitude", type=float, default=-1.0, help="mA on contact 1 (default -1)")
    args = parser.parse_args()
    presets = ["default"] if args.quick else ["fast", "default", "fine"]
    ref = reference(args.amplitude)
    rows = []
    for method in ("axisymmetric", "3d"):
        for preset in presets:
            for nifti in (False, True):
                s = run_case(method, preset, args.amplitude, nifti)
                rows.append({
                    "method": method,
                    "preset": preset,
                    "nifti_grid": nifti,
                    "dofs": s["mesh"]["dofs"],
                    "elements": s["mesh"]["elements"],
                    "wall_s": s["wall_s"],
                    "timings_s": s["timings_s"],
                    "peak_memory_MB": s.get("resources", {}).get("peak_memory_MB"),
                    "vta_mm3": s["vta_volume_mm3"],
                    "vta_grid_mm3": s.get("vta_grid_volume_mm3"),
                    "impedance_ohm": s["impedance_ohm"],
                    "vta_error_pct": 100 * (s["vta_volume_mm3"] / ref["vta_mm3"] - 1),
                    "impedance_error_pct": 100 * (s["impedance_ohm"] / ref["impedance_ohm"] - 1),
                })
    grid = grid_timing()
    result = {"case": "Medtronic 3389, contact 1 at %g mA, sigma 0.2 S/m, 25 mm sphere, E >= 0.2 V/mm" % args.amplitude,
              "machine": machine(), "reference": ref, "runs": rows, "grid_1M": grid,
              "date": time.strftime("%Y-%m-%d %H:%M")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_3389.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"reference (axisymmetric P2, refined): VTA {ref['vta_mm3']:.3f} mm^3, impedance {ref['impedance_ohm']:.2f} ohm")
    for lv in ref["levels"]:
        print(f"  scale {lv['size_scale']:<6} dofs {lv['dofs']:>8}  VTA {lv['vta_mm3']:.4f}  Z {lv['impedance_ohm']:.3f}")
    head = f"{'method':13s} {'preset':8s} {'grid':5s} {'DOFs':>8s} {'wall s':>7s} {'mesh':>6s} {'solve':>6s} {'MB':>6s} {'VTA mm3':>9s} {'err %':>7s} {'Z ohm':>8s} {'err %':>7s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        t = r["timings_s"]
        print(f"{r['method']:13s} {r['preset']:8s} {str(r['nifti_grid'])[0]:5s} {r['dofs']:8d} {r['wall_s']:7.2f} "
              f"{t.get('mesh', 0):6.2f} {t.get('solve', 0):6.2f} {r['peak_memory_MB'] or 0:6.0f} {r['vta_mm3']:9.3f} "
              f"{r['vta_error_pct']:7.2f} {r['impedance_ohm']:8.1f} {r['impedance_error_pct']:7.2f}")
    print(f"|E| on {grid['points']} grid points: {grid['seconds']:.3f} s ({grid['located']} in tissue)")


if __name__ == "__main__":
    main()
