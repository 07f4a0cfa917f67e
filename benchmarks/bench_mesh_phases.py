"""Benchmark: where the time of a 3D lead mesh goes, phase by phase.

For each case, builds the mesh with :func:`vta.fem.mesh.build_mesh` ``--repeats`` times
in this process and reports the fastest of each phase: geometry (OpenCASCADE model and
Boolean fragments), gmsh's 1D, 2D and 3D meshing (gmsh's own wall and CPU times, from
its log), the conversion to skfem, nodes and tets.

Cases: ``example`` (examples/directional_vercise.toml: Vercise Directed, oblique, 0.1 mm
encapsulation), ``3389`` (Medtronic 3389 on its axis, 25 mm sphere)
and every catalogue model name (the canonical case of bench_directional_models.py: on
the axis, no encapsulation, 25 mm sphere centred on the first segmented level).

Run:  .venv/bin/python benchmarks/bench_mesh_phases.py [--cases example,3389]
      [--preset default] [--repeats 3]
Writes benchmarks/results/mesh_phases.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

import benchlib

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "mesh_phases.json"
_GMSH_PHASE = re.compile(r"Done meshing (\dD) \(Wall ([\d.e+-]+)s, CPU ([\d.e+-]+)s\)")
_VTA_PHASES = re.compile(r"geometry ([\d.]+) s, meshing ([\d.]+) s, conversion ([\d.]+) s")


def case(name: str):
    """(lead, placement, domain, encapsulation) of a named case."""
    from vta.fem.mesh import Domain, Encapsulation
    from vta.leads import LeadPlacement, get_lead

    if name == "example":
        return (get_lead("Boston Scientific Vercise Directed"),
                LeadPlacement.from_entry([10.0, 12.0, -8.0], [25.0, 30.0, 50.0], 0.0),
                Domain.sphere([10.5, 12.6, -6.0], 25.0), Encapsulation(0.1, 0.05))
    lead = get_lead("Medtronic 3389" if name == "3389" else name)
    axial = LeadPlacement.from_entry([0.0, 0.0, 0.0], [0.0, 0.0, 50.0], 0.0)
    segs = [c for c in lead.contacts() if c.arc_deg is not None]
    if not segs:
        return lead, axial, Domain.sphere([0.0, 0.0, 4.25], 25.0), None
    seg = min(segs, key=lambda c: (c.level, c.index))
    return lead, axial, Domain.sphere([0.0, 0.0, 0.5 * (seg.z_start_mm + seg.z_end_mm)], 25.0), None


class _Capture(logging.Handler):
    """Keeps the geometry/meshing/conversion times that build_mesh logs at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.times: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        m = _VTA_PHASES.search(record.getMessage())
        if m:
            self.times = {"geometry_s": float(m.group(1)), "meshing_s": float(m.group(2)),
                          "conversion_s": float(m.group(3))}


def build_once(name: str, preset: str) -> dict:
    """One mesh of a case, with its phase times."""
    import vta.fem.mesh_gmsh as mg
    from vta.fem.mesh import build_mesh

    lines: list[str] = []
    forward = mg._forward_gmsh_log

    def keep(gmsh) -> None:
        lines.extend(gmsh.logger.get())
        forward(gmsh)

    capture = _Capture()
    log = logging.getLogger("vta.fem.mesh")
    level, propagate = log.level, log.propagate
    log.setLevel(logging.DEBUG)
    log.propagate = False  # the DEBUG/INFO lines go to the capture only
    log.addHandler(capture)
    mg._forward_gmsh_log = keep
    try:
        t0 = time.perf_counter()
        lm = build_mesh(*case(name), preset=preset)
        total = time.perf_counter() - t0
    finally:
        mg._forward_gmsh_log = forward
        log.removeHandler(capture)
        log.setLevel(level)
        log.propagate = propagate
    row = {"case": name, "nodes": lm.n_nodes, "tets": lm.n_elements, "total_s": total,
           **capture.times}
    for line in lines:
        m = _GMSH_PHASE.search(line)
        if m:
            row[f"gmsh_{m.group(1)}_wall_s"] = float(m.group(2))
            row[f"gmsh_{m.group(1)}_cpu_s"] = float(m.group(3))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="example,Boston Scientific Vercise Directed,3389")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    build_once("3389", "fast")  # imports, gmsh start-up, numba prewarm: not timed
    rows = []
    for name in [c.strip() for c in args.cases.split(",") if c.strip()]:
        runs = [build_once(name, args.preset) for _ in range(args.repeats)]
        best = {k: min(r[k] for r in runs) for k in runs[0] if k.endswith("_s")}
        rows.append({"case": name, "preset": args.preset, "repeats": args.repeats,
                     "nodes": runs[0]["nodes"], "tets": runs[0]["tets"],
                     "deterministic": len({(r["nodes"], r["tets"]) for r in runs}) == 1, **best})
    print(f"{'case':<36} {'nodes':>7} {'tets':>7} {'geom':>5} {'1D':>5} {'2D':>5} {'3D':>5} "
          f"{'conv':>5} {'total':>5}  (s, best of {args.repeats}; gmsh wall)")
    for r in rows:
        print(f"{r['case'][:36]:<36} {r['nodes']:>7} {r['tets']:>7} {r.get('geometry_s', 0):5.2f} "
              f"{r.get('gmsh_1D_wall_s', 0):5.2f} {r.get('gmsh_2D_wall_s', 0):5.2f} {r.get('gmsh_3D_wall_s', 0):5.2f} "
              f"{r.get('conversion_s', 0):5.2f} {r['total_s']:5.2f}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"machine": benchlib.machine(), "rows": rows}, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
