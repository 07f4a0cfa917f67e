"""Tests for vta.fem.mesh: real gmsh meshes of leads in tissue domains (fast presets)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from vta.errors import VtaError
from vta.leads import LeadPlacement, get_lead, lead_catalogue
from vta.fem.mesh import (
    PRESETS,
    Domain,
    Encapsulation,
    MeshPreset,
    build_mesh,
    build_sphere_electrode_mesh,
)
from vta.fem.mesh_gmsh import _size_expression

SPHERE = Domain.sphere([0.0, 0.0, 4.25], 25.0)


@pytest.fixture(autouse=True)
def fresh_templates(tmp_path, monkeypatch):
    """Every test meshes with gmsh (its own empty template folder), so that fallbacks
    and mesh properties are exercised, not read back from an earlier run."""
    monkeypatch.setenv("VTA_CACHE_DIR", str(tmp_path / "cache"))
AXIAL = LeadPlacement([0.0, 0.0, 0.0], [0.0, 0.0, 1.0])


def facet_areas(mesh, facets: np.ndarray) -> np.ndarray:
    p = mesh.p[:, mesh.facets[:, facets]]
    return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], axis=0), axis=0)


def facet_centroid(mesh, facets: np.ndarray) -> np.ndarray:
    """Area-weighted centroid (mm) of a set of boundary facets."""
    w = facet_areas(mesh, facets)
    mid = mesh.p[:, mesh.facets[:, facets]].mean(axis=1)
    return (mid * w).sum(axis=1) / w.sum()


def tet_volumes(mesh, elements: np.ndarray | None = None) -> np.ndarray:
    t = mesh.t if elements is None else mesh.t[:, elements]
    p = mesh.p[:, t]
    a, b, c = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    return np.einsum("ij,ij->j", a, np.cross(b, c, axis=0)) / 6.0


def check_tags(lm, lead) -> None:
    mesh = lm.mesh
    names = {f"contact_{k}" for k in range(lead.n_contacts)} | {"insulation", "outer"}
    assert set(mesh.boundaries) == names
    assert set(mesh.subdomains) == {"tissue", "encapsulation"}
    assert lm.n_contacts == lead.n_contacts
    sets = [set(v.tolist()) for v in mesh.boundaries.values()]
    assert all(len(s) > 0 for s in sets)
    assert sum(len(s) for s in sets) == len(set().union(*sets))  # disjoint
    assert set().union(*sets) == set(mesh.boundary_facets().tolist())  # complete
    n_sub = sum(len(v) for v in mesh.subdomains.values())
    assert n_sub == mesh.nelements
    assert np.all(tet_volumes(mesh) > 0)  # positively oriented


def check_areas(lm, lead, rtol: float = 0.02) -> None:
    for c in lead.contacts():
        area = facet_areas(lm.mesh, lm.contact_facets(c.index)).sum()
        assert area == pytest.approx(c.area_mm2, rel=rtol), f"contact {c.index}"


@pytest.fixture(scope="module")
def mesh_3389():
    lead = get_lead("Medtronic 3389")
    return lead, build_mesh(lead, AXIAL, SPHERE, preset="fast")


@pytest.fixture(scope="module")
def mesh_directed():
    lead = get_lead("Boston Scientific Vercise Directed")
    placement = LeadPlacement([1.0, -2.0, 0.5], [0.3, 0.5, 1.0], rotation_deg=37.0)
    return lead, placement, build_mesh(lead, placement, SPHERE, preset="fast")


def test_3389_tags_and_areas(mesh_3389):
    lead, lm = mesh_3389
    check_tags(lm, lead)
    check_areas(lm, lead)
    assert len(lm.mesh.subdomains["encapsulation"]) == 0
    assert lm.preset == "fast" and lm.build_time_s > 0
    outer = facet_areas(lm.mesh, lm.mesh.boundaries["outer"]).sum()
    assert outer == pytest.approx(4 * math.pi * 25.0**2, rel=0.05)
    for c in lead.contacts():  # ring centres on the axis
        centre = facet_centroid(lm.mesh, lm.contact_facets(c.index))
        np.testing.assert_allclose(centre, AXIAL.contact_center_mm(lead, c.index), atol=0.02)


def test_3389_skfem_topology(mesh_3389):
    from skfem import MeshTet

    _, lm = mesh_3389
    fresh = MeshTet(lm.mesh.p, lm.mesh.t)
    np.testing.assert_array_equal(lm.mesh.facets, fresh.facets)
    np.testing.assert_array_equal(lm.mesh.t2f, fresh.t2f)
    assert lm.mesh.p.shape[1] == np.unique(lm.mesh.t).size  # no unused nodes
    with pytest.raises(VtaError, match="out of range"):
        lm.contact_facets(4)


def test_facet_keys_fallback_for_large_meshes(mesh_3389, monkeypatch):
    """Above 2**21 nodes the facet keys are records; same facets and indices."""
    import vta.fem.mesh_skfem as vm

    _, lm = mesh_3389
    mesh, n = lm.mesh, lm.mesh.p.shape[1]
    monkeypatch.setattr(vm, "_PACK_LIMIT", 0)
    facets, t2f, keys = vm._build_facets(mesh.t, n)
    np.testing.assert_array_equal(facets, mesh.facets)
    np.testing.assert_array_equal(t2f, mesh.t2f)
    outer = mesh.boundaries["outer"]
    np.testing.assert_array_equal(vm._facet_indices(keys, mesh.facets[:, outer][::-1], n), np.sort(outer))


def test_sr1242_tags_and_areas():
    lead = get_lead("SceneRay SR1242")
    placement = LeadPlacement([0.0, 0.0, -8.0], [0.0, 0.0, 1.0])
    lm = build_mesh(lead, placement, SPHERE, preset="fast")
    check_tags(lm, lead)
    check_areas(lm, lead)


def test_directional_tags_areas_and_centres(mesh_directed):
    lead, placement, lm = mesh_directed
    assert lead.n_contacts == 8
    check_tags(lm, lead)
    check_areas(lm, lead)
    ring = facet_areas(lm.mesh, lm.contact_facets(7)).sum()
    for k in range(1, 7):
        seg = facet_areas(lm.mesh, lm.contact_facets(k)).sum()
        assert seg / ring == pytest.approx(90.0 / 360.0, rel=0.02)
    for c in lead.contacts():
        centre = facet_centroid(lm.mesh, lm.contact_facets(c.index))
        expected = placement.contact_center_mm(lead, c.index)
        if c.is_tip:  # the centroid of the tip is pulled towards the hemisphere
            np.testing.assert_allclose(placement.to_local(centre)[:2], 0.0, atol=0.02)
            continue
        local = placement.to_local(centre)
        assert local[2] == pytest.approx(c.center_z_mm, abs=0.02)
        if c.is_ring:
            np.testing.assert_allclose(centre, expected, atol=0.02)
        else:
            angle = math.degrees(math.atan2(local[1], local[0]))
            assert (angle - c.angle_center_deg + 180) % 360 - 180 == pytest.approx(0.0, abs=1.0)
            # area centroid of a 90 degree arc lies at r sin(45)/(pi/4) from the axis
            r_centroid = c.radius_mm * math.sin(math.radians(45)) / math.radians(45)
            assert np.linalg.norm(local[:2]) == pytest.approx(r_centroid, rel=0.01)
            assert np.linalg.norm(centre - expected) < 0.1


@pytest.mark.parametrize("name", list(lead_catalogue()))
def test_every_catalogue_lead_meshes(name):
    """Coarse meshes of every catalogue lead, oblique and rotated: tags and areas."""
    lead = lead_catalogue()[name]
    placement = LeadPlacement([0.5, 0.2, -0.3], [0.2, -0.1, 1.0], rotation_deg=15.0)
    span = lead.contacts()[-1].z_end_mm
    domain = Domain.sphere(placement.to_world(np.array([0.0, 0.0, 0.5 * span])), 0.5 * span + 3.0)
    lm = build_mesh(lead, placement, domain, preset="fast", scale=2.0)
    check_tags(lm, lead)
    check_areas(lm, lead, rtol=0.08)  # 2x coarser than "fast": hemispheres facet more


def lead_volume_below(lead, height_mm: float) -> float:
    """Volume (mm^3) of the lead from its tip up to ``height_mm`` along its axis."""
    r = lead.radius_mm
    return 2.0 / 3.0 * math.pi * r**3 + math.pi * r**2 * (height_mm - r)


def test_box_volume_equals_domain_minus_lead():
    lead = get_lead("Medtronic 3389")
    box = Domain.box([0.0, 0.0, 5.0], [16.0, 16.0, 20.0])  # lead exits through z = 15
    lm = build_mesh(lead, LeadPlacement([0.0, 0.0, 0.0], [0.0, 0.0, 1.0]), box, preset="fast")
    check_tags(lm, lead)
    tissue = tet_volumes(lm.mesh).sum()
    exact_lead = lead_volume_below(lead, 15.0)
    assert tissue == pytest.approx(box.volume_mm3 - exact_lead, rel=1e-3)
    # the hole: the insulation is a polygon of ~8 facets in the "fast" preset
    assert 0.85 < (box.volume_mm3 - tissue) / exact_lead < 1.0


def test_sphere_volume_within_faceting(mesh_3389):
    lead, lm = mesh_3389
    tissue = tet_volumes(lm.mesh).sum()
    expected = SPHERE.volume_mm3 - lead_volume_below(lead, 4.25 + 25.0)
    # a 25 mm sphere with 6 mm far-field triangles loses ~2 % to faceting
    assert tissue == pytest.approx(expected, rel=0.03)
    assert tissue < expected


def test_encapsulation_volume():
    lead = get_lead("SceneRay SR1242")
    box = Domain.box([0.0, 0.0, 12.0], [16.0, 16.0, 30.0])  # lead exits through z = 27
    t = 0.25
    lm = build_mesh(lead, AXIAL, box, encapsulation=Encapsulation(t, 0.1), preset="fast")
    check_tags(lm, lead)
    check_areas(lm, lead)
    mesh = lm.mesh
    enc = tet_volumes(mesh, mesh.subdomains["encapsulation"]).sum()
    r, top = lead.radius_mm, 27.0
    shell = math.pi * ((r + t) ** 2 - r**2) * (top - r) + 2.0 / 3.0 * math.pi * ((r + t) ** 3 - r**3)
    # both shell surfaces are polygons of ~10 facets round: the shell loses ~3.5 %
    assert enc == pytest.approx(shell, rel=0.05)
    total = tet_volumes(mesh).sum()
    assert total == pytest.approx(box.volume_mm3 - lead_volume_below(lead, top), rel=1e-3)


def test_oblique_lead_in_box_along_y():
    """A lead along world -y (frame reference switch) with rotation, exiting a box side."""
    lead = get_lead("Abbott 6172")
    placement = LeadPlacement([1.0, 2.0, -1.0], [0.0, -1.0, 0.0], rotation_deg=200.0)
    box = Domain.box([0.0, 0.0, 0.0], [14.0, 18.0, 14.0])
    lm = build_mesh(lead, placement, box, preset="fast", scale=1.2)
    check_tags(lm, lead)
    check_areas(lm, lead, rtol=0.03)
    for c in lead.contacts():
        local = placement.to_local(facet_centroid(lm.mesh, lm.contact_facets(c.index)))
        assert local[2] == pytest.approx(c.center_z_mm, abs=0.03)
        if not c.is_ring:
            angle = math.degrees(math.atan2(local[1], local[0]))
            assert (angle - c.angle_center_deg + 180) % 360 - 180 == pytest.approx(0.0, abs=1.5)


def test_presets_ordered(mesh_3389):
    fast, default, fine = (PRESETS[k] for k in ("fast", "default", "fine"))
    for key in ("size_contact_mm", "size_edge_mm", "size_lead_mm", "growth", "size_far_mm"):
        assert getattr(fast, key) > getattr(default, key) > getattr(fine, key), key
    lead, lm_fast = mesh_3389
    small = Domain.sphere([0.0, 0.0, 4.25], 12.0)
    counts = [build_mesh(lead, AXIAL, small, preset=p).mesh.nelements for p in ("fast", "default")]
    assert counts[0] < counts[1]
    assert lm_fast.mesh.nelements < 40000


def test_scale_and_preset_instance():
    lead = get_lead("Medtronic 3389")
    small = Domain.sphere([0.0, 0.0, 4.25], 10.0)
    custom = MeshPreset("mine", size_contact_mm=0.3, size_edge_mm=0.15, size_lead_mm=0.6, growth=0.6,
                        size_far_mm=4.0)
    coarse = build_mesh(lead, AXIAL, small, preset=custom, scale=1.5)
    finer = build_mesh(lead, AXIAL, small, preset=custom)
    assert coarse.preset == "mine*1.5" and finer.preset == "mine"
    assert coarse.mesh.nelements < finer.mesh.nelements


def test_size_expression_values():
    """The analytic size field: edge size at a contact edge, far size far away."""
    lead = get_lead("Boston Scientific Vercise Directed")
    p = PRESETS["default"]
    expr = _size_expression(lead, p, 40.0)
    env = {"Min": np.minimum, "Max": np.maximum, "Sqrt": np.sqrt}

    def size(x, y, z):
        return float(eval(expr, env, {"x": x, "y": y, "z": z}))  # noqa: S307 (our own string)

    r = lead.radius_mm
    c3 = lead.contact(1)
    edge = math.radians(c3.angle_center_deg + 45.0)
    assert size(r * math.cos(edge), r * math.sin(edge), 2.6) == pytest.approx(p.segment_edge_mm)
    assert size(r, 0.0, lead.contact(7).z_start_mm) == pytest.approx(p.size_edge_mm)
    assert size(r, 0.0, 0.5 * (lead.contact(7).z_start_mm + lead.contact(7).z_end_mm)) == pytest.approx(
        min(p.size_contact_mm, p.size_edge_mm + p.growth * 0.75))
    assert size(0.0, 0.0, 0.0) == pytest.approx(p.size_contact_mm)  # distal end of the tip contact
    assert size(0.0, 0.0, -1.0) == pytest.approx(p.size_contact_mm + p.growth)
    assert size(30.0, 0.0, 0.0) == pytest.approx(p.size_far_mm)
    # the shaft, beyond shaft_margin_mm above the last contact
    assert size(r + 1.0, 0.0, 30.0) == pytest.approx(p.size_shaft_mm + p.growth)
    z_top = lead.contacts()[-1].z_end_mm + 0.5 * p.shaft_margin_mm
    d = math.hypot(1.0, 0.5 * p.shaft_margin_mm)  # to the last contact's proximal edge
    assert size(r + 1.0, 0.0, z_top) == pytest.approx(
        min(p.size_lead_mm + p.growth, p.size_edge_mm + p.growth * d, p.size_contact_mm + p.growth * d))


@pytest.mark.parametrize("direction", [(0, 0, 1), (0, 0, -1), (0, -1, 0), (1, 1e-9, 0), (0.3, -0.5, -0.8)])
@pytest.mark.parametrize("rotation", [0.0, 90.0, 180.0, 271.0])
def test_axis_angle_reproduces_frame(direction, rotation):
    from vta.fem.mesh_gmsh import _axis_angle

    frame = LeadPlacement([0, 0, 0], direction, rotation).frame
    angle, k = _axis_angle(frame)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rodrigues = np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx
    np.testing.assert_allclose(rodrigues, frame, atol=1e-9)


def test_input_errors():
    lead = get_lead("Medtronic 3389")
    with pytest.raises(VtaError, match="lead tip .* outside the domain"):
        build_mesh(lead, LeadPlacement([0.0, 0.0, 40.0], [0.0, 0.0, 1.0]), SPHERE)
    with pytest.raises(VtaError, match="contact 3"):
        build_mesh(lead, LeadPlacement([0.0, 0.0, 20.0], [0.0, 0.0, 1.0]), SPHERE)
    with pytest.raises(VtaError, match="valid presets: fast, default, fine"):
        build_mesh(lead, AXIAL, SPHERE, preset="ultra")
    with pytest.raises(VtaError, match="scale"):
        build_mesh(lead, AXIAL, SPHERE, scale=0.0)
    with pytest.raises(VtaError, match="thickness"):
        Encapsulation(-0.1, 0.1)
    with pytest.raises(VtaError, match="size_contact_mm"):
        MeshPreset("bad", size_contact_mm=0.0, size_edge_mm=0.1, size_lead_mm=0.1, growth=0.3, size_far_mm=3)
    with pytest.raises(VtaError, match="radius_mm"):
        Domain.sphere([0, 0, 0], -1.0)
    with pytest.raises(VtaError, match="size_mm"):
        Domain.box([0, 0, 0], [1.0, 0.0, 1.0])
    with pytest.raises(VtaError, match="shape"):
        Domain("cylinder", np.zeros(3), radius_mm=1.0)


def test_build_in_thread_and_repeatedly():
    lead = get_lead("Medtronic 3389")
    small = Domain.sphere([0.0, 0.0, 4.25], 10.0)
    out: list = []

    def work():
        out.append(build_mesh(lead, AXIAL, small, preset="fast", scale=1.5))

    th = threading.Thread(target=work)
    th.start()
    th.join()
    assert len(out) == 1
    again = build_mesh(lead, AXIAL, small, preset="fast", scale=1.5)
    assert again.mesh.nelements > 0


def test_sphere_electrode_mesh():
    a, big = 0.5, 20.0
    mesh = build_sphere_electrode_mesh(a, big, 0.08, 5.0)
    assert set(mesh.boundaries) == {"contact_0", "outer"}
    assert facet_areas(mesh, mesh.boundaries["contact_0"]).sum() == pytest.approx(4 * math.pi * a**2, rel=0.02)
    assert facet_areas(mesh, mesh.boundaries["outer"]).sum() == pytest.approx(4 * math.pi * big**2, rel=0.05)
    radii = np.linalg.norm(mesh.p[:, np.unique(mesh.facets[:, mesh.boundaries["contact_0"]])], axis=0)
    np.testing.assert_allclose(radii, a, rtol=1e-6)
    assert np.all(tet_volumes(mesh) > 0)
    with pytest.raises(VtaError, match="must exceed"):
        build_sphere_electrode_mesh(2.0, 1.0, 0.1, 1.0)


def test_mesh_does_not_depend_on_rotation_about_the_axis():
    lead = get_lead("Medtronic 3389")
    meshes = [build_mesh(lead, LeadPlacement([0, 0, 0], [0, 0, 1], rot), SPHERE, preset="fast")
              for rot in (0.0, 41.0)]
    a, b = (m.mesh for m in meshes)
    assert a.p.shape == b.p.shape and a.t.shape == b.t.shape
    rot = LeadPlacement([0, 0, 0], [0, 0, 1], 41.0).frame @ LeadPlacement([0, 0, 0], [0, 0, 1], 0.0).frame.T
    np.testing.assert_allclose(rot @ a.p, b.p, atol=1e-9)


def test_hxt_fallback(monkeypatch, caplog):
    """A failing HXT run falls back to gmsh's Delaunay 3D algorithm."""
    import vta.fem.mesh_gmsh as vm

    lead = get_lead("Medtronic 3389")
    small = Domain.sphere([0.0, 0.0, 4.25], 10.0)
    original = vm._generate

    def hxt_fails(gmsh):
        if gmsh.option.getNumber("Mesh.Algorithm3D") == vm._ALGORITHMS_3D["hxt"]:
            raise VtaError("meshing failed in gmsh: HXT 3D mesh failed")
        original(gmsh)

    monkeypatch.setattr(vm, "_generate", hxt_fails)
    lm = build_mesh(lead, AXIAL, small, preset="fast")
    check_tags(lm, lead)
    assert "Delaunay" in caplog.text


