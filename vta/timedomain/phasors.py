"""Contact potential and current phasors of a setting, per frequency, from ``Y(w)``.

The complex counterpart of :func:`vta.fem.stimulation.resolve` (which casts its
conductance matrix to real): with the admittance matrix ``Y(w)`` (S; ``I = Y V``, the
currents leaving the contacts into the tissue, the outer boundary at 0 V or
insulating) a setting reduces, at each frequency, to a small dense complex solve.
Inactive contacts float (no net current). A setting's amplitudes are multiplied by the
waveform's spectrum value at each frequency (its Fourier coefficient), so the
potentials are those of one period's harmonic ``k`` when ``spectrum_values`` are the
coefficients of the normalised waveform.

With an electrode-tissue interface (contact admittances ``y_k(w)`` in series, see
:mod:`vta.timedomain.interface`) the source drives the metal potentials ``W``, and the
tissue side of contact k is at ``V_k = W_k - I_k / y_k``:

* voltage control: ``W_a`` fixed on the active contacts, so ``V`` solves
  ``y_a V_a + (Y V)_a = y_a W_a`` (active) and ``(Y V)_f = 0`` (floating): a divider;
* current control: ``I`` fixed, so ``V = Y^-1 I`` as without an interface and only
  ``W`` changes.

Units: currents mA, potentials V, admittances S, impedances ohm, frequencies Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VtaError
from ..fem.stimulation import Setting

__all__ = ["PhasorState", "resolve_phasors", "resolve_with_interface"]

_MA_PER_A = 1e3


@dataclass(frozen=True)
class PhasorState:
    """Contact phasors of one setting at every frequency.

    Attributes
    ----------
    potentials_V : ndarray of complex, shape (n_f, K)
        Tissue-side contact potentials (V): the weights of the unit solutions.
    source_potentials_V : ndarray of complex, shape (n_f, K)
        Metal (source-side) potentials (V); equal to ``potentials_V`` without an
        interface; ``inf`` where a current must cross an interface with no DC path.
    currents_mA : ndarray of complex, shape (n_f, K)
        Currents leaving the contacts into the tissue (mA).
    ground_current_mA : ndarray of complex, shape (n_f,)
        Current into the outer boundary (mA); 0 if it is insulating.
    impedance_ohm : ndarray of complex, shape (n_f,)
        Load seen by the source, ``sum_k W_k conj(I_k) / I_source^2`` (ohm); ``W / I``
        of the active contact for a monopolar setting (interface included).
    """

    potentials_V: np.ndarray
    source_potentials_V: np.ndarray
    currents_mA: np.ndarray
    ground_current_mA: np.ndarray
    impedance_ohm: np.ndarray


def _admittances(admittance_S) -> np.ndarray:
    Y = np.asarray(admittance_S, dtype=complex)
    if Y.ndim == 2:
        Y = Y[None]
    if Y.ndim != 3 or Y.shape[1] != Y.shape[2]:
        raise VtaError(f"admittance matrices must have shape (n_f, K, K), got {Y.shape}")
    return Y


def _pattern(setting: Setting, K: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(setting, Setting):
        raise VtaError(f"setting must be a vta Setting, got {type(setting).__name__}")
    for k in setting.amplitudes:
        if not 0 <= int(k) < K:
            raise VtaError(f"contact index {k} is out of range (contacts 0..{K - 1})")
    active = np.array(sorted(int(k) for k in setting.amplitudes), dtype=int)
    values = np.array([setting.amplitudes[k] for k in sorted(setting.amplitudes)], dtype=float)
    return active, values


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``A x = b`` (n_f, K, K), (n_f, K); least squares (minimum norm) for the
    frequencies whose matrix is singular (insulating outer boundary, DC)."""
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(A[i], b[i], rcond=None)[0] for i in range(A.shape[0])])


