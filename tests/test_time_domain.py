"""The time-domain run (`[signal]`): resistive tissue gives the quasi-static answer,
dispersive tissue filters current-controlled pulses but not voltage-controlled ones in
homogeneous tissue, and `vta run` writes and reports it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from vta.errors import ConfigError
from vta.scene import Scene
from vta.timedomain.run import simulate_time_domain
from vta.timedomain.signal import biphasic
from vta.timedomain.spectrum import make_plan, plan_full, spectrum
from vta.timedomain.time_response import time_basis

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "time_domain_3389.toml"


def _config(**changes) -> dict:
    data = tomllib.loads(EXAMPLE.read_text())
    for section, values in changes.items():
        if values is None:
            data.pop(section, None)
        else:
            data.setdefault(section, {}).update(values)
    return data


def _run(data: dict):
    scene = Scene.from_dict(data, str(EXAMPLE))
    sim = scene.simulate()
    return scene, sim, sim.time_domain


def test_resistive_tissue_reproduces_the_quasi_static_vta():
    data = _config()
    data["tissue"].pop("dispersive_tissue")
    scene, sim, td = _run(data)
    qs = sim.vta_grid
    assert td.grid.shape == qs.grid.shape
    # |E(t)| = |E_qs| w(t) exactly: the peak is the quasi-static field
    np.testing.assert_allclose(td.peak_field_V_per_mm, qs.field_norm_V_per_mm, rtol=1e-5, atol=1e-6)
    assert abs(td.vta_volume_mm3 - qs.volume_mm3) <= qs.grid.voxel_volume_mm3
    # the delivered current is the programmed pulse
    assert td.currents_mA[1].min() == pytest.approx(-3.0, rel=1e-9)
    summary = sim.summary()["time_domain"]
    assert summary["contacts"]["1"]["charge_first_phase_uC"] == pytest.approx(-3.0 * 60e-3, rel=0.02)


def test_time_courses_at_points():
    """``[signal] points_mm``: in resistive tissue the potential and |E| at a point are
    the quasi-static values times the pulse."""
    data = _config(signal={"points_mm": [[2.0, 0.0, 2.25], [0.0, 3.0, 4.0], [0.0, 0.0, 60.0]]})
    data["tissue"].pop("dispersive_tissue")
    scene, sim, td = _run(data)
    w = td.time.waveform_values
    pts = np.asarray(td.points_mm)
    u_qs = sim.basis.potential_at(pts[:2], sim.potentials_V)
    e_qs = np.linalg.norm(sim.basis.field_at(pts[:2], sim.potentials_V), axis=1)
    np.testing.assert_allclose(td.point_potential_V[:2], u_qs[:, None] * w[None, :], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(td.point_field_V_per_mm[:2], e_qs[:, None] * np.abs(w)[None, :], rtol=1e-6, atol=1e-9)
    points = sim.summary()["time_domain"]["points"]
    assert points[0]["field_peak_V_per_mm"] == pytest.approx(e_qs[0], rel=1e-6)
    assert points[2]["potential_peak_V"] is None            # outside the domain: said so, not a number


def test_field_time_series_on_the_grid():
    """``field_time_series_us``: |E(t)| on the output grid; resistive tissue gives the
    quasi-static map times |w(t)| at every instant, and its maximum is the peak map."""
    data = _config(signal={"field_time_series_us": 10.0})
    data["tissue"].pop("dispersive_tissue")
    scene, sim, td = _run(data)
    series, t = td.field_series_V_per_mm, td.field_series_t_us
    assert series.shape == tuple(td.grid.shape) + (t.size,)
    assert t[1] - t[0] == pytest.approx(10.0)
    w = np.abs(td.plan.spectrum.waveform.values(t))
    qs = sim.vta_grid.field_norm_V_per_mm
    np.testing.assert_allclose(series, qs[..., None] * w[None, None, None, :], rtol=1e-4, atol=1e-5)
    assert sim.summary()["time_domain"]["field_time_series_t_us"] == pytest.approx(list(t))
    bad = _config(signal={"field_time_series_us": 1e-4})
    with pytest.raises(ConfigError, match="field_time_series_us"):
        Scene.from_dict(bad, str(EXAMPLE)).simulate()


def _dti_nifti(path: Path) -> Path:
    """A 2 mm tensor field (FSL order) over the right NAc/ALIC region: prolate, 5:1,
    along an oblique direction, with an MD of white matter's (mm^2/s)."""
    import nibabel as nib

    axis = np.array([0.3, 0.5, 0.81])
    axis /= np.linalg.norm(axis)
    D = 0.3e-3 * np.eye(3) + (1.5e-3 - 0.3e-3) * np.outer(axis, axis)
    comps = D[[0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    shape = (30, 30, 30)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-20.0, -20.0, -40.0]
    data = np.broadcast_to(comps, shape + (6,)).astype(np.float32)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), path)
    return path


