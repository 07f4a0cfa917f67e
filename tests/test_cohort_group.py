"""vta group: subject variables in manifests, the cohort table, the common grid, the voxel
statistics (against scipy), the planted-effect maps, the outputs, the CLI and its errors,
and a real Dask scheduler on loopback giving the same maps as the local run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.stats as st

from vta.cli import main
from vta.cohort.run import run_group
from vta.cohort.table import load_cohort, parse_value
from vta.cohort.stats import fwe_threshold, pearson_t, permutation_matrix, residualise, welch_t
from vta.cohort.voxel_stats import _prepare, sweet_spot
from vta.cohort.voxels import VoxelData, frequency_count, mask_lattice_points, sample_at_lattice
from vta.errors import VtaError
from vta.studies.batch import frequency_map, write_group_outputs
from vta.studies.manifest import RESERVED_VARIABLES, load_manifest

SWEET_MM = np.array([12.0, 14.0, -6.0])  # planted region centre (MNI mm)
SWEET_RADIUS_MM = 2.0
VTA_RADIUS_MM = 3.0
THRESHOLD = 0.2  # V/mm


# ----------------------------------------------------------------------------- a real batch folder


def _ball_images(centre: np.ndarray, rng: np.random.Generator) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """A VTA ball and its |E| (V/mm) on the subject's own 0.5 mm grid (origin off the 1 mm lattice)."""
    spacing = 0.5
    origin = np.round(centre) - 8.0 + rng.uniform(0, 0.5, 3)  # a 16 mm box around the contact
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = origin
    ijk = np.stack(np.meshgrid(*(np.arange(32),) * 3, indexing="ij"), axis=-1)
    world = origin + spacing * ijk
    r = np.linalg.norm(world - centre, axis=-1)
    efield = (THRESHOLD * (VTA_RADIUS_MM / np.maximum(r, 0.7)) ** 2).astype(np.float32)  # 0.2 V/mm at 3 mm
    vta = (efield >= THRESHOLD).astype(np.uint8)
    return nib.Nifti1Image(vta, affine), nib.Nifti1Image(efield, affine)


