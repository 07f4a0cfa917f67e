"""Lead catalogue and placement geometry against FACTS.md s2."""

import math

import numpy as np
import pytest

from vta import VtaError, custom_lead, get_lead, lead_catalogue
from vta.leads import LeadPlacement

# Contact centres from the distal end and ring areas derived in FACTS.md s2 (mm, mm^2).
EXPECTED_CENTRES = {
    "Medtronic 3389": [2.25, 4.25, 6.25, 8.25],
    "Medtronic 3387": [2.25, 5.25, 8.25, 11.25],
    "Medtronic 3391": [3, 10, 17, 24],
    "SceneRay SR1242": [3, 8, 15, 22],
    "PINS L301": [2.25, 4.25, 6.25, 8.25],
    "PINS L302": [2.25, 5.25, 8.25, 11.25],
    "Boston Scientific Vercise": [1.85 + 2.0 * k for k in range(8)],
}
EXPECTED_SPAN = {"Medtronic 3389": 7.5, "Medtronic 3387": 10.5, "Medtronic 3391": 24.0, "SceneRay SR1242": 22.0}
EXPECTED_RING_AREA = {"Medtronic 3389": 5.98, "Medtronic 3391": 11.97, "PINS L301": 6.13}

REQUIRED = [
    "Medtronic 3387", "Medtronic 3389", "Medtronic 3391", "Medtronic SenSight B33005",
    "Medtronic SenSight B33015", "Boston Scientific Vercise", "Boston Scientific Vercise Directed",
    "Boston Scientific Vercise Cartesia X", "Boston Scientific Vercise Cartesia HX",
    "Abbott 6172", "Abbott 6173", "Abbott ActiveTip 6146", "Abbott ActiveTip 6142", "PINS L301",
    "PINS L302", "PINS L303", "SceneRay SR1200", "SceneRay SR1202", "SceneRay SR1210", "SceneRay SR1211",
    "SceneRay SR1212", "SceneRay SR1242", "Aleva directSTIM Directed", "NeuroPace DL-344-3.5",
    "NeuroPace DL-344-10",
]

#: OSS-DBS v2 electrode names (ossdbs/electrodes ELECTRODES) of clinical leads -> catalogue lead.
OSSDBS_NAMES = {
    "Medtronic3387": "Medtronic 3387", "Medtronic3389": "Medtronic 3389", "Medtronic3391": "Medtronic 3391",
    "MedtronicSenSightB33005": "Medtronic SenSight B33005", "MedtronicSenSightB33015": "Medtronic SenSight B33015",
    "BostonScientificVercise": "Boston Scientific Vercise",
    "BostonScientificVerciseDirected": "Boston Scientific Vercise Directed",
    "BostonScientificCartesiaX": "Boston Scientific Vercise Cartesia X",
    "BostonScientificCartesiaHX": "Boston Scientific Vercise Cartesia HX",
    "AbbottStJudeActiveTip6146_6149": "Abbott ActiveTip 6146",
    "AbbottStJudeActiveTip6142_6145": "Abbott ActiveTip 6142",
    "AbbottStJudeDirected6172": "Abbott 6172", "AbbottStJudeDirected6173": "Abbott 6173",
    "PINSMedicalL301": "PINS L301", "PINSMedicalL302": "PINS L302", "PINSMedicalL303": "PINS L303",
    "SceneRay1202": "SceneRay SR1202", "SceneRay1211": "SceneRay SR1211", "SceneRay1212": "SceneRay SR1212",
    "SceneRay1242": "SceneRay SR1242", "NeuroPaceDL344_3_5": "NeuroPace DL-344-3.5",
    "NeuroPaceDL344_10": "NeuroPace DL-344-10",
}


def test_catalogue_has_every_required_lead():
    assert set(REQUIRED) <= set(lead_catalogue())


@pytest.mark.parametrize("name", sorted(EXPECTED_CENTRES))
def test_contact_centres_match_facts(name):
    centres = [c.center_z_mm for c in get_lead(name).contacts()]
    np.testing.assert_allclose(centres, EXPECTED_CENTRES[name], atol=1e-12)


@pytest.mark.parametrize("name", sorted(EXPECTED_SPAN))
def test_active_span(name):
    assert get_lead(name).active_span_mm == pytest.approx(EXPECTED_SPAN[name])


@pytest.mark.parametrize("name", sorted(EXPECTED_RING_AREA))
def test_ring_area(name):
    assert get_lead(name).contacts()[0].area_mm2 == pytest.approx(EXPECTED_RING_AREA[name], abs=0.01)


def test_directional_segments():
    lead = get_lead("Medtronic SenSight B33005")
    assert lead.n_contacts == 8 and lead.levels == (1, 3, 3, 1)
    segs = [c for c in lead.contacts() if not c.is_ring]
    assert [c.index for c in segs] == [1, 2, 3, 4, 5, 6]
    assert [c.angle_center_deg for c in segs[:3]] == [0.0, 120.0, 240.0]
    # a 90 degree segment is a quarter of the ring (FACTS: ~1.53 mm^2 on a 1.3 mm lead)
    assert segs[0].area_mm2 == pytest.approx(lead.contacts()[0].area_mm2 / 4)
    assert get_lead("Vercise Directed").contacts()[1].area_mm2 == pytest.approx(1.53, abs=0.01)


