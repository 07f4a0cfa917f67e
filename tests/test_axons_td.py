"""Axon models driven by the time-domain potential (vta.activation.axons low-rank entry
points, vta.timedomain.axons_td).

Checks: the low-rank kernels with one term are the separable models; a resistive
time-domain run gives the quasi-static thresholds; capacitive grey matter under current
control raises thresholds (the pulse's high-frequency content meets a higher
conductivity); a voltage-controlled pulse behind the electrode double layer activates
less than the electrostatic model, the effect of Butson & McIntyre, Clin Neurophysiol
116:2490 (2005).
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import numpy as np
import pytest

from vta.activation import axons as ax
from vta.activation import axons_lowrank as lr
from vta.activation.tracts import Tract, save_tract
from vta.errors import VtaError
from vta.scene import Scene
from vta.timedomain.axons_td import axon_activation_time_domain, waveform_step_means
from vta.timedomain.dispersive import complex_conductivity
from vta.timedomain.signal import passive_recharge

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "time_domain_3389.toml"
#: Fibres along y at x = d, level with contact 1 (z = 4.25 mm).
DISTANCES_MM = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]

log = logging.getLogger(__name__)


# --- the low-rank kernels ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fibres():
    model = ax.mrg_model(5.7)
    return model, [ax.point_source_ve(model, 31, d, -1.0) for d in (0.8, 1.5, 2.5, 4.0)]


@pytest.mark.parametrize("pulse", [ax.Pulse(90.0, "passive"), ax.Pulse(60.0, "symmetric", 20.0), ax.Pulse(120.0, "none")])
def test_one_term_reproduces_the_separable_model(fibres, pulse):
    model, ves = fibres
    th = ax.thresholds(model, ves, pulse)
    n = int(np.ceil((pulse.width_us + 1500.0) / 2.0))
    w = pulse.step_values(2.0, n)
    steps = lr.LowRankStimulus(w[None], step_us=2.0, first_phase_us=pulse.width_us, duration_us=pulse.duration_us)
    A = [v[:, None] for v in ves]
    np.testing.assert_allclose(lr.thresholds_lowrank(model, A, steps), th, rtol=1e-12)
    # sampled with vertical steps and resampled onto dt: the same step means
    sampled = lr.LowRankStimulus.from_pulse(pulse)
    np.testing.assert_allclose(sampled.step_values(2.0, n)[0], w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lr.thresholds_lowrank(model, A, sampled), th, rtol=1e-12)
    # the potential split over three terms
    split = lr.LowRankStimulus(np.vstack([w, 2 * w, -w]), step_us=2.0, first_phase_us=pulse.width_us,
                               duration_us=pulse.duration_us)
    A3 = [np.column_stack([0.5 * v, 0.5 * v, 0.5 * v]) for v in ves]
    np.testing.assert_allclose(lr.thresholds_lowrank(model, A3, split), th, rtol=1e-9)
    # traces, and activation
    s1 = ax.simulate(model, ves[1] * th[1], pulse)
    s2 = lr.simulate_lowrank(model, (ves[1] * th[1])[:, None], steps)
    assert s1.activated and s2.activated
    np.testing.assert_array_equal(s1.vm_mV, s2.vm_mV)
    np.testing.assert_array_equal(lr.activated_lowrank(model, [a * 1.02 * t for a, t in zip(A, th)], steps),
                                  [True] * len(ves))


def test_lowrank_stimulus_resampling_and_rank_reduction():
    ramp = lr.LowRankStimulus(np.array([[0.0, 10.0]]), time_us=np.array([0.0, 10.0]), first_phase_us=10.0)
    # a ramp g = t on [0, 10] us: step means (k + 1/2) dt, 0 after the last sample
    np.testing.assert_allclose(ramp.step_values(2.0, 7)[0], [1, 3, 5, 7, 9, 0, 0], atol=1e-12)
    with pytest.raises(VtaError):
        lr.LowRankStimulus(np.ones((2, 3)), time_us=np.array([0.0, 2.0, 1.0]))
    rng = np.random.default_rng(1)
    base = rng.normal(size=(3, 50))
    G = np.vstack([base, 0.5 * base[1] + base[2], base[1] - base[2]])   # 5 terms; rows 1-4 of rank 2
    A = [rng.normal(size=(20, 5)) for _ in range(4)]
    A2, G2 = lr.reduce_rank(A, G, keep_first=True)
    assert G2.shape[0] == 3
    np.testing.assert_array_equal(G2[0], G[0])
    for a, b in zip(A, A2):
        np.testing.assert_allclose(b @ G2, a @ G, atol=1e-9 * np.abs(a @ G).max())


# --- time-domain runs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def lines(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("td_axons") / "lines.tck"
    lines = [np.column_stack([np.full(81, d), np.linspace(-20, 20, 81), np.full(81, 4.25)]) for d in DISTANCES_MM]
    save_tract(Tract("lines", tuple(lines)), path)
    return path


def _gm_sigma_130() -> float:
    return float(complex_conductivity("GM", [130.0])[0].real)


def _scene(lines: Path, case: str) -> Scene:
    data = tomllib.loads(EXAMPLE.read_text())
    data["tracts"] = {"files": [{"path": str(lines), "name": "lines"}], "axon_length_mm": 20.0,
                      "max_distance_mm": 8.0}
    data["output"] = {"nifti": False}
    if case == "resistive":
        data["tissue"].pop("dispersive_tissue")
    else:  # Cole-Cole grey matter; the quasi-static run at its conductivity at 130 Hz
        data["tissue"]["conductivity_S_per_m"] = _gm_sigma_130()
    if case == "butson":
        data["stimulation"].update({"mode": "voltage", "contacts": {"1": -3.0}, "pulse_width_us": 90})
        data["signal"].update({"shape": "passive_recharge", "interface": "double_layer"})
    return Scene.from_dict(data, str(EXAMPLE))


def _radius_mm(s: np.ndarray) -> float:
    """Distance at which the threshold factor is 1 (log-log interpolation between fibres)."""
    d = np.asarray(DISTANCES_MM)
    k = int(np.flatnonzero(s > 1.0)[0])
    x = np.log([d[k - 1], d[k]])
    y = np.log([s[k - 1], s[k]])
    return float(np.exp(x[0] + (0.0 - y[0]) * (x[1] - x[0]) / (y[1] - y[0])))


def test_resistive_time_domain_gives_the_quasi_static_thresholds(lines):
    res = axon_activation_time_domain(_scene(lines, "resistive"), s_max=10.0)
    t = res.tracts[0]
    assert t.n_terms == 1
    assert np.all(np.isfinite(t.threshold_factor)) and np.all(np.diff(t.threshold_factor) > 0)
    np.testing.assert_allclose(t.threshold_factor, t.threshold_factor_quasi_static, rtol=0.011)
    summary = res.summary()["tracts"]["lines"]
    assert summary["n_activated"] == summary["n_activated_quasi_static"] > 0
    # the quasi-static comparison is the separable model with the same pulse
    wf = passive_recharge(60, 130)
    np.testing.assert_array_equal(waveform_step_means(wf, 2.0, 900), ax.Pulse(60.0, "passive").step_values(2.0, 900))


def test_capacitive_grey_matter_raises_current_controlled_thresholds(lines):
    """Current control, biphasic 60 us: the pulse's spectrum (mostly 1-20 kHz) meets the
    higher conductivity of grey matter there than at 130 Hz, so the potential and the
    activating function are smaller than the resistive model's (here +16 %)."""
    res = axon_activation_time_domain(_scene(lines, "gm_current"), s_max=10.0)
    t = res.tracts[0]
    ratio = t.threshold_factor / t.threshold_factor_quasi_static
    log.info("GM, current control: TD/QS threshold ratio %s", np.round(ratio, 3))
    assert t.n_terms >= 2
    assert np.all(ratio > 1.02) and np.all(ratio < 1.4)
    assert _radius_mm(t.threshold_factor) < _radius_mm(t.threshold_factor_quasi_static)


