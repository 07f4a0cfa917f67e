"""Settings optimisation (vta.studies.optimise) against brute-force sweeps on the same basis."""

from pathlib import Path

import numpy as np
import pytest

from vta.anatomy.atlas_io import Image, Structure
from vta.config import load_config
from vta.errors import VtaError
from vta.studies.optimise import Limits, optimise
from vta.scene import Scene
from vta.studies.sweep import ContactConfig, SweepSpec, standard_configs, sweep

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "homogeneous_3389.toml"


def _box(name, lo, shape, value=1.0):
    affine = np.eye(4)
    affine[:3, 3] = lo
    return Structure(name, Image(np.full(shape, value), affine))


@pytest.fixture(scope="module")
def case():
    config = Scene.from_config(load_config(EXAMPLE), method="axisymmetric")
    basis = config.basis
    # a target box next to contacts 1-2 (3389: contact centres z = 2.25, 4.25 mm) and a
    # structure to avoid above it
    structures = {
        "T": _box("T", [-3.0, -3.0, 1.0], (6, 6, 5)),
        "AVOID": _box("AVOID", [-3.0, -3.0, 7.5], (6, 6, 4)),
    }
    return config, basis, structures


def _brute_force(rows, limit_spill=None, limit_avoid=None):
    ok = [r for r in rows if (limit_spill is None or r["spill_mm3"] <= limit_spill)
          and (limit_avoid is None or r["AVOID_overlap_mm3"] <= limit_avoid)
          and not r["exceeds_30uC_cm2"] and not r["exceeds_shannon"]]
    return max(ok, key=lambda r: (r["T_fraction"], -r["amplitude"]))


def test_optimum_equals_brute_force_sweep(case):
    config, basis, structures = case
    configs = standard_configs(4, ["monopolar", "bipolar-adjacent", "double-monopolar"])
    limits = Limits(max_spill_mm3=40.0, max_overlap_mm3={"AVOID": 2.0}, max_amplitude=8.0)
    ranked = optimise(basis, configs, ["T"], structures, limits, pulse_widths_us=[60.0], threshold_V_per_mm=0.2,
                      lead=config.lead, resolution=0.1)
    assert len(ranked) == len(configs)
    assert [r["rank"] for r in ranked] == list(range(1, len(configs) + 1))
    cov = [r["target_coverage"] for r in ranked if r["feasible"]]
    assert cov == sorted(cov, reverse=True)
    # the same amplitude grid swept exhaustively
    amps = np.round(np.arange(1, 81) * 0.1, 10)
    rows = sweep(basis, SweepSpec(configs, amps, [60.0]), threshold_V_per_mm=0.2, structures=structures,
                 targets=["T"], lead=config.lead)
    best = _brute_force(rows, 40.0, 2.0)
    top = ranked[0]
    assert top["target_coverage"] == pytest.approx(best["T_fraction"], abs=1e-12)
    assert top["config"] == best["config"] and top["amplitude"] == pytest.approx(best["amplitude"])
    assert top["spill_mm3"] <= 40.0 and top["AVOID_overlap_mm3"] <= 2.0
    # per configuration: the chosen amplitude is the brute-force optimum of that configuration
    for r in ranked:
        mine = [x for x in rows if x["config"] == r["config"]]
        b = _brute_force(mine, 40.0, 2.0)
        assert r["target_coverage"] == pytest.approx(b["T_fraction"], abs=1e-12), r["config"]


def test_spill_limit_binds_and_tightens(case):
    config, basis, structures = case
    configs = [ContactConfig("c1-", {1: -1.0})]
    kw = dict(pulse_widths_us=[60.0], threshold_V_per_mm=0.2, lead=config.lead, resolution=0.05)
    loose = optimise(basis, configs, ["T"], structures, Limits(max_amplitude=10.0), **kw)[0]
    tight = optimise(basis, configs, ["T"], structures, Limits(max_spill_mm3=10.0, max_amplitude=10.0), **kw)[0]
    assert tight["amplitude"] < loose["amplitude"]
    assert tight["target_coverage"] < loose["target_coverage"]
    assert tight["spill_mm3"] <= 10.0 and tight["limited_by"] == "spill"
    # one step higher breaks the limit
    above = sweep(basis, SweepSpec(configs, [tight["amplitude"] + 0.05], [60.0]), threshold_V_per_mm=0.2,
                  structures=structures, targets=["T"], lead=config.lead)[0]
    assert above["spill_mm3"] > 10.0


