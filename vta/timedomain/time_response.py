"""Time courses at chosen instants from solutions at the solve frequencies.

A frequency plan (:mod:`vta.timedomain.spectrum`) maps the solutions at its solve
frequencies to every harmonic of the pulse train: ``H_n = sum_i W[n, i] v_i``. The time
course at instants ``t_j`` is then

    u(t_j) = Re[c_0 H_0] + 2 Re sum_n c_n H_n exp(j 2 pi n f t_j).

Synthesised this way, a truncated Fourier series rings at the pulse edges (Gibbs: 9 %
overshoot), which would inflate a peak-field VTA. :func:`time_matrix` therefore splits
off a real reference ``v_ref`` (the real part of the solution at the highest solve
frequency; real, because ``Re[v w]`` of a complex ``v`` would need the Hilbert
transform of ``w``) and synthesises the reference part exactly, with the waveform:

    u(t) = v_ref w(t) + Re sum_i (v_i - v_ref) B[i, t],

where ``B[i, j] = sum_n W[n, i] f_n c_n exp(j 2 pi n f t_j)`` (``f_0 = 1``, else 2). The
rows of ``W`` sum to 1 (every plan interpolates), so this is the same series; but the
remainder ``H_n - v_ref`` is small towards the cut-off, so it converges fast, and purely
resistive tissue (all ``v_i`` equal) gives ``v_ref w(t)`` exactly, the quasi-static
answer. Any quantity linear in the solutions (potentials, field components, contact
currents) is a product with ``B`` per point: a time course costs ``n_solve`` complex
multiply-adds per instant.

Units: time us, frequency Hz; the values keep the solutions' units.
"""

from __future__ import annotations

import numpy as np

from .signal import Waveform
from .spectrum import FrequencyPlan

__all__ = ["TimeBasis", "time_basis", "pulse_instants"]

#: Harmonics per chunk when forming the time matrix (bounds its memory).
_CHUNK = 4096


class TimeBasis:
    """Synthesis at fixed instants for one frequency plan (see the module docstring).

    Attributes
    ----------
    t_us : ndarray, shape (n_t,)
    waveform_values : ndarray, shape (n_t,)
        ``w(t)`` at the instants (the pulse, amplitude 1).
    matrix : ndarray of complex, shape (n_solve, n_t)
        ``B``.
    reference : int
        Index of the reference solve frequency (the highest).
    """

    def __init__(self, plan: FrequencyPlan, t_us: np.ndarray):
        spec = plan.spectrum
        self.t_us = np.asarray(t_us, dtype=float).reshape(-1)
        self.waveform_values = np.asarray(spec.waveform.values(self.t_us), dtype=float)
        self.reference = int(np.argmax(plan.solve_freqs_hz))
        n = np.asarray(spec.harmonics)
        c = np.asarray(spec.coefficients) * np.where(n == 0, 1.0, 2.0)
        W = plan.weights.tocsr()
        t_s = self.t_us * 1e-6
        f0 = spec.waveform.frequency_hz
        B = np.zeros((plan.n_solve, self.t_us.size), dtype=complex)
        # exp(j w_n t) for a chunk of consecutive harmonics: one block of exponentials,
        # shifted to each chunk by a factor (harmonics are n = 0, 1, 2, ...)
        block = np.exp(2j * np.pi * f0 * np.outer(np.arange(_CHUNK), t_s))      # (chunk, n_t)
        for start in range(0, n.size, _CHUNK):
            rows = slice(start, min(start + _CHUNK, n.size))
            phase = block[: rows.stop - start] * np.exp(2j * np.pi * f0 * n[start] * t_s)[None, :]
            Wc = W[rows].toarray()
            B += (Wc * c[rows][:, None]).T @ phase
        self.matrix = B

    def synthesize(self, values: np.ndarray, dtype=np.float64) -> np.ndarray:
        """Time courses from solutions at the solve frequencies.

        Parameters
        ----------
        values : array of complex, shape (n_solve, ...)
        dtype : numpy float type
            Precision of the products (float32: 1e-7 relative, far below a plan's error,
            for large grids).

        Returns
        -------
        ndarray, real, shape (..., n_t)
        """
        v = np.asarray(values)
        ref = np.real(v[self.reference]).astype(dtype)    # real: Re[v w] needs no Hilbert transform of w
        rest = (v - ref[None]).reshape(v.shape[0], -1)                     # (n_solve, m)
        # Re[rest^T B] with two real products (a quarter of the complex one's work)
        out = (rest.real.astype(dtype).T @ self.matrix.real.astype(dtype)
               - rest.imag.astype(dtype).T @ self.matrix.imag.astype(dtype))  # (m, n_t)
        out += ref.reshape(-1, 1) * self.waveform_values.astype(dtype)[None, :]
        return out.reshape(v.shape[1:] + (self.t_us.size,))

    def norms(self, vectors: np.ndarray, chunk: int = 20000, dtype=np.float32):
        """|u(x, t)| of vector solutions (field phasors), chunk by chunk of points.

        Parameters
        ----------
        vectors : array of complex, shape (n_solve, N, 3)
            NaN solutions count as 0.

        Yields
        ------
        (slice, ndarray (m, n_t))
            The points of the chunk and their |u| at the instants.
        """
        v = np.nan_to_num(np.asarray(vectors))
        for start in range(0, v.shape[1], chunk):
            sl = slice(start, start + chunk)
            part = self.synthesize(v[:, sl], dtype)                          # (m, 3, n_t)
            yield sl, np.sqrt((part * part).sum(axis=1))

    def peak_norm(self, vectors: np.ndarray, chunk: int = 20000) -> np.ndarray:
        """Largest |u(t)| over the instants of vector solutions (field phasors), shape
        (N,); NaN solutions give 0."""
        out = np.zeros(np.shape(vectors)[1])
        for sl, norm in self.norms(vectors, chunk):
            out[sl] = norm.max(axis=1)
        return out


def pulse_instants(waveform: Waveform, per_phase: int = 24, margin_us: float | None = None) -> np.ndarray:
    """Instants (us) that resolve the pulse: ``per_phase`` per phase and per gap, the last
    instant of every phase (0.1 % of the pulse width before its end), and a margin after
    the last phase (default one first-phase width) where a capacitive response decays."""
    phases = waveform.phases()
    margin = waveform.pulse_width_us if margin_us is None else float(margin_us)
    edges = [0.0]
    for start, end, _ in phases:
        edges += [start, end]
    edges.append(min(edges[-1] + margin, waveform.period_us))
    edges = np.unique(np.clip(edges, 0.0, waveform.period_us))
    parts = [np.linspace(a, b, per_phase, endpoint=False) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    # the last instant of each phase too: a capacitive response peaks just before a step
    ends = np.array([end for _, end, _ in phases]) - 1e-3 * waveform.pulse_width_us
    return np.unique(np.concatenate(parts + [ends, edges[-1:]]))


def time_basis(plan: FrequencyPlan, t_us: np.ndarray | None = None, per_phase: int = 24) -> TimeBasis:
    """A :class:`TimeBasis` at ``t_us`` (default :func:`pulse_instants` of the plan's waveform)."""
    if t_us is None:
        t_us = pulse_instants(plan.spectrum.waveform, per_phase)
    return TimeBasis(plan, t_us)