def test_voltage_control_with_double_layer_activates_less(lines):
    """Butson & McIntyre 2005's case: 3389, contact 1 at -3 V (monopolar, the case as
    the return), 90 us, 130 Hz, passive recharge; Cole-Cole grey matter and the platinum
    double layer (20 uF/cm^2) against the electrostatic model at the 130 Hz conductivity.
    The tissue voltage sags over the phase as the double layer charges: thresholds rise
    (here +5-7 %, the activation radius shrinks by about 3 %)."""
    res = axon_activation_time_domain(_scene(lines, "butson"), s_max=10.0)
    t = res.tracts[0]
    ratio = t.threshold_factor / t.threshold_factor_quasi_static
    r_td, r_qs = _radius_mm(t.threshold_factor), _radius_mm(t.threshold_factor_quasi_static)
    log.info("Butson case: TD/QS threshold ratio %s; radius %.3f vs %.3f mm (%.1f %% smaller)", np.round(ratio, 3),
             r_td, r_qs, 100 * (1 - r_td / r_qs))
    assert np.all(ratio > 1.0) and np.all(ratio < 1.5)
    assert 0.005 < 1 - r_td / r_qs < 0.3
    summary = res.summary()["tracts"]["lines"]
    assert summary["n_activated"] <= summary["n_activated_quasi_static"]
