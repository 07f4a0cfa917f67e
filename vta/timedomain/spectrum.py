"""Harmonic spectrum of a waveform, the frequencies to solve at, and Fourier synthesis.

In a linear, dispersive volume conductor the response to the periodic waveform ``w``
is ``u(t) = c_0 H(0) + 2 Re sum_{n=1}^{N} c_n H(n f) exp(j 2 pi n f t)`` (``c_n`` the
two-sided coefficients of :meth:`Waveform.fourier_coefficients`, ``H`` the transfer
function of the point of interest, e.g. its potential per unit current). A
:class:`FrequencyPlan` says at which frequencies ``H`` is actually solved (one FEM
solve each) and how each harmonic's ``H(n f)`` is taken from those solutions: one
linear map, a ``(n_harmonics, n_solve)`` matrix, for every method:

``full``
    Every harmonic is solved (identity); exact up to the cut-off, ``N`` solves.
``octave``
    One solve per octave band ``[2^k, 2^{k+1}) f``; every harmonic of a band takes the
    solution at the band's geometric centre ``f sqrt(n_lo n_hi)`` (its first and last
    harmonic). This is the octave-band approximation of OSS-DBS (Butenko, Bahls,
    Schroder, van Rienen, PLoS Comput Biol 2020;16:e1008023), reimplemented here.
``adaptive``
    Solve frequencies chosen so that a cubic spline through them in ``log f`` (real and
    imaginary parts; a linear interpolant, unlike PCHIP, so it is a matrix) reproduces a
    user-supplied smooth model transfer (e.g. the analytic point source in Cole-Cole
    tissue) to within a stated relative error of the synthesised time signal.

The 0 Hz (DC) term is solved at 0 Hz when the waveform has a net charge, and dropped
(its coefficient is zero) when it is charge balanced.

The default cut-off is the smallest ``N`` whose harmonics hold 99.9 % of the signal
energy ``(1/T) int w^2`` (Parseval), i.e. a relative L2 truncation error of at most
``sqrt(0.001)`` = 3.2 % of the waveform itself; for rectangles the tail energy falls as
``1/(pi^2 pw f_c)``, so this is about ``100 / pw`` (1.7 MHz for 60 us).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import CubicSpline

from ..errors import VtaError
from .signal import DEFAULT_TOLERANCE, SPECTRUM_METHODS, Waveform

log = logging.getLogger(__name__)

DEFAULT_ENERGY_FRACTION = 0.999
MAX_HARMONICS = 1 << 21
_DC_RTOL = 1e-9                  # |c_0| below this x rms: charge balanced, no DC solve

Transfer = Callable[[np.ndarray], np.ndarray]


# --- spectrum ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Spectrum:
    """The harmonics ``n f``, ``n = 0..N``, of a waveform and their coefficients.

    Attributes
    ----------
    waveform : Waveform
        The pulse.
    coefficients : ndarray, complex, shape (N + 1,)
        Two-sided Fourier coefficients ``c_n`` (dimensionless), ``n = 0..N``.
    energy_fraction : float
        Share of the signal energy held by harmonics ``|n| <= N``.
    """

    waveform: Waveform
    coefficients: np.ndarray = field(repr=False)
    energy_fraction: float

    @property
    def n_max(self) -> int:
        """Highest harmonic index ``N``."""
        return len(self.coefficients) - 1

    @property
    def harmonics(self) -> np.ndarray:
        """Harmonic indices ``0..N``."""
        return np.arange(self.n_max + 1)

    @property
    def freqs_hz(self) -> np.ndarray:
        """Harmonic frequencies ``n f`` (Hz), ``n = 0..N``."""
        return self.harmonics * self.waveform.frequency_hz

    @property
    def cutoff_hz(self) -> float:
        """Highest harmonic frequency ``N f`` (Hz)."""
        return self.n_max * self.waveform.frequency_hz

    @property
    def has_dc(self) -> bool:
        """Whether the waveform has a net charge (a 0 Hz term worth solving)."""
        return abs(self.coefficients[0]) > _DC_RTOL * math.sqrt(self.waveform.mean_square())


def cutoff_harmonic(waveform: Waveform, energy_fraction: float = DEFAULT_ENERGY_FRACTION) -> int:
    """Smallest ``N`` with ``|c_0|^2 + 2 sum_{n=1}^{N} |c_n|^2 >= energy_fraction * (1/T) int w^2``.

    Raises
    ------
    VtaError
        If more than :data:`MAX_HARMONICS` harmonics would be needed.
    """
    if not 0 < energy_fraction < 1:
        raise VtaError(f"energy fraction must be in (0, 1), got {energy_fraction}")
    target = energy_fraction * waveform.mean_square()
    held = abs(waveform.fourier_coefficients(np.array([0]))[0]) ** 2
    lo, hi = 1, 1024
    while lo <= MAX_HARMONICS:
        n = np.arange(lo, min(hi, MAX_HARMONICS) + 1)
        cum = held + 2.0 * np.cumsum(np.abs(waveform.fourier_coefficients(n)) ** 2)
        if cum[-1] >= target:
            return int(n[np.argmax(cum >= target)])
        held, lo, hi = cum[-1], hi + 1, 2 * hi
    raise VtaError(f"more than {MAX_HARMONICS} harmonics hold less than {energy_fraction:.4%} of the "
                   f"{waveform.shape} waveform's energy; give cutoff_hz")


def spectrum(waveform: Waveform, cutoff_hz: float | None = None,
             energy_fraction: float = DEFAULT_ENERGY_FRACTION) -> Spectrum:
    """The harmonics of ``waveform`` up to ``cutoff_hz`` (Hz; None: the energy rule of
    :func:`cutoff_harmonic` with ``energy_fraction``)."""
    f = waveform.frequency_hz
    if cutoff_hz is None:
        n_max = cutoff_harmonic(waveform, energy_fraction)
    else:
        n_max = int(math.floor(cutoff_hz / f * (1 + 1e-12)))
        if not 1 <= n_max <= MAX_HARMONICS:
            raise VtaError(f"cut-off {cutoff_hz:g} Hz gives {n_max} harmonics of {f:g} Hz; "
                           f"need 1 to {MAX_HARMONICS}")
    coeff = waveform.fourier_coefficients(np.arange(n_max + 1))
    held = (abs(coeff[0]) ** 2 + 2.0 * np.sum(np.abs(coeff[1:]) ** 2)) / waveform.mean_square()
    log.debug("%s waveform: %d harmonics up to %.4g Hz hold %.5f of its energy",
              waveform.shape, n_max, n_max * f, held)
    return Spectrum(waveform, coeff, float(min(held, 1.0)))


# --- frequency plans ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FrequencyPlan:
    """Where to solve, and how each harmonic combines the solutions.

    Attributes
    ----------
    spectrum : Spectrum
        The harmonics ``n = 0..N``.
    method : str
        ``"full"``, ``"octave"`` or ``"adaptive"``.
    solve_freqs_hz : ndarray, shape (n_solve,)
        Frequencies (Hz) at which the FEM is solved, ascending (0 first if DC is solved).
    weights : scipy.sparse.csr_array, shape (N + 1, n_solve)
        ``H(n f) = sum_k weights[n, k] H(solve_freqs_hz[k])``; row 0 (DC) is empty when
        the waveform is charge balanced.
    error : float or None
        Measured relative max time-domain error against the ``full`` plan for the
        transfer the plan was checked with (:func:`synthesis_error`); None if unchecked.
    """

    spectrum: Spectrum
    method: str
    solve_freqs_hz: np.ndarray
    weights: sp.csr_array = field(repr=False)
    error: float | None = None

    @property
    def n_solve(self) -> int:
        """Number of solve frequencies (FEM solves)."""
        return len(self.solve_freqs_hz)

    def default_n_t(self) -> int:
        """Default time samples per period: the smallest power of two ``>= 2 N + 2``, at least 256."""
        return max(256, 1 << (2 * self.spectrum.n_max + 1).bit_length())

    def time_us(self, n_t: int | None = None) -> np.ndarray:
        """The synthesis time grid ``k T / n_t``, ``k = 0..n_t-1`` (us)."""
        n_t = self.default_n_t() if n_t is None else int(n_t)
        return np.arange(n_t) * (self.spectrum.waveform.period_us / n_t)

    def harmonic_values(self, values: np.ndarray) -> np.ndarray:
        """``H(n f)`` for ``n = 0..N`` from the solutions at the solve frequencies.

        Parameters
        ----------
        values : array, shape (n_solve, ...)
            Complex solutions (any trailing shape, e.g. points).

        Returns
        -------
        ndarray, complex, shape (N + 1, ...)
        """
        values = np.asarray(values)
        if values.shape[:1] != (self.n_solve,):
            raise VtaError(f"need one solution per solve frequency ({self.n_solve}), got shape {values.shape}")
        flat = values.reshape(self.n_solve, -1)
        return np.asarray(self.weights @ flat).reshape((self.spectrum.n_max + 1,) + values.shape[1:])

    def synthesize(self, values: np.ndarray, n_t: int | None = None) -> np.ndarray:
        """Time-domain response over one period (steady state) from the solutions.

        ``u(t_k) = Re[c_0 H_0] + 2 Re sum_{n=1}^{N} c_n H_n exp(j 2 pi n k / n_t)`` on
        :meth:`time_us`, by an inverse real FFT.

        Parameters
        ----------
        values : array, shape (n_solve, ...)
            Complex solutions at :attr:`solve_freqs_hz` (e.g. potentials at points per
            unit amplitude).
        n_t : int, optional
            Samples per period (default :meth:`default_n_t`); fewer than ``2 N + 2``
            are taken exactly from a finer grid.

        Returns
        -------
        ndarray, real, shape (..., n_t)
        """
        h = self.harmonic_values(values)
        return _synthesize(self.spectrum.coefficients, h, self.default_n_t() if n_t is None else int(n_t))

    def reconstruct_identity(self, n_t: int | None = None) -> np.ndarray:
        """The synthesis with ``H = 1`` at every solve frequency: the waveform itself,
        band limited to the cut-off (Gibbs ripple at the steps), shape (n_t,)."""
        return self.synthesize(np.ones(self.n_solve, dtype=complex), n_t)


def _synthesize(coefficients: np.ndarray, h: np.ndarray, n_t: int) -> np.ndarray:
    """``Re sum c_n h_n e^{j 2 pi n k / n_t}`` (one-sided, DC once) -> shape (..., n_t)."""
    if n_t < 1:
        raise VtaError(f"number of time samples must be >= 1, got {n_t}")
    n_harm = len(coefficients)
    step = max(1, -(-(2 * n_harm) // n_t))                   # fine grid n_t * step >= 2 N + 2
    m = n_t * step
    trailing = h.shape[1:]
    spec = np.zeros((m // 2 + 1, int(np.prod(trailing, dtype=int))), dtype=complex)
    spec[:n_harm] = (coefficients[:, None] * h.reshape(n_harm, -1)) * m
    u = np.fft.irfft(spec, n=m, axis=0)[::step]
    return np.moveaxis(u, 0, -1).reshape(trailing + (n_t,))


def _columns(spec: Spectrum, ac_freqs: np.ndarray,
             ac_weights: sp.sparray | np.ndarray) -> tuple[np.ndarray, sp.csr_array]:
    """Solve frequencies and the full weight matrix: the DC column (if solved) first,
    then the AC columns with ``ac_weights`` for harmonics ``1..N``."""
    n_ac = len(ac_freqs)
    ac = sp.csr_array(ac_weights)
    if spec.has_dc:
        dc_row = sp.csr_array(([1.0], ([0], [0])), shape=(1, n_ac + 1))
        body = sp.hstack([sp.csr_array((spec.n_max, 1)), ac])
        return np.r_[0.0, ac_freqs], sp.csr_array(sp.vstack([dc_row, body]))
    return np.asarray(ac_freqs, dtype=float), sp.csr_array(sp.vstack([sp.csr_array((1, n_ac)), ac]))


def plan_full(spec: Spectrum) -> FrequencyPlan:
    """Solve at every harmonic up to the cut-off (``N`` solves, plus 0 Hz with net charge)."""
    n = spec.n_max
    freqs, weights = _columns(spec, np.arange(1, n + 1) * spec.waveform.frequency_hz, sp.identity(n, format="csr"))
    return FrequencyPlan(spec, "full", freqs, weights, 0.0)


def octave_bands(n_max: int) -> list[tuple[int, int]]:
    """``(first, last)`` harmonic index of each octave band ``[2^k, 2^{k+1})`` within ``1..n_max``."""
    bands, lo = [], 1
    while lo <= n_max:
        bands.append((lo, min(2 * lo - 1, n_max)))
        lo *= 2
    return bands


def plan_octave(spec: Spectrum, transfer: Transfer | None = None) -> FrequencyPlan:
    """One solve per octave band at its geometric centre ``f sqrt(n_lo n_hi)``.

    After the octave-band approximation of Butenko et al., PLoS Comput Biol
    2020;16:e1008023 (OSS-DBS). With ``transfer``, the plan's :attr:`error` is measured
    by :func:`synthesis_error`.
    """
    bands = octave_bands(spec.n_max)
    rows, cols = [], []
    for k, (lo, hi) in enumerate(bands):
        rows.extend(range(lo - 1, hi))
        cols.extend([k] * (hi - lo + 1))
    ac = sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=(spec.n_max, len(bands)))
    centres = np.array([math.sqrt(lo * hi) for lo, hi in bands]) * spec.waveform.frequency_hz
    freqs, weights = _columns(spec, centres, ac)
    plan = FrequencyPlan(spec, "octave", freqs, weights)
    return plan if transfer is None else _with_error(plan, transfer)


def _spline_basis(x_nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cubic-spline (not-a-knot) cardinal functions of ``x_nodes`` at ``x``: shape (len(x), len(x_nodes))."""
    if len(x_nodes) == 1:
        return np.ones((len(x), 1))
    return CubicSpline(x_nodes, np.eye(len(x_nodes)), axis=0)(x)


