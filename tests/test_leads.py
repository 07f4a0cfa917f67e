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
    "Abbott 6172", "Abbott 6173", "Abbott ActiveTip 6146", "Abbott ActiveTip 6142", "PINS L301",
    "PINS L302", "PINS L303", "SceneRay SR1200", "SceneRay SR1210", "SceneRay SR1211", "SceneRay SR1242",
]


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
