#!/usr/bin/env python3
"""Run OSS-DBS v2 (PyPI ``ossdbs``, GPL-3.0) on the time-domain 3389 case (issue 13).

OSS-DBS is only *run* here, as an external program in its own virtual environment
(see ``benchmarks/peer_ossdbs.py`` and ``benchmarks/peers/README.md``); none of its
code is imported into this process. The helpers of ``peer_ossdbs.py`` (settings of
the 3389 ring case, synthetic NIfTI, measured subprocess, machine facts) are reused
by importing it.

The case: the 3389 ring case of ``peer_ossdbs.py`` (Medtronic 3389, tip at the origin
pointing +z, 25 mm sphere centred at (0, 0, 4.25) mm with the surface grounded,
contact 1 (OSS-DBS ``Contact_2``) active, the others floating, no encapsulation) in
homogeneous grey matter with OSS-DBS's 4-Cole-Cole (Gabriel 1996) dispersion
(``DielectricModel ColeCole4``, ``EQSMode true``: complex conductivity, displacement
currents included), driven by a 130 Hz, 60 us charge-balanced biphasic pulse
(``StimulationSignal Type "Rectangle"`` with a 60 us counter pulse of relative
amplitude 1 and no inter-pulse gap):

- ``voltage``: contact 1 at -1 V against the grounded sphere (``CurrentControlled
  false``; OSS-DBS imposes the contact voltage, scale factor 1 per harmonic);
- ``current``: 1 mA into contact 1, -1 mA out of the sphere (``CurrentControlled
  true``; OSS-DBS solves with 1 V on the contact and scales each harmonic by
  ``Z(f) |I|``, so the first phase is anodic at the contact whatever the sign).

Spectrum modes (``--spectra``): ``octave`` (``SpectrumMode "OctaveBand"``: one solve
per octave band, bands centred on the harmonics ``2^k``) and ``full``
(``"FullSpectrum"``: every FFT frequency up to ``--cutoff-hz``, but OSS-DBS skips the
solve where the conductivity changed by less than ``DielectricAccuracy`` (default 1 %)
from the previous frequency and reuses the previous solution).

Outputs OSS-DBS computes in time domain only for a ``PointModel.Pathway`` (its
``Lattice`` is exported at one frequency only), so the driver writes the points of
:func:`sample_points` as a pathway file: 70 "axons", one per height z, of 20 points
each on the +x half-line (r = 0.8 ... 4.6 mm from the axis, every 0.2 mm; z = 1.05 ...
7.95 mm every 0.1 mm). The case is axisymmetric, so the time-domain VTA (peak |E|
over the period >= 0.2 V/mm) is the solid of revolution of that half-plane
(:func:`revolved_vta_mm3`); the same points and formula are used for vta. Points
(1, 0, 4.25), (2, 0, 4.25), (3, 0, 4.25) mm (1, 2, 3 mm from the axis at the active
contact's centre height) are in the set; their potential over the pulse is kept.

For each level, mode and spectrum the driver writes the settings JSON, the NIfTI and
the pathway file into a work directory, runs ``python -m ossdbs.main settings.json``,
measures whole-process wall time and the child's peak RSS, reads ``impedance.csv``,
``VCM_report.json``, ``stimulation_in_time.csv`` and ``oss_time_result_PAM.h5`` (the
latter with the peer's own h5py), and writes ``benchmarks/results/time_domain_peer_ossdbs.json``.

Usage (from the repository root; standard library + numpy)::

    python benchmarks/peer_ossdbs_td.py                        # default: octave+full, voltage+current, level default
    python benchmarks/peer_ossdbs_td.py --levels default hp --spectra octave --modes voltage
    python benchmarks/peer_ossdbs_td.py --merge --levels hp --spectra octave
    python benchmarks/peer_ossdbs_td.py --merge --probes-only --levels default hp --modes voltage --spectra octave

``--probes-only`` evaluates the 3 probes instead of the 1,400 points (no time-domain
VTA; about 2 GB less memory): the cost of a pulse run with little output. Each run's
``oss_time_result_PAM.h5`` (about 0.9 GB at 1 MHz) is deleted after it has been read
unless ``--keep-h5``; the run folders stay in ``--workdir`` (default: a temp dir).

``benchmarks/bench_time_domain_peer.py`` runs vta on the same case and compares.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peer_ossdbs as po  # noqa: E402  (the 3389 case, measured subprocess, machine facts)

DEFAULT_OUT = HERE / "results" / "time_domain_peer_ossdbs.json"

# --- the signal ----------------------------------------------------------------------
PULSE_WIDTH_US = 60.0
FREQUENCY_HZ = po.FREQUENCY_HZ          # 130 Hz
CUTOFF_HZ = 1.0e6                       # OSS-DBS's default CutoffFrequency
VOLTAGE_V = -1.0                        # voltage control: contact 1 at -1 V (first phase)
CURRENT_MA = 1.0                        # current control: 1 mA (first phase anodic, as OSS-DBS scales it)
MODES = ("voltage", "current")
SPECTRA = {"octave": "OctaveBand", "full": "FullSpectrum"}

# --- the evaluation points (the axisymmetric half-plane y = 0, x = r >= 0) ------------
LEAD_RADIUS_MM = 1.27 / 2.0
CONTACT_CENTER_Z_MM = 4.25              # contact 1 of the 3389 spans z = 3.5 ... 5.0 mm
R_MM = np.round(0.8 + 0.2 * np.arange(20), 6)                        # 0.8 ... 4.6
Z_MM = np.round(CONTACT_CENTER_Z_MM + 0.1 * np.arange(-32, 38), 6)   # 1.05 ... 7.95
PROBE_R_MM = (1.0, 2.0, 3.0)            # probes at the contact's centre height
THRESHOLD_V_PER_MM = po.THRESHOLD_V_PER_M * 1e-3


def sample_points() -> np.ndarray:
    """(70 * 20, 3) points, row by row in z (each row r = 0.8 ... 4.6 mm at y = 0)."""
    rr, zz = np.meshgrid(R_MM, Z_MM)          # (n_z, n_r)
    return np.column_stack([rr.ravel(), np.zeros(rr.size), zz.ravel()])


def probe_indices() -> list[int]:
    """Indices in :func:`sample_points` of the probes (r, 0, 4.25)."""
    iz = int(np.argmin(np.abs(Z_MM - CONTACT_CENTER_Z_MM)))
    return [iz * len(R_MM) + int(np.argmin(np.abs(R_MM - r))) for r in PROBE_R_MM]


def revolved_vta_mm3(peak_V_per_mm, threshold: float = THRESHOLD_V_PER_MM) -> dict:
    """Time-domain VTA of an axisymmetric case from the peak |E| at :func:`sample_points`.

    Per height z: the outer radius where the peak |E| falls through the threshold,
    interpolated linearly in (log r, log |E|) between the samples (|E| ~ r^-p); the
    annulus from the lead surface to that radius, times the row spacing. A row whose
    first sample (r = 0.8 mm) is below the threshold contributes nothing.
    Returns the volume, the largest radius, and whether the sampled box holds the VTA
    (first/last rows and the outermost column below the threshold).
    """
    peak = np.asarray(peak_V_per_mm, dtype=float).reshape(len(Z_MM), len(R_MM))
    dz = float(Z_MM[1] - Z_MM[0])
    vol, rmax = 0.0, 0.0
    for row in peak:
        above = np.flatnonzero(row >= threshold)
        if above.size == 0 or above[0] != 0:
            continue
        i = int(above[-1])
        if i == len(R_MM) - 1:
            r_out = float(R_MM[-1])
        else:
            e0, e1 = math.log(row[i]), math.log(row[i + 1])
            x0, x1 = math.log(R_MM[i]), math.log(R_MM[i + 1])
            s = (math.log(threshold) - e0) / (e1 - e0) if e1 != e0 else 0.0
            r_out = math.exp(x0 + s * (x1 - x0))
        rmax = max(rmax, r_out)
        vol += math.pi * (r_out ** 2 - LEAD_RADIUS_MM ** 2) * dz
    contained = bool(peak[0].max() < threshold and peak[-1].max() < threshold
                     and peak[:, -1].max() < threshold)
    return {"vta_mm3": vol, "r_max_mm": rmax, "contained": contained}


def rounded(obj, digits: int = 7):
    """``obj`` with every float rounded to ``digits`` significant digits (smaller JSON)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


