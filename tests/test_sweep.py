"""Settings sweeps on a field basis (vta.studies.sweep, `vta sweep`)."""

import csv
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from vta.activation.efield import astrom_threshold, structure_coverage
from vta.anatomy.atlas_io import Image, Structure
from vta.config import load_config
from vta.errors import VtaError
from vta.scene import Scene
from vta.fem.stimulation import Setting, resolve
from vta.studies.sweep import (ContactConfig, SweepSpec, charge_metrics, parse_amplitudes, plot_coverage,
                       standard_configs, sweep, write_table)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "homogeneous_3389.toml"


@pytest.fixture(scope="module")
def axisym():
    scene = Scene.from_config(load_config(EXAMPLE), method="axisymmetric")
    return scene, scene.basis


@pytest.fixture(scope="module")
def tet():
    data = tomllib.loads(EXAMPLE.read_text())
    data["solver"] = {"method": "3d", "preset": "fast", "order": 1}
    scene = Scene.from_dict(data, str(EXAMPLE), method="3d")
    return scene, scene.basis


def config_lead(scene):
    return scene.lead


def _row(rows, config, amp, pw):
    return next(r for r in rows if r["config"] == config and abs(r["amplitude"] - amp) < 1e-9 and r["pulse_width_us"] == pw)


@pytest.mark.parametrize("which, rel", [("axisym", 2e-3), ("tet", 1e-9)])
def test_sweep_volumes_equal_the_run_volumes(which, rel, request):
    """The sweep integrates the VTA on the mesh like `vta run`: equal on the 3D path (the
    same quadrature), within 0.2 % on the axisymmetric path (centroid samples instead of
    the exact clipped integral); voxel counting was +24 % at 1 mA."""
    config, basis = request.getfixturevalue(which)
    spec = SweepSpec(standard_configs(4), [1.0, 2.0, 3.0], [60.0], "current")
    rows = sweep(basis, spec, threshold_V_per_mm=0.2, lead=config_lead(config))
    assert len(rows) == 7 * 3
    for label, weights, amp in (("c1-", {1: -1.0}, 1.0), ("c1-", {1: -2.0}, 2.0), ("c0-c1+", {0: -3.0, 1: 3.0}, 3.0)):
        state = resolve(Setting("current", weights), basis.conductance_S, basis.outer_grounded)
        row = _row(rows, label, amp, 60.0)
        mesh_volume = basis.vta_volume_mm3(state.potentials_V, 0.2)
        assert row["vta_volume_mm3"] == pytest.approx(mesh_volume, rel=rel)
        assert row["impedance_ohm"] == pytest.approx(state.impedance_ohm)
        assert row["vta_clipped_by_domain"] is False


