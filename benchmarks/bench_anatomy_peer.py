"""Benchmark: the accuracy/speed ladder in heterogeneous anatomy, vta and OSS-DBS v2 side
by side in one run (issue 11, item 2).

The case: Medtronic 3389 with its tip in the right NAc of vta's default anatomy (MNI;
the placement of the target preset "NAc_R", computed once from the default anatomy and
then given to both tools as tip + direction), contact 1 at 1 mA current-controlled, the
other contacts floating, no encapsulation; a 20 mm sphere centred on the middle of the
contacts, outer boundary grounded; VTA = tissue with |E| >= 0.2 V/mm. Tissue: a 1 mm
tissue-class label NIfTI cut from the default anatomy's own GM/WM/CSF classes (1 GM,
2 WM, 3 CSF; the few background voxels, class 0, are written as WM, the conductivity
vta gives class 0), read by vta through ``[anatomy] tissue_nifti`` + ``tissue_labels``
and by OSS-DBS through ``MaterialDistribution.MRIPath`` + ``MRIMapping``. Conductivities
are constant per class: vta's ``colecole4`` model evaluated at the 130 Hz stimulation
frequency (GM 0.09149, WM 0.05905, CSF 2.0 S/m; vta's ``[tissue]`` takes a preset name,
not per-class numbers), and the same numbers in OSS-DBS's "Constant" dielectric model
(``CustomParameters``).

OSS-DBS looks voxels up by floor() of the voxel coordinate, vta at the nearest voxel
centre: OSS-DBS gets the map with its affine moved by -0.5 voxel (and, to show the
shift, the map as it is at some levels; ``peer_ossdbs.py --voxel-shift``).

vta: each preset runs in its own fresh process (whole-process wall time and peak RSS),
basis cache off (``VTA_BASIS_CACHE=off``), first with an empty mesh-template folder
(cold: gmsh meshes), then the same case again with that folder (template-warm: the
lead-local mesh template of the first run serves the mesh). Presets: fast, default,
fine, and "fine*s" = fine with every element size times s (finer settings).
Reference ("refspan"): ``bench_directional_models.reference_preset`` (fine with 0.015 mm
contact edges, bulk sizes times s, edge sizes times s^2) with, in addition, elements of
at most 0.5 mm * s within 5 mm of the contacts (vta gives each element the class of the
voxel at its centroid, so the voxel faces need small elements too), at s = 1, 0.8,
0.64, 0.512 (286k-1.08M DOFs). The impedance of each level is corrected for its mesh's
geometric error (contact edges, faceted lead surface), measured on the homogeneous twin
of the case (the same mesh, 0.2 S/m) against vta's axisymmetric solution (exact geometry,
refined by Richardson); then Richardson (``bench_directional.richardson``) where the
increments shrink, else the finest corrected level with a first-order tail as its
uncertainty. The VTA is the mean of the levels (it scatters by a few 0.01 %), with half
their spread. See :func:`reference`.
OSS-DBS: ``peer_ossdbs.py --case anatomy`` (own venv, 2 threads, Jacobi preconditioner,
21^3 lattice at 0.5 mm, its mesh-integrated VTA), whole-process wall time.

Run:  .venv/bin/python benchmarks/bench_anatomy_peer.py
      [--presets fast,default,fine,fine*0.8,fine*0.64] [--ref-scales 1,0.8,0.64,0.512]
      [--ossdbs-levels default,hp,hp_p3,fine,veryfine_hp] [--ossdbs-noshift-levels default,hp_p3]
      [--no-ref] [--no-vta] [--no-ossdbs] [--markdown] [--write-case DIR]
Writes benchmarks/results/bench_anatomy_peer.json (OSS-DBS rows also in
benchmarks/results/ossdbs_anatomy.json) and prints a table.
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
OUT = RESULTS / "bench_anatomy_peer.json"
OSSDBS_OUT = RESULTS / "ossdbs_anatomy.json"
LEAD = "Medtronic 3389"
TARGET = "NAc_R"
ACTIVE_CONTACT = 1
CURRENT_MA = 1.0
RADIUS_MM = 20.0
THRESHOLD_V_PER_MM = 0.2
TISSUE_MODEL = "colecole4"
FREQUENCY_HZ = 130.0
LABELS = {1: "GM", 2: "WM", 3: "CSF"}
MAP_MARGIN_MM = 4.0
#: accuracy levels (|error| in %) of the speed comparison
ACCURACY_LEVELS = (1.0, 0.5, 0.25, 0.15, 0.1, 0.05)


# --------------------------------------------------------------------------- the case
def write_case(folder: Path) -> Path:
    """Write the label NIfTI and the case JSON (tip, direction, sphere, conductivities)
    into ``folder``; return the JSON's path."""
    import nibabel as nib
    import numpy as np

    from vta.anatomy.conductivity import ConductivityModel
    from vta.anatomy.default import default_anatomy
    from vta.anatomy.targets import placement_for_target
    from vta.leads import get_lead

    folder.mkdir(parents=True, exist_ok=True)
    anatomy = default_anatomy()
    lead = get_lead(LEAD)
    placement = placement_for_target(TARGET, lead, anatomy)
    ext = lead.level_extents_mm()
    center = placement.to_world(np.array([0.0, 0.0, 0.5 * (ext[0][0] + ext[-1][1])]))
    # the voxels around the sphere (with a margin), on the default anatomy's own 1 mm grid
    img = anatomy.tissue
    inv = np.linalg.inv(img.affine)
    lo = inv[:3, :3] @ (center - RADIUS_MM - MAP_MARGIN_MM) + inv[:3, 3]
    hi = inv[:3, :3] @ (center + RADIUS_MM + MAP_MARGIN_MM) + inv[:3, 3]
    i0 = np.maximum(np.floor(np.minimum(lo, hi)).astype(int), 0)
    i1 = np.minimum(np.ceil(np.maximum(lo, hi)).astype(int) + 1, np.array(img.shape3))
    data = np.array(img.data[i0[0]:i1[0], i0[1]:i1[1], i0[2]:i1[2]], dtype=np.uint8)
    n_background = int((data == 0).sum())
    data[data == 0] = 2  # class 0 (outside the brain mask): WM, the conductivity vta gives it
    affine = np.array(img.affine, float)
    affine[:3, 3] = img.affine[:3, :3] @ i0 + img.affine[:3, 3]
    nifti = folder / "nac_r_tissue_classes_1mm.nii.gz"
    out = nib.Nifti1Image(data, affine)
    out.header.set_xyzt_units("mm")
    nib.save(out, str(nifti))
    model = ConductivityModel.preset(TISSUE_MODEL, FREQUENCY_HZ)
    counts = {LABELS[k]: int((data == k).sum()) for k in LABELS}
    case = {
        "lead": LEAD, "target": TARGET, "tip_mm": placement.tip_mm.tolist(),
        "direction": placement.direction.tolist(), "rotation_deg": 0.0,
        "domain_center_mm": center.tolist(), "domain_radius_mm": RADIUS_MM,
        "active_contact": ACTIVE_CONTACT, "current_mA": CURRENT_MA,
        "threshold_V_per_mm": THRESHOLD_V_PER_MM,
        "label_nifti": nifti.name, "labels": {str(k): v for k, v in LABELS.items()},
        "label_voxels": counts, "background_voxels_written_as_WM": n_background,
        "conductivity_S_per_m": {"GM": model.gm_S_per_m, "WM": model.wm_S_per_m, "CSF": model.csf_S_per_m},
        "conductivity_source": f"vta ConductivityModel.preset('{TISSUE_MODEL}', {FREQUENCY_HZ:g} Hz)",
        "map_source": "vta.anatomy.default.default_anatomy() tissue classes (MNI152 2009 GM/WM/CSF), "
                      f"cropped to the sphere's box + {MAP_MARGIN_MM:g} mm",
    }
    path = folder / "case.json"
    path.write_text(json.dumps(case, indent=1) + "\n")
    return path


