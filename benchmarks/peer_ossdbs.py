#!/usr/bin/env python3
"""Run the peer tool OSS-DBS v2 (PyPI ``ossdbs``, GPL-3.0) on the vta benchmark cases.

OSS-DBS is only *run* here, as an external program in its own virtual
environment; none of its code is imported into this process.

The ring case ``--case 3389`` (the default; see ``benchmarks/peers/README.md``):
Medtronic 3389, tip at the origin pointing +z, homogeneous tissue 0.2 S/m,
sphere of radius 25 mm centred at (0, 0, 4.25) mm with the outer surface
grounded, contact 1 (0-based; OSS-DBS "Contact_2") current-controlled, the
other contacts floating, no encapsulation, VTA at |E| >= 0.2 V/mm (200 V/m).

The directional case ``--case directional``: the same tissue, threshold and
grounded 25 mm sphere, for OSS-DBS's built-in directional leads (tip at the
origin, direction +z, rotation 0). The active contact is the first segment
(lowest OSS-DBS contact ID) of the most distal segmented level, 1 mA
current-controlled; every other contact floats. The sphere and the lattice
are centred on the lead axis at the axial centre z_c of that level:

    z_c = tip_length + k * (contact_length + contact_spacing) + contact_length / 2

with k the level index counted from the distal end (level 0 = the first
contact level above the insulating tip). The Vercise Directed is the
exception: its level 0 is the conductive tip itself, spanning [0, tip_length],
so its levels k >= 1 start at tip_length + contact_spacing + (k - 1) * pitch,
i.e. z_c = tip_length + contact_spacing + (k - 1) * pitch + contact_length / 2.
The numbers come from OSS-DBS's default electrode parameters (see
``DIRECTIONAL_LEADS``); before the runs the driver builds each electrode in
the peer interpreter and checks that the active contact's faces span
z_c -/+ contact_length / 2.

For every refinement level and every amplitude this script writes the
OSS-DBS settings JSON and a synthetic one-label NIfTI into a temporary
directory, runs ``python -m ossdbs.main settings.json`` as a subprocess,
measures the whole-process wall time and that child's peak RSS (``os.wait4``),
parses DOFs, VTA and impedance from the outputs, prints a table and writes
``benchmarks/results/ossdbs_3389.json`` (``ossdbs_directional.json`` for the
directional case).

The anatomy case ``--case anatomy`` (issue 11; written by
``benchmarks/bench_anatomy_peer.py``, which runs vta on the same case): Medtronic 3389
with its tip in the right NAc of vta's default anatomy (MNI), contact 1 current-
controlled, the others floating, no encapsulation, a grounded sphere centred on the
middle of the contacts, and a 1 mm tissue-class label NIfTI (1 GM, 2 WM, 3 CSF) with
constant, frequency-independent conductivities per class. Everything that defines it
(tip, direction, sphere, conductivities, the label map's path) comes from a JSON file
given by ``--anatomy-case``. OSS-DBS looks a voxel up by ``floor()`` of the voxel
coordinate (its ``VoxelCoefficient``), vta at the nearest voxel centre; so that both
tools see the same conductivity field, the driver writes a copy of the map with the
affine's origin moved by -0.5 voxel along each voxel axis (``--voxel-shift corrected``,
the default) and gives OSS-DBS that copy; ``--voxel-shift none`` gives it the map as
vta reads it (to show the half-voxel shift), ``both`` runs both.

Usage (from the repository root, with any Python >= 3.9)::

    python benchmarks/peer_ossdbs.py                 # all levels, 1 and -3 mA
    python benchmarks/peer_ossdbs.py --levels default hp --currents-mA 1
    python benchmarks/peer_ossdbs.py --peer-python /path/to/venv/bin/python
    python benchmarks/peer_ossdbs.py --case directional    # all 7 leads; default hp hp_p3; 1 mA
    python benchmarks/peer_ossdbs.py --case directional \
        --leads "Boston Scientific Vercise Directed" --levels default hp
    python benchmarks/peer_ossdbs.py --case anatomy --anatomy-case CASE.json \
        --levels default hp hp_p3 --voxel-shift both

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
DEFAULT_OUT_DIRECTIONAL = HERE / "results" / "ossdbs_directional.json"
DEFAULT_OUT_ANATOMY = HERE / "results" / "ossdbs_anatomy.json"

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


# --- the directional case ---------------------------------------------------
# OSS-DBS's built-in directional leads. Dimensions (mm) are the numbers of
# OSS-DBS's default electrode parameters (ossdbs 0.5.9); "levels" lists the
# contacts per level from distal to proximal as OSS-DBS builds them, and
# "tip_is_contact" marks a lead whose level 0 is the conductive tip.
# "active_level" is the index of the most distal segmented level and
# "active_contact_id" (1-based, OSS-DBS numbering) its first segment.
DIRECTIONAL_LEADS = {
    "Boston Scientific Vercise Directed": dict(
        ossdbs="BostonScientificVerciseDirected", vta_model="Boston Scientific Vercise Directed",
        tip=1.5, length=1.5, spacing=0.5, diameter=1.3, levels=(1, 3, 3, 1),
        tip_is_contact=True),
    "Boston Scientific Vercise Cartesia X": dict(
        ossdbs="BostonScientificCartesiaX", vta_model="Boston Scientific Vercise Cartesia X",
        tip=1.1, length=1.5, spacing=0.5, diameter=1.3, levels=(3, 3, 3, 3, 3, 1),
        tip_is_contact=False),
    "Boston Scientific Vercise Cartesia HX": dict(
        ossdbs="BostonScientificCartesiaHX", vta_model="Boston Scientific Vercise Cartesia HX",
        tip=1.1, length=1.5, spacing=0.5, diameter=1.3, levels=(3, 3, 3, 3, 1, 1, 1, 1),
        tip_is_contact=False),
    "Medtronic SenSight B33005": dict(
        ossdbs="MedtronicSenSightB33005", vta_model="Medtronic SenSight B33005",
        tip=0.9, length=1.5, spacing=0.5, diameter=1.36, levels=(1, 3, 3, 1),
        tip_is_contact=False),
    "Medtronic SenSight B33015": dict(
        ossdbs="MedtronicSenSightB33015", vta_model="Medtronic SenSight B33015",
        tip=0.9, length=1.5, spacing=1.5, diameter=1.36, levels=(1, 3, 3, 1),
        tip_is_contact=False),
    "Abbott Directed 6172 (short)": dict(
        ossdbs="AbbottStJudeDirected6172", vta_model="Abbott 6172",
        tip=1.0, length=1.5, spacing=0.5, diameter=1.29, levels=(1, 3, 3, 1),
        tip_is_contact=False),
    "Abbott Directed 6173 (long)": dict(
        ossdbs="AbbottStJudeDirected6173", vta_model="Abbott 6173",
        tip=1.0, length=1.5, spacing=1.5, diameter=1.29, levels=(1, 3, 3, 1),
        tip_is_contact=False),
}
DIRECTIONAL_CURRENT_MA = 1.0
DIRECTIONAL_LEVELS = ["default", "hp", "hp_p3"]
DIRECTIONAL_LATTICE = (21, 0.5)  # points per axis, spacing (mm): cheap to evaluate


def directional_lead(name: str) -> dict:
    """Resolve a lead given by its name here, its OSS-DBS name or its vta model name."""
    def norm(t):
        return "".join(ch for ch in t.lower() if ch.isalnum())
    for key, d in DIRECTIONAL_LEADS.items():
        if norm(name) in {norm(key), norm(d["ossdbs"]), norm(d["vta_model"])}:
            break
    else:
        raise SystemExit(f"peer_ossdbs: unknown directional lead {name!r}; choose from: "
                         + "; ".join(DIRECTIONAL_LEADS))
    k = next(i for i, n in enumerate(d["levels"]) if n > 1)  # most distal segmented level
    pitch = d["length"] + d["spacing"]
    if d["tip_is_contact"]:  # level 0 is the tip [0, tip]; level k >= 1 starts after a gap
        z0 = d["tip"] + d["spacing"] + (k - 1) * pitch
    else:
        z0 = d["tip"] + k * pitch
    return {"lead": key, "ossdbs": d["ossdbs"], "vta_model": d["vta_model"],
            "n_contacts": sum(d["levels"]), "active_level": k,
            "active_contact_id": sum(d["levels"][:k]) + 1,
            "center_z_mm": round(z0 + 0.5 * d["length"], 9),
            "z_range_mm": (round(z0, 9), round(z0 + d["length"], 9)),
            "diameter_mm": d["diameter"]}


# Refinement levels: name -> (description, patch function on the settings dict).
# "edge" size follows the OSS-DBS convergence study: perimeter / 50 on the
# active contact's edges.
LEAD_DIAMETER_MM = 1.27
LEAD_DIAMETERS_MM = {"Medtronic3389": LEAD_DIAMETER_MM,
                     **{d["ossdbs"]: d["diameter"] for d in DIRECTIONAL_LEADS.values()}}


def _edge(settings: dict, divisor: float) -> None:
    diameter = LEAD_DIAMETERS_MM.get(settings["Electrodes"][0]["Name"], LEAD_DIAMETER_MM)
    size = 3.141592653589793 * diameter / divisor
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
ANATOMY_LEVELS = ["default", "hp", "hp_p3", "fine", "veryfine_hp"]
ANATOMY_CURRENT_MA = 1.0
ANATOMY_LATTICE = (21, 0.5)
#: labels of the anatomy case's tissue-class map and the OSS-DBS materials they are
#: (the map holds 1-3 only; OSS-DBS wants every material of its mapping in the dielectric
#: model and drops those absent from the map)
ANATOMY_MATERIALS = {"Gray matter": 1, "White matter": 2, "CSF": 3, "Blood": 4, "Unknown": 0}

# Writes the synthetic single-label NIfTI with the peer's own nibabel/numpy so
# that this driver needs nothing beyond the standard library.
_NIFTI_CODE = r"""
import sys, numpy as np, nibabel as nib
path, lo, n, vox = sys.argv[1], [float(v) for v in sys.argv[2:5]], int(sys.argv[5]), float(sys.argv[6])
aff = np.diag([vox, vox, vox, 1.0]); aff[:3, 3] = lo
nib.save(nib.Nifti1Image(np.ones((n, n, n), np.uint8), aff), path)
"""

# Builds one electrode with the peer's own electrode factory and prints, for the
# given contact, the axial extent of its faces and the azimuth (degrees from +x)
# of their area-weighted centre. Used only as a check of the case set-up.
_GEOMETRY_CODE = r"""
import json, math, sys
from ossdbs.electrodes import ELECTRODES
el = ELECTRODES[sys.argv[1]](0.0, (0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
bc = el.boundaries["Contact_" + sys.argv[2]]
faces = [f for f in el.geometry.faces if f.name == bc]
zs = [b[i][2] for f in faces for b in [f.bounding_box] for i in (0, 1)]
a = sum(f.mass for f in faces)
x = sum(f.center.x * f.mass for f in faces) / a
y = sum(f.center.y * f.mass for f in faces) / a
print(json.dumps({"n_contacts": el.n_contacts, "z_min": min(zs), "z_max": max(zs),
                  "azimuth_deg": math.degrees(math.atan2(y, x)), "off_axis_mm": math.hypot(x, y)}))
"""

# Writes a copy of a NIfTI with the affine's origin moved by `shift` voxels along every
# voxel axis (-0.5: a floor() lookup of the copy finds the voxel whose centre is nearest
# in the original), with the peer's own nibabel.
_SHIFT_CODE = r"""
import sys, numpy as np, nibabel as nib
src, dst, shift = sys.argv[1], sys.argv[2], float(sys.argv[3])
img = nib.load(src)
aff = np.array(img.affine, float)
aff[:3, 3] += shift * aff[:3, :3].sum(axis=1)
out = nib.Nifti1Image(np.asarray(img.dataobj), aff)
out.header.set_xyzt_units("mm")
nib.save(out, dst)
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


def peer_geometry(py: str, env: dict, electrode: str, contact_id: int) -> dict | None:
    try:
        out = subprocess.run([py, "-c", _GEOMETRY_CODE, electrode, str(contact_id)],
                             capture_output=True, text=True, env=env, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_settings(out_dir: str, nifti: str, current_mA: float, level: str,
                   preconditioner: str, lattice_n: int, lattice_mm: float,
                   lead: dict | None = None) -> dict:
    """OSS-DBS settings; ``lead`` (from ``directional_lead``) selects the directional case."""
    current_A = current_mA * 1e-3
    if lead is None:
        electrode, n_contacts, active_id = "Medtronic3389", N_CONTACTS, VTA_CONTACT_0BASED + 1
        center = DOMAIN_CENTER_MM
    else:
        electrode, n_contacts = lead["ossdbs"], lead["n_contacts"]
        active_id, center = lead["active_contact_id"], (0.0, 0.0, lead["center_z_mm"])
    contacts = []
    for cid in range(1, n_contacts + 1):
        if cid == active_id:
            # current-controlled: the 1 V here is only the unit solution; OSS-DBS
            # rescales by impedance * |I|
            contacts.append({"Contact_ID": cid, "Active": True, "Floating": False,
                             "Current[A]": current_A, "Voltage[V]": 1.0})
        else:
            contacts.append({"Contact_ID": cid, "Active": False, "Floating": True,
                             "Current[A]": 0.0})
    materials = {"Blood": 4, "Gray matter": 1, "White matter": 2, "CSF": 3, "Unknown": 0}
    d = 2.0 * DOMAIN_RADIUS_MM
    cx, cy, cz = center
    s = {
        "BrainRegion": {"Center": {"x[mm]": cx, "y[mm]": cy, "z[mm]": cz},
                        "Dimension": {"x[mm]": d, "y[mm]": d, "z[mm]": d},
                        "Shape": "Sphere"},
        "Electrodes": [{
            "Name": electrode, "Rotation[Degrees]": 0.0,
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


def load_anatomy_case(path: str) -> dict:
    """The anatomy case (tip, direction, sphere, conductivities, label map) from its JSON."""
    case = json.loads(Path(path).read_text())
    for key in ("tip_mm", "direction", "domain_center_mm", "domain_radius_mm", "label_nifti",
                "conductivity_S_per_m", "active_contact", "current_mA", "threshold_V_per_mm"):
        if key not in case:
            raise SystemExit(f"peer_ossdbs: anatomy case {path}: missing {key!r}")
    label = Path(case["label_nifti"])
    if not label.is_absolute():
        case["label_nifti"] = str((Path(path).resolve().parent / label).resolve())
    return case


def build_settings_anatomy(out_dir: str, nifti: str, case: dict, current_mA: float, level: str,
                           preconditioner: str, lattice_n: int, lattice_mm: float) -> dict:
    """OSS-DBS settings of the anatomy case: the 3389 ring-case settings with the case's
    placement, sphere, label map and per-class constant conductivities."""
    s = build_settings(out_dir, nifti, current_mA, "default", preconditioner, lattice_n, lattice_mm)
    xyz = ("x[mm]", "y[mm]", "z[mm]")
    el = s["Electrodes"][0]
    el["TipPosition"] = dict(zip(xyz, map(float, case["tip_mm"])))
    el["Direction"] = dict(zip(xyz, map(float, case["direction"])))
    active_id = int(case["active_contact"]) + 1
    for c in el["Contacts"]:
        if c["Contact_ID"] == active_id:
            c.update(Active=True, Floating=False, **{"Current[A]": current_mA * 1e-3, "Voltage[V]": 1.0})
        else:
            c.update(Active=False, Floating=True, **{"Current[A]": 0.0})
            c.pop("Voltage[V]", None)
    s["Surfaces"][0]["Current[A]"] = -current_mA * 1e-3
    center = dict(zip(xyz, map(float, case["domain_center_mm"])))
    d = 2.0 * float(case["domain_radius_mm"])
    s["BrainRegion"] = {"Center": center, "Dimension": dict(zip(xyz, (d, d, d))), "Shape": "Sphere"}
    s["PointModel"]["Lattice"]["Center"] = center
    sig = case["conductivity_S_per_m"]  # {"GM": .., "WM": .., "CSF": ..}
    values = {"Gray matter": sig["GM"], "White matter": sig["WM"], "CSF": sig["CSF"],
              "Blood": sig.get("blood", 0.7), "Unknown": sig["WM"]}
    s["MaterialDistribution"]["MRIMapping"] = dict(ANATOMY_MATERIALS)
    s["DielectricModel"] = {"Type": "Constant", "CustomParameters": {
        m: {"permittivity": 2.22e4, "conductivity": float(values[m])} for m in ANATOMY_MATERIALS}}
    s["ActivationThresholdVTA[V-per-m]"] = float(case["threshold_V_per_mm"]) * 1e3
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


def _write_rows(rows: list, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=2))
    tmp.replace(out)


def _row_key(r: dict) -> tuple:
    return (r.get("lead"), r.get("level"), r.get("current_mA"), r.get("voxel_shift"))


def run_anatomy(args, case: dict, py: str, env: dict, versions: dict, mach: dict,
                work: Path) -> list:
    """The anatomy case at every level (and voxel shift); one row per run."""
    shifts = {"corrected": [-0.5], "none": [0.0], "both": [-0.5, 0.0]}[args.voxel_shift]
    src = case["label_nifti"]
    rows = []
    print(f"anatomy case: tip {case['tip_mm']} direction {case['direction']}, sphere "
          f"r = {case['domain_radius_mm']} mm at {case['domain_center_mm']}, "
          f"sigma {case['conductivity_S_per_m']}, map {src}", flush=True)
    for shift in shifts:
        nifti = work / f"labels_shift{shift:+g}.nii.gz".replace("+", "p").replace("-", "m")
        subprocess.run([py, "-c", _SHIFT_CODE, src, str(nifti), repr(shift)], check=True, env=env)
        for level in args.levels:
            for cur in args.currents_mA:
                tag = f"anatomy_{level}_{cur:+g}mA_shift{shift:+g}".replace("+", "p").replace("-", "m")
                run_dir = work / tag
                run_dir.mkdir(exist_ok=True)
                out_dir = run_dir / "Results"
                settings = build_settings_anatomy(str(out_dir), str(nifti), case, cur, level,
                                                  args.preconditioner, args.lattice_n,
                                                  args.lattice_mm)
                (run_dir / "settings.json").write_text(json.dumps(settings, indent=1))
                rc, wall, mem = run_measured([py, "-m", "ossdbs.main", "settings.json"], env,
                                             str(run_dir), str(run_dir / "ossdbs_stdout.log"),
                                             args.timeout_s)
                row = {"case": "anatomy", "lead": "Medtronic3389", "level": level,
                       "description": LEVELS[level][0], "current_mA": cur,
                       "contact": int(case["active_contact"]), "voxel_shift": shift,
                       "label_nifti": src, "returncode": rc,
                       "wall_s": round(wall, 3), "peak_mem_MB": round(mem, 1),
                       "fem_order": settings["FEMOrder"],
                       "preconditioner": args.preconditioner, "threads": args.threads,
                       "lattice_n": args.lattice_n, "lattice_mm": args.lattice_mm,
                       "ossdbs_version": versions["ossdbs"],
                       "ngsolve_version": versions["ngsolve"],
                       "netgen_version": versions["netgen"], **mach}
                if rc == 0 and (out_dir / "VCM_report.json").exists():
                    row.update(parse_outputs(out_dir, args.lattice_mm))
                else:
                    row["error"] = f"ossdbs exited with {rc}; see {run_dir / 'ossdbs_stdout.log'}"
                rows.append(row)
                print(f"  {tag:34s} rc={rc} dofs={row.get('dofs')} wall={wall:.1f}s "
                      f"mem={mem:.0f}MB vta={row.get('vta_mm3')} Z={row.get('impedance_ohm')}",
                      flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", help="interpreter that has ossdbs installed")
    ap.add_argument("--case", default="3389", choices=["3389", "directional", "anatomy"],
                    help="'3389': Medtronic 3389 ring case (default); 'directional': first "
                         "segment of the most distal segmented level of directional leads; "
                         "'anatomy': 3389 in the right NAc, tissue-class label map "
                         "(needs --anatomy-case)")
    ap.add_argument("--anatomy-case", metavar="JSON",
                    help="anatomy case only: the case file written by "
                         "benchmarks/bench_anatomy_peer.py (--write-case DIR)")
    ap.add_argument("--voxel-shift", default="corrected", choices=["corrected", "none", "both"],
                    help="anatomy case only: give OSS-DBS the label map with its origin moved "
                         "by -0.5 voxel ('corrected', default: the same field as vta's "
                         "voxel-centre lookup), the map as it is ('none'), or run both")
    ap.add_argument("--leads", nargs="+", metavar="NAME[,NAME...]",
                    help="directional case only: leads by name here, OSS-DBS name or vta "
                         "model name, comma-separated (default: all of DIRECTIONAL_LEADS)")
    ap.add_argument("--levels", nargs="+", choices=list(LEVELS),
                    help=f"default: {' '.join(DEFAULT_LEVELS)} (3389), "
                         f"{' '.join(DIRECTIONAL_LEVELS)} (directional)")
    ap.add_argument("--currents-mA", nargs="+", type=float,
                    help="amplitudes on the active contact in mA (negative = cathodic); "
                         "default: 1 -3 (3389), 1 (directional)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preconditioner", default="local", choices=["local", "bddc"],
                    help="'local' (Jacobi; default). 'bddc' uses coarsetype=direct: "
                         "OSS-DBS' default BDDC/h1amg does not finish with floating contacts")
    ap.add_argument("--lattice-n", type=int,
                    help="lattice points per axis (default: 61 for 3389, 21 for directional)")
    ap.add_argument("--lattice-mm", type=float,
                    help="lattice spacing in mm (default: 0.2 for 3389, 0.5 for directional)")
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="per run")
    ap.add_argument("--workdir", help="keep run directories here (default: temp dir, removed)")
    ap.add_argument("--out", help="results JSON (default: benchmarks/results/ossdbs_3389.json "
                                  "or ossdbs_directional.json)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows already in --out, replacing those with the same "
                         "lead, level and current")
    ap.add_argument("--no-geometry-check", action="store_true",
                    help="directional case: skip building each electrode in the peer to "
                         "check the active contact's position")
    args = ap.parse_args(argv)

    directional = args.case == "directional"
    anatomy = None
    if args.case == "anatomy":
        if not args.anatomy_case:
            ap.error("--case anatomy needs --anatomy-case (write one with "
                     "benchmarks/bench_anatomy_peer.py --write-case DIR)")
        anatomy = load_anatomy_case(args.anatomy_case)
        if args.levels is None:
            args.levels = list(ANATOMY_LEVELS)
        if args.currents_mA is None:
            args.currents_mA = [float(anatomy.get("current_mA", ANATOMY_CURRENT_MA))]
        if args.lattice_n is None:
            args.lattice_n = ANATOMY_LATTICE[0]
        if args.lattice_mm is None:
            args.lattice_mm = ANATOMY_LATTICE[1]
        if args.out is None:
            args.out = str(DEFAULT_OUT_ANATOMY)
    elif args.anatomy_case:
        ap.error("--anatomy-case needs --case anatomy")
    if args.leads and not directional:
        ap.error("--leads needs --case directional")
    if args.levels is None:
        args.levels = list(DIRECTIONAL_LEVELS if directional else DEFAULT_LEVELS)
    if args.currents_mA is None:
        args.currents_mA = [DIRECTIONAL_CURRENT_MA] if directional else [1.0, -3.0]
    if args.lattice_n is None:
        args.lattice_n = DIRECTIONAL_LATTICE[0] if directional else 61
    if args.lattice_mm is None:
        args.lattice_mm = DIRECTIONAL_LATTICE[1] if directional else 0.2
    if args.out is None:
        args.out = str(DEFAULT_OUT_DIRECTIONAL if directional else DEFAULT_OUT)
    if directional:
        names = ([n.strip() for a in args.leads for n in a.split(",") if n.strip()]
                 if args.leads else list(DIRECTIONAL_LEADS))
        leads = [directional_lead(n) for n in names]
    else:
        leads = [None]

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

    def make_nifti(center) -> Path:
        # one label (1 = "Gray matter") on a 1 mm grid covering the sphere with 2 mm margin
        tag = "" if center == DOMAIN_CENTER_MM else f"_z{center[2]:g}".replace(".", "p")
        nifti = work / f"tissue_0p2Spm{tag}.nii.gz"
        half = DOMAIN_RADIUS_MM + 2.0
        lo = [c - half for c in center]
        n = int(2 * half) + 1
        subprocess.run([py, "-c", _NIFTI_CODE, str(nifti), *map(str, lo), str(n), "1.0"],
                       check=True, env=env)
        return nifti

    mach = machine_info()
    out = Path(args.out)
    old_rows = []
    if args.merge and out.exists():
        old_rows = json.loads(out.read_text())
    rows = []
    print(f"OSS-DBS {versions['ossdbs']}  NGSolve {versions['ngsolve']}  "
          f"threads={args.threads}  nproc={mach['nproc']}  {mach['cpu_model']}", flush=True)
    failed_check = False
    if anatomy is not None:
        rows = run_anatomy(args, anatomy, py, env, versions, mach, work)
        leads = []
    for lead in leads:
        lead_info = {}
        if lead is None:
            nifti = make_nifti(DOMAIN_CENTER_MM)
        else:
            nifti = make_nifti((0.0, 0.0, lead["center_z_mm"]))
            lead_info = {"case": "directional", "lead": lead["lead"],
                         "ossdbs_electrode": lead["ossdbs"], "vta_model": lead["vta_model"],
                         "n_contacts": lead["n_contacts"],
                         "active_contact_id": lead["active_contact_id"],
                         "active_level": lead["active_level"],
                         "active_level_center_z_mm": lead["center_z_mm"],
                         "active_contact_z_range_mm": list(lead["z_range_mm"]),
                         "domain_center_mm": [0.0, 0.0, lead["center_z_mm"]]}
            print(f"{lead['lead']} ({lead['ossdbs']}): Contact_{lead['active_contact_id']} "
                  f"of {lead['n_contacts']}, level {lead['active_level']}, "
                  f"z {lead['z_range_mm'][0]:g}..{lead['z_range_mm'][1]:g} mm, "
                  f"centre z = {lead['center_z_mm']:g} mm", flush=True)
            if not args.no_geometry_check:
                geo = peer_geometry(py, env, lead["ossdbs"], lead["active_contact_id"])
                if geo is None:
                    print("  geometry check: could not build the electrode in the peer",
                          flush=True)
                else:
                    ok = (geo["n_contacts"] == lead["n_contacts"]
                          and abs(geo["z_min"] - lead["z_range_mm"][0]) < 1e-6
                          and abs(geo["z_max"] - lead["z_range_mm"][1]) < 1e-6
                          and geo["off_axis_mm"] > 0.1)  # a segment, not a ring
                    lead_info["active_contact_azimuth_deg"] = round(geo["azimuth_deg"], 3)
                    print(f"  geometry check {'ok' if ok else 'FAILED'}: peer contact spans "
                          f"z {geo['z_min']:.4f}..{geo['z_max']:.4f} mm, azimuth "
                          f"{geo['azimuth_deg']:.1f} deg, {geo['n_contacts']} contacts",
                          flush=True)
                    if not ok:
                        failed_check = True
                        continue
        for level in args.levels:
            for cur in args.currents_mA:
                tag = f"{level}_{cur:+g}mA".replace("+", "p").replace("-", "m")
                if lead is not None:
                    tag = f"{lead['ossdbs']}_{tag}"
                run_dir = work / tag
                run_dir.mkdir(exist_ok=True)
                out_dir = run_dir / "Results"
                settings = build_settings(str(out_dir), str(nifti), cur, level,
                                          args.preconditioner, args.lattice_n, args.lattice_mm,
                                          lead)
                (run_dir / "settings.json").write_text(json.dumps(settings, indent=1))
                rc, wall, mem = run_measured([py, "-m", "ossdbs.main", "settings.json"], env,
                                             str(run_dir), str(run_dir / "ossdbs_stdout.log"),
                                             args.timeout_s)
                contact = (VTA_CONTACT_0BASED if lead is None
                           else lead["active_contact_id"] - 1)
                row = {"level": level, "description": LEVELS[level][0], "current_mA": cur,
                       "contact": contact, "returncode": rc,
                       "wall_s": round(wall, 3), "peak_mem_MB": round(mem, 1),
                       "fem_order": settings["FEMOrder"],
                       "preconditioner": args.preconditioner, "threads": args.threads,
                       "ossdbs_version": versions["ossdbs"],
                       "ngsolve_version": versions["ngsolve"],
                       "netgen_version": versions["netgen"], **mach}
                if lead is not None:
                    row.update(lead_info, lattice_n=args.lattice_n, lattice_mm=args.lattice_mm)
                if rc == 0 and (out_dir / "VCM_report.json").exists():
                    row.update(parse_outputs(out_dir, args.lattice_mm))
                else:
                    row["error"] = f"ossdbs exited with {rc}; see {run_dir / 'ossdbs_stdout.log'}"
                rows.append(row)
                print(f"  {tag:22s} rc={rc} dofs={row.get('dofs')} wall={wall:.1f}s "
                      f"mem={mem:.0f}MB vta={row.get('vta_mm3')} "
                      f"vta_lattice={row.get('vta_lattice_mm3')} Z={row.get('impedance_ohm')}",
                      flush=True)
                if directional:  # several minutes per lead: keep what is done so far
                    keys = {_row_key(r) for r in rows}
                    _write_rows([r for r in old_rows if _row_key(r) not in keys] + rows, out)

    lead_col = max([len(r.get("ossdbs_electrode", "")) for r in rows] + [0])
    hdr = (f"{'lead':{lead_col}s} " if lead_col else "") + (
        f"{'level':12s} {'I mA':>6s} {'DOFs':>9s} {'wall s':>8s} {'solve s':>8s} "
        f"{'mem MB':>7s} {'VTA mm3':>9s} {'VTAlat':>8s} {'Z ohm':>8s}")
    print("\n" + hdr + "\n" + "-" * len(hdr))

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for r in rows:
        print((f"{r.get('ossdbs_electrode', ''):{lead_col}s} " if lead_col else "")
              + f"{r['level']:12s} {r['current_mA']:6.1f} {f(r.get('dofs'), '9d')} "
              f"{r['wall_s']:8.1f} {f(r.get('solve_s'), '8.2f')} {r['peak_mem_MB']:7.0f} "
              f"{f(r.get('vta_mm3'), '9.3f')} {f(r.get('vta_lattice_mm3'), '8.3f')} "
              f"{f(r.get('impedance_ohm'), '8.1f')}")

    keys = {_row_key(r) for r in rows}
    _write_rows([r for r in old_rows if _row_key(r) not in keys] + rows, out)
    print(f"\nwrote {out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if rows and not failed_check and all(r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
