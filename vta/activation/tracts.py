"""Fibre tracts: streamline I/O, polyline geometry and a synthetic default ALIC bundle.

A :class:`Tract` is a named set of streamlines, each an ``(n_i, 3)`` polyline in world
millimetres (RAS+, the same space as the anatomy), with provenance and an optional
fibre diameter for the axon models.

Files (:func:`load_tract`, :func:`save_tract`):

* ``.trk`` (TrackVis) and ``.tck`` (MRtrix) through ``nibabel.streamlines``; nibabel
  returns RAS+ mm whatever the file's voxel order;
* ``.vtk`` (legacy) and ``.vtp`` (XML) poly data through pyvista: every line or
  polyline cell is one streamline, point coordinates taken as world mm;
* ``.npy``: one regular array ``(n_points, 3)`` (one streamline) or
  ``(n_streamlines, n_points, 3)``; ``.npz``: ``points`` ``(M, 3)`` and ``lengths``
  ``(n,)`` (points per streamline), optionally ``name``, ``source`` (JSON) and
  ``fiber_diameter_um`` -- the format :func:`save_tract` writes.

Geometry works on the packed form (all points in one array, vectorised numpy):
:func:`arc_length`, :func:`resample` (points at given arc lengths, optional straight
extension past the ends), :func:`closest_points`, :func:`select_near`,
:func:`clip_to_sphere` and :func:`clip_to_region` (keep the longest inside piece of
each streamline), and :func:`fibre_segments_near` (fixed-length pieces centred on
the point closest to a target: what the axon models are placed on).

:func:`default_alic_bundle` generates a synthetic bundle through the anatomy's
``ALIC_L``/``ALIC_R`` mask for the demo; it is labelled as synthetic, not
tractography.

The code lives in three modules, one job each: :mod:`vta.activation.streamlines`
(:class:`Tract`, geometry, fibre pieces), :mod:`vta.activation.tract_io` (files) and
:mod:`vta.activation.alic_bundle` (the synthetic bundle). This module re-exports their
public names, the import path the rest of vta uses.
"""

from __future__ import annotations

from .alic_bundle import ALIC_BUNDLE_PARAMS, FALLBACK_ALIC_AXIS, SYNTHETIC_NOTE, default_alic_bundle
from .streamlines import (END_TANGENT_MM, FibreSegments, Tract, arc_length, clip_to_region, clip_to_sphere,
                          closest_points, fibre_segments_near, length_mm, resample, resample_step, select_near)
from .tract_io import TRACT_FORMATS, load_tract, save_tract

__all__ = [
    "ALIC_BUNDLE_PARAMS", "END_TANGENT_MM", "FALLBACK_ALIC_AXIS", "SYNTHETIC_NOTE", "TRACT_FORMATS",
    "FibreSegments", "Tract",
    "arc_length", "clip_to_region", "clip_to_sphere", "closest_points", "default_alic_bundle",
    "fibre_segments_near", "length_mm", "load_tract", "resample", "resample_step", "save_tract",
    "select_near",
]