def resolve_phasors(setting: Setting, admittance_S, outer_grounded: bool, spectrum_values=None,
                    interface_admittance_S=None) -> PhasorState:
    """Contact potentials and currents of a setting at every frequency.

    Parameters
    ----------
    setting : Setting
        ``mode`` "current" (mA) or "voltage" (V); contacts not listed float.
    admittance_S : ndarray of complex, shape (n_f, K, K)
        ``Y(w)`` per frequency (S).
    outer_grounded : bool
        True if the outer boundary is a 0 V return electrode.
    spectrum_values : array_like of complex, shape (n_f,), optional
        Factor of the amplitudes at each frequency (the waveform's Fourier
        coefficients); default 1.
    interface_admittance_S : ndarray of complex, shape (n_f, K), optional
        Series interface admittance of each contact (S); ``inf`` or None = none.

    Returns
    -------
    PhasorState

    Raises
    ------
    VtaError
        Contact indices out of range, shapes that do not match, or a setting that
        cannot drive current (as :func:`vta.fem.stimulation.resolve`).
    """
    Y = _admittances(admittance_S)
    n_f, K = Y.shape[0], Y.shape[1]
    active, values = _pattern(setting, K)
    s = np.ones(n_f, complex) if spectrum_values is None else np.asarray(spectrum_values, complex).reshape(-1)
    if s.shape != (n_f,):
        raise VtaError(f"spectrum_values must have one value per frequency ({n_f}), got {s.size}")
    if interface_admittance_S is None:
        y = np.full((n_f, K), np.inf, dtype=complex)
    else:
        y = np.asarray(interface_admittance_S, dtype=complex)
        if y.shape != (n_f, K):
            raise VtaError(f"interface admittances must have shape ({n_f}, {K}), got {y.shape}")
    lumped = np.isfinite(y)                                     # contacts with an interface
    if setting.mode == "voltage":
        if not outer_grounded and np.ptp(values) == 0:
            raise VtaError("voltage setting drives no current: with an insulating outer boundary at least "
                           "two active contacts need different potentials")
        A = Y.copy()
        b = np.zeros((n_f, K), complex)
        for j, a in enumerate(active):
            lum = lumped[:, a]
            A[~lum, a, :] = 0.0
            A[~lum, a, a] = 1.0
            b[~lum, a] = values[j]
            A[lum, a, a] += y[lum, a]
            b[lum, a] = y[lum, a] * values[j]
        V = _solve(A, b)
        I = np.einsum("fij,fj->fi", Y, V)
        W = V.copy()
        W[:, active] = values[None, :]
    else:
        I = np.zeros((n_f, K), complex)
        I[:, active] = values / _MA_PER_A
        if not outer_grounded and abs(values.sum()) > 1e-9 * max(np.abs(values).max(), 1e-30):
            raise VtaError(
                "current setting must sum to zero with an insulating outer boundary "
                f"(got {values.sum():+.6g} mA); add a return contact or ground the outer boundary")
        V = _solve(Y, I) if outer_grounded else np.stack([np.linalg.lstsq(Y[i], I[i], rcond=None)[0]
                                                          for i in range(n_f)])
        I = np.einsum("fij,fj->fi", Y, V)
        with np.errstate(divide="ignore", invalid="ignore"):
            drop = np.where(lumped, np.where(I == 0, 0.0, I / np.where(y == 0, 1.0, y)), 0.0)
            drop = np.where(lumped & (y == 0) & (I != 0), complex(np.inf), drop)
        W = V + drop
    currents = I * _MA_PER_A
    ground = -currents.sum(axis=1) if outer_grounded else np.zeros(n_f, complex)
    Z = _load_impedance(W, currents, ground, outer_grounded)
    return PhasorState(V * s[:, None], W * s[:, None], currents * s[:, None], ground * s, Z)


def _load_impedance(W: np.ndarray, currents_mA: np.ndarray, ground_mA: np.ndarray, grounded: bool) -> np.ndarray:
    """Complex power over source current squared (ohm), per frequency."""
    with np.errstate(invalid="ignore"):
        power = np.einsum("fk,fk->f", W, np.conj(currents_mA))
    flows = np.abs(currents_mA).sum(axis=1) + (np.abs(ground_mA) if grounded else 0.0)
    src = 0.5 * flows
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(src > 0, power / np.where(src > 0, src, 1.0) ** 2 * _MA_PER_A, complex(np.nan))


def resolve_with_interface(setting: Setting, admittance_S, outer_grounded: bool, interface, contact_areas_mm2,
                           frequencies_hz, spectrum_values=None) -> PhasorState:
    """:func:`resolve_phasors` with an :class:`~vta.timedomain.interface.ElectrodeInterface`
    on every contact (areas (K,) in mm^2, frequencies (n_f,) in Hz)."""
    y = interface.admittance_S(contact_areas_mm2, frequencies_hz)
    return resolve_phasors(setting, admittance_S, outer_grounded, spectrum_values, y)