def test_dti_anisotropy_in_the_frequency_domain(tmp_path):
    """With DTI, resistive tissue (a frequency-independent conductivity preset) gives the
    quasi-static DTI field at every instant: the anisotropic tensors enter the complex
    solves; and they matter (the isotropic run's VTA differs)."""
    data = {
        "anatomy": {"atlas": "default", "dti_nifti": str(_dti_nifti(tmp_path / "dti.nii.gz"))},
        "lead": {"model": "Medtronic 3389", "target": "NAc_R"},
        "tissue": {"model": "constant"},
        "stimulation": {"mode": "current", "contacts": {"1": -3.0}, "pulse_width_us": 60, "frequency_hz": 130},
        "solver": {"preset": "fast"},
        "signal": {"shape": "biphasic", "spectrum": "octave"},
        "output": {"grid_spacing_mm": 0.5},
    }
    scene = Scene.from_dict(data, str(tmp_path / "dti.toml"))
    assert scene.dti is not None and scene.method != "axisymmetric"
    sim = scene.simulate()
    td, qs = sim.time_domain, sim.vta_grid
    # to the solvers' tolerance: the quasi-static 3D solve stops CG at a relative
    # residual of 1e-5 (|E| differences up to ~3e-4 of the local field, 1e-4 of the peak)
    scale = float(qs.field_norm_V_per_mm.max())
    assert np.abs(td.peak_field_V_per_mm - qs.field_norm_V_per_mm).max() < 3e-4 * scale
    assert abs(td.vta_volume_mm3 - qs.volume_mm3) <= 2 * qs.grid.voxel_volume_mm3
    iso = dict(data, anatomy={"atlas": "default"})
    td_iso = Scene.from_dict(iso, str(tmp_path / "iso.toml")).simulate().time_domain
    assert abs(td_iso.vta_volume_mm3 / td.vta_volume_mm3 - 1) > 0.02  # 4 % here (DTI in white matter only)


def test_capacitive_tissue_shrinks_a_current_controlled_vta():
    scene, sim, td = _run(_config())
    summary = sim.summary()["time_domain"]
    assert summary["spectrum"]["n_solve_frequencies"] < 20
    assert summary["spectrum"]["plan_error"] <= 1e-3
    z = summary["impedance_spectrum"]
    assert all(s["phase_deg"] < 0 for s in z)                # capacitive load
    assert z[-1]["magnitude_ohm"] < z[0]["magnitude_ohm"]     # lower impedance at high frequency
    # the same tissue resistive at the stimulation frequency: the quasi-static reference
    ref = _config()
    ref["tissue"].pop("dispersive_tissue")
    ref["tissue"]["conductivity_S_per_m"] = float(scene_gm_sigma(scene))
    _, _, td_qs = _run(ref)
    assert td.vta_volume_mm3 < td_qs.vta_volume_mm3


def scene_gm_sigma(scene) -> float:
    from vta.timedomain.dispersive import complex_conductivity

    return complex_conductivity("GM", [scene.config.stimulation.frequency_hz])[0].real


def test_voltage_control_in_homogeneous_tissue_keeps_the_field_shape():
    """Imposed contact potentials in homogeneous (if dispersive) tissue: the field is the
    quasi-static one times the pulse, whatever the conductivity."""
    data = _config(stimulation={"mode": "voltage", "contacts": {"1": -2.0}})
    data["tissue"].pop("encapsulation_thickness_mm")
    data["tissue"].pop("encapsulation_conductivity_S_per_m")
    scene, sim, td = _run(data)
    np.testing.assert_allclose(td.peak_field_V_per_mm, sim.vta_grid.field_norm_V_per_mm, rtol=1e-4, atol=1e-5)
    assert td.voltages_V[1].min() == pytest.approx(-2.0, rel=1e-6)


