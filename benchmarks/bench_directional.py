"""Benchmark: the directional example (examples/directional_vercise.toml: one segment of a
Boston Scientific Vercise Directed, 3D, P2) at each accuracy preset, against a converged
reference.

The reference: :func:`ref_preset` ("fine" with finer contact edges) scaled by
``REF_SCALES`` (uniform refinement),
impedance and VTA extrapolated (Richardson, from the last three levels with the observed
order, or the last two with an assumed order if the sequence is not monotone). Each
row: preset/scale, DOFs, mesh and solve seconds (one process, 2 cores), impedance, VTA
and their errors against the reference.

Run:  VTA_CACHE_DIR=off .venv/bin/python benchmarks/bench_directional.py [--quick] [--no-ref]
Writes benchmarks/results/bench_directional.json and prints a table. ``--no-ref``
reuses the stored reference of that JSON (only the presets are run again).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import tomllib
from pathlib import Path

import benchlib  # noqa: F401  (two cores, thread counts)

os.environ.setdefault("VTA_CACHE_DIR", "off")  # measure building, not cache hits
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
EXAMPLE = ROOT / "examples" / "directional_vercise.toml"
REF_SCALES = (1.0, 0.8, 0.64)  # on REF_PRESET


def ref_preset():
    """The reference family: "fine" with the contact edges graded to 0.015 mm and no
    edge layers (the family of the stored references; uniform refinement of "fine" alone
    leaves the edge singularities under-resolved and converges slowly, ~0.5 % low)."""
    from dataclasses import replace

    from vta.fem.mesh_domain import PRESETS

    return replace(PRESETS["fine"], name="reference", size_edge_mm=0.015, edge_growth=0.35,
                   segment_edge_mm=0.015, segment_edge_growth=0.35, edge_layers=0)


def run_one(preset, scale: float = 1.0) -> dict:
    """One 3D simulation of the example with ``preset`` (a name, or a MeshPreset that
    replaces the configured preset's sizes) scaled by ``scale``."""
    import vta
    import vta.scene as scene_mod

    data = tomllib.loads(EXAMPLE.read_text())
    data.setdefault("solver", {})["preset"] = preset if isinstance(preset, str) else "default"
    data.setdefault("output", {})["nifti"] = False
    original = scene_mod.build_mesh

    def scaled_build_mesh(*args, **kwargs):
        if not isinstance(preset, str):
            kwargs["preset"] = preset
        return original(*args, **kwargs, scale=scale)

    scene_mod.build_mesh = scaled_build_mesh
    try:
        t0 = time.perf_counter()
        scene = vta.Scene.from_dict(data, method="3d")
        sim = scene.simulate()
        wall = time.perf_counter() - t0
    finally:
        scene_mod.build_mesh = original
    basis = scene.basis
    timings = dict(basis.timings)
    solve_s = float(timings.get("total", float("nan")))
    return {
        "preset": preset if isinstance(preset, str) else preset.name, "scale": scale,
        "dofs": int(basis.mesh_info.get("dofs", 0)) if hasattr(basis, "mesh_info") else None,
        "tets": int(basis.mesh_info.get("elements", 0)) if hasattr(basis, "mesh_info") else None,
        "mesh_s": round(float(timings.get("mesh", float("nan"))), 3),
        "solve_s": round(solve_s, 3),
        "wall_s": round(wall, 3),
        "impedance_ohm": float(sim.state.impedance_ohm),
        "vta_mm3": float(sim.vta_volume_mm3),
    }


def richardson(h: list[float], v: list[float]) -> tuple[float, float | None]:
    """Extrapolated value and the observed order, from values ``v`` at mesh sizes ``h``
    (the last three, in a constant ratio). If the last two increments do not shrink
    (scatter, not convergence: the VTA of one mesh scatters by ~0.1 %), the finest value
    and order None."""
    (h1, h2, h3), (v1, v2, v3) = h[-3:], v[-3:]
    d1, d2 = v2 - v1, v3 - v2
    if not (d1 * d2 > 0 and abs(d2) < abs(d1)):
        return v3, None
    p = min(max(math.log(abs(d1 / d2)) / math.log(h1 / h2), 0.5), 4.0)
    return v3 + d2 / ((h2 / h3) ** p - 1.0), p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="presets only, the stored reference")
    ap.add_argument("--no-ref", action="store_true", help="reuse the stored reference")
    ap.add_argument("--presets", default="fast,default,fine")
    ap.add_argument("--label", default="current", help="name of this set of rows in the JSON")
    args = ap.parse_args()
    out_path = RESULTS / "bench_directional.json"
    stored = json.loads(out_path.read_text()) if out_path.exists() else {}

    if args.quick or args.no_ref:
        ref = stored["reference"]
        levels = ref["levels"]
    else:
        levels = []
        for s in REF_SCALES:
            row = run_one(ref_preset(), s)
            levels.append(row)
            print(f"ref reference*{s:g}: {row['dofs']} DOFs, mesh {row['mesh_s']:.1f} s, solve {row['solve_s']:.1f} s, "
                  f"Z {row['impedance_ohm']:.4f} ohm, VTA {row['vta_mm3']:.4f} mm^3", flush=True)
    h = [r["scale"] for r in levels]
    z, pz = richardson(h, [r["impedance_ohm"] for r in levels])
    v, pv = richardson(h, [r["vta_mm3"] for r in levels])
    ref = {"impedance_ohm": z, "impedance_order": pz, "vta_mm3": v, "vta_order": pv, "levels": levels}
    print(f"reference: impedance {ref['impedance_ohm']:.4f} ohm (order {pz}), VTA {ref['vta_mm3']:.4f} mm^3 "
          f"(order {pv}; None: the finest level's value, the levels scatter)")

    rows = []
    print(f"{'preset':>8} {'DOFs':>8} {'mesh s':>7} {'solve s':>7} {'wall s':>7} {'Z ohm':>9} {'dZ %':>6} "
          f"{'VTA mm3':>8} {'dVTA %':>6}")
    for preset in args.presets.split(","):
        row = run_one(preset)
        row["impedance_err_pct"] = 100 * (row["impedance_ohm"] / ref["impedance_ohm"] - 1)
        row["vta_err_pct"] = 100 * (row["vta_mm3"] / ref["vta_mm3"] - 1)
        rows.append(row)
        print(f"{preset:>8} {row['dofs']:>8} {row['mesh_s']:>7.2f} {row['solve_s']:>7.2f} {row['wall_s']:>7.2f} "
              f"{row['impedance_ohm']:>9.3f} {row['impedance_err_pct']:>+6.2f} {row['vta_mm3']:>8.3f} "
              f"{row['vta_err_pct']:>+6.2f}", flush=True)
    result = dict(stored)
    result.update({"case": str(EXAMPLE.relative_to(ROOT)), "machine": benchlib.machine(), "reference": ref})
    result.setdefault("runs", {})[args.label] = rows
    for stored_rows in result["runs"].values():  # errors of every stored run against this reference
        for row in stored_rows:
            row["impedance_err_pct"] = 100 * (row["impedance_ohm"] / ref["impedance_ohm"] - 1)
            row["vta_err_pct"] = 100 * (row["vta_mm3"] / ref["vta_mm3"] - 1)
    RESULTS.mkdir(exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    sys.exit(main())
