"""Stimulation waveforms: one period of a periodic DBS pulse train, with its Fourier series.

A :class:`Waveform` is dimensionless: amplitude 1 is the height of the first
(stimulating, by convention cathodic) phase, and the caller scales it by the setting's
mA or V. Time is in us, frequency in Hz. Shapes:

``rectangular``
    One monophasic rectangle of width ``pulse_width_us`` (not charge balanced).
``biphasic``
    Active charge balance: the first phase, an interphase gap, then a second phase of
    opposite sign and equal charge, amplitude ``1/ratio`` for ``ratio * pulse_width_us``
    (``ratio`` = 1: the symmetric biphasic pulse).
``passive_recharge``
    The same two-phase shape with a long, low second phase (default ``ratio`` = 10:
    amplitude -1/10 for 10 x the width), see :func:`passive_recharge` for why it is
    rectangular rather than exponential.
``csv``
    A user waveform: ``time_us, amplitude`` points over (at most) one period, linear
    between the points, a vertical step where a time repeats, zero outside the points.

Fourier series convention: ``w(t) = sum_{n=-inf}^{inf} c_n exp(j 2 pi n f t)`` with
``c_n = (1/T) int_0^T w(t) exp(-j 2 pi n f t) dt`` (two-sided; ``c_{-n} = conj(c_n)``).
The coefficients are exact (closed form) for every shape, the csv one included (the
integral of a piecewise-linear function is closed form too, so no FFT is needed).

The ``[signal]`` TOML table is validated by :func:`parse_signal`.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, VtaError, did_you_mean

log = logging.getLogger(__name__)

SHAPES = ("rectangular", "biphasic", "passive_recharge", "csv")
SPECTRUM_METHODS = ("full", "octave", "adaptive")
DEFAULT_RECHARGE_RATIO = 10.0   # as vta.activation.axons.Pulse(recharge="passive")
DEFAULT_TOLERANCE = 1e-3        # relative max time-domain error of an adaptive plan
_CHUNK = 1 << 22                # complex exponentials evaluated at once (csv coefficients)


@dataclass(frozen=True, eq=False)
class Waveform:
    """One period of a periodic, dimensionless stimulation waveform.

    Build it with :func:`rectangular`, :func:`biphasic`, :func:`passive_recharge` or
    :func:`from_csv` rather than directly.

    Attributes
    ----------
    shape : str
        One of :data:`SHAPES`.
    pulse_width_us : float
        Width of the first phase (us); for ``csv`` the duration of its first phase.
    frequency_hz : float
        Pulse repetition rate (Hz); the period is ``1e6 / frequency_hz`` us.
    interphase_gap_us : float
        Gap between the first and the second phase (us), 0 for ``rectangular``/``csv``.
    ratio : float
        Second phase: amplitude ``-1/ratio`` for ``ratio * pulse_width_us`` (1 for
        ``rectangular``/``csv``).
    samples : tuple of ndarray or None
        ``csv`` only: ``(time_us, amplitude)`` nodes covering ``[0, period]`` (a time
        repeated for a step), linear in between.
    """

    shape: str
    pulse_width_us: float
    frequency_hz: float
    interphase_gap_us: float = 0.0
    ratio: float = 1.0
    samples: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise VtaError(f"waveform shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if not (math.isfinite(self.frequency_hz) and self.frequency_hz > 0):
            raise VtaError(f"pulse frequency must be > 0 Hz, got {self.frequency_hz}")
        if not (math.isfinite(self.pulse_width_us) and self.pulse_width_us > 0):
            raise VtaError(f"pulse width must be > 0 us, got {self.pulse_width_us}")
        if not (math.isfinite(self.interphase_gap_us) and self.interphase_gap_us >= 0):
            raise VtaError(f"interphase gap must be >= 0 us, got {self.interphase_gap_us}")
        if not (math.isfinite(self.ratio) and self.ratio > 0):
            raise VtaError(f"second-phase ratio must be > 0, got {self.ratio}")
        if (self.shape == "csv") != (self.samples is not None):
            raise VtaError("waveform samples are given for, and only for, shape 'csv'")
        if self.shape != "csv":
            end = self.phases()[-1][1]
            if end > self.period_us * (1 + 1e-12):
                raise VtaError(f"the {self.shape} pulse lasts {end:g} us, longer than the period "
                               f"{self.period_us:g} us at {self.frequency_hz:g} Hz")

    # --- time domain -----------------------------------------------------------------

    @property
    def period_us(self) -> float:
        """Period ``T = 1e6 / frequency_hz`` (us)."""
        return 1e6 / self.frequency_hz

    def phases(self) -> list[tuple[float, float, float]]:
        """``(start_us, end_us, amplitude)`` of each rectangular phase (analytic shapes).

        Raises
        ------
        VtaError
            For ``csv`` waveforms, which are not made of rectangles.
        """
        if self.shape == "csv":
            raise VtaError("phases() is defined for the analytic shapes, not for a csv waveform")
        pw = float(self.pulse_width_us)
        out = [(0.0, pw, 1.0)]
        if self.shape in ("biphasic", "passive_recharge"):
            t2 = pw + float(self.interphase_gap_us)
            out.append((t2, t2 + self.ratio * pw, -1.0 / self.ratio))
        return out

    def values(self, t_us: np.ndarray) -> np.ndarray:
        """Waveform at times ``t_us`` (us, taken modulo the period); phases are ``[start, end)``."""
        t = np.mod(np.asarray(t_us, dtype=float), self.period_us)
        if self.shape == "csv":
            return _pl_eval(*self.samples, t)
        out = np.zeros_like(t)
        for t0, t1, amp in self.phases():
            out += amp * ((t >= t0) & (t < t1))
        return out

    def sample(self, n: int | None = None, dt_us: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(t_us, values)`` on a uniform grid over one period, ``t`` in ``[0, T)``.

        Parameters
        ----------
        n : int, optional
            Number of samples (spacing ``T / n``).
        dt_us : float, optional
            Sample spacing (us); give exactly one of ``n`` and ``dt_us``.
        """
        if (n is None) == (dt_us is None):
            raise VtaError("give exactly one of n or dt_us to sample a waveform")
        if dt_us is not None:
            if not dt_us > 0:
                raise VtaError(f"sample spacing must be > 0 us, got {dt_us}")
            t = np.arange(0.0, self.period_us, float(dt_us))
        else:
            if int(n) < 1:
                raise VtaError(f"number of samples must be >= 1, got {n}")
            t = np.arange(int(n)) * (self.period_us / int(n))
        return t, self.values(t)

    def net_charge(self, amplitude: float = 1.0) -> float:
        """Integral of ``amplitude * w`` over one period (amplitude x us; mA x us = nC).

        0 for a charge-balanced waveform.
        """
        return float(amplitude * self.period_us * self.fourier_coefficients(np.array([0]))[0].real)

    def charge_per_phase(self, amplitude: float = 1.0) -> float:
        """Charge of the first phase, ``amplitude * int w`` over it (amplitude x us; mA x us = nC).

        For ``csv`` the first phase runs from the first non-zero value until the waveform
        returns to zero or changes sign.
        """
        if self.shape != "csv":
            return float(amplitude * self.pulse_width_us)
        return float(amplitude * _first_phase(*self.samples)[1])

    def mean_square(self) -> float:
        """``(1/T) int_0^T w^2 dt``: the signal energy per period over T (Parseval's
        ``sum_n |c_n|^2``)."""
        if self.shape != "csv":
            return sum(a * a * (t1 - t0) for t0, t1, a in self.phases()) / self.period_us
        t, y = self.samples
        h = np.diff(t)
        return float(np.sum(h * (y[:-1] ** 2 + y[:-1] * y[1:] + y[1:] ** 2) / 3.0) / self.period_us)

    # --- frequency domain ------------------------------------------------------------

    def fourier_coefficients(self, n: np.ndarray) -> np.ndarray:
        """Exact two-sided Fourier coefficients ``c_n`` at harmonic indices ``n`` (integers).

        For a rectangle of height ``a`` on ``[t0, t1)``:
        ``c_n = a (t1 - t0)/T sinc(n f (t1 - t0)) exp(-j pi n f (t0 + t1))``; the csv
        waveform sums the closed-form integrals of its linear segments.
        """
        n = np.asarray(n)
        if self.shape == "csv":
            return _pl_coefficients(*self.samples, n, self.period_us)
        k = n.astype(float) / self.period_us            # n f in 1/us
        out = np.zeros(n.shape, dtype=complex)
        for t0, t1, amp in self.phases():
            width = t1 - t0
            out += (amp * width / self.period_us) * np.sinc(k * width) * np.exp(-1j * np.pi * k * (t0 + t1))
        return out


