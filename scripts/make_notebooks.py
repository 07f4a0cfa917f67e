"""Write the notebooks in notebooks/ (no outputs): python scripts/make_notebooks.py (from the repo root)"""
import nbformat as nbf

def nb(cells, path):
    n = nbf.v4.new_notebook()
    n.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    n.cells = [nbf.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbf.v4.new_code_cell(c.strip("\n")) for c in cells]
    nbf.write(n, path)

nb([
"""md:# Settings sweeps and optimisation on one solved field basis

The demo lead (SceneRay SR1242 through the right ALIC into the right NAc, embedded
default anatomy). The finite-element problem is solved once per contact (the *field
basis*); every setting below is a weighted sum of those unit solutions, so thousands of
settings cost seconds, and the optimiser finds, per contact configuration, the smallest
amplitude that reaches the best NAc coverage within spill and safety limits.""",
"""
import time, tomllib
from importlib import resources
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

import vta

data = tomllib.loads(resources.files("vta").joinpath("data/demo.toml").read_text())
data["solver"] = {"preset": "fast"}          # quick overview; "default" for reported numbers
data["vta"] = {"fiber_diameter_um": 3.5}      # Astrom 2015 threshold at each pulse width
scene = vta.Scene.from_dict(data, "demo.toml")   # the field basis is cached on disk after the first run
print(scene.lead.model.name, "-", scene.lead.model.n_contacts, "contacts;", scene.config.stimulation.mode, "mode;",
      "targets", scene.default_targets)
""",
"""md:## A sweep: monopolar and bipolar configurations, 0.5-6 V, three pulse widths""",
"""
spec = vta.SweepSpec(vta.standard_configs(scene.lead.model.n_contacts, ["monopolar", "bipolar-adjacent"], "voltage"),
                     np.round(np.arange(0.5, 6.01, 0.5), 3), [60.0, 90.0, 120.0], "voltage")
t0 = time.perf_counter()
rows = vta.sweep(scene, spec)
print(f"{len(rows)} settings in {time.perf_counter() - t0:.2f} s")
""",
"""
fig, ax = plt.subplots(figsize=(6, 4))
for label in ["c0-", "c1-", "c0-c1+"]:
    sel = [r for r in rows if r["config"] == label and r["pulse_width_us"] == 90.0]
    ax.plot([r["amplitude"] for r in sel], [100 * r["NAc_R_fraction"] for r in sel], marker=".", label=label)
ax.set_xlabel("amplitude (V)"); ax.set_ylabel("right NAc covered (%)"); ax.legend(); ax.grid(alpha=0.3)
best = max(rows, key=lambda r: r["NAc_R_fraction"] - 0.002 * r["spill_mm3"])
assert 0 < best["NAc_R_fraction"] <= 1
best["config"], best["amplitude"], round(best["NAc_R_fraction"], 3)
""",
"""md:## Optimisation: best NAc coverage with at most 150 mm^3 outside NAc/ALIC and 40 mm^3 in the ALIC""",
"""
limits = vta.Limits(max_spill_mm3=150.0, max_overlap_mm3={"ALIC_R": 40.0}, max_amplitude=8.0)
configs = vta.standard_configs(scene.lead.model.n_contacts, ["monopolar", "bipolar-adjacent", "double-monopolar"], "voltage")
ranked = vta.optimise(scene, configs, limits, targets=["NAc_R"], pulse_widths_us=[90.0], resolution=0.1)
for r in ranked[:5]:
    print(f"{r['rank']}. {r['active_contacts']:<8} {r['amplitude']:4.1f} V  NAc {100 * r['target_coverage']:5.1f} %  "
          f"spill {r['spill_mm3']:6.1f} mm^3  ALIC {r['ALIC_R_overlap_mm3']:5.1f} mm^3  limited by {r['limited_by']}")
top = ranked[0]
assert top["feasible"] and top["spill_mm3"] <= 150.0 and top["ALIC_R_overlap_mm3"] <= 40.0
""",
], "notebooks/sweeps.ipynb")

