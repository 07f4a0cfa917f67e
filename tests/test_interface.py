"""Two-conductivity planar interface against the image-charge solution.

A small sphere electrode (radius a, current I) sits at distance d below the plane
z = d between conductivities sigma1 (source side, z < d) and sigma2. With
k = (sigma1 - sigma2) / (sigma1 + sigma2) the potential is (e.g. Jackson s4.4, the
electrostatic analogue)

    z < d:  V = I / (4 pi sigma1) * (1 / r + k / r')      (r' to the mirror point)
    z > d:  V = I / (2 pi (sigma1 + sigma2)) / r

and E = -grad V. The mesh conforms to the plane, so the jump of sigma is exact.
"""

import numpy as np
import pytest

from vta.fem.mesh import _gmsh_session, _to_skfem
from vta.fem.solve import solve_unit_fields

A, D, R = 0.25, 3.0, 40.0
SIGMA1, SIGMA2 = 0.2e-3, 0.05e-3  # S/mm (0.2 and 0.05 S/m)


@pytest.fixture(scope="module")
def interface_basis():
    with _gmsh_session("vta_interface") as gmsh:
        occ = gmsh.model.occ
        domain = occ.addSphere(0, 0, 0, R)
        electrode = occ.addSphere(0, 0, 0, A)
        cut, _ = occ.cut([(3, domain)], [(3, electrode)])
        upper = occ.addBox(-2 * R, -2 * R, D, 4 * R, 4 * R, 2 * R)
        frag, _ = occ.fragment(cut, [(3, upper)])
        occ.synchronize()
        # the box pieces outside the sphere are not tissue: keep volumes inside R
        below, above, outside = [], [], []
        for dim, tag in gmsh.model.getEntities(3):
            x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(dim, tag)
            if x1 - x0 > 2.2 * R or x0 < -1.1 * R:
                outside.append(tag)
            elif z0 >= D - 1e-6:
                above.append(tag)
            else:
                below.append(tag)
        if outside:
            occ.remove([(3, t) for t in outside], recursive=True)
            occ.synchronize()
        surfaces = {"contact_0": [], "outer": []}
        for _, s in gmsh.model.getBoundary([(3, t) for t in below + above], combined=True, oriented=False):
            x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(2, abs(s))
            surfaces["contact_0" if x1 - x0 < 3 * A else "outer"].append(abs(s))
        f = gmsh.model.mesh.field.add("MathEval")
        gmsh.model.mesh.field.setString(
            f, "F", f"Min(6, Min(0.03 + 0.12 * Sqrt(x*x + y*y + z*z), 0.12 + 0.12 * Abs(z - {D}) + 0.1 * Sqrt(x*x + y*y)))"
        )
        gmsh.model.mesh.field.setAsBackgroundMesh(f)
        for opt in ("Mesh.MeshSizeExtendFromBoundary", "Mesh.MeshSizeFromPoints", "Mesh.MeshSizeFromCurvature"):
            gmsh.option.setNumber(opt, 0)
        gmsh.model.mesh.generate(3)
        mesh = _to_skfem(gmsh, {"below": below, "above": above}, surfaces)
    sigma = np.full(mesh.t.shape[1], SIGMA1)
    sigma[mesh.subdomains["above"]] = SIGMA2
    return solve_unit_fields(mesh, sigma, 1, outer="ground", order=2)


def image_field(points, current_A):
    k = (SIGMA1 - SIGMA2) / (SIGMA1 + SIGMA2)
    mirror = np.array([0.0, 0.0, 2 * D])
    E = np.empty_like(points)
    lower = points[:, 2] < D
    r = points
    rm = points - mirror
    n = np.linalg.norm(r, axis=1)[:, None]
    nm = np.linalg.norm(rm, axis=1)[:, None]
    E_lower = current_A / (4 * np.pi * SIGMA1) * (r / n**3 + k * rm / nm**3)
    E_upper = current_A / (2 * np.pi * (SIGMA1 + SIGMA2)) * r / n**3
    E[lower] = E_lower[lower]
    E[~lower] = E_upper[~lower]
    return E


def test_planar_interface_matches_image_charges(interface_basis):
    basis = interface_basis
    current = basis.conductance_S[0, 0]  # A at 1 V
    rng = np.random.default_rng(3)
    dirs = rng.normal(size=(6000, 3))
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    pts = dirs * rng.uniform(1.5, 6.0, size=(6000, 1))
    pts = pts[np.abs(pts[:, 2] - D) > 0.3]  # the field jumps at the plane
    E_fem = basis.field_at(pts, np.array([1.0]))
    E_ref = image_field(pts, current)
    err = np.linalg.norm(E_fem - E_ref, axis=1) / np.linalg.norm(E_ref, axis=1)
    above = pts[:, 2] > D
    # both sides, with the normal component jumping by sigma1/sigma2 = 4 across the plane
    assert above.sum() > 100
    assert np.median(err) < 0.01, np.median(err)
    assert np.percentile(err, 95) < 0.03, np.percentile(err, 95)
    assert np.median(err[above]) < 0.015


def test_electrode_conductance_with_interface(interface_basis):
    """First image correction of a sphere near a plane: G = 4 pi sigma1 a / (1 + k a / (2 d))."""
    k = (SIGMA1 - SIGMA2) / (SIGMA1 + SIGMA2)
    expected = 4 * np.pi * SIGMA1 * A / (1 + k * A / (2 * D))
    assert interface_basis.conductance_S[0, 0] == pytest.approx(expected, rel=0.01)
