"""Assembly, unit solutions, conductance matrix and fields (vta.fem.assembly / vta.fem.solve).

Analytic reference (concentric spheres, electrode radius a at V0, outer radius R
grounded, conductivity sigma): u(r) = V0 a (R - r) / (r (R - a)),
|E| = V0 a R / (r^2 (R - a)), G = 4 pi sigma a R / (R - a).
"""

from __future__ import annotations

import gmsh
import numpy as np
import pytest
import skfem
from skfem import Basis, BilinearForm, ElementTetP1, ElementTetP2
from skfem.helpers import dot, grad

from vta.fem.assembly import assemble_stiffness, build_dofmap
from vta.fem.field import grid_points, subdivision_centroids
from vta.fem.solve import solve_dirichlet, solve_unit_fields

SIGMA = 0.2e-3  # S/mm (0.2 S/m)


def _facet_keys(tri: np.ndarray, n: int) -> np.ndarray:
    s = np.sort(tri, axis=1).astype(np.int64)
    return (s[:, 0] * n + s[:, 1]) * n + s[:, 2]


def gmsh_spheres_mesh(contacts, a=0.5, R=25.0, h_a=0.08, grow=0.25, h_max=4.0):
    """Sphere of radius R minus small spheres (radius a) at ``contacts``.

    Boundaries "contact_k" (k-th small sphere) and "outer"; graded size field.
    """
    gmsh.initialize(["-noenv"])
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", 2)
        occ = gmsh.model.occ
        outer = occ.addSphere(0, 0, 0, R)
        holes = [occ.addSphere(*c, a) for c in contacts]
        out, _ = occ.cut([(3, outer)], [(3, h) for h in holes])
        occ.synchronize()
        vol = out[0][1]
        groups: dict[str, list[int]] = {}
        for _, tag in gmsh.model.getBoundary([(3, vol)], oriented=False):
            bb = gmsh.model.getBoundingBox(2, tag)
            if bb[3] - bb[0] > 1.8 * R:
                groups.setdefault("outer", []).append(tag)
            else:
                com = np.array(occ.getCenterOfMass(2, tag))
                k = int(np.argmin([np.linalg.norm(com - np.asarray(c)) for c in contacts]))
                groups.setdefault(f"contact_{k}", []).append(tag)
        fd = gmsh.model.mesh.field
        fdist = fd.add("Distance")
        fd.setNumbers(fdist, "SurfacesList",
                      [t for k, v in groups.items() if k != "outer" for t in v])
        fmath = fd.add("MathEval")
        fd.setString(fmath, "F", f"min({h_max}, {h_a} + {grow}*F{fdist})")
        fd.setAsBackgroundMesh(fmath)
        for opt in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
            gmsh.option.setNumber(f"Mesh.{opt}", 0)
        gmsh.model.mesh.generate(3)
        ntags, xyz, _ = gmsh.model.mesh.getNodes()
        idx = np.full(int(ntags.max()) + 1, -1, dtype=np.int64)
        idx[ntags.astype(np.int64)] = np.arange(len(ntags))
        _, _, en = gmsh.model.mesh.getElements(3, vol)
        tets = idx[en[0].astype(np.int64)].reshape(-1, 4)
        used = np.unique(tets)
        remap = np.full(len(ntags), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        p = xyz.reshape(-1, 3)[used]
        tets = remap[tets]
        btri = {}
        for name, tags in groups.items():
            tris = [remap[idx[gmsh.model.mesh.getElements(2, tg)[2][0].astype(np.int64)]]
                    .reshape(-1, 3) for tg in tags]
            btri[name] = np.concatenate(tris)
    finally:
        gmsh.finalize()
    m = skfem.MeshTet(p.T.copy(), tets.T.copy())
    n = m.p.shape[1]
    fk = _facet_keys(m.facets.T, n)
    order = np.argsort(fk)
    bnd = {}
    for name, tri in btri.items():
        k = _facet_keys(tri, n)
        f = order[np.searchsorted(fk, k, sorter=order)]
        assert np.all(fk[f] == k)
        bnd[name] = np.sort(f)
    return m.with_boundaries(bnd)


def concentric_mesh(a, R, h_a, grow, h_max):
    try:
        from vta.fem.mesh import build_sphere_electrode_mesh
    except ImportError:
        return gmsh_spheres_mesh([(0.0, 0.0, 0.0)], a, R, h_a, grow, h_max)
    return build_sphere_electrode_mesh(a, R, h_a, h_max, growth=grow)


# ----------------------------------------------------------------------------- assembly


@pytest.fixture(scope="module")
def small_mesh():
    return gmsh_spheres_mesh([(0.0, 0.0, 0.0)], a=0.5, R=8.0, h_a=0.15, grow=0.3, h_max=2.0)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("tensor", [False, True])
@pytest.mark.parametrize("threads", [1, 3])
def test_assembly_matches_skfem(small_mesh, order, tensor, threads, monkeypatch):
    """Serial, and split over 3 threads (uneven ranges; each thread's partial values
    summed): the same matrix as skfem's."""
    import vta.fem.assembly as assembly
    import vta.fem.locate as locate

    monkeypatch.setattr(locate, "_num_threads", lambda: threads)
    monkeypatch.setattr(assembly, "_PARALLEL_MIN", 1)
    m = small_mesh
    M = m.t.shape[1]
    rng = np.random.default_rng(1)
    basis = Basis(m, ElementTetP1() if order == 1 else ElementTetP2())
    nq = basis.X.shape[1]
    if tensor:
        A = rng.normal(size=(M, 3, 3))
        sig = np.einsum("mij,mkj->mik", A, A) + np.eye(3)

        @BilinearForm
        def form(u, v, w):
            g, h, T = grad(u), grad(v), w["T"]
            return sum(T[i][j] * g[j] * h[i] for i in range(3) for j in range(3))

        Ks = form.assemble(basis, T=np.repeat(sig.transpose(1, 2, 0)[..., None], nq, axis=3))
    else:
        sig = rng.uniform(0.5, 2.0, M)

        @BilinearForm
        def form(u, v, w):
            return w["s"] * dot(grad(u), grad(v))

        Ks = form.assemble(basis, s=np.repeat(sig[:, None], nq, axis=1))
    K, dm = assemble_stiffness(m.p.T, m.t.T, sig, order)
    np.testing.assert_array_equal(dm.element_dofs.T, basis.element_dofs)
    assert abs(K - Ks).max() <= 1e-12 * abs(Ks).max()
    # boundary DOFs agree with skfem's facet DOFs
    fac = m.boundaries["contact_0"]
    ours = dm.vertex_set_dofs(m.facets[:, fac])
    theirs = np.unique(basis.get_dofs(fac).flatten())
    np.testing.assert_array_equal(ours, theirs)


def test_subdivision_centroids():
    c = subdivision_centroids(2)
    assert c.shape == (64, 4)
    np.testing.assert_allclose(c.sum(axis=1), 1.0)
    # equal-volume children: centroid average is the parent's centroid
    np.testing.assert_allclose(c.mean(axis=0), 0.25)
    # integrates quadratics exactly up to the midpoint-rule error; linear exactly
    assert len({tuple(np.round(x, 12)) for x in c}) == 64


def test_grid_points():
    g = grid_points([1.0, 2.0, 3.0], [0.5, 1.0, 2.0], (2, 3, 4))
    assert g.shape == (24, 3)
    gg = g.reshape(2, 3, 4, 3)
    np.testing.assert_allclose(gg[1, 2, 3], [1.5, 4.0, 9.0])
    np.testing.assert_allclose(gg[0, 0, 0], [1.0, 2.0, 3.0])


# ----------------------------------------------------------------------------- analytic


@pytest.fixture(scope="module")
def concentric():
    a, R = 0.5, 25.0
    m = concentric_mesh(a, R, 0.05, 0.15, 3.0)
    return a, R, m


def _sample_shell(n, r0, r1, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    r = rng.uniform(r0, r1, n)
    return d * r[:, None], r


def test_concentric_spheres_p2(concentric):
    a, R, m = concentric
    V0 = 2.0
    fb = solve_unit_fields(m, SIGMA, order=2, solver="amg")
    assert fb.n_contacts == 1 and fb.outer_grounded
    assert fb.mesh_info["kind"] == "tet" and fb.mesh_info["order"] == 2
    G_exact = 4 * np.pi * SIGMA * a * R / (R - a)
    g_err = fb.conductance_S[0, 0] / G_exact - 1
    assert abs(g_err) < 0.01, g_err  # measured -0.12 % (faceted electrode)

    P, r = _sample_shell(40_000, 1.0, 5.0)
    u = fb.potential_at(P, [V0])
    u_ex = V0 * a * (R - r) / (r * (R - a))
    eu = np.abs(u - u_ex) / u_ex
    assert eu.max() < 0.005, eu.max()  # measured max 0.26 %, mean 0.15 %

    E = fb.field_at(P, [V0])
    E_ex = V0 * a * R / (r**2 * (R - a))
    eE = np.abs(np.linalg.norm(E, axis=1) - E_ex) / E_ex
    # measured: mean 0.52 %, RMS 0.7 %, p99 2.2 %, max 4.4 % (pointwise; P2 gradient
    # is discontinuous between elements); the radial direction is right
    assert eE.mean() < 0.01 and np.sqrt(np.mean(eE**2)) < 0.01, (eE.mean(), eE.max())
    assert np.percentile(eE, 99) < 0.04
    radial = np.einsum("qd,qd->q", E, P / r[:, None]) / np.linalg.norm(E, axis=1)
    assert radial.min() > 0.99

    # outside tissue: NaN
    inside_lead = fb.field_at(np.array([[0.0, 0.0, 0.1], [0.0, 0.0, 30.0]]), [V0])
    assert np.all(np.isnan(inside_lead))

    # VTA volume: |E| >= thr for a < r <= r_thr
    thr = 0.2
    r_thr = np.sqrt(V0 * a * R / (thr * (R - a)))
    v_ex = 4 / 3 * np.pi * (r_thr**3 - a**3)
    v = fb.vta_volume_mm3([V0], thr)
    assert abs(v / v_ex - 1) < 0.01, (v, v_ex)
    # linearity in the weights
    assert fb.vta_volume_mm3([2 * V0], 2 * thr) == pytest.approx(v, rel=1e-9)

    # grid convenience matches pointwise evaluation
    Eg = fb.field_on_grid([1.0, 1.0, 1.0], 0.5, (4, 3, 2), [V0])
    pts = grid_points([1.0, 1.0, 1.0], 0.5, (4, 3, 2))
    np.testing.assert_allclose(Eg.reshape(-1, 3), fb.field_at(pts, [V0]), rtol=1e-12)


def test_concentric_spheres_p1_direct_vs_amg(concentric):
    a, R, m = concentric
    fa = solve_unit_fields(m, SIGMA, order=1, solver="amg", tol=1e-12)
    fd = solve_unit_fields(m, SIGMA, order=1, solver="direct")
    np.testing.assert_allclose(fa.unit_solutions, fd.unit_solutions, atol=1e-9)
    assert fa.conductance_S[0, 0] == pytest.approx(fd.conductance_S[0, 0], rel=1e-8)
    G_exact = 4 * np.pi * SIGMA * a * R / (R - a)
    # P1 on this graded mesh: about +1.6 % (the stiffer discrete solution)
    assert abs(fa.conductance_S[0, 0] / G_exact - 1) < 0.03


# ----------------------------------------------------------------------------- multi-contact


@pytest.fixture(scope="module")
def three_contacts():
    c = [(0.0, 0.0, -2.0), (0.0, 0.0, 0.0), (1.5, 0.0, 2.0)]
    return gmsh_spheres_mesh(c, a=0.5, R=15.0, h_a=0.12, grow=0.3, h_max=3.0)


@pytest.mark.parametrize("outer", ["ground", "insulating"])
def test_conductance_spd_and_superposition(three_contacts, outer):
    m = three_contacts
    M = m.t.shape[1]
    rng = np.random.default_rng(2)
    sig = SIGMA * rng.uniform(0.5, 1.5, M)
    fb = solve_unit_fields(m, sig, order=2, outer=outer, solver="amg", tol=1e-12)
    G = fb.conductance_S
    assert G.shape == (3, 3)
    np.testing.assert_allclose(G, G.T, rtol=0, atol=1e-9 * np.abs(G).max())
    ev = np.linalg.eigvalsh(G)
    if outer == "ground":
        assert ev.min() > 0
        assert np.all(G.sum(axis=1) > 0)  # net current to ground for all-equal potentials
    else:
        # insulating: currents conserve charge -> rows sum to zero, one null vector
        np.testing.assert_allclose(G.sum(axis=1), 0.0, atol=1e-6 * np.abs(G).max())
        assert ev[0] == pytest.approx(0.0, abs=1e-6 * ev[-1]) and ev[1] > 0
    # off-diagonal couplings are negative (current into a grounded neighbour)
    assert np.all(G[~np.eye(3, dtype=bool)] < 0)

    # superposition: a direct solve with contact potentials equals sum V_k u_k
    V = np.array([-1.5, 0.7, 2.0])
    from vta.fem.assembly import assemble_stiffness as asm

    K, dm = asm(m.p.T, m.t.T, sig, 2)
    cd = fb.contact_dof_sets
    D = np.concatenate(cd)
    vals = np.concatenate([np.full(c.size, V[k]) for k, c in enumerate(cd)])
    if outer == "ground":
        from vta.fem.solve import contact_dofs

        od = np.setdiff1d(contact_dofs(m, dm, "outer"), D)
        D = np.concatenate([D, od])
        vals = np.concatenate([vals, np.zeros(od.size)])
    u, _ = solve_dirichlet(K, D, vals, solver="amg", tol=1e-12)
    u_sup = fb.unit_solutions @ V
    np.testing.assert_allclose(u[:, 0], u_sup, atol=1e-8 * np.abs(V).max())
    # and the currents from the reactions match G @ V
    I = np.array([(K @ u[:, 0])[c].sum() for c in cd])
    np.testing.assert_allclose(I, G @ V, rtol=1e-6, atol=1e-9 * np.abs(G).max())
    # field evaluation of the weighted sum
    P = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 1.0]])
    E = fb.field_at(P, V)
    Es = sum(V[k] * fb.field_at(P, np.eye(3)[k]) for k in range(3))
    np.testing.assert_allclose(E, Es, rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- anisotropy


def test_anisotropic_point_source():
    """Small sphere electrode in a tensor medium ~ point source:
    V = I / (4 pi sqrt(det S) sqrt(r^T S^-1 r)) far from the source (r >> a)."""
    a, R = 0.3, 20.0
    m = gmsh_spheres_mesh([(0.0, 0.0, 0.0)], a=a, R=R, h_a=0.06, grow=0.25, h_max=3.0)
    Q = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
    S = SIGMA * Q @ np.diag([2.0, 1.0, 0.5]) @ Q.T
    sig = np.broadcast_to(S, (m.t.shape[1], 3, 3)).copy()
    # insulating outer boundary is far; use grounded and compare potential differences
    fb = solve_unit_fields(m, sig, order=2, solver="amg")
    I = fb.conductance_S[0, 0]  # current (A) for 1 V on the electrode
    P, r = _sample_shell(4000, 3.0, 5.0, seed=7)
    Sinv = np.linalg.inv(S)
    def v_point(x):
        return I / (4 * np.pi * np.sqrt(np.linalg.det(S)) * np.sqrt(np.einsum("qi,ij,qj->q", x, Sinv, x)))
    u = fb.potential_at(P, [1.0])
    # the grounded outer sphere shifts the potential by an almost constant offset: compare
    # differences between sample points and a reference point
    ref = np.array([[4.0, 0.0, 0.0]])
    du = u - fb.potential_at(ref, [1.0])[0]
    dv = v_point(P) - v_point(ref)[0]
    scale = np.abs(v_point(P)).mean()
    assert np.abs(du - dv).max() < 0.03 * scale, np.abs(du - dv).max() / scale


# ----------------------------------------------------------------------------- block solver


def test_block_multigrid_pcg_matches_direct(three_contacts):
    """Lockstep block CG with the P2 -> P1 -> smoothed-aggregation V-cycle solves every
    right-hand side (zero, one, four, five columns) like a sparse LU."""
    import scipy.sparse.linalg as spla

    from vta.fem.solve import BlockMultigrid, block_pcg, p1_embedding

    m = three_contacts
    K, dm = assemble_stiffness(m.p.T, m.t.T, SIGMA, 2)
    # ground a few vertices to make the matrix SPD, keep the rest free
    D = np.arange(0, dm.n_vertices, 7)
    free = np.ones(K.shape[0], bool)
    free[D] = False
    F = np.flatnonzero(free)
    A = K[F][:, F].tocsr()
    P = p1_embedding(dm).tocsr()[F][:, F[F < dm.n_vertices]]
    mg = BlockMultigrid(A, P)
    assert mg.sizes[0] == A.shape[0] and mg.sizes[1] == P.shape[1] and len(mg.sizes) >= 3
    rng = np.random.default_rng(3)
    lu = spla.splu(A.tocsc())
    for k in (1, 4, 5):
        B = rng.normal(size=(A.shape[0], k))
        B[:, 0] = 0.0  # a zero column converges at once
        X, its, rel = block_pcg(A, B, mg, tol=1e-10)
        assert its[0] == 0 and np.all(np.asarray(its[1:]) < 40), its
        assert rel.max() <= 1e-10
        np.testing.assert_allclose(X, lu.solve(B), rtol=0, atol=1e-8 * np.abs(lu.solve(B)).max())
    # the columns are independent: split over worker threads in blocks (4 + 4, 2 + 2,
    # ...) they give bit for bit what one column at a time gives
    from vta.fem import multigrid

    for k in (2, 4, 8, 9):
        B = rng.normal(size=(A.shape[0], k))
        blocks = multigrid._column_blocks(k)
        assert blocks[0][0] == 0 and blocks[-1][1] == k
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        one_by_one = np.column_stack([mg(B[:, [c]]) for c in range(k)])
        np.testing.assert_array_equal(mg(B), one_by_one)


def test_p1_embedding_is_exact_for_linear_functions(small_mesh):
    from vta.fem.solve import p1_embedding

    m = small_mesh
    dm = build_dofmap(m.t.T, m.p.shape[1], 2)
    E = p1_embedding(dm)
    f = m.p[0] - 2.0 * m.p[1] + 0.5 * m.p[2] + 1.0  # linear: P1 and P2 interpolants agree
    np.testing.assert_allclose(E @ f, dm.dof_locations(m.p.T) @ [1.0, -2.0, 0.5] + 1.0, atol=1e-12)


def test_conductance_from_energy_is_insensitive_to_tolerance(three_contacts):
    """G = U^T K U errs quadratically in the solver error: a 1e-4 residual already gives
    G to ~1e-8, and the fields to ~1e-4."""
    loose = solve_unit_fields(three_contacts, SIGMA, solver="amg", tol=1e-4)
    tight = solve_unit_fields(three_contacts, SIGMA, solver="amg", tol=1e-12)
    G = tight.conductance_S
    np.testing.assert_allclose(loose.conductance_S, G, rtol=0, atol=1e-7 * np.abs(G).max())
    np.testing.assert_allclose(loose.unit_solutions, tight.unit_solutions, atol=1e-3)


# ----------------------------------------------------------------------------- storage and cache


def _assert_same_basis(a, b):
    np.testing.assert_array_equal(a.conductance_S, b.conductance_S)
    np.testing.assert_array_equal(a.unit_solutions, b.unit_solutions)
    np.testing.assert_array_equal(a.mesh.p, b.mesh.p)
    np.testing.assert_array_equal(a.mesh.t, b.mesh.t)
    assert sorted(a.mesh.boundaries) == sorted(b.mesh.boundaries)
    for name in a.mesh.boundaries:
        np.testing.assert_array_equal(a.mesh.boundaries[name], b.mesh.boundaries[name])
    np.testing.assert_array_equal(a.mesh.facets, b.mesh.facets)
    assert a.mesh_info == b.mesh_info and a.outer_grounded == b.outer_grounded
    w = np.array([0.3, -1.0, 0.2])
    pts = np.random.default_rng(1).uniform(-4.0, 4.0, (200, 3))
    np.testing.assert_array_equal(a.field_at(pts, w), b.field_at(pts, w))
    assert a.vta_volume_mm3(w, 0.1) == b.vta_volume_mm3(w, 0.1)


def test_basis_arrays_round_trip(three_contacts):
    from vta.fem.solve import TetFieldBasis

    fb = solve_unit_fields(three_contacts, SIGMA, solver="amg")
    back = TetFieldBasis.from_arrays(fb.to_arrays())
    _assert_same_basis(fb, back)
    for a, b in zip(fb.contact_dof_sets, back.contact_dof_sets):
        np.testing.assert_array_equal(a, b)


def test_cached_basis_hit_miss_corrupt_and_off(three_contacts, tmp_path, monkeypatch):
    from vta.fem import cache

    calls = []

    def build():
        calls.append(1)
        return solve_unit_fields(three_contacts, SIGMA, solver="amg")

    key = {"scene": "three spheres", "sigma_S_per_m": 0.2, "center": np.array([0.0, 0.0, 1.5]),
           "preset": "test"}
    monkeypatch.setenv("VTA_CACHE_DIR", str(tmp_path))
    first = cache.cached_basis(key, build)
    assert len(calls) == 1 and first.cache["hit"] is False
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    # same key (dict order, -0.0, tuple vs list do not matter): loaded, not rebuilt
    same = {"preset": "test", "center": np.array([-0.0, 0.0, 1.5]), "sigma_S_per_m": 0.2,
            "scene": "three spheres"}
    second = cache.cached_basis(same, build)
    assert len(calls) == 1 and second.cache["hit"] is True
    assert set(second.timings) == {"cache_load"}
    _assert_same_basis(first, second)
    # another key: a new entry
    cache.cached_basis({**key, "sigma_S_per_m": 0.3}, build)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 2
    # a corrupt file is rebuilt and replaced
    files[0].write_bytes(files[0].read_bytes()[:500])
    third = cache.cached_basis(key, build)
    assert len(calls) == 3 and third.cache["hit"] is False
    assert cache.cached_basis(key, build).cache["hit"] is True and len(calls) == 3
    # caching off
    monkeypatch.setenv("VTA_CACHE_DIR", "off")
    cache.cached_basis(key, build)
    assert len(calls) == 4
    assert cache.clear_cache(tmp_path) == 2 and not list(tmp_path.glob("*.npz"))


def test_cache_key_canonical_and_strict():
    from dataclasses import dataclass

    from vta.fem.cache import cache_key

    @dataclass(frozen=True)
    class Thing:
        a: float
        b: tuple

    k1 = cache_key({"x": Thing(1.0, (1, 2)), "arr": np.arange(200.0), "y": [1, 2.5]})
    k2 = cache_key({"y": (1, 2.5), "arr": np.arange(200.0), "x": Thing(1.0, [1, 2])})
    assert k1 == k2
    assert k1 != cache_key({"x": Thing(1.0, (1, 2)), "arr": np.arange(200.0) * 1.0000001, "y": [1, 2.5]})
    with pytest.raises(TypeError):
        cache_key({"x": object()})


def test_file_digest(tmp_path):
    from vta.fem.cache import file_digest

    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    d = file_digest(f)
    f.write_bytes(b"abd")
    assert file_digest(f) != d and len(d) == 64