# --- peer-side snippets (run with the peer's interpreter: numpy, h5py) ----------------
_PATHWAY_CODE = r"""
import sys, json, h5py, numpy as np
path, n_r = sys.argv[1], int(sys.argv[2])
pts = np.array(json.loads(sys.stdin.read()), dtype=float).reshape(-1, n_r, 3)
with h5py.File(path, "w") as f:
    g = f.create_group("Points")
    for k, row in enumerate(pts):
        g.create_dataset(f"axon{k}", data=row)
"""

_EXTRACT_CODE = r"""
import sys, json, h5py, numpy as np
h5, out, probes, t0, t1 = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
with h5py.File(h5, "r") as f:
    t = np.array(f["TimeSteps[s]"])
    g = f["Points"]
    names = sorted((k for k in g.keys() if k.startswith("axon")), key=lambda s: int(s[4:]))
    status = np.array(g["Status"]) if "Status" in g else None
    pts, pot, emag = [], [], []
    for n in names:
        a = g[n]
        p = np.array(a["Points[mm]"])
        pts.append(p)
        if "Potential[V]" in a:
            pot.append(np.array(a["Potential[V]"]))
            emag.append(np.array(a["Electric field magnitude[Vm^(-1)]"]))
        else:
            pot.append(np.full((len(p), len(t)), np.nan))
            emag.append(np.full((len(p), len(t)), np.nan))
pts, pot, emag = np.concatenate(pts), np.concatenate(pot), np.concatenate(emag)
w = (t >= t0) & (t <= t1)
np.savez_compressed(out, t_s=t[w], points=pts, peak_E=np.nanmax(emag, axis=1),
                    probe_potential=pot[probes][:, w], probe_E=emag[probes][:, w])
"""


