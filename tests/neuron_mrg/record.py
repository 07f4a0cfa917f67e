"""Record NEURON thresholds of the MRG axon for tests/test_axons.py.

Point source in an infinite homogeneous medium (sigma 0.2 S/m) at 1, 2, 3 mm from a
straight fibre (opposite its middle node); 5.7 um (41 nodes, 20 mm) and 10 um (21 nodes,
23 mm) fibres; pulse widths 60, 90, 120 us with passive recharge, plus an anodic, a
symmetric-biphasic and a monophasic case. dt 2 us, backward Euler, 1.5 ms after the
first phase, detection -20 mV at a node 5 nodes from the first one to cross.

Run:  .venv/bin/python tests/neuron_mrg/record.py
Writes tests/data/neuron_mrg_thresholds.json (threshold current, mA, bisection to 0.1 %).
"""

from __future__ import annotations

import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import mrg_neuron as mn  # noqa: E402

OUT = HERE.parent / "data" / "neuron_mrg_thresholds.json"
DT_US = 2.0
T_AFTER_US = 1500.0
REL_TOL = 0.001
SIGMA = 0.2
N_NODES = {5.7: 41, 10.0: 21}


def cases() -> list[dict]:
    out = []
    for d_um in (5.7, 10.0):
        for dist in (1.0, 2.0, 3.0):
            for pw in (60.0, 90.0, 120.0):
                out.append(dict(fiber_diameter_um=d_um, distance_mm=dist, pulse_width_us=pw,
                                recharge="passive", polarity="cathodic"))
    out.append(dict(fiber_diameter_um=5.7, distance_mm=1.0, pulse_width_us=60.0, recharge="passive",
                    polarity="anodic"))
    out.append(dict(fiber_diameter_um=5.7, distance_mm=2.0, pulse_width_us=90.0, recharge="symmetric",
                    polarity="cathodic"))
    out.append(dict(fiber_diameter_um=10.0, distance_mm=1.0, pulse_width_us=120.0, recharge="none",
                    polarity="cathodic"))
    return out


def threshold_mA(h, case: dict, axons: dict) -> float:
    d_um = case["fiber_diameter_um"]
    if d_um not in axons:
        axons[d_um] = mn.NeuronMRG(h, d_um, N_NODES[d_um], DT_US)
    axon = axons[d_um]
    sign = -1.0 if case["polarity"] == "cathodic" else 1.0
    axon.set_unit_ve(mn.point_source_ve(axon.x_mm, case["distance_mm"], sign, SIGMA))
    n_steps = int(math.ceil((case["pulse_width_us"] + T_AFTER_US) / DT_US - 1e-9))
    n_steps = max(n_steps, int(math.ceil(11 * case["pulse_width_us"] / DT_US - 1e-9)))
    w = mn.step_values(case["pulse_width_us"], case["recharge"], DT_US, n_steps)
    return axon.threshold(w, start=1.0, rel_tol=REL_TOL)


def main() -> None:
    import neuron
    from neuron import h

    with tempfile.TemporaryDirectory() as tmp:
        mn.compile_mechanisms(Path(tmp))
        neuron.load_mechanisms(tmp)
        axons: dict = {}
        rows = []
        for case in cases():
            t0 = time.perf_counter()
            th = threshold_mA(h, case, axons)
            rows.append({**case, "threshold_mA": th})
            print(f"{case}  {th:.5f} mA  ({time.perf_counter() - t0:.1f} s)", flush=True)
    meta = {
        "simulator": f"NEURON {neuron.__version__}",
        "mechanisms": "tests/neuron_mrg/mrgnode.mod, vstim.mod; axon: tests/neuron_mrg/mrg_neuron.py",
        "medium": f"point source, infinite homogeneous, sigma {SIGMA} S/m, opposite the middle node",
        "n_nodes": {str(k): v for k, v in N_NODES.items()},
        "dt_us": DT_US,
        "method": "fixed step, backward Euler (secondorder 0), celsius 37",
        "t_after_us": T_AFTER_US,
        "v_detect_mV": -20.0,
        "n_propagate": 5,
        "rel_tol": REL_TOL,
        "threshold": "smallest current found to fire (bisection upper bound)",
        "python": platform.python_version(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"meta": meta, "cases": rows}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