def test_sweep_of_a_small_vta_agrees_with_vta_run(axisym, tmp_path):
    """3389, contact 1 at 1 mA: `vta run` gives 9.71 mm^3; the sweep gave 12.0 (+24 %)."""
    config, basis = axisym
    rows = sweep(basis, SweepSpec([ContactConfig("c1-", {1: -1.0})], [1.0]), threshold_V_per_mm=0.2)
    proc = subprocess.run([sys.executable, "-m", "vta", "run", str(EXAMPLE), "--out", str(tmp_path / "run"), "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json

    run_volume = json.loads((tmp_path / "run" / "summary.json").read_text())["vta_volume_mm3"]
    assert run_volume == pytest.approx(9.716, rel=2e-3)
    assert rows[0]["vta_volume_mm3"] == pytest.approx(run_volume, rel=0.02)


def test_sweep_flags_vtas_clipped_by_the_domain(axisym):
    """|E| at the outer boundary reaches the threshold from some amplitude on: those rows
    say so, the others do not, and the flag agrees with the boundary field."""
    config, basis = axisym
    unit = resolve(Setting("current", {1: -1.0}), basis.conductance_S, basis.outer_grounded)
    edge = basis.boundary_field_max(unit.potentials_V)          # V/mm per mA
    thr = 20.0 * edge                                           # clipped from 20 mA on
    rows = sweep(basis, SweepSpec([ContactConfig("c1-", {1: -1.0})], [10.0, 21.0]), threshold_V_per_mm=thr)
    assert [r["vta_clipped_by_domain"] for r in rows] == [False, True]


def test_monotone_and_linear(axisym):
    config, basis = axisym
    amps = np.round(np.arange(0.25, 5.01, 0.25), 6)
    spec = SweepSpec([ContactConfig("c1-", {1: -1.0})], amps, [60.0, 120.0])
    rows = sweep(basis, spec, fiber_diameter_um=3.5, lead=config_lead(config))
    for pw in (60.0, 120.0):
        v = [_row(rows, "c1-", a, pw)["vta_volume_mm3"] for a in amps]
        assert np.all(np.diff(v) >= 0) and v[-1] > v[4] > 0
    # longer pulses have lower thresholds -> larger VTAs
    assert _row(rows, "c1-", 3.0, 120.0)["threshold_V_per_mm"] == pytest.approx(astrom_threshold(3.5, 120))
    assert _row(rows, "c1-", 3.0, 120.0)["vta_volume_mm3"] > _row(rows, "c1-", 3.0, 60.0)["vta_volume_mm3"]
    # linearity: amplitude 2a at threshold 2t equals amplitude a at threshold t
    r1 = sweep(basis, SweepSpec([ContactConfig("c1-", {1: -1.0})], [1.5]), threshold_V_per_mm=0.15)
    r2 = sweep(basis, SweepSpec([ContactConfig("c1-", {1: -1.0})], [3.0]), threshold_V_per_mm=0.3)
    assert r1[0]["vta_volume_mm3"] == pytest.approx(r2[0]["vta_volume_mm3"], rel=1e-9)
    # currents scale with the amplitude
    assert _row(rows, "c1-", 3.0, 60.0)["c1_current_mA"] == pytest.approx(-3.0)


def test_structure_overlap_matches_structure_coverage(axisym):
    config, basis = axisym
    affine = np.eye(4)
    affine[:3, 3] = [-3.0, -3.0, 1.0]
    prob = np.zeros((6, 6, 8))
    prob[1:5, 1:5, 1:7] = 0.7
    target = Structure("T", Image(prob, affine))
    other = Structure("O", Image(np.ones((3, 3, 3), bool), np.diag([1.0, 1, 1, 1]) + np.array(
        [[0, 0, 0, 3.0], [0, 0, 0, 0], [0, 0, 0, 8], [0, 0, 0, 0]])))
    structs = {"T": target, "O": other}
    rows = sweep(basis, SweepSpec([ContactConfig("c1-", {1: -1.0})], [1.0, 3.0]), threshold_V_per_mm=0.2,
                 structures=structs, targets=["T"], lead=config_lead(config))
    for row, amp in zip(rows, (1.0, 3.0)):
        state = resolve(Setting("current", {1: -amp}), basis.conductance_S, basis.outer_grounded)
        ref = structure_coverage(basis, state.potentials_V, 0.2, structs)
        for name in structs:
            assert row[f"{name}_overlap_mm3"] == pytest.approx(ref[name]["overlap_mm3"], rel=1e-9, abs=1e-9)
            assert row[f"{name}_fraction"] == pytest.approx(ref[name]["fraction"], rel=1e-9, abs=1e-12)
        assert row["spill_mm3"] == pytest.approx(max(row["vta_volume_mm3"] - row["T_overlap_mm3"], 0.0))
    assert rows[1]["T_overlap_mm3"] > 0


def test_charge_density_known_case(axisym):
    config, basis = axisym
    area = config_lead(config).model.contacts()[1].area_mm2
    assert area == pytest.approx(5.98, abs=0.01)
    q, d, over30, shannon = charge_metrics(3.0, 60.0, area)
    assert q == pytest.approx(0.18)
    assert d == pytest.approx(3.01, abs=0.01)
    assert not over30 and not shannon
    rows = sweep(basis, SweepSpec([ContactConfig("c1-", {1: -1.0})], [3.0], [60.0]), threshold_V_per_mm=0.2,
                 lead=config_lead(config))
    assert rows[0]["charge_per_phase_uC"] == pytest.approx(0.18)
    assert rows[0]["charge_density_uC_per_cm2"] == pytest.approx(3.01, abs=0.01)


def test_shannon_and_30_flags(axisym, caplog):
    config, basis = axisym
    area = config_lead(config).model.contacts()[1].area_mm2
    # Shannon: unsafe when log10(Q^2 / (A cm^2)) > 1.85  <=>  Q > sqrt(10**1.85 * A_cm2)
    q_limit = np.sqrt(10**1.85 * area * 1e-2)          # uC
    i_limit = q_limit / (200.0 * 1e-3)                  # mA at 200 us
    spec = SweepSpec([ContactConfig("c1-", {1: -1.0})], [0.98 * i_limit, 1.02 * i_limit], [200.0])
    with caplog.at_level(logging.WARNING, logger="vta.studies.sweep"):
        rows = sweep(basis, spec, threshold_V_per_mm=0.2, lead=config_lead(config))
    assert [r["exceeds_shannon"] for r in rows] == [False, True]
    assert "Shannon" in caplog.text
    # 30 uC/cm^2: Q = 30 * A_cm2
    i30 = 30 * area * 1e-2 / (200.0 * 1e-3)
    _, d, over30, _ = charge_metrics(np.array([0.99 * i30, 1.01 * i30]), 200.0, area)
    assert over30.tolist() == [False, True]


def test_write_table_and_plot(axisym, tmp_path):
    config, basis = axisym
    rows = sweep(basis, SweepSpec(standard_configs(4, ["monopolar"]), [1.0, 2.0], [60.0, 90.0]),
                 threshold_V_per_mm=0.2, lead=config_lead(config))
    path = write_table(rows, tmp_path / "s.csv")
    with open(path, newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(rows) == 16
    assert float(back[3]["vta_volume_mm3"]) == pytest.approx(rows[3]["vta_volume_mm3"])
    assert back[0]["config"] == "c0-"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(VtaError, match="pyarrow"):
            write_table(rows, tmp_path / "s.parquet")
    structs = {"T": Structure("T", Image(np.ones((4, 4, 4), bool), np.diag([1.0, 1, 1, 1])))}
    rows = sweep(basis, SweepSpec(standard_configs(4, ["monopolar"]), [1.0, 3.0]), threshold_V_per_mm=0.2,
                 structures=structs, lead=config_lead(config))
    png = plot_coverage(rows, "T", tmp_path / "cov.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_specs():
    cfgs = standard_configs(4)
    with pytest.raises(VtaError):
        SweepSpec(cfgs, [])
    with pytest.raises(VtaError):
        SweepSpec(cfgs, [-1.0, 2.0])
    with pytest.raises(VtaError):
        SweepSpec(cfgs, [1.0, 1000.0])
    with pytest.raises(VtaError):
        SweepSpec(cfgs, [1.0], [])
    with pytest.raises(VtaError):
        standard_configs(4, ["tripolar"])
    assert parse_amplitudes("0.5:2:0.5") == [0.5, 1.0, 1.5, 2.0]
    with pytest.raises(VtaError):
        parse_amplitudes("1:x:2")


def vta(*args):
    return subprocess.run([sys.executable, "-m", "vta", *args], capture_output=True, text=True)


def test_cli_sweep(tmp_path):
    out = tmp_path / "out"
    proc = vta("sweep", str(EXAMPLE), "--out", str(out), "--amplitudes", "0.5:3:0.5", "--pulse-widths", "60,90")
    assert proc.returncode == 0, proc.stderr
    with open(out / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7 * 6 * 2
    assert {r["config"] for r in rows} >= {"c0-", "c3-", "c2-c3+"}


@pytest.mark.parametrize("args", [
    ["--amplitudes=-1:2:1"],
    ["--amplitudes", "1,500"],
    ["--amplitudes", ""],
    ["--pulse-widths", ","],
    ["--configs", "tripolar"],
    ["--amplitudes", "5:1:1"],
])
def test_cli_sweep_bad_input(tmp_path, args):
    out = tmp_path / "out"
    proc = vta("sweep", str(EXAMPLE), "--out", str(out), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vta: error:"), proc.stderr
    assert not out.exists()


def test_sweep_with_a_signal_adds_time_domain_columns(caplog):
    """A configuration with [signal]: every row gets the time-domain VTA and waveforms
    (one frequency-domain basis per pulse width); without them the sweep says so."""
    from vta.studies.sweep import sweep_scene

    scene = Scene.from_toml(ROOT / "examples" / "time_domain_3389.toml")
    spec = SweepSpec(configs=standard_configs(scene.lead, ["monopolar"])[:2], amplitudes=[1.0, 3.0],
                     pulse_widths_us=[60.0, 90.0])
    rows = sweep_scene(scene, spec)
    assert len(rows) == 8 and all(r["td_vta_mm3"] >= 0 and r["n_solve"] >= 1 for r in rows)
    by = {(r["config"], r["amplitude"], r["pulse_width_us"]): r for r in rows}
    c = spec.configs[0].label
    assert by[(c, 3.0, 60.0)]["td_vta_mm3"] > by[(c, 1.0, 60.0)]["td_vta_mm3"] > 0
    assert by[(c, 3.0, 90.0)]["td_vta_mm3"] > by[(c, 3.0, 60.0)]["td_vta_mm3"]   # a longer pulse, a larger VTA
    assert by[(c, 3.0, 60.0)]["td_peak_current_mA"] == pytest.approx(-3.0, rel=1e-6)  # current control
    with caplog.at_level(logging.WARNING, logger="vta.studies.sweep"):
        quasi_static = sweep_scene(scene, spec, time_domain=False)
    assert "td_vta_mm3" not in quasi_static[0] and "[signal] is not applied by this sweep" in caplog.text
