"""Tests for vta.fem.mesh_edge_layers: geometric layers cut towards the contact edges of
real gmsh lead meshes (conformity, labels, volumes) and what they buy in accuracy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vta.fem.mesh import PRESETS, Domain, Encapsulation, build_mesh
from vta.fem.mesh_domain import SEGMENTED_PRESETS
from vta.fem.mesh_edge_layers import contact_edge_skeleton, refine_towards_contact_edges
from vta.leads import LeadPlacement, get_lead

AXIAL = LeadPlacement([0.0, 0.0, 0.0], [0.0, 0.0, 1.0])


@pytest.fixture(autouse=True)
def fresh_templates(tmp_path, monkeypatch):
    monkeypatch.setenv("VTA_CACHE_DIR", str(tmp_path / "cache"))


def tet_volumes(mesh) -> np.ndarray:
    p = mesh.p[:, mesh.t]
    a, b, c = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    return np.einsum("ij,ij->j", a, np.cross(b, c, axis=0)) / 6.0


def boundary_areas(mesh) -> dict[str, float]:
    out = {}
    for name, idx in mesh.boundaries.items():
        p = mesh.p[:, mesh.facets[:, idx]]
        out[name] = float(0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], axis=0), axis=0).sum())
    return out


def unlayered(lead, placement, domain, preset="fast", encapsulation=None):
    presets = SEGMENTED_PRESETS if not lead.is_axisymmetric else PRESETS
    return build_mesh(lead, placement, domain, encapsulation=encapsulation,
                      preset=replace(presets[preset], edge_layers=0)).mesh


@pytest.mark.parametrize("model, encapsulated", [("Boston Scientific Vercise Directed", False),
                                                  ("Medtronic 3389", True)])
def test_layers_are_conforming_and_keep_labels_volumes_and_areas(model, encapsulated):
    """Two layers on a directional lead (oblique, turned) and on an encapsulated ring
    lead: every face shared by at most two tets and every boundary face by one, all tets
    positive, the volume of each subdomain and the area of each labelled boundary kept
    exactly, the skeleton's vertices still vertices."""
    lead = get_lead(model)
    placement = LeadPlacement([1.0, -2.0, 0.5], [0.3, 0.5, 1.0], rotation_deg=37.0)
    domain = Domain.sphere(placement.to_world(np.array([0.0, 0.0, 4.0])), 12.0)
    enc = Encapsulation(0.1, 0.05) if encapsulated else None
    mesh = unlayered(lead, placement, domain, encapsulation=enc)
    vertices, edges = contact_edge_skeleton(mesh)
    assert len(vertices) > 100 and len(edges) >= len(vertices) - 2 * lead.n_contacts
    refined = refine_towards_contact_edges(mesh, levels=2, sigma=0.25)
    assert refined.t.shape[1] > 1.2 * mesh.t.shape[1]
    vol = tet_volumes(refined)
    assert vol.min() > 0
    counts = np.bincount(refined.t2f.ravel())
    assert counts.max() == 2
    assert set(np.flatnonzero(counts == 1)) == set().union(*(set(v.tolist()) for v in refined.boundaries.values()))
    for name in mesh.subdomains:
        before = tet_volumes(mesh)[mesh.subdomains[name]].sum()
        assert vol[refined.subdomains[name]].sum() == pytest.approx(before, rel=1e-12, abs=1e-12)
    a0, a1 = boundary_areas(mesh), boundary_areas(refined)
    assert a1 == pytest.approx(a0, rel=1e-10)
    np.testing.assert_array_equal(refined.p[:, vertices], mesh.p[:, vertices])
    # the thinnest elements lie at the contact edges: sigma^2 of the edge size there
    assert vol.min() < 0.25 * tet_volumes(mesh).min()


def test_no_contact_edges_no_change_and_bad_ratio():
    lead = get_lead("Medtronic 3389")
    mesh = unlayered(lead, AXIAL, Domain.sphere([0.0, 0.0, 4.25], 10.0))
    assert refine_towards_contact_edges(mesh, levels=0) is mesh
    from skfem import MeshTet

    bare = MeshTet(mesh.p, mesh.t).with_boundaries({"outer": mesh.boundaries["outer"]})
    assert refine_towards_contact_edges(bare, levels=2) is bare
    with pytest.raises(ValueError, match="sigma"):
        refine_towards_contact_edges(mesh, levels=1, sigma=0.7)


def test_presets_carry_layers_and_reject_bad_values():
    from vta.errors import VtaError

    assert all(p.edge_layers >= 1 for p in (*PRESETS.values(), *SEGMENTED_PRESETS.values()))
    with pytest.raises(VtaError, match="edge_layers"):
        replace(PRESETS["fast"], edge_layers=7)
    with pytest.raises(VtaError, match="edge_layer_ratio"):
        replace(PRESETS["fast"], edge_layer_ratio=0.0)


def test_layers_cut_the_ring_lead_error_on_the_3d_path(monkeypatch):
    """3389, contact 1 at 1 mA, others floating, 0.2 S/m, grounded 25 mm sphere: the
    3D impedance against the converged axisymmetric value (540.58 ohm, docs/validation.md)
    on the "fast" mesh, without and with its two layers (measured -1.7 % and -0.17 %)."""
    import vta

    monkeypatch.setenv("VTA_BASIS_CACHE", "off")  # the two runs differ only in the mesh
    cfg = {"lead": {"model": "Medtronic 3389", "tip_mm": [0.0, 0.0, 0.0], "entry_mm": [0.0, 0.0, 50.0]},
           "domain": {"shape": "sphere", "radius_mm": 25.0, "center_mm": [0.0, 0.0, 4.25],
                      "outer_boundary": "ground"},
           "tissue": {"conductivity_S_per_m": 0.2},
           "stimulation": {"mode": "current", "contacts": {"1": -1.0}, "pulse_width_us": 60},
           "vta": {"threshold_V_per_mm": 0.2}, "output": {"nifti": False},
           "solver": {"method": "3d", "preset": "fast"}}
    z = vta.Scene.from_dict(cfg, method="3d").simulate().state.impedance_ohm
    assert z == pytest.approx(540.58, rel=0.004)  # measured -0.17 %
    import vta.scene as scene_mod

    original = scene_mod.build_mesh
    try:
        scene_mod.build_mesh = lambda *a, **k: original(*a, **{**k, "preset": replace(PRESETS["fast"], edge_layers=0)})
        z0 = vta.Scene.from_dict(cfg, method="3d").simulate().state.impedance_ohm
    finally:
        scene_mod.build_mesh = original
    assert z0 < 540.58 * (1 - 0.01)  # measured -1.7 %
    assert abs(z / 540.58 - 1) < 0.25 * abs(z0 / 540.58 - 1)