def test_encapsulation_keeps_shaft_facets_inside_the_layer():
    """With a thin encapsulation the shaft is not coarsened beyond size_lead_mm (the
    faceted shell and lead surfaces would cross)."""
    lead = get_lead("Medtronic 3389")
    lm = build_mesh(lead, AXIAL, Domain.sphere([0.0, 0.0, 4.25], 12.0),
                    encapsulation=Encapsulation(0.1, 0.05), preset="fast")
    check_tags(lm, lead)
    assert len(lm.mesh.subdomains["encapsulation"]) > 0


def test_segment_edges_refined_only_on_directional_leads():
    """segment_edge_mm refines the edges of segments (axial edges and the circles at the
    ends of segmented levels), not ring or tip edges, and nothing on ring leads."""
    from vta.fem.mesh_gmsh import _contact_distances

    lead = get_lead("Boston Scientific Vercise Directed")
    p = PRESETS["default"]
    assert p.segment_edge_mm < p.size_edge_mm
    env = {"Min": np.minimum, "Max": np.maximum, "Sqrt": np.sqrt}
    seg_edges = _contact_distances(lead)[2]
    # as gmsh meshes it: the distance to the segment edges is a field ("F7"); here the
    # analytic distance stands in for it
    expr = _size_expression(lead, p, 40.0, segment_distance="F7")
    assert "F7" in expr and len(expr) < 0.3 * len(_size_expression(lead, p, 40.0))

    def size(x, y, z):
        coords = {"x": x, "y": y, "z": z}
        coords["F7"] = min(float(eval(d, env, coords)) for d in seg_edges)  # noqa: S307 (our own string)
        return float(eval(expr, env, coords))  # noqa: S307 (our own string)

    r = lead.radius_mm
    seg = lead.contact(1)
    edge = math.radians(seg.angle_center_deg + 0.5 * seg.arc_deg)
    z_mid = 0.5 * (seg.z_start_mm + seg.z_end_mm)
    assert size(r * math.cos(edge), r * math.sin(edge), z_mid) == pytest.approx(p.segment_edge_mm)
    assert size(r, 0.0, seg.z_start_mm) == pytest.approx(p.segment_edge_mm)  # circumferential edge
    assert size(r, 0.0, lead.contact(7).z_start_mm) == pytest.approx(p.size_edge_mm)  # ring edge
    assert size(r + 0.1, 0.0, seg.z_end_mm) == pytest.approx(p.segment_edge_mm + 0.1 * p.segment_edge_growth)
    for name in ("Medtronic 3389", "Medtronic 3387"):
        assert _contact_distances(get_lead(name))[2] == []
        assert _size_expression(get_lead(name), p, 40.0, segment_distance="F7") == _size_expression(
            get_lead(name), p, 40.0)
    assert p.scaled(0.5).segment_edge_mm == pytest.approx(0.5 * p.segment_edge_mm)


