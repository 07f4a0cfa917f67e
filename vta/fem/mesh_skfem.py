"""Conversion of a gmsh tetrahedral mesh to a :class:`skfem.MeshTet`.

Reads the nodes and elements of the current gmsh model, drops unused nodes, orients
every tetrahedron positively, maps the nodes from the lead's local frame to world mm
(a rigid motion) and builds skfem's facet arrays and the named boundaries and
subdomains directly (sorted packed face keys instead of ``np.unique(axis=1)``, about
10x faster). skfem is imported on first use (~0.3 s).
"""

from __future__ import annotations

import numpy as np

from ..errors import VtaError
from ..leads import LeadPlacement

__all__: list[str] = []

_PACK_LIMIT = 2**21  # nodes: below it a face's three vertex indices pack into one int64


def _face_keys(tri: np.ndarray, n_nodes: int) -> np.ndarray:
    """One sortable key per triangle (3, n) of vertex indices, ordered like the
    lexicographic order of the sorted triples: a packed int64 below 2**21 nodes, else a
    (a * n_nodes + b, c) record."""
    tri = np.sort(tri, axis=0).astype(np.int64)
    if n_nodes < _PACK_LIMIT:
        return (tri[0] << 42) | (tri[1] << 21) | tri[2]
    return np.rec.fromarrays([tri[0] * n_nodes + tri[1], tri[2]], names="ab,c")


def _build_facets(t: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """skfem-compatible ``facets`` (3, nf; sorted columns in lexicographic order) and
    ``t2f`` (4, nt), plus the sorted facet keys (see :func:`_face_keys`)."""
    from skfem import MeshTet

    idx = MeshTet.elem.refdom.facets
    faces = np.sort(np.hstack([t[list(ix)] for ix in idx]), axis=0)
    keys, first, inverse = np.unique(_face_keys(faces, n_nodes), return_index=True, return_inverse=True)
    facets = np.ascontiguousarray(faces[:, first].astype(np.int32))
    t2f = inverse.reshape(len(idx), t.shape[1]).astype(np.int32)
    return facets, t2f, keys


def _facet_indices(facet_keys: np.ndarray, tri: np.ndarray, n_nodes: int) -> np.ndarray:
    """Indices into the facets of triangles (3, n), by binary search on the sorted keys."""
    if tri.shape[1] == 0:
        return np.zeros(0, dtype=np.int32)
    keys = _face_keys(tri, n_nodes)
    ix = np.minimum(np.searchsorted(facet_keys, keys), len(facet_keys) - 1)
    if not np.all(facet_keys[ix] == keys):
        raise VtaError("meshing failed: a tagged boundary triangle is not a face of the volume mesh")
    return np.unique(ix).astype(np.int32)


def _elements(gmsh, dim: int, tags: list[int], node_index: np.ndarray) -> np.ndarray:
    etype = 4 if dim == 3 else 2
    n = 4 if dim == 3 else 3
    parts = [np.zeros((n, 0), dtype=np.int64)]
    for tag in tags:
        _, nodes = gmsh.model.mesh.getElementsByType(etype, tag)
        parts.append(node_index[np.asarray(nodes, dtype=np.int64)].reshape(-1, n).T)
    return np.hstack(parts)


def _orient(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Swap two vertices of negatively oriented tets (positive Jacobian everywhere)."""
    e1, e2, e3 = (p[:, t[i]] - p[:, t[0]] for i in (1, 2, 3))
    neg = np.einsum("ij,ij->j", e1, np.cross(e2, e3, axis=0)) < 0
    if np.any(neg):
        t = t.copy()
        t[1, neg], t[2, neg] = t[2, neg], t[1, neg]
    return t


def _to_skfem(gmsh, volumes: dict[str, list[int]], surfaces: dict[str, list[int]],
              placement: LeadPlacement | None = None):
    """skfem MeshTet (unused nodes dropped) with named boundaries and subdomains; with
    ``placement``, the gmsh model is in the lead's local frame and the nodes are mapped
    to world mm (a rigid motion: orientations are kept)."""
    from skfem import MeshTet

    tags, coords, _ = gmsh.model.mesh.getNodes()
    tags = np.asarray(tags, dtype=np.int64)
    node_index = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
    node_index[tags] = np.arange(len(tags))
    xyz = np.asarray(coords, dtype=float).reshape(-1, 3).T
    if placement is not None:
        xyz = placement.frame @ xyz + placement.tip_mm[:, None]
    t_parts = {name: _elements(gmsh, 3, vols, node_index) for name, vols in volumes.items()}
    t = np.hstack(list(t_parts.values()))
    used, t = np.unique(t, return_inverse=True)
    t = t.reshape(4, -1)
    remap = np.full(len(tags), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    p = np.ascontiguousarray(xyz[:, used])
    t = _orient(p, t)
    n = p.shape[1]
    facets, t2f, keys = _build_facets(t, n)
    boundaries = {name: _facet_indices(keys, remap[_elements(gmsh, 2, s, node_index)], n)
                  for name, s in surfaces.items()}
    start, subdomains = 0, {}
    for name, part in t_parts.items():
        subdomains[name] = np.arange(start, start + part.shape[1], dtype=np.int32)
        start += part.shape[1]
    mesh = MeshTet(p, t.astype(np.int32)).with_boundaries(boundaries).with_subdomains(subdomains)
    # the very arrays skfem would build with np.unique(axis=1), ~10x faster
    mesh._facets, mesh._t2f = facets, t2f
    return mesh
