"""Tests of vta.activation.tracts: streamline I/O, polyline geometry, the synthetic ALIC bundle."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from vta.anatomy.default import default_anatomy
from vta.anatomy.atlas_io import read_nifti
from vta.errors import VtaError
from vta.activation.tracts import (Tract, arc_length, clip_to_region, clip_to_sphere, closest_points, default_alic_bundle,
                        fibre_segments_near, length_mm, load_tract, resample, resample_step, save_tract,
                        select_near)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRK_R, TRK_L = SHARED / "tracts" / "TR_A_R.trk", SHARED / "tracts" / "TR_A_L.trk"
JHU = SHARED / "atlases" / "JHU_space-MNI152NLin6_res-1x1x1.nii.gz"
#: origin missing from the HCP1065 .trk headers (data/README.md)
HCP_OFFSET = (78.0, 76.0, -50.0)
JHU_ALIC_R, JHU_ALIC_L = 17, 18
needs_shared = pytest.mark.skipif(not (TRK_R.is_file() and JHU.is_file()), reason="../shared/data not available")


def helix(n: int = 40, r: float = 5.0, pitch: float = 2.0, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    t = np.linspace(0, 3 * np.pi, n)
    return np.c_[r * np.cos(t), r * np.sin(t), pitch * t] + np.asarray(shift)


@pytest.fixture
def tract() -> Tract:
    rng = np.random.default_rng(3)
    s = [helix(40, shift=(-60.3, 12.1, -30.7)), np.array([[1.5, -2.0, 3.25], [4.0, 8.0, -9.0]]),
         np.cumsum(rng.normal(size=(57, 3)), axis=0) + [20.0, -40.0, 10.0]]
    return Tract("test", s, {"note": "unit test"}, fiber_diameter_um=5.7)


# --- I/O ----------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".trk", ".tck", ".vtk", ".vtp", ".npz"])
def test_round_trip(tmp_path: Path, tract: Tract, ext: str) -> None:
    p = save_tract(tract, tmp_path / f"bundle{ext}")
    assert p.is_file() and not list(tmp_path.glob(".*"))  # no temp file left behind
    back = load_tract(p)
    assert len(back) == len(tract)
    for a, b in zip(tract.streamlines, back.streamlines):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=0)
    assert back.name == ("test" if ext == ".npz" else "bundle")
    if ext == ".npz":
        assert back.fiber_diameter_um == 5.7 and back.source["note"] == "unit test"


def test_trk_header_encloses_streamlines(tmp_path: Path, tract: Tract) -> None:
    p = save_tract(tract, tmp_path / "b.trk")
    raw = nib.streamlines.load(str(p))
    hdr = raw.header
    vox = np.concatenate(list(raw.tractogram.apply_affine(np.linalg.inv(hdr["voxel_to_rasmm"])).streamlines))
    assert vox.min() >= 0 and np.all(vox.max(axis=0) < hdr["dimensions"])


def test_numpy_arrays(tmp_path: Path) -> None:
    one = np.c_[np.linspace(0, 9, 10), np.zeros(10), np.zeros(10)]
    np.save(tmp_path / "one.npy", one)
    np.save(tmp_path / "many.npy", np.stack([one, one + 1.0, one + 2.0]))
    assert len(load_tract(tmp_path / "one.npy")) == 1
    t = load_tract(tmp_path / "many.npy", name="m")
    assert len(t) == 3 and t.name == "m"
    np.testing.assert_array_equal(t.streamlines[2], one + 2.0)


def test_offset_and_affine(tmp_path: Path, tract: Tract) -> None:
    p = save_tract(tract, tmp_path / "b.npz")
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [1.0, 2.0, 3.0]
    t = load_tract(p, affine=aff, offset_mm=(10.0, 0.0, -1.0), fiber_diameter_um=3.0)
    np.testing.assert_allclose(t.streamlines[1], tract.streamlines[1] * 2 + [11.0, 2.0, 2.0], atol=1e-12)
    assert t.fiber_diameter_um == 3.0 and t.source["offset_mm"] == [10.0, 0.0, -1.0]
    np.testing.assert_allclose(tract.translated((1, 2, 3)).points_mm, tract.points_mm + [1, 2, 3])
    np.testing.assert_allclose(tract.transformed(aff).points_mm, tract.points_mm * 2 + [1, 2, 3])


def test_errors(tmp_path: Path, tract: Tract) -> None:
    with pytest.raises(VtaError, match="file not found"):
        load_tract(tmp_path / "nope.trk")
    (tmp_path / "t.txt").write_text("1 2 3\n")
    with pytest.raises(VtaError, match=r"unknown extension '\.txt'.*\.trk"):
        load_tract(tmp_path / "t.txt")
    with pytest.raises(VtaError, match="unknown extension"):
        save_tract(tract, tmp_path / "t.csv")
    (tmp_path / "empty.trk").write_bytes(b"")
    with pytest.raises(VtaError, match="file is empty"):
        load_tract(tmp_path / "empty.trk")
    (tmp_path / "junk.trk").write_bytes(b"not a trackvis file at all" * 50)
    with pytest.raises(VtaError, match="cannot read as TrackVis"):
        load_tract(tmp_path / "junk.trk")
    nib.streamlines.save(nib.streamlines.Tractogram([], affine_to_rasmm=np.eye(4)), str(tmp_path / "none.tck"))
    with pytest.raises(VtaError, match="contains no streamlines"):
        load_tract(tmp_path / "none.tck")
    bad = np.zeros((2, 5, 3))
    bad[1, 3, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(VtaError, match="streamline 1 has NaN"):
        load_tract(tmp_path / "nan.npy")
    with pytest.raises(VtaError, match="at least 2 needed"):
        Tract("x", [np.zeros((1, 3))])
    with pytest.raises(VtaError, match=r"shape \(n, 3\)"):
        Tract("x", [np.zeros((4, 2))])
    with pytest.raises(VtaError, match="nothing to save"):
        save_tract(Tract("x", []), tmp_path / "x.trk")


def test_vtk_short_lines_dropped(tmp_path: Path) -> None:
    import pyvista as pv

    pts = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [5, 5, 5]], float)
    mesh = pv.PolyData(pts, lines=np.array([3, 0, 1, 2, 1, 3]))
    mesh.save(tmp_path / "l.vtk")
    t = load_tract(tmp_path / "l.vtk")
    assert len(t) == 1
    np.testing.assert_array_equal(t.streamlines[0], pts[:3])


# --- geometry -----------------------------------------------------------------------

def test_arc_length_and_resample_straight() -> None:
    a, d = np.array([1.0, -2.0, 3.0]), np.array([2.0, 3.0, 6.0]) / 7.0
    line = a + np.array([0.0, 0.5, 3.0, 3.1, 10.0])[:, None] * d  # uneven vertex spacing
    np.testing.assert_allclose(arc_length(line), [0.0, 0.5, 3.0, 3.1, 10.0], atol=1e-12)
    s = np.linspace(0, 10, 41)
    np.testing.assert_allclose(resample(line, s), a + s[:, None] * d, atol=1e-12)
    ext = resample(line, [-2.0, 12.5], extrapolate=True)
    np.testing.assert_allclose(ext, a + np.array([[-2.0], [12.5]]) * d, atol=1e-12)
    with pytest.raises(VtaError, match="extrapolate=True"):
        resample(line, [10.5])
    u = resample_step(line, 0.3)
    assert np.allclose(np.diff(arc_length(u)), 10.0 / 34) and len(u) == 35


def test_resample_curved() -> None:
    h = helix(60)
    cum = arc_length(h)
    np.testing.assert_allclose(resample(h, cum), h, atol=1e-12)  # vertices exactly
    mid = 0.5 * (cum[:-1] + cum[1:])
    np.testing.assert_allclose(resample(h, mid), 0.5 * (h[:-1] + h[1:]), atol=1e-12)  # chord midpoints
    np.testing.assert_allclose(resample(h, [[1.0, 2.0], [3.0, 4.0]]).shape, (2, 2, 3))
    r = resample_step(h, 0.25)
    n = int(np.ceil(cum[-1] / 0.25)) + 1
    np.testing.assert_allclose(r, resample(h, np.linspace(0, cum[-1], n)), atol=1e-12)
    np.testing.assert_allclose(r[[0, -1]], h[[0, -1]], atol=1e-12)
    assert cum[-1] * (1 - 1e-3) < length_mm(r) <= cum[-1]  # chords cut the helix's corners slightly


def test_closest_points_and_select(tract: Tract) -> None:
    line = np.c_[np.linspace(-5, 5, 11), np.zeros(11), np.zeros(11)]
    t = Tract("t", [line, line + [0, 4, 0], line[::-1] + [0, 0, -1.5]])
    dist, arc, pt = closest_points(t, (1.3, 1.0, 0.0))
    np.testing.assert_allclose(dist, [1.0, 3.0, np.hypot(1.0, 1.5)], atol=1e-12)
    np.testing.assert_allclose(arc, [6.3, 6.3, 3.7], atol=1e-12)
    np.testing.assert_allclose(pt[2], [1.3, 0.0, -1.5], atol=1e-12)
    near = select_near(t, (1.3, 1.0, 0.0), 2.0)
    assert len(near) == 2 and np.array_equal(near.streamlines[1], t.streamlines[2])


def test_clip_to_sphere() -> None:
    x = np.linspace(-20, 20, 41)
    through = np.c_[x, np.zeros_like(x), np.zeros_like(x)]
    # in (short), out, in (long): a U-shaped path passing the sphere twice
    zig = np.concatenate([np.c_[np.full(5, 4.5), np.linspace(-6, 6, 5) * 0.3, np.zeros(5)],
                          np.c_[np.full(5, 9.0), np.zeros(5), np.zeros(5)],
                          np.c_[np.linspace(0, 4, 9), np.zeros(9), np.full(9, 1.0)]])
    far = through + [0, 30, 0]
    grazing = np.c_[np.linspace(4.6, 6, 3), np.zeros(3), np.zeros(3)]
    t = Tract("t", [through, zig, far, grazing])
    c, r = np.zeros(3), 4.75
    out, idx = clip_to_sphere(t, c, r, min_length_mm=0.5, return_index=True)
    assert idx.tolist() == [0, 1]
    p0 = out.streamlines[0]
    np.testing.assert_allclose(p0[[0, -1]], [[-r, 0, 0], [r, 0, 0]], atol=1e-12)  # exact crossings
    assert abs(length_mm(p0) - 2 * r) < 1e-12
    p1 = out.streamlines[1]
    assert len(p1) == 10 and np.allclose(p1[1:, 2], 1.0)  # the longer second pass: entry + 9 points
    np.testing.assert_allclose(np.linalg.norm(p1[0]), r, atol=1e-12)
    assert np.all(np.linalg.norm(np.concatenate(out.streamlines), axis=1) <= r + 1e-9)
    assert len(clip_to_sphere(t, c, r, min_length_mm=10.0)) == 0
    assert out.source["clipped_to_sphere"]["radius_mm"] == r


def test_clip_to_region() -> None:
    x = np.linspace(0, 10, 11)
    s = np.c_[x, np.zeros(11), np.zeros(11)]
    t = Tract("t", [s, s + [0, 5, 0]])
    inbox = lambda p: (p[:, 0] >= 2) & (p[:, 0] <= 7) & (np.abs(p[:, 1]) < 1) & (p[:, 0] != 5)  # noqa: E731
    out = clip_to_region(t, inbox, min_length_mm=1.0)
    assert len(out) == 1
    np.testing.assert_array_equal(out.streamlines[0][:, 0], [2, 3, 4])  # longest run: 2-4 (6-7 shorter)


def test_fibre_segments_near() -> None:
    x = np.linspace(0, 10, 6)  # 2 mm spacing
    s = np.c_[x, np.zeros(6), np.zeros(6)]
    bent = np.array([[0, 3, 0], [4, 3, 0], [4, 7, 0]], float)
    t = Tract("t", [s, s + [0, 0, 20.0], bent], fiber_diameter_um=2.0)
    seg = fibre_segments_near(t, (2.0, 1.0, 0.0), length_mm=8.0, radius_mm=3.0, step_mm=0.5)
    assert seg.streamline_index.tolist() == [0, 2] and seg.fiber_diameter_um == 2.0
    assert seg.points_mm.shape == (2, 17, 3) and seg.length_mm == 8.0
    np.testing.assert_allclose(seg.points_mm[0][:, 0], np.linspace(-2, 6, 17), atol=1e-12)
    np.testing.assert_allclose(seg.extension_mm[0], [2.0, 0.0])
    np.testing.assert_allclose(seg.distance_mm, [1.0, 2.0])
    # the bent streamline: centre (2, 3, 0) at arc 2; nodes follow the corner, extend past the far end
    b = seg.points_mm[1]
    np.testing.assert_allclose(b[0], [-2, 3, 0], atol=1e-12)
    np.testing.assert_allclose(b[-1], [4, 5, 0], atol=1e-12)
    np.testing.assert_allclose(seg.extension_mm[1], [2.0, 0.0])
    long = fibre_segments_near(t, (4.0, 3.0, 0.0), length_mm=14.0, radius_mm=0.1, offsets_mm=[-7, 0, 7])
    np.testing.assert_allclose(long.points_mm[0], [[-3, 3, 0], [4, 3, 0], [4, 10, 0]], atol=1e-12)
    np.testing.assert_allclose(long.extension_mm[0], [3.0, 3.0])
    with pytest.raises(VtaError, match="exceeds"):
        fibre_segments_near(t, (0, 0, 0), 2.0, 1.0, offsets_mm=[-2, 0, 2])
    assert len(fibre_segments_near(t, (100, 0, 0), 4.0, 1.0)) == 0


# --- the synthetic ALIC bundle ------------------------------------------------------

def _mean_direction(tract: Tract, inside) -> np.ndarray:
    """Principal direction (sign-free, +y) of the unit tangents at points where ``inside``."""
    pts, tan = [], []
    for s in tract.streamlines:
        d = np.gradient(s, axis=0)
        n = np.linalg.norm(d, axis=1)
        ok = n > 0
        pts.append(s[ok])
        tan.append(d[ok] / n[ok, None])
    p, t = np.concatenate(pts), np.concatenate(tan)
    m = inside(p)
    _, vecs = np.linalg.eigh(t[m].T @ t[m])
    v = vecs[:, -1]
    return v * np.sign(v[1])


def _inside_within_extent(b: Tract, structure) -> float:
    u, c0 = np.array(b.source["axis"]), np.array(b.source["origin_mm"])
    lo, hi = b.source["mask_extent_mm"]
    t = (b.points_mm - c0) @ u
    return float(structure.contains(b.points_mm[(t >= lo) & (t <= hi)]).mean())


@pytest.fixture(scope="module")
def anatomy():
    return default_anatomy()


@pytest.mark.parametrize("side", ["R", "L"])
def test_default_alic_bundle(anatomy, side: str) -> None:
    b = default_alic_bundle(anatomy, side, n_fibres=80, seed=1)
    assert b.name == f"ALIC_{side}_bundle" and len(b) == 80
    assert b.source["kind"] == "synthetic" and "not tractography" in b.source["note"]
    assert "embedded default anatomy's ALIC mask" in b.source["note"]
    alic = anatomy.structure(f"ALIC_{side}")
    frac = _inside_within_extent(b, alic)
    assert frac > 0.8, frac
    # runs posterior (thalamic end) -> anterior, extended beyond the mask at both ends
    first = np.array([s[0] for s in b.streamlines])
    last = np.array([s[-1] for s in b.streamlines])
    assert np.all(last[:, 1] > first[:, 1] + 20)
    assert not alic.contains(first).any() and not alic.contains(last).any()
    assert np.all(b.lengths_mm() > 45)
    steps = np.concatenate([np.diff(arc_length(s)) for s in b.streamlines])
    assert steps.max() <= 0.5 + 1e-9 and steps.min() > 0.4
    again = default_alic_bundle(anatomy, side, n_fibres=80, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(b.streamlines, again.streamlines))
    other = default_alic_bundle(anatomy, side, n_fibres=80, seed=2)
    assert not np.array_equal(b.streamlines[0], other.streamlines[0])


def test_default_alic_bundle_without_thalamus(anatomy) -> None:
    from vta.anatomy.model import Anatomy

    user = Anatomy(anatomy.tissue, {n: s for n, s in anatomy.structures.items() if not n.startswith("thalamus")})
    b = default_alic_bundle(user, "R", n_fibres=40, name="ALIC_bundle", fiber_diameter_um=5.7)
    assert b.name == "ALIC_bundle" and b.fiber_diameter_um == 5.7
    assert "no thalamus" in b.source["axis_method"] and "given anatomy" in b.source["note"]
    assert _inside_within_extent(b, anatomy.structure("ALIC_R")) > 0.8
    assert b.source["axis"][0] > 0.3 and b.source["axis"][1] > 0.6  # anterolateral


def test_default_alic_bundle_errors(anatomy) -> None:
    with pytest.raises(VtaError, match="side"):
        default_alic_bundle(anatomy, "X")
    with pytest.raises(VtaError, match="n_fibres"):
        default_alic_bundle(anatomy, "R", n_fibres=0)


# --- against real data (../shared/data; skipped without it) -------------------------

@needs_shared
def test_hcp_trk_offset_lands_in_jhu_alic() -> None:
    jhu = read_nifti(JHU, what="JHU atlas")
    ijk = np.argwhere(jhu.data == JHU_ALIC_R)
    w = jhu.voxel_to_world(ijk)
    lo, hi = w.min(axis=0) - 0.5, w.max(axis=0) + 0.5

    def fraction(t: Tract) -> float:
        p = t.points_mm
        box = np.all((p >= lo) & (p <= hi), axis=1)
        return float(np.mean(jhu.sample_nearest(p[box]) == JHU_ALIC_R)) if box.any() else 0.0

    assert fraction(load_tract(TRK_R, offset_mm=HCP_OFFSET)) > 0.6  # measured 0.68
    assert fraction(load_tract(TRK_R)) < 0.05  # without the origin the tract misses the ALIC
    # every streamline that touches an ALIC touches the same-side one (L: 492 of 602, R: 414 of 414)
    for path, own, other, n_min in ((TRK_R, JHU_ALIC_R, JHU_ALIC_L, 400), (TRK_L, JHU_ALIC_L, JHU_ALIC_R, 450)):
        t = load_tract(path, offset_mm=HCP_OFFSET)
        lab = jhu.sample_nearest(t.points_mm).astype(int)
        touches = np.zeros((len(t), 2), bool)
        np.logical_or.at(touches, (t.streamline_ids, np.zeros(len(lab), int)), lab == own)
        np.logical_or.at(touches, (t.streamline_ids, np.ones(len(lab), int)), lab == other)
        assert touches[:, 0].sum() >= n_min and not touches[:, 1].any(), path.name


@needs_shared
@pytest.mark.parametrize("side", ["R", "L"])
def test_default_bundle_matches_real_tract_direction(anatomy, side: str) -> None:
    real = load_tract(TRK_R if side == "R" else TRK_L, offset_mm=HCP_OFFSET)
    alic = anatomy.structure(f"ALIC_{side}")
    b = default_alic_bundle(anatomy, side, n_fibres=100, seed=0)
    d_real, d_bundle = _mean_direction(real, alic.contains), _mean_direction(b, alic.contains)
    angle = np.degrees(np.arccos(min(1.0, abs(d_real @ d_bundle))))
    assert angle < 20.0, angle  # measured 7.3 (R), 10.1 (L); the ALIC voxels' first principal axis: 39 (R)