def test_directional_mesh_is_fine_at_segment_edges(mesh_directed):
    """The fast directional mesh has nodes within ~segment_edge_mm of a segment's axial edge."""
    lead, placement, lm = mesh_directed
    p = PRESETS["fast"]
    mesh = lm.mesh
    facets = lm.contact_facets(1)
    # edge lengths of the contact's facets: the smallest near segment_edge_mm
    f = mesh.facets[:, facets]
    lengths = np.concatenate([np.linalg.norm(mesh.p[:, f[i]] - mesh.p[:, f[j]], axis=0)
                              for i, j in ((0, 1), (1, 2), (0, 2))])
    assert lengths.min() < 2.5 * p.segment_edge_mm
    assert p.segment_edge_mm < p.size_edge_mm and lead.n_contacts == 8
    # refined along the whole axial edge (gmsh's Distance field samples it densely),
    # not only where it meets the arcs: nodes close to the edge's middle
    seg = lead.contact(1)
    nodes = placement.to_local(mesh.p[:, np.unique(f)].T)
    ang = math.radians(seg.angle_center_deg + 0.5 * seg.arc_deg)
    r = lead.radius_mm
    d = np.hypot(nodes[:, 0] - r * math.cos(ang), nodes[:, 1] - r * math.sin(ang))
    mid = np.abs(nodes[:, 2] - 0.5 * (seg.z_start_mm + seg.z_end_mm)) < 0.3
    assert np.count_nonzero(mid & (d < 2 * p.segment_edge_mm)) >= 3