def test_tip_contacts():
    for name, centre in (("Boston Scientific Vercise Directed", 0.75), ("Abbott ActiveTip 6146", 1.5)):
        tip = get_lead(name).contacts()[0]
        assert tip.is_tip and tip.center_z_mm == pytest.approx(centre)
        r = tip.radius_mm
        assert tip.area_mm2 == pytest.approx(2 * math.pi * r**2 + 2 * math.pi * r * (tip.z_end_mm - r))


def test_sr1242_uneven_spacing():
    ext = get_lead("SR1242").level_extents_mm()
    gaps = [ext[i + 1][0] - ext[i][1] for i in range(3)]
    assert gaps == pytest.approx([2.0, 4.0, 4.0])


def test_aliases_and_unknown_lead():
    assert get_lead("3389").name == "Medtronic 3389"
    assert get_lead("medtronic_3389").name == "Medtronic 3389"
    with pytest.raises(VtaError, match="unknown lead model 'Medtronic 3398'.*did you mean"):
        get_lead("Medtronic 3398")


def test_contact_index_out_of_range():
    with pytest.raises(VtaError, match="contact index 4 is out of range"):
        get_lead("3389").contact(4)


def test_custom_lead_and_validation():
    lead = custom_lead("mine", levels=[1, 1], contact_length_mm=2.0, gaps_mm=1.0, diameter_mm=1.0, tip_length_mm=1.0)
    assert [c.center_z_mm for c in lead.contacts()] == [2.0, 5.0]
    with pytest.raises(VtaError, match="diameter_mm must be positive"):
        custom_lead("bad", levels=[1], contact_length_mm=1, gaps_mm=[], diameter_mm=-1, tip_length_mm=1)
    with pytest.raises(VtaError, match="need 1 gaps"):
        custom_lead("bad", levels=[1, 1], contact_length_mm=1, gaps_mm=[1, 2], diameter_mm=1, tip_length_mm=1)


def test_placement_round_trip_and_frame():
    rng = np.random.default_rng(0)
    p = LeadPlacement([10.0, 12.0, -8.0], [0.3, 0.4, 0.8], rotation_deg=37.0)
    frame = p.frame
    np.testing.assert_allclose(frame.T @ frame, np.eye(3), atol=1e-12)
    assert np.linalg.det(frame) == pytest.approx(1.0)
    np.testing.assert_allclose(frame[:, 2], p.direction)
    pts = rng.normal(size=(50, 3)) * 10
    np.testing.assert_allclose(p.to_local(p.to_world(pts)), pts, atol=1e-12)
    # the tip maps to the origin and the contact centre lies on the axis
    c1 = p.contact_center_mm(get_lead("3389"), 1)
    np.testing.assert_allclose(c1, p.tip_mm + 4.25 * p.direction)


def test_rotation_zero_points_marker_anterior():
    p = LeadPlacement([0, 0, 0], [0, 0, 1])
    np.testing.assert_allclose(p.frame[:, 0], [0, 1, 0], atol=1e-12)
    p90 = LeadPlacement([0, 0, 0], [0, 0, 1], rotation_deg=90)
    np.testing.assert_allclose(p90.frame[:, 0], [-1, 0, 0], atol=1e-12)


@pytest.mark.parametrize("bad", [[0, 0, 0], [1, 2], [np.nan, 0, 1]])
def test_bad_direction(bad):
    with pytest.raises(VtaError):
        LeadPlacement([0, 0, 0], bad)


# --- the whole catalogue -------------------------------------------------------------------


