"""Tests of vta.anatomy.targets: target presets, contact coverage, voxel placement, Lead-DBS import."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from vta.anatomy.default import default_anatomy
from vta.anatomy.model import WM, Anatomy
from vta.anatomy.atlas_io import Image, Structure
from vta.errors import VtaError
from vta.leads import LeadPlacement, custom_lead, get_lead
from vta.anatomy.targets import (LEADDBS_LEAD_MODELS, TARGET_PRESETS, contact_centers_mm, contact_voxel_indices,
                         contacts_in_structures, leaddbs_lead_name, load_leaddbs_reconstruction,
                         placement_for_target, placement_from_voxels, target_trajectory)

# --- presets with fixed coordinates and a synthetic anatomy ---------------------------


def test_fixed_presets_match_facts() -> None:
    assert set(TARGET_PRESETS) >= {"NAc_R", "NAc_L"}
    r = target_trajectory("NAc_R")
    assert r.source == "fixed"
    np.testing.assert_allclose(r.tip_mm, [9.0, 12.0, -8.0])
    np.testing.assert_allclose(r.through_mm, [17.0, 13.0, 3.5])
    assert np.linalg.norm(r.direction) == pytest.approx(1.0)
    np.testing.assert_allclose(r.entry_mm, r.tip_mm + 70.0 * r.direction)
    lft = target_trajectory("nac_l")
    np.testing.assert_allclose(lft.tip_mm, [-9.0, 12.0, -8.0])
    np.testing.assert_allclose(lft.direction * [-1, 1, 1], r.direction)
    pl = placement_for_target("NAc_R", "Medtronic 3391", rotation_deg=30.0)
    np.testing.assert_allclose(pl.tip_mm, r.tip_mm)
    assert pl.rotation_deg == 30.0
    with pytest.raises(VtaError, match="unknown target preset 'NAc'.*did you mean"):
        target_trajectory("NAc")
    with pytest.raises(VtaError, match="needs an anatomy"):
        placement_for_target("NAc_R", "Medtronic 3391", align="span")
    with pytest.raises(VtaError, match="align must be"):
        placement_for_target("NAc_R", align="middle")
    with pytest.raises(VtaError, match="unknown lead model"):
        placement_for_target("NAc_R", "Medtronic 9999")


def box_structure(name: str, lo: tuple, hi: tuple, affine: np.ndarray, shape: tuple) -> Structure:
    ijk = np.indices(shape).reshape(3, -1).T
    w = ijk @ affine[:3, :3].T + affine[:3, 3]
    inside = np.all((w >= lo) & (w <= hi), axis=1).reshape(shape)
    return Structure(name, Image(inside, affine), "synthetic")


@pytest.fixture(scope="module")
def toy_anatomy() -> Anatomy:
    """1 mm grid, x 0..30, y 0..30, z -20..20: NAc_R a box around (10, 12, -10), ALIC_R a slab above."""
    aff = np.eye(4)
    aff[:3, 3] = [0.0, 0.0, -20.0]
    shape = (31, 31, 41)
    tissue = Image(np.full(shape, WM, np.uint8), aff)
    structs = {"NAc_R": box_structure("NAc_R", (6, 8, -15), (14, 16, -5), aff, shape),
               "ALIC_R": box_structure("ALIC_R", (14, 8, -2), (22, 16, 6), aff, shape)}
    return Anatomy(tissue, structs)


def test_anatomy_recipe_and_coverage(toy_anatomy: Anatomy) -> None:
    t = target_trajectory("NAc_R", toy_anatomy)
    assert t.source == "anatomy"
    np.testing.assert_allclose(t.tip_mm, [10.0, 12.0, -12.0])  # NAc centroid, 2 mm down
    # ALIC voxels up to 10 mm above the NAc top (z = -5): z in [-2, 5]
    np.testing.assert_allclose(t.through_mm, [18.0, 12.0, 1.5])
    lead = get_lead("SceneRay SR1242")
    pl = placement_for_target("NAc_R", lead, toy_anatomy)
    cov = contacts_in_structures(lead, pl, toy_anatomy)
    assert cov.contacts["NAc_R"] and cov.contacts["ALIC_R"]
    assert max(cov.contacts["NAc_R"]) < min(cov.contacts["ALIC_R"])  # ventral in NAc, dorsal in ALIC
    assert sum(cov.counts.values()) == lead.n_contacts
    # span alignment: the active span's middle sits between the NAc exit and the ALIC entry
    span = placement_for_target("NAc_R", "Medtronic 3389", toy_anatomy, align="span")
    cov2 = contacts_in_structures("Medtronic 3389", span, toy_anatomy, structures=["NAc_R", "ALIC_R"])
    assert cov2.contacts["NAc_R"] == [0] and cov2.contacts["ALIC_R"] == [3]
    assert cov2.outside == [1, 2]
    with pytest.raises(VtaError, match="needs the lead"):
        placement_for_target("NAc_R", None, toy_anatomy, align="span")


def test_anatomy_without_structures_falls_back(toy_anatomy: Anatomy, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vta.anatomy.targets"):
        t = target_trajectory("NAc_L", toy_anatomy)
    assert t.source == "fixed" and "NAc_L" in caplog.text
    np.testing.assert_allclose(t.tip_mm, [-9.0, 12.0, -8.0])


def test_default_anatomy_nac_alic() -> None:
    anat = default_anatomy()
    for side in "RL":
        t = target_trajectory(f"NAc_{side}", anat)
        assert t.source == "anatomy"
        assert anat.structure(f"NAc_{side}").contains(t.tip_mm[None])[0]
        assert np.sign(t.direction[0]) == (1 if side == "R" else -1) and t.direction[2] > 0.7
        for lead in ("SceneRay SR1242", "Medtronic 3391"):
            cov = contacts_in_structures(lead, placement_for_target(f"NAc_{side}", lead, anat), anat)
            assert cov.counts[f"NAc_{side}"] >= 1 and cov.counts[f"ALIC_{side}"] >= 1, (side, lead, cov.counts)
            assert cov.contacts[f"NAc_{side}"][0] == 0


# --- voxel <-> world round trips --------------------------------------------------------


def oblique_affine() -> np.ndarray:
    a = np.radians(25.0)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rz @ np.diag([-0.8, 1.0, 1.2])  # LAS-like flip, anisotropic voxels, rotated
    aff[:3, 3] = [40.0, -30.0, -25.0]
    return aff


@pytest.mark.parametrize("affine", [np.eye(4), oblique_affine()])
def test_contact_voxels_round_trip(affine: np.ndarray) -> None:
    lead = get_lead("Boston Scientific Vercise Directed")
    pl = LeadPlacement([9.0, 12.0, -8.0], [8.0, 1.0, 11.5], rotation_deg=40.0)
    ijk = contact_voxel_indices(lead, pl, affine)
    assert ijk.shape == (lead.n_contacts, 3) and ijk.dtype == np.int64
    back = ijk @ affine[:3, :3].T + affine[:3, 3]
    # the residual, in voxel units, is at most half a voxel along every voxel axis
    resid_vox = (contact_centers_mm(lead, pl) - back) @ np.linalg.inv(affine[:3, :3]).T
    assert np.all(np.abs(resid_vox) <= 0.5 + 1e-9)
    # tip/entry through voxel coordinates and back
    inv = np.linalg.inv(affine)
    entry = pl.tip_mm + 50 * pl.direction
    tip_v, entry_v = (np.array([pl.tip_mm, entry]) @ inv[:3, :3].T + inv[:3, 3])
    img = Image(np.zeros((2, 2, 2)), affine)
    pv = placement_from_voxels(img, tip_v, entry_v, rotation_deg=40.0)
    np.testing.assert_allclose(pv.tip_mm, pl.tip_mm, atol=1e-9)
    np.testing.assert_allclose(pv.direction, pl.direction, atol=1e-12)
    np.testing.assert_allclose(contact_centers_mm(lead, pv), contact_centers_mm(lead, pl), atol=1e-9)
    with pytest.raises(VtaError, match="three finite numbers"):
        placement_from_voxels(affine, [0, 0], [1, 1, 1])
    with pytest.raises(VtaError, match="broken affine"):
        placement_from_voxels(np.zeros((4, 4)), [0, 0, 0], [1, 1, 1])


# --- Lead-DBS ---------------------------------------------------------------------------


def leaddbs_y(direction: np.ndarray, rotation_deg: float) -> np.ndarray:
    """Lead-DBS's y marker offset for its rotation angle (ea_mancor formula), independent of vta."""
    r = math.radians(rotation_deg)
    y = np.array([-math.sin(r), math.cos(r), 0.0])
    return y - (y @ direction) / (direction @ direction) * direction


