"""Benchmark: every directional lead of the catalogue on one canonical case, the default
preset against a converged reference of the same model.

The case (the same for every model, and the one ``peer_ossdbs.py --case directional``
gives OSS-DBS): tip at the origin pointing +z, rotation 0; the first segment of the most
distal segmented level at 1 mA (current-controlled), every other contact floating;
homogeneous 0.2 S/m, no encapsulation; a 25 mm sphere centred on the axis at the middle
of the active level, outer boundary grounded; VTA = tissue with |E| >= 0.2 V/mm.

The reference: :func:`reference_preset` at the refinements ``--ref-scales``; impedance
and VTA extrapolated by
Richardson from the last three levels (observed order), or, with two levels or a
sequence that is not monotone, the finest value with the last increment as its
uncertainty.

Each model runs in its own process (a fresh interpreter: whole-process wall time), with
the basis cache off: once with an empty mesh-template folder (cold: gmsh meshes) and once
with the lead moved and turned (tip, axis and rotation changed, the same relative domain),
where the lead-local template of the first run serves the mesh; the table's wall time is
the second, with the cold one in brackets. Models run in
order, and the JSON is rewritten after each model so that an interrupted run keeps what
it finished; ``--resume`` skips models whose reference is stored.

Run:  .venv/bin/python benchmarks/bench_directional_models.py [--models A,B] [--resume]
      [--presets default] [--ref-scales 1,0.8,0.64] [--no-ref]
Writes benchmarks/results/bench_directional_models.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUT = RESULTS / "bench_directional_models.json"
CURRENT_MA = 1.0
SIGMA_S_PER_M = 0.2
RADIUS_MM = 25.0


def directional_models() -> list[str]:
    """The catalogue's leads with at least one segmented level."""
    from vta.leads import lead_catalogue

    return [name for name, lead in lead_catalogue().items() if any(c.arc_deg is not None for c in lead.contacts())]


def canonical_case(model: str) -> tuple[dict, int, float]:
    """The config dict of the canonical case for ``model``, the active contact index
    (0-based) and the z (mm from the tip) of the active level's middle."""
    from vta.leads import get_lead

    lead = get_lead(model)
    seg = min((c for c in lead.contacts() if c.arc_deg is not None), key=lambda c: (c.level, c.index))
    zc = 0.5 * (seg.z_start_mm + seg.z_end_mm)
    cfg = {
        "lead": {"model": model, "tip_mm": [0.0, 0.0, 0.0], "entry_mm": [0.0, 0.0, 50.0], "rotation_deg": 0.0},
        "domain": {"shape": "sphere", "radius_mm": RADIUS_MM, "center_mm": [0.0, 0.0, zc], "outer_boundary": "ground"},
        "tissue": {"conductivity_S_per_m": SIGMA_S_PER_M},
        "stimulation": {"mode": "current", "contacts": {str(seg.index): -CURRENT_MA}, "pulse_width_us": 60},
        "vta": {"threshold_V_per_mm": 0.2},
        "output": {"nifti": False},
        "solver": {"method": "3d"},
    }
    return cfg, seg.index, zc


def reference_preset(scale: float):
    """The reference family at refinement ``scale`` (1 = the coarsest level): "fine" with
    every element size times ``scale`` and the contact-edge sizes (0.015 mm at 1) times
    ``scale**2``. The potential is singular at the edges (~ d^1/2); refining them only
    in step with the rest converges at first order (measured: order ~0.9 on SenSight),
    grading them faster restores second order. Isotropic edges (no edge layers): the
    family of the stored references (December 2026)."""
    from dataclasses import replace

    from vta.fem.mesh_domain import PRESETS

    base = replace(PRESETS["fine"], size_edge_mm=0.015, edge_growth=0.35, segment_edge_mm=0.015,
                   segment_edge_growth=0.35, edge_layers=0)
    p = base.scaled(scale)
    return replace(p, name=f"reference*{scale:g}", size_edge_mm=base.size_edge_mm * scale ** 2,
                   segment_edge_mm=base.segment_edge_mm * scale ** 2)