def test_template_is_the_first_mesh_moved_rigidly(tmp_path, caplog):
    """A second placement with the same relative domain reads the lead-local template:
    the same elements and tags, nodes moved by the new placement; no gmsh run; and the
    same mesh as a fresh build for that placement."""
    import logging

    from vta.fem.mesh_templates import template_dir

    lead = get_lead("Boston Scientific Vercise Directed")
    a_pl = LeadPlacement([1.0, -2.0, 0.5], [0.3, 0.5, 1.0], rotation_deg=37.0)
    b_pl = LeadPlacement([-12.0, 8.0, 3.0], [0.0, -0.2, 1.0], rotation_deg=-110.0)
    domain_of = lambda pl: Domain.sphere(pl.to_world(np.array([0.0, 0.0, 4.0])), 15.0)  # noqa: E731
    a = build_mesh(lead, a_pl, domain_of(a_pl), preset="fast")
    assert not a.from_template and len(list(template_dir().glob("*.npz"))) == 1
    with caplog.at_level(logging.INFO, logger="vta.fem.mesh_templates"):
        b = build_mesh(lead, b_pl, domain_of(b_pl), preset="fast")
    assert b.from_template and "mesh template loaded" in caplog.text
    np.testing.assert_array_equal(a.mesh.t, b.mesh.t)
    for name in a.mesh.boundaries:
        np.testing.assert_array_equal(a.mesh.boundaries[name], b.mesh.boundaries[name])
    for name in a.mesh.subdomains:
        np.testing.assert_array_equal(a.mesh.subdomains[name], b.mesh.subdomains[name])
    moved = b_pl.to_world(a_pl.to_local(a.mesh.p.T)).T
    np.testing.assert_allclose(b.mesh.p, moved, atol=1e-9)
    check_tags(b, lead)
    check_areas(b, lead, rtol=0.05)
    # the template is built from the rounded relative geometry, not from the placement
    # that needed it first: meshing b's placement afresh gives the very same mesh
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTA_CACHE_DIR", "off")
        fresh = build_mesh(lead, b_pl, domain_of(b_pl), preset="fast")
    assert not fresh.from_template
    np.testing.assert_array_equal(fresh.mesh.t, b.mesh.t)
    np.testing.assert_array_equal(fresh.mesh.p, b.mesh.p)
    # another preset, another relative domain or another lead is another template
    c = build_mesh(lead, b_pl, Domain.sphere(b_pl.to_world(np.array([0.0, 0.0, 5.0])), 15.0), preset="fast")
    assert not c.from_template and len(list(template_dir().glob("*.npz"))) == 2


