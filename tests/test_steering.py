"""Directional steering: segment configurations and current splits in run, sweep and optimise.

The Boston Scientific Vercise Directed example (contacts 0 tip, 1-3 and 4-6 segmented
levels with segments at 0/120/240 degrees from the marker, 7 ring) in homogeneous tissue,
solved in 3D with the fast mesh preset; each scene is built once per module.
"""

import copy
import json
import math
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from vta.anatomy.atlas_io import Image, Structure
from vta.cli import main
from vta.errors import VtaError
from vta.fem.stimulation import Setting
from vta.leads import get_lead
from vta.scene import Scene
from vta.studies.optimise import Limits, optimise
from vta.studies.sweep import SweepSpec, segmented_levels, standard_configs, sweep_scene

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "directional_vercise.toml"
VERCISE = "Boston Scientific Vercise Directed"


def _config(rotation_deg: float = 0.0) -> dict:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data["lead"]["rotation_deg"] = rotation_deg
    data["solver"] = {"preset": "fast"}
    return data


@pytest.fixture(scope="module")
def scene0() -> Scene:
    scene = Scene.from_dict(_config(0.0))
    scene.basis  # noqa: B018 - solve (or read the cache) once
    return scene


@pytest.fixture(scope="module")
def scene90() -> Scene:
    scene = Scene.from_dict(_config(90.0))
    scene.basis  # noqa: B018
    return scene


def _azimuth_deg(sim, frame_scene: Scene) -> float:
    """Azimuth (degrees from the rotation-0 marker, counter-clockwise about the lead
    axis) of the centroid of the VTA voxels (world mm)."""
    grid = sim.vta_grid
    assert grid is not None and grid.mask.any()
    assert not sim.clipped_by_grid
    centroid = grid.grid.points()[grid.mask.ravel()].mean(axis=0)
    local = frame_scene.lead.placement.to_local(centroid)
    return math.degrees(math.atan2(local[1], local[0]))


def _wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


def _fractions(label: str) -> dict[int, float]:
    """``"c1:0.75-c2:0.25-"`` -> ``{1: 0.75, 2: 0.25}``."""
    parts = re.fullmatch(r"c(\d+):([\d.]+)-c(\d+):([\d.]+)-", label)
    assert parts, label
    a, fa, b, fb = parts.groups()
    return {int(a): float(fa), int(b): float(fb)}


# ----------------------------------------------------------------------------- configurations


def test_segment_kinds_of_the_vercise_directed():
    lead = get_lead(VERCISE)
    assert segmented_levels(lead) == [[1, 2, 3], [4, 5, 6]]
    segs = standard_configs(lead, ["segments"])
    assert [c.label for c in segs] == [f"c{k}-" for k in (1, 2, 3, 4, 5, 6)]
    splits = standard_configs(lead, ["segment-split"])
    # 2 levels x 3 neighbouring pairs x 3 fractions
    assert len(splits) == 18
    assert splits[0].label == "c1:0.75-c2:0.25-" and splits[0].weights == {1: -0.75, 2: -0.25}
    assert {c.label for c in splits} >= {"c1:0.5-c2:0.5-", "c2:0.25-c3:0.75-", "c1:0.75-c3:0.25-", "c5:0.5-c6:0.5-"}
    for c in splits:
        assert sum(c.weights.values()) == pytest.approx(-1.0)
        assert {k: -w for k, w in c.weights.items()} == pytest.approx(_fractions(c.label))
    assert splits[0].describe() == "1-75% 2-25%"
    # a finer step; the LeadConfig and lead= spellings; the monopolar segments are listed once
    assert len(standard_configs(lead, ["segment-split"], split_step=0.1)) == 2 * 3 * 9
    assert len(standard_configs(8, ["segment-split"], lead=lead)) == 18
    both = standard_configs(lead, ["monopolar", "segments", "segment-split"])
    assert len(both) == 8 + 18 and len({c.label for c in both}) == len(both)
    # the old call is unchanged
    assert [c.label for c in standard_configs(4)] == ["c0-", "c1-", "c2-", "c3-", "c0-c1+", "c1-c2+", "c2-c3+"]


def test_segment_kinds_errors():
    ring = get_lead("Medtronic 3389")
    for kind in ("segments", "segment-split"):
        with pytest.raises(VtaError) as err:
            standard_configs(ring, ["monopolar", kind])
        msg = str(err.value)
        assert "\n" not in msg and "directional" in msg and "Medtronic 3389" in msg
    with pytest.raises(VtaError, match="needs the lead model"):
        standard_configs(4, ["segments"])
    lead = get_lead(VERCISE)
    with pytest.raises(VtaError, match="current mode"):
        standard_configs(lead, ["segment-split"], "voltage")
    assert len(standard_configs(lead, ["segments"], "voltage")) == 6
    for bad in (0.3, 0.0, 0.75, -0.25, float("nan")):
        with pytest.raises(VtaError, match="split_step"):
            standard_configs(lead, ["segment-split"], split_step=bad)
    with pytest.raises(VtaError, match="segment-split"):
        standard_configs(lead, ["tripolar"])


# ----------------------------------------------------------------------------- run