def side_record(lead_name: str, pl: LeadPlacement, y_scale: float = 1.0,
                leaddbs_rotation: float | None = None) -> tuple[dict, np.ndarray]:
    """Markers of a placed lead: y along the placement's marker (local +x), or from
    Lead-DBS's own formula when ``leaddbs_rotation`` is given."""
    lead = get_lead(lead_name)
    coords = contact_centers_mm(lead, pl)
    head = pl.tip_mm + lead.contact(0).center_z_mm * pl.direction
    tail = pl.tip_mm + lead.contacts()[-1].center_z_mm * pl.direction
    y = pl.frame[:, 0] if leaddbs_rotation is None else leaddbs_y(pl.direction, leaddbs_rotation)
    x = np.cross(y, pl.direction)
    return {"head": head, "tail": tail, "x": head + y_scale * x, "y": head + y_scale * y}, coords


def write_reco(path: Path, sides: list[tuple[str, LeadPlacement] | None], spaces=("mni", "native"),
               old_style: bool = False) -> Path:
    """An ea_reconstruction.mat (MATLAB v5) in Lead-DBS's layout, built with scipy only."""
    n = len(sides)
    markers = np.zeros((1, n), dtype=[("head", "O"), ("tail", "O"), ("x", "O"), ("y", "O")])
    coords = np.empty((1, n), dtype=object)
    traj = np.empty((1, n), dtype=object)
    props = np.zeros((1, n), dtype=[("elmodel", "O"), ("manually_corrected", "O")])
    for i, entry in enumerate(sides):
        if entry is None:
            for k in ("head", "tail", "x", "y"):
                markers[0, i][k] = np.zeros((0, 0))
            coords[0, i] = np.zeros((0, 0))
            traj[0, i] = np.zeros((0, 0))
            props[0, i]["elmodel"] = ""
            props[0, i]["manually_corrected"] = 0.0
            continue
        name, pl = entry
        geom = LEADDBS_NAME.get(name, "Medtronic 3389")  # unknown models: any geometry will do
        rec, c = side_record(geom, pl, y_scale=0.65 if i else 1.0)
        for k, v in rec.items():
            markers[0, i][k] = v[None, :]
        coords[0, i] = c
        traj[0, i] = np.array([pl.tip_mm + s * pl.direction for s in np.linspace(0, 20, 5)])
        props[0, i]["elmodel"] = name
        props[0, i]["manually_corrected"] = 1.0
    if old_style:
        scipy.io.savemat(str(path), {"markers": markers, "coords_mm": coords, "trajectory": traj,
                                     "elmodel": sides[0][0]})
        return path
    reco = {"props": props}
    for sp in spaces:
        reco[sp] = {"markers": markers, "coords_mm": coords, "trajectory": traj}
    scipy.io.savemat(str(path), {"reco": reco})
    return path


