"""Results back in Lead-DBS: `[output] leaddbs` writes a Lead-DBS (v3) stimulation folder
(uncompressed NIfTI, MNI sform/qform, |E| in V/m) next to the run's outputs, all or nothing,
for `vta run` and per subject in `vta batch`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from vta.config import parse_config
from vta.errors import ConfigError, VtaError
from vta.io import OutputTransaction
from vta.leaddbs_export import MNI_FOLDER, export_file_names, subject_id
from vta.leads import LeadPlacement
from vta.outputs import run
from vta.scene import Scene
from vta.studies.batch import run_batch

from test_targets import write_reco

ROOT = Path(__file__).resolve().parents[1]

# Leads along +z (exactly axisymmetric in a sphere centred on the axis: the fast 2D solver)
RIGHT_Z = LeadPlacement([12.0, -13.0, -8.0], [0.0, 0.0, 1.0])
LEFT_Z = LeadPlacement([-12.0, -13.0, -8.0], [0.0, 0.0, 1.0])
CENTRE = {"right": [12.0, -13.0, -3.75], "left": [-12.0, -13.0, -3.75]}


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    old = os.environ.get("VTA_CACHE_DIR")
    os.environ["VTA_CACHE_DIR"] = str(tmp_path_factory.mktemp("basis_cache"))
    yield
    if old is None:
        os.environ.pop("VTA_CACHE_DIR", None)
    else:
        os.environ["VTA_CACHE_DIR"] = old


def make_patient(root: Path, name: str = "sub-07", recon_name: str | None = None) -> Path:
    """A Lead-DBS v3 patient folder: reconstruction/<sub>_desc-reconstruction.mat (both
    leads, MNI and native coordinates) and a stimulation of Lead-DBS's own."""
    patient = root / name
    (patient / "reconstruction").mkdir(parents=True)
    recon = recon_name or f"{name}_desc-reconstruction.mat"
    write_reco(patient / "reconstruction" / recon, [("Medtronic 3389", RIGHT_Z), ("Medtronic 3389", LEFT_Z)])
    other = patient / "stimulations" / MNI_FOLDER / "clinical"
    other.mkdir(parents=True)
    (other / f"{name}_sim-binary_model-simbio_hemi-R.nii").write_bytes(b"lead-dbs's own")
    return patient


def config(patient: Path, side: str = "right", **output) -> dict:
    recon = next((patient / "reconstruction").glob("*.mat"))
    return {
        "lead": {"leaddbs_reconstruction": str(recon), "side": side, "space": "mni"},
        "domain": {"shape": "sphere", "radius_mm": 20.0, "center_mm": CENTRE[side]},
        "tissue": {"conductivity_S_per_m": 0.2},
        "stimulation": {"mode": "current", "contacts": {"1": -2.0}},
        "solver": {"preset": "fast"},
        "output": {"grid_spacing_mm": 0.5, "leaddbs": str(patient), **output},
    }


def load(path: Path):
    img = nib.load(str(path))
    return img, np.asarray(img.dataobj)


def test_run_writes_a_leaddbs_stimulation_folder(tmp_path):
    patient = make_patient(tmp_path / "derivatives" / "leaddbs")
    scene = Scene.from_dict(config(patient, leaddbs_legacy=True))
    assert scene.method == "axisymmetric"
    summary = run(scene, tmp_path / "out")
    folder = patient / "stimulations" / MNI_FOLDER / "vta"
    names = ["sub-07_sim-binary_model-vta_hemi-R.nii", "sub-07_sim-efield_model-vta_hemi-R.nii",
             "vat_right.nii", "vat_efield_right.nii"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)  # no temporary files left
    export = summary["leaddbs_export"]
    assert export["folder"] == str(folder) and export["files"] == names and export["label"] == "vta"
    assert export["subject"] == "sub-07" and export["hemisphere"] == "R" and export["efield_unit"] == "V/m"
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["leaddbs_export"] == export and on_disk["config"]["output"]["leaddbs"] == str(patient)
    assert "leaddbs_export" not in on_disk["outputs"]  # the outputs list names the output folder's files

    vta_img, vta = load(tmp_path / "out" / "vta.nii.gz")
    _, efield_V_per_mm = load(tmp_path / "out" / "efield_norm.nii.gz")
    assert vta.sum() > 0
    for name in names:
        raw = (folder / name).read_bytes()
        assert raw[:2] != b"\x1f\x8b" and raw[344:348] == b"n+1\x00"  # uncompressed single-file NIfTI-1
        img, data = load(folder / name)
        assert data.shape == vta.shape
        np.testing.assert_allclose(img.affine, vta_img.affine)
        assert int(img.header["sform_code"]) == 4 and int(img.header["qform_code"]) == 4
    for name in (names[0], names[2]):
        img, data = load(folder / name)
        assert img.get_data_dtype() == np.uint8 and set(np.unique(data)) <= {0, 1}
        np.testing.assert_array_equal(data, vta)
    for name in (names[1], names[3]):
        img, data = load(folder / name)
        assert img.get_data_dtype() == np.float32
        np.testing.assert_allclose(data, efield_V_per_mm * 1000.0, rtol=1e-6)  # V/m
        i = np.unravel_index(np.argmax(vta * efield_V_per_mm), vta.shape)
        assert data[i] == pytest.approx(1000.0 * efield_V_per_mm[i], rel=1e-6)
    # Lead-DBS's own stimulation is untouched
    other = patient / "stimulations" / MNI_FOLDER / "clinical" / "sub-07_sim-binary_model-simbio_hemi-R.nii"
    assert other.read_bytes() == b"lead-dbs's own"


