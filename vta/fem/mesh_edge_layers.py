"""Geometric refinement of a tetrahedral mesh towards the contact edges ("hp" layers).

The potential near a contact edge behaves like ``d^1/2`` (``|E| ~ d^-1/2``) at distance d
from the edge. Isotropic tets graded towards the edge resolve it at a cost that grows
like ``1 / edge size`` per mm of edge; elements that are long along the edge and thin
across it do it for far fewer. This module cuts, ``levels`` times, every tetrahedron
that touches a contact edge at a fraction ``sigma`` of its edges from the contact edge
(the geometric edge refinement of hp finite elements, e.g. Schwab 1998, done here with
tetrahedra only):

* a tet with one vertex A on a contact edge: the small tet at A (its edges from A cut at
  ``sigma``) and the prism between the cut and the opposite face;
* a tet with an edge AB along a contact edge: the thin prism along AB (the four edges
  leaving A and B cut at ``sigma``) and the prism between the cut and the opposite edge.

Each prism is split into three tets with every quadrilateral face cut along the
diagonal that starts at its lowest-numbered vertex, the rule that makes neighbouring
prisms agree on their shared faces and always admits a split into tets (Dompierre et al.
1999, "How to subdivide pyramids, prisms and hexahedra into tetrahedra"). The cut points
lie on edges with exactly one end on a contact edge, and every tet with such an end is
cut, so the refined mesh is conforming. A tet with two contact-edge vertices that are
not the ends of one contact-edge segment, or with three or more (at the corners of a
segment, or across a narrow gap), has no rule: its contact-edge vertices are left out
of the refinement (the gmsh grading serves them), which keeps the mesh conforming.

The contact edges are found from the labels: the vertices and mesh edges shared by a
contact facet and an insulation facet. Children keep their parent's subdomain; each
boundary facet keeps the label of the original facet it lies in.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import VtaError
from .mesh_skfem import _PACK_LIMIT, _build_facets, _face_keys, _orient

__all__ = ["refine_towards_contact_edges", "contact_edge_skeleton"]

log = logging.getLogger(__name__)

#: local vertex pairs of a tetrahedron's six edges
_TET_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def contact_edge_skeleton(mesh: "skfem.MeshTet") -> tuple[np.ndarray, np.ndarray]:
    """Vertices and mesh edges on the contact edges of a lead mesh.

    Parameters
    ----------
    mesh : skfem.MeshTet
        With boundaries ``contact_*`` and ``insulation``.

    Returns
    -------
    vertices : ndarray of int64
        Sorted vertex indices shared by a contact facet and an insulation facet.
    edges : ndarray of int64, shape (E, 2)
        Sorted vertex pairs of the mesh edges shared by a contact facet and an
        insulation facet.
    """
    contact = np.concatenate([np.asarray(v) for k, v in mesh.boundaries.items() if k.startswith("contact_")]
                             + [np.zeros(0, dtype=np.int64)])
    insulation = np.asarray(mesh.boundaries.get("insulation", np.zeros(0, dtype=np.int64)))
    if contact.size == 0 or insulation.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.int64)
    n = np.int64(mesh.p.shape[1])

    def edge_keys(facets: np.ndarray) -> np.ndarray:
        f = np.sort(mesh.facets[:, facets].astype(np.int64), axis=0)
        pairs = np.concatenate([f[[0, 1]], f[[1, 2]], f[[0, 2]]], axis=1)
        return np.unique(pairs[0] * n + pairs[1])

    keys = np.intersect1d(edge_keys(contact), edge_keys(insulation), assume_unique=True)
    edges = np.stack([keys // n, keys % n], axis=1)
    return np.unique(edges), edges


def refine_towards_contact_edges(mesh: "skfem.MeshTet", levels: int = 2, sigma: float = 0.25) -> "skfem.MeshTet":
    """The mesh cut ``levels`` times towards its contact edges (see the module docstring).

    Parameters
    ----------
    mesh : skfem.MeshTet
        Lead mesh (mm) with boundaries ``contact_*``, ``insulation``, ``outer`` and
        subdomains.
    levels : int
        Number of geometric layers (0: the mesh unchanged).
    sigma : float
        Cut position as a fraction of each edge from the contact edge, in (0, 0.5].

    Returns
    -------
    skfem.MeshTet
        The refined mesh, same boundaries and subdomains (names), positively oriented.
    """
    if levels <= 0:
        return mesh
    if not 0.0 < sigma <= 0.5:
        raise ValueError(f"sigma must be in (0, 0.5], got {sigma}")
    singular, sing_edges = contact_edge_skeleton(mesh)
    if singular.size == 0:
        return mesh
    if mesh.p.shape[1] >= _PACK_LIMIT:  # face keys must pack into one int64
        raise VtaError(f"contact-edge layers: the mesh has {mesh.p.shape[1]} vertices, more than the "
                       f"{_PACK_LIMIT} they support; use a preset with edge_layers = 0")
    p = np.asarray(mesh.p, dtype=np.float64).T.copy()
    t = np.asarray(mesh.t, dtype=np.int64).T.copy()
    n0 = p.shape[0]
    # support of each vertex: the vertices of the smallest original simplex containing it
    # (all cuts stay inside the original tets: at most 4)
    support = np.full((n0, 4), -1, dtype=np.int64)
    support[:, 0] = np.arange(n0)
    region = np.zeros(t.shape[0], dtype=np.int64)
    names = list(mesh.subdomains or {})
    for i, name in enumerate(names):
        region[np.asarray(mesh.subdomains[name])] = i
    boundary_labels = _facet_labels(mesh)
    edge_key_set = np.unique(sing_edges[:, 0] * np.int64(n0) + sing_edges[:, 1])
    for level in range(levels):
        in_v = np.zeros(p.shape[0], dtype=bool)
        in_v[singular] = True
        kinds = _classify(t, in_v, edge_key_set, n0)
        n_before = t.shape[0]
        p, t, region, support = _cut(p, t, region, support, in_v, kinds, sigma)
        log.debug("contact-edge layer %d: %d -> %d tets", level + 1, n_before, t.shape[0])
    return _assemble_mesh(mesh, p, t, region, names, support, boundary_labels)


def _classify(t: np.ndarray, in_v: np.ndarray, edge_keys: np.ndarray, n0: int) -> np.ndarray:
    """Per tet: 0 untouched, 1 vertex type, 2 edge type. Drops (in ``in_v``) the
    contact-edge vertices of tets with no rule until every tet has one. ``edge_keys``:
    the contact-edge segments as ``a * n0 + b`` (sorted original vertex pairs)."""
    while True:
        flags = in_v[t]
        count = flags.sum(axis=1)
        kinds = np.zeros(t.shape[0], dtype=np.int64)
        kinds[count == 1] = 1
        two = np.flatnonzero(count == 2)
        if two.size:
            pair = np.sort(t[two][flags[two]].reshape(-1, 2), axis=1)
            on_edge = np.isin(pair[:, 0] * np.int64(n0) + pair[:, 1], edge_keys)
            kinds[two[on_edge]] = 2
        bad = np.flatnonzero((count >= 2) & (kinds == 0))
        if bad.size == 0:
            return kinds
        in_v[t[bad][flags[bad]]] = False


def _cut(p, t, region, support, in_v, kinds, sigma):
    """One level of cuts: new points on every edge with exactly one end in ``in_v``."""
    M = t.shape[0]
    a = t[:, [i for i, _ in _TET_EDGES]]
    b = t[:, [j for _, j in _TET_EDGES]]
    one = in_v[a] ^ in_v[b]
    # the directed edge (contact-edge end, other end) of every cut edge
    src = np.where(in_v[a], a, b)[one]
    dst = np.where(in_v[a], b, a)[one]
    n = np.int64(p.shape[0])
    keys, inverse = np.unique(src * n + dst, return_inverse=True)
    s_u, d_u = keys // n, keys % n
    new_p = (1.0 - sigma) * p[s_u] + sigma * p[d_u]
    new_support = _union_support(support[s_u], support[d_u])
    point_of = np.full((M, 6), -1, dtype=np.int64)
    point_of[one] = p.shape[0] + inverse
    p = np.concatenate([p, new_p])
    support = np.concatenate([support, new_support])

    def cut_point(rows, i, j):
        k = _TET_EDGES.index((min(i, j), max(i, j)))
        return point_of[rows, k]

    children, parents = [t[kinds == 0]], [np.flatnonzero(kinds == 0)]
    # vertex type: the contact-edge vertex in local slot 0 (others keep their order)
    rows = np.flatnonzero(kinds == 1)
    if rows.size:
        local = np.argmax(in_v[t[rows]], axis=1)
        perm = np.array([[0, 1, 2, 3], [1, 0, 2, 3], [2, 0, 1, 3], [3, 0, 1, 2]])[local]
        v = np.take_along_axis(t[rows], perm, axis=1)
        cuts = np.stack([_point_on(point_of[rows], perm, 0, k) for k in (1, 2, 3)], axis=1)
        children.append(np.stack([v[:, 0], cuts[:, 0], cuts[:, 1], cuts[:, 2]], axis=1))
        parents.append(rows)
        prism = np.stack([cuts[:, 0], cuts[:, 1], cuts[:, 2], v[:, 1], v[:, 2], v[:, 3]], axis=1)
        tets, owner = _split_prisms(prism)
        children.append(tets)
        parents.append(rows[owner])
    # edge type: the contact-edge vertices in local slots 0 and 1
    rows = np.flatnonzero(kinds == 2)
    if rows.size:
        flags = in_v[t[rows]]
        order = np.argsort(~flags, axis=1, kind="stable")  # the two flagged slots first
        v = np.take_along_axis(t[rows], order, axis=1)
        pac = _point_on(point_of[rows], order, 0, 2)
        pad = _point_on(point_of[rows], order, 0, 3)
        pbc = _point_on(point_of[rows], order, 1, 2)
        pbd = _point_on(point_of[rows], order, 1, 3)
        near = np.stack([v[:, 0], pac, pad, v[:, 1], pbc, pbd], axis=1)
        far = np.stack([pac, pbc, v[:, 2], pad, pbd, v[:, 3]], axis=1)
        for prism in (near, far):
            tets, owner = _split_prisms(prism)
            children.append(tets)
            parents.append(rows[owner])
    t_new = np.concatenate(children)
    region_new = region[np.concatenate(parents)]
    return p, _orient(p.T, t_new.T).T, region_new, support


def _point_on(point_rows: np.ndarray, perm: np.ndarray, i: int, j: int) -> np.ndarray:
    """The cut point on the edge between permuted local slots i and j of each tet."""
    li = perm[:, i]
    lj = perm[:, j]
    lo, hi = np.minimum(li, lj), np.maximum(li, lj)
    table = np.full((4, 4), -1, dtype=np.int64)
    for k, (x, y) in enumerate(_TET_EDGES):
        table[x, y] = k
    col = table[lo, hi]
    out = point_rows[np.arange(len(col)), col]
    if np.any(out < 0):
        raise AssertionError("contact-edge refinement: an edge to cut has no cut point")
    return out


def _split_prisms(prism: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Three tets per prism (N, 6): bottom (0, 1, 2), top (3, 4, 5), lateral edges i-(i+3);
    quadrilateral faces cut from their lowest-numbered vertex (Dompierre et al. 1999).
    Returns the tets (3N, 4) and the prism of each."""
    N = prism.shape[0]
    # rotate / mirror so that the lowest vertex is bottom slot 0
    lowest = np.argmin(prism, axis=1)
    rot = lowest % 3
    top = lowest >= 3
    base = np.array([[0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3], [2, 0, 1, 5, 3, 4]])
    idx = base[rot]
    idx = np.where(top[:, None], idx[:, [3, 4, 5, 0, 1, 2]], idx)
    q = np.take_along_axis(prism, idx, axis=1)
    a0, a1, a2, b0, b1, b2 = q.T
    first = np.stack([a0, b1, b2, b0], axis=1)
    # the quad (a1, a2, b2, b1): diagonal a1-b2 if its lowest vertex is a1 or b2, else a2-b1
    quad = np.stack([a1, a2, b2, b1], axis=1)
    m = np.argmin(quad, axis=1)
    diag_a1b2 = (m == 0) | (m == 2)
    second = np.where(diag_a1b2[:, None], np.stack([a0, a1, a2, b2], axis=1), np.stack([a0, a1, a2, b1], axis=1))
    third = np.where(diag_a1b2[:, None], np.stack([a0, a1, b2, b1], axis=1), np.stack([a0, b1, a2, b2], axis=1))
    owner = np.concatenate([np.arange(N)] * 3)
    return np.concatenate([first, second, third]), owner


