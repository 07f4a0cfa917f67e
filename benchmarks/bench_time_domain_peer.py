"""Benchmark: vta's time-domain run beside OSS-DBS v2 on the 3389 pulse case (issue 13).

The case of ``benchmarks/peer_ossdbs_td.py`` (Medtronic 3389, contact 1 active, the
others floating, grounded 25 mm sphere centred at (0, 0, 4.25) mm, homogeneous grey
matter with the Gabriel 4-Cole-Cole dispersion, no encapsulation), a 130 Hz, 60 us
symmetric biphasic pulse, cut-off 1 MHz (OSS-DBS's default), voltage-controlled
(-1 V on contact 1 against the grounded sphere) and current-controlled (1 mA).

vta side (this script):

- a **reference** per mode: solver preset "fine", spectrum "full" (every harmonic up
  to 1 MHz, 7,692), in-process, evaluated at the points of
  ``peer_ossdbs_td.sample_points`` only (a full plan on the 0.25 mm output grid would
  need 7,692 field phasors per voxel);
- **timed runs** (``VTA_RUNS``): ``python -m vta run`` on a generated TOML, a fresh
  process each (whole-process wall time and peak RSS via ``os.wait4``, basis cache
  off), at preset default/fine (axisymmetric, which ``method = "auto"`` picks here) and
  the 3D default, spectrum octave / adaptive; every run also reports |E|(t) at the same
  points (``[signal] points_mm``), from which the revolved time-domain VTA is formed
  exactly as for OSS-DBS (``peer_ossdbs_td.revolved_vta_mm3``). The "probes only" runs
  evaluate the 3 probes instead of the 1,400 points (vta's own voxel-grid VTA and
  waveforms only): the cost of a plain run.

Columns: solves = solve frequencies (OSS-DBS: FEM solves, 0 Hz included in full
mode); VTA err, Z err (|Z| at 130 Hz), maxZerr / maxPh (largest |Z| error in % and
phase error in degrees at the tool's solve frequencies), wave (largest potential error
at the probes over the pulse, relative to the peak, away from the steps), pkE med
(median relative error of the peak |E| where the reference is 0.5-2x the threshold),
all against the reference of the mode.

Then it reads ``benchmarks/results/time_domain_peer_ossdbs.json`` (run
``peer_ossdbs_td.py`` first; without it only vta's rows are printed) and compares both
tools against the reference: the impedance spectrum at OSS-DBS's solve frequencies, the
potential over the pulse at 1, 2, 3 mm from the axis at the contact's centre height,
the revolved time-domain VTA (peak |E| over the pulse >= 0.2 V/mm), wall time and
memory. Prints the tables and writes ``benchmarks/results/time_domain_peer.json``.

    python benchmarks/bench_time_domain_peer.py
    python benchmarks/bench_time_domain_peer.py --modes voltage --no-reference   # reuse the stored reference
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import benchlib  # noqa: E402,F401  (two cores, thread counts; before numpy)
import numpy as np  # noqa: E402

import peer_ossdbs as po  # noqa: E402
import peer_ossdbs_td as ptd  # noqa: E402

OUT = HERE / "results" / "time_domain_peer.json"
PEER = HERE / "results" / "time_domain_peer_ossdbs.json"
GM_130HZ_S_PER_M = 0.0915        # Re sigma* of GM at 130 Hz: only the quasi-static run uses it

#: timed vta runs: name -> (preset, [signal] keys)
VTA_RUNS = {
    "default: octave": ("default", {"spectrum": "octave"}),
    "default: adaptive 1e-3": ("default", {"spectrum": "adaptive", "tolerance": 1e-3}),
    "default: adaptive 1e-4": ("default", {"spectrum": "adaptive", "tolerance": 1e-4}),
    "fine: adaptive 1e-4": ("fine", {"spectrum": "adaptive", "tolerance": 1e-4}),
    "default: octave, auto cut-off": ("default", {"spectrum": "octave", "cutoff_hz": None}),
    # the same without the 1,400 evaluation points (only the 3 probes): vta's own
    # outputs (voxel-grid VTA, waveforms), no revolved VTA; shows the cost of the points
    "default: adaptive 1e-3, probes only": ("default", {"spectrum": "adaptive", "tolerance": 1e-3}),
    # the general (3D tetrahedral) path, which directional leads and anatomy use
    "3d default: adaptive 1e-3": ("3d:default", {"spectrum": "adaptive", "tolerance": 1e-3}),
    "3d default: adaptive 1e-3, probes only": ("3d:default", {"spectrum": "adaptive", "tolerance": 1e-3}),
}
PROBES_ONLY = {"default: adaptive 1e-3, probes only", "3d default: adaptive 1e-3, probes only"}


def scene_dict(mode: str, preset: str, signal: dict, points: list | None) -> dict:
    amp = ptd.VOLTAGE_V if mode == "voltage" else ptd.CURRENT_MA
    sig = {"shape": "biphasic", "interphase_gap_us": 0, "cutoff_hz": ptd.CUTOFF_HZ, **signal}
    if sig.get("cutoff_hz") is None:
        sig.pop("cutoff_hz")
    if points:
        sig["points_mm"] = points
    return {
        "lead": {"model": "Medtronic 3389", "tip_mm": list(po.TIP_MM), "direction": list(po.DIRECTION)},
        "domain": {"shape": "sphere", "radius_mm": po.DOMAIN_RADIUS_MM, "center_mm": list(po.DOMAIN_CENTER_MM),
                   "outer_boundary": "ground"},
        "tissue": {"conductivity_S_per_m": GM_130HZ_S_PER_M, "dispersive_tissue": "GM",
                   "encapsulation_thickness_mm": 0.0},
        "stimulation": {"mode": mode, "contacts": {str(po.VTA_CONTACT_0BASED): amp},
                        "pulse_width_us": ptd.PULSE_WIDTH_US, "frequency_hz": ptd.FREQUENCY_HZ},
        "solver": ({"preset": preset.split(":")[1], "method": "3d"} if preset.startswith("3d:")
                   else {"preset": preset}),
        "signal": sig,
        "vta": {"threshold_V_per_mm": ptd.THRESHOLD_V_PER_MM},
    }


def _toml(d: dict) -> str:
    """A minimal TOML writer for scene_dict (tables of scalars, lists, inline tables)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + " }"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(float(v)) if isinstance(v, float) else str(v)
    return "\n".join(f"[{name}]\n" + "\n".join(f"{k} = {val(v)}" for k, v in table.items()) + "\n"
                     for name, table in d.items())


