"""Lead-local mesh templates: mesh a lead's neighbourhood once, reuse it for every placement.

:func:`vta.fem.mesh.build_mesh` builds its whole gmsh model in the lead's local frame
(the domain is moved there) and maps the nodes to world mm at the end. So the mesh in
the local frame depends only on the lead model, the mesh preset, the encapsulation
thickness, the lead length kept and where the domain lies *relative to the lead* - not
on where the lead is. With the default domain of an anatomy run (a sphere centred on
the middle of the contacts) that is the same for every placement: the demo scene, a
planner moving the lead, and every subject of a cohort with the same lead model share
one template, and meshing (2-4 s for a directional lead) becomes a file read
(hundredths of a second) followed by a rigid motion of the nodes.

A template is the skfem mesh in the local frame (nodes, elements, facets, named
boundaries and subdomains) in ``<cache>/mesh/<hash>.npz``, where ``<cache>`` is the
basis cache folder's parent (``~/.cache/vta`` or ``$XDG_CACHE_HOME/vta``), or
``$VTA_CACHE_DIR`` when set; ``$VTA_CACHE_DIR=off`` turns templates off with every other
cache. The key holds the lead geometry, the resolved preset, the shell thickness, the
lead length and the domain in the local frame (a sphere's local centre and radius; a
box's centre relative to the tip, its size and the lead's frame, because a box is
axis-aligned in world space), plus the fingerprint of the meshing code and the gmsh
version (:func:`vta.fem.cache.cache_key`). The mesh is always built from the rounded key
itself (:func:`canonical_scene`: a lead at the origin, the domain placed from the key),
never from the placement that happened to need it first, so a template hit and a fresh
build give the same mesh, with or without the cache (gmsh reacts to 1e-15 mm changes of
its input, which the rounding removes). Files are written atomically and pruned with
the basis cache's size limit; an unreadable file is deleted and meshed again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..leads import LeadPlacement
from .cache import _key_text, cache_dir, read_or_build, write_npz
from .mesh_domain import Domain

__all__ = ["TEMPLATE_FORMAT", "cached_local_mesh", "canonical_scene", "place_mesh", "template_dir"]

log = logging.getLogger(__name__)

#: bump when the file layout changes
TEMPLATE_FORMAT = 1


def template_dir() -> Path | None:
    """The template folder, or None when caching is off (``$VTA_CACHE_DIR=off``)."""
    folder = cache_dir()
    if folder is None:
        return None
    env = os.environ.get("VTA_CACHE_DIR")
    return (folder if env is not None else folder.parent) / "mesh"


def canonical_scene(domain: Domain, placement: LeadPlacement, length_mm: float
                    ) -> tuple[dict, Domain, LeadPlacement, float]:
    """What the local-frame mesh depends on, rounded, and a placement + domain + lead
    length that reproduce exactly that (so the mesh depends on the key alone, never on
    which placement built it first).

    A sphere is kept as its centre in the lead's frame and its radius (rounded to
    1e-9 mm); it is meshed around a lead at the origin along +z. A box is axis-aligned in
    world space, so it also depends on the lead's direction and rotation: kept as its
    centre relative to the tip, its size, the direction (rounded to 1e-12) and the
    rotation; it is meshed around a lead at the origin with that direction and rotation.

    Returns
    -------
    (key, canonical domain, canonical placement, rounded length in mm)
    """
    length = round(float(length_mm), 9)
    if domain.shape == "sphere":
        canon = LeadPlacement([0.0, 0.0, 0.0], [0.0, 0.0, 1.0], 0.0)
        centre = np.round(placement.to_local(domain.center_mm), 9) + 0.0
        key = {"shape": "sphere", "center_local_mm": centre, "radius_mm": float(domain.radius_mm)}
        return key, Domain.sphere(canon.to_world(centre), domain.radius_mm), canon, length
    direction = np.round(placement.direction, 12) + 0.0
    rotation = round(float(placement.rotation_deg), 9)
    canon = LeadPlacement([0.0, 0.0, 0.0], direction, rotation)
    centre = np.round(domain.center_mm - placement.tip_mm, 9) + 0.0
    size = np.asarray(domain.size_mm, dtype=float)
    key = {"shape": "box", "center_from_tip_mm": centre, "size_mm": size, "direction": direction,
           "rotation_deg": rotation}
    return key, Domain.box(centre, size), canon, length


def place_mesh(local, placement: LeadPlacement):
    """The local-frame mesh moved to world mm by ``placement`` (a rigid motion: element
    orientations, facets, boundaries and subdomains are kept)."""
    from skfem import MeshTet

    p = np.ascontiguousarray(placement.frame @ local.p + placement.tip_mm[:, None])
    mesh = MeshTet(p, local.t).with_boundaries(dict(local.boundaries)).with_subdomains(dict(local.subdomains))
    mesh._facets, mesh._t2f = local.facets, local.t2f
    return mesh


def _to_arrays(mesh) -> dict[str, np.ndarray]:
    arrays = {"p": mesh.p, "t": mesh.t, "facets": mesh.facets, "t2f": mesh.t2f}
    arrays.update({f"boundary:{k}": np.asarray(v) for k, v in mesh.boundaries.items()})
    arrays.update({f"subdomain:{k}": np.asarray(v) for k, v in mesh.subdomains.items()})
    return arrays


def _from_arrays(data) -> "skfem.MeshTet":  # noqa: F821
    from skfem import MeshTet

    boundaries = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("boundary:")}
    subdomains = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("subdomain:")}
    mesh = MeshTet(data["p"], data["t"]).with_boundaries(boundaries).with_subdomains(subdomains)
    mesh._facets, mesh._t2f = data["facets"], data["t2f"]
    return mesh


def _load(path: Path, key_text: str):
    with np.load(path, allow_pickle=False) as data:
        if int(data["__format__"]) != TEMPLATE_FORMAT or str(data["__key__"]) != key_text:
            raise ValueError("template of another format or key")
        return _from_arrays(data)


def _store(path: Path, mesh, key_text: str) -> bool:
    arrays = {"__format__": np.array(TEMPLATE_FORMAT), "__key__": np.array(key_text), **_to_arrays(mesh)}
    return write_npz(path, arrays, "mesh template")


def cached_local_mesh(key: dict, builder: Callable[[], object]) -> tuple[object, bool]:
    """The local-frame mesh of ``key`` from the template folder, or built and stored.

    Parameters
    ----------
    key : dict
        Everything the local mesh depends on (see the module docstring).
    builder : callable
        ``builder()`` meshes on a miss and returns the local-frame ``skfem.MeshTet``.

    Returns
    -------
    (mesh, hit)
        The local-frame mesh and whether it came from a template.
    """
    folder = template_dir()
    if folder is None:
        return builder(), False
    key_text = _key_text({"template": TEMPLATE_FORMAT, **key})
    mesh, hit, path, dt = read_or_build(folder, key_text, lambda p: _load(p, key_text), builder,
                                        lambda p, m: _store(p, m, key_text), "mesh template", "meshing again")
    if hit:
        log.info("mesh template loaded from %s in %.3f s", path, dt)
    return mesh, hit
