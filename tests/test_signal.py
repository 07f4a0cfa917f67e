"""Time-domain stimulation signals: waveforms, Fourier coefficients, frequency plans, synthesis.

The analytic check is a homogeneous dispersive medium, ``H(w) = 1/(sigma + j w eps)``:
a first-order RC low-pass whose periodic steady state is computed independently in the
time domain by ``scipy.signal.lsim`` (zero-order hold, exact for pulses on the grid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from vta.anatomy.conductivity import EPSILON_0, cole_cole_permittivity
from vta.errors import ConfigError, VtaError
from vta.timedomain import (biphasic, from_csv, make_plan, parse_signal, passive_recharge, plan_adaptive,
                            plan_full, plan_octave, rectangular, spectrum, synthesis_error)

SIGMA = 0.2   # S/m


def rc_transfer(corner_hz: float):
    """``1 / (sigma + j w eps)`` with the corner ``sigma / (2 pi eps)`` at ``corner_hz``."""
    eps = SIGMA / (2 * np.pi * corner_hz)
    return (lambda f: 1.0 / (SIGMA + 2j * np.pi * np.asarray(f) * eps)), eps


def grey_matter_point_source(f):
    """Potential 1 mm from a 1 A point source in Gabriel 1996 grey matter (V), f > 0."""
    f = np.asarray(f, dtype=float)
    sigma = 1j * 2 * np.pi * f * EPSILON_0 * cole_cole_permittivity("GM", f)
    return 1.0 / (4 * np.pi * 1e-3 * sigma)


WAVEFORMS = {
    "rectangular": rectangular(60, 125),
    "biphasic": biphasic(60, 125, interphase_gap_us=20),
    "biphasic_r3": biphasic(90, 130, interphase_gap_us=50, second_phase_ratio=3),
    "passive": passive_recharge(60, 130),
}


# --- waveforms ---------------------------------------------------------------------------


@pytest.mark.parametrize("w", [biphasic(60, 130), biphasic(90, 130, 100, 2.5), passive_recharge(60, 130),
                               passive_recharge(120, 60, 30, 20)], ids=lambda w: w.shape)
def test_charge_balance_and_charge_per_phase(w):
    t, v = w.sample(dt_us=0.5)
    assert abs(np.sum(v) * 0.5) < 1e-9 * w.pulse_width_us          # sampled integral over a period
    assert abs(w.net_charge(3.0)) < 1e-9 * w.pulse_width_us         # from c_0
    assert w.charge_per_phase(3.0) == pytest.approx(3.0 * w.pulse_width_us)   # mA x us = nC
    first, second = w.phases()
    assert second[2] * (second[1] - second[0]) == pytest.approx(-w.pulse_width_us)


def test_monophasic_carries_net_charge_and_phases():
    w = rectangular(60, 130)
    assert w.net_charge(2.0) == pytest.approx(120.0)
    assert w.phases() == [(0.0, 60.0, 1.0)]
    assert passive_recharge(60, 130, 10).phases()[1] == pytest.approx((70.0, 670.0, -0.1))
    assert w.period_us == pytest.approx(1e6 / 130)


def test_pulse_longer_than_period_and_bad_ratio_rejected():
    with pytest.raises(VtaError, match="longer than the period"):
        passive_recharge(500, 200, recharge_ratio=10)
    with pytest.raises(VtaError, match=">= 1"):
        passive_recharge(60, 130, recharge_ratio=0.5)


def cell_averages(w, m: int) -> np.ndarray:
    """Mean of the waveform over each of ``m`` equal cells of the period (exact)."""
    edges = np.arange(m + 1) * (w.period_us / m)
    integral = sum(amp * np.clip(edges - t0, 0.0, t1 - t0) for t0, t1, amp in w.phases())
    return np.diff(integral) * (m / w.period_us)


@pytest.mark.parametrize("name", list(WAVEFORMS))
def test_fourier_coefficients_match_fft_of_fine_samples(name):
    w = WAVEFORMS[name]
    m = 1 << 20                                                   # ~0.008 us cells
    # the FFT of the cell averages, times the zero-order-hold factor sinc(n/m) exp(-j pi n/m),
    # gives the exact coefficients of the staircase: the waveform to O((2 pi n / m)^2)
    n = np.arange(0, 2000)
    fft = np.fft.fft(cell_averages(w, m))[n] / m * np.sinc(n / m) * np.exp(-1j * np.pi * n / m)
    exact = w.fourier_coefficients(n)
    assert np.max(np.abs(fft - exact)) < 1e-6 * np.max(np.abs(exact))
    nonzero = np.abs(exact) > 1e-3 * np.max(np.abs(exact))
    assert np.max(np.abs(fft - exact)[nonzero] / np.abs(exact)[nonzero]) < 1e-3


def test_energy_cutoff_rule():
    s = spectrum(biphasic(60, 130))
    assert s.energy_fraction >= 0.999
    # the tail energy of a rectangle falls as 1/(pi^2 pw f_c): f_c ~ 100/pw = 1.7 MHz
    assert 1.0e6 < s.cutoff_hz < 3.0e6
    assert spectrum(biphasic(60, 130), cutoff_hz=1e5).n_max == int(1e5 // 130)


# --- csv waveforms -------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_waveform_equals_the_analytic_pulse(tmp_path):
    path = _write(tmp_path / "w.csv", "time_us,amplitude\n0,1\n60,1\n60,0\n80,0\n80,-1\n140,-1\n140,0\n")
    w, ref = from_csv(path, 130), biphasic(60, 130, interphase_gap_us=20)
    n = np.arange(0, 3000)
    assert np.allclose(w.fourier_coefficients(n), ref.fourier_coefficients(n), rtol=0, atol=1e-12)
    assert w.pulse_width_us == pytest.approx(60) and w.charge_per_phase(2.0) == pytest.approx(120)
    assert abs(w.net_charge()) < 1e-9 and w.mean_square() == pytest.approx(ref.mean_square())
    t = np.array([0.0, 30, 59.9, 60, 70, 100, 200])
    assert np.allclose(w.values(t), ref.values(t))


def test_csv_piecewise_linear_ramp_is_zero_padded(tmp_path):
    # a ramped pulse starting at 10 us, then a slow linear recharge; zero after 500 us
    path = _write(tmp_path / "ramp.csv", "time_us,amplitude\n10,0\n20,1\n70,1\n80,0\n100,-0.2\n400,-0.2\n500,0\n")
    w = from_csv(path, 130)
    assert w.pulse_width_us == pytest.approx(70) and w.charge_per_phase() == pytest.approx(60)
    m = 1 << 20
    t, v = w.sample(n=m)
    assert abs(np.sum(v) * w.period_us / m - w.net_charge()) < 1e-6
    n = np.arange(0, 300)
    fft = np.fft.fft(v)[n] / m                                     # continuous: plain FFT is accurate
    assert np.max(np.abs(fft - w.fourier_coefficients(n))) < 1e-3 * np.max(np.abs(fft))


@pytest.mark.parametrize("text, match", [
    ("time,amplitude\n0,1\n60,1\n", "needs columns 'time_us' and 'amplitude'"),
    ("time_us,amplitude\n0,1\n60,1\n50,0\n", "must not decrease"),
    ("time_us,amplitude\n0,1\n9000,1\n", "longer than the period"),
    ("time_us,amplitude\n0,1\n60,abc\n", "numbers only"),
    ("time_us,amplitude\n0,1\n", "at least 2 rows"),
    ("time_us,amplitude\n0,0\n60,0\n", "zero everywhere"),
])
def test_csv_errors_are_one_line(tmp_path, text, match):
    with pytest.raises(VtaError, match=match) as info:
        from_csv(_write(tmp_path / "bad.csv", text), 130)
    assert "\n" not in str(info.value)


def test_csv_missing_file(tmp_path):
    with pytest.raises(VtaError, match="not found") as info:
        from_csv(tmp_path / "nope.csv", 130)
    assert "\n" not in str(info.value)


# --- synthesis -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(WAVEFORMS))
def test_identity_synthesis_reproduces_the_pulse(name):
    w = WAVEFORMS[name]
    errors = []
    _, v = w.sample(n=1 << 17)
    for cutoff in (1e5, 4e5, 1.6e6, None):                         # None: the 99.9 % energy rule
        plan = plan_full(spectrum(w, cutoff))
        u = plan.reconstruct_identity(1 << 17)
        errors.append(np.linalg.norm(u - v) / np.linalg.norm(v))
    assert errors[0] > errors[1] > errors[2]                       # ~ 1/sqrt(cut-off), Gibbs-limited
    assert errors[3] < 0.045                                       # ~sqrt(1 - 0.999)
    # away from the steps the band-limited pulse is the pulse
    t = plan.time_us(1 << 17)
    gap = np.array([np.abs(t - e) for p in w.phases() for e in p[:2]])
    far = np.min(np.minimum(gap, w.period_us - gap), axis=0) > 10          # periodic distance
    assert np.max(np.abs(u - v)[far]) < 0.02


def test_synthesis_is_vectorised_over_points():
    plan = plan_full(spectrum(WAVEFORMS["biphasic"], 5e5))
    h, _ = rc_transfer(1e4)
    values = h(plan.solve_freqs_hz)[:, None, None] * np.array([[1.0, 2.0, -1.0]])[None]   # (n_solve, 1, 3)
    u = plan.synthesize(values, 4000)
    assert u.shape == (1, 3, 4000)
    assert np.allclose(u[0, 1], 2 * u[0, 0]) and np.allclose(u[0, 2], -u[0, 0])
    # fewer samples than 2N + 2: exact subsamples of a finer grid
    assert np.allclose(plan.synthesize(values, 1000), u[..., ::4])


@pytest.mark.parametrize("name", ["rectangular", "biphasic"])
@pytest.mark.parametrize("corner_hz", [1e3, 1e4])
def test_rc_medium_matches_lsim_steady_state(name, corner_hz):
    """Fourier synthesis in 1/(sigma + j w eps) == the RC circuit in the time domain,
    within 0.5 % of the peak (the truncation error at the kinks, falling as 1/N)."""
    w = WAVEFORMS[name]
    transfer, eps = rc_transfer(corner_hz)
    plan = plan_full(spectrum(w))
    n_t = 32000                                                    # dt = 0.25 us: the edges are on the grid
    u = plan.synthesize(transfer(plan.solve_freqs_hz), n_t)
    t, v = w.sample(n=n_t)
    periods = 3                                                    # tau <= 160 us << T = 8 ms
    t_all = np.concatenate([t + k * w.period_us for k in range(periods)])
    _, y, _ = sps.lsim(([1.0], [eps * 1e6, SIGMA]), np.tile(v, periods), t_all, interp=False)
    ref = y[-n_t:]
    assert np.max(np.abs(u - ref)) < 5e-3 * np.max(np.abs(ref))
    if name == "rectangular":                                      # the DC term is solved at 0 Hz
        assert plan.solve_freqs_hz[0] == 0.0 and np.mean(ref) == pytest.approx(np.mean(u), rel=1e-3)


# --- frequency plans -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["biphasic", "passive", "biphasic_r3"])
def test_octave_plan_15_solves_within_1_percent_in_grey_matter_7_percent_in_rc(name):
    s = spectrum(WAVEFORMS[name])
    plan = plan_octave(s, grey_matter_point_source)
    assert plan.n_solve <= 16 and s.n_max > 7000                   # vs > 7000 solves for 'full'
    assert plan.error < 0.01                                       # Cole-Cole: smooth, nearly flat
    rc, _ = rc_transfer(1e4)
    assert synthesis_error(plan, rc) < 0.07                        # a full first-order pole: coarser
    assert plan.weights.sum(axis=1)[1:].min() == 1.0               # each harmonic in one band


@pytest.mark.parametrize("name", ["biphasic", "passive", "biphasic_r3"])
def test_adaptive_plan_meets_tolerance_with_few_solves(name):
    s = spectrum(WAVEFORMS[name])
    full = plan_full(s)
    for transfer, tol, most in ((grey_matter_point_source, 1e-3, 10), (grey_matter_point_source, 1e-4, 18),
                                (rc_transfer(1e4)[0], 1e-3, 16)):
        plan = plan_adaptive(s, transfer, tol)
        assert plan.error <= tol and plan.n_solve <= most           # vs s.n_max (> 7000) solves
        u_plan = plan.synthesize(transfer(plan.solve_freqs_hz))
        u_full = full.synthesize(transfer(full.solve_freqs_hz))
        assert np.max(np.abs(u_plan - u_full)) <= tol * np.max(np.abs(u_full)) * (1 + 1e-9)
        assert synthesis_error(plan, transfer) == pytest.approx(plan.error)
        assert plan.reconstruct_identity(1024) == pytest.approx(full.reconstruct_identity(1024), abs=1e-9)


def test_make_plan_and_errors():
    s = spectrum(WAVEFORMS["biphasic"], 1e5)
    assert make_plan(s, "full").n_solve == s.n_max and not s.has_dc
    assert make_plan(s, "octave").error is None
    with pytest.raises(VtaError, match="needs a model transfer"):
        make_plan(s, "adaptive")
    with pytest.raises(VtaError, match="one of"):
        make_plan(s, "decade")
    with pytest.raises(VtaError, match="one solution per solve frequency"):
        make_plan(s, "octave").synthesize(np.ones(3))


# --- [signal] table -------------------------------------------------------------------------


def test_parse_signal(tmp_path):
    cfg = parse_signal({"shape": "passive_recharge", "pulse_width_us": 60, "frequency_hz": 130,
                        "interphase_gap_us": 10, "spectrum": "adaptive", "tolerance": 1e-4}, tmp_path)
    assert cfg.waveform.ratio == 10 and cfg.waveform.interphase_gap_us == 10
    assert cfg.spectrum == "adaptive" and cfg.tolerance == 1e-4 and cfg.cutoff_hz is None
    cfg = parse_signal({}, tmp_path, pulse_width_us=90, frequency_hz=130)
    assert cfg.waveform.shape == "biphasic" and cfg.waveform.pulse_width_us == 90 and cfg.spectrum == "octave"
    _write(tmp_path / "w.csv", "time_us,amplitude\n0,1\n60,1\n60,-0.5\n180,-0.5\n")
    cfg = parse_signal({"shape": "csv", "csv": "w.csv", "frequency_hz": 130, "cutoff_hz": 1e6}, tmp_path)
    assert cfg.waveform.shape == "csv" and cfg.cutoff_hz == 1e6


@pytest.mark.parametrize("table, key, match", [
    ({"shape": "square"}, "signal.shape", "must be one of"),
    ({"shape": "rectangular", "interphase_gap_us": 5}, "signal.interphase_gap_us", "not used with shape"),
    ({"pulse_widht_us": 60}, "signal.pulse_widht_us", "did you mean 'pulse_width_us'"),
    ({"pulse_width_us": -60}, "signal.pulse_width_us", "must be positive"),
    ({"spectrum": "octave", "tolerance": 1e-3}, "signal.tolerance", "only used with spectrum = 'adaptive'"),
    ({"spectrum": "fft"}, "signal.spectrum", "must be one of"),
    ({"cutoff_hz": 50}, "signal.cutoff_hz", "must be >= frequency_hz"),
    ({"shape": "passive_recharge", "second_phase_ratio": 0.5}, "signal.second_phase_ratio", "must be >= 1"),
    ({"shape": "csv", "csv": "missing.csv"}, "signal.csv", "not found"),
    ({"shape": "biphasic", "pulse_width_us": 5000, "frequency_hz": 130}, "signal.pulse_width_us",
     "longer than the period"),
])
def test_parse_signal_errors_are_one_line_config_errors(tmp_path, table, key, match):
    defaults = {"pulse_width_us": 60, "frequency_hz": 130} if table.get("shape") != "csv" else {"frequency_hz": 130}
    with pytest.raises(ConfigError, match=match) as info:
        parse_signal(table, tmp_path, **defaults)
    assert info.value.key == key and "\n" not in str(info.value)


def test_parse_signal_requires_frequency(tmp_path):
    with pytest.raises(ConfigError, match="is required") as info:
        parse_signal({"pulse_width_us": 60}, tmp_path)
    assert info.value.key == "signal.frequency_hz"