def vta_config(case: dict, folder: Path, preset: str) -> dict:
    return {
        "lead": {"model": case["lead"], "tip_mm": case["tip_mm"], "direction": case["direction"],
                 "rotation_deg": case["rotation_deg"]},
        "anatomy": {"tissue_nifti": str(folder / case["label_nifti"]),
                    "tissue_labels": {str(k): v for k, v in LABELS.items()}, "space": "mni"},
        "domain": {"shape": "sphere", "radius_mm": case["domain_radius_mm"], "center_mm": case["domain_center_mm"],
                   "outer_boundary": "ground"},
        "tissue": {"model": TISSUE_MODEL},
        "stimulation": {"mode": "current", "contacts": {str(case["active_contact"]): -case["current_mA"]},
                        "pulse_width_us": 60, "frequency_hz": FREQUENCY_HZ},
        "vta": {"threshold_V_per_mm": case["threshold_V_per_mm"]},
        "output": {"nifti": False},
        "solver": {"method": "3d", "preset": preset},
    }


# --------------------------------------------------------------------------- vta runs
def _parse_preset(name: str) -> tuple[str, float]:
    """"fine*0.8" -> ("fine", 0.8); "reference*0.64" -> ("reference", 0.64)."""
    base, _, s = name.partition("*")
    return base, float(s) if s else 1.0