def plan_adaptive(spec: Spectrum, transfer: Transfer, tolerance: float = DEFAULT_TOLERANCE,
                  n_t: int | None = None) -> FrequencyPlan:
    """Solve frequencies refined until spline interpolation keeps the time error below ``tolerance``.

    Algorithm: start from one harmonic per decade (the first and the last included);
    interpolate ``transfer`` between the chosen harmonics with a cubic spline in
    ``log f``; the error measure is ``max_t |u_interp(t) - u_full(t)| / max_t
    |u_full(t)|``, ``u`` synthesised from ``transfer`` at every harmonic. While it
    exceeds ``tolerance``, bisect in ``log f`` (at the harmonic nearest the geometric
    mean) every interval whose bound ``sum 2 |c_n| |H_interp - H|`` is at least half
    the largest. Solve frequencies are harmonics, so the refinement ends, at worst with
    the full plan. ``transfer`` (cheap and analytic) is evaluated at every harmonic;
    the FEM's transfer is then solved only at the chosen ones.

    Parameters
    ----------
    spec : Spectrum
        The harmonics.
    transfer : callable
        ``transfer(freqs_hz) -> complex array``, a smooth model of the FEM's transfer.
    tolerance : float
        Relative max time-domain error bound (default 1e-3).
    n_t : int, optional
        Time samples per period for the error measure.
    """
    if not 0 < tolerance < 1:
        raise VtaError(f"adaptive tolerance must be in (0, 1), got {tolerance}")
    n_max, f = spec.n_max, spec.waveform.frequency_hz
    n = np.arange(1, n_max + 1)
    h_true = _evaluate(transfer, n * f)
    c = spec.coefficients[1:]
    n_t = max(256, 1 << (2 * n_max + 1).bit_length()) if n_t is None else int(n_t)
    peak = _peak(spec, transfer, h_true, n_t)
    nodes = np.unique(np.rint(np.geomspace(1, n_max, max(2, math.ceil(math.log10(max(n_max, 1))) + 1))).astype(int))
    while True:
        basis = _spline_basis(np.log(nodes), np.log(n))
        dh = basis @ h_true[nodes - 1] - h_true
        err = float(np.max(np.abs(_synthesize(np.r_[0.0, c], np.r_[0.0, dh], n_t)))) / peak
        if err <= tolerance or len(nodes) == n_max:
            break
        interval = np.searchsorted(nodes, n, side="right") - 1
        bound = np.bincount(interval, weights=2.0 * np.abs(c) * np.abs(dh), minlength=len(nodes))[:-1]
        bound[np.diff(nodes) < 2] = 0.0                      # nothing to insert
        if not bound.max() > 0:
            break
        split = np.flatnonzero(bound >= 0.5 * bound.max())
        mid = np.rint(np.sqrt(nodes[split] * nodes[split + 1].astype(float))).astype(int)
        nodes = np.union1d(nodes, np.clip(mid, nodes[split] + 1, nodes[split + 1] - 1))
    log.debug("adaptive plan: %d solve frequencies for %d harmonics, error %.3g (tolerance %.3g)",
              len(nodes), n_max, err, tolerance)
    freqs, weights = _columns(spec, nodes * f, sp.csr_array(basis))
    return FrequencyPlan(spec, "adaptive", freqs, weights, err)