# --- constructors ------------------------------------------------------------------------


def rectangular(pulse_width_us: float, frequency_hz: float) -> Waveform:
    """A monophasic rectangular pulse of height 1 and width ``pulse_width_us`` (us)."""
    return Waveform("rectangular", float(pulse_width_us), float(frequency_hz))


def biphasic(pulse_width_us: float, frequency_hz: float, interphase_gap_us: float = 0.0,
             second_phase_ratio: float = 1.0) -> Waveform:
    """A charge-balanced biphasic pulse with an active second phase.

    Parameters
    ----------
    pulse_width_us : float
        Width of the first phase (us), height 1.
    frequency_hz : float
        Repetition rate (Hz).
    interphase_gap_us : float
        Gap between the phases (us).
    second_phase_ratio : float
        ``r``: the second phase has height ``-1/r`` and width ``r * pulse_width_us``
        (equal charge); 1 gives the symmetric pulse.
    """
    return Waveform("biphasic", float(pulse_width_us), float(frequency_hz), float(interphase_gap_us),
                    float(second_phase_ratio))


def passive_recharge(pulse_width_us: float, frequency_hz: float, interphase_gap_us: float = 0.0,
                     recharge_ratio: float = DEFAULT_RECHARGE_RATIO) -> Waveform:
    """A pulse with a passive (capacitor-discharge) recharge phase, modelled as a rectangle.

    The recharge of a passive-recharge pulse generator is the discharge of its output
    coupling capacitor through the tissue: in reality a decaying exponential whose time
    constant depends on the capacitor and the load impedance, neither of which the
    model knows. It is modelled, as pulse-generator simplifications commonly do, as a
    low rectangle of height ``-1/recharge_ratio`` over ``recharge_ratio *
    pulse_width_us``, which balances the first phase's charge exactly. Reasons: the
    Fourier coefficients stay closed form; the two parameters are those of OSS-DBS's
    counter pulse (``CounterPulseWidth[us]``, ``CounterAmplitude``; OSS-DBS v2 docs,
    "Stimulation signals", https://oss-dbsv2.readthedocs.io); and the default ratio 10
    is the one of the axon models' passive pulse (:class:`vta.activation.axons.Pulse`),
    so the field and the neuron models see the same pulse.

    Parameters
    ----------
    pulse_width_us : float
        Width of the first phase (us), height 1.
    frequency_hz : float
        Repetition rate (Hz).
    interphase_gap_us : float
        Delay before the recharge (us).
    recharge_ratio : float
        Ratio of the recharge width to the pulse width, >= 1 (a recharge is lower and
        longer than the pulse; use :func:`biphasic` otherwise).
    """
    if not recharge_ratio >= 1:
        raise VtaError(f"passive recharge ratio must be >= 1 (a long, low recharge), got {recharge_ratio}")
    return Waveform("passive_recharge", float(pulse_width_us), float(frequency_hz), float(interphase_gap_us),
                    float(recharge_ratio))