#: "refspan": the reference family with the bulk refined as well near the contacts:
#: elements of at most SPAN_SIZE_MM * s within SPAN_RADIUS_MM of the contact array (there
#: the voxel faces cut the elements, and vta samples each element's conductivity at its
#: centroid: the voxel field is represented better the smaller the elements)
SPAN_SIZE_MM = 0.5
SPAN_RADIUS_MM = 5.0


def reference_family(family: str, scale: float):
    """``"reference"``: :func:`bench_directional_models.reference_preset` (fine, 0.015 mm
    edges, bulk times s, edges times s^2); ``"refspan"``: the same plus a refined span."""
    from dataclasses import replace

    from bench_directional_models import reference_preset

    p = reference_preset(scale)
    if family == "refspan":
        p = replace(p, name=f"refspan*{scale:g}", size_span_mm=SPAN_SIZE_MM * scale, span_radius_mm=SPAN_RADIUS_MM)
    return p


#: conductivity of the homogeneous twin of the case (the same meshes without the anatomy)
TWIN_SIGMA_S_PER_M = 0.2


def _twin_config(cfg: dict) -> dict:
    """The homogeneous twin: the same lead, sphere and mesh, 0.2 S/m everywhere."""
    cfg = dict(cfg)
    cfg.pop("anatomy")
    cfg["tissue"] = {"conductivity_S_per_m": TWIN_SIGMA_S_PER_M}
    return cfg


def _child_axisymmetric(case_path: str, scale: float) -> dict:
    """The homogeneous twin on vta's axisymmetric path (exact geometry), "fine" at
    ``scale``: the converged value the 3D twin's geometric error is measured against."""
    import vta
    import vta.scene as scene_mod

    case = json.loads(Path(case_path).read_text())
    cfg = _twin_config(vta_config(case, Path(case_path).parent, "fine"))
    cfg["solver"]["method"] = "axisymmetric"
    original = scene_mod.build_axisymmetric_basis
    scene_mod.build_axisymmetric_basis = lambda *a, **k: original(*a, **k, size_scale=scale)
    scene = vta.Scene.from_dict(cfg, method="axisymmetric")
    sim = scene.simulate()
    return {"preset": f"axisymmetric fine*{scale:g}", "scale": scale, "dofs": int(scene.basis.mesh_info["dofs"]),
            "impedance_ohm": float(sim.state.impedance_ohm), "vta_mm3": float(sim.vta_volume_mm3)}