def test_run_takes_a_split_contacts_table(scene0, tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "contacts = { 2 = -2.0 }" in text
    text = text.replace("contacts = { 2 = -2.0 }", "contacts = { 1 = -0.6, 2 = -0.4 }") + '\n[solver]\npreset = "fast"\n'
    toml = tmp_path / "split.toml"
    toml.write_text(text, encoding="utf-8")
    assert main(["run", str(toml), "--out", str(tmp_path / "out"), "-q"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["contacts"]["1"]["current_mA"] == pytest.approx(-0.6, abs=1e-9)
    assert summary["contacts"]["2"]["current_mA"] == pytest.approx(-0.4, abs=1e-9)
    assert summary["contacts"]["1"]["active"] and summary["contacts"]["2"]["active"]
    assert not summary["contacts"]["3"]["active"]
    sim = scene0.simulate(Setting("current", {1: -0.6, 2: -0.4}))
    assert summary["vta_volume_mm3"] == pytest.approx(sim.vta_volume_mm3, rel=1e-9)


# ----------------------------------------------------------------------------- the VTA turns


def test_vta_turns_with_the_lead_rotation(scene0, scene90):
    for k, direction in ((1, 0.0), (2, 120.0), (3, -120.0)):
        a0 = _azimuth_deg(scene0.simulate(Setting("current", {k: -2.0})), scene0)
        a90 = _azimuth_deg(scene90.simulate(Setting("current", {k: -2.0})), scene0)
        assert abs(_wrap(a0 - direction)) <= 10.0, (k, a0)
        assert abs(_wrap(a90 - a0) - 90.0) <= 10.0, (k, a0, a90)


def test_split_steers_the_vta_between_two_segments(scene0):
    azimuths = []
    for f in (1.0, 0.75, 0.5, 0.25, 0.0):
        amps = {k: v for k, v in {1: -2.0 * f, 2: -2.0 * (1.0 - f)}.items() if v != 0}
        azimuths.append(_azimuth_deg(scene0.simulate(Setting("current", amps)), scene0))
    # from segment 1's direction (0 deg) through 60 deg to segment 2's (120 deg)
    assert np.all(np.diff(azimuths) > 5.0), azimuths
    assert abs(azimuths[0]) <= 10.0 and abs(azimuths[-1] - 120.0) <= 10.0, azimuths
    assert abs(azimuths[2] - 60.0) <= 15.0, azimuths


# ----------------------------------------------------------------------------- sweep and optimise


def test_sweep_of_splits_equals_simulate(scene0):
    configs = standard_configs(scene0.lead.model, ["segment-split"])
    rows = sweep_scene(scene0, SweepSpec(configs, [1.0, 2.5]))
    assert len(rows) == 2 * len(configs)
    by_label = {c.label: c for c in configs}
    for row in rows:
        fractions = _fractions(row["config"])
        assert {k: -w for k, w in by_label[row["config"]].weights.items()} == pytest.approx(fractions)
        amp = row["amplitude"]
        sim = scene0.simulate(Setting("current", {k: -amp * f for k, f in fractions.items()}))
        assert row["vta_volume_mm3"] == pytest.approx(sim.vta_volume_mm3, rel=1e-6)
        for k, f in fractions.items():
            assert row[f"c{k}_current_mA"] == pytest.approx(-amp * f, abs=1e-9)


def _box(name, center, half=1.0, h=0.25):
    n = round(2 * half / h)
    affine = np.diag([h, h, h, 1.0])
    affine[:3, 3] = np.asarray(center) - half + h / 2
    return Structure(name, Image(np.ones((n, n, n)), affine))


def test_optimiser_ranks_segment_splits(scene0):
    # a 2 mm target cube 2.5 mm off the axis at level 1, between segments 1 and 2
    a = math.radians(60.0)
    z = scene0.lead.model.contact(1).center_z_mm
    centre = scene0.lead.placement.to_world(np.array([2.5 * math.cos(a), 2.5 * math.sin(a), z]))
    structures = {"T": _box("T", centre)}
    configs = standard_configs(scene0.lead.model, ["monopolar", "segments", "segment-split"])
    ranked = optimise(scene0.basis, configs, ["T"], structures, Limits(max_spill_mm3=15.0, max_amplitude=5.0),
                      threshold_V_per_mm=0.2, lead=scene0.lead, region_mm=scene0.region_mm)
    assert len(ranked) == len(configs)
    splits = [r for r in ranked if ":" in r["config"]]
    assert len(splits) == 18
    best = ranked[0]
    assert best["feasible"] and best["target_coverage"] > 0
    assert best["spill_mm3"] <= 15.0
    # the best settings face the target: segments 1 and 2 (and their splits)
    for r in ranked[:5]:
        contacts = {int(m) for m in re.findall(r"c(\d+)", r["config"])}
        assert contacts <= {1, 2}, [(x["config"], x["target_coverage"]) for x in ranked[:5]]
    best_split = splits[0]
    assert best_split["feasible"] and set(_fractions(best_split["config"])) == {1, 2}
    cov = [r["target_coverage"] for r in ranked if r["feasible"]]
    assert cov == sorted(cov, reverse=True)


def test_cli_optimise_with_segment_configs(tmp_path):
    toml = tmp_path / "nac.toml"
    toml.write_text(f"""
[anatomy]
atlas = "default"

[lead]
model = "{VERCISE}"
target = "NAc_R"

[stimulation]
mode = "current"
contacts = {{ 1 = -1.0 }}
pulse_width_us = 60

[vta]
threshold_V_per_mm = 0.2

[solver]
preset = "fast"
""", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["optimise", str(toml), "--out", str(out), "--configs", "monopolar,segments,segment-split",
                 "--max-spill", "100", "--resolution", "0.1"]) == 0
    lines = (out / "ranked.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 8 + 18
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert rows[0]["feasible"] == "True"
    assert sum(":" in r["config"] for r in rows) == 18
    ring = tmp_path / "ring.toml"
    ring.write_text(toml.read_text(encoding="utf-8").replace(VERCISE, "Medtronic 3389"), encoding="utf-8")
    assert main(["optimise", str(ring), "--out", str(tmp_path / "out2"), "--configs", "segments"]) != 0