def test_left_lead_custom_label_and_model_keep_the_other_hemisphere(tmp_path):
    patient = make_patient(tmp_path, name="sub-P3")
    folder = patient / "stimulations" / MNI_FOLDER / "best"
    folder.mkdir(parents=True)
    right = folder / "sub-P3_sim-binary_model-vtafem_hemi-R.nii"
    right.write_bytes(b"right side, earlier run")
    summary = run(Scene.from_dict(config(patient, "left", leaddbs_label="best", leaddbs_model="vtafem",
                                         leaddbs_legacy=True)), tmp_path / "out")
    assert summary["leaddbs_export"]["hemisphere"] == "L"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [right.name, "sub-P3_sim-binary_model-vtafem_hemi-L.nii", "sub-P3_sim-efield_model-vtafem_hemi-L.nii",
         "vat_left.nii", "vat_efield_left.nii"])
    assert right.read_bytes() == b"right side, earlier run"
    img, data = load(folder / "sub-P3_sim-binary_model-vtafem_hemi-L.nii")
    assert data.sum() > 0
    centre = nib.affines.apply_affine(img.affine, np.argwhere(data).mean(axis=0))
    assert centre[0] < 0  # the VTA is on the left (MNI x < 0)


def test_failed_publication_leaves_the_patient_folder_as_it_was(tmp_path, monkeypatch):
    patient = make_patient(tmp_path)
    scene = Scene.from_dict(config(patient))
    run(scene, tmp_path / "out")
    folder = patient / "stimulations" / MNI_FOLDER / "vta"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken(self):
        raise VtaError("disk full (simulated)")

    monkeypatch.setattr(OutputTransaction, "_publish", broken)
    amplified = Scene.from_dict({**config(patient), "stimulation": {"mode": "current", "contacts": {"1": -3.0}}})
    with pytest.raises(VtaError, match="simulated"):
        run(amplified, tmp_path / "out")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # previous files back, no temporaries
    # a first export that fails leaves no folder behind
    with pytest.raises(VtaError, match="simulated"):
        run(Scene.from_dict(config(patient, leaddbs_label="new")), tmp_path / "out2")
    assert not (patient / "stimulations" / MNI_FOLDER / "new").exists()


def test_missing_patient_folder_is_a_one_line_error_before_computing(tmp_path):
    patient = make_patient(tmp_path)
    cfg = config(patient)
    cfg["output"]["leaddbs"] = "no/such/patient"
    with pytest.raises(ConfigError, match=r"output.leaddbs.*patient folder not found"):
        parse_config(cfg, str(tmp_path / "plan.toml"))
    toml = tmp_path / "plan.toml"
    toml.write_text(f"""
[lead]
leaddbs_reconstruction = "{cfg['lead']['leaddbs_reconstruction']}"
[domain]
radius_mm = 20.0
center_mm = {CENTRE['right']}
[tissue]
conductivity_S_per_m = 0.2
[stimulation]
mode = "current"
contacts = {{ 1 = -2.0 }}
[output]
leaddbs = "no/such/patient"
""")
    proc = subprocess.run([sys.executable, "-m", "vta", "run", str(toml), "--out", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "output.leaddbs" in lines[0] and str(tmp_path / "no" / "such" / "patient") in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    ({"lead": "native"}, r"MNI-space runs only.*native space"),
    ({"lead": "tip"}, r"MNI-space runs only.*no named space"),
    ({"output": {"nifti": False}}, r"output.leaddbs.*nifti = true"),
    ({"output": {"leaddbs": True}}, r"output.leaddbs.*batch templates"),
    ({"output": {"leaddbs_label": "a/b"}}, r"output.leaddbs_label"),
    ({"output": {"leaddbs_model": "sim-bio"}}, r"output.leaddbs_model"),
    ({"output": {"leaddbs": None}}, r"output.leaddbs_label.*needs output.leaddbs"),
])
def test_config_errors(tmp_path, change, message):
    patient = make_patient(tmp_path)
    cfg = config(patient, leaddbs_label="x")
    if change.get("lead") == "native":
        cfg["lead"]["space"] = "native"
    elif change.get("lead") == "tip":
        cfg["lead"] = {"model": "Medtronic 3389", "tip_mm": [12.0, -13.0, -8.0], "direction": [0.0, 0.0, 1.0]}
    for key, value in change.get("output", {}).items():
        if value is None:
            cfg["output"].pop(key)
        else:
            cfg["output"][key] = value
    with pytest.raises(ConfigError, match=message):
        parse_config(cfg)