def _child(case_path: str, name: str, twin: bool = False) -> dict:
    """Run one case in this process (the child side of :func:`run_case`); ``twin``: its
    homogeneous twin on the same mesh."""
    t0 = time.perf_counter()
    import vta.scene as scene_mod
    from bench_directional_models import patch_mesh_builder, simulate_3d

    folder = Path(case_path).parent
    case = json.loads(Path(case_path).read_text())
    base, scale = _parse_preset(name)
    if base == "axisymmetric":
        return _child_axisymmetric(case_path, scale)
    custom = None
    if base in ("reference", "refspan"):
        custom, scale = reference_family(base, scale), 1.0
    cfg = vta_config(case, folder, "default" if custom is not None else base)
    if twin:
        cfg = _twin_config(cfg)
    built = patch_mesh_builder(scene_mod, custom, scale)
    return {"preset": name, **simulate_3d(cfg, built, time.perf_counter() - t0)}


def run_case(case_path: Path, name: str, templates: Path | None = None, timeout_s: float = 1200.0,
             twin: bool = False) -> dict:
    """One case in a fresh process: whole-process wall time and peak RSS. The basis cache
    is off; mesh templates too unless ``templates`` names their folder."""
    env = dict(os.environ, VTA_CACHE_DIR=str(templates) if templates else "off", VTA_BASIS_CACHE="off",
               PYTHONPATH=f"{HERE}{os.pathsep}{benchlib.ROOT}")
    code = ("import json, bench_anatomy_peer as b; "
            f"print('RESULT', json.dumps(b._child({str(case_path)!r}, {name!r}, {twin!r})))")
    from peer_ossdbs import run_measured  # the same whole-process wall time and peak RSS as the peer's

    with tempfile.TemporaryDirectory() as folder:
        log_path = os.path.join(folder, "run.log")
        rc, wall, peak_mb = run_measured([sys.executable, "-c", code], env, str(HERE), log_path, timeout_s)
        with open(log_path) as fh:
            output = fh.read()
    if rc:
        raise RuntimeError(f"vta {name}: exit {rc}\n{output[-2000:]}")
    row = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT"))[7:])
    row["wall_s"] = round(wall, 3)
    row["peak_mem_MB"] = round(peak_mb, 1)
    return row


def reference(levels: list[dict], axisymmetric: list[dict]) -> dict:
    """The reference from the refined levels, the impedance of each corrected for its
    mesh's geometric error, measured on the homogeneous twin of the case on the same mesh
    against the converged axisymmetric value (the error at the lead's contact edges and
    faceted surface, which the anatomy hardly changes: GM surrounds the active contact).

    For each of impedance and VTA: Richardson (``bench_directional.richardson``) on the
    corrected values when the last increments shrink; else, for a monotone sequence,
    the finest corrected value with the first-order tail ``|last increment| * r / (1 -
    r)`` (r = ratio of the last two scales) as its uncertainty; for a sequence that
    scatters, the mean of the corrected values with half their spread."""
    from bench_directional import richardson

    ax_h = [r["scale"] for r in axisymmetric]
    out = {"levels": levels, "axisymmetric_twin": axisymmetric,
           "method": "refined levels x (axisymmetric twin / 3D twin on the same mesh); see reference()"}
    h = [r["scale"] for r in levels]
    for key, name in (("impedance_ohm", "impedance"), ("vta_mm3", "vta")):
        ax = [r[key] for r in axisymmetric]
        exact, order = richardson(ax_h, ax) if len(ax) >= 3 else (ax[-1], None)
        out[f"twin_{key}"] = exact
        corrected = []
        for r in levels:
            r[f"twin_err_{name}_pct"] = 100 * (r[f"twin_{key}"] / exact - 1)
            # the VTA is not corrected: its mesh error is scatter (where the VTA boundary
            # cuts the elements), which differs between the twin and the anatomy case
            r[f"corrected_{key}"] = r[key] * exact / r[f"twin_{key}"] if name == "impedance" else r[key]
            corrected.append(r[f"corrected_{key}"])
        v = corrected
        value, order = richardson(h, v) if len(v) >= 3 else (v[-1], None)
        if order is not None:
            spread, how = abs(value - v[-1]), f"Richardson, observed order {order:.2f}"
        elif len(v) >= 3 and (v[-1] - v[-2]) * (v[-2] - v[-3]) > 0:
            ratio = h[-1] / h[-2]
            value, spread = v[-1], abs(v[-1] - v[-2]) * ratio / (1 - ratio)
            how = "finest corrected level; uncertainty: first-order tail of the last increment"
        else:
            value = sum(v) / len(v)
            spread, how = (max(v) - min(v)) / 2, "mean of the corrected levels; uncertainty: half their spread"
        out[key] = value
        out[f"{name}_order"] = order
        out[f"{name}_uncertainty_pct"] = 100 * spread / abs(value)
        out[f"{name}_how"] = how
        raw = [r[key] for r in levels]
        out[f"uncorrected_{key}"] = raw[-1]
    return out