def test_charge_density_limit(case):
    config, basis, structures = case
    area_cm2 = config.lead.model.contacts()[1].area_mm2 * 1e-2
    # 30 uC/cm^2 at 450 us: I = 30 * A / PW
    i30 = 30.0 * area_cm2 / 450e-3
    r = optimise(basis, [ContactConfig("c1-", {1: -1.0})], ["T"], structures,
                 Limits(shannon_k=None, max_amplitude=20.0), pulse_widths_us=[450.0], threshold_V_per_mm=0.2,
                 lead=config.lead, resolution=0.01)[0]
    if r["limited_by"] == "charge density":
        assert r["amplitude"] <= i30 < r["amplitude"] + 0.01 + 1e-9
        assert r["charge_density_uC_per_cm2"] <= 30.0
    else:  # coverage saturated below the charge limit
        assert r["limited_by"] == "coverage saturates" and r["amplitude"] < i30


def test_infeasible_rows_rank_last(case):
    config, basis, structures = case
    configs = standard_configs(4, ["monopolar"])
    ranked = optimise(basis, configs, ["T"], structures, Limits(max_overlap_mm3={"AVOID": 0.0}, max_amplitude=5.0),
                      pulse_widths_us=[60.0], threshold_V_per_mm=0.05, lead=config.lead, resolution=0.1)
    flags = [r["feasible"] for r in ranked]
    assert flags == sorted(flags, reverse=True)
    # contact 3 (z = 7.5 mm) touches the avoided box: at 0.05 V/mm even 0.1 mA overlaps it
    c3 = next(r for r in ranked if r["config"] == "c3-")
    assert not c3["feasible"] and "AVOID overlap" in c3["limited_by"]


def test_tract_limit_uses_thresholds(case):
    config, basis, structures = case
    fibres = np.array([0.5, 1.0, 2.0, 4.0])   # mA: per-fibre thresholds of the unit setting

    def thresholds(cfg, state, pw):
        return {"X": fibres}

    r = optimise(basis, [ContactConfig("c1-", {1: -1.0})], ["T"], structures,
                 Limits(max_tract_fraction={"X": 0.5}, max_amplitude=10.0), pulse_widths_us=[60.0],
                 threshold_V_per_mm=0.2, lead=config.lead, resolution=0.1, tract_thresholds=thresholds)[0]
    assert r["tract_X_fraction"] <= 0.5
    assert r["amplitude"] < 2.0 or r["limited_by"] == "coverage saturates"


@pytest.mark.parametrize("kwargs, message", [
    (dict(targets=["NOPE"]), "unknown structure"),
    (dict(targets=[]), "at least one target"),
    (dict(limits=Limits(max_tract_fraction={"X": 0.1})), "tract limits need"),
    (dict(resolution=0.0), "resolution"),
    (dict(mode="pulses"), "mode"),
    (dict(limits=Limits(max_amplitude=99.0)), "max_amplitude"),
])
def test_bad_input(case, kwargs, message):
    config, basis, structures = case
    args = dict(targets=["T"], limits=Limits(), mode="current", resolution=0.1)
    args.update(kwargs)
    with pytest.raises(VtaError, match=message):
        optimise(basis, [ContactConfig("c1-", {1: -1.0})], args.pop("targets"), structures, args.pop("limits"),
                 threshold_V_per_mm=0.2, lead=config.lead, **args)


def test_limits_validation():
    with pytest.raises(VtaError, match="max_spill_mm3"):
        Limits(max_spill_mm3=-1.0)
    with pytest.raises(VtaError, match="fraction"):
        Limits(max_tract_fraction={"X": 1.5})


def vta(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "vta", *args], capture_output=True, text=True)


def test_cli_optimise_on_default_anatomy(tmp_path):
    import csv

    cfg = tmp_path / "c.toml"
    cfg.write_text((ROOT / "vta" / "data" / "demo.toml").read_text() + '\n[solver]\npreset = "fast"\n')
    out = tmp_path / "out"
    proc = vta("optimise", str(cfg), "--out", str(out), "--avoid", "ALIC_R:40", "--max-spill", "200",
               "--configs", "monopolar", "--resolution", "0.1")
    assert proc.returncode == 0, proc.stderr
    with open(out / "ranked.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and rows[0]["rank"] == "1"
    feasible = [r for r in rows if r["feasible"] == "True"]
    assert feasible and all(float(r["spill_mm3"]) <= 200 and float(r["ALIC_R_overlap_mm3"]) <= 40 for r in feasible)
    assert "best settings for NAc_R" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--avoid", "ALIC_R"], "NAME:VALUE"),
    (["--configs", ""], "--configs"),
])
def test_cli_optimise_bad_input(tmp_path, args, message):
    out = tmp_path / "out"
    proc = vta("optimise", str(EXAMPLE), "--out", str(out), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not out.exists()


def test_cli_optimise_needs_anatomy(tmp_path):
    proc = vta("optimise", str(EXAMPLE), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "needs an [anatomy]" in proc.stderr
