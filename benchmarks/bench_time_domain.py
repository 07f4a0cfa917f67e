"""Benchmark: the time-domain run on the 3389 case, by frequency plan.

Case: examples/time_domain_3389.toml (Medtronic 3389, contact 1, grey matter
4-Cole-Cole, 0.1 mm encapsulation, grounded 25 mm sphere, 130 Hz), a 60 us biphasic
pulse under current control (-3 mA) and under voltage control (-3 V) with a platinum
double layer (20 uF/cm^2) on the contacts. For each frequency plan (octave bands,
adaptive at 1e-3, adaptive at 1e-4) the table gives the solve frequencies, the time of
the time-domain part (plan, frequency bases, synthesis on the output grid), the
time-domain VTA and its difference to the reference plan (adaptive at 1e-5), and the
largest difference of the delivered contact waveform (current under voltage control,
voltage under current control) relative to its peak.

    python benchmarks/bench_time_domain.py

Prints a table and writes benchmarks/results/time_domain.json.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from benchlib import machine  # noqa: E402

CASES = {
    "current -3 mA": {"stimulation": {"mode": "current", "contacts": {"1": -3.0}}, "signal": {}},
    "voltage -3 V + double layer": {"stimulation": {"mode": "voltage", "contacts": {"1": -3.0}},
                                    "signal": {"interface": "double_layer"}},
}
PLANS = {"reference (adaptive 1e-5)": {"spectrum": "adaptive", "tolerance": 1e-5},
         "octave": {"spectrum": "octave"},
         "adaptive 1e-3": {"spectrum": "adaptive", "tolerance": 1e-3},
         "adaptive 1e-4": {"spectrum": "adaptive", "tolerance": 1e-4}}


def run(case: dict, plan: dict) -> dict:
    from vta.scene import Scene
    from vta.timedomain.run import simulate_time_domain

    data = tomllib.loads((ROOT / "examples" / "time_domain_3389.toml").read_text())
    data["stimulation"].update(case["stimulation"])
    data["signal"] = {"shape": "biphasic", **case["signal"], **plan}
    scene = Scene.from_dict(data, str(ROOT / "examples" / "time_domain_3389.toml"))
    sim_grid = scene.simulate().vta_grid.grid          # the quasi-static run's grid, as vta run
    t0 = time.perf_counter()
    td = simulate_time_domain(scene, grid=sim_grid)
    seconds = time.perf_counter() - t0
    wave = td.currents_mA[1] if case["stimulation"]["mode"] == "voltage" else td.voltages_V[1]
    return {"n_solve": int(td.plan.n_solve), "seconds": seconds, "timings_s": td.timings_s,
            "vta_mm3": td.vta_volume_mm3, "t_us": td.time.t_us.tolist(), "wave": wave.tolist()}


def main() -> int:
    rows = []
    for cname, case in CASES.items():
        ref = None
        for pname, plan in PLANS.items():
            r = run(case, plan)
            if ref is None:
                ref = r
            wave_ref = np.interp(r["t_us"], ref["t_us"], ref["wave"])
            r["wave_error"] = float(np.abs(np.asarray(r["wave"]) - wave_ref).max() / np.abs(ref["wave"]).max())
            r["vta_error_pct"] = 100.0 * (r["vta_mm3"] / ref["vta_mm3"] - 1.0)
            rows.append({"case": cname, "plan": pname, **{k: v for k, v in r.items() if k not in ("t_us", "wave")}})
    print(f"{'case':<30} {'plan':<26} {'solves':>6} {'time s':>7} {'VTA mm3':>8} {'VTA err %':>9} {'wave err':>9}")
    for r in rows:
        print(f"{r['case']:<30} {r['plan']:<26} {r['n_solve']:>6} {r['seconds']:>7.2f} {r['vta_mm3']:>8.2f} "
              f"{r['vta_error_pct']:>9.2f} {r['wave_error']:>9.1e}")
    out = HERE / "results" / "time_domain.json"
    out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n")
    print(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
