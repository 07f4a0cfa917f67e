"""Tests of the axisymmetric (r, z) P2 field basis (vta.fem.axisym)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from vta.fem.axisym import (
    PRESETS,
    _assemble,
    _clip_integral,
    _make_space,
    build_axisymmetric_basis,
    concentric_spheres_basis,
)
from vta.errors import VtaError
from vta.leads import LeadPlacement, get_lead

log = logging.getLogger(__name__)

SIGMA = 0.2  # S/m
CENTER = (0.0, 0.0, 4.25)
RADIUS = 25.0
# converged reference of the 3389 case (contact 1, -1 / -3 mA, others floating), from
# preset "fine" with size_scale 1 .. 0.35 (270k DOFs) and Richardson extrapolation
Z_REF = 540.58       # ohm, +- 0.01
VTA1_REF = 9.716     # mm^3 at 0.2 V/mm, -1 mA, +- 0.001
VTA3_REF = 50.05     # mm^3 at 0.2 V/mm, -3 mA, +- 0.01


def _current_mode_potentials(G: np.ndarray, contact: int, current_A: float) -> np.ndarray:
    """Contact potentials (V) for one current-controlled contact, the others floating,
    outer boundary grounded: V = G^-1 I."""
    current = np.zeros(G.shape[0])
    current[contact] = current_A
    return np.linalg.solve(G, current)


@pytest.fixture(scope="module")
def lead3389():
    return get_lead("Medtronic 3389")


@pytest.fixture(scope="module")
def basis3389(lead3389):
    placement = LeadPlacement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    return build_axisymmetric_basis(lead3389, placement, CENTER, RADIUS, SIGMA)


# ---- (a) spherical electrode, analytic solution --------------------------------------


@pytest.fixture(scope="module")
def spheres():
    a, R = 0.5, 25.0
    return a, R, concentric_spheres_basis(a, R, SIGMA, preset="fine", size_scale=0.5)


def _sphere_points(n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    rho = rng.uniform(1.0, 5.0, n)
    return d * rho[:, None], d, rho


def test_sphere_conductance(spheres):
    a, R, basis = spheres
    g_exact = 4.0 * math.pi * SIGMA * 1e-3 * a * R / (R - a)
    assert basis.conductance_S.shape == (1, 1)
    assert basis.conductance_S[0, 0] == pytest.approx(g_exact, rel=2e-3)


def test_sphere_potential_and_field(spheres):
    a, R, basis = spheres
    pts, d, rho = _sphere_points()
    u = basis.potential_at(pts, [1.0])
    u_exact = (a / rho) * (R - rho) / (R - a)
    np.testing.assert_allclose(u, u_exact, rtol=5e-3)
    E = basis.field_at(pts, [1.0])
    e_exact = a * R / (R - a) / rho**2
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), e_exact, rtol=5e-3)
    # radial and pointing outward for a positive electrode
    np.testing.assert_allclose(np.einsum("nd,nd->n", E, d), e_exact, rtol=5e-3)


def test_sphere_vta_matches_analytic(spheres):
    """|E| >= thr inside the sphere rho_t = sqrt(c/thr): volume 4/3 pi (rho_t^3 - a^3)."""
    a, R, basis = spheres
    c = a * R / (R - a)
    thr = c / 3.0**2  # rho_t = 3 mm
    exact = 4.0 / 3.0 * math.pi * (3.0**3 - a**3)
    assert basis.vta_volume_mm3([1.0], thr) == pytest.approx(exact, rel=3e-3)


# ---- (b) mesh convergence for the 3389 -------------------------------------------------


def test_convergence_3389(lead3389):
    placement = LeadPlacement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    rows = []
    for scale in (2.0, 1.0, 0.5):
        b = build_axisymmetric_basis(lead3389, placement, CENTER, RADIUS, SIGMA, size_scale=scale)
        V = _current_mode_potentials(b.conductance_S, 1, -1e-3)
        rows.append((scale, b.mesh_info["dofs"], V[1] / -1e-3,
                     b.vta_volume_mm3(V, 0.2), b.vta_volume_mm3(3 * V, 0.2)))
        log.info("scale %.2f dofs %d Z %.2f ohm VTA(1 mA) %.4f VTA(3 mA) %.4f mm^3", *rows[-1])
    z = np.array([r[2] for r in rows])
    v1 = np.array([r[3] for r in rows])
    v3 = np.array([r[4] for r in rows])
    # impedance rises monotonically towards the converged value, differences shrink
    assert z[0] < z[1] < z[2]
    assert abs(z[2] - z[1]) < abs(z[1] - z[0])
    # converged to the reference (see the module report) within the preset targets
    assert z[1] == pytest.approx(Z_REF, rel=0.01)
    assert v1[1] == pytest.approx(VTA1_REF, rel=0.005)
    assert v3[1] == pytest.approx(VTA3_REF, rel=0.005)
    assert np.all(np.abs(np.diff(v1)) / v1[-1] < 0.01)


def test_default_3389_against_reference(basis3389):
    V = _current_mode_potentials(basis3389.conductance_S, 1, -1e-3)
    # the preset's targets: impedance within 1 %, VTA within 0.5 % (measured: 0.03 / 0.1 %)
    assert V[1] / -1e-3 == pytest.approx(Z_REF, rel=0.01)
    assert basis3389.vta_volume_mm3(V, 0.2) == pytest.approx(VTA1_REF, rel=0.005)
    assert basis3389.vta_volume_mm3(3 * V, 0.2) == pytest.approx(VTA3_REF, rel=0.005)
    info = basis3389.mesh_info
    assert info["kind"] == "axisymmetric" and info["order"] == 2 and info["preset"] == "default"
    assert set(basis3389.timings) == {"mesh", "assemble", "solve"}


# ---- (c) conductance matrix -----------------------------------------------------------


def test_conductance_spd(basis3389):
    G = basis3389.conductance_S
    assert G.shape == (4, 4)
    np.testing.assert_allclose(G, G.T, rtol=0, atol=1e-9 * np.abs(G).max())
    assert np.all(np.linalg.eigvalsh(G) > 0)
    # grounded outer: every row sum is the current to ground, positive
    assert np.all(G.sum(axis=1) > 0)
    # off-diagonal coupling is negative (current flows into a 0 V neighbour)
    assert np.all(G[~np.eye(4, dtype=bool)] < 0)


def test_insulating_outer_rows_sum_to_zero(lead3389):
    placement = LeadPlacement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    b = build_axisymmetric_basis(lead3389, placement, CENTER, RADIUS, SIGMA, outer="insulating",
                                 preset="fast")
    assert not b.outer_grounded
    G = b.conductance_S
    np.testing.assert_allclose(G.sum(axis=1), 0.0, atol=1e-9 * np.abs(G).max())


# ---- (d) superposition ----------------------------------------------------------------


def test_superposition_equals_direct_solve(basis3389):
    w = np.array([0.3, -1.2, 0.0, 0.7])
    np.testing.assert_allclose(basis3389.dof_values(w), basis3389.solve_contact_potentials(w),
                               atol=1e-10)


def test_world_frame_and_nan_outside(lead3389):
    """A tilted, shifted lead gives the same field as the canonical one, rotated."""
    direction = np.array([0.3, -0.5, 0.8])
    direction /= np.linalg.norm(direction)
    tip = np.array([10.0, -3.0, 2.0])
    placement = LeadPlacement(tip, direction, rotation_deg=30.0)
    center = tip + 4.25 * direction
    b = build_axisymmetric_basis(lead3389, placement, center, RADIUS, SIGMA, preset="fast")
    ref = build_axisymmetric_basis(lead3389, LeadPlacement((0, 0, 0), (0, 0, 1)), CENTER, RADIUS,
                                   SIGMA, preset="fast")
    w = [0.0, -1.0, 0.0, 0.0]
    local = np.array([[1.5, 0.7, 4.0], [-2.0, 0.0, 1.0], [0.0, 3.0, 9.0], [0.4, 0.0, -1.0]])
    world = placement.to_world(local)
    E_world = b.field_at(world, w)
    E_ref = ref.field_at(local, w)
    np.testing.assert_allclose(E_world @ placement.frame, E_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.potential_at(world, w), ref.potential_at(local, w), rtol=1e-12)
    # inside the lead body and outside the sphere: NaN
    outside = placement.to_world(np.array([[0.1, 0.0, 5.0], [0.0, 0.0, 40.0], [30.0, 0.0, 4.0]]))
    assert np.all(np.isnan(b.potential_at(outside, w)))
    assert np.all(np.isnan(b.field_at(outside, w)))


# ---- (e) tip contact, encapsulation, cylinder, P1 -------------------------------------


def test_active_tip_lead():
    lead = get_lead("Abbott ActiveTip 6146")
    placement = LeadPlacement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    b = build_axisymmetric_basis(lead, placement, (0.0, 0.0, 5.0), RADIUS, SIGMA)
    G = b.conductance_S
    assert G.shape == (4, 4)
    assert np.all(np.linalg.eigvalsh(G) > 0)
    # the tip contact (largest area) has the largest self-conductance
    assert np.argmax(np.diag(G)) == 0
    V = _current_mode_potentials(G, 0, -1e-3)
    z_tip = V[0] / -1e-3
    assert 300.0 < z_tip < 700.0
    assert b.vta_volume_mm3(V, 0.2) > 5.0
    # E = -grad u just below the tip points up, towards the cathodic tip (+z)
    E = b.field_at(np.array([[0.0, 0.0, -0.5]]), V)
    assert E[0, 2] > 0 and abs(E[0, 0]) < 1e-12 and abs(E[0, 1]) < 1e-12


def test_encapsulation_raises_impedance(lead3389):
    placement = LeadPlacement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    kw = dict(preset="fast")
    plain = build_axisymmetric_basis(lead3389, placement, CENTER, RADIUS, SIGMA, **kw)
    enc = build_axisymmetric_basis(lead3389, placement, CENTER, RADIUS, SIGMA,
                                   encapsulation_thickness_mm=0.5,
                                   encapsulation_sigma_S_per_m=0.05, **kw)
    same = build_axisymmetric_basis(lead3389, placement, CENTER, RADIUS, SIGMA,
                                    encapsulation_thickness_mm=0.5,
                                    encapsulation_sigma_S_per_m=SIGMA, **kw)
    z = [np.linalg.inv(b.conductance_S)[1, 1] for b in (plain, enc, same)]  # ohm
    assert z[1] > z[0] * 1.1  # a poorly conducting scar raises the impedance
    assert z[2] == pytest.approx(z[0], rel=5e-3)


def test_cylinder_domain(lead3389):
    placement = LeadPlacement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    sph = build_axisymmetric_basis(lead3389, placement, CENTER, 40.0, SIGMA, preset="fast")
    cyl = build_axisymmetric_basis(lead3389, placement, CENTER, 40.0, SIGMA, preset="fast",
                                   domain_shape="cylinder", domain_length_mm=80.0)
    # far boundaries barely matter for the contact's own conductance
    assert cyl.conductance_S[1, 1] == pytest.approx(sph.conductance_S[1, 1], rel=0.01)


def test_p1_is_less_accurate_than_p2(spheres):
    a, R, _ = spheres
    g_exact = 4.0 * math.pi * SIGMA * 1e-3 * a * R / (R - a)
    errs = []
    for order in (1, 2):
        b = concentric_spheres_basis(a, R, SIGMA, preset="default", order=order)
        assert b.mesh_info["order"] == order
        errs.append(abs(b.conductance_S[0, 0] / g_exact - 1))
    assert errs[1] < errs[0]


# ---- building blocks -------------------------------------------------------------------


def test_assembly_matches_scikit_fem():
    skfem = pytest.importorskip("skfem")
    from skfem.helpers import dot, grad

    rng = np.random.default_rng(0)
    m = skfem.MeshTri.init_symmetric().refined(2).translated((1.5, 0.0))
    points, tris = m.p.T.copy(), m.t.T.copy()
    sigma = rng.uniform(0.5, 2.0, tris.shape[0])

    @skfem.BilinearForm
    def form(u, v, w):
        return w.s * dot(grad(u), grad(v)) * 2.0 * np.pi * w.x[0]

    for order, elem in ((1, skfem.ElementTriP1()), (2, skfem.ElementTriP2())):
        space = _make_space(points, tris, order)
        K = _assemble(space, tris, sigma)
        basis = skfem.Basis(m, elem, intorder=4)
        s = skfem.Basis(m, skfem.ElementTriP0(), intorder=4).interpolate(sigma)
        K2 = form.assemble(basis, s=s)
        # match DOFs by coordinates
        from scipy.spatial import cKDTree

        dist, idx = cKDTree(basis.doflocs.T).query(space.dof_points)
        assert dist.max() < 1e-12
        assert abs(K - K2[idx][:, idx]).max() < 1e-12 * abs(K).max()


def test_clip_integral_exact():
    """Integral of r over {f >= 0} for a linear f on one triangle, vs. fine sampling."""
    tri = np.array([[0.5, 0.0], [2.0, 0.3], [1.0, 1.5]])
    f_vert = np.array([1.0, -0.5, -2.0])
    e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
    area = 0.5 * abs(e1[0] * e2[1] - e1[1] * e2[0])
    got = _clip_integral(f_vert[None], tri[None, :, 0], np.array([area]))[0]
    # both orientations of the cut (one or two vertices above)
    got2 = _clip_integral(-f_vert[None], tri[None, :, 0], np.array([area]))[0]
    n = 1000
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = i + j < n
    l1, l2 = (i[keep] + 1 / 3) / n, (j[keep] + 1 / 3) / n
    lam = np.column_stack([1 - l1 - l2, l1, l2])
    r = lam @ tri[:, 0]
    f = lam @ f_vert
    w = area / keep.sum()
    assert got == pytest.approx(np.sum(r[f >= 0]) * w, rel=2e-3)
    assert got + got2 == pytest.approx(area * tri[:, 0].mean(), rel=1e-12)


def test_vta_integration_level_converges(basis3389):
    V = _current_mode_potentials(basis3389.conductance_S, 1, -3e-3)
    ref = basis3389.vta_volume_mm3(V, 0.2, level=5)
    default = basis3389.vta_volume_mm3(V, 0.2)
    assert default == pytest.approx(ref, rel=1e-3)


# ---- errors ---------------------------------------------------------------------------


def test_rejects_directional_lead():
    lead = get_lead("Boston Scientific Vercise Directed")
    with pytest.raises(VtaError, match="segmented"):
        build_axisymmetric_basis(lead, LeadPlacement((0, 0, 0), (0, 0, 1)), CENTER, RADIUS, SIGMA)


def test_rejects_off_axis_centre(lead3389):
    with pytest.raises(VtaError, match="off the axis"):
        build_axisymmetric_basis(lead3389, LeadPlacement((0, 0, 0), (0, 0, 1)), (0.01, 0.0, 4.25),
                                 RADIUS, SIGMA)


def test_rejects_contacts_outside_domain(lead3389):
    with pytest.raises(VtaError, match="not inside"):
        build_axisymmetric_basis(lead3389, LeadPlacement((0, 0, 0), (0, 0, 1)), (0.0, 0.0, 0.0),
                                 5.0, SIGMA)
    with pytest.raises(VtaError, match="not inside"):
        build_axisymmetric_basis(lead3389, LeadPlacement((0, 0, 0), (0, 0, 1)), (0.0, 0.0, 10.0),
                                 9.0, SIGMA)


def test_rejects_bad_parameters(lead3389):
    pl = LeadPlacement((0, 0, 0), (0, 0, 1))
    with pytest.raises(VtaError, match="preset"):
        build_axisymmetric_basis(lead3389, pl, CENTER, RADIUS, SIGMA, preset="ultra")
    with pytest.raises(VtaError, match="outer"):
        build_axisymmetric_basis(lead3389, pl, CENTER, RADIUS, SIGMA, outer="floating")
    with pytest.raises(VtaError, match="encapsulation_sigma"):
        build_axisymmetric_basis(lead3389, pl, CENTER, RADIUS, SIGMA, encapsulation_thickness_mm=0.2)
    assert set(PRESETS) == {"fast", "default", "fine"}