LEADDBS_NAME = {k: v for k, v in LEADDBS_LEAD_MODELS.items() if v is not None}

RIGHT = LeadPlacement([11.0, 14.0, -9.0], [0.45, 0.2, 0.87], rotation_deg=-35.0)
LEFT = LeadPlacement([-10.0, 13.0, -8.5], [-0.4, 0.25, 0.88], rotation_deg=120.0)


@pytest.mark.parametrize("elmodel", ["Medtronic 3389", "SceneRay SR1242", "Boston Scientific Vercise Directed",
                                     "Abbott Directed 6172 (short)", "Medtronic B33005"])
def test_leaddbs_round_trip(tmp_path: Path, elmodel: str) -> None:
    p = write_reco(tmp_path / "ea_reconstruction.mat", [(elmodel, RIGHT), (elmodel, LEFT)])
    expected = leaddbs_lead_name(elmodel)
    for side, want in (("right", RIGHT), ("left", LEFT), (1, RIGHT), ("L", LEFT)):
        pl, name = load_leaddbs_reconstruction(p, side=side)
        assert name == expected
        np.testing.assert_allclose(pl.tip_mm, want.tip_mm, atol=1e-6)
        np.testing.assert_allclose(pl.direction, want.direction, atol=1e-9)
        assert pl.rotation_deg == pytest.approx(want.rotation_deg, abs=1e-6)
        np.testing.assert_allclose(pl.frame, want.frame, atol=1e-9)
    pn, _ = load_leaddbs_reconstruction(p, side="left", space="native")
    np.testing.assert_allclose(pn.tip_mm, LEFT.tip_mm, atol=1e-6)