#: the rigid motion of the "moved" runs: another tip, an oblique axis, a rotation
MOVED_TIP_MM = (12.0, -7.0, 4.0)
MOVED_DIRECTION = (0.25, 0.15, 1.0)
MOVED_ROTATION_DEG = 35.0


def moved_case(cfg: dict, zc: float) -> dict:
    """The canonical case moved rigidly (homogeneous tissue: the same physics, so the
    same impedance and VTA; the lead-local mesh template of the first placement serves it)."""
    import numpy as np

    tip = np.array(MOVED_TIP_MM)
    d = np.array(MOVED_DIRECTION) / np.linalg.norm(MOVED_DIRECTION)
    cfg["lead"].update(tip_mm=tip.tolist(), entry_mm=(tip + 50.0 * d).tolist(), rotation_deg=MOVED_ROTATION_DEG)
    cfg["domain"]["center_mm"] = (tip + zc * d).tolist()
    return cfg


def patch_mesh_builder(scene_mod, custom, scale: float) -> dict:
    """Make ``vta.scene`` mesh with the sizes of ``custom`` (a MeshPreset; None: the
    configured preset) times ``scale``. Returns a dict in which each build records
    ``from_template`` (whether the mesh came from a lead-local template)."""
    original = scene_mod.build_mesh
    built: dict = {}

    def build_mesh(*args, **kwargs):
        if custom is not None:
            kwargs["preset"] = custom
        mesh = original(*args, **kwargs, scale=scale)
        built["from_template"] = bool(getattr(mesh, "from_template", False))
        return mesh

    scene_mod.build_mesh = build_mesh
    return built


def _child(model: str, preset: str, scale: float, moved: bool = False) -> dict:
    """Run one case in this process (the child side of :func:`run_case`)."""
    t0 = time.perf_counter()
    import vta.scene as scene_mod

    cfg, index, zc = canonical_case(model)
    if moved:
        cfg = moved_case(cfg, zc)
    custom = None
    if preset == "reference":
        custom, mesh_scale = reference_preset(scale), 1.0
    else:
        mesh_scale = scale
    cfg["solver"]["preset"] = "default" if custom is not None else preset
    built = patch_mesh_builder(scene_mod, custom, mesh_scale)
    return {"model": model, "preset": preset, "scale": scale, "active_contact": index, "level_center_z_mm": zc,
            **simulate_3d(cfg, built, time.perf_counter() - t0)}


def simulate_3d(cfg: dict, built: dict, import_s: float) -> dict:
    """Simulate ``cfg`` on the 3D path (mesh builder patched by :func:`patch_mesh_builder`,
    which fills ``built``); the row fields every child reports: DOFs, tets, import, mesh
    and solve seconds, impedance, VTA, whether the mesh came from a template."""
    import vta

    scene = vta.Scene.from_dict(cfg, method="3d")
    sim = scene.simulate()
    basis = scene.basis
    return {
        "dofs": int(basis.mesh_info["dofs"]), "tets": int(basis.mesh_info["elements"]),
        "import_s": round(import_s, 3),
        "mesh_s": round(float(basis.timings.get("mesh", math.nan)), 3),
        "solve_s": round(float(basis.timings.get("total", math.nan)), 3),
        "impedance_ohm": float(sim.state.impedance_ohm), "vta_mm3": float(sim.vta_volume_mm3),
        "mesh_from_template": built.get("from_template", False),
    }


def run_case(model: str, preset: str, scale: float = 1.0, templates: Path | None = None,
             moved: bool = False) -> dict:
    """One case in a fresh process; adds the whole-process wall time. The basis cache is
    off; mesh templates are off too unless ``templates`` names their cache folder."""
    env = dict(os.environ, VTA_CACHE_DIR=str(templates) if templates else "off", VTA_BASIS_CACHE="off",
               PYTHONPATH=f"{HERE}{os.pathsep}{benchlib.ROOT}")
    code = ("import json, sys, bench_directional_models as b; "
            f"print('RESULT', json.dumps(b._child({model!r}, {preset!r}, {scale!r}, {moved!r})))")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=HERE)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{model} {preset}*{scale}: exit {proc.returncode}\n{err[-2000:]}")
    row = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[7:])
    row["wall_s"] = round(wall, 3)
    return row