def test_time_basis_matches_the_full_fourier_synthesis():
    """Reference split + plan: the RC (dispersive point source) response equals the full
    harmonic sum, and resistive transfer gives the waveform exactly."""
    wf = biphasic(60, 130)
    spec = spectrum(wf)
    sigma, eps = 0.1, 8.854e-12 * 1e5

    def H(f):
        return 1.0 / (sigma + 2j * np.pi * np.asarray(f) * eps)

    full = plan_full(spec)
    n_t = full.default_n_t()
    t_full = full.time_us(n_t)
    u_full = full.synthesize(H(full.solve_freqs_hz), n_t)
    keep = np.flatnonzero(t_full < 200)[::9]
    tb = time_basis(full, t_full[keep])
    u = tb.synthesize(H(full.solve_freqs_hz))
    assert np.abs(u - u_full[keep]).max() <= 1e-3 * np.abs(u_full).max()
    adaptive = make_plan(spec, "adaptive", H, 1e-3)
    u_adaptive = time_basis(adaptive, t_full[keep]).synthesize(H(adaptive.solve_freqs_hz))
    assert np.abs(u_adaptive - u_full[keep]).max() <= 3e-3 * np.abs(u_full).max()
    flat = time_basis(adaptive).synthesize(np.full(adaptive.n_solve, 5.0 + 0j))
    np.testing.assert_allclose(flat, 5.0 * wf.values(time_basis(adaptive).t_us), atol=1e-12)


def test_bad_signal_is_a_config_error():
    data = _config(signal={"shape": "triangle"})
    with pytest.raises(ConfigError, match="signal.shape"):
        Scene.from_dict(data, str(EXAMPLE))
    data = _config(tissue={"dispersive_tissue": "bone"})
    with pytest.raises(ConfigError, match="dispersive_tissue"):
        Scene.from_dict(data, str(EXAMPLE))


def test_vta_run_writes_the_time_domain_outputs(tmp_path):
    out = tmp_path / "td"
    subprocess.run([sys.executable, "-m", "vta", "run", str(EXAMPLE), "--out", str(out), "-q"], check=True,
                   capture_output=True)
    summary = json.loads((out / "summary.json").read_text())
    td = summary["time_domain"]
    assert td["vta_grid_volume_mm3"] > 0 and td["quasi_static_vta_grid_volume_mm3"] > 0
    for name in ("efield_peak_time_domain.nii.gz", "vta_time_domain.nii.gz", "waveforms.csv"):
        assert name in summary["outputs"] and (out / name).is_file()
    with open(out / "waveforms.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"t_us", "I1_mA", "V1_V"} <= set(rows[0])
    data = _config(signal={"points_mm": [[1.0]]})
    with pytest.raises(ConfigError, match="points_mm"):
        Scene.from_dict(data, str(EXAMPLE))
    assert min(float(r["I1_mA"]) for r in rows) == pytest.approx(-3.0, rel=1e-6)


def test_time_domain_sweep_equals_the_runs_on_one_basis(monkeypatch):
    """A sweep of settings builds the frequency basis once and gives, per setting, the
    peak-|E| VTA and waveforms of simulate_time_domain on the same grid."""
    import vta.timedomain.sweep_td as sweep_mod
    from vta.fem.stimulation import Setting
    from vta.timedomain.run import simulate_time_domain

    scene = Scene.from_dict(_config(), str(EXAMPLE))
    settings = [Setting("current", {1: -1.0}), Setting("current", {1: -3.0}), Setting("current", {2: -2.0}),
                Setting("current", {1: -1.2, 2: -0.8})]
    grid = scene.voxel_grid(np.array([0.0, -3.0, -2.0, 0.0]))
    builds = []
    original = sweep_mod.frequency_basis
    monkeypatch.setattr(sweep_mod, "frequency_basis", lambda *a, **k: builds.append(1) or original(*a, **k))
    rows = sweep_mod.time_domain_sweep(scene, settings, grid=grid)
    assert len(builds) == 1 and len(rows) == 4
    for s, row in zip(settings, rows):
        run = simulate_time_domain(scene, s, grid=grid)
        assert row["td_vta_mm3"] == pytest.approx(run.vta_volume_mm3, abs=1e-9)
        assert row["td_peak_field_V_per_mm"] == pytest.approx(float(run.peak_field_V_per_mm.max()), rel=1e-5)
        k = sorted(s.amplitudes)
        assert row["td_peak_current_mA"] == pytest.approx(_signed_peak(run.currents_mA[k]), rel=1e-9)
        assert row["td_peak_voltage_V"] == pytest.approx(_signed_peak(run.voltages_V[k]), rel=1e-9)
    assert rows[1]["td_vta_mm3"] > rows[0]["td_vta_mm3"] > 0


def _signed_peak(values) -> float:
    v = np.asarray(values)
    return float(v.flat[np.argmax(np.abs(v))])