@pytest.mark.parametrize("direction", [[0.0, 0.0, 1.0], [0.45, 0.2, 0.87], [-0.5, -0.3, 0.8]])
def test_leaddbs_rotation_convention(tmp_path: Path, direction: list) -> None:
    """Markers written with Lead-DBS's own rotation formula: the imported marker
    direction (local +x) is Lead-DBS's y; the angles agree for a vertical lead."""
    for rot in (0.0, 30.0, -100.0):
        pl0 = LeadPlacement([10.0, 12.0, -8.0], direction)
        rec, coords = side_record("Boston Scientific Vercise Directed", pl0, leaddbs_rotation=rot)
        markers = np.zeros((1, 1), dtype=[("head", "O"), ("tail", "O"), ("x", "O"), ("y", "O")])
        for k, v in rec.items():
            markers[0, 0][k] = v[None, :]
        props = np.zeros((1, 1), dtype=[("elmodel", "O")])
        props[0, 0]["elmodel"] = "Boston Scientific Vercise Directed"
        p = tmp_path / "rot.mat"
        scipy.io.savemat(str(p), {"reco": {"mni": {"markers": markers}, "props": props}})
        pl, _ = load_leaddbs_reconstruction(p)
        y = leaddbs_y(pl0.direction, rot)
        np.testing.assert_allclose(pl.frame[:, 0], y / np.linalg.norm(y), atol=1e-9)
        if direction == [0.0, 0.0, 1.0]:
            assert pl.rotation_deg == pytest.approx(rot, abs=1e-9)
        else:
            assert abs((pl.rotation_deg - rot + 180) % 360 - 180) < 15.0  # same sense, tilt-dependent


def test_leaddbs_model_names() -> None:
    for ld, vta_name in LEADDBS_LEAD_MODELS.items():
        if vta_name is None:
            with pytest.raises(VtaError, match="not in the vta catalogue"):
                leaddbs_lead_name(ld)
        else:
            assert leaddbs_lead_name(ld) == get_lead(vta_name).name
    assert leaddbs_lead_name("St. Jude Directed 6173 (long)") == "Abbott 6173"
    assert leaddbs_lead_name("Medtronic B33015") == "Medtronic SenSight B33015"
    assert leaddbs_lead_name("3389") == "Medtronic 3389"  # catalogue alias