def test_catalogue_csv_is_well_formed():
    import csv
    from importlib import resources

    text = resources.files("vta").joinpath("data/leads.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines()))
    header, body = rows[0], rows[1:]
    assert len(header) == 12 and header[0] == "model" and header[-1] == "source"
    assert all(len(r) == len(header) for r in body), [r[0] for r in body if len(r) != len(header)]
    names = [r[0] for r in body]
    assert len(names) == len(set(names)) == len(lead_catalogue())
    assert all(r[-1].strip() for r in body)  # every row cites its source
    assert all(("OSS-DBS" in r[-1]) or ("Lead-DBS" in r[-1]) for r in body)


@pytest.mark.parametrize("name", list(lead_catalogue()))
def test_every_catalogue_lead_builds_contacts(name):
    lead = get_lead(name)
    contacts = lead.contacts()
    assert len(contacts) == lead.n_contacts == sum(lead.levels) > 0
    assert lead.active_span_mm > 0
    assert contacts[-1].z_end_mm - contacts[0].z_start_mm > 0
    assert [c.index for c in contacts] == list(range(lead.n_contacts))
    for c in contacts:
        assert c.z_end_mm > c.z_start_mm >= 0 and c.area_mm2 > 0
    # levels do not overlap and go up the lead
    ext = lead.level_extents_mm()
    assert all(ext[i][1] < ext[i + 1][0] for i in range(len(ext) - 1))
    assert contacts[-1].z_end_mm < lead.body_length_mm
    assert lead.source and lead.manufacturer


def test_every_alias_resolves_to_its_own_lead():
    owner = {}
    for lead in lead_catalogue().values():
        for key in (lead.name, *lead.aliases):
            assert get_lead(key).name == lead.name, key
            norm = " ".join(key.lower().replace("_", " ").replace("-", " ").split())
            assert owner.setdefault(norm, lead.name) == lead.name, f"alias {key!r} names two leads"


@pytest.mark.parametrize("ossdbs", sorted(OSSDBS_NAMES))
def test_ossdbs_names_resolve(ossdbs):
    assert get_lead(ossdbs).name == OSSDBS_NAMES[ossdbs]


def test_cartesia_geometry():
    x = get_lead("Boston Scientific Vercise Cartesia X")
    assert x.levels == (3, 3, 3, 3, 3, 1) and x.n_contacts == 16 and not x.tip_is_contact
    assert [c.is_ring for c in x.contacts()] == [False] * 15 + [True]
    np.testing.assert_allclose([e[0] for e in x.level_extents_mm()], [1.1 + 2.0 * k for k in range(6)])
    assert x.active_span_mm == pytest.approx(11.5)
    hx = get_lead("Cartesia HX")
    assert hx.levels == (3, 3, 3, 3, 1, 1, 1, 1) and hx.n_contacts == 16
    assert [c.is_ring for c in hx.contacts()] == [False] * 12 + [True] * 4
    assert hx.active_span_mm == pytest.approx(15.5)
    assert get_lead("Cartesia").name == "Boston Scientific Vercise Directed"  # DB-2202 keeps its name


def test_new_ring_leads():
    sr1202, sr1212 = get_lead("SR1202"), get_lead("SR1212")
    assert sr1202.levels == sr1212.levels == (1,) * 8
    np.testing.assert_allclose([c.center_z_mm for c in sr1202.contacts()], [2.25 + 2.0 * k for k in range(8)])
    np.testing.assert_allclose([c.center_z_mm for c in sr1212.contacts()], [2.25 + 3.0 * k for k in range(8)])
    assert get_lead("NeuroPace DL-344-10").contacts()[1].center_z_mm == pytest.approx(1.1 + 1.0 + 10.0)
    aleva = get_lead("Aleva directSTIM Directed")
    assert aleva.levels == (3, 3, 3, 3) and aleva.n_contacts == 12 and aleva.diameter_mm == pytest.approx(1.35)


# --- vta leads ---------------------------------------------------------------------------------


def _cli(capsys, *argv):
    from vta.cli import main

    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_json_lists_every_model(capsys):
    import json

    status, out, _ = _cli(capsys, "leads", "--json")
    assert status == 0
    rows = json.loads(out)
    assert [r["model"] for r in rows] == list(lead_catalogue())
    by = {r["model"]: r for r in rows}
    hx = by["Boston Scientific Vercise Cartesia HX"]
    assert hx["segments_per_level"] == "3-3-3-3-1-1-1-1" and hx["contacts"] == 16
    assert hx["active_span_mm"] == pytest.approx(15.5) and hx["segment_arc_deg"] == 90.0
    assert by["Medtronic 3389"]["segment_arc_deg"] is None
    assert "BostonScientificCartesiaHX" in hx["aliases"] and "OSS-DBS" in hx["source"]


def test_cli_table_shows_geometry(capsys):
    status, out, _ = _cli(capsys, "leads")
    assert status == 0
    header = out.splitlines()[0]
    for col in ("segments/level", "contact", "gaps", "diam", "tip", "span"):
        assert col in header
    line = next(l for l in out.splitlines() if l.startswith("SceneRay SR1242"))
    assert "1-1-1-1" in line and "2,4,4" in line and line.split()[-1] == "22"
    line = next(l for l in out.splitlines() if l.startswith("Boston Scientific Vercise Cartesia X "))
    assert "3-3-3-3-3-1" in line and line.split()[-1] == "11.5"
    for name in lead_catalogue():
        assert name in out


@pytest.mark.parametrize("model", ["Medtronic 3389", "Boston Scientific Vercise Cartesia X"])
def test_cli_picture(tmp_path, capsys, model):
    out_png = tmp_path / "pics" / "lead.png"
    status, out, _ = _cli(capsys, "leads", "--picture", model, "--out", str(out_png))
    assert status == 0 and str(out_png) in out
    data = out_png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert not [p for p in out_png.parent.iterdir() if p.name != "lead.png"]  # no temporary left behind


def test_cli_picture_errors(tmp_path, capsys):
    status, _, err = _cli(capsys, "leads", "--picture", "Medtronic 3398", "--out", str(tmp_path / "x.png"))
    assert status == 2 and "unknown lead model 'Medtronic 3398'" in err and not (tmp_path / "x.png").exists()
    status, _, err = _cli(capsys, "leads", "--picture", "3389")
    assert status == 2 and "--picture MODEL and --out FILE.png go together" in err
