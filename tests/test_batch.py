"""Cohort batches: manifest parsing, Dask runs (in-process, LocalCluster, a real scheduler),
resuming, failures, killed workers and batches, group table and frequency map."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.io

from vta.config import parse_config
from vta.scene import Scene
from vta.studies.batch import FREQUENCY_NIFTI, config_hash, frequency_map, run_batch, write_group_outputs
from vta.errors import VtaError
from vta.leads import get_lead
from vta.studies.manifest import load_manifest, parse_contacts

ROOT = Path(__file__).resolve().parents[1]

# Homogeneous tissue, a 3D "fast" P1 solve (the domain centre is off the lead axis), a
# 0.5 mm output grid: about a second per subject.
TEMPLATE = """
[lead]
model = "Medtronic 3389"
tip_mm = [10.0, 12.0, -8.0]
direction = [0.3, 0.4, 0.8]

[domain]
shape = "sphere"
radius_mm = 20.0
center_mm = [10.0, 12.0, -4.0]

[tissue]
conductivity_S_per_m = 0.2

[stimulation]
mode = "current"
contacts = { 1 = -2.0 }
pulse_width_us = 60

[solver]
preset = "fast"
order = 1

[output]
grid_spacing_mm = 0.5
"""

HEADER = "subject,hemisphere,lead_model,tip_mm,entry_mm,contacts,domain.center_mm\n"
GOOD_ROWS = [
    "s01,R,Medtronic 3389,10;12;-8,25;32;32,1:-2,",
    "s02,R,Medtronic 3389,11;12;-8,26;32;32,1:-2,",
    "s03,R,,10;13;-7.5,25;33;32.5,1:-1.5;2:-1,",
    "s04,R,3389,10;12;-8,25;32;32,1:-2,",  # the same lead and setting as s01
    "s01,L,Medtronic 3389,-10;12;-8,-25;32;32,1:-2,\"[-10.0, 12.0, -4.0]\"",
]
GOOD = [("s01", "R"), ("s02", "R"), ("s03", "R"), ("s04", "R"), ("s01", "L")]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private basis cache for everything this module runs (in-process and subprocesses)."""
    cache = tmp_path_factory.mktemp("basis_cache")
    old = os.environ.get("VTA_CACHE_DIR")
    os.environ["VTA_CACHE_DIR"] = str(cache)
    yield {**os.environ, "VTA_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    if old is None:
        os.environ.pop("VTA_CACHE_DIR", None)
    else:
        os.environ["VTA_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def finished_batch(tmp_path_factory, env):
    """Two finished subjects (in-process): (manifest, template, out); copy ``out`` before changing it."""
    folder = tmp_path_factory.mktemp("finished")
    manifest, template = write_cohort(folder / "in", GOOD_ROWS[:2])
    r = run_batch(manifest, folder / "out", template=template, n_workers=1, processes=False)
    assert r.count("done") == 2
    return manifest, template, folder / "out"


def copy_batch(finished, dest: Path) -> tuple[Path, Path, Path]:
    import shutil

    manifest, template, out = finished
    shutil.copytree(out, dest)
    return manifest, template, dest


def write_cohort(folder: Path, rows: list[str], header: str = HEADER) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template.toml").write_text(TEMPLATE)
    (folder / "manifest.csv").write_text(header + "\n".join(rows) + "\n")
    return folder / "manifest.csv", folder / "template.toml"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def vta_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vta", *args]


# ----------------------------------------------------------------------------- manifests


def test_csv_manifest_expands_rows_into_configs(tmp_path, env):
    header = ("subject,hemisphere,lead_model,tip_x,tip_y,tip_z,entry_mm,contacts,mode,pulse_width_us,"
              "vta.threshold_V_per_mm,solver.preset\n")
    rows = ["# a comment line", "p1,right,Medtronic 3387,10,12,-8,25;32;32,0:-3;2:-1.5,voltage,90,0.15,default",
            "p2,L,,-10,12,-8,,,,,,"]
    manifest, template = write_cohort(tmp_path, rows, header)
    m = load_manifest(manifest, template)
    assert [(s.subject, s.hemisphere, s.where) for s in m.subjects] == [
        ("p1", "R", "manifest.csv line 3"), ("p2", "L", "manifest.csv line 4")]
    # the template's domain is centred on the right: the left row is checked as parsed
    c1, c2 = m.subjects[0].scene(), parse_config(m.subjects[1].config_data(), m.subjects[1].source)
    assert c1.lead.model.name == "Medtronic 3387"
    np.testing.assert_allclose(c1.lead.placement.tip_mm, [10, 12, -8])
    np.testing.assert_allclose(c1.lead.placement.direction, np.array([15, 20, 40]) / np.linalg.norm([15, 20, 40]))
    assert c1.config.stimulation.mode == "voltage" and c1.config.stimulation.contacts == {0: -3.0, 2: -1.5}
    assert c1.config.stimulation.pulse_width_us == 90.0
    assert c1.config.vta.threshold_V_per_mm == 0.15 and c1.config.solver.preset == "default"
    # empty cells keep the template: its model, direction, setting, threshold and preset
    assert c2.lead.model.name == "Medtronic 3389"
    np.testing.assert_allclose(c2.lead.placement.tip_mm, [-10, 12, -8])
    np.testing.assert_allclose(c2.lead.placement.direction, np.array([0.3, 0.4, 0.8]) / np.linalg.norm([0.3, 0.4, 0.8]))
    assert c2.stimulation.contacts == {1: -2.0} and c2.stimulation.mode == "current"
    assert c2.vta.threshold_V_per_mm == 0.2 and c2.solver.preset == "fast"
    with pytest.raises(VtaError, match=r"line 4 \(p2 L\): lead tip at \(-10, 12, -8\) mm is outside the domain"):
        m.subjects[1].scene()


def test_toml_manifest_matches_csv(tmp_path, env):
    manifest, template = write_cohort(tmp_path, GOOD_ROWS[:1] + GOOD_ROWS[4:])
    (tmp_path / "cohort.toml").write_text("""
template = "template.toml"
[[subjects]]
subject = "s01"
hemisphere = "R"
lead_model = "Medtronic 3389"
tip_mm = [10, 12, -8]
entry_mm = [25, 32, 32]
contacts = { 1 = -2.0 }
[[subjects]]
subject = "s01"
hemisphere = "L"
tip_mm = [-10, 12, -8]
entry_mm = [-25, 32, 32]
contacts = "1:-2"
[subjects.overrides]
domain = { center_mm = [-10.0, 12.0, -4.0] }
""")
    from_csv = load_manifest(manifest, template)
    from_toml = load_manifest(tmp_path / "cohort.toml")  # the template named inside
    assert [config_hash(s.scene()) for s in from_csv.subjects] == [config_hash(s.scene()) for s in from_toml.subjects]


def test_target_and_leaddbs_rows(tmp_path, env):
    # a Lead-DBS patient folder: reconstruction/<id>_ea_reconstruction.mat, right and left leads
    lead = get_lead("Medtronic 3389")
    c0, c3 = lead.contact(0).center_z_mm, lead.contacts()[-1].center_z_mm
    tips = {"R": np.array([11.0, 14.0, -9.0]), "L": np.array([-10.0, 13.0, -8.5])}
    dirs = {"R": np.array([0.45, 0.2, 0.87]), "L": np.array([-0.4, 0.25, 0.88])}
    markers = np.zeros((1, 2), dtype=[("head", "O"), ("tail", "O"), ("x", "O"), ("y", "O")])
    props = np.zeros((1, 2), dtype=[("elmodel", "O")])
    for i, side in enumerate("RL"):
        d = dirs[side] / np.linalg.norm(dirs[side])
        head, tail = tips[side] + c0 * d, tips[side] + c3 * d
        y = np.cross(d, [1.0, 0, 0])
        markers[0, i]["head"], markers[0, i]["tail"] = head[None], tail[None]
        markers[0, i]["y"], markers[0, i]["x"] = (head + y)[None], (head + np.cross(y, d))[None]
        props[0, i]["elmodel"] = "Medtronic 3389"
    patient = tmp_path / "leaddbs" / "pat7"
    (patient / "reconstruction").mkdir(parents=True)
    scipy.io.savemat(str(patient / "reconstruction" / "pat7_ea_reconstruction.mat"),
                     {"reco": {"props": props, "mni": {"markers": markers}}})
    rows = ["pat7,R,leaddbs/pat7,,1:-2", "pat7,L,leaddbs/pat7,,1:-2", "t1,L,,NAc,0:-1", "t1,R,,NAc_R,0:-1",
            "gone,R,leaddbs/nobody,,1:-2"]
    manifest, template = write_cohort(tmp_path, rows, "subject,hemisphere,leaddbs_folder,target,contacts\n")
    specs = load_manifest(manifest, template).subjects
    for spec, side in zip(specs[:2], "RL"):
        data = spec.config_data()
        data["domain"]["center_mm"] = tips[side].tolist()  # the template's domain is on the right
        cfg = Scene.from_dict(data, spec.source)
        np.testing.assert_allclose(cfg.lead.placement.tip_mm, tips[side], atol=1e-9)
        np.testing.assert_allclose(cfg.lead.placement.direction, dirs[side] / np.linalg.norm(dirs[side]), atol=1e-12)
    assert specs[2].data["lead"]["target"] == "NAc_L" and specs[3].data["lead"]["target"] == "NAc_R"
    left = specs[2].config_data()
    left["domain"]["center_mm"] = [-10.0, 12.0, -4.0]  # the template's domain is on the right
    assert Scene.from_dict(left, specs[2].source).lead.placement.tip_mm[0] < 0 < specs[3].scene().lead.placement.tip_mm[0]
    with pytest.raises(VtaError, match=r"manifest.csv line 6 \(gone R\): column 'leaddbs_folder': folder not found"):
        specs[4].scene()


@pytest.mark.parametrize("row, identity, message", [
    ("s1,R,Medtronic 3389,10;12,25;32;32,1:-2,", ("s1", "R"),
     r"^manifest.csv line 3 \(s1 R\): column 'tip_mm': must be three numbers"),
    ("s1,R,Medtronic 3389,10;twelve;-8,25;32;32,1:-2,", ("s1", "R"),
     r"^manifest.csv line 3 \(s1 R\): column 'tip_mm': must be three finite numbers"),
    ("s1,R,Medtronic 3389,10;12;-8,25;32;32,1-2,", ("s1", "R"), r"^manifest.csv line 3 \(s1 R\): column 'contacts': cannot read '1-2'"),
    ("s1,R,Medtronic 3389,10;12;-8,25;32;32,1:abc,", ("s1", "R"),
     r"^manifest.csv line 3 \(s1 R\): column 'contacts': cannot read '1:abc'"),
    ("s1,X,Medtronic 3389,10;12;-8,25;32;32,1:-2,", ("s1", "X"),
     r"^manifest.csv line 3: column 'hemisphere': must be R or L, got 'X'"),
    ("s/1,R,,10;12;-8,,1:-2,", ("s/1", "R"), r"^manifest.csv line 3: column 'subject': 's/1' may hold only"),
    (",R,,10;12;-8,,1:-2,", ("", "R"), r"^manifest.csv line 3: column 'subject': is required"),
    ("s1,R,,10;12;-8,,1:-2,,extra", ("s1", "R"), r"^manifest.csv line 3 \(s1 R\): 8 cells but the header has 7 columns$"),
])
def test_malformed_row_is_an_error_of_that_row_only(tmp_path, row, identity, message):
    """A malformed cell spoils its own row (spec.error, spec.scene() raises it), not the manifest."""
    manifest, template = write_cohort(tmp_path, [GOOD_ROWS[0], row, GOOD_ROWS[4]])
    m = load_manifest(manifest, template)
    good1, bad, good2 = m.subjects
    assert (bad.subject, bad.hemisphere, bad.where) == (*identity, "manifest.csv line 3")
    assert bad.error is not None and "\n" not in bad.error
    with pytest.raises(VtaError, match=message):
        bad.scene()
    assert good1.error is None and good2.error is None
    assert config_hash(good1.scene()) != config_hash(good2.scene())


def test_malformed_toml_entry_is_an_error_of_that_entry_only(tmp_path):
    write_cohort(tmp_path, [])
    (tmp_path / "cohort.toml").write_text("""
template = "template.toml"
[[subjects]]
subject = "s01"
hemisphere = "R"
tip_mm = [10, "twelve", -8]
entry_mm = [25, 32, 32]
[[subjects]]
subject = "s02"
hemisphere = "R"
colour = "red"
[[subjects]]
subject = "s03"
hemisphere = "R"
""")
    s1, s2, s3 = load_manifest(tmp_path / "cohort.toml").subjects
    with pytest.raises(VtaError, match=r"entry 1 \(s01 R\): column 'tip_mm': must be three finite numbers"):
        s1.scene()
    with pytest.raises(VtaError, match=r"entry 2 \(s02 R\): unknown key 'colour'"):
        s2.scene()
    assert s3.error is None and s3.scene().lead.model.name == "Medtronic 3389"


@pytest.mark.parametrize("rows, header, message", [
    (["s1,R,,10;12;-8,,1:-2,", "s2,L,,-10;12;-8,,1:-2,", "s1,right,,11;12;-8,,1:-2,"], HEADER,
     r"line 4 \(s1 R\): subject s1 hemisphere R is already in manifest.csv line 2"),
    (["s1,R,,10;12;-8,,1:-2,", "s1,R,,10;nope;-8,,1:-2,"], HEADER,
     r"line 3 \(s1 R\): subject s1 hemisphere R is already in manifest.csv line 2"),
    (["# only a comment"], HEADER, r"manifest.csv: no subjects"),
    (["s1,10;12;-8"], "subject,tip_mm\n", r"line 1: the header has no 'hemisphere' column"),
])
def test_manifest_errors_name_row_and_column(tmp_path, rows, header, message):
    """Problems of the manifest as a whole are still refused at once."""
    manifest, template = write_cohort(tmp_path, rows, header)
    with pytest.raises(VtaError, match=message):
        load_manifest(manifest, template)


def test_manifest_header_and_file_errors(tmp_path):
    manifest, template = write_cohort(tmp_path, ["s1,R,10;12;-8"], "subject,hemisphere,tip\n")
    with pytest.raises(VtaError, match=r"line 1: unknown column 'tip'; did you mean 'tip_[xyz]'\?"):
        load_manifest(manifest, template)
    manifest, _ = write_cohort(tmp_path, ["s1,10;12;-8"], "subject,tip_mm\n")
    with pytest.raises(VtaError, match="no 'hemisphere' column"):
        load_manifest(manifest, template)
    with pytest.raises(VtaError, match="no template"):
        load_manifest(manifest)
    with pytest.raises(VtaError, match="manifest not found"):
        load_manifest(tmp_path / "nope.csv", template)
    assert parse_contacts("0:-3; 2=-1.5") == {"0": -3.0, "2": -1.5}


def test_config_errors_are_per_subject(tmp_path, env):
    rows = ["s1,R,Medtronic 9999,10;12;-8,25;32;32,1:-2,", "s2,R,Medtronic 3389,10;12;-8,25;32;32,7:-2,"]
    manifest, template = write_cohort(tmp_path, rows)
    s1, s2 = load_manifest(manifest, template).subjects  # the manifest itself is fine
    with pytest.raises(VtaError, match=r"manifest.csv line 2 \(s1 R\): column 'lead_model': unknown lead model"):
        s1.scene()
    with pytest.raises(VtaError, match=r"manifest.csv line 3 \(s2 R\): config key 'stimulation.contacts.7'"):
        s2.scene()


def test_example_cohort_manifests_are_valid(env):
    """examples/cohort: every row resolves to a valid configuration on the default anatomy."""
    csv_m = load_manifest(ROOT / "examples/cohort/manifest.csv", ROOT / "examples/cohort/template.toml")
    toml_m = load_manifest(ROOT / "examples/cohort/manifest.toml")
    assert len(csv_m) == 6 and len(toml_m) == 3 and toml_m.template == csv_m.template
    for spec in csv_m.subjects + toml_m.subjects:
        cfg = spec.scene()
        assert cfg.anatomy is not None and cfg.config.solver.preset == "fast"
        assert (cfg.lead.placement.tip_mm[0] > 0) == (spec.hemisphere == "R")
    assert toml_m.subjects[2].scene().threshold_V_per_mm == 0.15


# ----------------------------------------------------------------------------- frequency map


def test_frequency_map_counts_overlaps(tmp_path):
    """Two boxes on different grids: the count is 2 exactly where both cover a voxel centre."""
    a = np.zeros((20, 20, 20), np.uint8)
    a[4:12, 4:12, 4:12] = 1  # 0.5 mm voxels at x = -3.0 + 0.5 i: covers x in [-1.0, 2.5]
    aff_a = np.diag([0.5, 0.5, 0.5, 1.0])
    aff_a[:3, 3] = [-3.0, -3.0, -3.0]
    b = np.zeros((10, 10, 10), np.uint8)
    b[2:6, 1:4, 2:6] = 1  # 1 mm voxels at x = 0.2 + i: x in [2.2, 5.2], y in [1.2, 3.2], z in [2.2, 5.2]
    aff_b = np.eye(4)
    aff_b[:3, 3] = [0.2, 0.2, 0.2]
    nib.save(nib.Nifti1Image(a, aff_a), tmp_path / "a.nii.gz")
    nib.save(nib.Nifti1Image(b, aff_b), tmp_path / "b.nii.gz")
    count, affine = frequency_map([tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"])
    assert np.allclose(affine[:3, :3], np.eye(3)) and np.allclose(affine[:3, 3] % 1.0, 0)

    def expected(x, y, z):  # nearest-neighbour membership, independently of the code
        def inside(mask, aff, p):
            ijk = np.floor(np.linalg.solve(aff[:3, :3], p - aff[:3, 3]) + 0.5).astype(int)
            return bool(np.all((ijk >= 0) & (ijk < mask.shape)) and mask[tuple(ijk)])
        p = np.array([x, y, z], float)
        return inside(a, aff_a, p) + inside(b, aff_b, p)

    ijk = np.argwhere(np.ones(count.shape, bool))
    world = ijk + affine[:3, 3]
    want = np.array([expected(*p) for p in world])
    np.testing.assert_array_equal(count[tuple(ijk.T)], want)
    # a covers the integer points -1..2 on each axis (64), b x 2..5, y 1..3, z 2..5 (48); both: x 2, y 1..2, z 2
    assert (count == 2).sum() == 2 and count.max() == 2
    assert (count >= 1).sum() == 64 + 48 - 2


# ----------------------------------------------------------------------------- batches


def test_in_process_batch_resume_and_group_outputs(tmp_path, env):
    rows = GOOD_ROWS + [
        "bad_model,R,Medtronic 9999,10;12;-8,25;32;32,1:-2,",   # fails on the client (configuration)
        "bad_tip,R,Medtronic 3389,10;12;-40,25;32;32,1:-2,",    # fails on the worker (mesh: lead outside)
    ]
    manifest, template = write_cohort(tmp_path / "in", rows)
    out = tmp_path / "out"
    r = run_batch(manifest, out, template=template, n_workers=1, processes=False)
    assert (r.count("done"), r.count("skipped"), r.count("failed")) == (5, 0, 2) and not r.ok
    errors = {(e["subject"], e["hemisphere"]): e for e in read_csv(out / "errors.csv")}
    assert set(errors) == {("bad_model", "R"), ("bad_tip", "R")}
    assert "column 'lead_model': unknown lead model 'Medtronic 9999'" in errors["bad_model", "R"]["error"]
    assert "outside the domain" in errors["bad_tip", "R"]["error"]
    assert errors["bad_tip", "R"]["where"] == "manifest.csv line 8"

    group = read_csv(out / "group.csv")
    assert [(g["subject"], g["hemisphere"], g["status"]) for g in group] == (
        [(s, h, "ok") for s, h in GOOD] + [("bad_model", "R", "failed"), ("bad_tip", "R", "failed")])
    summaries = {}
    for g in group[:5]:
        s = json.loads((out / "subjects" / f"{g['subject']}_{g['hemisphere']}" / "summary.json").read_text())
        summaries[g["subject"], g["hemisphere"]] = s
        assert float(g["vta_volume_mm3"]) == pytest.approx(s["vta_volume_mm3"], rel=1e-5)
        assert float(g["impedance_ohm"]) == pytest.approx(s["impedance_ohm"], rel=1e-5)
    # s04 is s01 again: the same numbers; a 2 mA cathode at 0.2 V/mm in 0.2 S/m: a few tens of mm^3
    assert summaries["s04", "R"]["vta_volume_mm3"] == pytest.approx(summaries["s01", "R"]["vta_volume_mm3"], rel=1e-9)
    assert 10 < summaries["s01", "R"]["vta_volume_mm3"] < 80
    assert group[2]["contacts"] == "1:-1.5;2:-1"

    # the frequency map: counts agree with each subject's own mask sampled at the voxel centres
    img = nib.load(out / FREQUENCY_NIFTI)
    count = np.asarray(img.dataobj)
    assert img.header.get_sform(coded=True)[1] == 4  # MNI
    masks = [nib.load(out / "subjects" / f"{s}_{h}" / "vta.nii.gz") for s, h in GOOD]
    from nibabel.processing import resample_from_to
    resampled = sum((np.asarray(resample_from_to(m, (count.shape, img.affine), order=0).dataobj) > 0).astype(int)
                    for m in masks)
    mismatch = np.count_nonzero(resampled != count)
    assert mismatch <= 0.002 * np.count_nonzero(count), mismatch  # nearest-neighbour ties only
    x_world = img.affine[0, 3] + img.affine[0, 0] * np.arange(count.shape[0])
    assert count[x_world > 0].max() == 4  # s01, s02, s03 and s04 overlap around the right leads' contact 1
    assert count[x_world < 0].max() == 1  # the left lead is alone
    grid_total = sum(s["vta_grid_volume_mm3"] for s in summaries.values())
    assert count.sum() * 1.0 == pytest.approx(grid_total, rel=0.15)  # 1 mm^3 voxels
    fraction = nib.load(out / "vta_fraction.nii.gz").get_fdata()
    np.testing.assert_allclose(fraction, count / 5.0, atol=1e-6)

    # a second run finds everything done (no cluster is started) and rebuilds the same group files
    t0 = time.perf_counter()
    r2 = run_batch(manifest, out, template=template, n_workers=1, processes=False)
    assert (r2.count("done"), r2.count("skipped"), r2.count("failed")) == (0, 5, 2)
    assert time.perf_counter() - t0 < 10
    assert read_csv(out / "group.csv") == group
    np.testing.assert_array_equal(np.asarray(nib.load(out / FREQUENCY_NIFTI).dataobj), count)

    # an edited row re-runs only that subject; a deleted output only that one
    rows2 = list(rows)
    rows2[1] = rows2[1].replace("1:-2", "1:-3")
    write_cohort(tmp_path / "in", rows2)
    import shutil
    shutil.rmtree(out / "subjects" / "s03_R")
    r3 = run_batch(manifest, out, template=template, n_workers=1, processes=False)
    assert {(x.subject, x.hemisphere) for x in r3.results if x.status == "done"} == {("s02", "R"), ("s03", "R")}
    assert r3.count("skipped") == 3
    s02 = json.loads((out / "subjects" / "s02_R" / "summary.json").read_text())
    assert s02["contacts"]["1"]["current_mA"] == pytest.approx(-3.0)
    assert s02["vta_volume_mm3"] > 1.3 * summaries["s02", "R"]["vta_volume_mm3"]


def test_malformed_rows_are_recorded_and_the_rest_runs(tmp_path, env):
    """Malformed cells fail their own row (errors.csv, group.csv); the good rows are computed."""
    rows = [
        GOOD_ROWS[0],
        "tip_text,R,Medtronic 3389,10;twelve;-8,25;32;32,1:-2,",   # a non-numeric tip coordinate
        "no_lead,R,Medtronic 9999,10;12;-8,25;32;32,1:-2,",        # an unknown lead model
        "amp,R,Medtronic 3389,10;12;-8,25;32;32,1:minus2,",         # an amplitude that is not a number
        "hemi,up,Medtronic 3389,10;12;-8,25;32;32,1:-2,",          # a bad hemisphere
        GOOD_ROWS[4],
    ]
    manifest, template = write_cohort(tmp_path / "in", rows)
    out = tmp_path / "out"
    r = run_batch(manifest, out, template=template, n_workers=1, processes=False)
    assert (r.count("done"), r.count("skipped"), r.count("failed")) == (2, 0, 4) and not r.ok
    assert [(x.subject, x.hemisphere, x.status) for x in r.results] == [
        ("s01", "R", "done"), ("tip_text", "R", "failed"), ("no_lead", "R", "failed"), ("amp", "R", "failed"),
        ("hemi", "up", "failed"), ("s01", "L", "done")]
    errors = read_csv(out / "errors.csv")
    assert [(e["subject"], e["hemisphere"], e["where"]) for e in errors] == [
        ("tip_text", "R", "manifest.csv line 3"), ("no_lead", "R", "manifest.csv line 4"),
        ("amp", "R", "manifest.csv line 5"), ("hemi", "up", "manifest.csv line 6")]
    assert errors[0]["error"].startswith("manifest.csv line 3 (tip_text R): column 'tip_mm': must be three finite")
    assert errors[1]["error"].startswith("manifest.csv line 4 (no_lead R): column 'lead_model': unknown lead model")
    assert errors[2]["error"].startswith("manifest.csv line 5 (amp R): column 'contacts': cannot read '1:minus2'")
    assert errors[3]["error"] == "manifest.csv line 6: column 'hemisphere': must be R or L, got 'up'"
    assert all("\n" not in e["error"] for e in errors)
    group = read_csv(out / "group.csv")
    assert [(g["subject"], g["hemisphere"], g["status"]) for g in group] == [
        ("s01", "R", "ok"), ("tip_text", "R", "failed"), ("no_lead", "R", "failed"), ("amp", "R", "failed"),
        ("hemi", "up", "failed"), ("s01", "L", "ok")]
    assert [g["error"] for g in group[1:5]] == [e["error"] for e in errors]
    assert _finished(out) == {"s01_R", "s01_L"} and not (out / "subjects" / "hemi_up").exists()
    assert "4 failed" in r.summary_line()


def test_group_csv_has_clipping_and_warning_columns(tmp_path, finished_batch):
    manifest, template, out = copy_batch(finished_batch, tmp_path / "out")
    s1 = out / "subjects" / "s01_R" / "summary.json"
    s2 = out / "subjects" / "s02_R" / "summary.json"
    one, two = json.loads(s1.read_text()), json.loads(s2.read_text())
    one.pop("vta_clipped_by_domain", None)  # summaries of older versions: no such keys
    one.pop("warnings", None)
    two["vta_clipped_by_domain"] = True
    two["warnings"] = ["the VTA reaches the outer boundary of the model domain", "another"]
    s1.write_text(json.dumps(one))
    s2.write_text(json.dumps(two))
    r = run_batch(manifest, out, template=template, n_workers=1, processes=False)  # all skipped; group rebuilt
    assert r.count("skipped") == 2
    with open(out / "group.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header.index("vta_clipped_by_domain") < header.index("warnings") < header.index("error")
    group = read_csv(out / "group.csv")
    assert [(g["vta_clipped_by_domain"], g["warnings"]) for g in group] == [("False", "0"), ("True", "2")]
    # a row without a usable summary leaves them empty
    m = load_manifest(manifest, template)
    write_group_outputs(m, out, {m.subjects[0].name: config_hash(m.subjects[0].scene())})
    group = read_csv(out / "group.csv")
    assert [(g["status"], g["vta_clipped_by_domain"], g["warnings"]) for g in group] == [
        ("ok", "False", "0"), ("stale", "", "")]


def test_group_outputs_are_atomic_and_write_errors_are_one_line(tmp_path, finished_batch):
    manifest, template, out = copy_batch(finished_batch, tmp_path / "out")
    m = load_manifest(manifest, template)
    hashes = {s.name: config_hash(s.scene()) for s in m.subjects}
    before = (out / "group.csv").read_bytes()
    freq_before = (out / FREQUENCY_NIFTI).read_bytes()

    def leftovers() -> list[str]:
        return sorted(p.name for p in out.iterdir() if p.name.startswith("."))

    # group.csv cannot be replaced (a folder in its place): one VtaError naming it, nothing left behind
    (out / "group.csv").unlink()
    (out / "group.csv").mkdir()
    with pytest.raises(VtaError, match=r"group\.csv") as info:
        write_group_outputs(m, out, hashes)
    assert "\n" not in str(info.value) and str(out / "group.csv") in str(info.value)
    assert leftovers() == []
    with pytest.raises(VtaError, match=r"group\.csv"):  # the same through run_batch (all skipped)
        run_batch(manifest, out, template=template, n_workers=1, processes=False)
    assert leftovers() == []
    (out / "group.csv").rmdir()

    # the frequency map cannot be replaced: group.csv is complete, the NIfTI error names its path
    (out / FREQUENCY_NIFTI).unlink()
    (out / FREQUENCY_NIFTI).mkdir()
    with pytest.raises(VtaError, match=FREQUENCY_NIFTI.replace(".", r"\.")) as info:
        write_group_outputs(m, out, hashes)
    assert "\n" not in str(info.value) and str(out / FREQUENCY_NIFTI) in str(info.value)
    assert (out / "group.csv").read_bytes() == before and leftovers() == []
    (out / FREQUENCY_NIFTI).rmdir()

    # errors.csv likewise
    (out / "errors.csv").unlink()
    (out / "errors.csv").mkdir()
    with pytest.raises(VtaError, match=r"errors\.csv"):
        run_batch(manifest, out, template=template, n_workers=1, processes=False)
    (out / "errors.csv").rmdir()

    # written again: the same bytes (deterministic, no half-written files), loadable, MNI-coded
    group, freq, frac = write_group_outputs(m, out, hashes)
    assert group.read_bytes() == before and freq.read_bytes() == freq_before and leftovers() == []
    img = nib.load(freq)
    assert img.header.get_sform(coded=True)[1] == 4 and np.asarray(img.dataobj).max() == 2
    np.testing.assert_allclose(nib.load(frac).get_fdata(), np.asarray(img.dataobj) / 2.0, atol=1e-6)


def test_incomplete_subject_outputs_are_not_finished(tmp_path, finished_batch):
    """A subject whose summary lists a file that is gone is neither ok nor skipped: it re-runs."""
    manifest, template, out = copy_batch(finished_batch, tmp_path / "out")
    (out / "subjects" / "s02_R" / "vta.nii.gz").unlink()
    m = load_manifest(manifest, template)
    write_group_outputs(m, out, {s.name: config_hash(s.scene()) for s in m.subjects})
    group = read_csv(out / "group.csv")
    assert [(g["status"], g["error"]) for g in group] == [
        ("ok", ""), ("stale", "incomplete outputs (missing vta.nii.gz)")]
    r = run_batch(manifest, out, template=template, n_workers=1, processes=False)
    assert [(x.subject, x.status) for x in r.results] == [("s01", "skipped"), ("s02", "done")]
    assert [g["status"] for g in read_csv(out / "group.csv")] == ["ok", "ok"]
    assert (out / "subjects" / "s02_R" / "vta.nii.gz").is_file()


INTERRUPT_DRIVER = """
import json, signal, sys
from vta.studies.batch import BatchInterrupted, run_batch

if __name__ == "__main__":
    # Ctrl-C handled as in a terminal, whatever this test process left behind (a child
    # inherits an ignored SIGINT, e.g. from a Dask cluster started in-process before)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        r = run_batch(sys.argv[1], sys.argv[3], template=sys.argv[2], n_workers=1)
    except BatchInterrupted as exc:
        assert isinstance(exc, KeyboardInterrupt)
        print(json.dumps({"n_finished": exc.n_finished, "out_dir": str(exc.out_dir), "message": exc.message()}))
        sys.exit(130)
    print("completed:", r.summary_line())
"""


def test_interrupted_batch_keeps_finished_subjects_and_says_so(tmp_path, env):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) after the first subject."""
    rows = [r.replace("25;3", "25.25;3").replace("26;3", "26.25;3") for r in GOOD_ROWS]  # fresh bases: real work
    manifest, template = write_cohort(tmp_path / "in", rows)
    slow_template(template)
    out = tmp_path / "out"
    driver = tmp_path / "driver.py"
    driver.write_text(INTERRUPT_DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), str(manifest), str(template), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: _finished(out), 150, "the first finished subject", proc)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, (stdout, stderr)
    report = json.loads(stdout.strip().splitlines()[-1])
    finished = _finished(out)
    assert 1 <= report["n_finished"] == len(finished) < 5
    assert report["out_dir"] == str(out)
    assert report["message"] == (f"vta: interrupted; {len(finished)} finished subject{'s' * (len(finished) > 1)} "
                                 f"kept in {out / 'subjects'}, the rest can be resumed by running the same "
                                 "command again")
    assert "Traceback" not in stderr, stderr[-3000:]  # neither the batch nor its workers
    for name in finished:  # every finished subject is complete
        assert json.loads((out / "subjects" / name / "summary.json").read_text())["vta_volume_mm3"] > 0
        assert (out / "subjects" / name / "vta.nii.gz").is_file()
    # the group files are whole and show exactly what is finished
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    group = read_csv(out / "group.csv")
    assert {f"{g['subject']}_{g['hemisphere']}" for g in group if g["status"] == "ok"} == finished
    assert {g["status"] for g in group} <= {"ok", "missing"} and len(group) == 5
    assert np.asarray(nib.load(out / FREQUENCY_NIFTI).dataobj).max() >= 1
    # the same command again runs the rest only
    r = run_batch(manifest, out, template=template, n_workers=1, processes=False)
    assert (r.count("done"), r.count("skipped"), r.count("failed")) == (5 - len(finished), len(finished), 0)
    assert [g["status"] for g in read_csv(out / "group.csv")] == ["ok"] * 5


def _wait_for(predicate, timeout_s: float, what: str, proc=None) -> None:
    t_end = time.monotonic() + timeout_s
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"{what}: the process ended first (rc {proc.returncode}): {err[-2000:]}")
        if time.monotonic() > t_end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def slow_template(template: Path) -> None:
    """The default mesh preset instead of "fast", so that a subject takes seconds: an
    interruption after the first finished subject then lands before the last one (with
    "fast" meshes, and templates that reuse them, five subjects can finish in ~4 s)."""
    template.write_text(template.read_text().replace('preset = "fast"', 'preset = "default"'))


def _finished(out: Path) -> set[str]:
    return {p.parent.name for p in (out / "subjects").glob("*/summary.json")}


def test_cli_local_cluster_killed_batch_resumes(tmp_path, env):
    """Kill the whole batch (client, scheduler, workers) after the first subject; nothing finished is lost."""
    rows = [r.replace("25;3", "25.5;3").replace("26;3", "26.5;3") for r in GOOD_ROWS]  # fresh bases: real work
    manifest, template = write_cohort(tmp_path / "in", rows)
    slow_template(template)
    out = tmp_path / "out"
    cmd = vta_cmd("batch", str(manifest), "--template", str(template), "--out", str(out), "--workers", "2", "-q")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(lambda: _finished(out), 150, "the first finished subject", proc)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had already finished
            pass
        proc.communicate()

    def group_gone() -> bool:  # no worker outlives the batch (orphans are reaped by init)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        return False

    _wait_for(group_gone, 20, "the batch's worker processes to end")
    before = _finished(out)
    assert before
    for name in before:  # every finished subject is complete
        assert json.loads((out / "subjects" / name / "summary.json").read_text())["vta_volume_mm3"] > 0
        assert (out / "subjects" / name / "vta.nii.gz").is_file()

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    n_skipped = int(done.stdout.split(" skipped")[0].rsplit(" ", 1)[1])
    assert n_skipped >= len(before)
    assert f"5 subject-hemispheres: {5 - n_skipped} done, {n_skipped} skipped, 0 failed" in done.stdout
    assert _finished(out) == {f"{s}_{h}" for s, h in GOOD}
    assert not list((out / "subjects").glob(".*staging*"))  # partial outputs of killed runs removed
    assert [g["status"] for g in read_csv(out / "group.csv")] == ["ok"] * 5
    assert read_csv(out / "errors.csv") == []
    assert (out / FREQUENCY_NIFTI).is_file()


def test_cli_real_scheduler_survives_a_killed_worker(tmp_path, env):
    """A scheduler and two workers on 127.0.0.1; one worker is killed mid-batch."""
    rows = [r.replace("25;3", "24.5;3").replace("26;3", "25.5;3") for r in GOOD_ROWS]
    rows.append("bad_tip,R,Medtronic 3389,10;12;-40,25;32;32,1:-2,")
    manifest, template = write_cohort(tmp_path / "in", rows)
    out = tmp_path / "out"
    sched_file = tmp_path / "scheduler.json"
    procs = []

    def start(*args):
        p = subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file))
        _wait_for(lambda: sched_file.is_file() and sched_file.stat().st_size > 0, 60, "the scheduler file")
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = [start("worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--no-nanny",
                         "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}") for i in range(2)]
        cmd = vta_cmd("batch", str(manifest), "--template", str(template), "--out", str(out), "--scheduler", address, "-q")
        batch = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(batch)
        _wait_for(lambda: _finished(out), 150, "the first finished subject", batch)
        workers[0].kill()  # SIGKILL: its running task (if any) is lost and rescheduled
        workers[0].wait()
        stdout, stderr = batch.communicate(timeout=240)
        assert batch.returncode == 1, stderr  # one subject failed, all others finished
        assert "6 subject-hemispheres:" in stdout and "1 failed" in stdout
        assert [(e["subject"], e["hemisphere"]) for e in read_csv(out / "errors.csv")] == [("bad_tip", "R")]
        assert _finished(out) == {f"{s}_{h}" for s, h in GOOD}

        # a rerun on the same cluster (one worker left) skips everything finished
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 1
        assert "6 subject-hemispheres: 0 done, 5 skipped, 1 failed" in again.stdout
        assert [g["status"] for g in read_csv(out / "group.csv")] == ["ok"] * 5 + ["failed"]
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_cli_batch_bad_input_is_one_line(tmp_path, env):
    # a malformed row is that row's failure: recorded, exit status 1 ("some subjects failed")
    manifest, template = write_cohort(tmp_path, ["s1,R,Medtronic 3389,10;12,25;32;32,1:-2,"])
    proc = subprocess.run(vta_cmd("batch", str(manifest), "--template", str(template), "--out", str(tmp_path / "o")),
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "1 subject-hemispheres: 0 done, 0 skipped, 1 failed" in proc.stdout
    errors = read_csv(tmp_path / "o" / "errors.csv")
    assert [(e["subject"], e["hemisphere"], e["where"]) for e in errors] == [("s1", "R", "manifest.csv line 2")]
    assert errors[0]["error"].startswith("manifest.csv line 2 (s1 R): column 'tip_mm'")
    assert [g["status"] for g in read_csv(tmp_path / "o" / "group.csv")] == ["failed"]
    # a malformed manifest (a duplicate subject-hemisphere) is refused on one line, nothing written
    manifest, template = write_cohort(tmp_path, ["s1,R,,10;12;-8,,1:-2,", "s1,R,,10;12;-8,,1:-3,"])
    proc = subprocess.run(vta_cmd("batch", str(manifest), "--template", str(template), "--out", str(tmp_path / "o2")),
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "vta: error: manifest.csv line 3 (s1 R): subject s1 hemisphere R is already in" in proc.stderr
    assert not (tmp_path / "o2").exists()
