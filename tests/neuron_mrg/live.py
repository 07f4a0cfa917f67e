"""NEURON thresholds of the MRG axon for a few point-source cases, printed as JSON.

Run in its own process by tests/test_axons.py so that NEURON is never loaded into the
test process (NEURON and VTK's offscreen OpenGL abort when they share a process):

    python tests/neuron_mrg/live.py WORKDIR '[[5.7, 41, 1.0, 60.0], ...]'

Each case is (fibre diameter um, nodes, distance mm, pulse width us); passive recharge,
dt 2 us, bisection to 0.5 %.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mrg_neuron as mn  # noqa: E402

DT_US = 2.0


def main(workdir: str, cases_json: str) -> None:
    import neuron
    from neuron import h

    mn.compile_mechanisms(Path(workdir))
    neuron.load_mechanisms(workdir)
    out = []
    for diameter, n_nodes, dist, pw in json.loads(cases_json):
        axon = mn.NeuronMRG(h, diameter, int(n_nodes), DT_US)
        axon.set_unit_ve(mn.point_source_ve(axon.x_mm, dist))
        w = mn.step_values(pw, "passive", DT_US, int(math.ceil((pw + 1500.0) / DT_US)))
        out.append({"case": [diameter, n_nodes, dist, pw], "x_mm": (axon.x_mm - axon.x_mm[0]).tolist(),
                    "threshold_mA": axon.threshold(w, start=1.0, rel_tol=0.005)})
        del axon
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