# --------------------------------------------------------------------------- OSS-DBS runs
def run_ossdbs(case_path: Path, levels: list[str], shift: str, timeout_s: float) -> list[dict]:
    """OSS-DBS on the same case (``peer_ossdbs.py --case anatomy``), each level a whole
    process; returns its rows."""
    if not levels:
        return []
    out = RESULTS / "ossdbs_anatomy.json"
    cmd = [sys.executable, str(HERE / "peer_ossdbs.py"), "--case", "anatomy", "--anatomy-case", str(case_path),
           "--levels", *levels, "--voxel-shift", shift, "--threads", "2", "--timeout-s", str(timeout_s),
           "--out", str(out), "--merge"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(proc.stdout[-3000:], flush=True)
    if proc.returncode:
        print(f"  OSS-DBS: exit {proc.returncode}\n{proc.stderr[-1500:]}", flush=True)
    want = {"corrected": {-0.5}, "none": {0.0}, "both": {-0.5, 0.0}}[shift]
    rows = []
    for r in json.loads(out.read_text()) if out.exists() else []:
        if r.get("case") == "anatomy" and r.get("level") in levels and r.get("voxel_shift") in want:
            rows.append({k: r.get(k) for k in ("level", "voxel_shift", "dofs", "elements", "wall_s", "solve_s",
                                               "peak_mem_MB", "impedance_ohm", "vta_mm3", "fem_order",
                                               "ossdbs_version", "ngsolve_version", "returncode", "error")})
    return rows


# --------------------------------------------------------------------------- reporting
def add_errors(row: dict, ref: dict | None) -> dict:
    if ref and row.get("impedance_ohm") and row.get("vta_mm3"):
        row["impedance_err_pct"] = 100 * (row["impedance_ohm"] / ref["impedance_ohm"] - 1)
        row["vta_err_pct"] = 100 * (row["vta_mm3"] / ref["vta_mm3"] - 1)
    return row


def _rows(result: dict) -> list[tuple[str, dict]]:
    rows = [(f"vta {p}", r) for p, r in result.get("vta", {}).items()]
    rows += [(f"OSS-DBS {r['level']}" + ("" if r.get("voxel_shift") == -0.5 else " (no shift)"), r)
             for r in result.get("ossdbs", []) if r.get("impedance_ohm")]
    return rows


def speed_ratios(result: dict) -> list[dict]:
    """Per accuracy level: the fastest run of each tool within it (|impedance error|, and
    max(|impedance error|, |VTA error|)), and OSS-DBS wall / vta wall (template-warm and cold)."""
    vta_rows = [(p, r) for p, r in result.get("vta", {}).items() if "impedance_err_pct" in r]
    oss_rows = [(r["level"], r) for r in result.get("ossdbs", [])
                if r.get("voxel_shift") == -0.5 and "impedance_err_pct" in r]
    out = []
    for metric in ("impedance", "both"):
        def err(r):
            e = abs(r["impedance_err_pct"])
            return max(e, abs(r["vta_err_pct"])) if metric == "both" else e
        for level in ACCURACY_LEVELS:
            v = [(r["wall_s"], p, r) for p, r in vta_rows if err(r) <= level]
            vc = [(r.get("wall_cold_s", r["wall_s"]), p, r) for p, r in vta_rows if err(r) <= level]
            o = [(r["wall_s"], p, r) for p, r in oss_rows if err(r) <= level]
            entry = {"metric": metric, "accuracy_pct": level}
            if v:
                w, p, _ = min(v)
                entry.update(vta=p, vta_wall_s=w)
                wc, pc, _ = min(vc)
                entry.update(vta_cold=pc, vta_cold_wall_s=wc)
            if o:
                w, p, _ = min(o)
                entry.update(ossdbs=p, ossdbs_wall_s=w)
            if v and o:
                entry["ratio"] = entry["ossdbs_wall_s"] / entry["vta_wall_s"]
                entry["ratio_cold"] = entry["ossdbs_wall_s"] / entry["vta_cold_wall_s"]
            out.append(entry)
    return out


def _fmt(v, fmt, dash="-"):
    return format(v, fmt) if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else dash


def _wall(row: dict) -> str:
    cold = row.get("wall_cold_s")
    return f"{row['wall_s']:.1f}" + (f" ({cold:.1f})" if cold is not None else "")


def print_table(result: dict) -> None:
    ref = result.get("reference") or {}
    print(f"\nreference: Z {ref.get('impedance_ohm', math.nan):.3f} ohm (+-{ref.get('impedance_uncertainty_pct', math.nan):.3f} %; "
          f"{ref.get('impedance_how', '')}), VTA {ref.get('vta_mm3', math.nan):.3f} mm^3 "
          f"(+-{ref.get('vta_uncertainty_pct', math.nan):.3f} %; {ref.get('vta_how', '')})")
    for r in ref.get("levels", []):
        if "corrected_impedance_ohm" in r:
            print(f"  {r['preset']:16s} {r['dofs']:>9,d} DOFs  Z {r['impedance_ohm']:.3f} -> {r['corrected_impedance_ohm']:.3f} "
                  f"(twin {r['twin_err_impedance_pct']:+.3f} %)  VTA {r['vta_mm3']:.4f} -> {r['corrected_vta_mm3']:.4f} "
                  f"(twin {r['twin_err_vta_pct']:+.3f} %)")
    hdr = f"{'tool, level':30s} {'DOFs':>9s} {'wall s (cold)':>14s} {'MB':>6s} {'Z ohm':>9s} {'Z err':>8s} {'VTA mm3':>9s} {'VTA err':>8s}"
    print(hdr + "\n" + "-" * len(hdr))
    for name, r in _rows(result):
        print(f"{name:30s} {_fmt(r.get('dofs'), '9,d')} {_wall(r):>14s} {_fmt(r.get('peak_mem_MB'), '6.0f')} "
              f"{r['impedance_ohm']:9.2f} {_fmt(r.get('impedance_err_pct'), '+7.2f')}% {r['vta_mm3']:9.3f} "
              f"{_fmt(r.get('vta_err_pct'), '+7.2f')}%", flush=True)
    for e in result.get("ratios", []):
        print(f"  {e['metric']:9s} <= {e['accuracy_pct']:.2f} %: vta {e.get('vta', '-')} {_fmt(e.get('vta_wall_s'), '.1f')} s "
              f"(cold {e.get('vta_cold', '-')} {_fmt(e.get('vta_cold_wall_s'), '.1f')} s), "
              f"OSS-DBS {e.get('ossdbs', '-')} {_fmt(e.get('ossdbs_wall_s'), '.1f')} s: "
              f"ratio {_fmt(e.get('ratio'), '.2f')}x (cold {_fmt(e.get('ratio_cold'), '.2f')}x)")


def markdown(result: dict) -> str:
    ref = result.get("reference") or {}
    lines = [f"Reference: impedance **{ref.get('impedance_ohm', math.nan):.2f} Ω** "
             f"(±{ref.get('impedance_uncertainty_pct', math.nan):.2f} %), VTA **{ref.get('vta_mm3', math.nan):.3f} mm³** "
             f"(±{ref.get('vta_uncertainty_pct', math.nan):.2f} %)", "",
             "| tool, level | DOFs | wall s (cold) | peak MB | Z Ω | Z err | VTA mm³ | VTA err |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in _rows(result):
        bold = "**" if name == "vta default" else ""
        lines.append(f"| {bold}{name}{bold} | {_fmt(r.get('dofs'), ',d')} | {_wall(r)} | {_fmt(r.get('peak_mem_MB'), '.0f')} | "
                     f"{r['impedance_ohm']:.2f} | {_fmt(r.get('impedance_err_pct'), '+.2f')} % | {r['vta_mm3']:.3f} | "
                     f"{_fmt(r.get('vta_err_pct'), '+.2f')} % |")
    lines += ["", "| accuracy | metric | vta fastest (warm s) | vta fastest cold (s) | OSS-DBS fastest (s) | ratio warm | ratio cold |",
              "|---|---|---|---|---|---|---|"]
    for e in result.get("ratios", []):
        metric = "impedance" if e["metric"] == "impedance" else "impedance and VTA"
        lines.append(f"| ≤ {e['accuracy_pct']:g} % | {metric} | {e.get('vta', 'not reached')} {_fmt(e.get('vta_wall_s'), '.1f', '')} | "
                     f"{e.get('vta_cold', 'not reached')} {_fmt(e.get('vta_cold_wall_s'), '.1f', '')} | "
                     f"{e.get('ossdbs', 'not reached')} {_fmt(e.get('ossdbs_wall_s'), '.1f', '')} | "
                     f"{_fmt(e.get('ratio'), '.1f')}x | {_fmt(e.get('ratio_cold'), '.1f')}x |")
    return "\n".join(lines)


def refresh(result: dict) -> None:
    ref = result.get("reference")
    for r in result.get("vta", {}).values():
        add_errors(r, ref)
    for r in result.get("ossdbs", []):
        add_errors(r, ref)
    result["ratios"] = speed_ratios(result)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="fast,default,fine,fine*0.8,fine*0.64")
    ap.add_argument("--ref-scales", default="1,0.8,0.64,0.512")
    ap.add_argument("--axisymmetric-scales", default="0.7,0.5,0.35",
                    help="mesh scales of the axisymmetric twin (the converged homogeneous value)")
    ap.add_argument("--ref-family", default="refspan", choices=["reference", "refspan"],
                    help="'reference': bench_directional_models.reference_preset; 'refspan' (default): "
                         f"the same with elements <= {SPAN_SIZE_MM:g} mm * s within {SPAN_RADIUS_MM:g} mm of the contacts")
    ap.add_argument("--ossdbs-levels", default="default,hp,hp_p3,fine,veryfine_hp")
    ap.add_argument("--ossdbs-noshift-levels", default="default,hp_p3",
                    help="OSS-DBS levels also run with the label map unshifted (to show the half-voxel shift)")
    ap.add_argument("--ossdbs-timeout-s", type=float, default=900.0)
    ap.add_argument("--no-ref", action="store_true", help="keep the stored reference")
    ap.add_argument("--no-vta", action="store_true", help="keep the stored vta rows")
    ap.add_argument("--no-ossdbs", action="store_true", help="keep the stored OSS-DBS rows")
    ap.add_argument("--markdown", action="store_true", help="print the stored results as Markdown and exit")
    ap.add_argument("--write-case", metavar="DIR", help="only write the label map and case JSON into DIR")
    ap.add_argument("--workdir", help="folder for the case files (default: a temporary folder)")
    args = ap.parse_args()
    stored = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.markdown:
        refresh(stored)
        print(markdown(stored))
        return 0
    if args.write_case:
        print(write_case(Path(args.write_case).resolve()))
        return 0

    folder = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="vta_anatomy_peer_"))
    case_path = write_case(folder)
    case = json.loads(case_path.read_text())
    print(f"case: {case_path}; tip {case['tip_mm']}, direction {case['direction']}, centre "
          f"{case['domain_center_mm']}, voxels {case['label_voxels']} (+{case['background_voxels_written_as_WM']} "
          f"background as WM)", flush=True)
    result = {"case": __doc__.split("\n\n")[1], "case_definition": case, "machine": benchlib.machine(),
              "reference": stored.get("reference"), "vta": stored.get("vta", {}), "ossdbs": stored.get("ossdbs", [])}

    def save():
        refresh(result)
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps(result, indent=1) + "\n")

    if not args.no_ref:
        levels = []
        for s in [float(v) for v in args.ref_scales.split(",")]:
            with tempfile.TemporaryDirectory() as templates:  # the twin gets the very same mesh
                row = run_case(case_path, f"{args.ref_family}*{s:g}", templates=Path(templates))
                twin = run_case(case_path, f"{args.ref_family}*{s:g}", templates=Path(templates), twin=True)
            if not twin["mesh_from_template"] or twin["tets"] != row["tets"]:
                raise RuntimeError(f"the homogeneous twin of {args.ref_family}*{s:g} did not get the same mesh")
            row.update(scale=s, twin_impedance_ohm=twin["impedance_ohm"], twin_vta_mm3=twin["vta_mm3"],
                       twin_dofs=twin["dofs"])
            levels.append(row)
            print(f"  {args.ref_family}*{s:g}: {row['dofs']} DOFs, {row['wall_s']:.1f} s, {row['peak_mem_MB']:.0f} MB, "
                  f"Z {row['impedance_ohm']:.3f} ohm, VTA {row['vta_mm3']:.4f} mm^3; homogeneous twin "
                  f"Z {twin['impedance_ohm']:.3f} ohm, VTA {twin['vta_mm3']:.4f} mm^3", flush=True)
        axi = []
        for s in [float(v) for v in args.axisymmetric_scales.split(",")]:
            row = run_case(case_path, f"axisymmetric*{s:g}")
            axi.append(row)
            print(f"  twin, axisymmetric fine*{s:g}: {row['dofs']} DOFs, Z {row['impedance_ohm']:.4f} ohm, "
                  f"VTA {row['vta_mm3']:.4f} mm^3", flush=True)
        result["reference"] = reference(levels, axi)
        result["reference"]["family"] = args.ref_family
        save()
    if not args.no_vta:
        result["vta"] = {}
        for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
            with tempfile.TemporaryDirectory() as templates:
                cold = run_case(case_path, preset, templates=Path(templates))
                row = run_case(case_path, preset, templates=Path(templates))
            row["wall_cold_s"], row["mesh_cold_s"], row["peak_mem_cold_MB"] = (cold["wall_s"], cold["mesh_s"],
                                                                                cold["peak_mem_MB"])
            row["warm_vs_cold_impedance_rel"] = row["impedance_ohm"] / cold["impedance_ohm"] - 1
            row["warm_vs_cold_vta_rel"] = row["vta_mm3"] / cold["vta_mm3"] - 1
            result["vta"][preset] = row
            print(f"  vta {preset}: {row['dofs']} DOFs, warm {row['wall_s']:.1f} s (template: "
                  f"{row['mesh_from_template']}), cold {cold['wall_s']:.1f} s, Z {row['impedance_ohm']:.3f} ohm, "
                  f"VTA {row['vta_mm3']:.4f} mm^3", flush=True)
            save()
    if not args.no_ossdbs:
        levels = [v for v in args.ossdbs_levels.split(",") if v]
        noshift = [v for v in args.ossdbs_noshift_levels.split(",") if v]
        rows = run_ossdbs(case_path, levels, "corrected", args.ossdbs_timeout_s)
        rows += run_ossdbs(case_path, noshift, "none", args.ossdbs_timeout_s)
        result["ossdbs"] = rows
        save()
    save()
    print_table(result)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
