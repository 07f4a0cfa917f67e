"""Point location on tetrahedral and triangular meshes (vta.fem.locate)."""

from __future__ import annotations

import subprocess
import sys
import time

import gmsh
import numpy as np
import pytest
import skfem

import vta.fem.field as field
import vta.fem.locate as locate
from vta.fem.locate import SimplexLocator, TetLocator, TriLocator


def _box_minus_cylinder(h: float = 0.6):
    """gmsh tet mesh of the box [-5,5]^3 minus a cylinder of radius 0.65 along z."""
    gmsh.initialize(["-noenv"])
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        occ = gmsh.model.occ
        box = occ.addBox(-5, -5, -5, 10, 10, 10)
        cyl = occ.addCylinder(0, 0, -6, 0, 0, 12, 0.65)
        occ.cut([(3, box)], [(3, cyl)])
        occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.option.setNumber("Mesh.MeshSizeMin", h / 3)
        gmsh.model.mesh.generate(3)
        tags, xyz, _ = gmsh.model.mesh.getNodes()
        idx = np.full(int(tags.max()) + 1, -1)
        idx[tags.astype(int)] = np.arange(len(tags))
        _, _, en = gmsh.model.mesh.getElements(3)
        tets = idx[en[0].astype(int)].reshape(-1, 4)
    finally:
        gmsh.finalize()
    return xyz.reshape(-1, 3), tets


@pytest.fixture(scope="module")
def box_mesh():
    return _box_minus_cylinder()


def _check_found(points, cells, q, elem, bary, tol=1e-8):
    ok = elem >= 0
    assert np.all(bary[ok] >= -tol)
    np.testing.assert_allclose(bary[ok].sum(axis=1), 1.0, atol=1e-12)
    rec = np.einsum("qk,qkd->qd", bary[ok], points[cells[elem[ok]]])
    np.testing.assert_allclose(rec, q[ok], atol=1e-10)
    assert np.all(np.isnan(bary[~ok]))


def test_tet_random_points(box_mesh):
    p, t = box_mesh
    loc = TetLocator(p, t)
    rng = np.random.default_rng(0)
    q = rng.uniform(-6, 6, (200_000, 3))
    elem, bary = loc.locate(q)
    _check_found(p, t, q, elem, bary)
    r = np.hypot(q[:, 0], q[:, 1])
    in_box = np.all(np.abs(q) < 5, axis=1)
    # clearly inside tissue -> found; clearly outside (box or faceted hole) -> -1
    inside = in_box & (r > 0.66) & np.all(np.abs(q) < 4.999, axis=1)
    assert np.all(elem[inside] >= 0)
    assert np.all(elem[~in_box] == -1)
    assert np.all(elem[r < 0.5] == -1)  # inside the (faceted) lead hole
    # unsorted processing gives the same elements
    e2, _ = loc.locate(q, sort_queries=False)
    np.testing.assert_array_equal(e2, elem)


def test_tet_grid_and_vertices(box_mesh):
    p, t = box_mesh
    loc = TetLocator(p, t)
    x = np.linspace(-4.9, 4.9, 60)
    g = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1).reshape(-1, 3)
    elem, bary = loc.locate(g, sort_queries=False)
    _check_found(p, t, g, elem, bary)
    r = np.hypot(g[:, 0], g[:, 1])
    assert np.all(elem[r > 0.66] >= 0)
    # mesh vertices lie on element faces/corners: all found
    e, b = loc.locate(p)
    assert np.all(e >= 0)
    _check_found(p, t, p, e, b)
    # NaN queries are outside
    e, b = loc.locate(np.array([[np.nan, 0.0, 0.0]]))
    assert e[0] == -1


def test_tet_matches_brute_force():
    m = skfem.MeshTet.init_tensor(*(np.linspace(0, 1, 6),) * 3)
    p, t = m.p.T, m.t.T
    rng = np.random.default_rng(3)
    q = rng.uniform(-0.1, 1.1, (2000, 3))
    elem, bary = TetLocator(p, t).locate(q)
    # brute force barycentric test against all elements
    T = p[t]
    J = np.transpose(T[:, 1:] - T[:, :1], (0, 2, 1))
    Jinv = np.linalg.inv(J)
    lam = np.einsum("mij,qmj->qmi", Jinv, q[:, None, :] - T[None, :, 0])
    lam = np.concatenate([1 - lam.sum(-1, keepdims=True), lam], axis=-1)
    inside_any = (lam.min(-1) >= -1e-9).any(axis=1)
    np.testing.assert_array_equal(elem >= 0, inside_any)
    ok = elem >= 0
    assert np.all(lam[np.flatnonzero(ok), elem[ok]].min(-1) >= -1e-9)