def make_plan(spec: Spectrum, method: str, transfer: Transfer | None = None,
              tolerance: float = DEFAULT_TOLERANCE) -> FrequencyPlan:
    """The plan of ``method`` (``"full"``, ``"octave"``, ``"adaptive"``; the last needs ``transfer``)."""
    if method == "full":
        return plan_full(spec)
    if method == "octave":
        return plan_octave(spec, transfer)
    if method == "adaptive":
        if transfer is None:
            raise VtaError("the adaptive frequency plan needs a model transfer function")
        return plan_adaptive(spec, transfer, tolerance)
    raise VtaError(f"frequency plan must be one of {', '.join(SPECTRUM_METHODS)}, got {method!r}")


# --- error measure -----------------------------------------------------------------------


def _evaluate(transfer: Transfer, freqs_hz: np.ndarray) -> np.ndarray:
    h = np.asarray(transfer(np.asarray(freqs_hz, dtype=float)), dtype=complex)
    if h.shape != np.shape(freqs_hz) or not np.all(np.isfinite(h)):
        raise VtaError(f"transfer function must return {len(freqs_hz)} finite values, got shape {h.shape}")
    return h


def _peak(spec: Spectrum, transfer: Transfer, h_ac: np.ndarray, n_t: int) -> float:
    """``max_t |u_full(t)|`` for ``transfer`` (the scale of the relative error)."""
    h0 = _evaluate(transfer, np.array([0.0]))[0] if spec.has_dc else 0.0
    peak = float(np.max(np.abs(_synthesize(spec.coefficients, np.r_[h0, h_ac], n_t))))
    if not peak > 0:
        raise VtaError("the response to the waveform is zero for this transfer function")
    return peak


def synthesis_error(plan: FrequencyPlan, transfer: Transfer, n_t: int | None = None) -> float:
    """``max_t |u_plan(t) - u_full(t)| / max_t |u_full(t)|`` for a model ``transfer``.

    ``u_plan`` is synthesised from ``transfer`` at the plan's solve frequencies,
    ``u_full`` from ``transfer`` at every harmonic (DC included when solved).
    """
    spec = plan.spectrum
    n_t = plan.default_n_t() if n_t is None else int(n_t)
    h_ac = _evaluate(transfer, spec.freqs_hz[1:])
    h_full = np.r_[_evaluate(transfer, np.array([0.0]))[0] if spec.has_dc else 0.0, h_ac]
    u_plan = plan.synthesize(_evaluate(transfer, plan.solve_freqs_hz), n_t)
    u_full = _synthesize(spec.coefficients, h_full, n_t)
    return float(np.max(np.abs(u_plan - u_full))) / _peak(spec, transfer, h_ac, n_t)


def _with_error(plan: FrequencyPlan, transfer: Transfer) -> FrequencyPlan:
    return FrequencyPlan(plan.spectrum, plan.method, plan.solve_freqs_hz, plan.weights,
                         synthesis_error(plan, transfer))