def test_leaddbs_single_side_old_style_and_override(tmp_path: Path) -> None:
    # right-only (1x1 struct arrays / cells are squeezed by scipy)
    p = write_reco(tmp_path / "r.mat", [("Medtronic 3387", RIGHT)])
    pl, name = load_leaddbs_reconstruction(p)
    assert name == "Medtronic 3387"
    np.testing.assert_allclose(pl.tip_mm, RIGHT.tip_mm, atol=1e-6)
    with pytest.raises(VtaError, match="left side .side 2. is not in the reconstruction"):
        load_leaddbs_reconstruction(p, side="left")
    # left-only: Lead-DBS leaves side 1 empty
    p2 = write_reco(tmp_path / "l.mat", [None, ("Medtronic 3387", LEFT)])
    pl2, _ = load_leaddbs_reconstruction(p2, side="left")
    np.testing.assert_allclose(pl2.tip_mm, LEFT.tip_mm, atol=1e-6)
    with pytest.raises(VtaError, match="right side .side 1. is not in the reconstruction|no lead model"):
        load_leaddbs_reconstruction(p2, side="right")
    # old files without reco
    p3 = write_reco(tmp_path / "old.mat", [("Medtronic 3389", RIGHT), ("Medtronic 3389", LEFT)], old_style=True)
    pl3, _ = load_leaddbs_reconstruction(p3, side="left")
    np.testing.assert_allclose(pl3.tip_mm, LEFT.tip_mm, atol=1e-6)
    # lead override: a custom lead with the same first contact gives the same tip
    custom = custom_lead("mine", levels=[1, 1, 1, 1], contact_length_mm=1.5, gaps_mm=1.5, diameter_mm=1.27,
                         tip_length_mm=1.5)
    pl4, name4 = load_leaddbs_reconstruction(p, lead=custom)
    assert name4 is None
    np.testing.assert_allclose(pl4.tip_mm, RIGHT.tip_mm, atol=1e-6)
    pl5, name5 = load_leaddbs_reconstruction(p, lead="SR1242")  # contact 0 centre at 3.0 mm, not 2.25
    assert name5 == "SceneRay SR1242"
    np.testing.assert_allclose(pl5.tip_mm, RIGHT.tip_mm - 0.75 * RIGHT.direction, atol=1e-6)


def test_leaddbs_errors(tmp_path: Path) -> None:
    with pytest.raises(VtaError, match="file not found"):
        load_leaddbs_reconstruction(tmp_path / "nope.mat")
    p = write_reco(tmp_path / "unknown.mat", [("Foo Lead 9000", RIGHT)])
    with pytest.raises(VtaError, match="unknown Lead-DBS lead model 'Foo Lead 9000'.*lead="):
        load_leaddbs_reconstruction(p)
    pl, name = load_leaddbs_reconstruction(p, lead="Medtronic 3389")
    assert name == "Medtronic 3389"
    p2 = write_reco(tmp_path / "seeg.mat", [("DIXI D08-08AM", RIGHT)])
    with pytest.raises(VtaError, match="not in the vta catalogue"):
        load_leaddbs_reconstruction(p2)
    good = write_reco(tmp_path / "good.mat", [("Medtronic 3389", RIGHT)], spaces=("mni",))
    with pytest.raises(VtaError, match=r"no reco\.native \(has mni\)"):
        load_leaddbs_reconstruction(good, space="native")
    with pytest.raises(VtaError, match="space must be one of"):
        load_leaddbs_reconstruction(good, space="acpc")
    with pytest.raises(VtaError, match="side must be"):
        load_leaddbs_reconstruction(good, side="middle")
    scipy.io.savemat(str(tmp_path / "other.mat"), {"x": np.ones(3)})
    with pytest.raises(VtaError, match="no 'reco' struct"):
        load_leaddbs_reconstruction(tmp_path / "other.mat")
    (tmp_path / "junk.mat").write_bytes(b"this is not a MATLAB file at all" * 10)
    with pytest.raises(VtaError, match="cannot read"):
        load_leaddbs_reconstruction(tmp_path / "junk.mat")
    # v7.3 header: needs h5py (or, if installed, fails cleanly on a non-HDF5 body)
    (tmp_path / "v73.mat").write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(128, b" ") + b"\0" * 512)
    with pytest.raises(VtaError, match="v7.3"):
        load_leaddbs_reconstruction(tmp_path / "v73.mat")
    # degenerate markers
    bad = write_reco(tmp_path / "bad.mat", [("Medtronic 3389", RIGHT)])
    m = scipy.io.loadmat(str(bad), simplify_cells=False)
    mk = m["reco"]["mni"][0, 0]["markers"][0, 0]
    mk[0, 0]["tail"] = mk[0, 0]["head"]
    scipy.io.savemat(str(bad), {"reco": m["reco"]})
    with pytest.raises(VtaError, match="head and tail markers coincide"):
        load_leaddbs_reconstruction(bad)