def reference(levels: list[dict]) -> dict:
    """Extrapolated impedance and VTA (with uncertainty) from the reference levels."""
    from bench_directional import richardson

    h = [r["scale"] for r in levels]
    out = {"levels": levels}
    for key, name in (("impedance_ohm", "impedance"), ("vta_mm3", "vta")):
        v = [r[key] for r in levels]
        value, order = richardson(h, v) if len(v) >= 3 else (v[-1], None)
        spread = abs(value - v[-1]) if order is not None else (abs(v[-1] - v[-2]) if len(v) > 1 else math.nan)
        out[key] = value
        out[f"{name}_order"] = order
        out[f"{name}_uncertainty_pct"] = 100 * spread / abs(value)
    return out


def run_ossdbs(model: str, levels: list[str], ref: dict | None) -> dict:
    """OSS-DBS v2 on the same case (``peer_ossdbs.py --case directional``), each level a
    whole process; rows with their errors against this model's reference."""
    out = RESULTS / "ossdbs_directional_side_by_side.json"
    cmd = [sys.executable, str(HERE / "peer_ossdbs.py"), "--case", "directional", "--leads", model,
           "--levels", *levels, "--threads", "2", "--lattice-n", "21", "--lattice-mm", "0.5", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"OSS-DBS on {model}: exit {proc.returncode}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    rows = {}
    for r in json.loads(out.read_text()):
        if r.get("vta_model") != model or r.get("level") not in levels:
            continue
        row = {k: r.get(k) for k in ("level", "dofs", "wall_s", "solve_s", "peak_mem_MB", "impedance_ohm", "vta_mm3",
                                     "ossdbs_version", "ngsolve_version")}
        if ref:
            row["impedance_err_pct"] = 100 * (row["impedance_ohm"] / ref["impedance_ohm"] - 1)
            row["vta_err_pct"] = 100 * (row["vta_mm3"] / ref["vta_mm3"] - 1)
        rows[r["level"]] = row
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="", help="comma-separated models (default: every directional model)")
    ap.add_argument("--presets", default="default")
    ap.add_argument("--ref-scales", default="1,0.8,0.64")
    ap.add_argument("--resume", action="store_true", help="keep stored references")
    ap.add_argument("--no-ref", action="store_true", help="presets only, against the stored references")
    ap.add_argument("--markdown", action="store_true", help="print the stored results as a Markdown table and exit")
    ap.add_argument("--with-ossdbs", default="", metavar="LEVELS",
                    help="also run OSS-DBS (benchmarks/peer_ossdbs.py, its own venv) at these levels, "
                         "e.g. default,hp,hp_p3, right after vta on each model: side by side in one run")
    args = ap.parse_args()
    stored = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.markdown:
        print(markdown(stored.get("models", {})))
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()] or directional_models()
    result = {"case": __doc__.split("\n\n")[1], "machine": benchlib.machine(), "models": stored.get("models", {})}
    scales = [float(s) for s in args.ref_scales.split(",")]
    for model in models:
        entry = result["models"].setdefault(model, {})
        if not (args.no_ref or (args.resume and "reference" in entry)):
            levels = []
            for s in scales:
                row = run_case(model, "reference", s)
                levels.append(row)
                print(f"  {model} reference*{s:g}: {row['dofs']} DOFs, {row['wall_s']:.1f} s, "
                      f"Z {row['impedance_ohm']:.3f} ohm, VTA {row['vta_mm3']:.4f} mm^3", flush=True)
            entry["reference"] = reference(levels)
        ref = entry.get("reference")
        entry["presets"] = {}
        for preset in args.presets.split(","):
            # cold: an empty template folder (gmsh meshes); then the lead moved and turned:
            # the template of the first placement serves it (the planner's lead move, a cohort)
            with tempfile.TemporaryDirectory() as folder:
                cold = run_case(model, preset, templates=Path(folder))
                row = run_case(model, preset, templates=Path(folder), moved=True)
            row["wall_cold_s"], row["mesh_cold_s"] = cold["wall_s"], cold["mesh_s"]
            row["moved_vs_cold_impedance_rel"] = row["impedance_ohm"] / cold["impedance_ohm"] - 1
            row["moved_vs_cold_vta_rel"] = row["vta_mm3"] / cold["vta_mm3"] - 1
            if ref:
                row["impedance_err_pct"] = 100 * (row["impedance_ohm"] / ref["impedance_ohm"] - 1)
                row["vta_err_pct"] = 100 * (row["vta_mm3"] / ref["vta_mm3"] - 1)
            entry["presets"][preset] = row
        if args.with_ossdbs:
            try:
                entry["ossdbs"] = run_ossdbs(model, args.with_ossdbs.split(","), ref)
            except RuntimeError as exc:  # e.g. a model OSS-DBS does not ship
                entry["ossdbs"] = {}
                entry["ossdbs_error"] = str(exc).splitlines()[0]
                print(f"  OSS-DBS: {entry['ossdbs_error']}", flush=True)
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps(result, indent=1) + "\n")
        print_table({model: entry})
    print(f"wrote {OUT}")
    return 0