def test_tri_locator():
    m = skfem.MeshTri.init_circle(5)
    p, t = m.p.T, m.t.T
    loc = TriLocator(p, t)
    rng = np.random.default_rng(1)
    q = rng.uniform(-1.2, 1.2, (100_000, 2))
    elem, bary = loc.locate(q)
    assert bary.shape == (q.shape[0], 3)
    _check_found(p, t, q, elem, bary)
    r = np.linalg.norm(q, axis=1)
    assert np.all(elem[r > 1.0 + 1e-9] == -1)
    assert np.all(elem[r < 0.98] >= 0)  # the polygon approximates the disc closely
    # a triangle hole: remove elements whose centroid is in a small disc
    c = p[t].mean(axis=1)
    keep = np.linalg.norm(c - [0.3, 0.0], axis=1) > 0.2
    loc2 = TriLocator(p, t[keep])
    e2, _ = loc2.locate(np.array([[0.3, 0.0], [-0.5, 0.0]]))
    assert e2[0] == -1 and e2[1] >= 0
    with pytest.raises(ValueError):
        TriLocator(np.zeros((3, 3)), np.array([[0, 1, 2]]))


def test_tet_locator_speed(box_mesh):
    """1M grid points on a ~50-60k tet mesh locate in well under a second."""
    p, t = _box_minus_cylinder(0.35)
    loc = TetLocator(p, t)
    x = np.linspace(-4.9, 4.9, 100)
    g = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1).reshape(-1, 3)
    loc.locate(g[:1000])  # compile / warm up
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        elem, _ = loc.locate(g, sort_queries=False)
        best = min(best, time.perf_counter() - t0)
    assert np.count_nonzero(elem >= 0) > 0.9 * g.shape[0]
    # generous bound for shared CI machines; measured ~0.2 s on 2 cores
    assert best < 3.0, f"{t.shape[0]} tets: 1M points in {best:.2f} s"


def _graded_disc():
    """Unit-disc triangles graded ~1e6 in area towards the centre (r -> r**3), with a hole."""
    m = skfem.MeshTri.init_circle(5)
    p = m.p.T * np.linalg.norm(m.p.T, axis=1, keepdims=True) ** 2
    t = m.t.T
    c = p[t].mean(axis=1)
    return p, t[np.linalg.norm(c - [0.5, 0.1], axis=1) > 0.1]


def test_tri_locator_matches_numba_locator():
    """The numpy TriLocator answers exactly like the numba SimplexLocator (2D)."""
    p, t = _graded_disc()
    rng = np.random.default_rng(5)
    q = np.concatenate([
        rng.uniform(-1.1, 1.1, (60_000, 2)),
        rng.normal(0.0, 0.02, (20_000, 2)),          # where the triangles are tiny
        [[np.nan, 0.0], [0.0, np.inf], [5.0, 5.0]],
    ])
    tri = TriLocator(p, t)
    e1, b1 = tri.locate(q)
    e2, b2 = SimplexLocator(p, t).locate(q)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(b1, b2)           # bitwise, NaN outside
    _check_found(p, t, q, e1, b1)
    assert np.all(e1[-3:] == -1)
    assert np.count_nonzero(e1 >= 0) > 0.5 * q.shape[0]
    # vertices lie on edges shared by several triangles: all found, in a triangle that
    # uses the vertex (largest smallest-barycentric wins, within tol of zero)
    used = np.unique(t)
    e, b = tri.locate(p[used])
    assert np.all(e >= 0)
    _check_found(p, t, p[used], e, b)
    # more points than one block
    q2 = rng.uniform(-1.0, 1.0, (locate._TRI_BLOCK + 1000, 2))
    e3, _ = tri.locate(q2)
    e4, _ = SimplexLocator(p, t).locate(q2)
    np.testing.assert_array_equal(e3, e4)


def test_tri_locator_degenerate_and_single():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    loc = TriLocator(pts, np.array([[0, 1, 2], [0, 1, 3]]))   # second one is flat
    e, b = loc.locate(np.array([[0.25, 0.25], [1.5, 0.0], [0.5, 0.0]]))
    assert e[0] == 0 and e[1] == -1 and e[2] == 0
    np.testing.assert_allclose(b[0], [0.5, 0.25, 0.25])
    e, b = loc.locate(np.array([0.1, 0.1]))          # a single point, shape (2,)
    assert e.shape == (1,) and e[0] == 0