def make_batch(root: Path, n: int = 30, effect: float = 1.0, noise: float = 0.05, seed: int = 2,
               jitter: float = 3.5, hemispheres: tuple[str, ...] = ("R",), extra: dict[str, list[str]] | None = None,
               binary: bool = False, statuses: dict[int, str] | None = None) -> tuple[Path, np.ndarray]:
    """A finished batch folder: subjects/<s>_<h>/{vta,efield_norm}.nii.gz and group.csv.

    Each hemisphere's VTA is a 3 mm ball whose centre is jittered uniformly within
    +-``jitter`` mm of the planted centre on each axis (the left one mirrored); the outcome
    'score' is ``effect`` x the (smooth) overlap of the ball with the 2 mm planted sphere,
    plus Gaussian noise; 'age' is unrelated. Returns (batch folder, outcomes).
    """
    rng = np.random.default_rng(seed)
    centres = SWEET_MM + rng.uniform(-jitter, jitter, (n, 3))
    d = np.linalg.norm(centres - SWEET_MM, axis=1)
    overlap = np.clip((VTA_RADIUS_MM + SWEET_RADIUS_MM - d) / (2 * SWEET_RADIUS_MM), 0, 1)
    y = effect * overlap + noise * rng.standard_normal(n)
    if binary:
        y = (y > np.median(y)).astype(float)
    age = np.round(rng.uniform(30, 60, n))
    rows = []
    for i in range(n):
        subject = f"s{i + 1:02d}"
        for h in hemispheres:
            c = centres[i] * (np.array([-1, 1, 1]) if h == "L" else 1)
            folder = root / "subjects" / f"{subject}_{h}"
            folder.mkdir(parents=True)
            vta, ef = _ball_images(c, rng)
            nib.save(vta, folder / "vta.nii.gz")
            nib.save(ef, folder / "efield_norm.nii.gz")
            status = (statuses or {}).get(i, "ok")
            score = ("yes" if y[i] else "no") if binary else f"{y[i]:.6f}"
            row = {"subject": subject, "hemisphere": h, "status": status, "vta_volume_mm3": "113.1",
                   "score": score, "age": f"{age[i]:g}"}
            row.update({k: v[i] for k, v in (extra or {}).items()})
            row["error"] = "" if status == "ok" else "solver failed"
            rows.append(row)
    with open(root / "group.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root, y


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root, y = make_batch(tmp_path_factory.mktemp("batch"))
    return root, y


@pytest.fixture(scope="module")
def local_run(batch, tmp_path_factory):
    root, _ = batch
    out = tmp_path_factory.mktemp("group") / "local"
    result = run_group(root, "score", permutations=199, min_n=6, out_dir=out, seed=7, fibres=False,
                       prediction=False, unit="hemisphere")
    return result, out


# ----------------------------------------------------------------------------- manifests


TEMPLATE = """
[lead]
model = "Medtronic 3389"
tip_mm = [10.0, 12.0, -8.0]
direction = [0.3, 0.4, 0.8]
[domain]
shape = "sphere"
radius_mm = 20.0
center_mm = [10.0, 12.0, -4.0]
[tissue]
conductivity_S_per_m = 0.2
[stimulation]
mode = "current"
contacts = { 1 = -2.0 }
pulse_width_us = 60
[vta]
threshold_V_per_mm = 0.2
"""


def _manifest(folder: Path, header: str, rows: list[str]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template.toml").write_text(TEMPLATE)
    (folder / "m.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return folder / "m.csv", folder / "template.toml"


def test_manifest_variables_are_kept_out_of_the_configuration(tmp_path):
    m, t = _manifest(tmp_path, "subject,hemisphere,contacts,abstinent,age,mood",
                     ["s1,R,1:-2,yes,41,3", "s2,R,1:-2,,55,", "s3,L,1:-3,no,38,2"])
    man = load_manifest(m, t)
    assert man.variables == ("abstinent", "age", "mood")  # 'mood' is close to 'mode' but not taken for it
    s1, s2, s3 = man.subjects
    assert s1.variables == {"abstinent": "yes", "age": "41", "mood": "3"}
    assert s2.variables == {"age": "55"}  # empty cells are not given
    plain, _ = _manifest(tmp_path / "plain", "subject,hemisphere,contacts", ["s1,R,1:-2"])
    assert load_manifest(plain, t).subjects[0].config_data() == s1.config_data()  # so the hash is the same too
    out = tmp_path / "out"
    (out / "subjects").mkdir(parents=True)
    write_group_outputs(man, out, hashes={})
    header = (out / "group.csv").read_text().splitlines()[0].split(",")
    assert header[-4:] == ["abstinent", "age", "mood", "error"]  # after the batch's columns, before 'error'
    assert set(header[:-4]) <= RESERVED_VARIABLES  # no variable can take a column the batch fills
    rows = read_csv(out / "group.csv")
    assert [(r["subject"], r["abstinent"], r["age"], r["status"]) for r in rows] == [
        ("s1", "yes", "41", "missing"), ("s2", "", "55", "missing"), ("s3", "no", "38", "missing")]


@pytest.mark.parametrize("header, message", [
    ("subject,hemisphere,contact", r"line 1: unknown column 'contact'; did you mean 'contacts'\?"),
    ("subject,hemisphere,model", r"unknown column 'model'; did you mean 'mode'\?"),
    ("subject,hemisphere,tip", r"unknown column 'tip'; did you mean 'tip_[xyz]'\?"),
    ("subject,hemisphere,Subject", r"unknown column 'Subject'; did you mean 'subject'\?"),
    ("subject,hemisphere,status", r"column 'status' is a group.csv column that the batch fills"),
    ("subject,hemisphere,threshold_V_per_mm", r"is a template key; .* 'vta.threshold_V_per_mm'"),
    ("subject,hemisphere,UPDRS improvement", r"may hold only letters, digits"),
])
def test_manifest_near_misses_and_reserved_names_still_fail(tmp_path, header, message):
    m, t = _manifest(tmp_path, header, ["s1,R,1"])
    with pytest.raises(VtaError, match=message):
        load_manifest(m, t)


def test_toml_manifest_variables_table(tmp_path):
    (tmp_path / "template.toml").write_text(TEMPLATE)
    (tmp_path / "m.toml").write_text("""template = "template.toml"
[[subjects]]
subject = "s1"
hemisphere = "R"
[subjects.variables]
abstinent = true
age = 41
craving = 62.5
[[subjects]]
subject = "s2"
hemisphere = "R"
age = 50
[[subjects]]
subject = "s3"
hemisphere = "R"
variables = { age = [1, 2] }
""")
    man = load_manifest(tmp_path / "m.toml")
    s1, s2, s3 = man.subjects
    assert man.variables == ("abstinent", "age", "craving")
    assert s1.error is None and s1.variables == {"abstinent": "true", "age": "41", "craving": "62.5"}
    assert "unknown key 'age' (outcomes and covariates go into a 'variables' table)" in s2.error
    assert "variable 'age' must be a number, boolean or string" in s3.error


# ----------------------------------------------------------------------------- the cohort table


def test_parse_value():
    assert parse_value(" 3.5 ") == 3.5 and parse_value("YES") == 1.0 and parse_value("false") == 0.0
    assert parse_value("") is None and parse_value("NA") is None and parse_value("n/a") is None
    for bad in ("maybe", "inf"):
        with pytest.raises(ValueError):
            parse_value(bad)


def test_load_cohort_units_drops_covariates_and_outcomes_file(tmp_path):
    root, y = make_batch(tmp_path, n=8, hemispheres=("R", "L"), binary=True, statuses={2: "failed"},
                         extra={"dur": ["1", "2", "3", "", "5", "NA", "7", "8"]})
    c = load_cohort(root, "score", covariates=["dur"])
    assert c.binary and c.unit == "subject" and c.covariate_names == ["dur"]
    assert c.subjects == ["s01", "s02", "s05", "s07", "s08"]
    assert dict(c.dropped) == {"s03": "hemisphere R status failed: solver failed", "s04": "covariate 'dur' missing",
                               "s06": "covariate 'dur' missing"}
    assert [f.name for f in c.folders[0]] == ["s01_R", "s01_L"]
    np.testing.assert_array_equal(c.y, y[[0, 1, 4, 6, 7]])
    np.testing.assert_array_equal(c.covariates[:, 0], [1, 2, 5, 7, 8])
    h = load_cohort(root, "score", unit="hemisphere", mirror=True)
    assert h.subjects[:3] == ["s01_R", "s01_L", "s02_R"] and h.n == 14 and h.mirror
    (root / "subjects" / "s08_L" / "vta.nii.gz").unlink()  # status ok, image gone: dropped, not an error
    assert ("s08", "subjects/s08_L/vta.nii.gz missing") in load_cohort(root, "score").dropped
    # --outcomes: overrides (non-empty cells) and new columns; subjects not in the batch are ignored
    (tmp_path / "extra.csv").write_text("subject,score,moca\ns01,no,27\ns02,,26\ns05,yes,\ns06,no,25\n"
                                        "s07,,24\nzz,yes,1\n")
    e = load_cohort(root, "score", outcomes_csv=tmp_path / "extra.csv")
    assert e.y[0] == 0.0 and e.y[1] == y[1]
    m = load_cohort(root, "moca", outcomes_csv=tmp_path / "extra.csv")
    assert m.subjects == ["s01", "s02", "s06", "s07"] and not m.binary
    assert ("s05", "outcome 'moca' missing") in m.dropped


def _rewrite(root: Path, column: str, values: dict[tuple[str, str], str]) -> None:
    rows = read_csv(root / "group.csv")
    for r in rows:
        r[column] = values.get((r["subject"], r["hemisphere"]), r[column])
    with open(root / "group.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_load_cohort_errors_are_one_line(tmp_path):
    with pytest.raises(VtaError, match=r"group.csv not found: give the output folder of a finished vta batch"):
        load_cohort(tmp_path, "score")
    root, _ = make_batch(tmp_path / "b", n=6, hemispheres=("R", "L"))
    with pytest.raises(VtaError, match=r"outcome column 'scor' is not in .*group.csv; did you mean 'score'\?"):
        load_cohort(root, "scor")
    with pytest.raises(VtaError, match=r"covariate column 'agee' is not in .*; did you mean 'age'"):
        load_cohort(root, "score", covariates=["agee"])
    with pytest.raises(VtaError, match="'score' is the outcome and cannot be a covariate"):
        load_cohort(root, "score", covariates=["score"])
    original = (root / "group.csv").read_text()
    cases = [
        ("score", {("s02", "L"): "0.25"}, {}, r"subject s02 has different 'score' values on its rows \(L 0.25 vs R "
                                              r".*\); give one value per subject, or use --unit hemisphere"),
        ("score", {("s03", "R"): "good"}, {}, r"group.csv: subject s03 R: outcome 'score' = 'good' is not a number "
                                              r"\(or yes/no, true/false\)$"),
        ("score", {("s03", "R"): "yes", ("s03", "L"): "yes"}, {}, "mixes yes/no words with other numbers"),
        ("age", {(f"s0{i}", h): "40" for i in range(1, 7) for h in "RL"}, {"covariates": ["age"]},
         "covariate 'age' does not vary: all 6 units have 40"),
        ("score", {(f"s0{i}", h): "" for i in range(1, 4) for h in "RL"}, {},
         r"only 3 usable units for outcome 'score' .* \(need at least 4\); 3 dropped, e.g. s01: outcome 'score' "
         "missing"),
        ("score", {(f"s0{i}", h): "1.5" for i in range(1, 7) for h in "RL"}, {},
         "outcome 'score' does not vary: all 6 units have 1.5"),
    ]
    for column, values, kwargs, message in cases:
        (root / "group.csv").write_text(original)
        _rewrite(root, column, values)
        with pytest.raises(VtaError, match=message) as info:
            load_cohort(root, "score", **kwargs)
        assert "\n" not in str(info.value)
    (root / "group.csv").write_text(original)
    _rewrite(root, "score", {("s02", "L"): "0.25"})
    assert load_cohort(root, "score", unit="hemisphere").n == 12  # per hemisphere R and L may differ


# ----------------------------------------------------------------------------- the common grid


def test_lattice_sampling_matches_brute_force_and_mirrors_exactly():
    rng = np.random.default_rng(0)
    mask = rng.random((9, 8, 7)) < 0.3
    affine = np.array([[0.7, 0.1, 0, -3.3], [0, 0.6, 0.05, 2.2], [0, 0, 0.8, -1.1], [0, 0, 0, 1.0]])
    pts = mask_lattice_points(mask, affine, 0.5)
    inv = np.linalg.inv(affine)
    box = np.stack(np.meshgrid(*(np.arange(-20, 30),) * 3, indexing="ij"), -1).reshape(-1, 3)
    src = np.floor((box * 0.5) @ inv[:3, :3].T + inv[:3, 3] + 0.5).astype(int)
    ok = np.all((src >= 0) & (src < mask.shape), axis=1)
    want = box[ok][mask[tuple(src[ok].T)]]
    assert {tuple(p) for p in pts} == {tuple(p) for p in want}
    mirrored = mask_lattice_points(mask, affine, 0.5, mirror=True)
    assert {tuple(p) for p in mirrored} == {(-a, b, c) for a, b, c in want}
    values = np.arange(mask.size, dtype=np.float32).reshape(mask.shape)
    sampled = sample_at_lattice(values, affine, want, 0.5)
    np.testing.assert_array_equal(sampled, values[tuple(src[ok][mask[tuple(src[ok].T)]].T)])
    np.testing.assert_array_equal(sample_at_lattice(values, affine, want * [-1, 1, 1], 0.5, mirror=True), sampled)


def test_n_map_is_the_count_and_matches_the_batch_frequency_map(batch, tmp_path):
    root, _ = batch
    c = load_cohort(root, "score", unit="hemisphere")
    data = VoxelData.from_cohort(c)
    images = [f[0] / "vta.nii.gz" for f in c.folders]
    count, affine = frequency_map(images)
    np.testing.assert_array_equal(data.n_map(), count)
    np.testing.assert_array_equal(data.grid.affine, affine)
    assert (count, affine)[0].shape == frequency_count(images)[0].shape
    # every unit's coverage is its own mask sampled at the voxel centres
    world = data.grid.world(data.support)
    for i in (0, 7):
        img = nib.load(images[i])
        ijk = np.floor(nib.affines.apply_affine(np.linalg.inv(img.affine), world) + 0.5).astype(int)
        ok = np.all((ijk >= 0) & (ijk < img.shape), axis=1)
        inside = np.zeros(len(world), bool)
        inside[ok] = np.asarray(img.dataobj)[tuple(ijk[ok].T)] > 0
        _, X = data.matrix("vta", 1)
        flat, X = next(data.chunks("vta", 1, chunk_voxels=10**9))
        assert set(flat[X[i] > 0]) == set(data.support[inside]) & set(flat)
    # subject units: the union of both hemispheres, mirrored onto the right
    root2, _ = make_batch(tmp_path / "two", n=5, hemispheres=("R", "L"))
    s = VoxelData.from_cohort(load_cohort(root2, "score", mirror=True))
    h = VoxelData.from_cohort(load_cohort(root2, "score", unit="hemisphere", mirror=True))
    assert np.all(s.grid.world(s.support)[:, 0] > 0) and s.grid.shape == h.grid.shape
    assert np.all(s.n_map() <= h.n_map()) and np.all(2 * s.n_map() >= h.n_map())  # max(R, L) <= union <= R + L
    want = set()
    for f in s.folders[0]:
        img = nib.load(f / "vta.nii.gz")
        want |= {tuple(p) for p in mask_lattice_points(np.asarray(img.dataobj) > 0, img.affine, 1.0,
                                                       mirror=f.name.endswith("_L"))}
    assert {tuple(p) for p in s.grid.lattice(s.unit_voxels(0))} == want  # subject 1: the union of R and mirrored L


# ----------------------------------------------------------------------------- statistics


def test_kernels_match_scipy():
    rng = np.random.default_rng(1)
    N, S = 26, 40
    X = (rng.random((N, S)) < 0.4).astype(np.float32)
    y = rng.normal(size=N)
    t = welch_t(X, y[None])[0]
    ref = [st.ttest_ind(y[X[:, s] > 0], y[X[:, s] == 0], equal_var=False).statistic for s in range(S)]
    np.testing.assert_allclose(t, ref, rtol=1e-10)
    yt = np.round(y * 2)  # ties
    base, stat = _prepare(X, yt, "vta", "wilcoxon")
    z = stat(base[None])[0][0]
    for s in range(S):
        a, b = yt[X[:, s] > 0], yt[X[:, s] == 0]
        r = st.mannwhitneyu(a, b, use_continuity=False, method="asymptotic")
        assert abs(z[s]) == pytest.approx(st.norm.isf(r.pvalue / 2), rel=1e-9)
        assert np.sign(z[s]) == np.sign(r.statistic - len(a) * len(b) / 2)
    E = rng.random((N, S))
    r, tt = pearson_t(E, y[None])
    np.testing.assert_allclose(r[0], [st.pearsonr(E[:, s], y).statistic for s in range(S)], rtol=1e-10)
    np.testing.assert_allclose(tt[0], r[0] * np.sqrt(N - 2) / np.sqrt(1 - r[0] ** 2), rtol=1e-10)
    base, stat = _prepare(E, y, "efield", "wilcoxon")
    np.testing.assert_allclose(stat(base[None])[1][0],
                               [st.spearmanr(E[:, s], y).statistic for s in range(S)], rtol=1e-10)
    # vectorised permutations = one permutation at a time
    perms = permutation_matrix(N, 5, seed=3, method="argsort")
    block = welch_t(X, y[perms])
    for k in range(5):
        np.testing.assert_allclose(block[k], welch_t(X, y[perms[k]][None])[0], rtol=1e-12)
    # covariates: residuals are orthogonal to them
    Z = rng.normal(size=(N, 2))
    res = residualise(y + Z @ [3.0, -2.0], Z)
    assert abs(res.sum()) < 1e-9 and np.allclose(Z.T @ res, 0, atol=1e-9)


def test_fwe_threshold_agrees_with_p_values():
    perm_max = np.arange(1.0, 100.0)  # P = 99
    c = fwe_threshold(perm_max, 0.05)  # (1 + #{max >= c}) / 100 <= 0.05 just above c
    assert c == 95.0
    assert math.isinf(fwe_threshold(perm_max[:10], 0.05))  # 10 permutations cannot reach 0.05


def test_chunking_does_not_change_the_maps(batch):
    root, _ = batch
    c = load_cohort(root, "score", unit="hemisphere")
    data = VoxelData.from_cohort(c)
    a = sweet_spot(data, c.y, "vta", "wilcoxon", min_n=6, permutations=99, seed=4)
    b = sweet_spot(data, c.y, "vta", "wilcoxon", min_n=6, permutations=99, seed=4, chunk_voxels=17, perm_block=7)
    np.testing.assert_array_equal(a.stat_map, b.stat_map)
    np.testing.assert_array_equal(a.p_fwe_map, b.p_fwe_map)
    np.testing.assert_array_equal(a.perm_max, b.perm_max)
    assert a.stat_name == "z" and a.n_tested == b.n_tested > 100


# ----------------------------------------------------------------------------- the planted effect


def _world_of(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return nib.affines.apply_affine(affine, np.argwhere(mask))


def test_planted_region_is_found_and_nothing_else(local_run):
    result, out = local_run
    for kind, suffix in (("vta", ""), ("efield", "_efield")):
        m = result.maps[kind]
        peak = m.peaks(1)[0]
        assert peak["significant"] and peak["stat"] > 0
        assert np.linalg.norm([peak["x_mm"] - SWEET_MM[0], peak["y_mm"] - SWEET_MM[1],
                               peak["z_mm"] - SWEET_MM[2]]) <= 2.0, (kind, peak)
        t_img = nib.load(out / f"t_map{suffix}.nii.gz")
        assert t_img.header.get_sform(coded=True)[1] == 4 and t_img.header.get_qform(coded=True)[1] == 4
        p_fwe = np.asarray(nib.load(out / f"p_fwe{suffix}.nii.gz").dataobj)
        ijk = np.rint(np.linalg.solve(t_img.affine, [*SWEET_MM, 1.0])[:3]).astype(int)
        assert p_fwe[tuple(ijk)] < 0.05  # at the planted centre
        sig = np.asarray(nib.load(out / f"sweet_spot_fwe{suffix}.nii.gz").dataobj) > 0
        dist = np.linalg.norm(_world_of(sig, t_img.affine) - SWEET_MM, axis=1)
        assert sig.sum() >= 3 and dist.max() <= 3.0  # and nowhere else
        assert not np.asarray(nib.load(out / f"sour_spot_fwe{suffix}.nii.gz").dataobj).any()
        tested = np.isfinite(np.asarray(t_img.dataobj))
        world = nib.affines.apply_affine(t_img.affine, np.indices(tested.shape).reshape(3, -1).T)
        far = tested & (np.linalg.norm(world - SWEET_MM, axis=1).reshape(tested.shape) > 3.5)
        assert far.sum() >= 30 and np.all(p_fwe[far] > 0.05)
    n_map = np.asarray(nib.load(out / "n_map.nii.gz").dataobj)
    np.testing.assert_array_equal(n_map, result.maps["vta"].n_map)
    t_map = np.asarray(nib.load(out / "t_map.nii.gz").dataobj)
    assert np.array_equal(np.isfinite(t_map), (n_map >= 6) & (n_map <= 28))  # min N covered, 2 uncovered
    mean = np.asarray(nib.load(out / "mean_outcome.nii.gz").dataobj)
    assert np.all(np.isfinite(mean[n_map > 0])) and np.all(np.isnan(mean[n_map == 0]))
    summary = json.loads((out / "group_summary.json").read_text())
    assert summary["warnings"] == [] and summary["cohort"]["n_units"] == 30
    assert summary["maps"]["vta"]["peaks"][0]["significant"] and summary["maps"]["vta"]["threshold"] > 2
    assert set(summary["outputs"]) <= {p.name for p in out.iterdir()}
    report = (out / "report.md").read_text()
    for text in ("Welch t", "FWE-corrected threshold |t| >", "| 1 | 12 | 14 | -6 |", "No unit was dropped",
                 "Nichols TE, Holmes AP (2002)", "![Sweet spot (binary VTAs)](sweet_spot.png)"):
        assert text in report, text
    assert "<img src='sweet_spot.png'" in (out / "report.html").read_text()
    png = (out / "sweet_spot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000


def test_null_outcome_finds_nothing(batch, tmp_path):
    root, y = batch
    rng = np.random.default_rng(11)
    lines = ["subject,hemisphere,shuffled"] + [f"s{i + 1:02d},R,{v:.6f}" for i, v in enumerate(rng.permutation(y))]
    (tmp_path / "null.csv").write_text("\n".join(lines) + "\n")
    r = run_group(root, "shuffled", outcomes_csv=tmp_path / "null.csv", unit="hemisphere", min_n=6,
                  permutations=99, out_dir=tmp_path / "null", fibres=False, prediction=False, figures=False)
    assert r.maps["vta"].n_significant == 0 and r.maps["efield"].n_significant == 0
    assert r.maps["vta"].n_tested > 100


def test_covariates_are_regressed_out(batch, tmp_path):
    """An outcome swamped by age: found with --covariate age, not without."""
    root, y = batch
    age = np.array([float(r["age"]) for r in read_csv(root / "group.csv")])
    lines = ["subject,hemisphere,mixed"] + [f"s{i + 1:02d},R,{v:.6f}" for i, v in enumerate(y + 0.1 * (age - 45))]
    (tmp_path / "mixed.csv").write_text("\n".join(lines) + "\n")
    kw = dict(outcomes_csv=tmp_path / "mixed.csv", unit="hemisphere", min_n=6, permutations=99, fibres=False,
              prediction=False, figures=False, efield=False)
    plain = run_group(root, "mixed", out_dir=tmp_path / "plain", **kw)
    adjusted = run_group(root, "mixed", covariates=["age"], out_dir=tmp_path / "adj", **kw)
    assert plain.maps["vta"].n_significant == 0 and adjusted.maps["vta"].n_significant >= 3
    assert "covariates regressed out of the outcome" in (tmp_path / "adj" / "report.md").read_text()
    units = read_csv(tmp_path / "adj" / "units.csv")
    assert list(units[0]) == ["unit", "mixed", "age", "outcome_residual", "folders"]


def test_binary_outcome_subject_units_and_dropped_units(tmp_path):
    root, _ = make_batch(tmp_path / "b", n=20, hemispheres=("R", "L"), binary=True, statuses={3: "failed"})
    _rewrite(root, "score", {("s05", "R"): "", ("s05", "L"): ""})
    r = run_group(root, "score", mirror=True, test="wilcoxon", min_n=4, permutations=49, folds=5,
                  out_dir=tmp_path / "out", fibres=False, figures=False, efield=False)
    assert r.cohort.binary and r.cohort.n == 18 and r.maps["vta"].stat_name == "z"
    assert read_csv(tmp_path / "out" / "dropped.csv") == [
        {"unit": "s04", "reason": "hemisphere R status failed: solver failed"},
        {"unit": "s05", "reason": "outcome 'score' missing"}]
    assert (tmp_path / "out" / "z_map.nii.gz").is_file() and not (tmp_path / "out" / "t_map.nii.gz").exists()
    summary = json.loads((tmp_path / "out" / "group_summary.json").read_text())
    assert summary["maps"]["efield"] == {"skipped": "not requested"}
    pred = summary["prediction"]["voxels"]
    assert pred["folds"] == 5 and 0 <= pred["auc"] <= 1 and 0 < pred["auc_p_perm"] <= 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| s05 | outcome 'score' missing |" in report and "left hemispheres mirrored" in report


def test_failed_run_leaves_no_output_folder(batch, tmp_path, monkeypatch):
    import vta.cohort.run as run_mod

    def broken(*args, **kwargs):
        raise VtaError("disk full (simulated)")

    monkeypatch.setattr(run_mod, "write_report", broken)
    with pytest.raises(VtaError, match="disk full"):
        run_group(batch[0], "score", unit="hemisphere", permutations=19, min_n=6, out_dir=tmp_path / "out",
                  fibres=False, prediction=False, figures=False)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the CLI and Dask


def _cli(capsys, *args) -> tuple[int, str, str]:
    status = main(["group", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_errors_are_one_line_with_status_2(batch, tmp_path, capsys, monkeypatch):
    import vta.cohort.run as run_mod

    monkeypatch.setattr(run_mod, "CONNECT_TIMEOUT_S", 1.0)  # port 9 refuses at once; do not wait 30 s
    root, _ = batch
    cases = [
        ((tmp_path, "--outcome", "score"), "group.csv not found"),
        ((root, "--outcome", "scor"), "did you mean 'score'?"),
        ((root, "--outcome", "score", "--folds", "1"), "--folds must be between 2"),
        ((root, "--outcome", "score", "--permutations", "0"), "--permutations must be >= 1"),
        ((root, "--outcome", "score", "--scheduler", "tcp://127.0.0.1:9"), "cannot connect to the Dask scheduler"),
    ]
    for args, text in cases:
        status, out, err = _cli(capsys, *args)
        assert status == 2 and err.startswith("vta: error: ") and text in err, (args, err)
        assert err.count("\n") == 1 and out == ""
    assert not (root / "group_score").exists()


def test_cli_success_line_warnings_and_strict(tmp_path, capsys, caplog):
    root, _ = make_batch(tmp_path / "b", n=8)
    status, out, err = _cli(capsys, root, "--outcome", "score", "--unit", "hemisphere", "--permutations", 9,
                            "--no-prediction", "--strict")
    assert status == 3 and "--strict: exit status 3" in err
    assert out.startswith("8 units; sweet spot: ") and f"written to {root / 'group_score'}/" in out
    summary = json.loads((root / "group_score" / "group_summary.json").read_text())
    assert summary["warnings"][0] == "only 8 units: voxel-wise and fibre statistics have little power"
    assert "9 permutations cannot reach p_FWE <= 0.05; nothing can be significant (use at least 19)" in \
        summary["warnings"][1]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert all(w in logged for w in summary["warnings"])  # also on stderr
    assert summary["maps"]["vta"]["threshold"] is None  # inf: nothing can be significant
    report = (root / "group_score" / "report.md").read_text()
    assert "## Fibre filtering\n\nNot computed: the subjects have no tracts.csv" in report
    assert report.count("9 permutations cannot reach") == 1
    # a second analysis into the same folder replaces the first one: files it does not write are gone
    assert (root / "group_score" / "t_map_efield.nii.gz").is_file()
    status, _, _ = _cli(capsys, root, "--outcome", "score", "--unit", "hemisphere", "--permutations", 19,
                        "--no-prediction", "--no-efield", "--no-figures")
    assert status == 0 and not (root / "group_score" / "t_map_efield.nii.gz").exists()
    assert not (root / "group_score" / "sweet_spot.png").exists() and (root / "group_score" / "t_map.nii.gz").is_file()


def test_no_voxel_to_test_is_a_warning_not_a_failure(tmp_path):
    root, _ = make_batch(tmp_path / "b", n=5)
    for folder in (root / "subjects").iterdir():
        img = nib.load(folder / "vta.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), folder / "vta.nii.gz")
    r = run_group(root, "score", unit="hemisphere", permutations=19, out_dir=tmp_path / "out", fibres=False)
    assert r.maps["vta"].n_tested == 0 and r.predictions == {}
    assert "vta: no voxel is covered by at least 3 units and left uncovered by 2; nothing was tested" in r.warnings
    summary = json.loads((tmp_path / "out" / "group_summary.json").read_text())
    assert summary["prediction"]["voxels"] == {"skipped": "no voxel is covered by enough units"}


def test_cli_on_a_loopback_dask_scheduler_gives_the_local_maps(batch, local_run, tmp_path, capsys):
    from distributed import LocalCluster

    root, _ = batch
    _, local_out = local_run
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        status, out, err = _cli(capsys, root, "--outcome", "score", "--unit", "hemisphere", "--permutations", 199,
                                "--min-n", 6, "--seed", 7, "--no-fibres", "--no-prediction", "--no-figures",
                                "--chunk-voxels", 40,  # several tasks
                                "--scheduler", cluster.scheduler_address, "--out", tmp_path / "dask")
        ran = cluster.scheduler.task_prefixes["chunk_task"].state_counts["memory"]
    assert status == 0, err
    assert ran == 10  # 197 tested voxels in chunks of 40, VTA and E-field: 2 x 5 tasks on the workers
    assert "30 units; sweet spot:" in out and f"written to {tmp_path / 'dask'}/" in out
    for name in ("n_map", "t_map", "p_fwe", "sweet_spot_fwe", "t_map_efield", "p_fwe_efield", "mean_outcome"):
        a = np.asarray(nib.load(local_out / f"{name}.nii.gz").dataobj)
        b = np.asarray(nib.load(tmp_path / "dask" / f"{name}.nii.gz").dataobj)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=0, equal_nan=True, err_msg=name)
    summary = json.loads((tmp_path / "dask" / "group_summary.json").read_text())
    assert summary["parameters"]["dask"] == cluster.scheduler_address
