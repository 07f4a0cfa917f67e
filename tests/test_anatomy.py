"""Tests of vta.anatomy.model / vta.anatomy.atlas_io: readers, errors, the default anatomy, its cache."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from vta.anatomy import default as D
from vta.anatomy.default import default_anatomy
from vta.anatomy.model import (BACKGROUND, CSF, GM, WM, Anatomy, load_label_atlas,
                         load_probabilistic_atlas, load_tissue_segmentation)
from vta.anatomy.atlas_io import Image, check_affine, read_label_table, read_nifti, resample_to
from vta.errors import VtaError
from niftitools import save_raw_affine

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlases"
JHU = SHARED / "JHU_space-MNI152NLin6_res-1x1x1.nii.gz"
CIT = SHARED / "CIT168_original_space.nii.gz"
HO = SHARED / "HarvardOxfordsub-maxprob-thr25_space-MNI152NLin6_res-1x1x1.nii.gz"

RAS = np.diag([1.0, 1.0, 1.0, 1.0])
RAS[:3, 3] = [-10.0, -10.0, -10.0]


def save(path: Path, data: np.ndarray, affine: np.ndarray = RAS) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def label_volume() -> np.ndarray:
    """21^3 volume: label 1 = a 5^3 cube at x,y,z in [-5,-1] mm, label 2 = cube at [1,5]."""
    d = np.zeros((21, 21, 21), np.int16)
    d[5:10, 5:10, 5:10] = 1
    d[11:16, 11:16, 11:16] = 2
    return d


@pytest.fixture
def atlas_file(tmp_path: Path) -> Path:
    return save(tmp_path / "atlas.nii.gz", label_volume())


# --- label tables -------------------------------------------------------------------

@pytest.mark.parametrize("name,text", [
    ("t.tsv", "index\tname\n1\tLeft thing\n2\tRight thing\n"),
    ("t2.tsv", "1\tLeft thing\n2\tRight thing\n"),
    ("t.csv", "name,index\nLeft thing,1\nRight thing,2\n"),
    ("t.xml", '<?xml version="1.0"?><atlas><data><label index="1" x="0">Left thing</label>'
              '<label index="2">Right thing</label></data></atlas>'),
    ("lut.txt", "#$Id: FreeSurferColorLUT\n0  Unknown 0 0 0 0\n1  Left thing 10 20 30 0\n"),
])
def test_label_table_formats(tmp_path: Path, name: str, text: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    table = read_label_table(p)
    assert table[1] in ("Left thing", "Left")  # a LUT splits on whitespace: names have no spaces
    if not name.startswith("lut"):
        assert table == {1: "Left thing", 2: "Right thing"}


def test_freesurfer_lut(tmp_path: Path) -> None:
    p = tmp_path / "FreeSurferColorLUT.txt"
    p.write_text("# comment\n0   Unknown   0 0 0 0\n26  Left-Accumbens-area  255 165 0 0\n"
                 "58  Right-Accumbens-area 255 165 0 0\n")
    assert read_label_table(p) == {0: "Unknown", 26: "Left-Accumbens-area", 58: "Right-Accumbens-area"}


@pytest.mark.parametrize("text,msg", [
    ("1\tA\nx\tB\n", "non-integer index"),
    ("1\tA\n1\tB\n", "listed twice"),
    ("", "no labels"),
    ("<atlas><label index='1'>A</label>", "invalid XML"),
])
def test_label_table_errors(tmp_path: Path, text: str, msg: str) -> None:
    p = tmp_path / "bad.tsv"
    p.write_text(text)
    with pytest.raises(VtaError, match=msg):
        read_label_table(p)


def test_missing_table(tmp_path: Path) -> None:
    with pytest.raises(VtaError, match="nope.tsv.*not found"):
        read_label_table(tmp_path / "nope.tsv")


# --- NIfTI errors -------------------------------------------------------------------



@pytest.mark.parametrize("affine,msg", [
    (np.zeros((4, 4)), "zero voxel size"),
    (np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float), "singular"),
    (np.diag([np.nan, 1, 1, 1]), "non-finite"),
])
def test_broken_affine(tmp_path: Path, affine: np.ndarray, msg: str) -> None:
    p = save_raw_affine(tmp_path / "broken.nii", label_volume(), affine)
    with pytest.raises(VtaError, match=f"broken.nii.*broken affine.*{msg}"):
        read_nifti(p)
    table = tmp_path / "t.tsv"
    table.write_text("1\tA\n")
    with pytest.raises(VtaError, match=f"label atlas .*broken.nii.*{msg}"):
        load_label_atlas(p, table)
    with pytest.raises(VtaError, match=msg):
        check_affine(affine, "x")


def test_nifti_errors(tmp_path: Path) -> None:
    with pytest.raises(VtaError, match="missing.nii.gz.*not found"):
        read_nifti(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a nifti at all")
    with pytest.raises(VtaError, match="junk.nii.gz.*cannot read"):
        read_nifti(junk)
    four = save(tmp_path / "four.nii.gz", np.zeros((4, 4, 4, 2), np.float32))
    with pytest.raises(VtaError, match="four.nii.gz.*expected a 3D"):
        read_nifti(four, ndim=3)
    three = save(tmp_path / "three.nii.gz", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(VtaError, match="three.nii.gz.*expected a 4D"):
        load_probabilistic_atlas(three, ["a"])


# --- label atlases ------------------------------------------------------------------

def test_load_label_atlas_and_world_coordinates(tmp_path: Path, atlas_file: Path) -> None:
    table = tmp_path / "t.tsv"
    table.write_text("1\tA\n2\tB\n")
    s = load_label_atlas(atlas_file, table)
    assert set(s) == {"A", "B"}
    assert s["A"].volume_mm3() == pytest.approx(125.0)
    np.testing.assert_allclose(s["A"].centroid_mm(), [-3, -3, -3])
    np.testing.assert_allclose(s["B"].centroid_mm(), [3, 3, 3])
    assert s["A"].contains(np.array([[-3.0, -3, -3], [3, 3, 3]])).tolist() == [True, False]


def test_las_and_oblique_affines(tmp_path: Path) -> None:
    """The same anatomy stored LAS or rotated gives the same world answers."""
    data = label_volume()
    las = np.diag([-1.0, 1, 1, 1])
    las[:3, 3] = [10, -10, -10]
    flipped = save(tmp_path / "las.nii.gz", data[::-1].copy(), las)
    table = tmp_path / "t.tsv"
    table.write_text("1\tA\n2\tB\n")
    s = load_label_atlas(flipped, table)
    np.testing.assert_allclose(s["A"].centroid_mm(), [-3, -3, -3])
    # rotate the grid by 90 degrees about z: voxel axis i -> world y, j -> world -x
    rot = np.array([[0, -1, 0, 10], [1, 0, 0, -10], [0, 0, 1, -10], [0, 0, 0, 1]], float)
    world_pts = np.array([[-3.0, -3, -3], [3, 3, 3]])
    img = Image(np.zeros((21, 21, 21), np.int16), rot)
    ijk = np.rint(img.world_to_voxel(world_pts)).astype(int)
    vol = np.zeros((21, 21, 21), np.int16)
    vol[tuple(ijk[0])], vol[tuple(ijk[1])] = 1, 2
    s2 = load_label_atlas(save(tmp_path / "rot.nii.gz", vol, rot), table)
    np.testing.assert_allclose(s2["A"].centroid_mm(), world_pts[0], atol=1e-9)
    np.testing.assert_allclose(s2["B"].centroid_mm(), world_pts[1], atol=1e-9)
    # and resampling it back onto a RAS grid puts the labels at the same world points
    back = resample_to(read_nifti(tmp_path / "rot.nii.gz"), (21, 21, 21), RAS)
    assert back[7, 7, 7] == 1 and back[13, 13, 13] == 2


def test_unknown_and_missing_labels(tmp_path: Path, atlas_file: Path, caplog) -> None:
    table = tmp_path / "t.tsv"
    table.write_text("1\tNucleus_Accumbens_L\n2\tCaudate_L\n3\tPutamen_L\n")
    with caplog.at_level(logging.WARNING, logger="vta.anatomy.atlas_io"):
        s = load_label_atlas(atlas_file, table)
    assert "Putamen_L" not in s and "have no voxels" in caplog.text
    with pytest.raises(VtaError, match="'Nucleus_Acumbens_L' is not in the label table.*Nucleus_Accumbens_L"):
        load_label_atlas(atlas_file, table, ["Nucleus_Acumbens_L"])
    with pytest.raises(VtaError, match="'Putamen_L' .label 3. is empty"):
        load_label_atlas(atlas_file, table, ["Putamen_L"])
    s = load_label_atlas(atlas_file, table, {"NAc_L": "Nucleus_Accumbens_L"})
    assert list(s) == ["NAc_L"]


@pytest.mark.parametrize("name,text", [
    ("wrong.tsv", "index\tname\n7\tLeft thing\n8\tRight thing\n"),
    ("wrong.xml", '<?xml version="1.0"?><atlas><data><label index="7">Left thing</label>'
                  '<label index="8">Right thing</label></data></atlas>'),
    ("wrong_lut.txt", "#$Id: FreeSurferColorLUT\n0  Unknown 0 0 0 0\n26  Left-Accumbens-area 10 20 30 0\n"),
])
def test_label_table_matching_no_image_label_is_an_error(tmp_path: Path, atlas_file: Path, name: str,
                                                          text: str) -> None:
    """A table none of whose labels occur in the image (labels 1, 2) names both files (was: no structures)."""
    table = tmp_path / name
    table.write_text(text)
    pattern = rf"atlas\.nii\.gz.*{name.replace('.', '[.]')}|{name.replace('.', '[.]')}.*atlas\.nii\.gz"
    with pytest.raises(VtaError, match=pattern) as exc:
        load_label_atlas(atlas_file, table)
    assert "\n" not in str(exc.value)
    with pytest.raises(VtaError, match=pattern):
        Anatomy.from_files(labels=atlas_file, label_table=table)
    # one matching label is enough (the others only warn, as before)
    table.write_text("1\tA\n7\tX\n")
    assert list(load_label_atlas(atlas_file, table)) == ["A"]


def test_float_labels_rejected(tmp_path: Path) -> None:
    p = save(tmp_path / "prob.nii.gz", np.full((4, 4, 4), 0.5, np.float32))
    t = tmp_path / "t.tsv"
    t.write_text("1\tA\n")
    with pytest.raises(VtaError, match="prob.nii.gz.*non-integer voxel values"):
        load_label_atlas(p, t)


# --- probabilistic atlases and tissue segmentations ---------------------------------

def test_probabilistic_atlas(tmp_path: Path) -> None:
    d = np.zeros((10, 10, 10, 2), np.float32)
    d[2:5, 2:5, 2:5, 0] = 0.5
    d[6:8, 6:8, 6:8, 1] = 1.0
    p = save(tmp_path / "prob4d.nii.gz", d)
    s = load_probabilistic_atlas(p, ["a", "b"])
    assert s["a"].is_probabilistic
    assert s["a"].volume_mm3() == pytest.approx(27 * 0.5)
    assert s["a"].probability_at(np.array([-7.0, -7, -7])) == pytest.approx(0.5)
    assert s["a"].mask(0.4).data.sum() == 27 and s["a"].mask(0.6).data.sum() == 0
    with pytest.raises(VtaError, match="2 volumes but 1 names"):
        load_probabilistic_atlas(p, ["a"])
    pct = save(tmp_path / "pct.nii.gz", d * 100)
    assert load_probabilistic_atlas(pct, ["a", "b"])["a"].probability_at(np.array([-7.0, -7, -7]))[0] == \
        pytest.approx(0.5)
    d[..., 1] = 0
    with pytest.raises(VtaError, match="volume 1 .'b'. is empty"):
        load_probabilistic_atlas(save(tmp_path / "empty.nii.gz", d), ["a", "b"])


def test_tissue_segmentation(tmp_path: Path) -> None:
    seg = np.zeros((21, 21, 21), np.uint8)
    seg[:, :, :10] = 1
    seg[:, :, 10:] = 3
    seg[10, 10, 10] = 4
    p = save(tmp_path / "seg.nii.gz", seg)
    img = load_tissue_segmentation(p, {1: "GM", 3: "wm", 4: "CSF"})
    assert img.data.dtype == np.uint8
    assert set(np.unique(img.data)) == {GM, WM, CSF}
    with pytest.raises(VtaError, match=r"seg.nii.gz.*labels \[4\] are not in the tissue mapping"):
        load_tissue_segmentation(p, {1: "GM", 3: "WM"})
    with pytest.raises(VtaError, match="unknown tissue class 'gray'"):
        load_tissue_segmentation(p, {1: "gray", 3: "WM", 4: "CSF"})


def test_from_files_and_grid_mismatch(tmp_path: Path, atlas_file: Path) -> None:
    seg = np.full((21, 21, 21), 2, np.uint8)
    seg_p = save(tmp_path / "seg.nii.gz", seg)
    table = tmp_path / "t.tsv"
    table.write_text("1\tA\n2\tB\n")
    t1 = save(tmp_path / "t1.nii.gz", np.random.default_rng(0).random((21, 21, 21)).astype(np.float32))
    anat = Anatomy.from_files(tissue=seg_p, tissue_mapping={2: "WM"}, labels=atlas_file,
                              label_table=table, t1=t1)
    assert anat.names == ["A", "B"] and anat.t1 is not None
    pts = np.array([[0.0, 0, 0], [100.0, 0, 0]])
    assert anat.tissue_at(pts).tolist() == [WM, BACKGROUND]
    assert anat.contains(pts).tolist() == [True, False]
    np.testing.assert_allclose(anat.bounds_mm(), [[-10.5] * 3, [10.5] * 3])
    assert anat.structure_probability_at("A", np.array([[-3.0, -3, -3]])).tolist() == [1.0]
    with pytest.raises(VtaError, match="unknown structure 'a'.*'A'"):
        anat.structure("a")
    small = save(tmp_path / "small.nii.gz", np.full((20, 21, 21), 2, np.uint8))
    with pytest.raises(VtaError, match=r"shape \(21, 21, 21\) differs.*small.nii.gz"):
        Anatomy.from_files(tissue=small, labels=atlas_file, label_table=table)
    shifted = RAS.copy()
    shifted[0, 3] += 0.5
    moved = save(tmp_path / "moved.nii.gz", seg, shifted)
    with pytest.raises(VtaError, match="affine differs"):
        Anatomy.from_files(tissue=moved, labels=atlas_file, label_table=table)
    ok = Anatomy.from_files(tissue=moved, labels=atlas_file, label_table=table, allow_different_grids=True)
    assert ok.names == ["A", "B"]
    far = RAS.copy()
    far[:3, 3] += 500
    with pytest.raises(VtaError, match="entirely outside the tissue volume"):
        Anatomy.from_files(tissue=save(tmp_path / "far.nii.gz", seg, far), labels=atlas_file,
                           label_table=table, allow_different_grids=True)


# --- the default anatomy ------------------------------------------------------------

@pytest.fixture(scope="module")
def default(tmp_path_factory) -> Anatomy:
    mp = pytest.MonkeyPatch()
    mp.setenv("VTA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    D._MEMO.clear()
    anat = default_anatomy("hcpex")
    yield anat
    mp.undo()
    D._MEMO.clear()


@pytest.mark.parametrize("name,centroid", [("NAc_R", (9.4, 8.9, -10.0)), ("NAc_L", (-10.1, 8.0, -10.3))])
def test_default_nac(default: Anatomy, name: str, centroid: tuple) -> None:
    s = default.structure(name)
    assert 400 <= s.volume_mm3() <= 1500
    np.testing.assert_allclose(s.centroid_mm(), centroid, atol=0.5)  # FACTS s7.2
    assert default.tissue_at(s.centroid_mm())[0] == GM


def test_default_contents(default: Anatomy) -> None:
    for n in ["ALIC_L", "ALIC_R", "caudate_L", "putamen_R", "GPe_L", "GPi_R", "thalamus_L"]:
        assert default.structure(n).volume_mm3() > 300
    for side, sign in (("L", -1), ("R", 1)):
        c = default.structure(f"ALIC_{side}").centroid_mm()
        assert sign * c[0] > 12 and 0 < c[1] < 18 and 0 < c[2] < 15
        img = default.structure(f"ALIC_{side}").image
        assert np.all(default.tissue_at(img.voxel_to_world(np.argwhere(img.data))) == WM)
    counts = np.bincount(default.tissue.data.ravel(), minlength=5)
    assert counts[GM] > 0 and counts[WM] > 0 and counts[CSF] > 0
    # lateral ventricles (frontal horns) are CSF, deep WM is WM
    assert default.tissue_at(np.array([[4.0, 10, 12], [-4.0, 10, 12], [-26.0, -10, 26]])).tolist() == [CSF, CSF, WM]
    assert default.t1 is not None and default.t1.data.max() > 0
    assert default.provenance["labels"]["atlas"] == "hcpex"
    b = default.bounds_mm()
    assert np.all(b[0] <= [-40, -30, -30]) and np.all(b[1] >= [40, 40, 30])
    assert default.tissue_at(np.array([0.0, 0, 1000]))[0] == BACKGROUND


def test_default_cache_round_trip(default: Anatomy) -> None:
    files = list(D.cache_dir().glob("default_hcpex_*.npz"))
    assert len(files) == 1 and not list(D.cache_dir().glob("*.tmp"))
    D._MEMO.clear()
    t = time.perf_counter()
    again = default_anatomy("hcpex")
    assert time.perf_counter() - t < 1.0
    assert again is not default
    np.testing.assert_array_equal(again.tissue.data, default.tissue.data)
    np.testing.assert_array_equal(again.tissue.affine, default.tissue.affine)
    assert again.names == default.names
    for n in default.names:
        np.testing.assert_array_equal(again.structure(n).image.data, default.structure(n).image.data)
        np.testing.assert_array_equal(again.structure(n).image.affine, default.structure(n).image.affine)
    assert again.provenance == default.provenance


def test_corrupt_cache_is_rebuilt(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("VTA_CACHE_DIR", str(tmp_path))
    box = ((-30.0, -20.0, -20.0), (30.0, 30.0, 25.0))
    a = default_anatomy("hcpex", box_mm=box)
    (path,) = D.cache_dir().glob("*.npz")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(VtaError, match="cannot read"):
        Anatomy.load(path)
    D._MEMO.clear()
    with caplog.at_level(logging.WARNING, logger="vta.anatomy.model"):
        b = default_anatomy("hcpex", box_mm=box)
    assert "ignoring unreadable anatomy cache" in caplog.text
    np.testing.assert_array_equal(a.tissue.data, b.tissue.data)
    np.testing.assert_allclose(b.bounds_mm(), [[-30.5, -20.5, -20.5], [30.5, 30.5, 25.5]])
    Anatomy.load(path)  # rewritten


def test_default_unknown_atlas() -> None:
    with pytest.raises(VtaError, match="unknown default atlas 'aal'.*aal3"):
        default_anatomy("aal")


def test_default_aal3(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VTA_CACHE_DIR", str(tmp_path))
    a = default_anatomy("aal3", cache=False)
    assert {"NAc_L", "NAc_R", "ALIC_L", "ALIC_R", "pallidum_L"} <= set(a.names)
    np.testing.assert_allclose(a.structure("NAc_L").centroid_mm(), (-7.7, 12.3, -7.7), atol=0.5)
    assert not list(tmp_path.rglob("*.npz"))


# --- validation against real atlases (skip without ../shared) -----------------------

def _world_mask_points(path: Path, label: int) -> np.ndarray:
    img = read_nifti(path)
    return img.voxel_to_world(np.argwhere(np.rint(img.data) == label))


def _dice_and_distance(struct, pts: np.ndarray) -> tuple[float, float]:
    inter = struct.contains(pts).sum()
    dice = 2 * inter / (len(pts) + struct.mask().data.sum())
    return float(dice), float(np.linalg.norm(pts.mean(axis=0) - struct.centroid_mm()))


@pytest.mark.skipif(not JHU.is_file(), reason="shared JHU atlas not available")
@pytest.mark.parametrize("side,label", [("R", 17), ("L", 18)])
def test_alic_against_jhu(default: Anatomy, side: str, label: int) -> None:
    dice, dist = _dice_and_distance(default.structure(f"ALIC_{side}"), _world_mask_points(JHU, label))
    assert dist < 4.0, dist        # measured ~2.1 mm
    assert dice > 0.5, dice        # measured ~0.59-0.60


@pytest.mark.skipif(not CIT.is_file() or not HO.is_file(), reason="shared CIT168/HO atlases not available")
@pytest.mark.parametrize("side,cit,ho", [("L", 3, 11), ("R", 103, 21)])
def test_nac_against_cit168_and_harvard_oxford(default: Anatomy, side: str, cit: int, ho: int) -> None:
    nac = default.structure(f"NAc_{side}")
    dice, dist = _dice_and_distance(nac, _world_mask_points(CIT, cit))
    assert dist < 1.0 and dice > 0.8, (dice, dist)
    dice, dist = _dice_and_distance(nac, _world_mask_points(HO, ho))  # HO: 11 = left, 21 = right
    assert dist < 6.0 and dice > 0.3, (dice, dist)
