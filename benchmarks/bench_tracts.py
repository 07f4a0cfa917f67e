"""Benchmark: tract activation on the demo scene (SR1242 in the right NAc/ALIC, default
anatomy, 3D P2 basis, synthetic ALIC bundle of 200 fibres, MRG 5.7 um axons, 30 mm).

Timed (basis built or read from the cache first, not timed):
- ``run``: the tract phase of one `vta run` at the demo setting (axon placement, Ve from
  the basis, threshold bisection capped at 2x the setting);
- ``sweep``: a sweep with tract columns, 4 monopolar + 3 bipolar configurations x 20
  amplitudes (0.5-10 V) x 3 pulse widths (60, 90, 120 us): thresholds are searched once per
  (configuration, pulse width), every amplitude is then a comparison;
- ``optimise``: the optimiser with a limit on the ALIC bundle (10 configurations).

Run:  .venv/bin/python benchmarks/bench_tracts.py
Writes benchmarks/results/bench_tracts.json.
"""

from __future__ import annotations

import benchlib  # noqa: F401  (first: pins to 2 cores before numpy/numba start)

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import vta  # noqa: E402


def main() -> None:
    scene = vta.Scene.from_toml(ROOT / "examples" / "nac_alic_demo.toml")
    sim = scene.simulate()                            # warm-up: numba compile, anatomy, basis
    t0 = time.perf_counter()
    sim = scene.simulate()
    t_total = time.perf_counter() - t0
    t_run = sim.timings_s["tracts"]
    bundle = sim.summary()["tracts"]["ALIC_bundle"]

    n = scene.lead.model.n_contacts
    amps = np.round(np.linspace(0.5, 10.0, 20), 6)
    spec = vta.SweepSpec(vta.standard_configs(n, ["monopolar", "bipolar-adjacent"], "voltage"), amps,
                         [60.0, 90.0, 120.0], "voltage")
    t0 = time.perf_counter()
    rows = vta.sweep(scene, spec, targets=["NAc_R", "ALIC_R"])
    t_sweep = time.perf_counter() - t0

    t0 = time.perf_counter()
    ranked = vta.optimise(scene, vta.standard_configs(n, ["monopolar", "bipolar-adjacent", "double-monopolar"], "voltage"),
                          vta.Limits(max_spill_mm3=200.0, max_tract_fraction={"ALIC_bundle": 0.2}, max_amplitude=10.0),
                          targets=["NAc_R"], pulse_widths_us=[90.0], resolution=0.1)
    t_opt = time.perf_counter() - t0
    best = ranked[0]

    result = {
        "case": "demo: SR1242 right NAc/ALIC, default anatomy, 3D P2, synthetic ALIC bundle (200 fibres), MRG 5.7 um, 30 mm axons",
        "run": {"tract_phase_s": t_run, "whole_simulation_s": t_total, "fibres": bundle["n_fibres"],
                "simulated": bundle["n_simulated"], "activated": bundle["n_activated"]},
        "sweep": {"settings": len(rows), "configurations_x_pulse_widths": len(spec.configs) * 3, "time_s": t_sweep},
        "optimise": {"candidates": len(ranked), "time_s": t_opt, "best": {k: best[k] for k in (
            "active_contacts", "amplitude", "target_coverage", "spill_mm3", "tract_ALIC_bundle_fraction", "limited_by")}},
        "machine": benchlib.machine(),
    }
    print(f"vta run, tract phase : {t_run:6.2f} s  ({bundle['n_simulated']} of {bundle['n_fibres']} fibres simulated, "
          f"{bundle['n_activated']} activated; whole simulation {t_total:.2f} s)")
    print(f"sweep with tracts    : {t_sweep:6.2f} s  ({len(rows)} settings, thresholds searched for "
          f"{len(spec.configs) * 3} configuration x pulse width pairs)")
    print(f"optimise with tracts : {t_opt:6.2f} s  (best {best['active_contacts']} {best['amplitude']:.1f} V, "
          f"NAc {100 * best['target_coverage']:.1f} %, ALIC bundle {100 * best['tract_ALIC_bundle_fraction']:.0f} %)")
    out = HERE / "results" / "bench_tracts.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
