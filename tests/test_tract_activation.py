"""Tract activation through the field basis (vta.activation.tract_activation, [tracts] in vta run/sweep)."""

import csv
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from vta.activation.axons import Pulse, mrg_model, point_source_ve, thresholds
from vta.errors import ConfigError
from vta.outputs import run
from vta.scene import Scene
from vta.fem.stimulation import Setting, resolve
from vta.studies.sweep import ContactConfig, SweepSpec, sweep
from vta.activation.tract_activation import (fibre_potentials, load_config_tracts, place_tract, sweep_thresholds,
                                  unit_thresholds)
from vta.activation.tracts import Tract, save_tract

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "homogeneous_3389.toml"


def _straight_tract(tmp_path, distances_mm, z_mm=4.25):
    """Fibres along y at x = d (3389 contact 1 is centred at z = 2.25, contact 2 at 4.25)."""
    lines = [np.column_stack([np.full(81, d), np.linspace(-20, 20, 81), np.full(81, z_mm)]) for d in distances_mm]
    path = tmp_path / "lines.tck"
    save_tract(Tract("lines", tuple(lines)), path)
    return path


def _config(tmp_path, distances_mm, contacts, extra=None):
    data = tomllib.loads(EXAMPLE.read_text())
    data["stimulation"]["contacts"] = contacts
    data["stimulation"]["pulse_width_us"] = 90
    data["solver"] = {"method": "axisymmetric"}
    data["output"] = {"nifti": False}
    data["tracts"] = {"files": [{"path": str(_straight_tract(tmp_path, distances_mm)), "name": "lines"}],
                      "axon_length_mm": 16.0, "max_distance_mm": 8.0, **(extra or {})}
    return Scene.from_dict(data, str(tmp_path / "c.toml"))


DISTANCES = [0.3, 1.5, 2.0, 3.0, 4.0, 6.0, 12.0]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracts")
    scene = _config(tmp, DISTANCES, {"2": -2.0})
    return scene, scene.basis


def test_run_thresholds_scale_with_amplitude(case, tmp_path):
    config, basis = case
    sim = config.simulate()
    res = sim.tracts[0]
    placed = res.placed
    # the fibre at 0.3 mm crosses the lead (radius 0.635 mm); the one at 12 mm is beyond max_distance
    assert placed.through_lead.tolist() == [True, False, False, False, False, False]
    s2 = res.threshold_factor
    assert np.isinf(s2[0])
    near = s2[1:]                                                   # farther -> higher (inf above 2x)
    fin = near[np.isfinite(near)]
    assert len(fin) >= 2 and np.all(np.diff(fin) > 0) and np.all(np.isinf(near[len(fin):]))
    summary = sim.summary()["tracts"]["lines"]
    assert summary["n_fibres"] == 7 and summary["n_through_lead"] == 1 and summary["n_simulated"] == 5
    assert summary["n_activated"] == int(np.sum(s2 <= 1.0))
    # linearity: the threshold of the 1 mA setting is twice that of the 2 mA one (bisection 1 %)
    state1 = resolve(Setting("current", {2: -1.0}), basis.conductance_S, basis.outer_grounded)
    s1 = unit_thresholds(basis, state1.potentials_V, placed, mrg_model(5.7), Pulse(90.0, "passive"), 20.0)
    finite = np.isfinite(s2)
    np.testing.assert_allclose(s1[finite], 2 * s2[finite], rtol=0.025)


def test_matches_point_source_far_from_the_lead(tmp_path):
    """A fibre 4 mm from contact 1 (z = 4.25 mm) in a large homogeneous sphere sees nearly the point-source
    potential of the contact current; its threshold must match the point-source threshold."""
    data = tomllib.loads(EXAMPLE.read_text())
    data["domain"]["radius_mm"] = 60.0
    data["domain"]["center_mm"] = [0.0, 0.0, 4.25]
    data["stimulation"]["contacts"] = {"1": -1.0}
    data["tissue"]["conductivity_S_per_m"] = 0.2
    data["solver"] = {"method": "axisymmetric"}
    data["output"] = {"nifti": False}
    data["tracts"] = {"files": [str(_straight_tract(tmp_path, [4.0]))], "axon_length_mm": 20.0, "max_distance_mm": 6.0}
    config = Scene.from_dict(data, str(tmp_path / "c.toml"))
    basis = config.basis
    model = mrg_model(5.7)
    config_tract = load_config_tracts(config.tract_setup())[0]
    placed = place_tract(config.tract_setup(), config_tract, model, [1], 6.0)
    state = resolve(Setting("current", {1: -1.0}), basis.conductance_S, basis.outer_grounded)
    s_fem = unit_thresholds(basis, state.potentials_V, placed, model, Pulse(90.0), 50.0)[0]
    n_nodes = (len(placed.segments.offsets_mm) - 1) // model.compartments_per_node + 1
    ve_ps = point_source_ve(model, n_nodes, 4.0, -1.0, 0.2)
    # grounded outer sphere at 60 mm: the point source in a grounded sphere subtracts I/(4 pi sigma R)
    ve_ps = ve_ps - (-1.0) / (4 * np.pi * 0.2 * 60.0)
    s_ps = thresholds(model, [ve_ps], Pulse(90.0), s_max=50.0)[0]
    assert config_tract.name == "lines"
    assert s_fem == pytest.approx(s_ps, rel=0.05)