def test_subject_id_and_file_names(tmp_path):
    assert subject_id(make_patient(tmp_path / "a", "sub-ABC01")) == "sub-ABC01"
    # an older patient folder: the id of its reconstruction file, else of its name
    assert subject_id(make_patient(tmp_path / "b", "Patient 12", "sub-P12_desc-reconstruction.mat")) == "sub-P12"
    assert subject_id(make_patient(tmp_path / "c", "Patient_12", "ea_reconstruction.mat")) == "sub-Patient12"
    assert list(export_file_names("sub-1", "vta", "L", legacy=True)) == [
        "sub-1_sim-binary_model-vta_hemi-L.nii", "sub-1_sim-efield_model-vta_hemi-L.nii",
        "vat_left.nii", "vat_efield_left.nii"]


def test_batch_writes_each_subjects_leaddbs_folder(tmp_path):
    dataset = tmp_path / "derivatives" / "leaddbs"
    p7, p8 = make_patient(dataset, "sub-07"), make_patient(dataset, "sub-08")
    template = tmp_path / "template.toml"
    template.write_text("""
[lead]
model = "Medtronic 3389"
[domain]
radius_mm = 20.0
center_mm = [12.0, -13.0, -3.75]
[tissue]
conductivity_S_per_m = 0.2
[stimulation]
mode = "current"
contacts = { 1 = -2.0 }
[solver]
preset = "fast"
[output]
grid_spacing_mm = 0.5
leaddbs = true
leaddbs_label = "cohort"
""")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("subject,hemisphere,leaddbs_folder,domain.center_mm\n"
                        f"07,R,{p7},\n07,L,{p7},\"{CENTRE['left']}\"\n08,R,,\n")
    r = run_batch(manifest, tmp_path / "out", template=template, n_workers=1, processes=False)
    assert [x.status for x in r.results] == ["done", "done", "failed"]
    assert r.results[2].error.startswith("manifest.csv line 4 (08 R): [output] leaddbs = true")
    assert r.results[2].error.count("line 4") == 1 and "no leaddbs_folder" in r.results[2].error
    folder = p7 / "stimulations" / MNI_FOLDER / "cohort"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"sub-07_sim-{k}_model-vta_hemi-{h}.nii" for k in ("binary", "efield") for h in "RL")
    summary = json.loads((tmp_path / "out" / "subjects" / "07_L" / "summary.json").read_text())
    assert summary["leaddbs_export"]["folder"] == str(folder) and summary["leaddbs_export"]["hemisphere"] == "L"
    # resuming skips finished subjects, but runs again one whose Lead-DBS files are gone
    (folder / "sub-07_sim-efield_model-vta_hemi-L.nii").unlink()
    r = run_batch(manifest, tmp_path / "out", template=template, n_workers=1, processes=False)
    assert [x.status for x in r.results] == ["skipped", "done", "failed"]
    assert (folder / "sub-07_sim-efield_model-vta_hemi-L.nii").is_file()

    # a folder path: <path>/sub-<subject>/ (a Lead-DBS dataset's derivatives/leaddbs)
    text = template.read_text().replace("leaddbs = true", 'leaddbs = "derivatives/leaddbs"')
    template.write_text(text.replace("[lead]", "[lead]\nspace = \"mni\"\nside = \"right\"\n"
                                               f"leaddbs_reconstruction = \"{next((p8 / 'reconstruction').glob('*.mat'))}\""
                                     ).replace('model = "Medtronic 3389"\n', ""))
    manifest.write_text("subject,hemisphere\n08,R\n09,R\n")
    r = run_batch(manifest, tmp_path / "out2", template=template, n_workers=1, processes=False)
    assert [x.status for x in r.results] == ["done", "failed"]
    assert "patient folder not found" in r.results[1].error and "sub-09" in r.results[1].error
    assert (p8 / "stimulations" / MNI_FOLDER / "cohort" / "sub-08_sim-binary_model-vta_hemi-R.nii").is_file()


def test_batch_hash_ignores_the_export_keys_when_there_is_no_export(tmp_path):
    """Summaries written before the Lead-DBS keys existed still count as finished."""
    from vta.studies.batch import config_hash

    patient = make_patient(tmp_path)
    cfg = config(patient)
    plain = Scene.from_dict({**cfg, "output": {"grid_spacing_mm": 0.5}}).resolved()
    old = {**plain, "output": {k: v for k, v in plain["output"].items() if not k.startswith("leaddbs")}}
    assert config_hash(plain) == config_hash(old)
    assert config_hash(Scene.from_dict(cfg).resolved()) != config_hash(plain)