def test_leaddbs_without_markers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lead = get_lead("Medtronic 3389")
    coords = np.empty((1, 1), dtype=object)
    coords[0, 0] = contact_centers_mm(lead, RIGHT)
    props = np.zeros((1, 1), dtype=[("elmodel", "O")])
    props[0, 0]["elmodel"] = "Medtronic 3389"
    scipy.io.savemat(str(tmp_path / "c.mat"), {"reco": {"mni": {"coords_mm": coords}, "props": props}})
    with caplog.at_level(logging.WARNING, logger="vta.anatomy.targets"):
        pl, _ = load_leaddbs_reconstruction(tmp_path / "c.mat")
    assert "no markers" in caplog.text
    np.testing.assert_allclose(pl.tip_mm, RIGHT.tip_mm, atol=1e-6)
    np.testing.assert_allclose(pl.direction, RIGHT.direction, atol=1e-9)


# --- Lead-DBS model names: the whole list ------------------------------------------------

#: Lead-DBS ``elmodel`` strings (ea_resolve_elspec.m, current and older releases) and the
#: catalogue lead each must give.
LEADDBS_EXPECTED = {
    "Medtronic 3389": "Medtronic 3389",
    "Medtronic 3387": "Medtronic 3387",
    "Medtronic 3391": "Medtronic 3391",
    "Medtronic B33005": "Medtronic SenSight B33005",
    "Medtronic B33015": "Medtronic SenSight B33015",
    "Boston Scientific Vercise": "Boston Scientific Vercise",
    "Boston Scientific Vercise Directed": "Boston Scientific Vercise Directed",
    "Boston Scientific Vercise Cartesia X": "Boston Scientific Vercise Cartesia X",
    "Boston Scientific Vercise Cartesia HX": "Boston Scientific Vercise Cartesia HX",
    "Abbott ActiveTip (6146-6149)": "Abbott ActiveTip 6146",
    "Abbott ActiveTip (6142-6145)": "Abbott ActiveTip 6142",
    "Abbott Directed 6172 (short)": "Abbott 6172",
    "Abbott Directed 6173 (long)": "Abbott 6173",
    "St. Jude ActiveTip (6146-6149)": "Abbott ActiveTip 6146",
    "St. Jude ActiveTip (6142-6145)": "Abbott ActiveTip 6142",
    "St. Jude Directed 6172 (short)": "Abbott 6172",
    "St. Jude Directed 6173 (long)": "Abbott 6173",
    "PINS Medical L301": "PINS L301",
    "PINS Medical L302": "PINS L302",
    "PINS Medical L303": "PINS L303",
    "PINS L301": "PINS L301",
    "SceneRay SR1200": "SceneRay SR1200",
    "SceneRay SR1202": "SceneRay SR1202",
    "SceneRay SR1210": "SceneRay SR1210",
    "SceneRay SR1211": "SceneRay SR1211",
    "SceneRay SR1212": "SceneRay SR1212",
    "SceneRay SR1242": "SceneRay SR1242",
    "Aleva directSTIM Directed": "Aleva directSTIM Directed",
    "NeuroPace DL-344-3.5": "NeuroPace DL-344-3.5",
    "NeuroPace DL-344-10": "NeuroPace DL-344-10",
}