def reference(mode: str) -> dict:
    """vta at preset fine, full spectrum, at the sample points (in-process)."""
    from vta.fem.grid import VoxelGrid
    from vta.scene import Scene
    from vta.timedomain.run import simulate_time_domain

    pts = ptd.sample_points()
    scene = Scene.from_dict(scene_dict(mode, "fine", {"spectrum": "full"}, pts.tolist()), str(ROOT / "ref.toml"))
    grid = VoxelGrid(np.array([0.0, 0.0, 10.0]), 0.25, (1, 1, 1))   # one voxel: the points are the output
    t0 = time.perf_counter()
    td = simulate_time_domain(scene, grid=grid)
    seconds = time.perf_counter() - t0
    peak = td.point_field_V_per_mm.max(axis=1)
    probes = ptd.probe_indices()
    return {"mode": mode, "preset": "fine", "spectrum": "full", "n_solve": int(td.plan.n_solve),
            "seconds_in_process": seconds, "dofs": td.frequency_basis_info.get("dofs"),
            "freqs_hz": td.plan.solve_freqs_hz.tolist(),
            "impedance": [[float(abs(z)), float(np.degrees(np.angle(z)))] for z in td.impedance_ohm],
            "peak_E_V_per_mm": peak.tolist(), **{"revolved_" + k: v for k, v in ptd.revolved_vta_mm3(peak).items()},
            "t_us": td.time.t_us.tolist(), "probe_potential_V": td.point_potential_V[probes].tolist(),
            "contact_current_mA": td.currents_mA[po.VTA_CONTACT_0BASED].tolist(),
            "contact_voltage_V": td.voltages_V[po.VTA_CONTACT_0BASED].tolist()}