def td_settings(out_dir: str, nifti: str, pathway: str, mode: str, spectrum: str, level: str,
                cutoff_hz: float, preconditioner: str) -> dict:
    """The ring-case settings of ``peer_ossdbs.build_settings``, patched for the pulse."""
    s = po.build_settings(out_dir, nifti, CURRENT_MA, level, preconditioner, 3, 1.0)
    if mode == "voltage":
        for c in s["Electrodes"][0]["Contacts"]:
            if c["Active"]:
                c.update({"Current[A]": 0.0, "Voltage[V]": VOLTAGE_V})
        s["Surfaces"][0].update({"Current[A]": 0.0, "Voltage[V]": 0.0})
    s["DielectricModel"] = {"Type": "ColeCole4", "CustomParameters": None}
    s["EQSMode"] = True
    s["StimulationSignal"] = {
        "Type": "Rectangle", "Frequency[Hz]": FREQUENCY_HZ, "PulseWidth[us]": PULSE_WIDTH_US,
        "InterPulseWidth[us]": 0.0, "CounterPulseWidth[us]": PULSE_WIDTH_US, "CounterAmplitude": 1.0,
        "SpectrumMode": SPECTRA[spectrum], "CutoffFrequency": cutoff_hz,
        "CurrentControlled": mode == "current"}
    s["PointModel"] = {
        "Pathway": {"Active": True, "FileName": pathway, "ExportField": True},
        "Lattice": {"Active": False, "Center": {"x[mm]": 0, "y[mm]": 0, "z[mm]": 0},
                    "Shape": {"x": 1, "y": 1, "z": 1}, "Direction": {"x[mm]": 0, "y[mm]": 0, "z[mm]": 1},
                    "PointDistance[mm]": 0.1, "CollapseVTA": False, "ExportField": False}}
    s["ComputeImpedance"] = True
    return s


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def parse_td(out_dir: Path, npz: Path, probes_only: bool = False) -> dict:
    """Impedance spectrum, solve count, contact waveform and the point results of one run."""
    res: dict = {}
    rep = json.loads((out_dir / "VCM_report.json").read_text())
    res["dofs"], res["elements"] = rep.get("DOF"), rep.get("Elements")
    res["ossdbs_vta_export_frequency_mm3"] = rep.get("VTA_volume_mm3")
    res["solve_s"] = sum(rep.get("Timings", {}).get("ComputeSolution", []) or [0.0])
    log = (out_dir / "ossdbs.log").read_text(errors="replace") if (out_dir / "ossdbs.log").exists() else ""
    res["n_solved"] = log.count("Computing at frequency") - log.count("Skipped computation")
    res["n_frequencies_visited"] = log.count("Computing at frequency")
    solved = []
    for line in log.splitlines():
        if "Computing at frequency:" in line:
            solved.append(float(line.rsplit(":", 1)[1]))
        elif "Skipped computation at" in line and solved:
            solved.pop()
    res["solved_frequencies_hz"] = solved
    for line in log.splitlines():
        if "Set export frequency to" in line:
            res["export_frequency_hz"] = float(line.rsplit(" ", 1)[1])
    rows = _csv(out_dir / "impedance.csv")
    f = np.array([float(r["freq"]) for r in rows])
    z = np.array([complex(float(r["real"]), float(r["imag"])) for r in rows])
    keep = np.isin(np.round(f, 6), np.round(solved, 6)) if solved else np.zeros(f.size, bool)
    res["impedance_solved"] = [{"frequency_hz": float(a), "magnitude_ohm": float(abs(b)),
                                "phase_deg": float(np.degrees(np.angle(b)))} for a, b in zip(f[keep], z[keep])]
    # the whole table is 7,693 rows at 1 MHz: keep it at the harmonics 2^k and n = 1..16
    n = np.rint(f / FREQUENCY_HZ).astype(int)
    sel = (n >= 1) & ((n <= 16) | ((n & (n - 1)) == 0))
    res["impedance_table"] = [{"frequency_hz": float(a), "magnitude_ohm": float(abs(b)),
                               "phase_deg": float(np.degrees(np.angle(b)))} for a, b in zip(f[sel], z[sel])]
    st = out_dir / "stimulation_in_time.csv"
    if st.exists():
        rows = _csv(st)
        t = np.array([float(r["time"]) for r in rows])
        col = next(k for k in rows[0] if k.endswith("_free"))
        w = t <= 4 * PULSE_WIDTH_US * 1e-6 + 1e-12
        res["contact_free_variable"] = {"name": col, "t_us": (t[w] * 1e6).tolist(),
                                        "values": [float(r[col]) for r, k in zip(rows, w) if k]}
    d = np.load(npz)
    pts = d["points"]
    expected = sample_points()[probe_indices()] if probes_only else sample_points()
    if not np.allclose(pts, expected, atol=1e-9):
        raise RuntimeError("OSS-DBS returned its pathway points in another order")
    if not probes_only:
        peak = d["peak_E"]
        res["peak_E_V_per_mm"] = [None if not np.isfinite(v) else float(v) for v in peak]
        res.update({"revolved_" + k: v for k, v in revolved_vta_mm3(np.nan_to_num(peak)).items()})
    res["probes"] = {"r_mm": list(PROBE_R_MM), "t_us": (d["t_s"] * 1e6).tolist(),
                     "potential_V": d["probe_potential"].tolist(), "E_V_per_mm": d["probe_E"].tolist()}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", help="interpreter that has ossdbs installed")
    ap.add_argument("--levels", nargs="+", default=["default"], choices=list(po.LEVELS))
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--spectra", nargs="+", default=list(SPECTRA), choices=list(SPECTRA))
    ap.add_argument("--cutoff-hz", type=float, default=CUTOFF_HZ)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preconditioner", default="local", choices=["local", "bddc"])
    ap.add_argument("--timeout-s", type=float, default=3600.0, help="per run")
    ap.add_argument("--workdir", help="keep run directories here (default: a temp dir, kept)")
    ap.add_argument("--probes-only", action="store_true",
                    help="evaluate only the 3 probe points (no time-domain VTA): the cost floor of a pulse run")
    ap.add_argument("--keep-h5", action="store_true", help="keep OSS-DBS's oss_time_result_PAM.h5 (~0.9 GB per run)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows already in --out, replacing those with the same level, mode, spectrum and cutoff")
    args = ap.parse_args(argv)

    env = po.thread_env(args.threads)
    py = po.find_peer_python(args.peer_python)
    versions = po.peer_versions(py, env)
    if versions is None:
        print(f"peer_ossdbs_td: OSS-DBS is not importable with {py!r}; see benchmarks/peers/README.md",
              file=sys.stderr)
        return 2
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ossdbs_td_"))
    work.mkdir(parents=True, exist_ok=True)
    # the one-label NIfTI of peer_ossdbs (label 1 = "Gray matter"), 1 mm voxels, 2 mm margin
    nifti = work / "tissue_gm.nii.gz"
    half = po.DOMAIN_RADIUS_MM + 2.0
    lo = [c - half for c in po.DOMAIN_CENTER_MM]
    subprocess.run([py, "-c", po._NIFTI_CODE, str(nifti), *map(str, lo), str(int(2 * half) + 1), "1.0"],
                   check=True, env=env)
    pts = sample_points()[probe_indices()] if args.probes_only else sample_points()
    pathway = work / ("probes.h5" if args.probes_only else "points.h5")
    subprocess.run([py, "-c", _PATHWAY_CODE, str(pathway), str(len(pts) if args.probes_only else len(R_MM))],
                   check=True, env=env, input=json.dumps(pts.tolist()), text=True)

    mach = po.machine_info()
    out = Path(args.out)
    rows = []
    print(f"OSS-DBS {versions['ossdbs']}  NGSolve {versions['ngsolve']}  threads={args.threads}  "
          f"{mach['cpu_model']}  work={work}", flush=True)
    for level in args.levels:
        for mode in args.modes:
            for spectrum in args.spectra:
                tag = f"{level}_{mode}_{spectrum}_{args.cutoff_hz:g}Hz".replace("+", "")
                if args.probes_only:
                    tag += "_probes"
                run_dir = work / tag
                run_dir.mkdir(exist_ok=True)
                out_dir = run_dir / "Results"
                s = td_settings(str(out_dir), str(nifti), str(pathway), mode, spectrum, level,
                                args.cutoff_hz, args.preconditioner)
                (run_dir / "settings.json").write_text(json.dumps(s, indent=1))
                rc, wall, mem = po.run_measured([py, "-m", "ossdbs.main", "settings.json"], env, str(run_dir),
                                                str(run_dir / "ossdbs_stdout.log"), args.timeout_s)
                row = {"tool": "OSS-DBS", "level": level, "description": po.LEVELS[level][0], "mode": mode,
                       "amplitude": VOLTAGE_V if mode == "voltage" else CURRENT_MA,
                       "amplitude_unit": "V" if mode == "voltage" else "mA",
                       "spectrum": spectrum, "cutoff_hz": args.cutoff_hz, "probes_only": args.probes_only,
                       "returncode": rc,
                       "wall_s": round(wall, 3), "peak_mem_MB": round(mem, 1), "threads": args.threads,
                       "preconditioner": args.preconditioner, "ossdbs_version": versions["ossdbs"],
                       "ngsolve_version": versions["ngsolve"], "run_dir": str(run_dir), **mach}
                h5 = out_dir / "oss_time_result_PAM.h5"
                if rc == 0 and h5.exists():
                    npz = run_dir / "points.npz"
                    t0 = PULSE_WIDTH_US * 1e-6 - 20e-6        # OSS-DBS starts the pulse at t = PW
                    probes = [0, 1, 2] if args.probes_only else probe_indices()
                    subprocess.run([py, "-c", _EXTRACT_CODE, str(h5), str(npz), json.dumps(probes),
                                    str(t0), str(t0 + 200e-6)], check=True, env=env)
                    row.update(parse_td(out_dir, npz, args.probes_only))
                    if not args.keep_h5:
                        h5.unlink()                               # ~0.9 GB at 1 MHz
                else:
                    row["error"] = f"ossdbs exited with {rc}; see {run_dir / 'ossdbs_stdout.log'}"
                rows.append(row)
                print(f"  {tag:36s} rc={rc} dofs={row.get('dofs')} solves={row.get('n_solved')} "
                      f"wall={wall:.1f}s mem={mem:.0f}MB VTA(t)={row.get('revolved_vta_mm3')} "
                      f"Z({FREQUENCY_HZ:g}Hz)={(row.get('impedance_table') or [{}])[0].get('magnitude_ohm')}",
                      flush=True)

    def key(r):
        return (r.get("level"), r.get("mode"), r.get("spectrum"), r.get("cutoff_hz"), bool(r.get("probes_only")))

    old = json.loads(out.read_text()) if (args.merge and out.exists()) else []
    keys = {key(r) for r in rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rounded([r for r in old if key(r) not in keys] + rows), indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if rows and all(r["returncode"] == 0 and "error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