#: Lead-DBS electrodes vta leaves out, each with a word of the reason it gives.
LEADDBS_LEFT_OUT = {
    "DIXI D08-15AM": "SEEG", "SDE-08 S12 Legacy": "SEEG", "PMT 2102-16-092": "SEEG", "2069-EPC-05C-35": "SEEG",
    "AdTech BF08R-SP21X": "SEEG", "AdTech SD10R-SP05X Choi": "SEEG", "ELAINE Rat Electrode": "rodent",
    "NuMed Mini Lead": "rodent", "SmartFlow Cannula NGS-NC-06": "cannula", "Aleva directSTIM 11500": "dimensions",
}


@pytest.mark.parametrize("elmodel", sorted(LEADDBS_EXPECTED))
def test_leaddbs_name_table(elmodel: str) -> None:
    assert leaddbs_lead_name(elmodel) == LEADDBS_EXPECTED[elmodel]
    assert LEADDBS_LEAD_MODELS[elmodel] is not None


def test_leaddbs_every_listed_name_maps_or_says_why() -> None:
    from vta.anatomy.leaddbs import LEADDBS_NOT_MODELLED

    assert set(LEADDBS_EXPECTED) <= set(LEADDBS_LEAD_MODELS)
    assert set(LEADDBS_LEFT_OUT) <= set(LEADDBS_NOT_MODELLED)
    for name, mapped in LEADDBS_LEAD_MODELS.items():
        if mapped is not None:
            assert leaddbs_lead_name(name) == get_lead(mapped).name
            continue
        with pytest.raises(VtaError) as exc:
            leaddbs_lead_name(name)
        text = str(exc.value)
        assert "\n" not in text and f"'{name}'" in text and "not a DBS lead vta models" in text
        assert LEADDBS_NOT_MODELLED[name] in text
    for name, word in LEADDBS_LEFT_OUT.items():
        with pytest.raises(VtaError, match=word):
            leaddbs_lead_name(name)


@pytest.mark.parametrize("elmodel", ["Boston Scientific Vercise Cartesia X", "Boston Scientific Vercise Cartesia HX",
                                     "SceneRay SR1202", "Aleva directSTIM Directed"])
def test_leaddbs_round_trip_new_models(tmp_path: Path, elmodel: str, caplog: pytest.LogCaptureFixture) -> None:
    p = write_reco(tmp_path / "ea_reconstruction.mat", [(elmodel, RIGHT), (elmodel, LEFT)])
    with caplog.at_level(logging.WARNING, logger="vta.anatomy.leaddbs"):
        for side, want in (("right", RIGHT), ("left", LEFT)):
            pl, name = load_leaddbs_reconstruction(p, side=side)
            assert name == LEADDBS_EXPECTED[elmodel]
            np.testing.assert_allclose(pl.tip_mm, want.tip_mm, atol=1e-6)
            np.testing.assert_allclose(pl.frame, want.frame, atol=1e-9)
    # the head marker is the centre of the first (segmented) level: no consistency warning
    assert "head marker" not in caplog.text and "coords_mm has" not in caplog.text


def test_leaddbs_seeg_reconstruction_error_is_one_line(tmp_path: Path) -> None:
    p = write_reco(tmp_path / "seeg.mat", [("DIXI D08-08AM", RIGHT)])
    with pytest.raises(VtaError) as exc:
        load_leaddbs_reconstruction(p)
    text = str(exc.value)
    assert "\n" not in text and "'DIXI D08-08AM'" in text and "SEEG" in text and "lead=" in text
    _, name = load_leaddbs_reconstruction(p, lead="Medtronic 3389")  # an override still works
    assert name == "Medtronic 3389"