def test_threads_do_not_change_results(box_mesh, monkeypatch):
    """Large queries split over threads give the serial answer, bit for bit."""
    p, t = box_mesh
    loc = TetLocator(p, t)
    q = np.random.default_rng(2).uniform(-6, 6, (20_000, 3))
    e1, b1 = loc.locate(q)
    monkeypatch.setattr(locate, "_PARALLEL_MIN", 0)
    monkeypatch.setattr(locate, "_num_threads", lambda: 3)
    e2, b2 = loc.locate(q)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(b1, b2)
    # field kernels (any DOF map and geometry will do): same values whether split or not
    rng = np.random.default_rng(4)
    M, n_dofs, Q = 3000, 9000, 5000
    edofs = rng.integers(0, n_dofs, (M, 10))
    glam = rng.normal(size=(M, 4, 3))
    vol = rng.uniform(0.5, 1.0, M)
    u = rng.normal(size=n_dofs)
    elem = rng.integers(-1, M, Q)
    bary = rng.dirichlet(np.ones(4), Q)
    p1dofs = np.ascontiguousarray(edofs[:, :4])

    def evaluate():
        return (field.gradient_at_located(elem, bary, edofs, glam, u, 2),
                field.potential_at_located(elem, bary, edofs, u, 2),
                field.element_gradient_norm_max(edofs, glam, u, 2),
                field.threshold_volume(edofs, glam, vol, u, 2, 3.0),
                field.gradient_at_located(elem, bary, p1dofs, glam, u, 1),
                field.threshold_volume(p1dofs, glam, vol, u, 1, 3.0))

    ref = evaluate()
    monkeypatch.setattr(field, "_POINTS_PER_THREAD", 7)
    monkeypatch.setattr(field, "_SAMPLES_PER_THREAD", 64 * 7)
    new = evaluate()
    for k in (0, 1, 2, 4):
        np.testing.assert_array_equal(ref[k], new[k])
    for k in (3, 5):                                  # sums of per-thread partial sums
        assert 0 < new[k] == pytest.approx(ref[k], rel=1e-13)


def test_compiled_morton_codes_match_numpy():
    rng = np.random.default_rng(6)
    locate._jit()
    for D in (2, 3):
        x = rng.uniform(-0.5, 1.5, (5000, D))
        x[::50, 0] = np.nan
        lo, hi = np.zeros(D), np.ones(D)
        hi[-1] = 0.0                                  # a flat extent
        out = np.empty(x.shape[0], dtype=np.int64)
        locate._morton_points(x, lo, hi, out)
        np.testing.assert_array_equal(out, locate._morton(x, lo, hi))


def test_face_neighbours(box_mesh):
    """nbr[e, i]: the tet across the face opposite local vertex i, -1 on the boundary."""
    p, t = box_mesh
    loc = TetLocator(p, t)
    cells = t[loc.order]
    owners = {}
    for e, c in enumerate(cells.tolist()):
        for i in range(4):
            owners.setdefault(tuple(sorted(c[:i] + c[i + 1:])), []).append((e, i))
    expect = np.full((cells.shape[0], 4), -1)
    for own in owners.values():
        assert len(own) <= 2
        if len(own) == 2:
            (e, i), (f, j) = own
            expect[e, i], expect[f, j] = f, e
    np.testing.assert_array_equal(loc.nbr, expect)


def test_grid_points():
    g = field.grid_points([1.5, -2.0, 3.25], [0.25, 0.5, 0.75], (3, 4, 5))
    ijk = np.stack(np.meshgrid(np.arange(3), np.arange(4), np.arange(5), indexing="ij"), -1)
    np.testing.assert_array_equal(g.reshape(3, 4, 5, 3),
                                  np.array([1.5, -2.0, 3.25]) + ijk * np.array([0.25, 0.5, 0.75]))


def test_axisymmetric_evaluation_without_numba():
    """The axisymmetric fast path (TriLocator + numpy) never imports numba, and grid
    points sharing (r, z) are evaluated once with unchanged values."""
    code = """
import sys
import numpy as np
from vta.fem.axisym import concentric_spheres_basis
b = concentric_spheres_basis(0.5, 10.0, 0.2, preset="fast")
x = np.arange(-3.0, 3.01, 0.25)
g = np.stack(np.meshgrid(x, x, x, indexing="ij"), -1).reshape(-1, 3)
E = b.field_at(g, [1.0])
U = b.potential_at(g, [1.0])
# chunks of < 1024 points are evaluated point by point (no (r, z) de-duplication)
E1 = np.concatenate([b.field_at(g[i:i + 1000], [1.0]) for i in range(0, len(g), 1000)])
U1 = np.concatenate([b.potential_at(g[i:i + 1000], [1.0]) for i in range(0, len(g), 1000)])
assert np.array_equal(E, E1, equal_nan=True) and np.array_equal(U, U1, equal_nan=True)
assert np.isnan(E[np.linalg.norm(g, axis=1) < 0.45]).all()
assert "numba" not in sys.modules, "numba imported on the axisymmetric path"
"""
    subprocess.run([sys.executable, "-c", code], check=True)
