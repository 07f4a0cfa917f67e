"""End to end: `vta run` as a user runs it, outputs, contract and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from niftitools import save_raw_affine

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "homogeneous_3389.toml"


def vta(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vta", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def homogeneous_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    proc = vta("run", str(EXAMPLE), "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "summary.json").read_text()), proc


def test_summary_contract(homogeneous_run):
    out, s, proc = homogeneous_run
    for key in ("vta_volume_mm3", "impedance_ohm", "contacts", "structures", "mesh", "timings_s", "config", "version"):
        assert key in s
    assert set(s["contacts"]) == {"0", "1", "2", "3"}
    for c in s["contacts"].values():
        assert {"potential_V", "current_mA"} <= set(c)
    assert {"nodes", "elements", "dofs"} <= set(s["mesh"])
    assert all(isinstance(v, (int, float)) for v in s["timings_s"].values())
    assert s["timings_s"]["total"] >= s["timings_s"]["vta"]
    assert s["contacts"]["1"]["current_mA"] == pytest.approx(-1.0)
    assert sum(abs(s["contacts"][k]["current_mA"]) for k in "023") < 1e-9
    # the converged reference of this case: 540.58 ohm, 9.716 mm^3 (docs/validation.md)
    assert s["impedance_ohm"] == pytest.approx(540.58, rel=0.01)
    assert s["vta_volume_mm3"] == pytest.approx(9.716, rel=0.005)
    assert s["config"]["stimulation"]["contacts"] == {"1": -1.0}
    assert "VTA 9.7" in proc.stdout


def test_nifti_outputs(homogeneous_run):
    out, s, _ = homogeneous_run
    vta_img = nib.load(out / "vta.nii.gz")
    e_img = nib.load(out / "efield_norm.nii.gz")
    np.testing.assert_allclose(vta_img.affine, e_img.affine)
    mask = np.asarray(vta_img.dataobj) > 0
    field = np.asarray(e_img.dataobj)
    assert mask.sum() > 0 and np.all(field[mask] >= 0.2)
    # the voxel-counted VTA agrees with the mesh integral to voxelisation accuracy
    assert mask.sum() * 0.25**3 == pytest.approx(s["vta_volume_mm3"], rel=0.08)
    # the VTA is centred on contact 1 at z = 4.25 mm
    ijk = np.argwhere(mask)
    centre = nib.affines.apply_affine(vta_img.affine, ijk).mean(axis=0)
    np.testing.assert_allclose(centre, [0, 0, 4.25], atol=0.2)
    assert not mask[0].any() and not mask[-1].any()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["efield_norm.nii.gz", "summary.json", "vta.nii.gz"]


def test_leads_listing():
    proc = vta("leads")
    assert proc.returncode == 0
    assert "SceneRay SR1242" in proc.stdout and "Boston Scientific Vercise Directed" in proc.stdout
    rows = json.loads(vta("leads", "--json").stdout)
    assert len(rows) >= 18


BAD_CASES = [
    ('model = "Medtronic 3389"', 'model = "Medtronic 9999"', "unknown lead model 'Medtronic 9999'"),
    ("contacts = { 1 = -1.0 }", "contacts = { 4 = -1.0 }", "contact 4 does not exist"),
    ("contacts = { 1 = -1.0 }", "contacts = { 1 = -5000.0 }", "outside the plausible range"),
    ("threshold_V_per_mm = 0.2", "threshold_V_per_mm = -0.2", "vta.threshold_V_per_mm': must be positive"),
    ("tip_mm = [0.0, 0.0, 0.0]", "tip_mm = [0.0, 0.0, 40.0]", "is outside the domain"),
    ("conductivity_S_per_m = 0.2", "conductivity_S_per_m = 0.2\ncolour = 1", "'tissue.colour': unknown key"),
]


@pytest.mark.parametrize("old, new, message", BAD_CASES)
def test_bad_input_one_line_error_no_output(tmp_path, old, new, message):
    text = EXAMPLE.read_text()
    assert old in text
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text.replace(old, new, 1))
    out = tmp_path / "out"
    proc = vta("run", str(cfg), "--out", str(out), "-q")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vta: error:"), proc.stderr
    assert message in lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]


def test_missing_config_file(tmp_path):
    proc = vta("run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "config file not found" in proc.stderr


def run_user_anatomy(tmp_path, segmentation, label, tip_mm):
    """`vta run` on a user tissue segmentation (one WM label) with a 3389 at ``tip_mm``."""
    cfg = tmp_path / "anat.toml"
    cfg.write_text(
        f'[anatomy]\ntissue_nifti = "{segmentation}"\ntissue_labels = {{ {label} = "WM" }}\n'
        f'[lead]\nmodel = "3389"\ntip_mm = {list(map(float, tip_mm))}\ndirection = [0, 0, 1]\n'
        '[stimulation]\nmode = "current"\ncontacts = { 0 = -1.0 }\n'
    )
    return vta("run", str(cfg), "--out", str(tmp_path / "o"))


def test_broken_affine_in_user_anatomy(tmp_path):
    affine = np.eye(4)
    affine[0] = 0.0  # srow_x = 0: a singular affine, as a broken tool writes it
    save_raw_affine(tmp_path / "seg.nii", np.ones((20, 20, 20), np.uint8), affine)
    proc = run_user_anatomy(tmp_path, "seg.nii", 1, [10, 10, 5])
    assert proc.returncode == 2
    assert "seg.nii" in proc.stderr and "affine" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_lead_outside_anatomy(tmp_path):
    nib.save(nib.Nifti1Image(np.full((20, 20, 20), 2, np.uint8), np.eye(4)), tmp_path / "seg.nii.gz")
    proc = run_user_anatomy(tmp_path, "seg.nii.gz", 2, [50, 50, 50])
    assert proc.returncode == 2
    assert "lies outside the anatomy" in proc.stderr


def test_directional_lead_3d_run(tmp_path):
    """A segment of a directional lead: solved in 3D, VTA off-axis towards the segment."""
    text = (ROOT / "examples" / "directional_vercise.toml").read_text()
    cfg = tmp_path / "d.toml"
    cfg.write_text(text + '\n[solver]\npreset = "fast"\n[output]\nvtu = true\n')
    out = tmp_path / "out"
    proc = vta("run", str(cfg), "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["method"] == "3d" and s["mesh"]["kind"] == "tet"
    img = nib.load(out / "vta.nii.gz")
    ijk = np.argwhere(np.asarray(img.dataobj) > 0)
    centroid = nib.affines.apply_affine(img.affine, ijk).mean(axis=0)
    tip = np.array(s["config"]["lead"]["tip_mm"])
    direction = np.array(s["config"]["lead"]["direction"])
    seg_centre = np.array(s["contacts"]["2"]["center_mm"])
    axis_point = tip + direction * ((seg_centre - tip) @ direction)
    # the VTA centroid lies off the axis on the side the segment faces
    outward = seg_centre - axis_point
    assert (centroid - axis_point) @ outward / np.linalg.norm(outward) > 0.5
    # the mesh with the solution, readable by VTK tools
    import pyvista as pv

    grid = pv.read(out / "field.vtu")
    assert grid.n_cells == s["mesh"]["elements"]
    potential = grid.point_data["potential_V"]
    assert np.isfinite(potential).all()
    assert potential.min() == pytest.approx(s["contacts"]["2"]["potential_V"], rel=1e-6)
    assert np.nanmax(grid.cell_data["E_norm_V_per_mm"]) > 0.2


def test_warmup_compiles_and_reports():
    """`vta warmup` (run by `make setup`) goes through every kernel path and says so."""
    proc = vta("warmup")
    assert proc.returncode == 0, proc.stderr
    for step in ("demo scene", "ring lead", "directional lead", "simplified axons"):
        assert step in proc.stdout
    assert "warm-up done" in proc.stdout


def test_user_anatomy_run_reports_structure_coverage(tmp_path):
    """Tissue segmentation + label atlas with a TSV table: per-structure VTA overlap."""
    tissue = np.full((40, 40, 40), 2, np.uint8)  # WM
    tissue[25:] = 1  # GM for x >= 25 mm
    labels = np.zeros((40, 40, 40), np.int16)
    labels[16:25, 16:25, 9:15] = 1  # a 9 x 9 x 6 mm "target" around contact 0 (z = 12.25)
    labels[2:8, 2:8, 30:36] = 2  # far away: never activated
    for name, data in (("tissue.nii.gz", tissue), ("labels.nii.gz", labels)):
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / name)
    (tmp_path / "labels.tsv").write_text("index\tname\n1\ttarget\n2\tfar\n")
    cfg = tmp_path / "user.toml"
    cfg.write_text(
        '[anatomy]\ntissue_nifti = "tissue.nii.gz"\ntissue_labels = { 1 = "GM", 2 = "WM" }\n'
        'labels_nifti = "labels.nii.gz"\nlabel_table = "labels.tsv"\n'
        '[lead]\nmodel = "3389"\ntip_mm = [20.0, 20.0, 10.0]\ndirection = [0, 0, 1]\n'
        '[tissue]\nmodel = "constant"\n'
        '[stimulation]\nmode = "current"\ncontacts = { 0 = -3.0 }\n'
        '[solver]\npreset = "fast"\n'
    )
    out = tmp_path / "out"
    proc = vta("run", str(cfg), "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    target, far = s["structures"]["target"], s["structures"]["far"]
    assert target["volume_mm3"] == pytest.approx(9 * 9 * 6)
    assert 0 < target["overlap_mm3"] <= s["vta_volume_mm3"]
    assert 0 < target["fraction"] <= 1
    assert far["overlap_mm3"] == 0.0
    assert s["config"]["tissue"]["model"] == "constant" and s["method"] == "3d"