def test_template_off_and_unreadable(monkeypatch, caplog):
    """``VTA_CACHE_DIR=off`` meshes every time; a corrupt template is deleted and rebuilt."""
    from vta.fem.mesh_templates import template_dir

    lead = get_lead("Medtronic 3389")
    small = Domain.sphere([0.0, 0.0, 4.25], 10.0)
    first = build_mesh(lead, AXIAL, small, preset="fast")
    (path,) = template_dir().glob("*.npz")
    path.write_bytes(b"not a template")
    again = build_mesh(lead, AXIAL, small, preset="fast")
    assert not again.from_template and "unreadable" in caplog.text
    assert build_mesh(lead, AXIAL, small, preset="fast").from_template
    assert again.n_nodes == first.n_nodes
    monkeypatch.setenv("VTA_CACHE_DIR", "off")
    assert template_dir() is None
    assert not build_mesh(lead, AXIAL, small, preset="fast").from_template


def test_box_domain_template_follows_the_lead_frame():
    """A box is axis-aligned in world space: a lead turned inside it sees another domain
    (another template); the same box relative to a translated lead is the same one."""
    lead = get_lead("Medtronic 3389")
    box = lambda tip: Domain.box(np.asarray(tip) + [0.0, 0.0, 5.0], [20.0, 20.0, 24.0])  # noqa: E731
    build_mesh(lead, LeadPlacement([0, 0, 0], [0, 0, 1]), box([0, 0, 0]), preset="fast")
    assert build_mesh(lead, LeadPlacement([3, 4, 5], [0, 0, 1]), box([3, 4, 5]), preset="fast").from_template
    turned = build_mesh(lead, LeadPlacement([0, 0, 0], [0.1, 0, 1]), box([0, 0, 0]), preset="fast")
    assert not turned.from_template