def markdown(models: dict) -> str:
    """One row per model and tool/level: DOFs, whole-process wall time, impedance and VTA
    errors against the model's reference (with the reference and its uncertainty)."""
    lines = ["| model | reference Z Ω / VTA mm³ (±) | tool, level | DOFs | wall s (cold) | Z err | VTA err |",
             "|---|---|---|---|---|---|---|"]
    for model, entry in models.items():
        ref = entry.get("reference")
        if not ref:
            continue
        ref_txt = (f"{ref['impedance_ohm']:.1f} / {ref['vta_mm3']:.3f} (±{ref['impedance_uncertainty_pct']:.2f} % / "
                   f"±{ref['vta_uncertainty_pct']:.2f} %)")
        rows = [(f"vta {p}", r) for p, r in entry.get("presets", {}).items()]
        rows += [(f"OSS-DBS {lv}", r) for lv, r in entry.get("ossdbs", {}).items()]
        for i, (name, r) in enumerate(rows):
            bold = "**" if name == "vta default" else ""
            lines.append(f"| {model if i == 0 else ''} | {ref_txt if i == 0 else ''} | {bold}{name}{bold} | "
                         f"{r['dofs']:,} | {_wall(r)} | {r['impedance_err_pct']:+.2f} % | "
                         f"{r['vta_err_pct']:+.2f} % |")
    return "\n".join(lines)


def _wall(row: dict) -> str:
    """Whole-process seconds; for vta rows the template-warm run, with the cold one
    (gmsh meshing) in brackets."""
    cold = row.get("wall_cold_s")
    return f"{row['wall_s']:.1f}" + (f" ({cold:.1f})" if cold is not None else "")


def print_table(models: dict) -> None:
    for model, entry in models.items():
        ref = entry.get("reference", {})
        rows = [(f"vta {p}", r) for p, r in entry.get("presets", {}).items()]
        rows += [(f"OSS-DBS {lv}", r) for lv, r in entry.get("ossdbs", {}).items()]
        for preset, row in rows:
            print(f"{model:<38} {preset:>15} {row['dofs']:>8} {_wall(row):>11} s  "
                  f"Z {row['impedance_ohm']:>8.2f} ({row.get('impedance_err_pct', math.nan):+.2f} %)  "
                  f"VTA {row['vta_mm3']:>7.3f} ({row.get('vta_err_pct', math.nan):+.2f} %)  "
                  f"ref Z {ref.get('impedance_ohm', math.nan):.2f} VTA {ref.get('vta_mm3', math.nan):.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
