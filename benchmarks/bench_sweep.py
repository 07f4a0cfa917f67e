"""Benchmark: a settings sweep on the homogeneous Medtronic 3389 case (issue 5 target:
>= 1000 settings in <= 5 s on a 1 M-voxel grid, 2 cores).

4 monopolar + 3 bipolar-adjacent configurations x 50 amplitudes (0.1-5 mA) x 5 pulse
widths (30-120 us, Astrom thresholds for 3.5 um axons) = 1750 settings, VTA volume on a
100^3 voxel grid (0.2 mm, 20 mm cube around the contacts), for the axisymmetric basis
and the 3D (default preset) basis. The basis is built (or read from the basis cache)
first and not timed; the timed part is everything ``vta.studies.sweep.sweep`` does.

Run:  .venv/bin/python benchmarks/bench_sweep.py [--method axisymmetric|3d|both]
Writes benchmarks/results/bench_sweep.json.
"""

from __future__ import annotations

import benchlib  # noqa: F401  (first: pins to 2 cores before numpy/numba start)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from vta.config import load_config  # noqa: E402
from vta.scene import Scene  # noqa: E402
from vta.studies.sweep import SweepSpec, standard_configs, sweep  # noqa: E402


def run(method: str, repeats: int) -> dict:
    config = Scene.from_config(load_config(ROOT / "examples" / "homogeneous_3389.toml"), method=method)
    t0 = time.perf_counter()
    basis = config.basis
    t_basis = time.perf_counter() - t0
    spec = SweepSpec(standard_configs(4), np.round(np.linspace(0.1, 5.0, 50), 6), [30, 60, 90, 105, 120], "current")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = sweep(basis, spec, fiber_diameter_um=3.5, lead=config.lead)
        times.append(time.perf_counter() - t0)
    r = next(r for r in rows if r["config"] == "c1-" and abs(r["amplitude"] - 3.0) < 1e-9 and r["pulse_width_us"] == 60)
    return {
        "method": method,
        "basis_s": t_basis,
        "dofs": basis.mesh_info["dofs"],
        "configs": len(spec.configs),
        "settings": len(rows),
        "sweep_s": min(times),
        "sweep_s_all": times,
        "settings_per_s": len(rows) / min(times),
        "vta_c1_3mA_60us_mm3": r["vta_volume_mm3"],
        "clipped_by_domain": sum(x["vta_clipped_by_domain"] for x in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="both", choices=["axisymmetric", "3d", "both"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    methods = ["axisymmetric", "3d"] if args.method == "both" else [args.method]
    results = []
    for m in methods:
        res = run(m, args.repeats)
        results.append(res)
        ok = "meets" if res["settings"] >= 1000 and res["sweep_s"] <= 5 else "MISSES"
        print(f"{m:13s} {res['settings']} settings (mesh-integrated VTA): {res['sweep_s']:.2f} s "
              f"({res['settings_per_s']:.0f}/s; basis {res['basis_s']:.1f} s, {res['dofs']} DOFs) -> {ok} the 5 s target")
    out = {
        "target": ">= 1000 settings in <= 5 s, 2 cores (VTA volumes integrated on the mesh, as vta run)",
        "machine": benchlib.machine(),
        "results": results,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_sweep.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