nb([
"""md:# A cohort on Dask: NAc/ALIC leads of several subjects

`examples/cohort/manifest.csv` lists subject, hemisphere, lead model, tip and entry in
MNI mm and the setting; `template.toml` holds everything else. `run_batch` starts a Dask
`LocalCluster` (or connects to `scheduler="tcp://..."`), skips finished subjects,
lists failures in `errors.csv`, and writes `group.csv` and a VTA frequency map in MNI.""",
"""
import csv, tempfile
from pathlib import Path
import numpy as np
import nibabel as nib
import vta

root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
manifest = vta.load_manifest(root / "examples/cohort/manifest.csv", root / "examples/cohort/template.toml")
import dataclasses
manifest = dataclasses.replace(manifest, subjects=manifest.subjects[:3])   # three for a quick look
out = Path(tempfile.mkdtemp(prefix="vta_cohort_"))
print(len(manifest.subjects), "subject-hemispheres ->", out)
""",
"""
result = vta.run_batch(manifest, out, n_workers=2)
print(result.summary_line())
assert not result.failed
""",
"""
with open(out / "group.csv", newline="") as fh:
    group = list(csv.DictReader(fh))
for row in group:
    print(row["subject"], row["hemisphere"], row["status"], f"VTA {float(row['vta_volume_mm3']):6.1f} mm^3")
freq = nib.load(out / "vta_frequency.nii.gz")
counts = np.asarray(freq.dataobj)
print("frequency map", counts.shape, "max overlap", counts.max())
assert counts.max() >= 1
""",
"""md:Running it again skips every finished subject:""",
"""
again = vta.run_batch(manifest, out, n_workers=2)
print(again.summary_line())
assert again.count("skipped") == len(group)
""",
], "notebooks/cohort.ipynb")

nb([
"""md:# Targeting: a lead through the right ALIC into the right NAc

Place a SceneRay SR1242 with its tip in the right nucleus accumbens (trajectory through
the ALIC) on the embedded MNI anatomy, stimulate, and look at the VTA against NAc/ALIC
and at the axons of the (synthetic) ALIC bundle that fire. Change the contacts and the
amplitude and run the cell again: the finite-element solution is cached, a new setting
costs seconds.""",
"""
import json, tempfile, tomllib
from importlib import resources
from pathlib import Path
from IPython.display import Image, display

import vta

data = tomllib.loads(resources.files("vta").joinpath("data/demo.toml").read_text())
data["solver"] = {"preset": "fast"}            # quick look; "default" for reported numbers
data["stimulation"]["contacts"] = {"0": -2.5, "1": -2.5}
out = Path(tempfile.mkdtemp(prefix="vta_targeting_"))
""",
"""
scene = vta.Scene.from_dict(data, "targeting.toml")
sim = scene.simulate()
summary = vta.write(sim, out)
try:
    vta.render(sim, out / "views", cameras=["anterior", "lateral"], size=(1000, 720))
except vta.VtaError as exc:      # no offscreen OpenGL here: numbers only
    print("no rendering:", exc)
print(f"VTA {summary['vta_volume_mm3']:.0f} mm^3, impedance {summary['impedance_ohm']:.0f} ohm")
for name in ("NAc_R", "ALIC_R"):
    s = summary["structures"][name]
    print(f"{name}: {s['overlap_mm3']:.0f} mm^3 ({100 * s['fraction']:.1f} % of it)")
t = summary["tracts"]["ALIC_bundle"]
print(f"ALIC bundle: {t['n_activated']} of {t['n_fibres']} fibres activated")
assert summary["structures"]["NAc_R"]["overlap_mm3"] > 0
""",
"""
for name in ("render_anterior.png", "render_lateral.png"):
    if (out / "views" / name).exists():
        display(Image(filename=str(out / "views" / name), width=800))
print("interactive view:", out / "views" / "scene.html")
""",
"""md:## Another setting on the same scene: no new solve""",
"""
other = scene.simulate(vta.Setting("voltage", {1: -3.0}))
print(f"contact 1 at -3 V: VTA {other.vta_volume_mm3:.0f} mm^3, NAc_R {100 * other.structures['NAc_R']['fraction']:.1f} %")
assert other.vta_volume_mm3 > 0
""",
], "notebooks/targeting.ipynb")
