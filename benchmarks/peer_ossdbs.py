#!/usr/bin/env python3
"""Run the peer tool OSS-DBS v2 (PyPI ``ossdbs``, GPL-3.0) on the vta benchmark case.

OSS-DBS is only *run* here, as an external program in its own virtual
environment; none of its code is imported into this process.

The case (see ``benchmarks/peers/README.md``): Medtronic 3389, tip at the
origin pointing +z, homogeneous tissue 0.2 S/m, sphere of radius 25 mm
centred at (0, 0, 4.25) mm with the outer surface grounded, contact 1
(0-based; OSS-DBS "Contact_2") current-controlled, the other contacts
floating, no encapsulation, VTA at |E| >= 0.2 V/mm (200 V/m).

For every refinement level and every amplitude this script writes the
OSS-DBS settings JSON and a synthetic one-label NIfTI into a temporary
directory, runs ``python -m ossdbs.main settings.json`` as a subprocess,
measures the whole-process wall time and that child's peak RSS (``os.wait4``),
parses DOFs, VTA and impedance from the outputs, prints a table and writes
``benchmarks/results/ossdbs_3389.json``.

Usage (from the repository root, with any Python >= 3.9)::

    python benchmarks/peer_ossdbs.py                 # all levels, 1 and -3 mA
    python benchmarks/peer_ossdbs.py --levels default hp --currents-mA 1
    python benchmarks/peer_ossdbs.py --peer-python /path/to/venv/bin/python

The peer interpreter defaults to ``$OSSDBS_PYTHON``, else
``benchmarks/.peer-venv/bin/python``, else the current interpreter.
Install it with ``python3.11 -m venv benchmarks/.peer-venv &&
benchmarks/.peer-venv/bin/pip install ossdbs`` (see the README).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VENV_PY = HERE / ".peer-venv" / "bin" / "python"
DEFAULT_OUT = HERE / "results" / "ossdbs_3389.json"

# --- the benchmark case (units as in OSS-DBS settings: mm, A, V, S/m, V/m) ---
TIP_MM = (0.0, 0.0, 0.0)
DIRECTION = (0.0, 0.0, 1.0)
DOMAIN_CENTER_MM = (0.0, 0.0, 4.25)
DOMAIN_RADIUS_MM = 25.0
SIGMA_S_PER_M = 0.2
THRESHOLD_V_PER_M = 200.0
VTA_CONTACT_0BASED = 1  # vta numbering; OSS-DBS numbers contacts from 1
N_CONTACTS = 4
FREQUENCY_HZ = 130.0

# Refinement levels: name -> (description, patch function on the settings dict).
# "edge" size follows the OSS-DBS convergence study: perimeter / 50 on the
# active contact's edges.
LEAD_DIAMETER_MM = 1.27


def _edge(settings: dict, divisor: float) -> None:
    size = 3.141592653589793 * LEAD_DIAMETER_MM / divisor
    for c in settings["Electrodes"][0]["Contacts"]:
        if c["Active"]:
            c["MaxMeshSizeEdge"] = size


def _hp(settings: dict) -> None:
    settings["Mesh"]["HPRefinement"] = {"Active": True, "Levels": 2, "Factor": 0.125}


LEVELS = {
    "default": ("Netgen 'Default' hypothesis, FEM order 2 (OSS-DBS defaults)", lambda s: None),
    "hp": ("Default + hp-refinement at contact edges (2 levels, factor 0.125), order 2", _hp),
    "fine": ("Netgen 'Fine' hypothesis, order 2",
             lambda s: s["Mesh"]["MeshingHypothesis"].update(Type="Fine")),
    "edge50": ("Default + max edge size pi*d/50 on the active contact, order 2",
               lambda s: _edge(s, 50.0)),
    "hp_p3": ("Default + hp-refinement, FEM order 3",
              lambda s: (_hp(s), s.update(FEMOrder=3))),
    "veryfine_hp": ("Netgen 'VeryFine' + hp-refinement, order 2",
                    lambda s: (_hp(s), s["Mesh"]["MeshingHypothesis"].update(Type="VeryFine"))),
}
DEFAULT_LEVELS = ["default", "hp", "fine", "edge50", "hp_p3"]

# Writes the synthetic single-label NIfTI with the peer's own nibabel/numpy so
# that this driver needs nothing beyond the standard library.
_NIFTI_CODE = r"""
import sys, numpy as np, nibabel as nib
path, lo, n, vox = sys.argv[1], [float(v) for v in sys.argv[2:5]], int(sys.argv[5]), float(sys.argv[6])
aff = np.diag([vox, vox, vox, 1.0]); aff[:3, 3] = lo
nib.save(nib.Nifti1Image(np.ones((n, n, n), np.uint8), aff), path)
"""

_VERSION_CODE = r"""
import json, importlib.metadata as m
import ossdbs, ngsolve
print(json.dumps({"ossdbs": m.version("ossdbs"), "ngsolve": ngsolve.__version__,
                  "netgen": m.version("netgen-mesher"), "python": __import__("sys").version.split()[0]}))
