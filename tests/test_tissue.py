"""Tests of vta.anatomy.tissue: Cole-Cole, conductivity models, DTI loading/mappings, per-element sigma."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from vta.anatomy.model import BACKGROUND, BLOOD, CSF, GM, WM, Anatomy
from vta.errors import VtaError
from niftitools import save_raw_affine
from vta.anatomy.tissue import (DTI_MAX_INDEFINITE_FRACTION, SIGMA_FLOOR_S_PER_M, SIGMA_MAX_S_PER_M, SIGMA_MIN_S_PER_M,
                        ConductivityModel, TensorField, cole_cole_conductivity, cole_cole_permittivity,
                        element_conductivity, load_dti_tensor, normalized_conductivity, tet_sample_points,
                        tuch_conductivity)

# --- Cole-Cole ----------------------------------------------------------------------

# 4-Cole-Cole (Gabriel 1996) values computed at these frequencies (S/m)
FACTS_TABLE = {
    10.0: {"GM": 0.0275, "WM": 0.0277},
    130.0: {"GM": 0.0915, "WM": 0.0590},
    1e3: {"GM": 0.0988, "WM": 0.0626},
    1e4: {"GM": 0.1149, "WM": 0.0695},
}


@pytest.mark.parametrize("f", sorted(FACTS_TABLE))
def test_cole_cole_matches_facts(f: float) -> None:
    for tissue, expected in FACTS_TABLE[f].items():
        assert cole_cole_conductivity(tissue, f) == pytest.approx(expected, rel=0.01)
    assert cole_cole_conductivity("CSF", f) == pytest.approx(2.0, rel=0.01)
    assert cole_cole_conductivity("blood", f) == pytest.approx(0.7, rel=0.01)


def test_cole_cole_vectorised_aliases_and_permittivity() -> None:
    s = cole_cole_conductivity("grey matter", np.array([10.0, 130.0]))
    assert s.shape == (2,) and s[1] == pytest.approx(0.0915, rel=0.01)
    assert cole_cole_conductivity("white_matter", 130) == pytest.approx(0.059, rel=0.01)
    # relative permittivity at 130 Hz (Gabriel 1996: ~2.5e6 GM, ~1.1e6 WM)
    assert np.real(cole_cole_permittivity("GM", 130.0)) == pytest.approx(2.46e6, rel=0.05)
    assert np.real(cole_cole_permittivity("WM", 130.0)) == pytest.approx(1.07e6, rel=0.05)


def test_cole_cole_errors() -> None:
    with pytest.raises(VtaError, match="unknown tissue 'bone'"):
        cole_cole_conductivity("bone", 130)
    with pytest.raises(VtaError, match="frequency"):
        cole_cole_conductivity("GM", 0.0)
    with pytest.raises(VtaError, match="frequency"):
        cole_cole_conductivity("GM", np.nan)


# --- conductivity model -------------------------------------------------------------

def test_presets() -> None:
    cc = ConductivityModel.preset()  # colecole4 at 130 Hz
    assert cc.name == "colecole4" and cc.frequency_hz == 130.0
    assert cc.gm_S_per_m == pytest.approx(0.0915, rel=0.01)
    assert cc.wm_S_per_m == pytest.approx(0.0590, rel=0.01)
    assert cc.default_S_per_m == cc.wm_S_per_m
    c10k = ConductivityModel.preset("colecole4", frequency_hz=1e4)
    const = ConductivityModel.preset("constant")
    assert (const.gm_S_per_m, const.wm_S_per_m, const.csf_S_per_m, const.blood_S_per_m) == (0.115, 0.0695, 2.0, 0.7)
    assert c10k.gm_S_per_m == pytest.approx(const.gm_S_per_m, rel=0.01)
    assert c10k.wm_S_per_m == pytest.approx(const.wm_S_per_m, rel=0.01)
    horn = ConductivityModel.preset("Horn2017")
    assert (horn.gm_S_per_m, horn.wm_S_per_m) == (0.33, 0.14)
    assert "Horn 2017" in horn.source
    with pytest.raises(VtaError, match="unknown conductivity preset 'colecole'.*did you mean"):
        ConductivityModel.preset("colecole")


def test_model_lookup_and_validation() -> None:
    m = ConductivityModel.constant(gm=0.2, wm=0.1, csf=1.8, blood=0.6, background=0.3)
    assert [m.sigma_for_class(c) for c in (BACKGROUND, GM, WM, CSF, BLOOD, 17)] == [0.3, 0.2, 0.1, 1.8, 0.6, 0.3]
    np.testing.assert_allclose(m.sigma_for_labels(np.array([[1, 2], [0, 9]])), [[0.2, 0.1], [0.3, 0.3]])
    assert m.with_background(None).default_S_per_m == 0.1
    h = ConductivityModel.homogeneous(0.2)
    assert set(h.class_table()) == {0.2}
    assert h.to_dict()["background_S_per_m"] == 0.2
    with pytest.raises(VtaError, match="gm_S_per_m must be a positive"):
        ConductivityModel.constant(gm=-1.0, wm=0.1)
    with pytest.raises(VtaError, match="wm_S_per_m"):
        ConductivityModel.constant(gm=0.1, wm=float("nan"))


# --- synthetic label volume ---------------------------------------------------------

AFF = np.diag([1.0, 1.0, 1.0, 1.0])
AFF[:3, 3] = [-5.0, -5.0, -5.0]


def label_anatomy(tmp_path: Path) -> Anatomy:
    """11^3 grid at 1 mm, x in [-5, 5]: x < 0 GM, x >= 0 WM, a CSF slab at z = 5, blood voxel at origin+..."""
    d = np.zeros((11, 11, 11), np.uint8)
    d[:5] = GM
    d[5:] = WM
    d[:, :, 10] = CSF
    d[8, 8, 8] = BLOOD
    nib.save(nib.Nifti1Image(d, AFF), str(tmp_path / "tissue.nii.gz"))
    return Anatomy.from_files(tissue=tmp_path / "tissue.nii.gz",
                              tissue_mapping={0: "background", 1: "GM", 2: "WM", 3: "CSF", 4: "blood"})


def test_element_conductivity_from_label_nifti(tmp_path: Path) -> None:
    anat = label_anatomy(tmp_path)
    model = ConductivityModel.preset("constant")
    cents = np.array([[-3.0, 0.0, 0.0],    # GM
                      [2.2, 1.0, -1.0],    # WM
                      [0.0, 0.0, 4.8],     # CSF (nearest voxel z = 5)
                      [3.1, 2.9, 3.0],     # blood voxel (8, 8, 8)
                      [50.0, 0.0, 0.0]])   # outside -> background -> WM value
    s = element_conductivity(cents, anat, model)
    np.testing.assert_allclose(s, 1e-3 * np.array([0.115, 0.0695, 2.0, 0.7, 0.0695]))
    # encapsulation: isotropic value replaces the tissue one
    enc = np.array([True, False, False, False, False])
    s2 = element_conductivity(cents, anat, model, encapsulation_mask=enc, encapsulation_sigma=0.05)
    assert s2[0] == pytest.approx(0.05e-3) and np.all(s2[1:] == s[1:])
    # default encapsulation material = GM
    s3 = element_conductivity(cents, anat, model, encapsulation_mask=~enc)
    np.testing.assert_allclose(s3[1:], 0.115e-3)
    # no anatomy: homogeneous default
    np.testing.assert_allclose(element_conductivity(cents, None, ConductivityModel.homogeneous(0.2)), 0.2e-3)


def test_element_conductivity_sub_sampling(tmp_path: Path) -> None:
    anat = label_anatomy(tmp_path)
    model = ConductivityModel.constant(gm=0.1, wm=0.3, background=0.3)
    # one big tet straddling the GM/WM boundary at x = -0.5 and one tiny one inside GM
    p = np.array([[-3.0, -1.0, -1.0], [2.0, -1.0, -1.0], [-0.5, 3.0, -1.0], [-0.5, 0.0, 3.0],
                  [-3.0, 0.0, 0.0], [-2.8, 0.0, 0.0], [-3.0, 0.2, 0.0], [-3.0, 0.0, 0.2]]).T
    t = np.array([[0, 1, 2, 3], [4, 5, 6, 7]]).T
    cents = p.T[t.T].mean(axis=1)
    one = element_conductivity(cents, anat, model)
    five = element_conductivity(cents, anat, model, p=p, t=t, samples_per_element=5)
    assert one[1] == five[1] == pytest.approx(0.1e-3)  # small element: centroid only
    assert 0.1e-3 < five[0] < 0.3e-3  # mixed GM/WM
    pts = tet_sample_points(p, t, 5)
    assert pts.shape == (5, 2, 3)
    np.testing.assert_allclose(pts[0], cents)
    for n in (4, 9):  # (N, 3)/(M, 4) layout too; every point inside its element
        pts_n = tet_sample_points(p.T, t.T, n)
        assert pts_n.shape == (n, 2, 3)
        for e in range(2):
            v = p.T[t.T[e]]
            lam = np.linalg.solve(np.vstack([v.T, np.ones(4)]), np.vstack([pts_n[:, e].T, np.ones(n)]))
            assert np.all(lam >= -1e-12)
    with pytest.raises(VtaError, match="needs the mesh"):
        element_conductivity(cents, anat, model, samples_per_element=4)
    with pytest.raises(VtaError, match="shape mismatch"):
        element_conductivity(cents[:1], anat, model, p=p, t=t, samples_per_element=4)


def test_element_conductivity_errors(tmp_path: Path) -> None:
    anat = label_anatomy(tmp_path)
    model = ConductivityModel.preset("constant")
    with pytest.raises(VtaError, match=r"shape \(M, 3\)"):
        element_conductivity(np.zeros((4, 2)), anat, model)
    with pytest.raises(VtaError, match="encapsulation mask has shape"):
        element_conductivity(np.zeros((4, 3)), anat, model, encapsulation_mask=np.zeros(3, bool))
    with pytest.raises(VtaError, match="encapsulation conductivity"):
        element_conductivity(np.zeros((4, 3)), anat, model, encapsulation_mask=np.ones(4, bool),
                             encapsulation_sigma=0.0)
    with pytest.raises(VtaError, match="unknown DTI mapping"):
        element_conductivity(np.zeros((4, 3)), anat, model, dti_mapping="howell")
    with pytest.raises(VtaError, match="unknown tissue class 'bone'"):
        element_conductivity(np.zeros((4, 3)), anat, model, dti_classes=("bone",))


# --- DTI ----------------------------------------------------------------------------

def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def oblique_affine() -> np.ndarray:
    r = rot_z(30.0) @ np.array([[1, 0, 0], [0, np.cos(0.4), -np.sin(0.4)], [0, np.sin(0.4), np.cos(0.4)]])
    a = np.eye(4)
    a[:3, :3] = r @ np.diag([2.0, 2.0, 2.0])
    a[:3, 3] = [-4.0, -3.0, -5.0]
    return a


def write_tensor(path: Path, comps: np.ndarray, affine: np.ndarray, shape=(5, 5, 5), five_d: bool = False) -> Path:
    """A tensor image with the same 6 components in every voxel (order FSL)."""
    d = np.broadcast_to(np.asarray(comps, np.float32), shape + (6,)).copy()
    if five_d:
        d = d[:, :, :, None, :]
    nib.save(nib.Nifti1Image(d, affine), str(path))
    return path


PROLATE = np.array([1.7e-3, 0.0, 0.0, 0.3e-3, 0.0, 0.3e-3])  # FSL order: elongated along voxel axis i


@pytest.mark.parametrize("five_d", [False, True])
def test_dti_oblique_affine_rotates_tensor(tmp_path: Path, five_d: bool) -> None:
    aff = oblique_affine()
    f = load_dti_tensor(write_tensor(tmp_path / "t.nii.gz", PROLATE, aff, five_d=five_d))
    assert isinstance(f, TensorField) and f.valid.all() and f.n_clamped == 0
    d, ok = f.tensor_at(aff[:3, 3][None] + 0.1)
    assert ok.all()
    w, v = np.linalg.eigh(d[0])
    col_i = aff[:3, 0] / np.linalg.norm(aff[:3, 0])
    assert w[-1] == pytest.approx(1.7e-3)
    assert abs(v[:, -1] @ col_i) == pytest.approx(1.0, abs=1e-6)
    # world frame: no rotation
    fw = load_dti_tensor(tmp_path / "t.nii.gz", frame="world")
    dw, _ = fw.tensor_at(aff[:3, 3][None])
    np.testing.assert_allclose(dw[0], np.diag([1.7e-3, 0.3e-3, 0.3e-3]), atol=1e-12)
    # outside the grid: invalid
    _, ok_out = f.tensor_at(np.array([[100.0, 0, 0]]))
    assert not ok_out.any()


def test_dti_component_orders(tmp_path: Path) -> None:
    # a full symmetric tensor written in three orders reads back identical
    full = np.array([[1.0, 0.1, 0.2], [0.1, 0.8, 0.3], [0.2, 0.3, 0.6]]) * 1e-3
    get = {"xx": full[0, 0], "yy": full[1, 1], "zz": full[2, 2], "xy": full[0, 1], "xz": full[0, 2],
           "yz": full[1, 2]}
    orders = {"fsl": ("xx", "xy", "xz", "yy", "yz", "zz"), "mrtrix": ("xx", "yy", "zz", "xy", "xz", "yz"),
              "lower": ("xx", "xy", "yy", "xz", "yz", "zz")}
    for name, order in orders.items():
        p = write_tensor(tmp_path / f"{name}.nii.gz", [get[c] for c in order], np.eye(4))
        for spec in (name, order):
            d, _ = load_dti_tensor(p, order=spec).tensor_at(np.zeros((1, 3)))
            np.testing.assert_allclose(d[0], full, rtol=1e-6)
    with pytest.raises(VtaError, match="unknown component order 'fls'.*did you mean"):
        load_dti_tensor(tmp_path / "fsl.nii.gz", order="fls")
    with pytest.raises(VtaError, match="must name each of"):
        load_dti_tensor(tmp_path / "fsl.nii.gz", order=("xx", "xx", "zz", "xy", "xz", "yz"))


def test_dti_lps_reflection(tmp_path: Path) -> None:
    """A negative x voxel axis flips the sign of the xy/xz couplings."""
    aff = np.diag([-1.0, 1.0, 1.0, 1.0])
    comps = np.array([1.0, 0.5, 0.0, 1.0, 0.0, 0.5]) * 1e-3  # xy coupling: long axis along (1, 1, 0) in voxels
    d, _ = load_dti_tensor(write_tensor(tmp_path / "t.nii.gz", comps, aff)).tensor_at(np.zeros((1, 3)))
    w, v = np.linalg.eigh(d[0])
    assert abs(v[:, -1] @ (np.array([-1.0, 1.0, 0.0]) / np.sqrt(2))) == pytest.approx(1.0)




def test_dti_errors_and_clamping(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(VtaError, match="file not found"):
        load_dti_tensor(tmp_path / "missing.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 5), np.float32), np.eye(4)), str(tmp_path / "five.nii.gz"))
    with pytest.raises(VtaError, match="expected 6 tensor components"):
        load_dti_tensor(tmp_path / "five.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4)), str(tmp_path / "three.nii.gz"))
    with pytest.raises(VtaError, match="expected 6 tensor components"):
        load_dti_tensor(tmp_path / "three.nii.gz")
    bad = save_raw_affine(tmp_path / "bad_affine.nii", np.ones((3, 3, 3, 6), np.float32),
                          np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float))
    with pytest.raises(VtaError, match="bad_affine.nii.*broken affine"):
        load_dti_tensor(bad)
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(VtaError, match="cannot read"):
        load_dti_tensor(tmp_path / "junk.nii.gz")
    with pytest.raises(VtaError, match="frame must be"):
        load_dti_tensor(write_tensor(tmp_path / "ok.nii.gz", PROLATE, np.eye(4)), frame="scanner")
    # non-positive-definite tensors in 2 voxels (below DTI_MAX_INDEFINITE_FRACTION), zeros (no data) in one
    d = np.broadcast_to(PROLATE.astype(np.float32), (6, 6, 6, 6)).copy()
    d[0, 0, 0] = [1e-3, 0, 0, -2e-4, 0, 5e-4]
    d[1, 0, 0] = [1e-3, 2e-3, 0, 1e-3, 0, 5e-4]  # xy coupling larger than the diagonal
    d[2, 2, 2] = 0.0
    nib.save(nib.Nifti1Image(d, np.eye(4)), str(tmp_path / "npd.nii.gz"))
    with caplog.at_level(logging.WARNING, logger="vta.anatomy.tissue"):
        f = load_dti_tensor(tmp_path / "npd.nii.gz")
    assert f.n_clamped == 2
    assert "2 of 215 tensors were not positive definite" in caplog.text
    assert not f.valid[2, 2, 2] and f.valid.sum() == 215
    assert np.all(np.linalg.eigvalsh(f.data[f.valid]) > 0)
    with pytest.raises(VtaError, match="shape mismatch"):
        TensorField(np.zeros((2, 2, 2, 3, 3)), np.zeros((2, 2, 3), bool), np.eye(4))


def test_tuch_and_normalized_mappings() -> None:
    d = np.diag([1.7e-3, 0.3e-3, 0.1e-3])
    s = tuch_conductivity(d)
    w = np.linalg.eigvalsh(s)
    # 0.844 S s/mm^3 * (d - 0.124e-3 mm^2/s) in S/mm -> *1e3 S/m; the last one is clamped
    np.testing.assert_allclose(sorted(w), sorted([844 * (1.7e-3 - 0.124e-3), 844 * (0.3e-3 - 0.124e-3),
                                                 SIGMA_FLOOR_S_PER_M]), rtol=1e-9)
    assert 844 * (1.7e-3 - 0.124e-3) == pytest.approx(1.330, rel=1e-3)
    r = rot_z(40.0)
    np.testing.assert_allclose(tuch_conductivity(r @ d @ r.T), r @ s @ r.T, atol=1e-12)
    sig = 0.059
    n = normalized_conductivity(r @ d @ r.T, sig)
    assert np.linalg.det(n) == pytest.approx(sig ** 3, rel=1e-9)
    # same anisotropy and axes as D
    np.testing.assert_allclose(n / n[2, 2], (r @ d @ r.T) / d[2, 2], rtol=1e-9, atol=1e-12)
    batch = normalized_conductivity(np.stack([d, 2 * d]), np.array([0.1, 0.2]))
    np.testing.assert_allclose(np.linalg.det(batch), [0.1 ** 3, 0.2 ** 3], rtol=1e-9)


def test_element_conductivity_with_dti(tmp_path: Path) -> None:
    anat = label_anatomy(tmp_path)
    model = ConductivityModel.preset("constant")
    aff = oblique_affine()
    dti = load_dti_tensor(write_tensor(tmp_path / "t.nii.gz", PROLATE, aff, shape=(8, 8, 8)))
    cents = np.array([[-3.0, 0.0, 0.0],   # GM: isotropic by default
                      [2.0, 1.0, 0.0],    # WM: normalised tensor
                      [2.0, 1.0, -1.0]])  # WM, encapsulation: isotropic
    _, ok = dti.tensor_at(cents)
    assert ok.all()
    s = element_conductivity(cents, anat, model, dti=dti, encapsulation_mask=[False, False, True],
                             encapsulation_sigma=0.1)
    assert s.shape == (3, 3, 3)
    np.testing.assert_allclose(s[0], 0.115e-3 * np.eye(3))
    assert np.linalg.det(s[1]) == pytest.approx((0.0695e-3) ** 3, rel=1e-9)
    w, v = np.linalg.eigh(s[1])
    assert abs(v[:, -1] @ (aff[:3, 0] / 2.0)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(s[2], 0.1e-3 * np.eye(3))
    # GM too, Tuch mapping: absolute values in S/mm
    st = element_conductivity(cents, anat, model, dti=dti, dti_mapping="tuch", dti_classes=("GM", "WM"))
    assert np.linalg.eigvalsh(st[0])[-1] == pytest.approx(0.844 * (1.7e-3 - 0.124e-3), rel=1e-6)
    # outside the DTI grid: isotropic
    far = element_conductivity(np.array([[4.0, -4.0, -4.9]]), anat, model,
                               dti=TensorField(dti.data[:1, :1, :1], dti.valid[:1, :1, :1], np.eye(4) * 1.0))
    np.testing.assert_allclose(far[0], 0.0695e-3 * np.eye(3))


# --- quietly accepted bad data ------------------------------------------------------

def test_dti_non_finite_values_are_an_error(tmp_path: Path) -> None:
    """NaN / inf tensor components are an error naming the file and the voxel count (zeros stay "no data")."""
    d = np.broadcast_to(PROLATE.astype(np.float32), (4, 4, 4, 6)).copy()
    d[0, 0, 0, 1] = np.nan
    d[1, 2, 3] = np.nan
    d[3, 3, 3, 5] = np.inf
    d[2, 2, 2] = 0.0  # no data: allowed
    p = tmp_path / "nonfinite_tensor.nii.gz"
    nib.save(nib.Nifti1Image(d, np.eye(4)), str(p))
    with pytest.raises(VtaError, match=r"nonfinite_tensor\.nii\.gz.*NaN or infinite.*\b3 of 64 voxels") as exc:
        load_dti_tensor(p)
    assert "\n" not in str(exc.value)
    # a single -inf also counts (5D FSL layout)
    d = np.broadcast_to(PROLATE.astype(np.float32), (3, 3, 3, 1, 6)).copy()
    d[1, 1, 1, 0, 0] = -np.inf
    nib.save(nib.Nifti1Image(d, np.eye(4)), str(tmp_path / "inf5d.nii.gz"))
    with pytest.raises(VtaError, match=r"inf5d\.nii\.gz.*NaN or infinite.*\b1 of 27 voxels"):
        load_dti_tensor(tmp_path / "inf5d.nii.gz")


def _tensor_volume_with_indefinite(path: Path, n_total: int, n_bad: int) -> Path:
    """A (n_total, 1, 1) tensor image: n_bad indefinite tensors, the rest prolate, plus zero voxels (no data)."""
    d = np.zeros((n_total + 3, 1, 1, 6), np.float32)  # 3 trailing all-zero voxels: not counted
    d[:n_total, 0, 0] = PROLATE
    d[:n_bad, 0, 0] = [1e-3, 0, 0, -2e-4, 0, 5e-4]  # negative yy eigenvalue
    nib.save(nib.Nifti1Image(d, np.eye(4)), str(path))
    return path


def test_dti_mostly_indefinite_is_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """More than DTI_MAX_INDEFINITE_FRACTION of the tensors with data indefinite: an error, not a warning."""
    assert DTI_MAX_INDEFINITE_FRACTION == 0.05
    # exactly at the limit (5 of 100): clamped with a warning, as before
    ok = _tensor_volume_with_indefinite(tmp_path / "at_limit.nii.gz", 100, 5)
    with caplog.at_level(logging.WARNING, logger="vta.anatomy.tissue"):
        f = load_dti_tensor(ok)
    assert f.n_clamped == 5 and f.valid.sum() == 100
    assert "5 of 100 tensors were not positive definite" in caplog.text
    # one more: an error naming the file, the count and the fraction
    bad = _tensor_volume_with_indefinite(tmp_path / "over_limit.nii.gz", 100, 6)
    with pytest.raises(VtaError, match=r"over_limit\.nii\.gz.*6 of 100 tensors.*6\.0\s?%.*5\s?%") as exc:
        load_dti_tensor(bad)
    assert "\n" not in str(exc.value)
    # a wrong component order typically makes most tensors indefinite
    comps = np.array([1.0, 0.1, 0.2, 0.8, 0.3, 0.6]) * 1e-3  # FSL order of a PD tensor ...
    p = write_tensor(tmp_path / "order.nii.gz", comps, np.eye(4))
    load_dti_tensor(p, order="fsl")
    with pytest.raises(VtaError, match=r"order\.nii\.gz.*125 of 125 tensors.*100\.0\s?%"):
        load_dti_tensor(p, order="mrtrix")  # ... read as MRtrix: xy = 0.8e-3 > sqrt(xx yy)


def test_conductivity_plausible_range_in_model_and_encapsulation(tmp_path: Path) -> None:
    """Class and encapsulation conductivities outside SIGMA_MIN..SIGMA_MAX S/m are rejected, naming the range."""
    assert (SIGMA_MIN_S_PER_M, SIGMA_MAX_S_PER_M) == (0.01, 2.0)
    rng = r"0\.01-2 S/m"
    for kw, key in (({"gm": 5.0, "wm": 0.1}, "gm_S_per_m"), ({"gm": 0.1, "wm": 0.001}, "wm_S_per_m"),
                    ({"gm": 0.1, "wm": 0.1, "csf": 2.5}, "csf_S_per_m"),
                    ({"gm": 0.1, "wm": 0.1, "background": 20.0}, "background_S_per_m")):
        with pytest.raises(VtaError, match=rf"{key}.*{rng}"):
            ConductivityModel.constant(**kw)
    with pytest.raises(VtaError, match=rf"gm_S_per_m.*{rng}"):
        ConductivityModel.homogeneous(3.0)
    # the range is inclusive, and every preset (CSF = 2.0 S/m, Cole-Cole up to 10 kHz) lies in it
    ConductivityModel.constant(gm=SIGMA_MIN_S_PER_M, wm=SIGMA_MAX_S_PER_M)
    for name in ("colecole4", "constant", "horn2017", "horn2017_10khz"):
        for f in (10.0, 130.0, 1e4):
            ConductivityModel.preset(name, frequency_hz=f)
    anat = label_anatomy(tmp_path)
    model = ConductivityModel.preset("constant")
    for s_enc in (5.0, 0.001):
        with pytest.raises(VtaError, match=rf"encapsulation conductivity.*{rng}"):
            element_conductivity(np.zeros((4, 3)), anat, model, encapsulation_mask=np.ones(4, bool),
                                 encapsulation_sigma=s_enc)
    # without encapsulated elements the value is unused (the pipeline always passes a mask)
    s = element_conductivity(np.zeros((4, 3)), anat, model, encapsulation_mask=np.zeros(4, bool),
                             encapsulation_sigma=0.005)
    np.testing.assert_allclose(s, element_conductivity(np.zeros((4, 3)), anat, model))