def _union_support(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """Row-wise union of two supports (N, 4) padded with -1 (at most 4: one original tet)."""
    both = np.sort(np.concatenate([sa, sb], axis=1), axis=1)
    dup = np.zeros_like(both, dtype=bool)
    dup[:, 1:] = both[:, 1:] == both[:, :-1]
    big = np.iinfo(np.int64).max
    both = np.sort(np.where(dup | (both < 0), big, both), axis=1)
    if np.any(both[:, 4] != big):
        raise AssertionError("contact-edge refinement: a cut point outside its original tet")
    out = both[:, :4]
    return np.where(out == big, -1, out)


def _facet_labels(mesh) -> dict[str, np.ndarray]:
    """Sorted face keys (:func:`vta.fem.mesh_skfem._face_keys`) of each named boundary's facets."""
    n = mesh.p.shape[1]
    return {name: np.sort(_face_keys(mesh.facets[:, np.asarray(idx)], n))
            for name, idx in (mesh.boundaries or {}).items()}


def _assemble_mesh(mesh, p, t, region, names, support, boundary_labels):
    """The refined skfem mesh with the original boundary and subdomain names."""
    from skfem import MeshTet


    n_new = p.shape[0]
    facets, t2f, _ = _build_facets(t.T, n_new)
    counts = np.bincount(t2f.ravel(), minlength=facets.shape[1])
    boundary = np.flatnonzero(counts == 1)
    # the original face of each boundary facet: the union of its vertices' supports
    sup = np.concatenate([support[facets[i, boundary]] for i in range(3)], axis=1)
    sup = np.sort(sup, axis=1)
    dup = np.zeros_like(sup, dtype=bool)
    dup[:, 1:] = sup[:, 1:] == sup[:, :-1]
    big = np.iinfo(np.int64).max
    sup = np.sort(np.where(dup | (sup < 0), big, sup), axis=1)
    if np.any(sup[:, 3] != big) or np.any(sup[:, 2] == big):  # exactly 3: one face
        raise AssertionError("contact-edge refinement: a boundary facet without one original face")
    keys = _face_keys(sup[:, :3].T, mesh.p.shape[1])
    boundaries = {name: boundary[np.isin(keys, k)].astype(np.int32) for name, k in boundary_labels.items()}
    subdomains = {name: np.flatnonzero(region == i).astype(np.int32) for i, name in enumerate(names)}
    out = MeshTet(np.ascontiguousarray(p.T), np.ascontiguousarray(t.T.astype(np.int32)))
    out = out.with_boundaries(boundaries).with_subdomains(subdomains) if subdomains else out.with_boundaries(boundaries)
    out._facets, out._t2f = facets, t2f
    return out