def test_fibre_potentials_fill_outside_domain(tmp_path):
    data = tomllib.loads(EXAMPLE.read_text())
    data["domain"]["radius_mm"] = 10.0
    data["solver"] = {"method": "axisymmetric"}
    data["tracts"] = {"files": [str(_straight_tract(tmp_path, [2.0]))], "axon_length_mm": 30.0, "max_distance_mm": 5.0}
    config = Scene.from_dict(data, str(tmp_path / "c.toml"))
    basis = config.basis
    placed = place_tract(config.tract_setup(), load_config_tracts(config.tract_setup())[0], mrg_model(5.7), [1], 5.0)
    ve = fibre_potentials(basis, np.array([0.0, -1.0, 0.0, 0.0]), placed)
    assert np.all(np.isfinite(ve))
    # both ends lie outside the 10 mm grounded sphere: filled with ~0 V
    assert abs(ve[0, 0]) < 0.02 and abs(ve[0, -1]) < 0.02 and ve.min() < -0.1


def test_sweep_and_run_agree(case):
    config, basis = case
    amps = [0.5, 1.0, 2.0, 3.0, 4.0]
    hook = sweep_thresholds(config.tract_setup(), basis, max(amps))
    rows = sweep(basis, SweepSpec([ContactConfig("c2-", {2: -1.0})], amps, [90.0]), threshold_V_per_mm=0.2,
                 lead=config.lead, tract_thresholds=hook)
    frac = [r["tract_lines_fraction"] for r in rows]
    assert frac == sorted(frac) and frac[-1] > frac[0]
    # the run at 2 mA activates the same fibres as the sweep row at 2 mA
    sim = config.simulate()
    assert rows[2]["tract_lines_activated"] == sim.summary()["tracts"]["lines"]["n_activated"]


def test_run_writes_tracts_csv(case, tmp_path):
    config, _ = case
    summary = run(config, tmp_path / "out")
    assert "tracts.csv" in summary["outputs"]
    with open(tmp_path / "out" / "tracts.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["tract"] for r in rows} == {"lines"}
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["tracts"]["lines"]["axon_model"] == "mrg"


@pytest.mark.parametrize("tracts, message", [
    ({"default_bundle": "ALIC"}, "needs [anatomy]"),
    ({"files": ["nope.trk"]}, "file not found"),
    ({"default_bundle": "ATR"}, "must be \"ALIC\""),
    ({"files": []}, "give tract files"),
    ({"files": [], "fiber_diameter_um": 6.0}, "MRG table"),
    ({"files": [], "max_fibres": 0}, "max_fibres"),
    ({"files": [], "axon_model": "hh"}, "axon_model"),
])
def test_config_errors(tracts, message, tmp_path):
    data = tomllib.loads(EXAMPLE.read_text())
    if "files" in tracts and not tracts["files"] and set(tracts) != {"files"}:
        tracts = {**tracts, "files": [str(_straight_tract(tmp_path, [2.0]))]}
    data["tracts"] = tracts
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Scene.from_dict(data, str(tmp_path / "c.toml"))


def test_cli_sweep_has_tract_columns(tmp_path):
    cfg = tmp_path / "c.toml"
    tck = _straight_tract(tmp_path, [1.5, 3.0])
    cfg.write_text(EXAMPLE.read_text() + f'\n[tracts]\nfiles = ["{tck}"]\naxon_length_mm = 16.0\n')
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "vta", "sweep", str(cfg), "--out", str(out), "--amplitudes", "1,3",
                           "--configs", "monopolar"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with open(out / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "tract_lines_fraction" in rows[0]


def test_warns_when_max_fibres_cuts_active_fibres(tmp_path, caplog):
    import logging

    config = _config(tmp_path, [1.5, 2.0, 2.5, 3.0], {"1": -6.0}, {"max_fibres": 2})
    with caplog.at_level(logging.WARNING, logger="vta.activation.tract_activation"):
        sim = config.simulate()
    assert sim.summary()["tracts"]["lines"]["n_simulated"] == 2
    assert "lower bound" in caplog.text