def from_csv(path: str | Path, frequency_hz: float) -> Waveform:
    """A user waveform from a CSV file with columns ``time_us`` and ``amplitude``.

    Times start at >= 0, never decrease (a repeated time is a step) and end at or
    before the period; the waveform is linear between points and zero outside them.

    Raises
    ------
    VtaError
        One line naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise VtaError(f"waveform csv not found: {path}")
    if not (math.isfinite(frequency_hz) and frequency_hz > 0):
        raise VtaError(f"pulse frequency must be > 0 Hz, got {frequency_hz}")
    t, y = _read_csv(path)
    period = 1e6 / frequency_hz
    if np.any(np.diff(t) < 0):
        i = int(np.argmax(np.diff(t) < 0)) + 1
        raise VtaError(f"{path.name}: time_us must not decrease (row {i + 2}: {t[i]:g} after {t[i - 1]:g})")
    if t[0] < 0:
        raise VtaError(f"{path.name}: time_us must start at >= 0, got {t[0]:g}")
    if t[-1] > period * (1 + 1e-9):
        raise VtaError(f"{path.name}: the waveform lasts {t[-1]:g} us, longer than the period {period:g} us "
                       f"at {frequency_hz:g} Hz")
    if not np.any(y != 0):
        raise VtaError(f"{path.name}: the waveform is zero everywhere")
    nodes = _pad_to_period(t, y, period)
    t_start, _, t_end = _first_phase(*nodes)
    return Waveform("csv", t_end - t_start, float(frequency_hz), samples=nodes)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(time_us, amplitude)`` columns of a csv file, checked to be finite numbers."""
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
            columns = [c.strip() for c in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise VtaError(f"cannot read waveform csv {path}: {exc}") from None
    for name in ("time_us", "amplitude"):
        if name not in columns:
            raise VtaError(f"{path.name}: needs columns 'time_us' and 'amplitude', got "
                           f"{', '.join(map(repr, columns)) or 'no data rows'}{did_you_mean(name, columns, n=1)}")
    if len(rows) < 2:
        raise VtaError(f"{path.name}: needs at least 2 rows, got {len(rows)}")
    out = []
    for name in ("time_us", "amplitude"):
        key = next(k for k in rows[0] if k.strip() == name)
        try:
            col = np.array([float(r[key]) for r in rows])
        except (TypeError, ValueError):
            raise VtaError(f"{path.name}: column '{name}' must hold numbers only") from None
        if not np.all(np.isfinite(col)):
            raise VtaError(f"{path.name}: column '{name}' must hold finite numbers only")
        out.append(col)
    return out[0], out[1]


def _pad_to_period(t: np.ndarray, y: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes covering ``[0, period]``: zero before the first and after the last point."""
    t = np.minimum(t, period)
    if t[0] > 0:
        t, y = np.r_[0.0, t[0], t], np.r_[0.0, 0.0, y]
    if t[-1] < period:
        t, y = np.r_[t, t[-1], period], np.r_[y, 0.0, 0.0]
    return t, y


# --- piecewise-linear helpers (csv) -----------------------------------------------------


def _pl_eval(t_nodes: np.ndarray, y_nodes: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Piecewise-linear function through the nodes, right-continuous at steps."""
    i = np.clip(np.searchsorted(t_nodes, t, side="right") - 1, 0, len(t_nodes) - 2)
    h = t_nodes[i + 1] - t_nodes[i]
    frac = np.divide(t - t_nodes[i], h, out=np.zeros_like(t), where=h > 0)
    return y_nodes[i] + np.clip(frac, 0.0, 1.0) * (y_nodes[i + 1] - y_nodes[i])


def _pl_coefficients(t_nodes: np.ndarray, y_nodes: np.ndarray, n: np.ndarray, period: float) -> np.ndarray:
    """Exact Fourier coefficients of a piecewise-linear function on ``[0, period]``.

    For a segment from ``(ta, ya)`` to ``(tb, yb)`` of slope ``m`` and ``s = j w``:
    ``int w e^{-st} dt = (ya e^{-s ta} - yb e^{-s tb}) / s + m (e^{-s ta} - e^{-s tb}) / s^2``
    (integration by parts); the difference of exponentials uses ``expm1`` for accuracy.
    """
    keep = np.diff(t_nodes) > 0
    ta, tb = t_nodes[:-1][keep], t_nodes[1:][keep]
    ya, yb = y_nodes[:-1][keep], y_nodes[1:][keep]
    slope = (yb - ya) / (tb - ta)
    flat = np.ravel(n)
    out = np.empty(flat.shape, dtype=complex)
    zero = flat == 0
    out[zero] = np.sum((tb - ta) * (ya + yb) / 2.0) / period
    idx = np.flatnonzero(~zero)
    step = max(1, _CHUNK // max(len(ta), 1))
    for lo in range(0, len(idx), step):
        sel = idx[lo:lo + step]
        s = (2j * np.pi / period) * flat[sel].astype(float)[:, None]
        ea = np.exp(-s * ta)
        diff = -ea * np.expm1(-s * (tb - ta))            # e^{-s ta} - e^{-s tb}
        eb = ea - diff
        out[sel] = np.sum((ya * ea - yb * eb) / s + slope * diff / s ** 2, axis=1) / period
    return out.reshape(np.shape(n))


def _first_phase(t_nodes: np.ndarray, y_nodes: np.ndarray) -> tuple[float, float, float]:
    """``(start_us, integral, end_us)`` of the first phase: from the first non-zero value
    until the waveform reaches zero or changes sign (exact for piecewise-linear)."""
    first = int(np.flatnonzero(y_nodes != 0)[0])
    sign = np.sign(y_nodes[first])
    ramp = first > 0 and t_nodes[first - 1] < t_nodes[first]      # rises from zero, not a step
    start = float(t_nodes[first - 1] if ramp else t_nodes[first])
    total = 0.0
    i = max(first - 1, 0)
    while i < len(t_nodes) - 1:
        ta, tb, ya, yb = t_nodes[i], t_nodes[i + 1], y_nodes[i], y_nodes[i + 1]
        if sign * ya < 0 or (ya == 0 and i >= first):
            return start, total, float(ta)
        if sign * yb < 0 or yb == 0:
            if tb == ta:
                return start, total, float(ta)
            tz = ta + (tb - ta) * ya / (ya - yb)                  # the zero crossing
            total += 0.5 * ya * (tz - ta)
            return start, total, float(tz)
        total += 0.5 * (ya + yb) * (tb - ta)
        i += 1
    return start, total, float(t_nodes[-1])


# --- [signal] TOML table ----------------------------------------------------------------


@dataclass(frozen=True)
class SignalConfig:
    """A validated ``[signal]`` table: the waveform and how to sample its spectrum.

    Attributes
    ----------
    waveform : Waveform
        The pulse.
    spectrum : str
        Frequency plan, one of :data:`SPECTRUM_METHODS` (default ``"octave"``).
    cutoff_hz : float or None
        Highest harmonic frequency (Hz); None: the energy rule of
        :func:`vta.timedomain.spectrum.cutoff_harmonic`.
    tolerance : float
        Relative max time-domain error of an ``adaptive`` plan.
    interface : str
        Electrode-tissue interface on every contact, one of :data:`INTERFACES`.
    interface_capacitance_uF_per_cm2 : float or None
        Double-layer capacitance (uF/cm^2); None: the platinum preset.
    points_mm : tuple of (x, y, z)
        World points (mm) whose potential and |E| over the pulse are reported.
    field_time_series_us : float or None
        Time step (us) of an |E|(t) series on the output grid (a 4D NIfTI); None: none.
    """

    waveform: Waveform
    spectrum: str = "octave"
    cutoff_hz: float | None = None
    tolerance: float = DEFAULT_TOLERANCE
    interface: str = "none"
    interface_capacitance_uF_per_cm2: float | None = None
    points_mm: tuple[tuple[float, float, float], ...] = ()
    field_time_series_us: float | None = None


_KEYS = {
    "rectangular": {"pulse_width_us"},
    "biphasic": {"pulse_width_us", "interphase_gap_us", "second_phase_ratio"},
    "passive_recharge": {"pulse_width_us", "interphase_gap_us", "second_phase_ratio"},
    "csv": {"csv"},
}
_COMMON = {"shape", "frequency_hz", "spectrum", "cutoff_hz", "tolerance", "interface",
           "interface_capacitance_uF_per_cm2", "points_mm", "field_time_series_us"}
#: ``[signal] interface`` values: no electrode-tissue interface, or an ideally
#: polarisable double layer (:data:`vta.timedomain.interface.PLATINUM_DOUBLE_LAYER`, or
#: ``interface_capacitance_uF_per_cm2``).
INTERFACES = ("none", "double_layer")


def parse_signal(table: dict, base_dir: Path, *, pulse_width_us: float | None = None,
                 frequency_hz: float | None = None, section: str = "signal") -> SignalConfig:
    """Validate a ``[signal]`` TOML table.

    Keys: ``shape`` (one of :data:`SHAPES`, default ``"biphasic"``), ``frequency_hz``
    (Hz), ``pulse_width_us`` (us; not with ``csv``), ``interphase_gap_us`` (us, default
    0) and ``second_phase_ratio`` (second phase ``1/r`` high and ``r`` x as wide;
    default 1 for ``biphasic``, 10 for ``passive_recharge``), ``csv`` (path relative to
    ``base_dir``; only with ``shape = "csv"``), ``spectrum`` (``"full"``/``"octave"``/
    ``"adaptive"``, default ``"octave"``), ``interface`` (``"none"`` or ``"double_layer"``:
    an ideally polarisable double layer on every contact, of
    ``interface_capacitance_uF_per_cm2``, default the platinum preset of
    :mod:`vta.timedomain.interface`), ``points_mm`` (world points whose potential and
    |E| over the pulse are reported), ``field_time_series_us`` (time step of an |E|(t)
    series on the output grid, written as a 4D NIfTI), ``cutoff_hz`` (Hz or ``"auto"``, default
    auto), ``tolerance`` (``adaptive`` only, default 1e-3).

    Parameters
    ----------
    table : dict
        The parsed TOML table.
    base_dir : Path
        Directory of the config file (relative csv paths).
    pulse_width_us, frequency_hz : float, optional
        Defaults for the keys of the same name (e.g. from ``[stimulation]``).
    section : str
        Key path of the table in messages.

    Raises
    ------
    ConfigError
        One line naming the key and what is wrong with it.
    """
    if not isinstance(table, dict):
        raise ConfigError(section, f"must be a table, got {type(table).__name__}")
    key = lambda name: f"{section}.{name}"  # noqa: E731
    shape = table.get("shape", "biphasic")
    if shape not in SHAPES:
        raise ConfigError(key("shape"), f"must be one of {', '.join(map(repr, SHAPES))}, got {shape!r}"
                          + (did_you_mean(shape, SHAPES, n=1) if isinstance(shape, str) else ""))
    allowed = _COMMON | _KEYS[shape]
    for name in sorted(table):
        if name not in allowed:
            hint = (f"not used with shape = {shape!r}" if any(name in k for k in _KEYS.values())
                    else "unknown key" + did_you_mean(name, sorted(allowed), n=1))
            raise ConfigError(key(name), hint)
    num = lambda name, default, **kw: _number(table, key(name), name, default, **kw)  # noqa: E731
    freq = num("frequency_hz", frequency_hz, positive=True)
    method = table.get("spectrum", "octave")
    if method not in SPECTRUM_METHODS:
        raise ConfigError(key("spectrum"), f"must be one of {', '.join(map(repr, SPECTRUM_METHODS))}, got {method!r}")
    if "tolerance" in table and method != "adaptive":
        raise ConfigError(key("tolerance"), "is only used with spectrum = 'adaptive'")
    tol = num("tolerance", DEFAULT_TOLERANCE, positive=True)
    if tol >= 1:
        raise ConfigError(key("tolerance"), f"must be < 1 (a relative error), got {tol}")
    cutoff = None if table.get("cutoff_hz", "auto") == "auto" else num("cutoff_hz", None, positive=True)
    if cutoff is not None and cutoff < freq:
        raise ConfigError(key("cutoff_hz"), f"must be >= frequency_hz ({freq:g} Hz), got {cutoff:g}")
    try:
        waveform = _waveform(table, shape, freq, base_dir, num, pulse_width_us)
    except ConfigError:
        raise
    except VtaError as exc:
        raise ConfigError(key("csv" if shape == "csv" else "pulse_width_us"), str(exc)) from None
    interface = table.get("interface", "none")
    if interface not in INTERFACES:
        raise ConfigError(key("interface"), f"must be one of {', '.join(map(repr, INTERFACES))}, got {interface!r}")
    if "interface_capacitance_uF_per_cm2" in table and interface != "double_layer":
        raise ConfigError(key("interface_capacitance_uF_per_cm2"), "is only used with interface = 'double_layer'")
    capacitance = (num("interface_capacitance_uF_per_cm2", None, positive=True)
                   if "interface_capacitance_uF_per_cm2" in table else None)
    points = _points(table.get("points_mm", []), key("points_mm"))
    step = num("field_time_series_us", None, positive=True) if "field_time_series_us" in table else None
    return SignalConfig(waveform, method, cutoff, tol, interface, capacitance, points, step)


def _points(value: Any, key: str) -> tuple[tuple[float, float, float], ...]:
    """``points_mm``: a list of [x, y, z] (mm), finite numbers."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(key, f"must be a list of [x, y, z] points in mm, got {value!r}")
    out = []
    for p in value:
        if (not isinstance(p, (list, tuple)) or len(p) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p)):
            raise ConfigError(key, f"every point must be [x, y, z] in mm (finite numbers), got {p!r}")
        out.append(tuple(float(v) for v in p))
    return tuple(out)


def _waveform(table: dict, shape: str, freq: float, base_dir: Path, num, pulse_width_us: float | None) -> Waveform:
    if shape == "csv":
        path = table.get("csv")
        if not isinstance(path, str) or not path:
            raise VtaError(f"shape = 'csv' needs key 'csv' (a file path), got {path!r}")
        path = Path(path)
        return from_csv(path if path.is_absolute() else Path(base_dir) / path, freq)
    pw = num("pulse_width_us", pulse_width_us, positive=True)
    if shape == "rectangular":
        return rectangular(pw, freq)
    gap = num("interphase_gap_us", 0.0, min_value=0.0)
    if shape == "biphasic":
        return biphasic(pw, freq, gap, num("second_phase_ratio", 1.0, positive=True))
    return passive_recharge(pw, freq, gap, num("second_phase_ratio", DEFAULT_RECHARGE_RATIO, min_value=1.0))


def _number(table: dict, key: str, name: str, default: Any, *, positive: bool = False,
            min_value: float | None = None) -> float:
    """A finite number from the table (or the default), checked like :mod:`vta.config`."""
    value = table.get(name, default)
    if value is None:
        raise ConfigError(key, "is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(key, f"must be positive, got {value}")
    if min_value is not None and value < min_value:
        raise ConfigError(key, f"must be >= {min_value}, got {value}")
    return float(value)