"""


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NGS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def find_peer_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("OSSDBS_PYTHON"):
        return os.environ["OSSDBS_PYTHON"]
    if DEFAULT_VENV_PY.exists():
        return str(DEFAULT_VENV_PY)
    return sys.executable


def peer_versions(py: str, env: dict) -> dict | None:
    try:
        out = subprocess.run([py, "-c", _VERSION_CODE], capture_output=True, text=True,
                             env=env, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "platform": platform.platform()}


def build_settings(out_dir: str, nifti: str, current_mA: float, level: str,
                   preconditioner: str, lattice_n: int, lattice_mm: float) -> dict:
    current_A = current_mA * 1e-3
    contacts = []
    for cid in range(1, N_CONTACTS + 1):
        if cid == VTA_CONTACT_0BASED + 1:
            # current-controlled: the 1 V here is only the unit solution; OSS-DBS
            # rescales by impedance * |I|
            contacts.append({"Contact_ID": cid, "Active": True, "Floating": False,
                             "Current[A]": current_A, "Voltage[V]": 1.0})
        else:
            contacts.append({"Contact_ID": cid, "Active": False, "Floating": True,
                             "Current[A]": 0.0})
    materials = {"Blood": 4, "Gray matter": 1, "White matter": 2, "CSF": 3, "Unknown": 0}
    d = 2.0 * DOMAIN_RADIUS_MM
    cx, cy, cz = DOMAIN_CENTER_MM
    s = {
        "BrainRegion": {"Center": {"x[mm]": cx, "y[mm]": cy, "z[mm]": cz},
                        "Dimension": {"x[mm]": d, "y[mm]": d, "z[mm]": d},
                        "Shape": "Sphere"},
        "Electrodes": [{
            "Name": "Medtronic3389", "Rotation[Degrees]": 0.0,
            "Direction": dict(zip(("x[mm]", "y[mm]", "z[mm]"), DIRECTION)),
            "TipPosition": dict(zip(("x[mm]", "y[mm]", "z[mm]"), TIP_MM)),
            "Contacts": contacts,
            "EncapsulationLayer": {"Thickness[mm]": 0.0},
        }],
        # case grounding: the sphere surface is the return electrode at 0 V
        "Surfaces": [{"Name": "BrainSurface", "Active": True,
                      "Current[A]": -current_A, "Voltage[V]": 0.0}],
        "MaterialDistribution": {"MRIPath": nifti, "MRIMapping": materials,
                                 "DiffusionTensorActive": False},
        # frequency-independent 0.2 S/m for every label (only label 1 is present)
        "DielectricModel": {"Type": "Constant", "CustomParameters": {
            m: {"permittivity": 2.22e4, "conductivity": SIGMA_S_PER_M} for m in materials}},
        "StimulationSignal": {"Type": "Multisine", "ListOfFrequencies": [FREQUENCY_HZ],
                              "CurrentControlled": True},
        "EQSMode": False,
        "FEMOrder": 2,
        "Mesh": {"MeshingHypothesis": {"Type": "Default", "MaxMeshSize": 1e6},
                 "HPRefinement": {"Active": False, "Levels": 2, "Factor": 0.125},
                 "MaterialRefinementSteps": 0},
        "Solver": {"Type": "CG", "Preconditioner": preconditioner,
                   "PreconditionerKwargs": ({"coarsetype": "direct"}
                                            if preconditioner == "bddc" else {}),
                   "MaximumSteps": 10000, "RelativeTolerance": 1e-10,
                   "AbsoluteTolerance": 1e-12},
        "PointModel": {"Lattice": {
            "Active": True, "Center": {"x[mm]": cx, "y[mm]": cy, "z[mm]": cz},
            "Shape": {"x": lattice_n, "y": lattice_n, "z": lattice_n},
            "Direction": {"x[mm]": 0, "y[mm]": 0, "z[mm]": 1},
            "PointDistance[mm]": lattice_mm, "CollapseVTA": False, "ExportField": True}},
        "ActivationThresholdVTA[V-per-m]": THRESHOLD_V_PER_M,
        "ComputeImpedance": True,
        "ExportVTK": False,
        "OutputPath": out_dir,
    }
    LEVELS[level][1](s)
    return s


def run_measured(cmd: list, env: dict, cwd: str, log_path: str, timeout_s: float):
    """Run cmd; return (returncode, wall_s, peak_rss_MB) of that child alone."""
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        deadline = t0 + timeout_s
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux, bytes on macOS
    scale = 1.0 / 1024.0 if sys.platform != "darwin" else 1.0 / 2**20
    return proc.returncode, wall, ru.ru_maxrss * scale


def lattice_vta_mm3(csv_path: Path, lattice_mm: float) -> float | None:
    """Lattice VTA = points with |E| >= threshold x voxel volume (points inside the lead are absent)."""
    if not csv_path.exists():
        return None
    thr = THRESHOLD_V_PER_M * 1e-3  # CSV magnitude is in V/mm
    n = 0
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            if float(row["magnitude"]) >= thr:
                n += 1
    return n * lattice_mm**3


def parse_outputs(out_dir: Path, lattice_mm: float) -> dict:
    res = {}
    rep = json.loads((out_dir / "VCM_report.json").read_text())
    res["dofs"] = rep.get("DOF")
    res["elements"] = rep.get("Elements")
    res["vta_mm3"] = rep.get("VTA_volume_mm3")
    res["solve_s"] = sum(rep.get("Timings", {}).get("ComputeSolution", []) or [0.0])
    imp = out_dir / "impedance.csv"
    if imp.exists():
        with open(imp, newline="") as fh:
            rows = list(csv.DictReader(fh))
        res["impedance_ohm"] = abs(complex(float(rows[0]["real"]), float(rows[0]["imag"])))
    fl = out_dir / "floating_potentials.csv"
    if fl.exists():
        with open(fl, newline="") as fh:
            res["floating_potentials_raw"] = list(csv.DictReader(fh))[0]
    rr = out_dir / "run_report.json"
    if rr.exists():
        res["phase_timings_s"] = json.loads(rr.read_text()).get("Timings")
    res["vta_lattice_mm3"] = lattice_vta_mm3(out_dir / "E_field_Lattice.csv", lattice_mm)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", help="interpreter that has ossdbs installed")
    ap.add_argument("--levels", nargs="+", default=DEFAULT_LEVELS, choices=list(LEVELS))
    ap.add_argument("--currents-mA", nargs="+", type=float, default=[1.0, -3.0],
                    help="amplitudes on contact 1 in mA (negative = cathodic)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preconditioner", default="local", choices=["local", "bddc"],
                    help="'local' (Jacobi; default). 'bddc' uses coarsetype=direct: "
                         "OSS-DBS' default BDDC/h1amg does not finish with floating contacts")
    ap.add_argument("--lattice-n", type=int, default=61, help="lattice points per axis")
    ap.add_argument("--lattice-mm", type=float, default=0.2, help="lattice spacing (mm)")
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="per run")
    ap.add_argument("--workdir", help="keep run directories here (default: temp dir, removed)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)

    env = thread_env(args.threads)
    py = find_peer_python(args.peer_python)
    versions = peer_versions(py, env)
    if versions is None:
        print(f"peer_ossdbs: OSS-DBS is not importable with {py!r}.\n"
              "  Install it in a separate venv (GPL-3.0, pulls NGSolve):\n"
              "    python3.11 -m venv benchmarks/.peer-venv\n"
              "    benchmarks/.peer-venv/bin/pip install ossdbs\n"
              "  or point --peer-python / $OSSDBS_PYTHON at an interpreter that has it.",
              file=sys.stderr)
        return 2

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ossdbs_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    nifti = work / "tissue_0p2Spm.nii.gz"
    # one label (1 = "Gray matter") on a 1 mm grid covering the sphere with 2 mm margin
    half = DOMAIN_RADIUS_MM + 2.0
    lo = [c - half for c in DOMAIN_CENTER_MM]
    n = int(2 * half) + 1
    subprocess.run([py, "-c", _NIFTI_CODE, str(nifti), *map(str, lo), str(n), "1.0"],
                   check=True, env=env)

    mach = machine_info()
    rows = []
    print(f"OSS-DBS {versions['ossdbs']}  NGSolve {versions['ngsolve']}  "
          f"threads={args.threads}  nproc={mach['nproc']}  {mach['cpu_model']}", flush=True)
    for level in args.levels:
        for cur in args.currents_mA:
            tag = f"{level}_{cur:+g}mA".replace("+", "p").replace("-", "m")
            run_dir = work / tag
            run_dir.mkdir(exist_ok=True)
            out_dir = run_dir / "Results"
            settings = build_settings(str(out_dir), str(nifti), cur, level,
                                      args.preconditioner, args.lattice_n, args.lattice_mm)
            (run_dir / "settings.json").write_text(json.dumps(settings, indent=1))
            rc, wall, mem = run_measured([py, "-m", "ossdbs.main", "settings.json"], env,
                                         str(run_dir), str(run_dir / "ossdbs_stdout.log"),
                                         args.timeout_s)
            row = {"level": level, "description": LEVELS[level][0], "current_mA": cur,
                   "contact": VTA_CONTACT_0BASED, "returncode": rc,
                   "wall_s": round(wall, 3), "peak_mem_MB": round(mem, 1),
                   "fem_order": settings["FEMOrder"],
                   "preconditioner": args.preconditioner, "threads": args.threads,
                   "ossdbs_version": versions["ossdbs"], "ngsolve_version": versions["ngsolve"],
                   "netgen_version": versions["netgen"], **mach}
            if rc == 0 and (out_dir / "VCM_report.json").exists():
                row.update(parse_outputs(out_dir, args.lattice_mm))
            else:
                row["error"] = f"ossdbs exited with {rc}; see {run_dir / 'ossdbs_stdout.log'}"
            rows.append(row)
            print(f"  {tag:22s} rc={rc} dofs={row.get('dofs')} wall={wall:.1f}s "
                  f"mem={mem:.0f}MB vta={row.get('vta_mm3')} "
                  f"vta_lattice={row.get('vta_lattice_mm3')} Z={row.get('impedance_ohm')}",
                  flush=True)

    hdr = (f"{'level':12s} {'I mA':>6s} {'DOFs':>9s} {'wall s':>8s} {'solve s':>8s} "
           f"{'mem MB':>7s} {'VTA mm3':>9s} {'VTAlat':>8s} {'Z ohm':>8s}")
    print("\n" + hdr + "\n" + "-" * len(hdr))

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for r in rows:
        print(f"{r['level']:12s} {r['current_mA']:6.1f} {f(r.get('dofs'), '9d')} "
              f"{r['wall_s']:8.1f} {f(r.get('solve_s'), '8.2f')} {r['peak_mem_MB']:7.0f} "
              f"{f(r.get('vta_mm3'), '9.3f')} {f(r.get('vta_lattice_mm3'), '8.3f')} "
              f"{f(r.get('impedance_ohm'), '8.1f')}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=2))
    tmp.replace(out)
    print(f"\nwrote {out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