def timed_run(mode: str, name: str, work: Path) -> dict:
    """One ``python -m vta run`` in a fresh process: wall time, peak RSS, results."""
    preset, signal = VTA_RUNS[name]
    tag = f"{mode}_{name}".replace(" ", "_").replace(":", "").replace(",", "")
    cfg = work / f"{tag}.toml"
    pts = ptd.sample_points()
    if name in PROBES_ONLY:
        pts = pts[ptd.probe_indices()]
    cfg.write_text(_toml(scene_dict(mode, preset, signal, pts.tolist())))
    out = work / tag
    env = po.thread_env(2)
    env["VTA_CACHE_DIR"] = "off"
    rc, wall, mem = po.run_measured([sys.executable, "-m", "vta", "run", str(cfg), "--out", str(out), "-q"], env,
                                    str(ROOT), str(work / f"{tag}.log"), 1800.0)
    row = {"tool": "vta", "mode": mode, "run": name, "preset": preset, **signal, "returncode": rc,
           "wall_s": round(wall, 3), "peak_mem_MB": round(mem, 1)}
    if rc != 0:
        row["error"] = (work / f"{tag}.log").read_text()[-2000:]
        return row
    s = json.loads((out / "summary.json").read_text())
    td = s["time_domain"]
    peak = np.array([p["field_peak_V_per_mm"] for p in td["points"]], dtype=float)
    revolved = {} if name in PROBES_ONLY else {"peak_E_V_per_mm": peak.tolist(),
                                               **{"revolved_" + k: v for k, v in ptd.revolved_vta_mm3(peak).items()}}
    row.update({"n_solve": td["spectrum"]["n_solve_frequencies"], "cutoff_hz": td["spectrum"]["cutoff_hz"],
                "dofs": td["frequency_basis"].get("dofs"), "timings_s": td["timings_s"],
                "run_timings_s": s.get("timings_s"),
                "freqs_hz": [z["frequency_hz"] for z in td["impedance_spectrum"]],
                "impedance": [[z["magnitude_ohm"], z["phase_deg"]] for z in td["impedance_spectrum"]],
                "vta_grid_time_domain_mm3": td["vta_grid_volume_mm3"],
                "vta_grid_quasi_static_mm3": td["quasi_static_vta_grid_volume_mm3"],
                **revolved})
    with open(out / "waveforms.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    row["t_us"] = [float(r["t_us"]) for r in rows]
    cols = range(3) if name in PROBES_ONLY else ptd.probe_indices()
    row["probe_potential_V"] = [[float(r[f"u_p{p}_V"]) for r in rows] for p in cols]
    return row


# --- comparison ------------------------------------------------------------------------


def _z_at(freqs, imp, f):
    """(|Z|, phase) of a run's impedance list at frequency f (nearest solve frequency)."""
    i = int(np.argmin(np.abs(np.asarray(freqs) - f)))
    return imp[i] if abs(freqs[i] - f) <= 1e-6 * max(f, 1.0) else None


def _wave_error(t_ref, u_ref, t, u, shift_us=0.0):
    """max |u - u_ref| / max |u_ref| over the reference instants (u interpolated), away
    from the steps (1 us on either side of t = 0, PW, 2 PW)."""
    t_ref = np.asarray(t_ref)
    keep = np.ones(t_ref.size, bool)
    for s in (0.0, ptd.PULSE_WIDTH_US, 2 * ptd.PULSE_WIDTH_US):
        keep &= np.abs(t_ref - s) > 1.0
    keep &= t_ref <= min(np.max(np.asarray(t) - shift_us), t_ref.max())
    out = 0.0
    for ur, uu in zip(u_ref, u):
        ur = np.asarray(ur)
        ui = np.interp(t_ref[keep], np.asarray(t) - shift_us, np.asarray(uu))
        out = max(out, float(np.max(np.abs(ui - ur[keep])) / np.max(np.abs(ur))))
    return out


def compare(row: dict, ref: dict) -> dict:
    """Errors of a run (vta or OSS-DBS) against the reference of its mode."""
    out = {}
    if row.get("revolved_vta_mm3") is not None:
        out["vta_err_pct"] = 100.0 * (row["revolved_vta_mm3"] / ref["revolved_vta_mm3"] - 1.0)
    if row["tool"] == "vta":
        z = _z_at(row["freqs_hz"], row["impedance"], ptd.FREQUENCY_HZ)
        errs = []
        for f, (m, ph) in zip(row["freqs_hz"], row["impedance"]):
            r = _z_at(ref["freqs_hz"], ref["impedance"], f)
            if r is not None:
                errs.append((100.0 * (m / r[0] - 1.0), ph - r[1]))
        out["wave_err"] = _wave_error(ref["t_us"], ref["probe_potential_V"], row["t_us"], row["probe_potential_V"])
    else:
        sol = row.get("impedance_solved") or []
        z = next(([d["magnitude_ohm"], d["phase_deg"]] for d in sol if abs(d["frequency_hz"] - ptd.FREQUENCY_HZ) < 1e-6),
                 None)
        errs = []
        for d in sol:
            r = _z_at(ref["freqs_hz"], ref["impedance"], d["frequency_hz"])
            if r is not None:
                errs.append((100.0 * (d["magnitude_ohm"] / r[0] - 1.0), d["phase_deg"] - r[1]))
        pr = row.get("probes")
        if pr:   # OSS-DBS starts the pulse at t = PW
            out["wave_err"] = _wave_error(ref["t_us"], ref["probe_potential_V"], pr["t_us"], pr["potential_V"],
                                          shift_us=ptd.PULSE_WIDTH_US)
    if z is not None:
        r = _z_at(ref["freqs_hz"], ref["impedance"], ptd.FREQUENCY_HZ)
        out["z130_ohm"], out["z130_err_pct"] = z[0], 100.0 * (z[0] / r[0] - 1.0)
    if errs:
        out["z_max_abs_err_pct"] = max(abs(e[0]) for e in errs)
        out["phase_max_abs_err_deg"] = max(abs(e[1]) for e in errs)
    peak = row.get("peak_E_V_per_mm")
    if peak is not None:
        p = np.array([np.nan if v is None else v for v in peak], float)
        rp = np.asarray(ref["peak_E_V_per_mm"])
        # where the VTA boundary is decided: 0.5-2x the threshold
        near = (rp >= 0.5 * ptd.THRESHOLD_V_PER_MM) & (rp <= 2.0 * ptd.THRESHOLD_V_PER_MM)
        rel = np.abs(p[near] / rp[near] - 1.0)
        out["peak_E_max_rel_err"] = float(np.nanmax(rel))
        out["peak_E_median_rel_err"] = float(np.nanmedian(rel))
    return out


def _fmt(v, spec, dash="-"):
    return dash if v is None else format(v, spec)


def print_tables(refs: dict, rows: list) -> None:
    print("\nReference (vta, preset fine, full spectrum to 1 MHz, 7,692 harmonics):")
    for mode, ref in refs.items():
        z = _z_at(ref["freqs_hz"], ref["impedance"], ptd.FREQUENCY_HZ)
        print(f"  {mode:8s} revolved VTA {ref['revolved_vta_mm3']:.3f} mm3 (contained: {ref['revolved_contained']}), "
              f"|Z|(130 Hz) {z[0]:.1f} ohm, phase {z[1]:.2f} deg, DOFs {ref['dofs']}, {ref['seconds_in_process']:.1f} s")
    hdr = (f"{'mode':8s} {'tool':8s} {'setting':34s} {'solves':>6s} {'wall s':>7s} {'MB':>6s} {'VTA mm3':>8s} "
           f"{'VTA err':>8s} {'|Z|130':>7s} {'Z err':>7s} {'maxZerr':>7s} {'maxPh':>6s} {'wave':>8s} {'pkE med':>8s}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for r in rows:
        c = r.get("compare", {})
        setting = r.get("run") or (f"{r['level']}: {r['spectrum']}"
                                   + (", probes only" if r.get("probes_only") else ""))
        print(f"{r['mode']:8s} {r['tool']:8s} {setting:34s} {_fmt(r.get('n_solve', r.get('n_solved')), '6d')} "
              f"{r['wall_s']:7.1f} {r['peak_mem_MB']:6.0f} {_fmt(r.get('revolved_vta_mm3'), '8.3f')} "
              f"{_fmt(c.get('vta_err_pct'), '+7.2f')}% {_fmt(c.get('z130_ohm'), '7.1f')} "
              f"{_fmt(c.get('z130_err_pct'), '+6.2f')}% {_fmt(c.get('z_max_abs_err_pct'), '6.2f')}% "
              f"{_fmt(c.get('phase_max_abs_err_deg'), '6.2f')} {_fmt(c.get('wave_err'), '8.1e')} "
              f"{_fmt(c.get('peak_E_median_rel_err'), '8.1e')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", nargs="+", default=list(ptd.MODES), choices=ptd.MODES)
    ap.add_argument("--runs", nargs="+", default=list(VTA_RUNS), choices=list(VTA_RUNS), metavar="RUN",
                    help=f"timed vta runs (default all: {', '.join(VTA_RUNS)})")
    ap.add_argument("--no-reference", action="store_true", help="reuse the references stored in --out")
    ap.add_argument("--no-timed", action="store_true", help="reuse the timed vta rows stored in --out")
    ap.add_argument("--peer", default=str(PEER), help="OSS-DBS results of peer_ossdbs_td.py")
    ap.add_argument("--workdir", help="keep the vta run folders here (default: a temp dir)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else {}
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vta_td_peer_"))
    work.mkdir(parents=True, exist_ok=True)
    refs = dict(old.get("reference", {})) if args.no_reference else {}
    # rows of runs not redone now are kept from --out
    redo = set() if args.no_timed else {(m, n) for m in args.modes for n in args.runs}
    vta_rows = [r for r in old.get("rows", []) if r["tool"] == "vta" and (r["mode"], r["run"]) not in redo]
    for mode in args.modes:
        if mode not in refs:
            print(f"reference {mode} ...", flush=True)
            refs[mode] = reference(mode)
        if not args.no_timed:
            for name in args.runs:
                print(f"vta {mode} {name} ...", flush=True)
                vta_rows.append(timed_run(mode, name, work))
    peer_rows = json.loads(Path(args.peer).read_text()) if Path(args.peer).exists() else []
    rows = []
    for r in vta_rows + [dict(p) for p in peer_rows if p.get("mode") in refs]:
        if r.get("returncode") == 0 and r["mode"] in refs:
            r["compare"] = compare(r, refs[r["mode"]])
        rows.append(r)
    rows.sort(key=lambda r: (r["mode"], r["tool"] != "vta"))
    print_tables(refs, rows)
    out.write_text(json.dumps(ptd.rounded({"machine": benchlib.machine(), "case": {
        "lead": "Medtronic 3389", "active_contact": po.VTA_CONTACT_0BASED, "others": "floating",
        "domain": "sphere r = 25 mm at (0, 0, 4.25) mm, surface grounded", "tissue": "GM 4-Cole-Cole (Gabriel 1996)",
        "encapsulation": None, "pulse": "biphasic 60 us + 60 us, no gap, 130 Hz", "cutoff_hz": ptd.CUTOFF_HZ,
        "voltage_V": ptd.VOLTAGE_V, "current_mA": ptd.CURRENT_MA, "threshold_V_per_mm": ptd.THRESHOLD_V_PER_MM,
        "points": "r = 0.8..4.6 mm (0.2), z = 1.05..7.95 mm (0.1), y = 0; revolved VTA"},
        "reference": refs,
        # the per-point peaks stay in the reference and in the OSS-DBS file (and the vta rows
        # re-run with --no-timed need them): drop them from the OSS-DBS rows only
        "rows": [{k: v for k, v in r.items() if not (r["tool"] != "vta" and k == "peak_E_V_per_mm")}
                 for r in rows]}), indent=1) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
